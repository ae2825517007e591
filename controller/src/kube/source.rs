//! Watchers: one kube-rs watcher per kind, each turning list/watch results into [`Change`]s
//! for the sync loop. They hold no objects themselves; the sync loop keeps the only copy, in a
//! [`crate::store::Store`] — the same type the file source fills.

use super::backoff::CappedBackoff;
use crate::store::Object;
use ::kube::api::Api;
use ::kube::runtime::watcher::{self, watcher, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::{Client, Resource};
use crds::BackendPolicy;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::NamespaceResourceScope;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Changes queued between the watchers and the sync loop; watchers wait when it is full, so
/// a slow rebuild slows the watchers instead of growing memory.
pub const CHANNEL_CAPACITY: usize = 4096;
/// Only TLS Secrets are ever fetched: other Secrets (tokens, passwords) never reach memory.
pub const SECRET_FIELD_SELECTOR: &str = "type=kubernetes.io/tls";
/// Written by `kubectl apply`: a full copy of the object, useless to us and often the largest
/// part of it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The kinds pier watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// networking.k8s.io/v1 IngressClass.
    IngressClass,
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// v1 Secret of type kubernetes.io/tls.
    Secret,
    /// pier.dev/v1alpha1 BackendPolicy (our CRD).
    BackendPolicy,
}

impl Kind {
    /// Every watched kind; the first table waits for all of them.
    pub const ALL: [Kind; 6] = [
        Kind::Ingress,
        Kind::IngressClass,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Secret,
        Kind::BackendPolicy,
    ];

    /// The kind of a stored object.
    pub fn of(object: &Object) -> Kind {
        match object {
            Object::Ingress(_) => Kind::Ingress,
            Object::IngressClass(_) => Kind::IngressClass,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Secret(_) => Kind::Secret,
            Object::BackendPolicy(_) => Kind::BackendPolicy,
        }
    }
}

/// One step of a watcher, in the order the watcher produced it.
#[derive(Debug)]
pub enum Change {
    /// A (re-)list of the kind starts: its objects follow as `InitApply`, then `InitDone`.
    Init(Kind),
    /// An object of the list in progress.
    InitApply(Object),
    /// The list is complete: it replaces everything known of the kind.
    InitDone(Kind),
    /// An object was added or modified.
    Apply(Object),
    /// An object was deleted.
    Delete(Object),
    /// The watcher failed (API server gone, 410 Gone, forbidden…) and will retry after a
    /// back-off; the objects known so far stay in use. `missing` when the resource type
    /// does not exist (404 on list: a CRD that is not installed).
    Error {
        /// The failing watcher's kind.
        kind: Kind,
        /// What went wrong.
        error: String,
        /// The API server does not know the resource type.
        missing: bool,
    },
}

/// Spawns one watcher per kind on the current runtime. Namespaced kinds are limited to
/// `namespace` when set; IngressClasses are cluster-scoped and always watched cluster-wide.
pub fn spawn_watchers(client: &Client, namespace: Option<&str>, tx: mpsc::Sender<Change>) {
    let all = watcher::Config::default();
    tokio::spawn(watch(
        scoped::<Ingress>(client, namespace),
        all.clone(),
        Kind::Ingress,
        |o| Object::Ingress(Arc::new(o)),
        tx.clone(),
    ));
    tokio::spawn(watch(
        Api::<IngressClass>::all(client.clone()),
        all.clone(),
        Kind::IngressClass,
        |o| Object::IngressClass(Arc::new(o)),
        tx.clone(),
    ));
    tokio::spawn(watch(
        scoped::<Service>(client, namespace),
        all.clone(),
        Kind::Service,
        |o| Object::Service(Arc::new(o)),
        tx.clone(),
    ));
    tokio::spawn(watch(
        scoped::<EndpointSlice>(client, namespace),
        all.clone(),
        Kind::EndpointSlice,
        |o| Object::EndpointSlice(Arc::new(o.into())),
        tx.clone(),
    ));
    tokio::spawn(watch(
        scoped::<Secret>(client, namespace),
        all.clone().fields(SECRET_FIELD_SELECTOR),
        Kind::Secret,
        |o| Object::Secret(Arc::new(o)),
        tx.clone(),
    ));
    // The CRD must be installed (examples/deploy does); until it is, this watcher fails,
    // retries, and the first table waits — a missing CRD is a broken install.
    tokio::spawn(watch(
        scoped::<BackendPolicy>(client, namespace),
        all,
        Kind::BackendPolicy,
        |o| Object::BackendPolicy(Arc::new(o)),
        tx,
    ));
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs one watcher until the sync loop goes away. kube-rs re-lists by itself after 410 Gone
/// and resumes from the last resourceVersion after a dropped connection; errors are passed on
/// (for metrics and logs) and retried after [`CappedBackoff`].
async fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: Kind,
    wrap: fn(K) -> Object,
    tx: mpsc::Sender<Change>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let stream = watcher(api, config)
        .modify(slim::<K>)
        .backoff(CappedBackoff::default());
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let change = match item {
            Ok(Event::Init) => Change::Init(kind),
            Ok(Event::InitApply(o)) => Change::InitApply(wrap(o)),
            Ok(Event::InitDone) => Change::InitDone(kind),
            Ok(Event::Apply(o)) => Change::Apply(wrap(o)),
            Ok(Event::Delete(o)) => Change::Delete(wrap(o)),
            Err(error) => Change::Error {
                kind,
                missing: matches!(&error, watcher::Error::InitialListFailed(
                    ::kube::Error::Api(status)) if status.code == 404),
                error: error.to_string(),
            },
        };
        if tx.send(change).await.is_err() {
            return;
        }
    }
}

/// Drops what pier never reads but can dwarf the rest of an object.
fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}
