//! Host and path routing, forwarded headers and round-robin, through the real binary.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, PortRef, NAMESPACE};
use e2e::{common_free_port, Echo, Pier};
use http::{Method, StatusCode};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Three backends behind two hosts; returns the running proxy and the backends (kept alive).
async fn three_backends() -> (Pier, Vec<Echo>) {
    let one = Echo::start(ip(21), "one").await;
    let two = Echo::start(ip(22), "two").await;
    let three = Echo::start(ip(23), "three").await;
    let backends = join(&[
        backend(NAMESPACE, "svc-one", &[Endpoint::ready(one.addr())]),
        backend(NAMESPACE, "svc-two", &[Endpoint::ready(two.addr())]),
        backend(NAMESPACE, "svc-three", &[Endpoint::ready(three.addr())]),
    ]);
    let site = Ingress::new(NAMESPACE, "site")
        .route("a.example", "/", PathType::Prefix, "svc-one")
        .route("a.example", "/api", PathType::Prefix, "svc-two")
        .route("a.example", "/api/exact", PathType::Exact, "svc-three")
        .route("a.example", "/api/v2/deep", PathType::Prefix, "svc-three")
        .route("a.example", "/same", PathType::Prefix, "svc-one")
        .route("a.example", "/same", PathType::Exact, "svc-two")
        .route_port(
            "a.example",
            "/named",
            PathType::ImplementationSpecific,
            "svc-three",
            PortRef::Name("http".into()),
        )
        .to_yaml();
    let other = Ingress::new(NAMESPACE, "other")
        .route("b.example", "/", PathType::Prefix, "svc-three")
        .route("b.example", "/only", PathType::Exact, "svc-one")
        .to_yaml();
    let pier = Pier::start(&[
        ("backends.yaml", backends),
        ("site.yaml", site),
        ("other.yaml", other),
    ])
    .await;
    (pier, vec![one, two, three])
}

#[tokio::test]
async fn host_and_path_select_the_backend() {
    let (pier, _backends) = three_backends().await;
    let cases: &[(&str, &str, &str)] = &[
        ("a.example", "/", "one"),
        ("a.example", "/anything/else", "one"),
        ("a.example", "/api", "two"),
        ("a.example", "/api/", "two"),
        ("a.example", "/api/users/7", "two"),
        // Prefix matches whole path elements only.
        ("a.example", "/apix", "one"),
        ("a.example", "/api/exact", "three"),
        // Exact does not match deeper paths, nor a trailing slash.
        ("a.example", "/api/exact/sub", "two"),
        ("a.example", "/api/exact/", "two"),
        // The longest matching path wins.
        ("a.example", "/api/v2/deep", "three"),
        ("a.example", "/api/v2/deep/er", "three"),
        ("a.example", "/api/v2", "two"),
        // Equal length: Exact beats Prefix.
        ("a.example", "/same", "two"),
        ("a.example", "/same/sub", "one"),
        // Named Service port, ImplementationSpecific treated as Prefix.
        ("a.example", "/named", "three"),
        ("a.example", "/named/x", "three"),
        // The query string is not part of the match.
        ("a.example", "/api/exact?x=1", "three"),
        // Host matching ignores case and port.
        ("A.EXAMPLE", "/api", "two"),
        ("a.example:8080", "/api/exact", "three"),
        ("A.Example:80", "/", "one"),
        ("b.example", "/", "three"),
        ("b.example", "/only", "one"),
        ("b.example", "/only/not", "three"),
        ("B.example:1234", "/only", "one"),
    ];
    let mut failures = Vec::new();
    for (host, path, want) in cases {
        match pier.get(host, path).await {
            Ok(r) if r.status == StatusCode::OK && r.echo_name().as_deref() == Some(*want) => {}
            Ok(r) => failures.push(format!("{host}{path}: want {want}, got {}", r.summary())),
            Err(e) => failures.push(format!("{host}{path}: want {want}, got error {e:#}")),
        }
    }
    assert!(
        failures.is_empty(),
        "routing mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn request_reaches_backend_unchanged_with_forwarding_headers() {
    let (pier, _backends) = three_backends().await;
    let reply = pier
        .client()
        .request(
            Method::GET,
            pier.http_addr(),
            Some("a.example"),
            "/api/echo/Some%20Path?x=1&y=%20z&x=2",
            &[("x-custom", "kept"), ("user-agent", "pier-e2e")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.summary());
    let v = reply.json();
    assert_eq!(v["name"], "two");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/api/echo/Some%20Path");
    assert_eq!(v["query"], "x=1&y=%20z&x=2");
    assert_eq!(v["host"], "a.example");
    let headers = &v["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{headers}");
    assert_eq!(headers["x-real-ip"], "127.0.0.1", "{headers}");
    assert_eq!(headers["x-forwarded-proto"], "http", "{headers}");
    assert_eq!(headers["x-forwarded-host"], "a.example", "{headers}");
    assert_eq!(headers["x-custom"], "kept", "{headers}");
    assert_eq!(headers["user-agent"], "pier-e2e", "{headers}");

    // Addresses of earlier proxies, in one field or several, come first, whichever path
    // serves the request (HTTP/1.1: the fast path; HTTP/1.0: the general path).
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut conn = e2e::raw::RawConnection::connect(pier.http_addr())
            .await
            .unwrap();
        let request = format!(
            "GET /api/echo {version}\r\nHost: a.example\r\nX-Forwarded-For: 10.0.0.1\r\n\
             X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nConnection: close\r\n\r\n"
        );
        conn.send(request.as_bytes()).await.unwrap();
        let r = conn.read_response(false).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
        assert_eq!(
            v["headers"]["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1",
            "{version}: {v}"
        );
    }
    let general = pier.general_path_counts().await;
    assert_eq!(general, vec![("HTTP/1.0".to_string(), 1)], "{general:?}");

    // Host with a port and odd case reaches the backend as sent.
    let reply = pier.get("A.Example:8080", "/p?q").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.summary());
    let v = reply.json();
    assert_eq!(v["name"], "one");
    assert_eq!(v["host"], "A.Example:8080");
    assert_eq!(v["path"], "/p");
    assert_eq!(v["query"], "q");

    // Method and body pass through.
    let reply = pier
        .client()
        .request(
            Method::POST,
            pier.http_addr(),
            Some("b.example"),
            "/submit",
            &[("content-type", "text/plain")],
            bytes::Bytes::from_static(b"hello pier"),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.summary());
    let v = reply.json();
    assert_eq!(v["name"], "three");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["headers"]["content-length"], "10");
}

#[tokio::test]
async fn round_robin_spreads_over_endpoints() {
    // Both endpoints share one port so they sit in one EndpointSlice.
    let port = common_free_port(&[ip(24), ip(25)]);
    let a = Echo::start_with(SocketAddr::from((ip(24), port)), "rr-a", 0, 200).await;
    let b = Echo::start_with(SocketAddr::from((ip(25), port)), "rr-b", 0, 200).await;
    let pier = Pier::start(&[(
        "rr.yaml",
        join(&[
            backend(
                NAMESPACE,
                "svc-rr",
                &[Endpoint::ready(a.addr()), Endpoint::ready(b.addr())],
            ),
            Ingress::new(NAMESPACE, "rr")
                .route("rr.example", "/", PathType::Prefix, "svc-rr")
                .to_yaml(),
        ]),
    )])
    .await;
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..40 {
        let reply = pier.get("rr.example", &format!("/n/{i}")).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.summary());
        *counts.entry(reply.echo_name().unwrap()).or_default() += 1;
    }
    let a_count = counts.get("rr-a").copied().unwrap_or(0);
    let b_count = counts.get("rr-b").copied().unwrap_or(0);
    assert_eq!(a_count + b_count, 40, "unexpected backends: {counts:?}");
    assert!(
        (16..=24).contains(&a_count),
        "round-robin should split 40 requests about evenly, got {counts:?}"
    );
}
