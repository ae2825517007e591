//! The balancers of a table while it is compiled: one per Service and policy, so routes
//! sharing a Service share its round-robin position; live endpoint state comes from the
//! registry. A balancer of the previous router whose Service is unchanged is carried over
//! instead of rebuilt.

use crate::lb::{RegistryBuilder, ServiceBalancer};
use crate::table::{LbPolicy, ServiceBackend};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

/// The balancers of one Service: usually one; one per policy when Ingresses route to the
/// Service with different policies.
#[derive(Debug)]
enum Slot {
    One(Arc<ServiceBalancer>),
    Many(Vec<Arc<ServiceBalancer>>),
}

impl Slot {
    fn iter(&self) -> std::slice::Iter<'_, Arc<ServiceBalancer>> {
        match self {
            Slot::One(b) => std::slice::from_ref(b).iter(),
            Slot::Many(all) => all.iter(),
        }
    }

    fn find(&self, policy: &LbPolicy) -> Option<&Arc<ServiceBalancer>> {
        self.iter().find(|b| b.policy() == policy)
    }

    fn push(&mut self, balancer: Arc<ServiceBalancer>) {
        match self {
            Slot::One(first) => *self = Slot::Many(vec![first.clone(), balancer]),
            Slot::Many(all) => all.push(balancer),
        }
    }
}

/// Balancers by service id, then policy. Keyed by id alone: hashing a whole policy for
/// every route would cost more than the rest of a reuse.
#[derive(Debug, Default)]
pub(super) struct Balancers(HashMap<Arc<str>, Slot>);

impl Balancers {
    fn get(&self, id: &str, policy: &LbPolicy) -> Option<&Arc<ServiceBalancer>> {
        self.0.get(id)?.find(policy)
    }

    /// Every balancer.
    pub(super) fn values(&self) -> impl Iterator<Item = &Arc<ServiceBalancer>> {
        self.0.values().flat_map(Slot::iter)
    }

    /// How many Services have balancers.
    pub(super) fn services(&self) -> usize {
        self.0.len()
    }
}

/// The balancers of the table being compiled.
pub(super) struct BalancerCache<'r, 'p> {
    by_id: Balancers,
    previous: &'r Balancers,
    registry: &'r mut RegistryBuilder<'p>,
}

impl<'r, 'p> BalancerCache<'r, 'p> {
    /// Starts a table; `previous` are the balancers of the router it replaces.
    pub(super) fn new(previous: &'r Balancers, registry: &'r mut RegistryBuilder<'p>) -> Self {
        BalancerCache {
            by_id: Balancers(HashMap::with_capacity(previous.services())),
            previous,
            registry,
        }
    }

    /// The balancer of `s` in this table: the one an earlier route got, else the previous
    /// router's when it can serve `s` unchanged, else a new one.
    pub(super) fn get(&mut self, s: &ServiceBackend) -> Arc<ServiceBalancer> {
        if let Some(balancer) = self.by_id.get(&s.id, &s.policy) {
            return balancer.clone();
        }
        let balancer = match self.previous.get(&s.id, &s.policy) {
            Some(previous) if previous.can_serve(s) && previous.carry_over(self.registry) => {
                previous.clone()
            }
            _ => Arc::new(ServiceBalancer::new(s, self.registry)),
        };
        self.insert(balancer.clone());
        balancer
    }

    fn insert(&mut self, balancer: Arc<ServiceBalancer>) {
        match self.by_id.0.entry(balancer.id.clone()) {
            Entry::Occupied(mut slot) => slot.get_mut().push(balancer),
            Entry::Vacant(slot) => drop(slot.insert(Slot::One(balancer))),
        }
    }

    /// Takes over a balancer of a host compiled for the previous table and reused as it is.
    /// `false` when this table already has another balancer for its Service and policy, or
    /// the balancer cannot be carried over (then the host must be compiled anew).
    pub(super) fn adopt(&mut self, balancer: &Arc<ServiceBalancer>) -> bool {
        match self.by_id.0.entry(balancer.id.clone()) {
            Entry::Occupied(mut slot) => match slot.get().find(balancer.policy()) {
                Some(held) => Arc::ptr_eq(held, balancer),
                None if balancer.carry_over(self.registry) => {
                    slot.get_mut().push(balancer.clone());
                    true
                }
                None => false,
            },
            Entry::Vacant(slot) => {
                if !balancer.carry_over(self.registry) {
                    return false;
                }
                slot.insert(Slot::One(balancer.clone()));
                true
            }
        }
    }

    /// The balancers of the table.
    pub(super) fn finish(self) -> Balancers {
        self.by_id
    }
}
