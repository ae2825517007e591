//! A failed connect is retried on another endpoint; HTTP/2 clients are routed by `:authority`.

use bytes::Bytes;
use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{free_port, Echo, Pier};
use http_body_util::{BodyExt, Empty};
use std::net::{Ipv4Addr, SocketAddr};

#[tokio::test]
async fn connect_failure_is_retried_on_another_endpoint() {
    let live = Echo::start(Ipv4Addr::new(127, 0, 0, 61), "live").await;
    // Nothing listens there: every connect is refused.
    let dead = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let pier = Pier::start(&[
        (
            "backends.yaml",
            join(&[backend(
                NAMESPACE,
                "half-dead",
                &[Endpoint::ready(dead), Endpoint::ready(live.addr())],
            )]),
        ),
        (
            "ingress.yaml",
            Ingress::new(NAMESPACE, "retry")
                // Keep the dead endpoint in rotation (no ejection) so every other request
                // needs a retry.
                .annotation("pier.dev/consecutive-failures", "0")
                .route("retry.example", "/", PathType::Prefix, "half-dead")
                .to_yaml(),
        ),
    ])
    .await;

    // Round-robin sends every other request to the dead endpoint first.
    for i in 0..20 {
        let reply = pier.get("retry.example", "/").await.expect("request");
        assert_eq!(reply.status, 200, "request {i}: {}", reply.summary());
        assert_eq!(reply.echo_name().as_deref(), Some("live"), "request {i}");
    }
    let metrics = pier.admin_get("/metrics").await.expect("metrics").text();
    let retries: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pier_upstream_retries_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no retry counter in:\n{metrics}"));
    assert!(retries >= 10.0, "expected ~10 retries, counted {retries}");
}

#[tokio::test]
async fn http2_prior_knowledge_is_routed_by_authority() {
    let h2 = Echo::start(Ipv4Addr::new(127, 0, 0, 62), "h2-backend").await;
    let other = Echo::start(Ipv4Addr::new(127, 0, 0, 63), "other").await;
    let pier = Pier::start(&[
        (
            "backends.yaml",
            join(&[
                backend(NAMESPACE, "h2svc", &[Endpoint::ready(h2.addr())]),
                backend(NAMESPACE, "othersvc", &[Endpoint::ready(other.addr())]),
            ]),
        ),
        (
            "ingress.yaml",
            Ingress::new(NAMESPACE, "h2")
                .route("h2.example", "/", PathType::Prefix, "h2svc")
                .route("", "/", PathType::Prefix, "othersvc")
                .to_yaml(),
        ),
    ])
    .await;

    let mut sender = e2e::client::h2c_connect(pier.http_addr())
        .await
        .expect("h2 handshake (pier must accept h2c)");
    // The authority carries the host (with case and port to normalise); no Host header.
    let request = http::Request::get("http://H2.Example:4430/some/path?q=1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("echo JSON");
    assert_eq!(echo["name"], "h2-backend", "{echo}");
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(
        echo["headers"]["x-forwarded-host"], "H2.Example:4430",
        "{echo}"
    );
    assert_eq!(echo["headers"]["host"], "H2.Example:4430", "{echo}");
    // The stream was the fast path's: nothing went to the general path.
    assert_eq!(pier.general_path_counts().await, vec![]);
    assert_eq!(pier.general_path_stream_counts().await, vec![]);
}
