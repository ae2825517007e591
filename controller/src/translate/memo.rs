//! Resolved backends kept from one translation to the next, reused while the objects they
//! were read from are the same allocations (the Store shares objects, and a changed object is
//! always a new one). An unchanged Service thus keeps its endpoint list (same `Arc`) all the
//! way to the proxy, whose comparison and compile skip it by pointer.
//!
//! Entries hold the objects they were read from (`Arc` clones), so those cannot be mutated in
//! place (`Arc::get_mut` fails, `Arc::make_mut` copies) while an entry may still match them.

use super::backend::PortRef;
use super::changes::SliceRef;
use crate::diagnostic::Diagnostic;
use crate::store::{KeyRef, ObjectKey};
use crds::BackendPolicy;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::table::ServiceBackend;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The objects one Service port is resolved from.
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a> {
    /// The Service, when it exists.
    pub(crate) service: Option<&'a Arc<Service>>,
    /// Its EndpointSlices, in Store order.
    pub(crate) slices: &'a [SliceRef],
    /// The BackendPolicy in effect for it (its endpoint weights apply).
    pub(crate) policy: Option<&'a Arc<BackendPolicy>>,
}

/// One resolved Service port, with what it was resolved from.
#[derive(Debug)]
struct Resolved {
    port: PortRef,
    service: Option<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
    policy: Option<Arc<BackendPolicy>>,
    /// With the default policy: the policy is resolved per route.
    backend: ServiceBackend,
    /// What resolving it reported (about its EndpointSlices).
    diagnostics: Vec<Diagnostic>,
}

impl Resolved {
    /// Whether it was resolved from exactly these objects.
    fn reads(&self, inputs: &Inputs<'_>) -> bool {
        same(self.service.as_ref(), inputs.service)
            && same(self.policy.as_ref(), inputs.policy)
            && self.slices.len() == inputs.slices.len()
            && self
                .slices
                .iter()
                .zip(inputs.slices)
                .all(|(a, (_, b))| Arc::ptr_eq(a, b))
    }
}

fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Service ports resolved by earlier translations, by Service. The entries of a Service are
/// dropped as soon as it, its slices or its policy change (or go away), so deleted objects
/// are not kept alive; a translation that reuses a host does not touch them, so they are
/// not dropped for being unused.
#[derive(Debug, Default)]
pub(crate) struct BackendMemo {
    by_service: HashMap<ObjectKey, Vec<Resolved>>,
}

impl BackendMemo {
    /// Forgets the Services that changed.
    pub(crate) fn forget(&mut self, changed: &HashSet<ObjectKey>) {
        for service in changed {
            self.by_service.remove(service);
        }
    }

    /// The backend of `namespace/service:port`: the remembered one when `inputs` are the
    /// objects it was resolved from, else `resolve`'s (which reports into the Vec it gets).
    /// Either way its diagnostics are added to `diagnostics`.
    pub(crate) fn resolve(
        &mut self,
        (namespace, service, port): (&str, &str, &PortRef),
        inputs: Inputs<'_>,
        diagnostics: &mut Vec<Diagnostic>,
        resolve: impl FnOnce(&mut Vec<Diagnostic>) -> ServiceBackend,
    ) -> ServiceBackend {
        let known = self
            .by_service
            .get_mut(&(namespace, service) as &dyn KeyRef)
            .and_then(|ports| ports.iter_mut().find(|r| r.port == *port));
        if let Some(hit) = known.filter(|r| r.reads(&inputs)) {
            diagnostics.extend(hit.diagnostics.iter().cloned());
            return hit.backend.clone();
        }
        let mut found = Vec::new();
        let backend = resolve(&mut found);
        diagnostics.extend(found.iter().cloned());
        let resolved = Resolved {
            port: port.clone(),
            service: inputs.service.cloned(),
            slices: inputs.slices.iter().map(|(_, s)| Arc::clone(s)).collect(),
            policy: inputs.policy.cloned(),
            backend: backend.clone(),
            diagnostics: found,
        };
        let ports = self
            .by_service
            .entry(ObjectKey::new(namespace, service))
            .or_default();
        match ports.iter_mut().find(|r| r.port == *port) {
            Some(slot) => *slot = resolved,
            None => ports.push(resolved),
        }
        backend
    }
}
