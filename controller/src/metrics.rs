//! Control-plane metrics: how the configuration is applied.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Metrics of the controller.
#[derive(Debug)]
pub struct ControlMetrics {
    /// Generation of the routing table in effect.
    pub table_generation: Gauge,
    /// Time to translate the store and publish the table.
    pub apply_seconds: Histogram,
    /// Diagnostics in the last translation.
    pub diagnostics: Gauge,
    /// Loads of the sources (including no-op ones).
    pub reloads: Counter,
}

impl Default for ControlMetrics {
    fn default() -> Self {
        ControlMetrics {
            table_generation: Gauge::default(),
            apply_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            diagnostics: Gauge::default(),
            reloads: Counter::default(),
        }
    }
}

impl ControlMetrics {
    /// Registers every metric under the `pier_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pier_table_generation",
            "Generation of the routing table in effect",
            self.table_generation.clone(),
        );
        registry.register(
            "pier_config_apply_seconds",
            "Time to translate the objects and publish the routing table",
            self.apply_seconds.clone(),
        );
        registry.register(
            "pier_diagnostics",
            "Problems found in the objects at the last translation",
            self.diagnostics.clone(),
        );
        registry.register(
            "pier_config_reloads",
            "Loads of the configuration sources",
            self.reloads.clone(),
        );
    }
}
