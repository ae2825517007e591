//! Backend resolution: Service, port, EndpointSlices and endpoint conditions.

use super::*;
use proxy::table::Endpoint as TableEndpoint;
use std::net::SocketAddr;
use std::sync::Arc;

/// One Ingress `default/web` routing `foo.com/` to `svc:port`.
fn store_routing_to(port: impl Into<Port>) -> Store {
    let mut store = Store::default();
    IngressBuilder::new("default", "web")
        .rule("foo.com", "/", "Prefix", "svc", port)
        .insert(&mut store);
    store
}

fn backend_of(store: &Store) -> (ServiceBackend, Vec<Diagnostic>) {
    let (table, diags) = run(store);
    (prefix_backend(&table, "foo.com", "/").clone(), diags)
}

fn ep(address: &str, ready: bool, serving: bool, terminating: bool) -> TableEndpoint {
    TableEndpoint {
        address: address.parse::<SocketAddr>().unwrap(),
        weight: 1,
        ready,
        serving,
        terminating,
    }
}

/// Asserts `backend` is unavailable for `why`, and that `default/web` has a Diagnostic saying so.
fn assert_unavailable(store: &Store, why: &str) {
    let (backend, diags) = backend_of(store);
    assert_eq!(backend.unavailable.as_deref(), Some(why));
    assert!(backend.endpoints.is_empty());
    let ours = diags_for(&diags, "default/web");
    assert_eq!(ours.len(), 1, "{diags:?}");
    assert_eq!(ours[0].kind, "Ingress");
    assert!(ours[0].reason.contains(why), "{}", ours[0]);
    assert!(ours[0].reason.contains("503"), "{}", ours[0]);
}

#[test]
fn missing_service_is_unavailable_but_the_route_exists() {
    let store = store_routing_to(80);
    assert_unavailable(&store, "service default/svc not found");
}

#[test]
fn service_in_another_namespace_does_not_count() {
    let mut store = store_routing_to(80);
    service(&mut store, "other", "svc", &[(None, 80)]);
    assert_unavailable(&store, "service default/svc not found");
}

#[test]
fn missing_port_is_unavailable() {
    let mut store = store_routing_to(81);
    service(&mut store, "default", "svc", &[(Some("http"), 80)]);
    assert_unavailable(&store, "service default/svc has no port 81");

    let mut store = store_routing_to("grpc");
    service(&mut store, "default", "svc", &[(Some("http"), 80)]);
    assert_unavailable(&store, "service default/svc has no port grpc");
}

#[test]
fn external_name_services_are_unavailable() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(None, 80)]);
    let key = crate::store::ObjectKey::new("default", "svc");
    let spec = Arc::make_mut(store.services.get_mut(&key).unwrap())
        .spec
        .as_mut()
        .unwrap();
    spec.type_ = Some("ExternalName".into());
    spec.external_name = Some("example.com".into());
    assert_unavailable(&store, "ExternalName services are not supported");
}

#[test]
fn port_by_number_and_by_name() {
    for (port, id) in [
        (Port::Number(80), "default/svc:80"),
        (Port::Name("http"), "default/svc:http"),
    ] {
        let mut store = store_routing_to(port);
        service(
            &mut store,
            "default",
            "svc",
            &[(Some("metrics"), 9090), (Some("http"), 80)],
        );
        SliceBuilder::new("default", "svc-1", "svc")
            .port(Some("metrics"), 19090)
            .port(Some("http"), 8080)
            .endpoint(&["10.0.0.1"], READY)
            .insert(&mut store);
        let (backend, diags) = backend_of(&store);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(&*backend.id, id);
        assert_eq!(backend.weight, 100);
        assert_eq!(backend.unavailable, None);
        // The slice port is chosen by the Service port's name, not by position or number.
        assert_eq!(*backend.endpoints, [ep("10.0.0.1:8080", true, true, false)]);
    }
}

#[test]
fn unnamed_ports_match_whether_absent_or_empty() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(None, 80)]);
    SliceBuilder::new("default", "svc-1", "svc")
        .port(Some(""), 8080)
        .endpoint(&["10.0.0.1"], READY)
        .insert(&mut store);
    SliceBuilder::new("default", "svc-2", "svc")
        .port(None, 8080)
        .endpoint(&["10.0.0.2"], READY)
        .insert(&mut store);
    // A named slice port does not match an unnamed Service port: that slice is skipped.
    SliceBuilder::new("default", "svc-3", "svc")
        .port(Some("http"), 8080)
        .endpoint(&["10.0.0.3"], READY)
        .insert(&mut store);
    let (backend, _) = backend_of(&store);
    let addresses: Vec<String> = backend
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(addresses, ["10.0.0.1:8080", "10.0.0.2:8080"]);
}

#[test]
fn only_ip_slices_of_this_service_and_namespace_count() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(None, 80)]);
    SliceBuilder::new("default", "mine", "svc")
        .port(None, 8080)
        .endpoint(&["10.0.0.1"], READY)
        .insert(&mut store);
    SliceBuilder::new("default", "other-svc", "svc2")
        .port(None, 8080)
        .endpoint(&["10.0.0.2"], READY)
        .insert(&mut store);
    SliceBuilder::new("other", "other-ns", "svc")
        .port(None, 8080)
        .endpoint(&["10.0.0.3"], READY)
        .insert(&mut store);
    SliceBuilder::new("default", "fqdn", "svc")
        .address_type("FQDN")
        .port(None, 8080)
        .endpoint(&["backend.example.com"], READY)
        .insert(&mut store);
    let (backend, diags) = backend_of(&store);
    assert!(
        diags.is_empty(),
        "FQDN slices are ignored, not diagnosed: {diags:?}"
    );
    assert_eq!(*backend.endpoints, [ep("10.0.0.1:8080", true, true, false)]);
}

#[test]
fn slices_are_unioned_deduplicated_and_sorted() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(Some("http"), 80)]);
    let not_ready = (Some(false), Some(false), Some(false));
    SliceBuilder::new("default", "svc-a", "svc")
        .port(Some("http"), 8080)
        .endpoint(&["10.0.0.9", "10.0.0.5"], not_ready)
        .endpoint(&["10.0.0.1"], READY)
        .insert(&mut store);
    SliceBuilder::new("default", "svc-b", "svc")
        .port(Some("http"), 8080)
        .endpoint(&["10.0.0.5"], READY)
        .endpoint(&["10.0.0.1"], not_ready)
        .endpoint(&["fd00::1"], READY)
        .insert(&mut store);
    let (backend, _) = backend_of(&store);
    assert_eq!(
        *backend.endpoints,
        [
            ep("10.0.0.1:8080", true, true, false),
            ep("10.0.0.5:8080", true, true, false),
            ep("10.0.0.9:8080", false, false, false),
            ep("[fd00::1]:8080", true, true, false),
        ]
    );
}

#[test]
fn same_address_on_different_ports_is_not_a_duplicate() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(None, 80)]);
    for (name, port) in [("old", 8080), ("new", 9090)] {
        SliceBuilder::new("default", name, "svc")
            .port(None, port)
            .endpoint(&["10.0.0.1"], READY)
            .insert(&mut store);
    }
    let (backend, _) = backend_of(&store);
    assert_eq!(backend.endpoints.len(), 2);
}

#[test]
fn condition_defaults() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(None, 80)]);
    SliceBuilder::new("default", "svc-1", "svc")
        .port(None, 8080)
        .bare_endpoint("10.0.0.1")
        .endpoint(&["10.0.0.2"], (None, None, None))
        .endpoint(&["10.0.0.3"], (Some(false), None, None))
        .endpoint(&["10.0.0.4"], (Some(false), Some(true), Some(true)))
        .endpoint(&["10.0.0.5"], (None, Some(false), None))
        .insert(&mut store);
    let (backend, _) = backend_of(&store);
    assert_eq!(
        *backend.endpoints,
        [
            ep("10.0.0.1:8080", true, true, false),
            ep("10.0.0.2:8080", true, true, false),
            ep("10.0.0.3:8080", false, false, false),
            ep("10.0.0.4:8080", false, true, true),
            ep("10.0.0.5:8080", true, false, false),
        ]
    );
}

#[test]
fn unparseable_addresses_are_skipped_with_a_diagnostic_on_the_slice() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(None, 80)]);
    SliceBuilder::new("default", "svc-1", "svc")
        .port(None, 8080)
        .endpoint(&["10.0.0.300", "10.0.0.1"], READY)
        .insert(&mut store);
    let (backend, diags) = backend_of(&store);
    assert_eq!(*backend.endpoints, [ep("10.0.0.1:8080", true, true, false)]);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].kind, "EndpointSlice");
    assert_eq!(diags[0].object, "default/svc-1");
    assert!(diags[0].reason.contains("10.0.0.300"));
}

#[test]
fn service_without_endpoints_is_not_unavailable() {
    let mut store = store_routing_to(80);
    service(&mut store, "default", "svc", &[(None, 80)]);
    // A slice without a usable port contributes nothing either.
    SliceBuilder::new("default", "svc-1", "svc")
        .endpoint(&["10.0.0.1"], READY)
        .insert(&mut store);
    let (backend, diags) = backend_of(&store);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(backend.unavailable, None);
    assert!(backend.endpoints.is_empty());
}

#[test]
fn yaml_fixture_end_to_end() {
    let docs = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: pier
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /cart
        pathType: Prefix
        backend: {service: {name: cart, port: {name: http}}}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: cart-abc
  namespace: shop
  labels: {kubernetes.io/service-name: cart}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.1.0.7]
  conditions: {ready: false, serving: true, terminating: true}
"#;
    let mut store = Store::default();
    let mut parts = docs.split("---");
    let ingress: Ingress = serde_yaml::from_str(parts.next().unwrap()).unwrap();
    let svc: Service = serde_yaml::from_str(parts.next().unwrap()).unwrap();
    let slice: EndpointSlice = serde_yaml::from_str(parts.next().unwrap()).unwrap();
    store.insert(Object::Ingress(Arc::new(ingress)));
    store.insert(Object::Service(Arc::new(svc)));
    store.insert(Object::EndpointSlice(Arc::new(slice.into())));
    let (table, diags) = run(&store);
    assert!(diags.is_empty(), "{diags:?}");
    let backend = prefix_backend(&table, "shop.example.com", "/cart");
    assert_eq!(&*backend.id, "shop/cart:http");
    assert_eq!(*backend.endpoints, [ep("10.1.0.7:8080", false, true, true)]);
    assert_eq!(
        route(&table, "shop.example.com", &PathMatch::prefix("/cart"))
            .unwrap()
            .source
            .as_ref(),
        "shop/web"
    );
}
