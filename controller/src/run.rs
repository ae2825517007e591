//! `pier run`: wires a source, the controller, the admin listener and the proxy together.

use crate::admin::{self, Admin};
use crate::apply::Controller;
use crate::cli::RunArgs;
use crate::settings::Settings;
use crate::source::file::FileSource;
use anyhow::Context;
use prometheus_client::registry::Registry;
use proxy::server::ServerSettings;
use proxy::ProxyState;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up waits for the first load of the manifests.
const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs pier until SIGTERM/SIGINT. `prepare` runs on the control-plane runtime before the
/// source starts (the demo starts its echo backends there).
pub fn run(
    args: RunArgs,
    prepare: impl FnOnce(&tokio::runtime::Runtime) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let settings = Settings {
        ingress_class: args.ingress_class.clone(),
        watch_namespace: args.watch_namespace.clone(),
        default_backend: args.default_backend.clone(),
        default_certificate: args.default_certificate.clone(),
    };
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pier-control")
        .enable_all()
        .build()
        .context("starting the control-plane runtime")?;
    prepare(&control)?;

    let state = Arc::new(ProxyState::default());
    let controller = Arc::new(Controller::new(state.clone(), settings));
    let mut registry = Registry::default();
    state.metrics.register(&mut registry);
    controller.metrics.register(&mut registry);
    let kube_metrics = Arc::new(crate::kube::KubeMetrics::default());
    if args.manifests.is_empty() {
        kube_metrics.register(&mut registry);
    }

    // Fail early with a clear message rather than from inside the proxy's start-up. The
    // probes stay bound until all three are checked, so two flags naming one address fail too.
    let http_probe = std::net::TcpListener::bind(args.http_listen)
        .with_context(|| format!("cannot listen on --http-listen {}", args.http_listen))?;
    let https_probe = std::net::TcpListener::bind(args.https_listen)
        .with_context(|| format!("cannot listen on --https-listen {}", args.https_listen))?;
    let admin_listener = control
        .block_on(tokio::net::TcpListener::bind(args.admin_listen))
        .with_context(|| format!("cannot listen on --admin-listen {}", args.admin_listen))?;
    drop((http_probe, https_probe));
    control.spawn(admin::serve(
        admin_listener,
        Arc::new(Admin {
            controller: controller.clone(),
            registry,
        }),
    ));

    // Without --manifests, Kubernetes. The proxy starts at once either way; with Kubernetes
    // /readyz stays 503 until every watcher has listed, as the API server may be slow.
    let kube = if args.manifests.is_empty() {
        Some(crate::kube::start_from_args(
            &control,
            &args,
            controller.clone(),
            kube_metrics,
        )?)
    } else {
        let (first_load, first_loaded) = std::sync::mpsc::channel();
        let applier = controller.clone();
        control.spawn(
            FileSource::new(args.manifests.clone()).watch(move |loaded| {
                applier.apply(loaded);
                let _ = first_load.send(());
            }),
        );
        first_loaded
            .recv_timeout(FIRST_LOAD_TIMEOUT)
            .context("the manifests were not loaded in time")?;
        None
    };

    tracing::info!(
        http = %args.http_listen,
        https = %args.https_listen,
        admin = %args.admin_listen,
        "pier is serving"
    );
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    proxy::server::run(
        &ServerSettings {
            http_listen: args.http_listen.to_string(),
            https_listen: Some(args.https_listen.to_string()),
            defer_accept: args.defer_accept,
            threads,
            shutdown_delay: args.shutdown_delay,
            shutdown_timeout: args.shutdown_timeout,
        },
        state,
        // `/readyz` says ready only from here on (and once the first table is loaded).
        || controller.mark_listening(),
    )
    .context("starting the proxy")?;
    if let Some(kube) = &kube {
        // Hand leadership over now rather than after the Lease expires.
        control.block_on(kube.shutdown());
    }
    control.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
