//! Applying a loaded store: translate, publish to the proxy, report what is wrong.

use crate::diagnostic::Diagnostic;
use crate::metrics::ControlMetrics;
use crate::settings::Settings;
use crate::source::file::Loaded;
use crate::store::Store;
use crate::translate::Translator;
use arc_swap::ArcSwap;
use proxy::ProxyState;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Everything the control plane shares with the admin listener.
#[derive(Debug)]
pub struct Controller {
    /// The data plane's state (the table in effect lives there).
    pub proxy: Arc<ProxyState>,
    /// How objects are translated.
    pub settings: Settings,
    /// Control-plane metrics.
    pub metrics: ControlMetrics,
    /// Diagnostics of the last load and translation.
    pub diagnostics: ArcSwap<Vec<Diagnostic>>,
    /// What the last translation resolved, for the next one to reuse.
    translator: Mutex<Translator>,
    ready: AtomicBool,
    listening: AtomicBool,
}

impl Controller {
    /// A controller that publishes to `proxy`.
    pub fn new(proxy: Arc<ProxyState>, settings: Settings) -> Controller {
        Controller {
            proxy,
            settings,
            metrics: ControlMetrics::default(),
            diagnostics: ArcSwap::from_pointee(Vec::new()),
            translator: Mutex::new(Translator::default()),
            ready: AtomicBool::new(false),
            listening: AtomicBool::new(false),
        }
    }

    /// Whether the first complete load has been applied and the proxy's listeners accept
    /// connections (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.listening.load(Ordering::Acquire)
    }

    /// Whether the first complete load has been applied (the configuration is in effect).
    pub fn is_synced(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Records that the proxy's listeners accept connections.
    pub fn mark_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// Translates a load, publishes the table if it changed and logs the diagnostics that
    /// appeared or went away since the previous load.
    pub fn apply(&self, loaded: Loaded) {
        self.apply_store(&loaded.store, loaded.diagnostics);
    }

    /// Like [`Controller::apply`], for a source that keeps its Store and only lends it
    /// (Kubernetes: copying 50,000 endpoints per rebuild would cost more than translating).
    /// `extra` holds the source's own diagnostics.
    pub fn apply_store(&self, store: &Store, extra: Vec<Diagnostic>) {
        self.metrics.reloads.inc();
        let started = Instant::now();
        let (table, mut diagnostics) = self
            .translator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .translate(store, &self.settings);
        diagnostics.extend(extra);
        diagnostics.sort();
        diagnostics.dedup();
        let routes: usize = table.virtual_hosts.iter().map(|v| v.routes.len()).sum();
        let hosts = table.virtual_hosts.len();
        let published = self.proxy.publish(table);
        self.metrics
            .apply_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .table_generation
            .set(i64::try_from(self.proxy.generation()).unwrap_or(i64::MAX));
        self.metrics
            .diagnostics
            .set(i64::try_from(diagnostics.len()).unwrap_or(i64::MAX));
        if published {
            tracing::info!(
                generation = self.proxy.generation(),
                hosts,
                routes,
                objects = store.len(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "routing table published"
            );
        }
        self.report(diagnostics);
        self.ready.store(true, Ordering::Release);
    }

    fn report(&self, diagnostics: Vec<Diagnostic>) {
        let previous = self.diagnostics.load();
        let before: BTreeSet<&Diagnostic> = previous.iter().collect();
        let now: BTreeSet<&Diagnostic> = diagnostics.iter().collect();
        for d in now.difference(&before) {
            tracing::warn!(kind = %d.kind, object = %d.object, "{}", d.reason);
        }
        for d in before.difference(&now) {
            tracing::info!(kind = %d.kind, object = %d.object, "resolved: {}", d.reason);
        }
        self.diagnostics.store(Arc::new(diagnostics));
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
