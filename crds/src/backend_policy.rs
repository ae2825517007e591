//! `BackendPolicy` (`pier.dev/v1alpha1`): typed load-balancing, affinity, endpoint-weight and
//! upstream settings for one Service, the typed twin of the `pier.dev/…` annotations.
//!
//! The schema validates what it can (enums, ranges, patterns); translate() validates the rest
//! and reports problems as Diagnostics and in `status.conditions`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration such as `500ms`, `30s`, `1m` or `1m30s` (units `ms`, `s`, `m`, `h`).
const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
/// `header:NAME`, `cookie:NAME`, `source-ip`, `path` or `query:NAME`.
const HASH_BY_PATTERN: &str = r"^(header:.+|cookie:.+|query:.+|source-ip|path)$";

/// Settings for how pier balances requests across one Service's endpoints.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pier.dev",
    version = "v1alpha1",
    kind = "BackendPolicy",
    plural = "backendpolicies",
    shortname = "bpol",
    namespaced,
    derive = "PartialEq",
    status = "BackendPolicyStatus",
    doc = "Load-balancing, affinity, endpoint-weight and upstream settings for one Service.",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetRef.name"}"#,
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.loadBalancer.policy"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackendPolicySpec {
    /// The Service (in the BackendPolicy's namespace) these settings apply to.
    pub target_ref: TargetRef,
    /// Balancing algorithm and its parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Stickiness of clients to endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<AffinityConfig>,
    /// A new endpoint's weight ramps from 10 % to 100 % over this duration (e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub slow_start: Option<String>,
    /// Relative weights of individual endpoints (default 1; 0 receives nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_weights: Vec<EndpointWeight>,
    /// Active health checking; present (even empty) switches checks on: HTTP GET of `path`,
    /// or a TCP connect without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Passive outlier ejection (on by default: 5 consecutive failures, at most 50 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Upstream connect timeout, e.g. `5s` (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub connect_timeout: Option<String>,
    /// Upstream read timeout, e.g. `60s` (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub read_timeout: Option<String>,
    /// Retries per request on another endpoint (default 2): connect failures always, other
    /// failures only for idempotent requests whose body was not streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub retries: Option<u32>,
}

/// The object a BackendPolicy applies to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TargetRef {
    /// Kind of the target; only `Service` is supported.
    pub kind: TargetKind,
    /// Name of the Service, in the BackendPolicy's namespace.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Kinds a BackendPolicy may target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TargetKind {
    /// A core v1 Service.
    #[default]
    Service,
}

/// Balancing algorithm and its parameters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// The algorithm (default `round-robin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<LoadBalancePolicy>,
    /// Key of `consistent-hash`: `header:NAME`, `cookie:NAME`, `source-ip`, `path`, `query:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HASH_BY_PATTERN))]
    pub hash_by: Option<String>,
    /// Bounded load for `consistent-hash`, in percent of the mean in-flight count (≥ 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100))]
    pub hash_balance_factor: Option<u32>,
}

/// The balancing algorithms, named as in the `pier.dev/load-balance` annotation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancePolicy {
    /// Smooth weighted round-robin.
    RoundRobin,
    /// Power of two choices over in-flight requests.
    LeastRequest,
    /// Consistent hashing on `hashBy`.
    ConsistentHash,
    /// Uniformly random, weight-aware.
    Random,
}

/// Stickiness of clients to endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AffinityConfig {
    /// `cookie`, `client-ip` or `none` (`none` also switches off the Service's
    /// `sessionAffinity: ClientIP`).
    #[serde(rename = "type")]
    pub type_: AffinityType,
    /// Name of the affinity cookie (default `pier-affinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))]
    pub cookie_name: Option<String>,
    /// `Max-Age` of the affinity cookie; a session cookie when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_max_age_seconds: Option<u64>,
    /// Idle timeout of a `client-ip` binding (default 10800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub client_ip_timeout_seconds: Option<u64>,
}

/// Kinds of session affinity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AffinityType {
    /// pier sets a cookie naming the endpoint and honours it.
    Cookie,
    /// The same client IP goes to the same endpoint.
    ClientIp,
    /// No affinity.
    None,
}

/// The weight of one endpoint, chosen by address or by pod name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointWeight {
    /// The endpoint's IP address (as in the EndpointSlice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The endpoint's pod name (`targetRef.name` in the EndpointSlice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Relative weight (0 receives nothing).
    #[schemars(range(max = 1000))]
    pub weight: u32,
}

/// Active health checking of the Service's endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// HTTP path to probe; a TCP connect check when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,
    /// Seconds between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: Option<u32>,
    /// Seconds before a probe counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    /// Consecutive successes that make an endpoint healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub healthy_threshold: Option<u32>,
    /// Consecutive failures that make an endpoint unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub unhealthy_threshold: Option<u32>,
}

/// Passive outlier ejection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive 5xx responses or connect errors that eject an endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive_failures: Option<u32>,
    /// Most endpoints, in percent, that may be ejected at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub max_ejection_percent: Option<u32>,
}

/// What the controller observed about a BackendPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BackendPolicyStatus {
    /// Conditions; pier writes one of type `Accepted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PolicyCondition>,
}

/// One status condition, shaped like `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCondition {
    /// Condition type, e.g. `Accepted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase machine-readable reason, e.g. `Accepted`, `TargetNotFound`, `Conflicted`.
    #[serde(default)]
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl PolicyCondition {
    /// An `Accepted` condition: `True` with reason `Accepted` when `problem` is `None`,
    /// otherwise `False` with the given reason and message.
    pub fn accepted(problem: Option<(&str, &str)>, generation: Option<i64>) -> PolicyCondition {
        let (status, reason, message) = match problem {
            None => ("True", "Accepted", "the policy is in effect"),
            Some((reason, message)) => ("False", reason, message),
        };
        PolicyCondition {
            type_: "Accepted".to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: None,
            observed_generation: generation,
        }
    }
}
