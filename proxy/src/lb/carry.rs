//! Carrying a balancer over to the next table: while its Service is unchanged the balancer
//! (with its round-robin position) is kept instead of rebuilt, and what it keeps in the
//! registry is recorded there as a new balancer would record it.

use super::{LbEndpoint, RegistryBuilder, ServiceBalancer};
use crate::table::{Affinity, ServiceBackend};
use std::sync::Arc;

/// What a Maglev table is built from: the routable endpoints' addresses and weights.
pub(super) fn maglev_inputs(routable: &[LbEndpoint]) -> Vec<(String, u32)> {
    routable
        .iter()
        .map(|e| (e.address.to_string(), e.weight))
        .collect()
}

impl ServiceBalancer {
    /// Whether this balancer, built for an earlier table, serves `backend` exactly as a new
    /// one would: same Service, policy, endpoints and conditions. Endpoint lists are compared
    /// by pointer first: an unchanged Service usually hands the next table the same list.
    pub fn can_serve(&self, backend: &ServiceBackend) -> bool {
        self.id == backend.id
            && self.policy == backend.policy
            && self.unavailable == backend.unavailable
            && (Arc::ptr_eq(&self.source, &backend.endpoints) || self.source == backend.endpoints)
    }

    /// Records this balancer's state in the registry of the table it is carried over to, as
    /// building it anew would: endpoint states, its Maglev table, client-IP bindings and
    /// active-check targets. `false` (the balancer must not be carried over; build a new one)
    /// when the new registry already holds another Maglev or client-IP table for the Service.
    pub fn carry_over(&self, registry: &mut RegistryBuilder<'_>) -> bool {
        let routable = &self.endpoints[..self.routable];
        if let Some(table) = &self.maglev {
            let same = registry
                .maglev(&self.id, maglev_inputs(routable))
                .is_some_and(|t| Arc::ptr_eq(&t, table));
            if !same {
                return false;
            }
        }
        if let (Some(Affinity::ClientIp { timeout }), Some(table)) =
            (&self.policy.affinity, &self.client_ip)
        {
            if !Arc::ptr_eq(&registry.client_ip(&self.id, *timeout), table) {
                return false;
            }
        }
        super::outcome::register_checks(&self.id, &self.policy, routable, registry);
        if self.distinct && registry.share(&self.id, self.endpoints.len()) {
            return true;
        }
        let mut states = registry.service(&self.id);
        for e in &self.endpoints {
            states.keep(e.address, &e.state);
        }
        true
    }
}
