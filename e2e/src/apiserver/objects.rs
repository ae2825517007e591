//! Test-side helpers: create or replace objects from the YAML the [`crate::manifests`]
//! builders produce, through a kube-rs client, as `kubectl apply` would.

use super::state::{ResourceType, RESOURCES};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::Client;
use serde::Deserialize;
use serde_json::Value;

/// The resource type of `apiVersion` + `kind`.
pub fn resource_of(api_version: &str, kind: &str) -> Option<ResourceType> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group_version == api_version && r.kind == kind)
}

fn api(client: &Client, r: ResourceType, namespace: &str) -> Api<DynamicObject> {
    let (group, version) = r
        .group_version
        .split_once('/')
        .unwrap_or(("", r.group_version));
    let gvk = GroupVersionKind::gvk(group, version, r.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, r.plural);
    if r.namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

fn parts(doc: &Value) -> anyhow::Result<(ResourceType, String, String)> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let r = resource_of(api_version, kind)
        .ok_or_else(|| anyhow::anyhow!("unknown resource {api_version} {kind}"))?;
    let namespace = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((r, namespace, name))
}

/// Creates every document of a (multi-document) YAML text, replacing objects that exist.
pub async fn apply_yaml(client: &Client, yaml: &str) -> anyhow::Result<()> {
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let doc = Value::deserialize(document)?;
        if doc.is_null() {
            continue;
        }
        let (r, namespace, name) = parts(&doc)?;
        let api = api(client, r, &namespace);
        let mut object: DynamicObject = serde_json::from_value(doc)?;
        match api.get_opt(&name).await? {
            None => drop(api.create(&PostParams::default(), &object).await?),
            Some(current) => {
                object.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &object).await?;
            }
        }
    }
    Ok(())
}

/// Deletes every object named in a (multi-document) YAML text.
pub async fn delete_yaml(client: &Client, yaml: &str) -> anyhow::Result<()> {
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let doc = Value::deserialize(document)?;
        if doc.is_null() {
            continue;
        }
        let (r, namespace, name) = parts(&doc)?;
        api(client, r, &namespace)
            .delete(&name, &DeleteParams::default())
            .await?;
    }
    Ok(())
}
