//! The controller translates each change against what it translated before: what changed
//! must reach the proxy, and what did not must not cause a swap.

use super::*;
use crate::settings::Settings;
use crate::store::{Object, Store};
use proxy::ProxyState;
use serde_json::json;

fn object(value: serde_json::Value) -> Object {
    crate::source::parse_one(&value.to_string())
}

fn slice(address: &str) -> Object {
    object(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "ns",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [address]}],
    }))
}

fn service(port: i32) -> Object {
    object(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"ports": [{"name": "http", "port": port}]},
    }))
}

fn store() -> Store {
    let mut store = Store::default();
    store.insert(object(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"ingressClassName": "pier", "rules": [{"host": "a.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    })));
    store.insert(service(80));
    store.insert(slice("10.0.0.1"));
    store
}

/// The endpoints the proxy has for `ns/web:80`.
fn endpoints(controller: &Controller) -> Vec<String> {
    let views = controller.proxy.endpoint_views();
    let view = views.iter().find(|v| v.service == "ns/web:80");
    let endpoints = view.map(|v| v.endpoints.as_slice()).unwrap_or_default();
    endpoints.iter().map(|e| e.address.to_string()).collect()
}

#[test]
fn changed_objects_reach_the_proxy_and_unchanged_copies_do_not_swap() {
    let controller = Controller::new(Arc::new(ProxyState::default()), Settings::default());
    let mut store = store();
    controller.apply_store(&store, Vec::new());
    assert_eq!(endpoints(&controller), ["10.0.0.1:8080"]);
    assert_eq!(controller.proxy.generation(), 1);

    store.insert(slice("10.0.0.2"));
    controller.apply_store(&store, Vec::new());
    assert_eq!(endpoints(&controller), ["10.0.0.2:8080"]);
    assert_eq!(controller.proxy.generation(), 2);

    // A new copy of every object with the same content (a re-list): no swap.
    store.insert(service(80));
    store.insert(slice("10.0.0.2"));
    controller.apply_store(&store, Vec::new());
    assert_eq!(controller.proxy.generation(), 2);

    // The Service loses the port the Ingress names: the route stays, without endpoints.
    store.insert(service(81));
    controller.apply_store(&store, Vec::new());
    assert_eq!(controller.proxy.generation(), 3);
    assert!(endpoints(&controller).is_empty());
    let diagnostics = controller.diagnostics.load();
    assert!(diagnostics
        .iter()
        .any(|d| d.reason.contains("has no port 80")));

    store.insert(service(80));
    controller.apply_store(&store, Vec::new());
    assert_eq!(endpoints(&controller), ["10.0.0.2:8080"]);
    assert!(controller.diagnostics.load().is_empty());
}
