//! Random Stores for the property tests: objects of every kind, valid and invalid, and
//! random changes to them.

use super::*;
use crate::store::ObjectKey;
use serde_json::{json, Value};

/// A small deterministic generator (splitmix64), so that a failure can be replayed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Up to `max` items of `items`, in order, each kept with the given chance.
    fn some<T: Clone>(&mut self, items: &[T], percent: u64) -> Vec<T> {
        items
            .iter()
            .filter(|_| self.chance(percent))
            .cloned()
            .collect()
    }
}

const NAMESPACES: [&str; 2] = ["a", "b"];
const SERVICES: [&str; 4] = ["s0", "s1", "s2", "s3"];
const HOSTS: [&str; 5] = ["a.com", "b.com", "*.c.com", "x.c.com", ""];
const PATHS: [&str; 4] = ["/", "/api", "/api/", "/x"];
const PATH_TYPES: [&str; 4] = ["Prefix", "Prefix", "Exact", "ImplementationSpecific"];
const TIMES: [Option<&str>; 4] = [
    None,
    Some("2024-01-01T00:00:00Z"),
    Some("2024-01-01T00:00:00Z"),
    Some("2024-02-01T00:00:00Z"),
];
const ADDRESSES: [&str; 6] = [
    "10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "10.0.0.1", "nope",
];

/// Optional `pier.dev/` annotations, valid and invalid.
const ANNOTATIONS: [(&str, &[&str]); 12] = [
    (
        "load-balance",
        &["least-request", "consistent-hash", "random", "bogus"],
    ),
    ("hash-by", &["header:x-user", "path", "bogus"]),
    ("slow-start", &["10s", "x"]),
    ("affinity", &["cookie", "client-ip", "none"]),
    ("retries", &["3", "99"]),
    ("health-check-path", &["/hz", "bad path"]),
    (
        "backend-protocol",
        &["HTTPS", "H2C", "GRPC", "HTTP", "bogus"],
    ),
    ("backend-ca-secret", &["tls0", "tls1", "gone"]),
    ("ssl-redirect", &["false", "true", "maybe"]),
    ("hsts", &["max-age=60", "bogus"]),
    ("canary-weight", &["30", "200"]),
    ("canary-by-header", &["x-canary", "bad header"]),
];

fn annotations(rng: &mut Rng, percent: u64) -> Value {
    let mut out = serde_json::Map::new();
    for (key, values) in ANNOTATIONS {
        if rng.chance(percent) {
            out.insert(format!("pier.dev/{key}"), json!(rng.pick(values)));
        }
    }
    Value::Object(out)
}

fn meta(rng: &mut Rng, namespace: &str, name: &str) -> Value {
    let mut meta = json!({"name": name, "namespace": namespace});
    if let Some(at) = rng.pick(&TIMES) {
        meta["creationTimestamp"] = json!(at);
    }
    meta
}

fn backend(rng: &mut Rng) -> Value {
    if rng.chance(5) {
        return json!({"resource": {"apiGroup": "x.io", "kind": "Bucket", "name": "b"}});
    }
    let port = match rng.below(3) {
        0 => json!({"number": 80}),
        1 => json!({"name": "http"}),
        _ => json!({"number": 9999}),
    };
    json!({"service": {"name": rng.pick(&SERVICES), "port": port}})
}

fn ingress(rng: &mut Rng, namespace: &str, name: &str) -> Value {
    let mut meta = meta(rng, namespace, name);
    let mut notes = annotations(rng, 12);
    if rng.chance(30) {
        notes["pier.dev/canary"] = json!(rng.pick(&["true", "true", "true", "false", "yes"]));
    }
    if rng.chance(5) {
        notes["kubernetes.io/ingress.class"] = json!("pier");
    }
    meta["annotations"] = notes;
    let rules: Vec<Value> = (0..rng.below(3) + usize::from(rng.chance(80)))
        .map(|_| {
            let paths: Vec<Value> = (0..1 + rng.below(3))
                .map(|_| {
                    // Now and then something the API server would refuse.
                    let (path, path_type) = match rng.below(40) {
                        0 => ("api", "Prefix"),
                        1 => ("/", "Bogus"),
                        _ => (*rng.pick(&PATHS), *rng.pick(&PATH_TYPES)),
                    };
                    json!({"path": path, "pathType": path_type, "backend": backend(rng)})
                })
                .collect();
            let host = if rng.chance(3) {
                "B.com"
            } else {
                *rng.pick(&HOSTS)
            };
            let mut rule = json!({"http": {"paths": paths}});
            if !host.is_empty() {
                rule["host"] = json!(host);
            }
            if rng.chance(5) {
                rule = json!({"host": host});
            }
            rule
        })
        .collect();
    let mut spec = json!({"rules": rules});
    match rng.below(10) {
        0 => {}
        1 => spec["ingressClassName"] = json!("other"),
        _ => spec["ingressClassName"] = json!("pier"),
    }
    if rng.chance(20) {
        spec["defaultBackend"] = backend(rng);
    }
    if rng.chance(30) {
        let hosts = rng.some(&["a.com", "*.c.com", "b.com", "x.c.com"], 50);
        spec["tls"] = json!([{"hosts": hosts, "secretName": rng.pick(&["tls0", "tls1", "gone"])}]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
           "spec": spec})
}

fn service(rng: &mut Rng, namespace: &str, name: &str) -> Value {
    let mut meta = meta(rng, namespace, name);
    meta["annotations"] = annotations(rng, 8);
    let mut ports = Vec::new();
    if rng.chance(80) {
        let mut port = json!({"name": "http", "port": 80});
        if rng.chance(15) {
            port["appProtocol"] = json!("kubernetes.io/h2c");
        }
        ports.push(port);
    }
    if rng.chance(40) {
        ports.push(json!({"port": 9999}));
    }
    let mut spec = json!({"ports": ports});
    if rng.chance(5) {
        spec["type"] = json!("ExternalName");
        spec["externalName"] = json!("example.com");
    }
    if rng.chance(10) {
        spec["sessionAffinity"] = json!("ClientIP");
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})
}

fn slice(rng: &mut Rng, namespace: &str, name: &str) -> Value {
    let mut meta = meta(rng, namespace, name);
    if rng.chance(90) {
        meta["labels"] = json!({"kubernetes.io/service-name": rng.pick(&SERVICES)});
    }
    let mut ports = Vec::new();
    if rng.chance(85) {
        let mut port = json!({"name": "http", "port": 8080});
        if rng.chance(10) {
            port["appProtocol"] = json!("kubernetes.io/h2c");
        }
        ports.push(port);
    }
    if rng.chance(30) {
        ports.push(json!({"name": "", "port": 9090}));
    }
    let endpoints: Vec<Value> = (0..rng.below(5))
        .map(|_| {
            let mut endpoint = json!({"addresses": [rng.pick(&ADDRESSES)]});
            if rng.chance(80) {
                let flag =
                    |rng: &mut Rng| [json!(true), json!(false), Value::Null][rng.below(3)].clone();
                endpoint["conditions"] =
                    json!({"ready": flag(rng), "serving": flag(rng), "terminating": flag(rng)});
            }
            if rng.chance(30) {
                endpoint["targetRef"] = json!({"kind": "Pod", "name": rng.pick(&["p0", "p1"])});
            }
            endpoint
        })
        .collect();
    let address_type = if rng.chance(5) { "FQDN" } else { "IPv4" };
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
           "addressType": address_type, "ports": ports, "endpoints": endpoints})
}

fn secret(rng: &mut Rng, namespace: &str, name: &str, certs: &[(String, String)]) -> Value {
    let (crt, key) = rng.pick(certs).clone();
    let key = if rng.chance(20) {
        "garbage".to_string()
    } else {
        key
    };
    let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(rng, namespace, name),
                            "stringData": {"tls.crt": crt, "tls.key": key}});
    secret["type"] = json!(if rng.chance(90) {
        "kubernetes.io/tls"
    } else {
        "Opaque"
    });
    secret
}

fn class(rng: &mut Rng, name: &str) -> Value {
    let controller = if rng.chance(80) {
        our_class()
    } else {
        "example.com/other"
    };
    let default = if rng.chance(40) { "true" } else { "false" };
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
           "metadata": {"name": name,
                        "annotations": {"ingressclass.kubernetes.io/is-default-class": default}},
           "spec": {"controller": controller}})
}

fn policy(rng: &mut Rng, namespace: &str, name: &str) -> Value {
    let mut spec = json!({"targetRef": {"kind": "Service", "name": rng.pick(&SERVICES)}});
    if rng.chance(50) {
        spec["loadBalancer"] = json!({"policy": rng.pick(&["least-request", "consistent-hash"]),
                                      "hashBy": rng.pick(&["path", "bogus"])});
    }
    if rng.chance(40) {
        spec["endpointWeights"] = json!([{"address": rng.pick(&ADDRESSES), "weight": 5},
                                         {"podName": "p1", "weight": 2000}]);
    }
    if rng.chance(30) {
        spec["healthCheck"] = json!({"path": "/hz", "intervalSeconds": rng.pick(&[5, 0])});
    }
    if rng.chance(30) {
        spec["slowStart"] = json!(rng.pick(&["30s", "bad"]));
    }
    json!({"apiVersion": "pier.dev/v1alpha1", "kind": "BackendPolicy",
           "metadata": meta(rng, namespace, name), "spec": spec})
}

pub(super) fn parse(value: &Value) -> Object {
    crate::source::parse_one(&value.to_string())
}

/// One random change: an object of a random kind is created, replaced (possibly by an equal
/// copy: a new allocation with the same content) or deleted.
pub(super) fn change(rng: &mut Rng, store: &mut Store, certs: &[(String, String)]) {
    let namespace = *rng.pick(&NAMESPACES);
    let (kind, name) = match rng.below(18) {
        0..=7 => ("Ingress", format!("i{}", rng.below(6))),
        8..=10 => ("Service", rng.pick(&SERVICES).to_string()),
        11..=14 => ("EndpointSlice", format!("e{}", rng.below(5))),
        15 => ("Secret", format!("tls{}", rng.below(2))),
        16 => ("IngressClass", rng.pick(&["pier", "other"]).to_string()),
        _ => ("BackendPolicy", format!("p{}", rng.below(2))),
    };
    let key = match kind {
        "IngressClass" => ObjectKey::new("", &name),
        _ => ObjectKey::new(namespace, &name),
    };
    if store.contains(kind, &key) && rng.chance(15) {
        match kind {
            "Ingress" => drop(store.ingresses.remove(&key)),
            "Service" => drop(store.services.remove(&key)),
            "EndpointSlice" => drop(store.endpoint_slices.remove(&key)),
            "Secret" => drop(store.secrets.remove(&key)),
            "IngressClass" => drop(store.ingress_classes.remove(&key)),
            _ => drop(store.backend_policies.remove(&key)),
        }
        return;
    }
    if store.contains(kind, &key) && rng.chance(10) {
        // Same content, new allocation: what a re-list or a rewritten file brings.
        let copy = match kind {
            "Ingress" => Object::Ingress(Arc::new((*store.ingresses[&key]).clone())),
            "Service" => Object::Service(Arc::new((*store.services[&key]).clone())),
            "EndpointSlice" => {
                Object::EndpointSlice(Arc::new((*store.endpoint_slices[&key]).clone()))
            }
            "Secret" => Object::Secret(Arc::new((*store.secrets[&key]).clone())),
            "IngressClass" => {
                Object::IngressClass(Arc::new((*store.ingress_classes[&key]).clone()))
            }
            _ => Object::BackendPolicy(Arc::new((*store.backend_policies[&key]).clone())),
        };
        store.insert(copy);
        return;
    }
    let value = match kind {
        "Ingress" => ingress(rng, namespace, &name),
        "Service" => service(rng, namespace, &name),
        "EndpointSlice" => slice(rng, namespace, &name),
        "Secret" => secret(rng, namespace, &name, certs),
        "IngressClass" => class(rng, &name),
        _ => policy(rng, namespace, &name),
    };
    store.insert(parse(&value));
}
