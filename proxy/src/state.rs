//! The routing state shared by every request: one atomically swapped [`Router`].

use crate::lb::EndpointRegistry;
use crate::metrics::ProxyMetrics;
use crate::router::Router;
use crate::table::RoutingTable;
use crate::tls::TlsState;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

impl Default for ProxyState {
    fn default() -> Self {
        ProxyState {
            router: ArcSwap::from_pointee(Router::default()),
            registry: Mutex::new(EndpointRegistry::default()),
            generation: AtomicU64::new(0),
            metrics: ProxyMetrics::default(),
            tls: TlsState::default(),
        }
    }
}

impl ProxyState {
    /// Publishes a table. Returns `false` (and changes nothing) when it equals the table in
    /// effect, so no-op updates cost nothing on the data plane.
    pub fn publish(&self, table: RoutingTable) -> bool {
        if **self.router.load().table() == table && self.generation() > 0 {
            return false;
        }
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = EndpointRegistry::next_generation(&registry);
        let router = Router::new(Arc::new(table), &mut next);
        *registry = next.finish();
        // Certificates first: a request routed by the new table finds its host's policy.
        self.tls.publish(router.table());
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

    /// How many distinct tables have been published.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}
