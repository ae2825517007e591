//! Configuration propagation: how long from a change at the source until it is in effect on
//! the data plane, through the Kubernetes source (minimal API server) and the file source.
//!
//! `cargo bench -p pier-e2e --bench propagation` (uses `target/release/pier` when it exists,
//! else `target/debug/pier`; `PIER_BIN` overrides). Loopback only; a fixed number of changes.
//! Prints p50/p99/max; never fails on a number.

use e2e::apiserver::apply_yaml;
use e2e::bench::Stats;
use e2e::manifests::{
    backend, endpoint_slices, ingress_class, join, Endpoint, Ingress, PathType, NAMESPACE,
};
use e2e::{ApiServer, Echo, Pier};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const CHANGES: usize = 40;
const WITHIN: Duration = Duration::from_secs(10);

/// Polls every millisecond until `host` is answered by echo `name`; the time it took.
async fn until_answered_by(pier: &Pier, host: &str, name: &str, started: Instant) -> Duration {
    e2e::bench::until_answered_by(pier, host, name, started, WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn summary(label: &str, samples: Vec<Duration>) {
    println!("| {label} | {} |", Stats::of(&samples).cells());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    e2e::prefer_release_binary();
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let a = Echo::start(ip(201), "a").await;
    let b = Echo::start(ip(202), "b").await;
    let site = Ingress::new(NAMESPACE, "site")
        .route("p.bench", "/", PathType::Prefix, "svc")
        .to_yaml();

    println!("\nPropagation: change at the source → answered accordingly (poll every 1 ms)\n");
    println!("| change | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");

    // Kubernetes: EndpointSlice flips between two backends; new Ingresses go 404 → 200.
    let server = ApiServer::start().await;
    let client = server.client();
    let objects = join(&[
        ingress_class(),
        backend(NAMESPACE, "svc", &[Endpoint::ready(a.addr())]),
        site.clone(),
    ]);
    apply_yaml(&client, &objects).await.expect("create objects");
    let pier = Pier::start_kube(server.kubeconfig(), &[]).await;
    until_answered_by(&pier, "p.bench", "a", Instant::now()).await;
    let mut samples = Vec::new();
    for i in 0..CHANGES {
        let (to, name) = if i % 2 == 0 { (&b, "b") } else { (&a, "a") };
        let slice = join(&endpoint_slices(
            NAMESPACE,
            "svc",
            &[Endpoint::ready(to.addr())],
        ));
        let started = Instant::now();
        apply_yaml(&client, &slice).await.expect("update slice");
        samples.push(until_answered_by(&pier, "p.bench", name, started).await);
    }
    summary("Kubernetes: EndpointSlice update", samples);
    let mut samples = Vec::new();
    for i in 0..CHANGES {
        let host = format!("new-{i}.bench");
        let ingress = Ingress::new(NAMESPACE, &format!("new-{i}"))
            .route(&host, "/", PathType::Prefix, "svc")
            .to_yaml();
        let started = Instant::now();
        apply_yaml(&client, &ingress).await.expect("create ingress");
        let current = if CHANGES.is_multiple_of(2) { "a" } else { "b" };
        samples.push(until_answered_by(&pier, &host, current, started).await);
    }
    summary("Kubernetes: new Ingress (404 → 200)", samples);
    drop(pier);

    // Files: the same EndpointSlice flip written to a watched file.
    let pier = Pier::start(&[
        (
            "backends.yaml",
            join(&[backend(NAMESPACE, "svc", &[Endpoint::ready(a.addr())])]),
        ),
        ("site.yaml", site),
    ])
    .await;
    let mut samples = Vec::new();
    for i in 0..CHANGES {
        let (to, name) = if i % 2 == 0 { (&b, "b") } else { (&a, "a") };
        let started = Instant::now();
        pier.write_atomic(
            "backends.yaml",
            &join(&[backend(NAMESPACE, "svc", &[Endpoint::ready(to.addr())])]),
        );
        samples.push(until_answered_by(&pier, "p.bench", name, started).await);
    }
    summary("Files: EndpointSlice rewrite (atomic rename)", samples);
}
