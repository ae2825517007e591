//! Failover report: one of N endpoints dies under load at a fixed request rate. Prints the
//! error rate and the time until pier takes the dead endpoint out (ejected or unhealthy),
//! for a few policies.
//!
//! `cargo bench -p pier-e2e --bench failover` (uses `target/release/pier` when it exists,
//! else `target/debug/pier`; `PIER_BIN` overrides). Loopback only; bounded in time.
//! Never fails on a number.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{free_port_on, Echo, HttpClient, Pier};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ENDPOINTS: u8 = 5;
const RATE_PER_SEC: u64 = 500;
const BEFORE_KILL: Duration = Duration::from_millis(1000);
const AFTER_KILL: Duration = Duration::from_millis(2500);
const HOST: &str = "failover.example";

struct Report {
    sent: usize,
    errors_after_kill: usize,
    out_after: Option<Duration>,
}

/// Whether `/debug/routes` shows `addr` out of rotation.
async fn is_out(pier: &Pier, addr: SocketAddr) -> bool {
    let Ok(reply) = pier.admin_get("/debug/routes").await else {
        return false;
    };
    let view = reply.json();
    view["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .any(|e| e["address"] == addr.to_string() && e["routable"] == false)
}

async fn scenario(annotations: &[(&str, &str)], base: u8) -> Report {
    let mut echoes = Vec::new();
    for i in 0..ENDPOINTS {
        let ip = Ipv4Addr::new(127, 0, 5, base + i);
        let addr = SocketAddr::new(IpAddr::V4(ip), free_port_on(ip));
        echoes.push(Echo::start_with(addr, &format!("e{i}"), 1, 200).await);
    }
    let eps: Vec<Endpoint> = echoes.iter().map(|e| Endpoint::ready(e.addr())).collect();
    let mut ingress = Ingress::new(NAMESPACE, "failover").route(HOST, "/", PathType::Prefix, "svc");
    for (k, v) in annotations {
        ingress = ingress.annotation(&format!("pier.dev/{k}"), v);
    }
    let pier = Pier::start(&[
        ("backends.yaml", join(&[backend(NAMESPACE, "svc", &eps)])),
        ("ingress.yaml", ingress.to_yaml()),
    ])
    .await;
    // Let active checks (if any) see every endpoint once.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let client = Arc::new(HttpClient::new());
    let addr = pier.http_addr();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SEC));
    let mut requests = Vec::new();
    let mut killed_at = None;
    let mut out_after = None;
    let victim = echoes[0].addr();
    let mut next_poll = Instant::now();
    while started.elapsed() < BEFORE_KILL + AFTER_KILL {
        ticker.tick().await;
        if killed_at.is_none() && started.elapsed() >= BEFORE_KILL {
            echoes.remove(0);
            killed_at = Some(Instant::now());
        }
        if let (Some(k), None) = (killed_at, out_after) {
            if Instant::now() >= next_poll {
                next_poll = Instant::now() + Duration::from_millis(10);
                if is_out(&pier, victim).await {
                    out_after = Some(k.elapsed());
                }
            }
        }
        let client = client.clone();
        let sent_at = Instant::now();
        requests.push((
            sent_at,
            tokio::spawn(async move {
                matches!(client.get(addr, HOST, "/").await, Ok(r) if r.status == 200)
            }),
        ));
    }
    let killed_at = killed_at.unwrap_or(started);
    let mut errors_after_kill = 0;
    let sent = requests.len();
    for (sent_at, r) in requests {
        let ok = r.await.unwrap_or(false);
        if !ok && sent_at >= killed_at {
            errors_after_kill += 1;
        }
    }
    Report {
        sent,
        errors_after_kill,
        out_after,
    }
}

#[tokio::main]
async fn main() {
    e2e::prefer_release_binary();
    let scenarios: [(&str, &[(&str, &str)]); 3] = [
        ("defaults (retries 2, eject after 5)", &[]),
        ("no retries (retries 0)", &[("retries", "0")]),
        (
            "active TCP checks only (1s, threshold 2)",
            &[
                ("health-check-interval", "1s"),
                ("consecutive-failures", "0"),
            ],
        ),
    ];
    println!(
        "one of {ENDPOINTS} endpoints killed after {BEFORE_KILL:?} at {RATE_PER_SEC} req/s, \
         {AFTER_KILL:?} more load"
    );
    println!(
        "{:<44} {:>6} {:>8} {:>10} {:>14}",
        "policy", "sent", "errors", "error %", "out of rotation"
    );
    for (i, (name, annotations)) in scenarios.iter().enumerate() {
        let r = scenario(annotations, 1 + 10 * i as u8).await;
        let out = r.out_after.map_or_else(
            || "not seen".to_string(),
            |d| format!("{} ms", d.as_millis()),
        );
        println!(
            "{:<44} {:>6} {:>8} {:>9.2}% {:>14}",
            name,
            r.sent,
            r.errors_after_kill,
            100.0 * r.errors_after_kill as f64 / r.sent.max(1) as f64,
            out
        );
    }
}
