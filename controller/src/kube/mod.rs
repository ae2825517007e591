//! The Kubernetes source and the cluster-facing side of the controller (design.md §1, §6):
//! watchers that fill a [`crate::store::Store`] ([`source`]), coalesced rebuilds through the
//! same [`crate::apply::Controller`] path as the file source ([`sync`], [`coalesce`]), and,
//! on the elected leader only ([`leader`]), Ingress status ([`status`]) and Events ([`events`]).

pub mod backoff;
pub mod client;
pub mod coalesce;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod source;
pub mod status;
pub mod sync;

use crate::apply::Controller;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use client::{connect, ClientError};
pub use metrics::KubeMetrics;

/// Everything the Kubernetes side needs from the command line.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// Only watch namespaced objects in this namespace (cluster-wide when `None`).
    pub watch_namespace: Option<String>,
    /// Where the status addresses come from.
    pub publish: status::Publish,
    /// Name of the coordination.k8s.io/v1 Lease used for leader election.
    pub election_id: String,
    /// Namespace of that Lease.
    pub election_namespace: String,
    /// This replica's identity in the Lease.
    pub identity: String,
    /// How long a Lease is valid without renewal; take-over after a crash takes about this long.
    pub lease_duration: Duration,
}

/// A running Kubernetes side; [`KubeHandle::shutdown`] gives up leadership at exit so another
/// replica takes over at once instead of after the Lease expires.
#[derive(Debug)]
pub struct KubeHandle {
    elector: Arc<leader::LeaderElector>,
    leading: watch::Receiver<bool>,
}

impl KubeHandle {
    /// Whether this replica currently holds the Lease.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Releases the Lease if this replica holds it (best effort, bounded in time).
    pub async fn shutdown(&self) {
        if self.is_leader() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.elector.release()).await;
        }
    }
}

/// Starts the watchers, the sync loop, leader election, the status writer and the event
/// recorder on the current tokio runtime. Returns at once: `/readyz` turns 200 when every
/// watcher has its initial list and the first table is in effect.
pub fn start(
    client: ::kube::Client,
    controller: Arc<Controller>,
    metrics: Arc<KubeMetrics>,
    options: KubeOptions,
) -> KubeHandle {
    let (changes_tx, changes_rx) = tokio::sync::mpsc::channel(source::CHANNEL_CAPACITY);
    source::spawn_watchers(&client, options.watch_namespace.as_deref(), changes_tx);
    let (snapshot_tx, snapshot_rx) = watch::channel(None);
    tokio::spawn(sync::run(
        changes_rx,
        controller,
        metrics.clone(),
        snapshot_tx,
    ));

    let elector = Arc::new(leader::LeaderElector::new(
        client.clone(),
        &options.election_namespace,
        &options.election_id,
        &options.identity,
        options.lease_duration,
    ));
    let (leading_tx, leading_rx) = watch::channel(false);
    tokio::spawn(elector.clone().run(leading_tx, metrics.clone()));
    tokio::spawn(
        status::StatusWriter::new(client.clone(), options.publish.clone(), metrics.clone())
            .run(leading_rx.clone(), snapshot_rx.clone()),
    );
    tokio::spawn(
        events::EventRecorder::new(client, &options.identity, metrics)
            .run(leading_rx.clone(), snapshot_rx),
    );
    KubeHandle {
        elector,
        leading: leading_rx,
    }
}

/// `pier run` without `--manifests`: connects with `--kubeconfig` (else in-cluster) and
/// starts the Kubernetes side on `runtime`. Fails only when no client can be built; an
/// unreachable API server is retried in the background while `/readyz` stays 503.
pub fn start_from_args(
    runtime: &tokio::runtime::Runtime,
    args: &crate::cli::RunArgs,
    controller: Arc<Controller>,
    metrics: Arc<KubeMetrics>,
) -> Result<KubeHandle, ClientError> {
    let client = runtime.block_on(connect(args.kubeconfig.as_deref()))?;
    let publish = match (&args.publish_service, &args.publish_status_address) {
        (Some(service), _) => match service.split_once('/') {
            Some((namespace, name)) => status::Publish::Service {
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            None => status::Publish::Service {
                namespace: client.default_namespace().to_string(),
                name: service.clone(),
            },
        },
        (None, Some(addresses)) => status::Publish::Addresses(status::parse_addresses(addresses)),
        (None, None) => status::Publish::Nothing,
    };
    let options = KubeOptions {
        watch_namespace: args.watch_namespace.clone(),
        publish,
        election_id: args.election_id.clone(),
        election_namespace: args
            .election_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string()),
        identity: identity(),
        lease_duration: args.lease_duration,
    };
    tracing::info!(
        namespace = options.watch_namespace.as_deref().unwrap_or("(all)"),
        lease = %format!("{}/{}", options.election_namespace, options.election_id),
        identity = %options.identity,
        "watching Kubernetes"
    );
    let _entered = runtime.enter();
    Ok(start(client, controller, metrics, options))
}

/// `POD_NAME` (set from the downward API in the Deployment), else host name and process id,
/// so that two processes on one machine are two candidates.
fn identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME") {
        if !name.is_empty() {
            return name;
        }
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pier".to_string());
    format!("{host}-{}", std::process::id())
}
