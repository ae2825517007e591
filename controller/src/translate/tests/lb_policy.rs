//! Load-balancing policy: every annotation, the BackendPolicy CRD, precedence, ClientIP
//! affinity and endpoint weights.

use super::*;
use crate::source::manifest::parse_manifest;
use crate::store::ObjectKey;
use proxy::table::{Affinity, Algorithm, HashKey, LbPolicy};
use std::time::Duration;

/// `default/web` routes `foo.com/` to Service `default/svc:80`, which has one ready endpoint.
pub(super) fn base() -> Store {
    let mut store = Store::default();
    service(&mut store, "default", "svc", &[(None, 80)]);
    SliceBuilder::new("default", "svc-1", "svc")
        .port(None, 8080)
        .endpoint(&["10.0.0.1"], READY)
        .insert(&mut store);
    store
}

pub(super) fn ingress(annotations: &[(&str, &str)]) -> IngressBuilder {
    let mut b = IngressBuilder::new("default", "web").rule("foo.com", "/", "Prefix", "svc", 80);
    for (k, v) in annotations {
        b = b.annotation(&format!("pier.dev/{k}"), v);
    }
    b
}

pub(super) fn annotate_service(store: &mut Store, annotations: &[(&str, &str)]) {
    let svc = store
        .services
        .get_mut(&ObjectKey::new("default", "svc"))
        .expect("service exists");
    let map = std::sync::Arc::make_mut(svc)
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    for (k, v) in annotations {
        map.insert(format!("pier.dev/{k}"), v.to_string());
    }
}

/// Adds a BackendPolicy parsed from YAML (`spec` is the body under `spec:`, indented 2).
pub(super) fn backend_policy(store: &mut Store, name: &str, created: &str, spec: &str) {
    let yaml = format!(
        "apiVersion: pier.dev/v1alpha1\nkind: BackendPolicy\nmetadata:\n  name: {name}\n  \
         namespace: default\n  creationTimestamp: \"{created}\"\nspec:\n{spec}"
    );
    for object in parse_manifest(&yaml).expect("valid BackendPolicy YAML") {
        store.insert(object);
    }
}

/// The policy of the backend of `foo.com/` and all Diagnostics.
pub(super) fn policy_with(store: &Store) -> (LbPolicy, Vec<Diagnostic>) {
    let (table, diags) = run(store);
    (prefix_backend(&table, "foo.com", "/").policy.clone(), diags)
}

/// The policy for the Ingress annotations alone; asserts there is no Diagnostic.
fn clean_policy(annotations: &[(&str, &str)]) -> LbPolicy {
    let mut store = base();
    ingress(annotations).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert_eq!(diags, vec![], "{annotations:?}");
    policy
}

/// The policy for the Ingress annotations, which must yield exactly one Diagnostic on the
/// Ingress naming `key`.
fn rejected(annotations: &[(&str, &str)], key: &str) -> LbPolicy {
    let mut store = base();
    ingress(annotations).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert_eq!(diags.len(), 1, "{annotations:?}: {diags:?}");
    assert_eq!(
        (diags[0].kind.as_str(), diags[0].object.as_str()),
        ("Ingress", "default/web")
    );
    assert!(diags[0].reason.contains(key), "{}", diags[0]);
    policy
}

fn hash(key: HashKey, balance_factor: Option<u32>) -> Algorithm {
    Algorithm::ConsistentHash {
        key,
        balance_factor,
    }
}

#[test]
fn default_is_round_robin_without_affinity() {
    assert_eq!(clean_policy(&[]), LbPolicy::default());
    assert_eq!(LbPolicy::default().algorithm, Algorithm::RoundRobin);
}

#[test]
fn every_load_balance_value() {
    let cases = [
        ("round-robin", Algorithm::RoundRobin),
        ("least-request", Algorithm::LeastRequest),
        ("random", Algorithm::Random),
    ];
    for (value, algorithm) in cases {
        assert_eq!(
            clean_policy(&[("load-balance", value)]).algorithm,
            algorithm
        );
    }
    for bad in ["ewma", "Random", "round_robin", ""] {
        let policy = rejected(&[("load-balance", bad)], "pier.dev/load-balance");
        assert_eq!(policy.algorithm, Algorithm::RoundRobin, "{bad:?}");
    }
}

#[test]
fn every_hash_by_value() {
    let cases = [
        ("header:X-User", HashKey::Header("x-user".into())),
        ("cookie:session", HashKey::Cookie("session".into())),
        ("source-ip", HashKey::SourceIp),
        ("path", HashKey::Path),
        ("query:user", HashKey::Query("user".into())),
    ];
    for (value, key) in cases {
        let policy = clean_policy(&[("load-balance", "consistent-hash"), ("hash-by", value)]);
        assert_eq!(policy.algorithm, hash(key, None), "{value}");
    }
}

#[test]
fn consistent_hash_without_a_valid_key_is_round_robin_with_a_diagnostic() {
    let policy = rejected(&[("load-balance", "consistent-hash")], "hash-by");
    assert_eq!(policy.algorithm, Algorithm::RoundRobin);

    let mut store = base();
    ingress(&[("load-balance", "consistent-hash"), ("hash-by", "body")]).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert_eq!(policy.algorithm, Algorithm::RoundRobin);
    assert!(
        diags
            .iter()
            .any(|d| d.reason.contains("pier.dev/hash-by \"body\"")),
        "{diags:?}"
    );
    assert!(diags.iter().all(|d| d.object == "default/web"), "{diags:?}");
}

#[test]
fn hash_balance_factor() {
    let base_annotations = [("load-balance", "consistent-hash"), ("hash-by", "path")];
    let policy = clean_policy(&[
        base_annotations[0],
        base_annotations[1],
        ("hash-balance-factor", "125"),
    ]);
    assert_eq!(policy.algorithm, hash(HashKey::Path, Some(125)));
    for bad in ["99", "1.25", "x", "-125"] {
        let annotations = [
            base_annotations[0],
            base_annotations[1],
            ("hash-balance-factor", bad),
        ];
        let policy = rejected(&annotations, "pier.dev/hash-balance-factor");
        assert_eq!(policy.algorithm, hash(HashKey::Path, None), "{bad:?}");
    }
}

#[test]
fn cookie_affinity() {
    let cookie = |name: &str, max_age| {
        Some(Affinity::Cookie {
            name: name.into(),
            max_age,
        })
    };
    assert_eq!(
        clean_policy(&[("affinity", "cookie")]).affinity,
        cookie("pier-affinity", None)
    );
    let policy = clean_policy(&[
        ("affinity", "cookie"),
        ("affinity-cookie-name", "route"),
        ("affinity-cookie-max-age", "3600"),
    ]);
    assert_eq!(policy.affinity, cookie("route", Some(3600)));
    let policy = rejected(
        &[("affinity", "cookie"), ("affinity-cookie-name", "a;b")],
        "pier.dev/affinity-cookie-name",
    );
    assert_eq!(policy.affinity, cookie("pier-affinity", None));
    let policy = rejected(
        &[("affinity", "cookie"), ("affinity-cookie-max-age", "1h")],
        "pier.dev/affinity-cookie-max-age",
    );
    assert_eq!(policy.affinity, cookie("pier-affinity", None));
    assert_eq!(
        rejected(&[("affinity", "sticky")], "pier.dev/affinity").affinity,
        None
    );
    assert_eq!(clean_policy(&[("affinity", "none")]).affinity, None);
}

#[test]
fn slow_start() {
    for (value, secs) in [("30s", 30.0), ("1m", 60.0), ("500ms", 0.5), ("1m30s", 90.0)] {
        let policy = clean_policy(&[("slow-start", value)]);
        assert_eq!(
            policy.slow_start,
            Some(Duration::from_secs_f64(secs)),
            "{value}"
        );
    }
    assert_eq!(clean_policy(&[("slow-start", "0s")]).slow_start, None);
    for bad in ["30", "fast", "1.5s", "-1s"] {
        assert_eq!(
            rejected(&[("slow-start", bad)], "pier.dev/slow-start").slow_start,
            None
        );
    }
}

fn client_ip_service(store: &mut Store, timeout: Option<i32>) {
    use k8s_openapi::api::core::v1::{ClientIPConfig, SessionAffinityConfig};
    let svc = store
        .services
        .get_mut(&ObjectKey::new("default", "svc"))
        .expect("service exists");
    let spec = std::sync::Arc::make_mut(svc)
        .spec
        .get_or_insert_with(Default::default);
    spec.session_affinity = Some("ClientIP".into());
    spec.session_affinity_config = timeout.map(|t| SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: Some(t),
        }),
    });
}

#[test]
fn service_client_ip_affinity() {
    let client_ip = |secs| {
        Some(Affinity::ClientIp {
            timeout: Duration::from_secs(secs),
        })
    };
    let mut store = base();
    ingress(&[]).insert(&mut store);
    client_ip_service(&mut store, None);
    assert_eq!(policy_with(&store).0.affinity, client_ip(10_800));
    client_ip_service(&mut store, Some(600));
    assert_eq!(policy_with(&store).0.affinity, client_ip(600));

    // Cookie affinity (or an explicit none) takes precedence over the Service's ClientIP.
    ingress(&[("affinity", "cookie")]).insert(&mut store);
    let cookie = Affinity::Cookie {
        name: "pier-affinity".into(),
        max_age: None,
    };
    assert_eq!(policy_with(&store).0.affinity, Some(cookie));
    ingress(&[("affinity", "none")]).insert(&mut store);
    assert_eq!(policy_with(&store).0.affinity, None);
}

#[test]
fn precedence_is_per_setting() {
    let mut store = base();
    annotate_service(
        &mut store,
        &[
            ("load-balance", "random"),
            ("slow-start", "10s"),
            ("affinity", "cookie"),
        ],
    );
    // Default → Service annotation.
    ingress(&[]).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert_eq!(diags, vec![]);
    assert_eq!(policy.algorithm, Algorithm::Random);
    assert_eq!(policy.slow_start, Some(Duration::from_secs(10)));
    assert!(matches!(policy.affinity, Some(Affinity::Cookie { .. })));

    // Ingress annotation beats the Service annotation, for that setting only.
    ingress(&[("load-balance", "least-request")]).insert(&mut store);
    let (policy, _) = policy_with(&store);
    assert_eq!(policy.algorithm, Algorithm::LeastRequest);
    assert_eq!(policy.slow_start, Some(Duration::from_secs(10)));

    // BackendPolicy beats both, for the settings it sets.
    backend_policy(
        &mut store,
        "svc",
        "2024-01-01T00:00:00Z",
        "  targetRef: {kind: Service, name: svc}\n  slowStart: 1m\n  affinity: {type: none}\n",
    );
    let (policy, diags) = policy_with(&store);
    assert_eq!(diags, vec![]);
    assert_eq!(policy.algorithm, Algorithm::LeastRequest);
    assert_eq!(policy.slow_start, Some(Duration::from_secs(60)));
    assert_eq!(policy.affinity, None);

    backend_policy(
        &mut store,
        "svc",
        "2024-01-01T00:00:00Z",
        "  targetRef: {kind: Service, name: svc}\n  loadBalancer:\n    policy: consistent-hash\n    \
         hashBy: cookie:user\n    hashBalanceFactor: 150\n",
    );
    let (policy, _) = policy_with(&store);
    assert_eq!(
        policy.algorithm,
        hash(HashKey::Cookie("user".into()), Some(150))
    );
    assert_eq!(policy.slow_start, Some(Duration::from_secs(10)));
}

#[test]
fn hash_settings_combine_across_layers() {
    let mut store = base();
    annotate_service(
        &mut store,
        &[("hash-by", "source-ip"), ("hash-balance-factor", "200")],
    );
    ingress(&[
        ("load-balance", "consistent-hash"),
        ("hash-by", "header:x-tenant"),
    ])
    .insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert_eq!(diags, vec![]);
    assert_eq!(
        policy.algorithm,
        hash(HashKey::Header("x-tenant".into()), Some(200))
    );
}

#[test]
fn an_invalid_value_means_the_default_not_the_next_layer() {
    let mut store = base();
    annotate_service(&mut store, &[("load-balance", "random")]);
    ingress(&[("load-balance", "fastest")]).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert_eq!(policy.algorithm, Algorithm::RoundRobin);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].object, "default/web");
}

#[test]
fn invalid_service_annotation_names_the_service() {
    let mut store = base();
    annotate_service(&mut store, &[("slow-start", "soon")]);
    ingress(&[]).insert(&mut store);
    let (policy, diags) = policy_with(&store);
    assert_eq!(policy.slow_start, None);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(
        (diags[0].kind.as_str(), diags[0].object.as_str()),
        ("Service", "default/svc")
    );
    assert!(
        diags[0].reason.contains("pier.dev/slow-start \"soon\""),
        "{}",
        diags[0]
    );
}
