//! What a long-lived [`Translator`] keeps: unchanged virtual hosts and endpoint lists keep
//! their pointers (so the proxy skips them), and what changed is still picked up.

use super::generate::parse;
use super::*;
use crate::translate::Translator;
use serde_json::json;

fn simple_ingress(name: &str, (host, path): (&str, &str), service: &str) -> Object {
    parse(
        &json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "a"},
        "spec": {"ingressClassName": "pier", "rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": "Prefix",
             "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}),
    )
}

fn simple_backend(store: &mut Store, service: &str, address: &str) {
    store.insert(parse(&json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service, "namespace": "a"},
        "spec": {"ports": [{"name": "http", "port": 80}]}})));
    store.insert(parse(
        &json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": service, "namespace": "a",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [address]}]}),
    ));
}

fn host<'t>(table: &'t RoutingTable, name: &str) -> &'t Arc<proxy::table::VirtualHost> {
    let host = HostMatch::from_rule_host(name);
    table
        .virtual_hosts
        .iter()
        .find(|v| v.host == host)
        .expect("host")
}

#[test]
fn unchanged_hosts_and_endpoint_lists_keep_their_pointers() {
    let mut store = Store::default();
    simple_backend(&mut store, "s0", "10.0.0.1");
    simple_backend(&mut store, "s1", "10.0.0.2");
    store.insert(simple_ingress("one", ("a.com", "/"), "s0"));
    store.insert(simple_ingress("two", ("b.com", "/"), "s1"));
    let mut translator = Translator::default();
    let settings = Settings::default();
    let (first, _) = translator.translate(&store, &settings);

    // A new Ingress: c.com is new, a.com and b.com are untouched.
    store.insert(simple_ingress("three", ("c.com", "/"), "s0"));
    let (second, _) = translator.translate(&store, &settings);
    assert!(Arc::ptr_eq(host(&first, "a.com"), host(&second, "a.com")));
    assert!(Arc::ptr_eq(host(&first, "b.com"), host(&second, "b.com")));
    let endpoints =
        |t: &RoutingTable, h: &str| host(t, h).routes[0].backend.services[0].endpoints.clone();

    // Another Ingress with a path on a.com: the host is rebuilt, and its unchanged Service
    // keeps its endpoint list.
    store.insert(simple_ingress("four", ("a.com", "/x"), "s0"));
    let (third, _) = translator.translate(&store, &settings);
    assert!(!Arc::ptr_eq(host(&second, "a.com"), host(&third, "a.com")));
    assert_eq!(host(&third, "a.com").routes.len(), 2);
    assert!(Arc::ptr_eq(
        &endpoints(&second, "a.com"),
        &endpoints(&third, "a.com")
    ));
    let second = third;

    // s1 moves to another address: only b.com changes, and it has the new address.
    simple_backend(&mut store, "s1", "10.0.0.3");
    let (third, _) = translator.translate(&store, &settings);
    assert!(Arc::ptr_eq(host(&second, "a.com"), host(&third, "a.com")));
    assert!(!Arc::ptr_eq(host(&second, "b.com"), host(&third, "b.com")));
    assert_eq!(
        endpoints(&third, "b.com")[0].address,
        "10.0.0.3:8080".parse().expect("address")
    );
    assert!(third == translate(&store, &settings).0);
}
