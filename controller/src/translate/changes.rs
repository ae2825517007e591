//! What changed in the Store since the previous translation: each kind's map is walked
//! against a snapshot of the previous one (same key and same allocation: unchanged; the Store
//! never changes an object in place). Also keeps the EndpointSlices indexed by Service,
//! updated with the slices that changed.

use crate::store::{EndpointSlice, KeyRef, ObjectKey, Store};
use crds::BackendPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// One kind's objects as the previous translation saw them, in key order.
#[derive(Debug)]
struct Snapshot<T>(Vec<(ObjectKey, Arc<T>)>);

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Snapshot(Vec::new())
    }
}

/// An object that appeared (`old` is `None`), went away (`new` is `None`) or was replaced.
pub(crate) struct Changed<'a, T> {
    pub(crate) key: &'a ObjectKey,
    pub(crate) old: Option<&'a Arc<T>>,
    pub(crate) new: Option<&'a Arc<T>>,
}

impl<T> Snapshot<T> {
    /// Walks `current` against the snapshot, calls `changed` for every object that is new,
    /// gone or another allocation, and takes `current` as the next snapshot. Keys of
    /// unchanged objects are moved, not copied.
    fn update(
        &mut self,
        current: &BTreeMap<ObjectKey, Arc<T>>,
        mut changed: impl FnMut(Changed<'_, T>),
    ) {
        let previous = std::mem::take(&mut self.0);
        let mut next = Vec::with_capacity(current.len());
        let mut old = previous.into_iter().peekable();
        for (key, object) in current {
            while let Some((gone, o)) = old.next_if(|(k, _)| k < key) {
                changed(Changed {
                    key: &gone,
                    old: Some(&o),
                    new: None,
                });
            }
            match old.next_if(|(k, _)| k == key) {
                Some((k, o)) if Arc::ptr_eq(&o, object) => next.push((k, o)),
                Some((k, o)) => {
                    changed(Changed {
                        key: &k,
                        old: Some(&o),
                        new: Some(object),
                    });
                    next.push((k, object.clone()));
                }
                None => {
                    changed(Changed {
                        key,
                        old: None,
                        new: Some(object),
                    });
                    next.push((key.clone(), object.clone()));
                }
            }
        }
        for (gone, o) in old {
            changed(Changed {
                key: &gone,
                old: Some(&o),
                new: None,
            });
        }
        self.0 = next;
    }
}

/// An EndpointSlice with its key.
pub(crate) type SliceRef = (ObjectKey, Arc<EndpointSlice>);

/// EndpointSlices by namespace and Service (label `kubernetes.io/service-name`), each
/// Service's in key order, so a Service's slices are one lookup.
#[derive(Debug, Default)]
pub(crate) struct SliceIndex {
    by_service: HashMap<ObjectKey, Vec<SliceRef>>,
}

impl SliceIndex {
    /// The slices of Service `namespace/service`.
    pub(crate) fn of(&self, namespace: &str, service: &str) -> &[SliceRef] {
        self.by_service
            .get(&(namespace, service) as &dyn KeyRef)
            .map_or(&[], Vec::as_slice)
    }

    fn remove(&mut self, service: &ObjectKey, key: &ObjectKey) {
        if let Some(slices) = self.by_service.get_mut(service) {
            slices.retain(|(k, _)| k != key);
            if slices.is_empty() {
                self.by_service.remove(service);
            }
        }
    }

    fn insert(&mut self, service: ObjectKey, key: &ObjectKey, slice: &Arc<EndpointSlice>) {
        let slices = self.by_service.entry(service).or_default();
        let at = slices.partition_point(|(k, _)| k < key);
        slices.insert(at, (key.clone(), slice.clone()));
    }
}

/// The Service an EndpointSlice belongs to, by its label.
fn service_of(key: &ObjectKey, slice: &EndpointSlice) -> Option<ObjectKey> {
    let name = slice.service.as_ref()?;
    Some(ObjectKey::new(&key.namespace, name))
}

/// The Store as the previous translation saw it.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    ingresses: Snapshot<Ingress>,
    classes: Snapshot<IngressClass>,
    services: Snapshot<Service>,
    slices: Snapshot<EndpointSlice>,
    secrets: Snapshot<Secret>,
    policies: Snapshot<BackendPolicy>,
    /// The current EndpointSlices by Service.
    pub(crate) slice_index: SliceIndex,
}

/// What changed since the previous translation.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Ingresses that appeared, went away or were replaced: `(key, new)`.
    pub(crate) ingresses: Vec<(ObjectKey, Option<Arc<Ingress>>)>,
    /// Whether any IngressClass changed (which Ingresses are served may have).
    pub(crate) classes: bool,
    /// Services whose object, EndpointSlices or BackendPolicy changed.
    pub(crate) services: HashSet<ObjectKey>,
    /// Secrets that changed.
    pub(crate) secrets: HashSet<ObjectKey>,
}

impl Seen {
    /// Compares `store` with what was seen last time, and remembers `store`.
    pub(crate) fn update(&mut self, store: &Store) -> Changes {
        let mut changes = Changes::default();
        self.ingresses.update(&store.ingresses, |c| {
            changes.ingresses.push((c.key.clone(), c.new.cloned()));
        });
        self.classes
            .update(&store.ingress_classes, |_| changes.classes = true);
        self.services.update(&store.services, |c| {
            changes.services.insert(c.key.clone());
        });
        let index = &mut self.slice_index;
        self.slices.update(&store.endpoint_slices, |c| {
            if let Some(service) = c.old.and_then(|s| service_of(c.key, s)) {
                index.remove(&service, c.key);
                changes.services.insert(service);
            }
            if let Some(new) = c.new {
                if let Some(service) = service_of(c.key, new) {
                    index.insert(service.clone(), c.key, new);
                    changes.services.insert(service);
                }
            }
        });
        self.secrets.update(&store.secrets, |c| {
            changes.secrets.insert(c.key.clone());
        });
        self.policies.update(&store.backend_policies, |c| {
            for policy in c.old.into_iter().chain(c.new) {
                let target = &policy.spec.target_ref.name;
                changes
                    .services
                    .insert(ObjectKey::new(&c.key.namespace, target));
            }
        });
        changes
    }
}
