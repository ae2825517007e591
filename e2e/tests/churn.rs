//! Configuration churn under load: no request may fail while routes and endpoints change.

use e2e::manifests::{backend, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{poll_until, Echo, KeepAliveConnection, Pier};
use http::StatusCode;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const CHANGES: usize = 40;
const CHANGE_EVERY: Duration = Duration::from_millis(100);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// What the client tasks observed.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// Connections opened (one per client unless pier closed some).
    connections: AtomicU64,
    failed: AtomicU64,
    /// The first few failures, for the assertion message.
    failures: Mutex<Vec<String>>,
    /// Answers per echo backend.
    by_backend: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 20 {
            failures.push(message);
        }
    }
}

/// One client: requests back to back on its own keep-alive connection until `stop`. A closed
/// connection counts as a failure (pier must not close connections on config changes); the
/// client then reconnects.
async fn client_loop(
    id: usize,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut connection: Option<KeepAliveConnection> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let path = format!("/churn?client={id}&seq={seq}");
        if connection.is_none() {
            match KeepAliveConnection::connect(addr).await {
                Ok(c) => {
                    tally.connections.fetch_add(1, Ordering::Relaxed);
                    connection = Some(c);
                }
                Err(err) => {
                    tally.fail(format!("{path}: {err:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let conn = connection.as_mut().expect("connected above");
        match conn.get("stable.example", &path).await {
            Ok(reply) if reply.status == StatusCode::OK => match reply.echo_name() {
                Some(name) => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    *tally.by_backend.lock().unwrap().entry(name).or_default() += 1;
                }
                None => tally.fail(format!(
                    "{path}: 200 without echo body: {}",
                    reply.summary()
                )),
            },
            Ok(reply) => tally.fail(format!("{path}: {}", reply.summary())),
            Err(err) => {
                tally.fail(format!("{path}: {err:#}"));
                connection = None;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_failed_requests_while_config_churns() {
    let set_a = [
        Echo::start(ip(31), "a1").await,
        Echo::start(ip(32), "a2").await,
    ];
    let set_b = [
        Echo::start(ip(33), "b1").await,
        Echo::start(ip(34), "b2").await,
    ];
    let endpoints = |set: &[Echo; 2]| -> String {
        let eps: Vec<Endpoint> = set.iter().map(|e| Endpoint::ready(e.addr())).collect();
        backend(NAMESPACE, "svc-stable", &eps)
    };
    let extra = |k: usize| -> String {
        Ingress::new(NAMESPACE, &format!("extra-{k}"))
            .route(
                &format!("extra-{k}.example"),
                "/",
                PathType::Prefix,
                "svc-stable",
            )
            .to_yaml()
    };
    let pier = Pier::start(&[
        ("backends.yaml", endpoints(&set_a)),
        (
            "stable.yaml",
            Ingress::new(NAMESPACE, "stable")
                .route("stable.example", "/", PathType::Prefix, "svc-stable")
                .to_yaml(),
        ),
    ])
    .await;
    let first = pier.get("stable.example", "/").await.unwrap();
    assert_eq!(
        first.status,
        StatusCode::OK,
        "before churn: {}",
        first.summary()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client_loop(
                id,
                pier.http_addr(),
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    let mut live_extras: VecDeque<usize> = VecDeque::new();
    let (mut added, mut removed, mut rewrites) = (0, 0, 0);
    for change in 0..CHANGES {
        tokio::time::sleep(CHANGE_EVERY).await;
        if change % 2 == 0 {
            // Endpoint rewrite, alternating between two live sets (ends on set A).
            let set = if change % 4 == 0 { &set_b } else { &set_a };
            pier.write_atomic("backends.yaml", &endpoints(set));
            rewrites += 1;
        } else {
            // Other Ingresses come and go: two adds, then one remove.
            let k = change / 2;
            if k % 3 == 2 && !live_extras.is_empty() {
                let gone = live_extras.pop_front().unwrap();
                pier.remove(&format!("extra-{gone}.yaml"));
                removed += 1;
            } else {
                pier.write(&format!("extra-{k}.yaml"), &extra(k));
                live_extras.push_back(k);
                added += 1;
            }
        }
    }
    // Let the last change take effect under load too.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task panicked");
    }
    let elapsed = started.elapsed();

    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let by_backend = tally.by_backend.lock().unwrap().clone();
    let connections = tally.connections.load(Ordering::Relaxed);
    println!(
        "churn: {} requests ({ok} ok, {failed} failed) from {CLIENTS} clients on {connections} keep-alive connections in {elapsed:?} \
         during {CHANGES} changes ({rewrites} endpoint rewrites, {added} Ingresses added, \
         {removed} removed); answers per backend: {by_backend:?}",
        ok + failed
    );
    assert_eq!(
        failed,
        0,
        "requests failed during churn (first ones):\n{}",
        tally.failures.lock().unwrap().join("\n")
    );
    assert!(
        ok >= 100,
        "too little traffic to mean anything: {ok} requests"
    );
    for name in ["a1", "a2", "b1", "b2"] {
        assert!(
            by_backend.get(name).copied().unwrap_or(0) > 0,
            "endpoint switches did not take effect: no answer from {name}: {by_backend:?}"
        );
    }

    // The Ingress changes were applied as well.
    let last = *live_extras.back().expect("some extra Ingress is live");
    let host = format!("extra-{last}.example");
    poll_until(Duration::from_secs(2), || async {
        match pier.get(&host, "/").await {
            Ok(r) if r.status == StatusCode::OK => Ok(()),
            Ok(r) => Err(r.summary()),
            Err(e) => Err(format!("{e:#}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("last added Ingress {host} does not route: {e}"));
    let reply = pier.get("extra-0.example", "/").await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "removed Ingress still routes: {}",
        reply.summary()
    );
}
