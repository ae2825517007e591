//! Metrics of the Kubernetes side: sync state, propagation latency, leadership, writes.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Metrics of the Kubernetes source, status writer, leader election and event recorder.
#[derive(Debug)]
pub struct KubeMetrics {
    /// 1 while every watcher has listed and none failed recently; 0 while the API server is
    /// unreachable (the last table keeps serving).
    pub in_sync: Gauge,
    /// Watch errors by kind.
    pub watch_errors: Family<Vec<(String, String)>, Counter>,
    /// From the first change of a burst reaching pier to the table built from it in effect.
    pub propagation_seconds: Histogram,
    /// 1 on the replica holding the Lease.
    pub leader: Gauge,
    /// Ingress status patches sent.
    pub status_updates: Counter,
    /// Kubernetes Events created from diagnostics.
    pub events: Counter,
}

impl Default for KubeMetrics {
    fn default() -> Self {
        KubeMetrics {
            in_sync: Gauge::default(),
            watch_errors: Family::default(),
            // 1 ms .. ~65 s.
            propagation_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            leader: Gauge::default(),
            status_updates: Counter::default(),
            events: Counter::default(),
        }
    }
}

impl KubeMetrics {
    /// Registers every metric under the `pier_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pier_kube_in_sync",
            "Whether the Kubernetes watchers are listed and healthy (1) or not (0)",
            self.in_sync.clone(),
        );
        registry.register(
            "pier_kube_watch_errors",
            "Errors of the Kubernetes watchers, by kind",
            self.watch_errors.clone(),
        );
        registry.register(
            "pier_config_propagation_seconds",
            "Time from a Kubernetes change reaching pier to the routing table built from it in effect",
            self.propagation_seconds.clone(),
        );
        registry.register(
            "pier_leader",
            "Whether this replica holds the leader Lease (1) or not (0)",
            self.leader.clone(),
        );
        registry.register(
            "pier_status_updates",
            "Ingress status patches sent",
            self.status_updates.clone(),
        );
        registry.register(
            "pier_kube_events",
            "Kubernetes Events created from diagnostics",
            self.events.clone(),
        );
    }
}
