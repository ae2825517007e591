//! What translate() keeps from one run to the next: resolved backends, reused while the
//! objects they were read from are the same allocations (the Store shares objects, and a
//! changed object is always a new one), and the virtual hosts of the last table, reused when
//! a new one comes out equal. Unchanged parts thus keep their pointers all the way to the
//! proxy, whose comparison and compile skip them by pointer.
//!
//! Entries hold the objects they were read from (`Arc` clones), so those cannot be mutated in
//! place (`Arc::get_mut` fails, `Arc::make_mut` copies) while an entry may still match them.

use super::backend::{PortRef, SliceRef};
use crate::diagnostic::Diagnostic;
use crate::store::{KeyRef, ObjectKey};
use crds::BackendPolicy;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::table::{ServiceBackend, VirtualHost};
use std::collections::HashMap;
use std::sync::Arc;

/// The objects one Service port is resolved from.
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a> {
    /// The Service, when it exists.
    pub(crate) service: Option<&'a Arc<Service>>,
    /// Its EndpointSlices, in Store order.
    pub(crate) slices: &'a [SliceRef<'a>],
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
    /// The translation that last used it.
    used: u64,
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

/// Service ports resolved by earlier translations, by Service. Entries not used by the
/// latest translation are dropped, so deleted objects are not kept alive.
#[derive(Debug, Default)]
pub(crate) struct BackendMemo {
    by_service: HashMap<ObjectKey, Vec<Resolved>>,
    generation: u64,
}

impl BackendMemo {
    /// Starts a translation.
    pub(crate) fn start(&mut self) {
        self.generation += 1;
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
        let generation = self.generation;
        let known = self
            .by_service
            .get_mut(&(namespace, service) as &dyn KeyRef)
            .and_then(|ports| ports.iter_mut().find(|r| r.port == *port));
        if let Some(hit) = known.filter(|r| r.reads(&inputs)) {
            hit.used = generation;
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
            used: generation,
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

    /// Ends a translation: forgets what it did not use.
    pub(crate) fn finish(&mut self) {
        let generation = self.generation;
        self.by_service.retain(|_, ports| {
            ports.retain(|r| r.used == generation);
            !ports.is_empty()
        });
    }
}

/// Shares the virtual hosts of the previous table: a host that comes out equal keeps the
/// previous `Arc`. Both lists are sorted by host.
pub(crate) fn share_hosts(
    previous: &[Arc<VirtualHost>],
    built: Vec<VirtualHost>,
) -> Vec<Arc<VirtualHost>> {
    let mut previous = previous.iter().peekable();
    built
        .into_iter()
        .map(|host| {
            while previous.next_if(|p| p.host < host.host).is_some() {}
            match previous.next_if(|p| p.host == host.host) {
                Some(p) if **p == host => p.clone(),
                _ => Arc::new(host),
            }
        })
        .collect()
}
