//! The generated YAML is in sync with the types; the types parse what users write.

use super::*;
use std::path::Path;

#[test]
fn generated_yaml_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, generated) in generated() {
        let on_disk = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        assert!(
            on_disk == generated,
            "crds/{path} is stale or missing; run `cargo run -p pier-crds --bin crdgen` and \
             commit the result"
        );
    }
}

const FULL: &str = r#"
apiVersion: pier.dev/v1alpha1
kind: BackendPolicy
metadata:
  name: web
  namespace: shop
spec:
  targetRef: {kind: Service, name: web}
  loadBalancer: {policy: consistent-hash, hashBy: "header:x-user", hashBalanceFactor: 125}
  affinity: {type: cookie, cookieName: sticky, cookieMaxAgeSeconds: 3600}
  slowStart: 30s
  endpointWeights:
  - {address: 10.0.0.5, weight: 3}
  - {podName: web-1, weight: 0}
  healthCheck: {path: /healthz, intervalSeconds: 5, timeoutSeconds: 1, healthyThreshold: 2, unhealthyThreshold: 3}
  outlierDetection: {consecutiveFailures: 5, maxEjectionPercent: 50}
  connectTimeout: 2s
  readTimeout: 1m
  retries: 2
status:
  conditions:
  - {type: Accepted, status: "True", reason: Accepted, message: ok}
"#;

#[test]
fn every_field_parses() {
    let policy: BackendPolicy = serde_yaml::from_str(FULL).expect("valid BackendPolicy");
    assert_eq!(policy.metadata.name.as_deref(), Some("web"));
    let spec = &policy.spec;
    assert_eq!(spec.target_ref.kind, TargetKind::Service);
    assert_eq!(spec.target_ref.name, "web");
    let lb = spec.load_balancer.as_ref().expect("loadBalancer");
    assert_eq!(lb.policy, Some(LoadBalancePolicy::ConsistentHash));
    assert_eq!(lb.hash_by.as_deref(), Some("header:x-user"));
    assert_eq!(lb.hash_balance_factor, Some(125));
    let affinity = spec.affinity.as_ref().expect("affinity");
    assert_eq!(affinity.type_, AffinityType::Cookie);
    assert_eq!(affinity.cookie_name.as_deref(), Some("sticky"));
    assert_eq!(affinity.cookie_max_age_seconds, Some(3600));
    assert_eq!(spec.slow_start.as_deref(), Some("30s"));
    assert_eq!(spec.endpoint_weights.len(), 2);
    assert_eq!(spec.endpoint_weights[1].pod_name.as_deref(), Some("web-1"));
    let hc = spec.health_check.as_ref().expect("healthCheck");
    assert_eq!(
        (hc.interval_seconds, hc.unhealthy_threshold),
        (Some(5), Some(3))
    );
    let od = spec.outlier_detection.as_ref().expect("outlierDetection");
    assert_eq!(od.max_ejection_percent, Some(50));
    assert_eq!(spec.retries, Some(2));
    let status = policy.status.as_ref().expect("status");
    assert_eq!(status.conditions[0].type_, "Accepted");
}

#[test]
fn unknown_enum_values_are_rejected() {
    let bad = FULL.replace("consistent-hash", "fastest");
    assert!(serde_yaml::from_str::<BackendPolicy>(&bad).is_err());
    let bad = FULL.replace("kind: Service", "kind: Deployment");
    assert!(serde_yaml::from_str::<BackendPolicy>(&bad).is_err());
}

#[test]
fn accepted_condition() {
    let ok = PolicyCondition::accepted(None, Some(3));
    assert_eq!(
        (ok.status.as_str(), ok.reason.as_str()),
        ("True", "Accepted")
    );
    let bad = PolicyCondition::accepted(Some(("TargetNotFound", "no Service web")), None);
    assert_eq!(
        (bad.status.as_str(), bad.type_.as_str()),
        ("False", "Accepted")
    );
}

#[test]
fn crd_identity() {
    use kube::Resource;
    assert_eq!(BackendPolicy::api_version(&()), "pier.dev/v1alpha1");
    assert_eq!(BackendPolicy::kind(&()), "BackendPolicy");
    let crd = BackendPolicy::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("backendpolicies.pier.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
}
