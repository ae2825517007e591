//! `pier demo`: the quickstart, runnable anywhere without a cluster.

use crate::cli::{AccessLog, DemoArgs, LogFormat, RunArgs};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The quickstart manifests, embedded so the demo works from any directory.
pub const QUICKSTART_YAML: &str = include_str!("../../examples/quickstart/quickstart.yaml");

/// The echo backends the quickstart's EndpointSlices point at: (address, name).
pub const BACKENDS: [(&str, &str); 3] = [
    ("127.0.0.11:9001", "web-1"),
    ("127.0.0.12:9001", "web-2"),
    ("127.0.0.13:9001", "api-1"),
];

/// Where the demo's manifests live: the ones given, `examples/quickstart` when run from a
/// checkout (so edits there apply live), else the embedded copy written to a temp directory.
fn manifests(args: &DemoArgs) -> anyhow::Result<Vec<PathBuf>> {
    if !args.manifests.is_empty() {
        return Ok(args.manifests.clone());
    }
    let checkout = PathBuf::from("examples/quickstart");
    if checkout.join("quickstart.yaml").is_file() {
        return Ok(vec![checkout]);
    }
    let dir = std::env::temp_dir().join(format!("pier-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("quickstart.yaml");
    std::fs::write(&file, QUICKSTART_YAML)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(vec![dir])
}

/// Starts the echo backends and runs the proxy on the quickstart manifests.
pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let manifests = manifests(&args)?;
    let http = args.http_listen;
    let run_args = RunArgs {
        manifests: manifests.clone(),
        http_listen: http,
        https_listen: args.https_listen,
        admin_listen: args.admin_listen,
        threads: None,
        defer_accept: Duration::from_secs(1),
        ingress_class: "pier".into(),
        watch_namespace: None,
        default_backend: None,
        default_certificate: None,
        kubeconfig: None,
        publish_service: None,
        publish_status_address: None,
        election_id: "pier-leader".into(),
        election_namespace: None,
        lease_duration: Duration::from_secs(15),
        log_format: LogFormat::Text,
        access_log: AccessLog::Text,
        shutdown_delay: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(5),
    };
    let admin = args.admin_listen;
    crate::run::run(run_args, move |rt| {
        for (addr, name) in BACKENDS {
            let addr: SocketAddr = addr.parse().context("backend address")?;
            // Bind here so a taken port fails the demo at once with a clear message.
            let listener = rt
                .block_on(tokio::net::TcpListener::bind(addr))
                .with_context(|| format!("echo backend {name} cannot listen on {addr}"))?;
            rt.spawn(async move {
                if let Err(e) = crate::echo::serve_on(listener, name.to_string(), 0, 200).await {
                    tracing::error!("echo backend {name}: {e:#}");
                }
            });
        }
        let dirs: Vec<String> = manifests.iter().map(|p| p.display().to_string()).collect();
        println!(
            "\npier demo: proxy on http://{http}, admin on http://{admin}\n\
             manifests: {} (edit them: changes apply within a second)\n\n\
             try:\n  \
             curl -s -H 'Host: demo.local' http://{http}/            # web-1 / web-2 in turn\n  \
             curl -s -H 'Host: demo.local' http://{http}/api/users   # api-1 (longest path wins)\n  \
             curl -s -H 'Host: api.demo.local' http://{http}/v1      # api-1 (host routing)\n  \
             curl -si -H 'Host: nope.local' http://{http}/           # 404 from pier\n  \
             curl -s http://{admin}/debug/routes                      # the table in effect\n  \
             curl -s http://{admin}/metrics | grep ^pier_\n\n\
             Ctrl-C to stop.\n",
            dirs.join(", ")
        );
        Ok(())
    })
}
