//! The BackendPolicies in effect: at most one per Service (the oldest wins), each checked once
//! so its problems are reported even when no Ingress uses its Service.

use super::values;
use crate::diagnostic::Diagnostic;
use crate::store::{KeyRef, ObjectKey, Store};
use crds::{BackendPolicy, BackendPolicySpec};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Largest endpoint weight (the CRD schema's maximum); larger values are clamped.
const MAX_ENDPOINT_WEIGHT: u32 = 1000;

/// A BackendPolicy with its key.
pub(crate) type PolicyRef<'a> = (&'a ObjectKey, &'a Arc<BackendPolicy>);

/// The winning BackendPolicy of each Service that has one.
pub(crate) struct PolicyIndex<'a> {
    by_service: HashMap<ObjectKey, PolicyRef<'a>>,
}

impl<'a> PolicyIndex<'a> {
    /// Indexes the Store's BackendPolicies by target Service; conflicts, missing targets and
    /// invalid fields become Diagnostics (kind `BackendPolicy`).
    pub(crate) fn new(store: &'a Store, diagnostics: &mut Vec<Diagnostic>) -> PolicyIndex<'a> {
        let mut policies: Vec<PolicyRef<'a>> = store.backend_policies.iter().collect();
        policies.sort_by(|a, b| precedence(a).cmp(&precedence(b)));
        let mut by_service: HashMap<ObjectKey, PolicyRef<'a>> = HashMap::new();
        for (key, policy) in policies {
            let target = ObjectKey::new(&key.namespace, &policy.spec.target_ref.name);
            let report = |reason: String| Diagnostic::new("BackendPolicy", key.to_string(), reason);
            check_spec(&policy.spec, &mut |r| diagnostics.push(report(r)));
            if !store.services.contains_key(&target) {
                diagnostics.push(report(format!(
                    "spec.targetRef: Service {target} not found; the policy has no effect"
                )));
                continue;
            }
            if let Some((winner, _)) = by_service.get(&target) {
                diagnostics.push(report(format!(
                    "Service {target} is already targeted by BackendPolicy {winner}, which \
                     takes precedence (older creationTimestamp, then namespace/name); this \
                     policy is ignored"
                )));
                continue;
            }
            by_service.insert(target, (key, policy));
        }
        PolicyIndex { by_service }
    }

    /// The BackendPolicy in effect for `namespace/service`, with its key.
    pub(crate) fn get(&self, namespace: &str, service: &str) -> Option<PolicyRef<'a>> {
        if self.by_service.is_empty() {
            return None;
        }
        self.by_service
            .get(&(namespace, service) as &dyn KeyRef)
            .copied()
    }

    /// The endpoint weights for `namespace/service` (all 1 without a policy).
    pub(crate) fn weights(&self, namespace: &str, service: &str) -> EndpointWeights<'a> {
        EndpointWeights(self.get(namespace, service).map(|(_, p)| &p.spec))
    }
}

/// Conflict order, as for Ingresses: oldest first (no timestamp last), then namespace/name.
fn precedence<'a>(
    entry: &PolicyRef<'a>,
) -> (
    bool,
    Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    &'a ObjectKey,
) {
    let created = entry.1.metadata.creation_timestamp.as_ref();
    (created.is_none(), created, entry.0)
}

/// `spec.endpointWeights` of one Service's policy.
#[derive(Clone, Copy)]
pub(crate) struct EndpointWeights<'a>(Option<&'a BackendPolicySpec>);

impl EndpointWeights<'_> {
    /// The weight of the endpoint at `ip` backed by pod `pod`: an entry naming the address
    /// wins over one naming the pod; 1 when no entry matches.
    pub(crate) fn weight(&self, ip: IpAddr, pod: Option<&str>) -> u32 {
        let Some(spec) = self.0 else { return 1 };
        let by_address = spec.endpoint_weights.iter().find(|w| {
            w.pod_name.is_none()
                && w.address.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) == Some(ip)
        });
        let by_pod = || {
            spec.endpoint_weights
                .iter()
                .find(|w| w.address.is_none() && pod.is_some() && w.pod_name.as_deref() == pod)
        };
        by_address
            .or_else(by_pod)
            .map_or(1, |w| w.weight.min(MAX_ENDPOINT_WEIGHT))
    }
}

/// Reports every field the API server's schema would have refused (the file source never
/// passes through one) and every value that only translate() can judge.
fn check_spec(spec: &BackendPolicySpec, report: &mut dyn FnMut(String)) {
    let mut bad = |field: &str, value: &dyn std::fmt::Debug, why: String| {
        report(format!("{field} {value:?}: {why}; the default applies"));
    };
    if let Some(lb) = &spec.load_balancer {
        if let Some(hash_by) = lb.hash_by.as_deref() {
            if let Err(why) = values::hash_key(hash_by) {
                bad("spec.loadBalancer.hashBy", &hash_by, why);
            }
        }
        if let Some(factor) = lb.hash_balance_factor {
            if let Err(why) = values::check_balance_factor(factor) {
                bad("spec.loadBalancer.hashBalanceFactor", &factor, why);
            }
        }
    }
    if let Some(name) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.cookie_name.as_deref())
    {
        if let Err(why) = values::token(name) {
            bad("spec.affinity.cookieName", &name, why);
        }
    }
    let durations = [
        ("spec.slowStart", &spec.slow_start),
        ("spec.connectTimeout", &spec.connect_timeout),
        ("spec.readTimeout", &spec.read_timeout),
    ];
    for (field, value) in durations {
        if let Some(value) = value.as_deref() {
            if let Err(why) = values::duration(value) {
                bad(field, &value, why);
            }
        }
    }
    for (i, w) in spec.endpoint_weights.iter().enumerate() {
        let field = format!("spec.endpointWeights[{i}]");
        match (&w.address, &w.pod_name) {
            (Some(a), None) if a.parse::<IpAddr>().is_err() => report(format!(
                "{field}.address {a:?} is not an IP address; entry ignored"
            )),
            (Some(_), Some(_)) | (None, None) => report(format!(
                "{field}: set exactly one of address or podName; entry ignored"
            )),
            _ => {}
        }
    }
    let mut range = |field: &str, value: Option<u32>, min: u32, max: u32| {
        if let Some(v) = value.filter(|v| !(min..=max).contains(v)) {
            report(format!(
                "{field} {v}: must be between {min} and {max}; the default applies"
            ));
        }
    };
    if let Some(hc) = &spec.health_check {
        range(
            "spec.healthCheck.intervalSeconds",
            hc.interval_seconds,
            1,
            3600,
        );
        range(
            "spec.healthCheck.timeoutSeconds",
            hc.timeout_seconds,
            1,
            3600,
        );
        range(
            "spec.healthCheck.healthyThreshold",
            hc.healthy_threshold,
            1,
            100,
        );
        range(
            "spec.healthCheck.unhealthyThreshold",
            hc.unhealthy_threshold,
            1,
            100,
        );
    }
    if let Some(affinity) = &spec.affinity {
        let timeout = affinity.client_ip_timeout_seconds;
        let timeout = timeout.map(|t| u32::try_from(t).unwrap_or(u32::MAX));
        range("spec.affinity.clientIpTimeoutSeconds", timeout, 1, 86_400);
    }
    if let Some(od) = &spec.outlier_detection {
        range(
            "spec.outlierDetection.consecutiveFailures",
            od.consecutive_failures,
            1,
            1000,
        );
        range(
            "spec.outlierDetection.maxEjectionPercent",
            od.max_ejection_percent,
            0,
            100,
        );
    }
    range("spec.retries", spec.retries, 0, 10);
    let too_heavy = spec
        .endpoint_weights
        .iter()
        .find(|w| w.weight > MAX_ENDPOINT_WEIGHT);
    if let Some(w) = too_heavy {
        report(format!(
            "spec.endpointWeights: weight {} is above {MAX_ENDPOINT_WEIGHT}; \
             {MAX_ENDPOINT_WEIGHT} is used",
            w.weight
        ));
    }
}
