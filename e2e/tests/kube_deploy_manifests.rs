//! `examples/deploy/` is valid: every document parses as its k8s-openapi type without losing
//! a field (a typo in a field name would be dropped silently by a plain parse), the
//! kustomization lists every file, and the Deployment keeps the properties the design needs.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy")
}

/// Every YAML document of every file (except the kustomization), with its file name.
fn documents() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(deploy_dir())
        .expect("examples/deploy exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                out.push((name.clone(), value));
            }
        }
    }
    out
}

/// Parses as `T` and checks that serializing it back gives the same document.
fn typed<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) -> T {
    let object: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&object).expect("serializes");
    assert_eq!(
        &back, doc,
        "{file}: a field was not recognised (typo?) or changed"
    );
    object
}

#[test]
fn every_document_is_a_valid_kubernetes_object() {
    let mut kinds = BTreeSet::new();
    for (file, doc) in documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Namespace" => drop(typed::<Namespace>(&file, &doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(&file, &doc)),
            "ClusterRole" => {
                let role = typed::<ClusterRole>(&file, &doc);
                for rule in role.rules.iter().flatten() {
                    assert!(
                        !rule.verbs.iter().any(|v| v == "*"),
                        "{file}: wildcard verb"
                    );
                    assert!(
                        !rule.resources.iter().flatten().any(|r| r == "*"),
                        "{file}: wildcard"
                    );
                    let writes = ["create", "update", "patch", "delete"];
                    if rule.verbs.iter().any(|v| writes.contains(&v.as_str())) {
                        let resources = rule.resources.clone().unwrap_or_default();
                        assert!(
                            resources == ["ingresses/status"] || resources == ["events"],
                            "{file}: cluster-wide write on {resources:?}"
                        );
                    }
                }
            }
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(&file, &doc)),
            "Role" => drop(typed::<Role>(&file, &doc)),
            "RoleBinding" => drop(typed::<RoleBinding>(&file, &doc)),
            "IngressClass" => {
                let class = typed::<IngressClass>(&file, &doc);
                let controller = class.spec.and_then(|s| s.controller);
                assert_eq!(controller.as_deref(), Some("pier.dev/ingress-controller"));
            }
            "Deployment" => drop(typed::<Deployment>(&file, &doc)),
            "Service" => drop(typed::<Service>(&file, &doc)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(&file, &doc)),
            "Ingress" => drop(typed::<Ingress>(&file, &doc)),
            "CustomResourceDefinition" => drop(typed::<CustomResourceDefinition>(&file, &doc)),
            other => panic!("{file}: unexpected kind {other:?}"),
        }
        kinds.insert(kind);
    }
    for needed in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "IngressClass",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "CustomResourceDefinition",
        "Ingress",
    ] {
        assert!(kinds.contains(needed), "no {needed} in examples/deploy");
    }
}

#[test]
fn the_pier_deployment_is_hardened_and_probed() {
    let (file, doc) = documents()
        .into_iter()
        .find(|(_, d)| d["kind"] == "Deployment" && d["metadata"]["name"] == "pier")
        .expect("the pier Deployment");
    let deployment = typed::<Deployment>(&file, &doc);
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(
        pod.security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );
    let container = &pod.containers[0];
    let security = container
        .security_context
        .clone()
        .expect("container securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/healthz")
    );
    assert!(container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .is_some());
    // The grace period must outlast pier's own shutdown (delay + timeout).
    let args = container.args.clone().unwrap_or_default();
    let seconds = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(flag)?.strip_suffix('s')?.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("{flag}Ns in args"))
    };
    let shutdown = seconds("--shutdown-delay=") + seconds("--shutdown-timeout=");
    let grace = pod
        .termination_grace_period_seconds
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace > shutdown,
        "grace {grace}s <= pier's shutdown {shutdown}s"
    );
}

#[test]
fn kustomization_lists_the_files_and_the_crd_copy_is_current() {
    let dir = deploy_dir();
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization");
    let kustomization: Value = serde_yaml::from_str(&text).expect("valid YAML");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("string").to_string())
        .collect();
    for name in &listed {
        assert!(
            dir.join(name).is_file(),
            "kustomization lists missing {name}"
        );
    }
    let files: BTreeSet<String> = documents().into_iter().map(|(f, _)| f).collect();
    // The NodePort Service is the documented alternative to the LoadBalancer one.
    let unlisted: Vec<_> = files.difference(&listed).collect();
    assert_eq!(unlisted, vec!["service-nodeport.yaml"]);

    let generated = dir.join("../../crds/yaml/backendpolicy.yaml");
    assert_eq!(
        std::fs::read_to_string(dir.join("backendpolicy-crd.yaml")).expect("copy"),
        std::fs::read_to_string(generated).expect("crds/yaml/backendpolicy.yaml"),
        "examples/deploy/backendpolicy-crd.yaml is stale: cp crds/yaml/backendpolicy.yaml examples/deploy/backendpolicy-crd.yaml"
    );
}
