//! The routing state shared by every request: one atomically swapped [`Router`].

use crate::health::HealthChecker;
use crate::lb::{EndpointRegistry, EndpointView};
use crate::metrics::ProxyMetrics;
use crate::router::Router;
use crate::table::RoutingTable;
use crate::tls::TlsState;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Holds the router in effect. Publishing a new table compiles it off the hot path and swaps
/// it in with one atomic store; a request keeps the snapshot it started with.
#[derive(Debug)]
pub struct ProxyState {
    router: ArcSwap<Router>,
    /// Endpoint state carried from one table to the next; locked only while publishing.
    registry: Mutex<EndpointRegistry>,
    generation: AtomicU64,
    /// The proxy's metrics.
    pub metrics: ProxyMetrics,
    /// Certificates, HTTPS policy and backend TLS; published together with the router.
    pub tls: TlsState,
    /// Active-check targets of the table in effect, for the health scheduler.
    pub health: HealthChecker,
    /// Set on SIGTERM: `/readyz` fails so load balancers stop sending new connections.
    draining: AtomicBool,
    /// Requests being served (from the first byte read to the last written).
    requests_in_flight: Arc<AtomicU64>,
}

/// One Service's endpoints as `/debug/routes` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    /// `namespace/name:port`.
    pub service: String,
    /// Its endpoints with health, ejection and in-flight counts.
    pub endpoints: Vec<EndpointView>,
}

/// Counts one request in [`ProxyState::requests_in_flight`] until dropped.
#[derive(Debug)]
pub struct RequestGuard(Arc<AtomicU64>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for ProxyState {
    fn default() -> Self {
        ProxyState {
            router: ArcSwap::from_pointee(Router::default()),
            registry: Mutex::new(EndpointRegistry::default()),
            generation: AtomicU64::new(0),
            metrics: ProxyMetrics::default(),
            tls: TlsState::default(),
            health: HealthChecker::default(),
            draining: AtomicBool::new(false),
            requests_in_flight: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Whether two tables have the same certificates, HTTPS policies and backend protocols.
fn same_tls(a: &RoutingTable, b: &RoutingTable) -> bool {
    a.tls == b.tls
        && a.tls_hosts == b.tls_hosts
        && a.default_certificate == b.default_certificate
        && a.backend_protocols == b.backend_protocols
}

impl ProxyState {
    /// Publishes a table. Returns `false` (and changes nothing) when it equals the table in
    /// effect, so no-op updates cost nothing on the data plane.
    pub fn publish(&self, table: RoutingTable) -> bool {
        let current = self.router.load_full();
        if **current.table() == table && self.generation() > 0 {
            return false;
        }
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = EndpointRegistry::next_generation(&registry);
        let router = Router::compile(Arc::new(table), &mut next, &current);
        *registry = next.finish();
        self.health.update(registry.check_targets());
        // Certificates first: a request routed by the new table finds its host's policy.
        // Unchanged TLS parts (most changes) keep the runtime built for them.
        if !same_tls(current.table(), router.table()) || self.generation() == 0 {
            self.tls.publish(router.table());
        }
        self.router.store(Arc::new(router));
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.metrics.table_swaps.inc();
        true
    }

    /// The router in effect.
    pub fn router(&self) -> arc_swap::Guard<Arc<Router>> {
        self.router.load()
    }

    /// The table in effect.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.router.load().table().clone()
    }

    /// Marks the process as shutting down (`/readyz` then answers 503).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Counts a request until the guard is dropped.
    pub fn track_request(&self) -> RequestGuard {
        self.requests_in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.requests_in_flight.clone())
    }

    /// Requests being served right now.
    pub fn requests_in_flight(&self) -> u64 {
        self.requests_in_flight.load(Ordering::Relaxed)
    }

    /// Every backend Service of the table in effect with its endpoints' live state.
    pub fn endpoint_views(&self) -> Vec<ServiceView> {
        let mut views: Vec<ServiceView> = self
            .router()
            .balancers()
            .into_iter()
            .map(|b| ServiceView {
                service: b.id.to_string(),
                endpoints: b.endpoint_views(),
            })
            .collect();
        views.sort_by(|a, b| a.service.cmp(&b.service));
        views.dedup_by(|a, b| a.service == b.service);
        views
    }

    /// How many distinct tables have been published.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{HostMatch, HostTls, VirtualHost};

    fn table(hosts: &[&str], redirect: bool) -> RoutingTable {
        let virtual_hosts = hosts
            .iter()
            .map(|h| {
                Arc::new(VirtualHost {
                    host: HostMatch::from_rule_host(h),
                    routes: Vec::new(),
                    default_backend: None,
                })
            })
            .collect();
        RoutingTable {
            virtual_hosts,
            tls_hosts: vec![HostTls {
                host: HostMatch::from_rule_host(hosts[0]),
                ssl_redirect: redirect,
                hsts: None,
            }],
            ..RoutingTable::default()
        }
    }

    #[test]
    fn the_tls_runtime_is_rebuilt_only_when_tls_parts_change() {
        let state = ProxyState::default();
        assert!(state.publish(table(&["a.com"], true)));
        let first = state.tls.current().clone();
        assert!(first.policies.redirect_location("a.com", "/").is_some());

        // Another host, same TLS parts: the runtime is kept.
        assert!(state.publish(table(&["a.com", "b.com"], true)));
        assert!(Arc::ptr_eq(&first, &state.tls.current()));

        // The redirect changes: a new runtime that says so.
        assert!(state.publish(table(&["a.com", "b.com"], false)));
        assert!(!Arc::ptr_eq(&first, &state.tls.current()));
        let now = state.tls.current();
        assert!(now.policies.redirect_location("a.com", "/").is_none());
    }
}
