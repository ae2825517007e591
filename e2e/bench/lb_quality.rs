//! Load-balancing quality report: requests per endpoint and latency per policy, with one
//! endpoint ten times slower than the others.
//!
//! `cargo bench -p pier-e2e --bench lb_quality` (uses `target/release/pier` when it exists,
//! else `target/debug/pier`; `PIER_BIN` overrides). Loopback only; bounded in requests.
//! Prints a table; never fails on a number.

use e2e::manifests::{backend, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{Echo, HttpClient, Pier};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 150;
const FAST_MS: u64 = 2;
const SLOW_MS: u64 = 20;

struct Outcome {
    per_endpoint: BTreeMap<String, usize>,
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

async fn load(pier: &Pier, host: &'static str) -> Outcome {
    let addr: SocketAddr = pier.http_addr();
    let client = Arc::new(HttpClient::new());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for r in 0..REQUESTS_PER_CLIENT {
                // 200 distinct users for the hash policies.
                let user = format!("user-{}", (c * REQUESTS_PER_CLIENT + r) % 200);
                let t = Instant::now();
                let reply = client
                    .request(
                        http::Method::GET,
                        addr,
                        Some(host),
                        "/",
                        &[("x-user", &user)],
                        bytes::Bytes::new(),
                    )
                    .await;
                let took = t.elapsed();
                seen.push((
                    reply
                        .ok()
                        .filter(|r| r.status == 200)
                        .and_then(|r| r.echo_name()),
                    took,
                ));
            }
            seen
        }));
    }
    let mut outcome = Outcome {
        per_endpoint: BTreeMap::new(),
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        for (name, took) in t.await.expect("client task") {
            match name {
                Some(n) => *outcome.per_endpoint.entry(n).or_default() += 1,
                None => outcome.errors += 1,
            }
            outcome.latencies.push(took);
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies.sort();
    outcome
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    e2e::prefer_release_binary();
    let mut echoes = Vec::new();
    for (i, delay) in [FAST_MS, FAST_MS, FAST_MS, SLOW_MS].iter().enumerate() {
        let ip = Ipv4Addr::new(127, 0, 0, 111 + i as u8);
        let name = if *delay == SLOW_MS {
            "slow".to_string()
        } else {
            format!("fast-{}", i + 1)
        };
        let addr = SocketAddr::from((ip, e2e::free_port_on(ip)));
        echoes.push(Echo::start_with(addr, &name, *delay, 200).await);
    }
    let endpoints: Vec<Endpoint> = echoes.iter().map(|e| Endpoint::ready(e.addr())).collect();
    let policies: [(&str, &[(&str, &str)]); 5] = [
        ("round-robin", &[("pier.dev/load-balance", "round-robin")]),
        (
            "least-request",
            &[("pier.dev/load-balance", "least-request")],
        ),
        ("random", &[("pier.dev/load-balance", "random")]),
        (
            "consistent-hash",
            &[
                ("pier.dev/load-balance", "consistent-hash"),
                ("pier.dev/hash-by", "header:x-user"),
            ],
        ),
        (
            "consistent-hash+bound125",
            &[
                ("pier.dev/load-balance", "consistent-hash"),
                ("pier.dev/hash-by", "header:x-user"),
                ("pier.dev/hash-balance-factor", "125"),
            ],
        ),
    ];
    println!(
        "\nLoad-balancing quality: 3 endpoints answering in {FAST_MS} ms, 1 in {SLOW_MS} ms; \
         {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests, keep-alive\n"
    );
    println!(
        "| policy | fast-1 | fast-2 | fast-3 | slow | slow share | mean ms | p50 ms | p90 ms | p99 ms | req/s | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (policy, annotations) in policies {
        let mut ingress =
            Ingress::new(NAMESPACE, "lb").route("lb.bench", "/", PathType::Prefix, "pool");
        for (k, v) in annotations {
            ingress = ingress.annotation(k, v);
        }
        let pier = Pier::start(&[
            (
                "backends.yaml",
                join(&[backend(NAMESPACE, "pool", &endpoints)]),
            ),
            ("ingress.yaml", ingress.to_yaml()),
        ])
        .await;
        let o = load(&pier, "lb.bench").await;
        let total: usize = o.per_endpoint.values().sum();
        let get = |n: &str| o.per_endpoint.get(n).copied().unwrap_or(0);
        println!(
            "| {policy} | {} | {} | {} | {} | {:.1} % | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            get("fast-1"),
            get("fast-2"),
            get("fast-3"),
            get("slow"),
            100.0 * get("slow") as f64 / total.max(1) as f64,
            o.latencies.iter().map(|d| d.as_secs_f64()).sum::<f64>() * 1000.0
                / o.latencies.len().max(1) as f64,
            percentile(&o.latencies, 0.50),
            percentile(&o.latencies, 0.90),
            percentile(&o.latencies, 0.99),
            o.latencies.len() as f64 / o.elapsed.as_secs_f64(),
            o.errors,
        );
    }
}
