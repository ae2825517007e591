//! The routing state shared by every request: one atomically swapped [`Router`].

use crate::metrics::ProxyMetrics;
use crate::router::Router;
use crate::table::RoutingTable;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Holds the router in effect. Publishing a new table compiles it off the hot path and swaps
/// it in with one atomic store; a request keeps the snapshot it started with.
#[derive(Debug)]
pub struct ProxyState {
    router: ArcSwap<Router>,
    generation: AtomicU64,
    /// The proxy's metrics.
    pub metrics: ProxyMetrics,
}

impl Default for ProxyState {
    fn default() -> Self {
        ProxyState {
            router: ArcSwap::from_pointee(Router::default()),
            generation: AtomicU64::new(0),
            metrics: ProxyMetrics::default(),
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
        let router = Router::new(Arc::new(table));
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
