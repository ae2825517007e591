//! Rebuild cost at scale: 5,000 Ingresses, 5,000 Services, 50,000 endpoints. Prints the time
//! of translate() + publish (the work of one coalesced rebuild). The bound asserted is loose
//! (debug builds, shared CI cores); the printed figure is what to watch.

use crate::apply::Controller;
use crate::settings::Settings;
use crate::store::{Object, Store};
use proxy::ProxyState;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INGRESSES: usize = 5_000;
const ENDPOINTS_PER_SERVICE: usize = 10;

fn object(value: serde_json::Value) -> Object {
    crate::source::parse_manifest(&serde_yaml::to_string(&value).expect("yaml"))
        .expect("valid object")
        .pop()
        .expect("one object")
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

#[test]
fn rebuild_at_5000_ingresses_and_50000_endpoints() {
    let store = big_store();
    assert_eq!(store.endpoint_slices.len() * ENDPOINTS_PER_SERVICE, 50_000);
    let controller = Controller::new(Arc::new(ProxyState::default()), Settings::default());
    let mut times = Vec::new();
    // Round 0 builds the first table in a cold process; the later rounds are what a running
    // controller does after a change (an unchanged table would skip the publish, so the
    // rounds alternate between two different one-slice changes).
    for round in 0..6 {
        let mut changed = store.clone();
        if round % 2 == 1 {
            changed.endpoint_slices.pop_first();
        } else if round > 0 {
            changed.endpoint_slices.pop_last();
        }
        let started = Instant::now();
        controller.apply_store(&changed, Vec::new());
        times.push(started.elapsed());
    }
    let table = controller.proxy.table();
    assert_eq!(table.virtual_hosts.len(), INGRESSES);
    // The translate share on its own, to tell it apart from compiling and swapping the table.
    let started = Instant::now();
    let (again, _) = crate::translate::translate(&store, &Settings::default());
    let translate_only = started.elapsed();
    assert_eq!(again.virtual_hosts.len(), INGRESSES);
    println!("translate alone: {translate_only:?}");
    let mut warm = times[1..].to_vec();
    warm.sort();
    let best = warm.first().copied().unwrap_or_default();
    let median = warm.get(warm.len() / 2).copied().unwrap_or_default();
    println!(
        "rebuild (translate + publish) at {INGRESSES} Ingresses / 50000 endpoints: first {:?}, \
         after a change: {:?}, best {best:?}, median {median:?}",
        times[0],
        &times[1..]
    );
    // The publish share on its own: the table in effect comes from `changed`, so this is a
    // real (one-slice) change, like the second round above.
    let started = Instant::now();
    assert!(controller.proxy.publish(again), "the table differs");
    println!("publish alone: {:?}", started.elapsed());
    // A loose bound: debug builds in CI are slow; the figure to watch is the printed one.
    assert!(best < Duration::from_secs(30), "rebuild took {best:?}");
}
