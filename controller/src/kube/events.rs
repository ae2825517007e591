//! Diagnostics as Kubernetes Events (leader only), so `kubectl describe ingress` shows why a
//! route is missing. Each diagnostic is emitted once while it lasts (again after it went away
//! and came back, or after [`REPEAT`]), and a token bucket caps the rate so a bad rollout of
//! thousands of Ingresses cannot flood the API server.

use super::metrics::KubeMetrics;
use super::sync::Snapshot;
use crate::diagnostic::Diagnostic;
use ::kube::api::{Api, PostParams};
use ::kube::Client;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The Event reason of every diagnostic.
pub const REASON: &str = "InvalidConfiguration";
/// A diagnostic that persists is reported again after this long (Events expire after 1 h).
const REPEAT: Duration = Duration::from_secs(30 * 60);
/// Token bucket: at most this many Events in a burst…
const BURST: f64 = 25.0;
/// …refilled at this many per second.
const PER_SECOND: f64 = 1.0;
/// Retry Events held back by the rate limit this often.
const RETRY: Duration = Duration::from_secs(5);
/// Kinds with a namespace/name the API knows, and their apiVersion.
const KINDS: [(&str, &str); 4] = [
    ("Ingress", "networking.k8s.io/v1"),
    ("IngressClass", "networking.k8s.io/v1"),
    ("Service", "v1"),
    ("Secret", "v1"),
];

/// Turns diagnostics into Events.
pub struct EventRecorder {
    client: Client,
    identity: String,
    metrics: Arc<KubeMetrics>,
    /// When each (kind, object, reason) was last emitted.
    emitted: BTreeMap<Diagnostic, Instant>,
    bucket: TokenBucket,
}

impl EventRecorder {
    /// A recorder reporting as `identity` (the replica).
    pub fn new(client: Client, identity: &str, metrics: Arc<KubeMetrics>) -> EventRecorder {
        EventRecorder {
            client,
            identity: identity.to_string(),
            metrics,
            emitted: BTreeMap::new(),
            bucket: TokenBucket::new(BURST, PER_SECOND),
        }
    }

    /// Runs forever, after every rebuild while leading (and every [`RETRY`]).
    pub async fn run(
        mut self,
        mut leading: watch::Receiver<bool>,
        mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    ) {
        let mut retry = tokio::time::interval(RETRY);
        loop {
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { return },
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = retry.tick() => {}
            }
            if !*leading.borrow_and_update() {
                // A new leader starts from scratch; so will we if we lead again.
                self.emitted.clear();
                continue;
            }
            let Some(snapshot) = snapshots.borrow_and_update().clone() else {
                continue;
            };
            self.record(&snapshot).await;
        }
    }

    async fn record(&mut self, snapshot: &Snapshot) {
        // Forget what went away, so that it is reported again if it comes back.
        self.emitted
            .retain(|d, _| snapshot.diagnostics.binary_search(d).is_ok());
        for d in snapshot.diagnostics.iter() {
            let Some(api_version) = api_version(&d.kind) else {
                continue;
            };
            if self.emitted.get(d).is_some_and(|at| at.elapsed() < REPEAT) {
                continue;
            }
            if !self.bucket.take(Instant::now()) {
                // Over the limit: left for the next round.
                return;
            }
            let uid = snapshot
                .uids
                .get(&(d.kind.clone(), d.object.clone()))
                .cloned();
            let event = self.event(d, api_version, uid);
            let namespace = event.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            match api.create(&PostParams::default(), &event).await {
                Ok(_) => {
                    self.metrics.events.inc();
                    self.emitted.insert(d.clone(), Instant::now());
                }
                Err(error) => tracing::debug!(%error, object = %d.object, "cannot create Event"),
            }
        }
    }

    fn event(&self, d: &Diagnostic, api_version: &str, uid: Option<String>) -> Event {
        let (namespace, name) = match d.object.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            // Cluster-scoped objects' Events live in `default`, as kubectl expects.
            None => ("default".to_string(), d.object.clone()),
        };
        let now = Timestamp::now();
        Event {
            metadata: ObjectMeta {
                // kubectl's convention: object name, then a unique suffix.
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(api_version.to_string()),
                kind: Some(d.kind.clone()),
                name: Some(name),
                namespace: (d.kind != "IngressClass").then_some(namespace),
                uid,
                ..ObjectReference::default()
            },
            reason: Some(REASON.to_string()),
            message: Some(d.reason.clone()),
            type_: Some("Warning".to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            action: Some("Translate".to_string()),
            reporting_component: Some(crate::settings::CONTROLLER_NAME.to_string()),
            reporting_instance: Some(self.identity.clone()),
            source: Some(EventSource {
                component: Some("pier".to_string()),
                host: None,
            }),
            ..Event::default()
        }
    }
}

fn api_version(kind: &str) -> Option<&'static str> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// A token bucket: `burst` tokens, refilled continuously at `rate` per second.
#[derive(Debug, Clone)]
struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    fn new(burst: f64, rate: f64) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            burst,
            rate,
            at: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::new(3.0, 2.0);
        let t = Instant::now();
        assert!((0..3).all(|_| b.take(t)));
        assert!(!b.take(t));
        assert!(b.take(t + Duration::from_millis(500)));
        assert!(!b.take(t + Duration::from_millis(600)));
        // Never more than the burst, however long it was idle.
        let later = t + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(later)));
        assert!(!b.take(later));
    }

    #[test]
    fn only_kinds_the_api_knows_become_events() {
        assert_eq!(api_version("Ingress"), Some("networking.k8s.io/v1"));
        assert_eq!(api_version("Service"), Some("v1"));
        assert_eq!(api_version("File"), None);
        assert_eq!(api_version("Settings"), None);
    }
}
