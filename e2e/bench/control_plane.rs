//! Control-plane figures of pier, through the file source and the Kubernetes source (the
//! minimal API server of `e2e/src/apiserver`):
//!
//! 1. start-up: process start → `/readyz` 200, and peak RSS (`VmHWM`), with 1,000 and 5,000
//!    Ingresses whose Services have 10 endpoints each;
//! 2. a new route going 404 → 200 with those routes present, idle and under a background load;
//! 3. an EndpointSlice change reaching the data plane, idle and under load;
//! 4. failed requests (non-200 and connection errors) of that load during 100 configuration
//!    changes.
//!
//! `cargo bench -p pier-e2e --bench control_plane` (uses `target/release/pier` when it exists,
//! else `target/debug/pier`; `PIER_BIN` overrides). Arguments after `--`: `--quick` (1,000
//! Ingresses only, one start-up run each, fewer samples), `--ingresses N` (only that many
//! Ingresses), `--out PATH` (default
//! `e2e/bench/results/control_plane.json`). Prints Markdown tables and writes the JSON that
//! `e2e/bench/report.py` renders into docs/benchmarks.md. Loopback only; every load is paced and
//! bounded in time. Never fails on a number.

use e2e::apiserver::{apply_yaml, resource_of};
use e2e::bench::{
    machine, spread, until_answered_by, until_status, vm_hwm_kib, BackgroundLoad, LoadReport,
    LoadSpec, Stats,
};
use e2e::manifests::{backend, ingress_class, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{ApiServer, Echo, Pier, ReadyWait};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Endpoints of every generated Service.
const ENDPOINTS_PER_SERVICE: usize = 10;
/// Ingresses per generated manifest file.
const PER_FILE: usize = 100;
/// `/readyz` polling while timing start-up.
const READY_POLL: Duration = Duration::from_millis(5);
/// Longest wait for one change to be answered.
const WITHIN: Duration = Duration::from_secs(15);
/// The background load: paced requests over a few keep-alive connections to a route that
/// exists from the start.
const LOAD_CONNECTIONS: usize = 4;
const LOAD_RATE: u64 = 2_000;
/// Hard limit of one background load (it is stopped long before in practice).
const LOAD_MAX: Duration = Duration::from_secs(180);

struct Plan {
    quick: bool,
    sizes: Vec<usize>,
    startup_runs: usize,
    samples: usize,
    changes: usize,
    out: PathBuf,
}

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let out = args
            .iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results/control_plane.json")
            });
        let ingresses = args
            .iter()
            .position(|a| a == "--ingresses")
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse::<usize>().expect("--ingresses N"));
        if quick {
            Plan {
                quick,
                sizes: vec![ingresses.unwrap_or(1_000)],
                startup_runs: 1,
                samples: 10,
                changes: 100,
                out,
            }
        } else {
            Plan {
                quick,
                sizes: ingresses.map_or(vec![1_000, 5_000], |n| vec![n]),
                startup_runs: 3,
                samples: 25,
                changes: 100,
                out,
            }
        }
    }

    fn routes(&self) -> usize {
        *self.sizes.last().expect("at least one size")
    }
}

/// The generated routes: Ingress `r-<i>` (host `r-<i>.bench`, path `/`) → Service `s-<i>`
/// with 10 endpoints on 127.2.x.y:9 (never contacted: active health checks are off by
/// default), `PER_FILE` routes per file.
fn generated_files(count: usize) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for start in (0..count).step_by(PER_FILE) {
        let mut docs = Vec::new();
        for i in start..(start + PER_FILE).min(count) {
            let endpoints: Vec<Endpoint> = (0..ENDPOINTS_PER_SERVICE)
                .map(|k| {
                    let n = (i * ENDPOINTS_PER_SERVICE + k + 1) as u32;
                    let ip = Ipv4Addr::new(127, 2, (n >> 8) as u8, (n & 0xff) as u8);
                    Endpoint::ready(SocketAddr::V4(SocketAddrV4::new(ip, 9)))
                })
                .collect();
            docs.push(backend(NAMESPACE, &format!("s-{i}"), &endpoints));
            docs.push(
                Ingress::new(NAMESPACE, &format!("r-{i}"))
                    .route(
                        &format!("r-{i}.bench"),
                        "/",
                        PathType::Prefix,
                        &format!("s-{i}"),
                    )
                    .to_yaml(),
            );
        }
        files.push((format!("gen-{start:05}.yaml"), join(&docs)));
    }
    files
}

/// The routes the measurements use: `live.bench` (under load) → Service `live`, `flip.bench`
/// → Service `flip`, both to echo backend `a` at first.
fn live_files(a: SocketAddr) -> Vec<(String, String)> {
    vec![
        ("live-svc.yaml".into(), live_service("live", a)),
        ("flip-svc.yaml".into(), live_service("flip", a)),
        (
            "live-ing.yaml".into(),
            Ingress::new(NAMESPACE, "live")
                .route("live.bench", "/", PathType::Prefix, "live")
                .route("flip.bench", "/", PathType::Prefix, "flip")
                .to_yaml(),
        ),
    ]
}

fn live_service(name: &str, to: SocketAddr) -> String {
    backend(NAMESPACE, name, &[Endpoint::ready(to)])
}

fn new_route(i: usize) -> (String, String) {
    (
        format!("new-{i}.yaml"),
        Ingress::new(NAMESPACE, &format!("new-{i}"))
            .route(&format!("new-{i}.bench"), "/", PathType::Prefix, "live")
            .to_yaml(),
    )
}

/// Where configuration changes are made.
enum Source {
    Files,
    Kube(ApiServer, kube::Client),
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Files => "files",
            Source::Kube(..) => "Kubernetes",
        }
    }

    /// Creates or replaces `yaml` at the source: an atomic file replace, or create/replace
    /// through the API server (as `kubectl apply` would).
    async fn apply(&self, pier: &Pier, file: &str, yaml: &str) {
        match self {
            Source::Files => pier.write_atomic(file, yaml),
            Source::Kube(_, client) => apply_yaml(client, yaml)
                .await
                .expect("apply through the API server"),
        }
    }
}

/// Stores every document of `files` in the API server directly (no HTTP: fast set-up).
fn populate(server: &ApiServer, files: &[(String, String)]) {
    for (_, yaml) in files {
        for document in serde_yaml::Deserializer::from_str(yaml) {
            let doc = Value::deserialize(document).expect("generated YAML");
            if doc.is_null() {
                continue;
            }
            let r = resource_of(
                doc["apiVersion"].as_str().unwrap_or_default(),
                doc["kind"].as_str().unwrap_or_default(),
            )
            .expect("known kind");
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or(NAMESPACE)
                .to_string();
            server.state().create(r, &ns, doc).expect("create object");
        }
    }
}

/// Starts pier on `files` through `kube` (the API server, populated here) or the file source.
async fn start(files: &[(String, String)], kube: Option<&ApiServer>) -> Pier {
    let wait = ReadyWait {
        timeout: Duration::from_secs(120),
        poll: READY_POLL,
    };
    match kube {
        None => {
            let refs: Vec<(&str, String)> =
                files.iter().map(|(n, y)| (n.as_str(), y.clone())).collect();
            Pier::start_timed(&refs, None, &[], wait).await
        }
        Some(server) => {
            populate(server, &[("ingressclass.yaml".into(), ingress_class())]);
            populate(server, files);
            Pier::start_timed(&[], Some(server.kubeconfig()), &[], wait).await
        }
    }
}

fn load_spec(pier: &Pier) -> LoadSpec {
    LoadSpec {
        addr: pier.http_addr(),
        host: "live.bench".into(),
        connections: LOAD_CONNECTIONS,
        rate: LOAD_RATE,
        max_duration: LOAD_MAX,
    }
}

fn load_label(loaded: bool) -> &'static str {
    if loaded {
        "under load"
    } else {
        "idle"
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    e2e::prefer_release_binary();
    let plan = Plan::from_args();
    // Whole seconds: `started_at` prints as `YYYY-MM-DDTHH:MM:SSZ`.
    let started_at = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_default();
    let pier_version = std::process::Command::new(e2e::pier_bin())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "\nControl plane of {pier_version} ({}), {} mode\n",
        e2e::pier_bin().display(),
        if plan.quick { "quick" } else { "full" }
    );

    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let a = Echo::start(ip(211), "a").await;
    let b = Echo::start(ip(212), "b").await;

    // 1. Start-up time and peak RSS.
    println!("| source | Ingresses | endpoints | runs | ready s (median, min–max) | peak RSS MiB (median) |");
    println!("|---|---|---|---|---|---|");
    let mut startup = Vec::new();
    for &size in &plan.sizes {
        let mut files = generated_files(size);
        files.extend(live_files(a.addr()));
        for kube in [false, true] {
            let mut ready = Vec::new();
            let mut rss = Vec::new();
            let mut source = "files";
            for _ in 0..plan.startup_runs {
                let server = if kube {
                    Some(ApiServer::start().await)
                } else {
                    None
                };
                let pier = start(&files, server.as_ref()).await;
                if kube {
                    source = "Kubernetes";
                }
                ready.push(pier.ready_after().as_secs_f64());
                tokio::time::sleep(Duration::from_millis(500)).await;
                rss.push(vm_hwm_kib(pier.pid()).unwrap_or(0) as f64 / 1024.0);
                drop(pier);
            }
            let (ready, rss) = (spread(&ready), spread(&rss));
            println!(
                "| {source} | {size} | {} | {} | {:.2} ({:.2}–{:.2}) | {:.1} |",
                size * ENDPOINTS_PER_SERVICE,
                plan.startup_runs,
                ready["median"].as_f64().unwrap_or(0.0),
                ready["min"].as_f64().unwrap_or(0.0),
                ready["max"].as_f64().unwrap_or(0.0),
                rss["median"].as_f64().unwrap_or(0.0),
            );
            startup.push(json!({
                "source": source,
                "ingresses": size,
                "endpoints": size * ENDPOINTS_PER_SERVICE,
                "runs": plan.startup_runs,
                "ready_s": ready,
                "peak_rss_mib": rss,
            }));
        }
    }

    // 2–4. Changes with `routes` Ingresses present, per source.
    let routes = plan.routes();
    let mut files = generated_files(routes);
    files.extend(live_files(a.addr()));
    let mut propagation = Vec::new();
    let mut under_load = Vec::new();
    println!(
        "\nPropagation with {routes} routes present: change at the source → answered accordingly (poll every 1 ms; load: {LOAD_RATE} req/s over {LOAD_CONNECTIONS} keep-alive connections)\n"
    );
    println!("| change | source | load | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut failures_table = Vec::new();
    for kube in [false, true] {
        let source = if kube {
            let server = ApiServer::start().await;
            let client = server.client();
            Source::Kube(server, client)
        } else {
            Source::Files
        };
        let server = match &source {
            Source::Kube(server, _) => Some(server),
            Source::Files => None,
        };
        let pier = start(&files, server).await;
        until_answered_by(&pier, "live.bench", "a", Instant::now(), WITHIN)
            .await
            .expect("live route");
        let mut next_route = 0;
        let mut flip_to_b = true;
        for loaded in [false, true] {
            let load = loaded.then(|| BackgroundLoad::start(&load_spec(&pier)));

            // New route 404 → 200.
            let mut samples = Vec::new();
            for _ in 0..plan.samples {
                let (file, yaml) = new_route(next_route);
                let host = format!("new-{next_route}.bench");
                next_route += 1;
                let r = pier.get(&host, "/").await.expect("request");
                assert_eq!(r.status, 404, "{host} before it exists");
                let t = Instant::now();
                source.apply(&pier, &file, &yaml).await;
                samples.push(
                    until_status(&pier, &host, 200, t, WITHIN)
                        .await
                        .expect("new route"),
                );
            }
            let stats = Stats::of(&samples);
            println!(
                "| new route (404 → 200) | {} | {} | {} |",
                source.name(),
                load_label(loaded),
                stats.cells()
            );
            propagation.push(row(
                "new route (404 → 200)",
                &source,
                routes,
                loaded,
                &stats,
            ));

            // EndpointSlice change: flip.bench from one echo backend to the other.
            let mut samples = Vec::new();
            for _ in 0..plan.samples {
                let (to, name) = if flip_to_b { (&b, "b") } else { (&a, "a") };
                flip_to_b = !flip_to_b;
                let t = Instant::now();
                source
                    .apply(&pier, "flip-svc.yaml", &live_service("flip", to.addr()))
                    .await;
                samples.push(
                    until_answered_by(&pier, "flip.bench", name, t, WITHIN)
                        .await
                        .expect("endpoint change"),
                );
            }
            let stats = Stats::of(&samples);
            println!(
                "| EndpointSlice change | {} | {} | {} |",
                source.name(),
                load_label(loaded),
                stats.cells()
            );
            propagation.push(row("EndpointSlice change", &source, routes, loaded, &stats));

            if let Some(load) = load {
                let report = load.stop().await;
                failures_table.push((source.name(), "during the samples above", report));
            }
        }

        // Failed requests during `changes` changes under load: alternately the loaded route's
        // own endpoints move to the other backend, and a new Ingress appears; each change is
        // awaited before the next.
        let load = BackgroundLoad::start(&load_spec(&pier));
        let mut live_on_b = false;
        for i in 0..plan.changes {
            let t = Instant::now();
            if i % 2 == 0 {
                live_on_b = !live_on_b;
                let (to, name) = if live_on_b { (&b, "b") } else { (&a, "a") };
                source
                    .apply(&pier, "live-svc.yaml", &live_service("live", to.addr()))
                    .await;
                until_answered_by(&pier, "live.bench", name, t, WITHIN)
                    .await
                    .expect("live endpoints change");
            } else {
                let (file, yaml) = new_route(next_route);
                let host = format!("new-{next_route}.bench");
                next_route += 1;
                source.apply(&pier, &file, &yaml).await;
                until_status(&pier, &host, 200, t, WITHIN)
                    .await
                    .expect("new route");
            }
        }
        let report = load.stop().await;
        failures_table.push((source.name(), "during the changes", report));
        under_load.push(json!({
            "source": source.name(),
            "routes": routes,
            "changes": plan.changes,
            "what": "the loaded route's endpoints moved to the other backend, and a new Ingress, alternately",
            "requests": report.requests,
            "ok": report.ok,
            "non_200": report.non_200,
            "errors": report.errors,
        }));
        drop(pier);
    }

    println!("\nBackground load ({LOAD_RATE} req/s to live.bench over {LOAD_CONNECTIONS} keep-alive connections): failed requests\n");
    println!("| source | when | requests | non-200 | connection errors |");
    println!("|---|---|---|---|---|");
    for (
        source,
        when,
        LoadReport {
            requests,
            non_200,
            errors,
            ..
        },
    ) in &failures_table
    {
        println!("| {source} | {when} | {requests} | {non_200} | {errors} |");
    }

    let out = json!({
        "schema": 1,
        "mode": if plan.quick { "quick" } else { "full" },
        "started_at_unix": started_at.as_second(),
        "started_at": started_at.to_string(),
        "machine": machine(),
        "pier": format!("{pier_version} ({})", e2e::pier_bin().display()),
        "endpoints_per_service": ENDPOINTS_PER_SERVICE,
        "routes": routes,
        "ready_poll_ms": READY_POLL.as_millis() as u64,
        "load": {
            "connections": LOAD_CONNECTIONS,
            "rate": LOAD_RATE,
            "description": format!("{LOAD_RATE} req/s of GET / over {LOAD_CONNECTIONS} keep-alive connections"),
        },
        "startup": startup,
        "propagation": propagation,
        "changes_under_load": under_load,
        "load_during_samples": failures_table
            .iter()
            .filter(|(_, when, _)| *when != "during the changes")
            .map(|(source, _, r)| json!({ "source": source, "routes": routes, "requests": r.requests, "non_200": r.non_200, "errors": r.errors }))
            .collect::<Vec<_>>(),
    });
    if let Some(dir) = plan.out.parent() {
        std::fs::create_dir_all(dir).expect("results directory");
    }
    std::fs::write(
        &plan.out,
        serde_json::to_string_pretty(&out).expect("JSON") + "\n",
    )
    .expect("write results");
    println!("\nwrote {}", plan.out.display());
}

fn row(change: &str, source: &Source, routes: usize, loaded: bool, stats: &Stats) -> Value {
    let mut v = stats.to_json();
    v["change"] = json!(change);
    v["source"] = json!(source.name());
    v["routes"] = json!(routes);
    v["load"] = json!(load_label(loaded));
    v
}
