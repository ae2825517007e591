//! Endpoint health: active checks ([`active`], run by one [`scheduler`] for every endpoint of
//! every Service) and passive outlier ejection ([`passive`]) from the outcome of real requests.
//!
//! The state of one endpoint is a handful of atomics inside its `EndpointState`, so it
//! survives table swaps and the balancers read it without locks.

pub mod active;
pub mod passive;
pub mod probe;
pub mod scheduler;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::LazyLock;
use tokio::time::Instant;

pub use active::ActiveState;
pub use passive::PassiveState;
pub use scheduler::{CheckTarget, HealthChecker};

/// Health of one endpoint of one Service: the last verdict of active checks and the passive
/// ejection state.
#[derive(Debug)]
pub struct EndpointHealth {
    /// Results of active checks.
    pub active: ActiveState,
    /// Consecutive failures of real requests and ejection.
    pub passive: PassiveState,
}

impl EndpointHealth {
    /// A new endpoint: not yet checked, not ejected.
    pub fn new(now: Instant) -> EndpointHealth {
        EndpointHealth {
            active: ActiveState::default(),
            passive: PassiveState::new(now),
        }
    }

    /// Whether the endpoint may get new requests outside panic mode. `checked` says whether
    /// its Service has active checks (without them only ejection counts).
    pub fn routable(&self, checked: bool, now: Instant) -> bool {
        (!checked || self.active.is_healthy()) && !self.passive.is_ejected(now)
    }

    /// A snapshot for `/debug/routes`.
    pub fn view(&self, checked: bool, now: Instant) -> HealthView {
        HealthView {
            checked: checked.then(|| self.active.is_healthy()),
            ejected_for_ms: self.passive.ejected_for(now).map(|d| d.as_millis() as u64),
            ejections: self.passive.ejections(),
            consecutive_failures: self.passive.consecutive_failures(),
        }
    }
}

/// What `/debug/routes` shows about one endpoint's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthView {
    /// Verdict of active checks (`None`: the Service has none).
    pub checked: Option<bool>,
    /// Remaining ejection time, if ejected.
    pub ejected_for_ms: Option<u64>,
    /// How many times the endpoint was ejected.
    pub ejections: u32,
    /// Current run of failed requests.
    pub consecutive_failures: u32,
}

/// A change of an endpoint's state, reported in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Active checks found the endpoint healthy.
    Healthy,
    /// Active checks found the endpoint unhealthy.
    Unhealthy,
    /// Passive ejection took the endpoint out of rotation.
    Ejected,
    /// The ejection ended (time passed or an active check succeeded).
    Returned,
}

impl Transition {
    fn as_str(self) -> &'static str {
        match self {
            Transition::Healthy => "healthy",
            Transition::Unhealthy => "unhealthy",
            Transition::Ejected => "ejected",
            Transition::Returned => "returned",
        }
    }
}

/// Labels of the state-change counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransitionLabels {
    service: String,
    state: String,
}

/// Process-wide health metrics. Global because transitions are noticed deep inside the
/// balancers and the scheduler, which hold no handle to the proxy's metrics.
#[derive(Debug, Default)]
pub struct HealthMetrics {
    transitions: Family<TransitionLabels, Counter>,
    panic_picks: Counter,
    checks: Counter,
}

static METRICS: LazyLock<HealthMetrics> = LazyLock::new(HealthMetrics::default);

/// The process-wide health metrics.
pub fn metrics() -> &'static HealthMetrics {
    &METRICS
}

impl HealthMetrics {
    /// Registers the health metrics under the `pier_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pier_endpoint_state_changes",
            "Endpoint state changes (healthy, unhealthy, ejected, returned), by service",
            self.transitions.clone(),
        );
        registry.register(
            "pier_panic_picks",
            "Endpoints picked in panic mode (no healthy endpoint left in the Service)",
            self.panic_picks.clone(),
        );
        registry.register(
            "pier_health_checks",
            "Active health checks run",
            self.checks.clone(),
        );
    }

    /// Counts one pick made in panic mode.
    pub fn panic_pick(&self) {
        self.panic_picks.inc();
    }

    /// Counts one active check.
    pub fn check_ran(&self) {
        self.checks.inc();
    }

    /// Logs and counts a state change of `address` in `service`.
    pub fn report(&self, service: &str, address: SocketAddr, t: Transition) {
        tracing::info!(service, endpoint = %address, state = t.as_str(), "endpoint state changed");
        self.transitions
            .get_or_create(&TransitionLabels {
                service: service.to_string(),
                state: t.as_str().to_string(),
            })
            .inc();
    }

    /// How many transitions to `state` were counted for `service` (for tests).
    pub fn transitions(&self, service: &str, t: Transition) -> u64 {
        self.transitions
            .get_or_create(&TransitionLabels {
                service: service.to_string(),
                state: t.as_str().to_string(),
            })
            .get()
    }
}
