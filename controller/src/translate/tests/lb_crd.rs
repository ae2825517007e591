//! BackendPolicy objects: conflicts, missing targets, invalid fields and endpoint weights.

use super::*;
use crate::source::manifest::parse_manifest;
use crate::store::ObjectKey;
use proxy::table::Algorithm;

const CLASS_AND_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec:
  ports: [{port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-1
  namespace: default
  labels: {kubernetes.io/service-name: svc}
addressType: IPv4
ports: [{port: 8080}]
endpoints:
- addresses: ["10.0.0.1"]
  targetRef: {kind: Pod, name: svc-a}
- addresses: ["10.0.0.2"]
  targetRef: {kind: Pod, name: svc-b}
- addresses: ["10.0.0.3"]
  targetRef: {kind: Pod, name: svc-c}
- addresses: ["10.0.0.4"]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: pier
  rules:
  - host: foo.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
"#;

fn policy_doc(name: &str, created: &str, target: &str, body: &str) -> String {
    format!(
        "---\napiVersion: pier.dev/v1alpha1\nkind: BackendPolicy\nmetadata:\n  name: {name}\n  \
         namespace: default\n  creationTimestamp: \"{created}\"\nspec:\n  targetRef: {{kind: \
         Service, name: {target}}}\n{body}"
    )
}

fn load(text: &str) -> Store {
    let mut store = Store::default();
    for object in parse_manifest(text).expect("valid manifests") {
        store.insert(object);
    }
    store
}

#[test]
fn manifests_carry_backend_policies() {
    let text = format!(
        "{CLASS_AND_SERVICE}{}",
        policy_doc(
            "p",
            "2024-01-01T00:00:00Z",
            "svc",
            "  loadBalancer: {policy: random}\n"
        )
    );
    let store = load(&text);
    let policy = &store.backend_policies[&ObjectKey::new("default", "p")];
    assert_eq!(policy.spec.target_ref.name, "svc");
    assert_eq!(policy.metadata.namespace.as_deref(), Some("default"));
    assert!(store.contains("BackendPolicy", &ObjectKey::new("default", "p")));
    let (table, diags) = run(&store);
    assert_eq!(diags, vec![]);
    assert_eq!(
        prefix_backend(&table, "foo.com", "/").policy.algorithm,
        Algorithm::Random
    );
}

#[test]
fn an_unknown_policy_name_is_a_manifest_error() {
    let text = policy_doc(
        "p",
        "2024-01-01T00:00:00Z",
        "svc",
        "  loadBalancer: {policy: fast}\n",
    );
    let err = parse_manifest(&text).expect_err("unknown variant");
    assert!(err.to_string().contains("BackendPolicy"), "{err}");
}

#[test]
fn the_older_of_two_policies_wins() {
    let text = format!(
        "{CLASS_AND_SERVICE}{}{}",
        policy_doc(
            "newer",
            "2024-02-01T00:00:00Z",
            "svc",
            "  loadBalancer: {policy: random}\n"
        ),
        policy_doc(
            "older",
            "2024-01-01T00:00:00Z",
            "svc",
            "  loadBalancer: {policy: least-request}\n"
        ),
    );
    let (table, diags) = run(&load(&text));
    assert_eq!(
        prefix_backend(&table, "foo.com", "/").policy.algorithm,
        Algorithm::LeastRequest
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(
        (diags[0].kind.as_str(), diags[0].object.as_str()),
        ("BackendPolicy", "default/newer")
    );
    assert!(diags[0].reason.contains("default/older"), "{}", diags[0]);
}

#[test]
fn a_policy_for_a_missing_service_is_reported() {
    let text = format!(
        "{CLASS_AND_SERVICE}{}",
        policy_doc("p", "2024-01-01T00:00:00Z", "nope", "  slowStart: 10s\n")
    );
    let (_, diags) = run(&load(&text));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(
        (diags[0].kind.as_str(), diags[0].object.as_str()),
        ("BackendPolicy", "default/p")
    );
    assert!(
        diags[0].reason.contains("default/nope not found"),
        "{}",
        diags[0]
    );
}

#[test]
fn invalid_fields_are_reported_and_defaults_apply() {
    let body =
        "  loadBalancer: {policy: consistent-hash, hashBy: \"body:x\", hashBalanceFactor: 50}\n  \
                slowStart: soon\n  retries: 50\n  healthCheck: {intervalSeconds: 0}\n  \
                endpointWeights: [{address: not-an-ip, weight: 2}, {weight: 3}]\n";
    let text = format!(
        "{CLASS_AND_SERVICE}{}",
        policy_doc("p", "2024-01-01T00:00:00Z", "svc", body)
    );
    let (table, diags) = run(&load(&text));
    let policy = &prefix_backend(&table, "foo.com", "/").policy;
    assert_eq!(policy.algorithm, Algorithm::RoundRobin);
    assert_eq!(policy.slow_start, None);
    for field in [
        "spec.loadBalancer.hashBy",
        "spec.loadBalancer.hashBalanceFactor",
        "spec.slowStart",
        "spec.retries",
        "spec.healthCheck.intervalSeconds",
        "spec.endpointWeights[0].address",
        "spec.endpointWeights[1]",
        "consistent-hash but no valid hash key",
    ] {
        let found = diags
            .iter()
            .any(|d| d.object == "default/p" && d.reason.contains(field));
        assert!(found, "no Diagnostic about {field}: {diags:?}");
    }
}

#[test]
fn endpoint_weights_by_address_and_pod_name() {
    let body = "  endpointWeights:\n  - {address: 10.0.0.1, weight: 3}\n  - {podName: svc-b, weight: 0}\n  \
                - {podName: svc-a, weight: 7}\n";
    let text = format!(
        "{CLASS_AND_SERVICE}{}",
        policy_doc("p", "2024-01-01T00:00:00Z", "svc", body)
    );
    let (table, diags) = run(&load(&text));
    assert_eq!(diags, vec![]);
    let weights: Vec<(String, u32)> = prefix_backend(&table, "foo.com", "/")
        .endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.weight))
        .collect();
    let expected = [
        ("10.0.0.1:8080", 3),
        ("10.0.0.2:8080", 0),
        ("10.0.0.3:8080", 1),
        ("10.0.0.4:8080", 1),
    ];
    let expected: Vec<(String, u32)> = expected.iter().map(|(a, w)| (a.to_string(), *w)).collect();
    assert_eq!(weights, expected);

    // Without a policy every endpoint weighs 1.
    let (table, _) = run(&load(CLASS_AND_SERVICE));
    let backend = prefix_backend(&table, "foo.com", "/");
    assert!(backend.endpoints.iter().all(|e| e.weight == 1));
}
