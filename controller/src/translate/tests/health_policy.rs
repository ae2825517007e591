//! Health checks, outlier ejection, timeouts and retries: annotations, the BackendPolicy
//! fields, defaults and rejected values.

use super::lb_policy::{annotate_service, backend_policy, base, ingress, policy_with};
use proxy::table::{ActiveCheck, HealthPolicy, OutlierPolicy, UpstreamPolicy};
use std::time::Duration;

#[test]
fn defaults_have_no_active_checks_but_eject_and_retry() {
    let mut store = base();
    ingress(&[]).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(policy.health, HealthPolicy::default());
    assert_eq!(policy.health.outlier.consecutive_failures, 5);
    assert_eq!(policy.health.outlier.max_ejection_percent, 50);
    assert_eq!(policy.upstream, UpstreamPolicy::default());
    assert_eq!(policy.upstream.retries, 2);
}

#[test]
fn annotations_configure_every_setting() {
    let mut store = base();
    ingress(&[
        ("health-check-path", "/healthz"),
        ("health-check-interval", "2s"),
        ("health-check-timeout", "500ms"),
        ("health-check-healthy-threshold", "3"),
        ("health-check-unhealthy-threshold", "4"),
        ("consecutive-failures", "7"),
        ("max-ejection-percent", "30"),
        ("connect-timeout", "250ms"),
        ("read-timeout", "10s"),
        ("retries", "5"),
    ])
    .insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        policy.health.active,
        Some(ActiveCheck {
            path: Some("/healthz".into()),
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            healthy_threshold: 3,
            unhealthy_threshold: 4,
        })
    );
    assert_eq!(policy.health.outlier.consecutive_failures, 7);
    assert_eq!(policy.health.outlier.max_ejection_percent, 30);
    assert_eq!(
        policy.upstream,
        UpstreamPolicy {
            connect_timeout: Duration::from_millis(250),
            read_timeout: Duration::from_secs(10),
            retries: 5,
        }
    );
}

#[test]
fn any_check_annotation_without_a_path_is_a_tcp_check_with_defaults() {
    let mut store = base();
    annotate_service(&mut store, &[("health-check-interval", "3s")]);
    ingress(&[]).insert(&mut store);
    let (policy, _) = policy_with(&store);
    let check = policy.health.active.expect("checks on");
    assert_eq!(check.path, None);
    assert_eq!(check.interval, Duration::from_secs(3));
    assert_eq!(check.timeout, ActiveCheck::DEFAULT_TIMEOUT);
    assert_eq!(check.unhealthy_threshold, 2);
}

#[test]
fn invalid_values_are_diagnosed_and_the_default_applies() {
    for (key, value) in [
        ("retries", "11"),
        ("connect-timeout", "0s"),
        ("max-ejection-percent", "101"),
        ("health-check-path", "healthz"),
        ("health-check-unhealthy-threshold", "0"),
    ] {
        let mut store = base();
        ingress(&[(key, value)]).insert(&mut store);
        let (policy, diags) = policy_with(&store);
        assert_eq!(diags.len(), 1, "{key}: {diags:?}");
        assert!(diags[0].reason.contains(key), "{}", diags[0]);
        assert_eq!(policy.upstream, UpstreamPolicy::default(), "{key}");
        assert_eq!(policy.health.outlier, OutlierPolicy::default(), "{key}");
    }
}

#[test]
fn backend_policy_fields_take_precedence() {
    let mut store = base();
    backend_policy(
        &mut store,
        "p",
        "2024-01-01T00:00:00Z",
        "  targetRef: {kind: Service, name: svc}\n  healthCheck: {path: /ready, intervalSeconds: 7, \
         unhealthyThreshold: 3}\n  outlierDetection: {consecutiveFailures: 2, \
         maxEjectionPercent: 100}\n  connectTimeout: 1s\n  readTimeout: 2m\n  retries: 0\n",
    );
    ingress(&[("retries", "4"), ("health-check-path", "/other")]).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert!(diags.is_empty(), "{diags:?}");
    let check = policy.health.active.expect("checks on");
    assert_eq!(check.path.as_deref(), Some("/ready"));
    assert_eq!(check.interval, Duration::from_secs(7));
    assert_eq!(check.unhealthy_threshold, 3);
    assert_eq!(check.healthy_threshold, 1);
    assert_eq!(policy.health.outlier.consecutive_failures, 2);
    assert_eq!(policy.health.outlier.max_ejection_percent, 100);
    assert_eq!(policy.upstream.connect_timeout, Duration::from_secs(1));
    assert_eq!(policy.upstream.read_timeout, Duration::from_secs(120));
    assert_eq!(policy.upstream.retries, 0);
}
