//! Leader election over a coordination.k8s.io/v1 Lease, so that N replicas write status and
//! Events as one. Every replica serves traffic; only writes to the API need a leader.
//!
//! The algorithm is client-go's: a Lease held by another replica is taken over once it has
//! not changed for `leaseDurationSeconds` as measured by *our* clock since we first saw that
//! version (so clock skew between nodes does not matter); updates carry the resourceVersion
//! read, so two candidates racing for it cannot both win (the loser gets 409 Conflict).

use super::metrics::KubeMetrics;
use ::kube::api::{Api, PostParams};
use ::kube::Client;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

/// Campaigns for a Lease and reports whether this replica leads.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// The Lease version last seen held by someone else, and when we first saw it.
    observed: Mutex<Option<(String, Instant)>>,
}

/// What one attempt found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Leading,
    Following,
    /// The API server did not answer: keep the previous role until the renew deadline.
    Unknown,
}

impl LeaderElector {
    /// An elector for Lease `namespace/name` under `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: lease_duration.max(Duration::from_secs(1)),
            observed: Mutex::new(None),
        }
    }

    /// Campaigns forever, sending `true` on `leading` while this replica holds the Lease.
    /// A leader renews every third of the lease duration and steps down when it could not
    /// renew for two thirds of it, before anybody else may take over.
    pub async fn run(self: Arc<Self>, leading: watch::Sender<bool>, metrics: Arc<KubeMetrics>) {
        let renew_every = self.lease_duration / 3;
        let renew_deadline = self.lease_duration * 2 / 3;
        let mut last_renewed: Option<Instant> = None;
        loop {
            let outcome = self.try_acquire_or_renew().await;
            let is_leader = match outcome {
                Outcome::Leading => {
                    last_renewed = Some(Instant::now());
                    true
                }
                Outcome::Following => false,
                Outcome::Unknown => last_renewed.is_some_and(|t| t.elapsed() < renew_deadline),
            };
            if !is_leader {
                last_renewed = None;
            }
            if *leading.borrow() != is_leader {
                tracing::info!(lease = %self.name, identity = %self.identity, leader = is_leader,
                    "leadership changed");
                leading.send_replace(is_leader);
                metrics.leader.set(i64::from(is_leader));
            }
            tokio::time::sleep(renew_every).await;
        }
    }

    async fn try_acquire_or_renew(&self) -> Outcome {
        let current = match self.api.get_opt(&self.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::debug!(%error, "cannot read the leader Lease");
                return Outcome::Unknown;
            }
        };
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, 0)),
            };
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        if holder == self.identity {
            let mut renewed = spec;
            renewed.renew_time = Some(now);
            renewed.lease_duration_seconds = Some(self.duration_seconds());
            lease.spec = Some(renewed);
            return self.write(self.replace(&lease).await);
        }
        if !holder.is_empty() && !self.expired(&lease, &spec).await {
            return Outcome::Following;
        }
        let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(1);
        lease.spec = Some(self.spec(now, transitions));
        self.write(self.replace(&lease).await)
    }

    /// Whether the Lease of another holder has not changed for its duration, by our clock.
    async fn expired(&self, lease: &Lease, spec: &LeaseSpec) -> bool {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.lease_duration, Duration::from_secs);
        let mut observed = self.observed.lock().await;
        match observed.as_ref() {
            Some((seen, since)) if *seen == version => since.elapsed() >= duration,
            _ => {
                *observed = Some((version, Instant::now()));
                false
            }
        }
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, ::kube::Error> {
        self.api
            .replace(&self.name, &PostParams::default(), lease)
            .await
    }

    fn write(&self, result: Result<Lease, ::kube::Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Leading,
            // Somebody else wrote first: they lead (or will; we will see at the next read).
            Err(::kube::Error::Api(status)) if status.code == 409 => Outcome::Following,
            Err(error) => {
                tracing::debug!(%error, "cannot write the leader Lease");
                Outcome::Unknown
            }
        }
    }

    fn spec(&self, now: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Gives the Lease up (empty holder) so that another replica takes over at its next try
    /// instead of waiting for the Lease to expire. Used at shutdown.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        match self.replace(&lease).await {
            Ok(_) => tracing::info!(lease = %self.name, "leadership released"),
            Err(error) => tracing::warn!(%error, "cannot release the leader Lease"),
        }
    }
}
