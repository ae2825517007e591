//! Health checking and failure handling through the `pier` binary: active checks take a
//! failing endpoint out, retries hide a dead endpoint, passive ejection takes it out, a
//! restarted endpoint comes back, and a Service with no live endpoint fails fast.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{free_port, free_port_on, poll_until, Echo, HttpClient, Pier};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOST: &str = "health.example";

fn addr_on(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), free_port_on(ip))
}

/// Pier routing `HOST/` to Service `svc` with `endpoints` and the given annotations.
async fn pier_with(endpoints: &[SocketAddr], annotations: &[(&str, &str)]) -> Pier {
    let eps: Vec<Endpoint> = endpoints.iter().map(|a| Endpoint::ready(*a)).collect();
    let mut ingress = Ingress::new(NAMESPACE, "health").route(HOST, "/", PathType::Prefix, "svc");
    for (k, v) in annotations {
        ingress = ingress.annotation(&format!("pier.dev/{k}"), v);
    }
    Pier::start(&[
        ("backends.yaml", join(&[backend(NAMESPACE, "svc", &eps)])),
        ("ingress.yaml", ingress.to_yaml()),
    ])
    .await
}

/// Sends `n` requests; counts answers by echo name (or status for errors).
async fn spread(pier: &Pier, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let key = match pier.get(HOST, "/").await {
            Ok(r) if r.status == 200 => r.echo_name().unwrap_or_default(),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("error {e:#}"),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// The `/debug/routes` view of one endpoint.
async fn endpoint_view(pier: &Pier, addr: SocketAddr) -> serde_json::Value {
    let view = pier.admin_get("/debug/routes").await.expect("debug").json();
    let services = view["endpoints"].as_array().cloned().unwrap_or_default();
    services
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|e| e["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("{addr} not in {view}"))
}

/// Requests from `workers` concurrent clients until `stop`; returns (ok, failures).
fn load(
    pier: &Pier,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    let addr = pier.http_addr();
    tokio::spawn(async move {
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let client = HttpClient::new();
                    let (mut ok, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match client.get(addr, HOST, "/").await {
                            Ok(r) if r.status == 200 => ok += 1,
                            Ok(r) => failed.push(r.summary()),
                            Err(e) => failed.push(format!("{e:#}")),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let (mut ok, mut failed) = (0, Vec::new());
        for t in tasks {
            let (o, f) = t.await.expect("worker");
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    })
}

#[tokio::test]
async fn endpoint_failing_its_checks_leaves_rotation_within_interval_times_threshold() {
    let good = Echo::start(Ipv4Addr::new(127, 0, 4, 1), "good").await;
    let bad = Echo::start_with(addr_on(Ipv4Addr::new(127, 0, 4, 2)), "bad", 0, 503).await;
    let pier = pier_with(
        &[good.addr(), bad.addr()],
        &[
            ("health-check-path", "/healthz"),
            ("health-check-interval", "200ms"),
            ("health-check-unhealthy-threshold", "2"),
            // Only the active checks decide here.
            ("consecutive-failures", "0"),
        ],
    )
    .await;
    let started = Instant::now();
    poll_until(Duration::from_secs(5), || async {
        let bad_view = endpoint_view(&pier, bad.addr()).await;
        let good_view = endpoint_view(&pier, good.addr()).await;
        match (
            bad_view["health"]["checked"].as_bool(),
            good_view["health"]["checked"].as_bool(),
        ) {
            (Some(false), Some(true)) => Ok(()),
            other => Err(format!("(bad, good) checked: {other:?}")),
        }
    })
    .await
    .expect("the failing endpoint is marked unhealthy");
    // First check within min(interval, 1 s), then at most two intervals (+10 % jitter).
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1800), "took {took:?}");
    let counts = spread(&pier, 20).await;
    assert_eq!(counts.get("good"), Some(&20), "{counts:?}");
    let good_view = endpoint_view(&pier, good.addr()).await;
    assert_eq!(good_view["health"]["checked"], true, "{good_view}");
    assert_eq!(good_view["routable"], true);
}

#[tokio::test]
async fn killing_an_endpoint_under_load_loses_nothing_and_ejects_it() {
    let a = Echo::start(Ipv4Addr::new(127, 0, 4, 11), "a").await;
    let b = Echo::start(Ipv4Addr::new(127, 0, 4, 12), "b").await;
    let c = Echo::start(Ipv4Addr::new(127, 0, 4, 13), "c").await;
    let dead_addr = c.addr();
    let pier = pier_with(&[a.addr(), b.addr(), c.addr()], &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&pier, 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = running.await.expect("load");
    assert!(ok > 100, "too little load: {ok}");
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    let view = endpoint_view(&pier, dead_addr).await;
    assert!(
        view["health"]["ejected_for_ms"].as_u64().is_some(),
        "not ejected: {view}"
    );
    assert_eq!(view["routable"], false);
    let metrics = pier.admin_get("/metrics").await.expect("metrics").text();
    assert!(
        metrics.contains(
            "pier_endpoint_state_changes_total{service=\"default/svc:80\",state=\"ejected\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        pier.log_contains("endpoint state changed"),
        "{}",
        pier.logs()
    );
}

#[tokio::test]
async fn a_restarted_endpoint_returns_to_rotation() {
    let a = Echo::start(Ipv4Addr::new(127, 0, 4, 21), "a").await;
    let b_addr = addr_on(Ipv4Addr::new(127, 0, 4, 22));
    let b = Echo::start_with(b_addr, "b", 0, 200).await;
    let pier = pier_with(
        &[a.addr(), b_addr],
        &[
            ("health-check-interval", "200ms"),
            ("health-check-unhealthy-threshold", "1"),
        ],
    )
    .await;
    pier.wait_for_echo(HOST, "/", "b", Duration::from_secs(5))
        .await
        .expect("b serves");
    drop(b);
    poll_until(Duration::from_secs(5), || async {
        let counts = spread(&pier, 6).await;
        if counts.get("a") == Some(&6) {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await
    .expect("b leaves rotation");
    let _b = Echo::start_with(b_addr, "b", 0, 200).await;
    let back = pier
        .wait_for_echo(HOST, "/", "b", Duration::from_secs(5))
        .await
        .expect("b returns");
    assert!(back < Duration::from_secs(2), "took {back:?}");
}

#[tokio::test]
async fn all_endpoints_down_fails_fast() {
    let dead: Vec<SocketAddr> = (0..3)
        .map(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())))
        .collect();
    let pier = pier_with(&dead, &[("health-check-interval", "200ms")]).await;
    // Let the checks mark everything unhealthy: panic mode still tries, and fails fast.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let reply = pier.get(HOST, "/").await.expect("an answer, not a hang");
        assert!(
            matches!(reply.status.as_u16(), 502 | 503),
            "{}",
            reply.summary()
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
