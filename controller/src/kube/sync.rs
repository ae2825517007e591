//! The sync loop: owns the Store of the Kubernetes source, applies watcher changes to it and
//! rebuilds the table through [`Controller::apply_store`] once a burst of changes is over.
//!
//! The first table waits until every kind has completed its initial list, so pier never
//! publishes (and `/readyz` never reports) a table built from half a cluster.

use super::backoff;
use super::coalesce::Coalescer;
use super::metrics::KubeMetrics;
use super::source::{Change, Kind};
use crate::apply::Controller;
use crate::diagnostic::Diagnostic;
use crate::store::{Object, ObjectKey, Store};
use crate::translate::is_served;
use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A watcher that failed within this window counts as out of sync: it retries at least every
/// [`backoff::MAX`], so an API server that is still down keeps failing inside the window.
const ERROR_WINDOW: Duration = Duration::from_secs(backoff::MAX.as_secs() + 3);
/// How often the in-sync gauge is re-evaluated when nothing happens.
const SYNC_CHECK: Duration = Duration::from_secs(1);

/// What the leader-only writers need from one rebuild.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every Ingress in the store.
    pub ingresses: Vec<IngressView>,
    /// The diagnostics of this rebuild.
    pub diagnostics: Arc<Vec<Diagnostic>>,
    /// `(kind, namespace/name)` → uid, for the objects diagnostics can name.
    pub uids: HashMap<(String, String), String>,
}

/// One Ingress as the status writer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressView {
    /// Namespace and name.
    pub key: ObjectKey,
    /// Whether pier serves it (its class is ours); the same answer translate() used.
    pub served: bool,
    /// Its current `status.loadBalancer.ingress`.
    pub addresses: Vec<IngressLoadBalancerIngress>,
}

/// Sync-loop state: the store plus what is needed to replace a kind's objects atomically
/// after a (re-)list.
#[derive(Debug, Default)]
struct State {
    store: Store,
    listing: HashMap<Kind, Vec<Object>>,
    synced: HashSet<Kind>,
    last_error: HashMap<Kind, Instant>,
    coalescer: Coalescer,
}

/// Runs until the watchers are gone. Publishes a [`Snapshot`] after every rebuild.
pub async fn run(
    mut changes: mpsc::Receiver<Change>,
    controller: Arc<Controller>,
    metrics: Arc<KubeMetrics>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
) {
    let mut state = State::default();
    let mut check = tokio::time::interval(SYNC_CHECK);
    loop {
        let deadline = if state.synced.len() == Kind::ALL.len() {
            state.coalescer.deadline()
        } else {
            None
        };
        tokio::select! {
            change = changes.recv() => {
                let Some(change) = change else { return };
                state.handle(change, &metrics);
            }
            () = sleep_until(deadline) => {
                let first = state.coalescer.take();
                let started = Instant::now();
                let snapshot = tokio::task::block_in_place(|| state.rebuild(&controller));
                state.coalescer.rebuilt(started, Instant::now());
                if let Some(first) = first {
                    metrics.propagation_seconds.observe(first.elapsed().as_secs_f64());
                }
                snapshots.send_replace(Some(Arc::new(snapshot)));
                metrics.in_sync.set(i64::from(state.in_sync()));
            }
            _ = check.tick() => {
                metrics.in_sync.set(i64::from(state.in_sync()));
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn handle(&mut self, change: Change, metrics: &KubeMetrics) {
        let now = Instant::now();
        match change {
            Change::Init(kind) => {
                self.listing.insert(kind, Vec::new());
                return;
            }
            Change::InitApply(object) => {
                self.listing
                    .entry(Kind::of(&object))
                    .or_default()
                    .push(object);
                return;
            }
            Change::InitDone(kind) => {
                // The list replaces what the store held of this kind; objects equal to the
                // ones held keep those (a re-list after a lost watch changes little).
                let listed = self.listing.remove(&kind).unwrap_or_default();
                let mut listed_keys = HashSet::with_capacity(listed.len());
                for object in listed {
                    let object = object.with_namespace();
                    listed_keys.insert(object.key());
                    self.store.insert(object);
                }
                retain(&mut self.store, kind, |key| listed_keys.contains(key));
                if self.synced.insert(kind) {
                    tracing::info!(?kind, "initial list complete");
                }
                self.last_error.remove(&kind);
            }
            Change::Apply(object) => {
                self.last_error.remove(&Kind::of(&object));
                self.store.insert(object);
            }
            Change::Delete(object) => {
                self.last_error.remove(&Kind::of(&object));
                self.store.remove(&object);
            }
            Change::Error {
                kind: Kind::BackendPolicy,
                missing: true,
                ..
            } if !self.synced.contains(&Kind::BackendPolicy) => {
                // Without the CRD there are no BackendPolicies: serve the rest rather than
                // never becoming ready. The watcher keeps retrying and picks the CRD up later.
                tracing::warn!("the BackendPolicy CRD is not installed; serving without it");
                self.synced.insert(Kind::BackendPolicy);
            }
            Change::Error { kind, error, .. } => {
                // Log once per outage, not once per retry.
                if self.last_error.insert(kind, now).is_none() {
                    tracing::warn!(?kind, %error, "watch failed; serving the last table and retrying");
                } else {
                    tracing::debug!(?kind, %error, "watch still failing");
                }
                metrics
                    .watch_errors
                    .get_or_create(&vec![("kind".to_string(), format!("{kind:?}"))])
                    .inc();
                return;
            }
        }
        self.coalescer.note(now);
    }

    fn in_sync(&self) -> bool {
        self.synced.len() == Kind::ALL.len()
            && self
                .last_error
                .values()
                .all(|at| at.elapsed() > ERROR_WINDOW)
    }

    fn rebuild(&self, controller: &Controller) -> Snapshot {
        controller.apply_store(&self.store, Vec::new());
        snapshot(&self.store, controller)
    }
}

fn snapshot(store: &Store, controller: &Controller) -> Snapshot {
    let ingresses = store
        .ingresses
        .iter()
        .map(|(key, ingress)| IngressView {
            key: key.clone(),
            served: is_served(store, &controller.settings, key, ingress),
            addresses: ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default(),
        })
        .collect();
    let diagnostics = controller.diagnostics.load_full();
    // Only the objects diagnostics name: a uid map of every object would cost a rebuild
    // more than the translation.
    let mut uids = HashMap::new();
    for d in diagnostics.iter() {
        if let Some(uid) = uid_of(store, &d.kind, &d.object) {
            uids.insert((d.kind.clone(), d.object.clone()), uid);
        }
    }
    Snapshot {
        ingresses,
        diagnostics,
        uids,
    }
}

fn uid_of(store: &Store, kind: &str, object: &str) -> Option<String> {
    let key = match object.split_once('/') {
        Some((ns, name)) => ObjectKey::new(ns, name),
        None => ObjectKey::new("", object),
    };
    let meta = match kind {
        "Ingress" => &store.ingresses.get(&key)?.metadata,
        "IngressClass" => &store.ingress_classes.get(&key)?.metadata,
        "Service" => &store.services.get(&key)?.metadata,
        "Secret" => &store.secrets.get(&key)?.metadata,
        _ => return None,
    };
    meta.uid.clone()
}

/// Keeps only the objects of `kind` whose key passes `keep`.
fn retain(store: &mut Store, kind: Kind, keep: impl Fn(&ObjectKey) -> bool) {
    match kind {
        Kind::Ingress => store.ingresses.retain(|k, _| keep(k)),
        Kind::IngressClass => store.ingress_classes.retain(|k, _| keep(k)),
        Kind::Service => store.services.retain(|k, _| keep(k)),
        Kind::EndpointSlice => store.endpoint_slices.retain(|k, _| keep(k)),
        Kind::Secret => store.secrets.retain(|k, _| keep(k)),
        Kind::BackendPolicy => store.backend_policies.retain(|k, _| keep(k)),
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "scale_tests.rs"]
mod scale_tests;
