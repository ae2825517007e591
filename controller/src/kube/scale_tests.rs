//! Rebuild cost at scale: 5,000 Ingresses, 5,000 Services, 50,000 endpoints. Prints the time
//! of translate() + publish for the first table and for one coalesced change (the work of a
//! rebuild in a running controller), and of a translation from scratch. The bound asserted
//! is loose (debug builds, shared CI cores); the printed figures are what to watch.

use crate::apply::Controller;
use crate::settings::Settings;
use crate::store::{Object, Store};
use proxy::ProxyState;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INGRESSES: usize = 5_000;
const ENDPOINTS_PER_SERVICE: usize = 10;
/// Changes applied one after the other, each followed by a rebuild.
const ROUNDS: usize = 20;

fn object(value: serde_json::Value) -> Object {
    crate::source::parse_one(&serde_yaml::to_string(&value).expect("yaml"))
}

fn big_store() -> Store {
    let mut store = Store::default();
    store.insert(object(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "pier"}, "spec": {"controller": "pier.dev/ingress-controller"},
    })));
    for i in 0..INGRESSES {
        let ns = format!("ns-{}", i % 50);
        let name = format!("app-{i}");
        store.insert(object(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        })));
        let endpoints: Vec<_> = (0..ENDPOINTS_PER_SERVICE)
            .map(|e| {
                json!({
                    "addresses": [format!("10.{}.{}.{}", i / 250, i % 250, e + 1)],
                    "conditions": {"ready": true},
                })
            })
            .collect();
        store.insert(object(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints,
        })));
        store.insert(object(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ingressClassName": "pier", "rules": [{
                "host": format!("{name}.example"),
                "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": name, "port": {"number": 80}}}},
                    {"path": "/api", "pathType": "Exact",
                     "backend": {"service": {"name": name, "port": {"name": "http"}}}},
                ]},
            }]},
        })));
    }
    store
}

/// A copy of `store` with one more endpoint in the EndpointSlice of Service `app-{i}`: a new
/// object, as a watch event or a changed file would bring.
fn with_endpoint_added(store: &mut Store, i: usize, round: usize) {
    let key = store
        .endpoint_slices
        .keys()
        .find(|k| k.name == format!("app-{i}-1"))
        .cloned()
        .expect("slice exists");
    let mut slice = (*store.endpoint_slices[&key]).clone();
    let mut endpoints = slice.endpoints.to_vec();
    let mut endpoint = endpoints[0].clone();
    let address = format!("10.250.{}.{}", round / 250, round % 250);
    endpoint.address = Ok(address.parse().expect("address"));
    endpoints.push(endpoint);
    slice.endpoints = endpoints.into();
    store.endpoint_slices.insert(key, Arc::new(slice));
}

/// Adds Ingress `new-{round}` with host `new-{round}.example` to an existing Service.
fn with_new_ingress(store: &mut Store, round: usize) {
    store.insert(object(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": format!("new-{round}"), "namespace": "ns-0"},
        "spec": {"ingressClassName": "pier", "rules": [{
            "host": format!("new-{round}.example"),
            "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "app-0", "port": {"number": 80}}}}]},
        }]},
    })));
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Best and median of `times`.
fn spread(mut times: Vec<Duration>) -> String {
    times.sort();
    let best = times.first().copied().unwrap_or_default();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    format!("best {}, median {}", millis(best), millis(median))
}

#[test]
fn rebuild_at_5000_ingresses_and_50000_endpoints() {
    let store = big_store();
    assert_eq!(store.endpoint_slices.len() * ENDPOINTS_PER_SERVICE, 50_000);
    let controller = Controller::new(Arc::new(ProxyState::default()), Settings::default());
    let started = Instant::now();
    controller.apply_store(&store, Vec::new());
    let first = started.elapsed();

    // What a running controller does after one coalesced change: alternately an EndpointSlice
    // gains an endpoint and a new Ingress appears. Each round must publish a new table.
    let mut current = store.clone();
    let (mut slice_changes, mut new_routes) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let generation = controller.proxy.generation();
        let started = Instant::now();
        if round % 2 == 0 {
            with_endpoint_added(&mut current, round % INGRESSES, round);
            controller.apply_store(&current, Vec::new());
            slice_changes.push(started.elapsed());
        } else {
            with_new_ingress(&mut current, round);
            controller.apply_store(&current, Vec::new());
            new_routes.push(started.elapsed());
        }
        assert_eq!(
            controller.proxy.generation(),
            generation + 1,
            "round {round}"
        );
    }
    let table = controller.proxy.table();
    assert_eq!(table.virtual_hosts.len(), INGRESSES + ROUNDS / 2);

    // The same table from scratch (no memo), as every rebuild cost before translations were
    // reused, and it must be the same table.
    let started = Instant::now();
    let (fresh, _) = crate::translate::translate(&current, &Settings::default());
    let full_translate = started.elapsed();
    assert!(fresh == *table, "incremental and full translation differ");
    let state = ProxyState::default();
    let started = Instant::now();
    assert!(state.publish(fresh));
    let full_publish = started.elapsed();

    println!(
        "rebuild at {INGRESSES} Ingresses / 50000 endpoints (translate + publish): first {}; \
         after one EndpointSlice change: {}; after a new Ingress: {}; from scratch: translate \
         {}, publish {}",
        millis(first),
        spread(slice_changes),
        spread(new_routes),
        millis(full_translate),
        millis(full_publish),
    );
    // A loose bound: debug builds in CI are slow; the figure to watch is the printed one.
    assert!(first < Duration::from_secs(60), "rebuild took {first:?}");
}
