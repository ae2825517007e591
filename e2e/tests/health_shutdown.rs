//! Graceful shutdown: SIGTERM fails `/readyz` at once, the listener keeps serving for the
//! shutdown delay, requests in flight when it closes complete, and pier exits 0 as soon as
//! they are done. A second signal exits at once.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{poll_until, Echo, HttpClient, Pier};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

const HOST: &str = "drain.example";

async fn start(backend_addr: SocketAddr) -> Pier {
    Pier::start_with_args(
        &[
            (
                "backends.yaml",
                join(&[backend(NAMESPACE, "slow", &[Endpoint::ready(backend_addr)])]),
            ),
            (
                "ingress.yaml",
                Ingress::new(NAMESPACE, "drain")
                    .route(HOST, "/", PathType::Prefix, "slow")
                    .to_yaml(),
            ),
        ],
        &["--shutdown-delay", "1s", "--shutdown-timeout", "10s"],
    )
    .await
}

fn signal(pier: &Pier, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pier.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// One request on its own connection (no pooled connection that shutdown might close).
fn request(addr: SocketAddr) -> tokio::task::JoinHandle<Result<u16, String>> {
    tokio::spawn(async move {
        HttpClient::new()
            .get(addr, HOST, "/")
            .await
            .map(|r| r.status.as_u16())
            .map_err(|e| format!("{e:#}"))
    })
}

#[tokio::test]
async fn sigterm_fails_readyz_keeps_serving_then_drains_in_flight_requests() {
    let slow = Echo::start_with(
        SocketAddr::from((Ipv4Addr::new(127, 0, 4, 31), e2e::free_port())),
        "slow",
        700,
        200,
    )
    .await;
    let mut pier = start(slow.addr()).await;
    let addr = pier.http_addr();
    let early: Vec<_> = (0..4).map(|_| request(addr)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sigterm = Instant::now();
    signal(&pier, "TERM");
    // The signal is handled asynchronously: allow a moment, not the shutdown delay.
    poll_until(Duration::from_millis(300), || async {
        match pier.admin_get("/readyz").await {
            Ok(r) if r.status == 503 => Ok(()),
            Ok(r) => Err(r.summary()),
            Err(e) => Err(format!("{e:#}")),
        }
    })
    .await
    .expect("/readyz fails at once");
    // Within the shutdown delay the listener still accepts; these are in flight when it
    // closes (at ~1 s) and must complete (at ~1.5 s).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late: Vec<_> = (0..4).map(|_| request(addr)).collect();
    for (i, r) in early.into_iter().chain(late).enumerate() {
        assert_eq!(r.await.expect("task"), Ok(200), "request {i}");
    }
    let status = pier
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("pier exits once drained");
    assert!(status.success(), "{status}");
    let took = sigterm.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "exited before the delay: {took:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "did not exit when drained: {took:?}"
    );
    assert!(HttpClient::new().get(addr, HOST, "/").await.is_err());
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let slow = Echo::start_with(
        SocketAddr::from((Ipv4Addr::new(127, 0, 4, 32), e2e::free_port())),
        "slow",
        5000,
        200,
    )
    .await;
    let mut pier = start(slow.addr()).await;
    let _stuck = request(pier.http_addr());
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(&pier, "TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = Instant::now();
    signal(&pier, "TERM");
    let status = pier
        .wait_exit(Duration::from_secs(3))
        .await
        .expect("pier exits on the second signal");
    assert!(status.success(), "{status}");
    assert!(second.elapsed() < Duration::from_millis(2500));
}
