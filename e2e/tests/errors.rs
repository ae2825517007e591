//! pier-generated error responses and the admin endpoints.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{free_port, Echo, KeepAliveConnection, Pier, Reply};
use http::StatusCode;
use std::net::{Ipv4Addr, SocketAddr};

/// An error response pier made itself: `server: pier` and a short body.
fn assert_pier_error(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.summary());
    assert_eq!(
        reply.header("server"),
        Some("pier"),
        "{what}: pier-generated responses carry `server: pier`: {}",
        reply.summary()
    );
    assert!(
        reply.body.len() < 512,
        "{what}: error body should be short, got {} bytes",
        reply.body.len()
    );
    assert!(
        reply.echo_name().is_none(),
        "{what}: answered by a backend, not by pier: {}",
        reply.summary()
    );
}

async fn start() -> (Pier, Echo) {
    let ok = Echo::start(Ipv4Addr::new(127, 0, 0, 26), "ok").await;
    // Nothing listens there: bound, read and released.
    let refused = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let not_ready = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 27), 9));
    let backends = join(&[
        backend(NAMESPACE, "svc-ok", &[Endpoint::ready(ok.addr())]),
        backend(NAMESPACE, "svc-notready", &[Endpoint::not_ready(not_ready)]),
        backend(NAMESPACE, "svc-empty", &[]),
        backend(NAMESPACE, "svc-refused", &[Endpoint::ready(refused)]),
    ]);
    let ingress = Ingress::new(NAMESPACE, "errors")
        .route("ok.example", "/app", PathType::Prefix, "svc-ok")
        .route(
            "missing.example",
            "/",
            PathType::Prefix,
            "svc-does-not-exist",
        )
        .route("notready.example", "/", PathType::Prefix, "svc-notready")
        .route("empty.example", "/", PathType::Prefix, "svc-empty")
        .route("refused.example", "/", PathType::Prefix, "svc-refused")
        .to_yaml();
    let pier = Pier::start(&[("backends.yaml", backends), ("errors.yaml", ingress)]).await;
    (pier, ok)
}

#[tokio::test]
async fn error_statuses_come_from_pier() {
    let (pier, _ok) = start().await;
    // (host, path, expected status, what): all on one keep-alive connection, so an error
    // response that says keep-alive but closes the connection is caught.
    let steps: &[(&str, &str, u16, &str)] = &[
        ("ok.example", "/app/x", 200, "sanity"),
        ("unknown.example", "/app", 404, "unknown host"),
        ("ok.example", "/other", 404, "known host, no matching path"),
        ("missing.example", "/", 503, "Service missing"),
        ("notready.example", "/", 503, "no ready endpoint"),
        ("empty.example", "/", 503, "no endpoints at all"),
        ("refused.example", "/", 502, "connection refused"),
        ("ok.example", "/app", 200, "working route after the errors"),
    ];
    let mut conn = KeepAliveConnection::connect(pier.http_addr())
        .await
        .unwrap();
    let mut previous = "connect";
    for (host, path, status, what) in steps {
        let reply = conn.get(host, path).await.unwrap_or_else(|e| {
            panic!(
                "{what}: request failed on the keep-alive connection used by the previous \
                 request ({previous}), whose response did not say `connection: close`: {e:#}"
            )
        });
        if *status == 200 {
            assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.summary());
            assert_eq!(reply.echo_name().as_deref(), Some("ok"), "{what}");
        } else {
            assert_pier_error(&reply, *status, what);
        }
        let closing = reply
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closing {
            conn = KeepAliveConnection::connect(pier.http_addr())
                .await
                .unwrap();
        }
        previous = what;
    }
}

#[tokio::test]
async fn admin_endpoints() {
    let (pier, _ok) = start().await;

    let reply = pier.admin_get("/healthz").await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "/healthz: {}",
        reply.summary()
    );

    let reply = pier.admin_get("/readyz").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "/readyz: {}", reply.summary());

    // Some traffic first, so request metrics have samples.
    let _ = pier.get("ok.example", "/app").await.unwrap();
    let _ = pier.get("unknown.example", "/").await.unwrap();
    let reply = pier.admin_get("/metrics").await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "/metrics: {}",
        reply.summary()
    );
    let metrics = reply.text();
    let pier_samples = metrics.lines().filter(|l| l.starts_with("pier_")).count();
    assert!(
        pier_samples > 0,
        "/metrics has no pier_ samples:\n{metrics}"
    );

    let reply = pier.admin_get("/debug/routes").await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "/debug/routes: {}",
        reply.summary()
    );
    let routes = reply.json();
    let text = routes.to_string();
    for host in ["ok.example", "refused.example"] {
        assert!(text.contains(host), "/debug/routes lacks {host}: {text}");
    }
}

#[test]
fn one_address_for_two_listeners_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("pier-e2e-same-listen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("manifest dir");
    let [port, admin] = e2e::free_ports::<2>();
    let same = format!("127.0.0.1:{port}");
    let out = std::process::Command::new(e2e::pier_bin())
        .arg("run")
        .arg("--manifests")
        .arg(&dir)
        .args(["--http-listen", &same, "--https-listen", &same])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .output()
        .expect("cannot run pier");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on --https-listen {same}")),
        "{stderr}"
    );
}
