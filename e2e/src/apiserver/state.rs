//! The objects of the test API server: JSON values with resourceVersion, uid and
//! creationTimestamp, plus the event history that watches resume from.

use super::patch;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// How many watch events are kept for watches resuming from an older resourceVersion;
/// older ones answer 410 Gone, as a compacted etcd does.
const HISTORY: usize = 10_000;

/// A resource type the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// `v1` or `group/version`.
    pub group_version: &'static str,
    /// URL name, e.g. `ingresses`.
    pub plural: &'static str,
    /// `kind`.
    pub kind: &'static str,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
    /// Has a `status` subresource: the main resource ignores status writes and `/status`
    /// writes only status.
    pub status: bool,
}

const fn rt(
    gv: &'static str,
    plural: &'static str,
    kind: &'static str,
    ns: bool,
    status: bool,
) -> ResourceType {
    ResourceType {
        group_version: gv,
        plural,
        kind,
        namespaced: ns,
        status,
    }
}

/// Every resource type served.
pub const RESOURCES: &[ResourceType] = &[
    rt("v1", "services", "Service", true, true),
    rt("v1", "secrets", "Secret", true, false),
    rt("v1", "configmaps", "ConfigMap", true, false),
    rt("v1", "events", "Event", true, false),
    rt("v1", "nodes", "Node", false, true),
    rt("networking.k8s.io/v1", "ingresses", "Ingress", true, true),
    rt(
        "networking.k8s.io/v1",
        "ingressclasses",
        "IngressClass",
        false,
        false,
    ),
    rt(
        "discovery.k8s.io/v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
    ),
    rt("coordination.k8s.io/v1", "leases", "Lease", true, false),
    rt("events.k8s.io/v1", "events", "Event", true, false),
    rt(
        "pier.dev/v1alpha1",
        "backendpolicies",
        "BackendPolicy",
        true,
        true,
    ),
];

/// Looks a resource type up by URL parts.
pub fn resource_type(group_version: &str, plural: &str) -> Option<ResourceType> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group_version == group_version && r.plural == plural)
}

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`, …).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        })
    }
}

/// One change, as sent to watches.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion it created.
    pub rv: u64,
    /// Its resource type.
    pub resource: ResourceType,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (for `DELETED`: the last state, with the new rv).
    pub object: Value,
}

type Key = (&'static str, &'static str, String, String);

/// The start of a watch: the backlog to send first, then the receiver of later changes.
pub type WatchStart = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// Changes with an rv up to this one are no longer in `history`.
    compacted: u64,
}

/// The server's objects; shared by every connection, kept across stop/start.
#[derive(Debug)]
pub struct State {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            inner: Mutex::new(Inner {
                rv: 1,
                ..Inner::default()
            }),
            changes: broadcast::channel(HISTORY).0,
        }
    }
}

fn key(r: ResourceType, namespace: &str, name: &str) -> Key {
    let namespace = if r.namespaced { namespace } else { "" };
    (
        r.group_version,
        r.plural,
        namespace.to_string(),
        name.to_string(),
    )
}

fn rv_of(object: &Value) -> Option<&str> {
    object["metadata"]["resourceVersion"].as_str()
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not wedge every other request.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Objects of `r` (in `namespace`, or all) and the current resourceVersion.
    pub fn list(&self, r: ResourceType, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, _)| k.0 == r.group_version && k.1 == r.plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| !r.namespaced || k.2 == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// One object.
    pub fn get(&self, r: ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&key(r, namespace, name))
            .cloned()
            .ok_or_else(|| not_found(r, name))
    }

    /// Creates an object (`metadata.generateName` supported).
    pub fn create(
        &self,
        r: ResourceType,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let rv = inner.rv + 1;
        let meta = &mut object["metadata"];
        if meta["name"].as_str().unwrap_or_default().is_empty() {
            let prefix = meta["generateName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::new(422, "Invalid", "metadata.name is required"));
            }
            meta["name"] = json!(format!("{prefix}{rv:05x}"));
        }
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let k = key(r, namespace, &name);
        if inner.objects.contains_key(&k) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", r.plural),
            ));
        }
        if r.namespaced {
            meta["namespace"] = json!(namespace);
        }
        meta["uid"] = json!(format!("00000000-0000-0000-0000-{rv:012x}"));
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        object["apiVersion"] = json!(r.group_version);
        object["kind"] = json!(r.kind);
        Ok(commit(&mut inner, &self.changes, r, k, object, "ADDED"))
    }

    /// Replaces an object: `PUT` on the resource (`status == false`) or on `/status`.
    /// A stale `metadata.resourceVersion` gets 409 Conflict.
    pub fn update(
        &self,
        r: ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
        status: bool,
    ) -> Result<Value, ApiError> {
        self.modify(r, namespace, name, status, |current| {
            if let Some(rv) = rv_of(&body) {
                if Some(rv) != rv_of(current) {
                    return Err(ApiError::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on {} {name:?}: the object has been modified", r.plural)));
                }
            }
            *current = body;
            Ok(())
        })
    }

    /// Patches an object: `merge` (merge, strategic-merge and apply patches) or JSON patch.
    pub fn patch(
        &self,
        r: ResourceType,
        namespace: &str,
        name: &str,
        patch: &Value,
        json_patch: bool,
        status: bool,
    ) -> Result<Value, ApiError> {
        self.modify(r, namespace, name, status, |current| {
            if json_patch {
                patch::json_patch(current, patch).map_err(|m| ApiError::new(422, "Invalid", m))
            } else {
                patch::merge(current, patch);
                Ok(())
            }
        })
    }

    /// Runs `change` on a copy of the object, then keeps what the endpoint may change:
    /// only `status` through `/status`, everything but `status` through the resource (for
    /// types with a status subresource). Unchanged objects keep their resourceVersion.
    fn modify(
        &self,
        r: ResourceType,
        namespace: &str,
        name: &str,
        status: bool,
        change: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let k = key(r, namespace, name);
        let old = inner
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| not_found(r, name))?;
        let mut edited = old.clone();
        change(&mut edited)?;
        let mut new = if status {
            let mut new = old.clone();
            new["status"] = edited.get("status").cloned().unwrap_or(Value::Null);
            new
        } else {
            if r.status {
                edited["status"] = old.get("status").cloned().unwrap_or(Value::Null);
            }
            edited
        };
        strip_nulls(&mut new);
        // Identity fields are the server's, whatever the client sent.
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
        ] {
            new["metadata"][field] = old["metadata"].get(field).cloned().unwrap_or(Value::Null);
        }
        strip_nulls(&mut new["metadata"]);
        new["apiVersion"] = json!(r.group_version);
        new["kind"] = json!(r.kind);
        if new == old {
            return Ok(old);
        }
        if !status && new.get("spec") != old.get("spec") {
            let generation = old["metadata"]["generation"].as_u64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        Ok(commit(&mut inner, &self.changes, r, k, new, "MODIFIED"))
    }

    /// Deletes an object; returns its last state.
    pub fn delete(&self, r: ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let k = key(r, namespace, name);
        let object = inner.objects.remove(&k).ok_or_else(|| not_found(r, name))?;
        Ok(commit(&mut inner, &self.changes, r, k, object, "DELETED"))
    }

    /// Starts a watch of `r` from `rv` (exclusive): the changes since then, and a receiver
    /// for the ones after. `None` or 0 starts with every current object as `ADDED`.
    /// Too old an rv is 410 Gone.
    pub fn watch(&self, r: ResourceType, rv: Option<u64>) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        // Subscribed under the lock: no change can fall between backlog and receiver.
        let receiver = self.changes.subscribe();
        let backlog = match rv.filter(|rv| *rv > 0) {
            Some(rv) if rv < inner.compacted => {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    format!("too old resource version: {rv} ({})", inner.compacted),
                ));
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|c| c.rv > rv && c.resource == r)
                .cloned()
                .collect(),
            None => inner
                .objects
                .iter()
                .filter(|(k, _)| k.0 == r.group_version && k.1 == r.plural)
                .map(|(_, o)| {
                    Arc::new(Change {
                        rv: inner.rv,
                        resource: r,
                        kind: "ADDED",
                        object: o.clone(),
                    })
                })
                .collect(),
        };
        Ok((backlog, receiver))
    }

    /// Forgets the watch history: every watch resuming from an older rv gets 410 Gone and
    /// must re-list.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }
}

fn commit(
    inner: &mut Inner,
    changes: &broadcast::Sender<Arc<Change>>,
    r: ResourceType,
    k: Key,
    mut object: Value,
    kind: &'static str,
) -> Value {
    inner.rv += 1;
    let rv = inner.rv;
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    if kind != "DELETED" {
        inner.objects.insert(k, object.clone());
    }
    let change = Arc::new(Change {
        rv,
        resource: r,
        kind,
        object: object.clone(),
    });
    if inner.history.len() >= HISTORY {
        if let Some(old) = inner.history.pop_front() {
            inner.compacted = old.rv;
        }
    }
    inner.history.push_back(change.clone());
    // No receivers is fine: nobody is watching.
    let _ = changes.send(change);
    object
}

fn not_found(r: ResourceType, name: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("{} {name:?} not found", r.plural))
}

/// Removes `null` members (merge-patch deletions leave none, but replaced objects may).
fn strip_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
