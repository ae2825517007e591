//! Builders for the Kubernetes objects pier reads from manifest files.
//!
//! Every builder returns YAML text for one or more documents; [`join`] concatenates them into
//! a multi-document file. Services expose port 80 named `http`; their EndpointSlices carry the
//! real (loopback) addresses and ports of the echo backends under the same port name.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The namespace the tests put everything in.
pub const NAMESPACE: &str = "default";
/// The Service port every test Service exposes (Ingresses refer to it by number or by name).
pub const SERVICE_PORT: u16 = 80;
/// The name of that Service port, and of the EndpointSlice ports behind it.
pub const SERVICE_PORT_NAME: &str = "http";

/// One endpoint of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// IPv4 address and port.
    pub addr: SocketAddr,
    /// `conditions.ready` (when false, `serving` and `terminating` are false too).
    pub ready: bool,
}

impl Endpoint {
    /// A ready endpoint.
    pub fn ready(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, ready: true }
    }

    /// An endpoint that is neither ready nor serving.
    pub fn not_ready(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, ready: false }
    }
}

/// Ingress path types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathType {
    /// Whole path, case-sensitive.
    Exact,
    /// Element-wise prefix.
    Prefix,
    /// Treated as Prefix by pier.
    ImplementationSpecific,
}

impl PathType {
    fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// Renders one object as a YAML document (without the `---` separator).
fn to_yaml(value: &Value) -> String {
    serde_yaml::to_string(value).expect("a JSON value always renders as YAML")
}

/// Concatenates documents into one multi-document YAML file.
pub fn join<S: AsRef<str>>(docs: &[S]) -> String {
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        out.push_str(doc.as_ref());
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The IngressClass `pier`, owned by pier's controller name.
pub fn ingress_class() -> String {
    to_yaml(&json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": { "name": "pier" },
        "spec": { "controller": "pier.dev/ingress-controller" },
    }))
}

/// A ClusterIP Service `namespace/name` with port 80 named `http` (targetPort 8080, which pier
/// must not use: the EndpointSlice port is the real one).
pub fn service(namespace: &str, name: &str) -> String {
    to_yaml(&json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "type": "ClusterIP",
            "ports": [{
                "name": SERVICE_PORT_NAME,
                "port": SERVICE_PORT,
                "targetPort": 8080,
                "protocol": "TCP",
            }],
        },
    }))
}

/// EndpointSlices for Service `namespace/service`: one slice per distinct endpoint port (a
/// slice's port applies to all its endpoints), named `<service>-<n>`.
pub fn endpoint_slices(namespace: &str, service: &str, endpoints: &[Endpoint]) -> Vec<String> {
    let mut by_port: BTreeMap<u16, Vec<&Endpoint>> = BTreeMap::new();
    for endpoint in endpoints {
        by_port
            .entry(endpoint.addr.port())
            .or_default()
            .push(endpoint);
    }
    by_port
        .into_iter()
        .enumerate()
        .map(|(index, (port, endpoints))| {
            let endpoints: Vec<Value> = endpoints
                .iter()
                .map(|e| {
                    json!({
                        "addresses": [e.addr.ip().to_string()],
                        "conditions": {
                            "ready": e.ready,
                            "serving": e.ready,
                            "terminating": false,
                        },
                    })
                })
                .collect();
            to_yaml(&json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{service}-{index}"),
                    "namespace": namespace,
                    "labels": { "kubernetes.io/service-name": service },
                },
                "addressType": "IPv4",
                "ports": [{ "name": SERVICE_PORT_NAME, "port": port, "protocol": "TCP" }],
                "endpoints": endpoints,
            }))
        })
        .collect()
}

/// A Service and its EndpointSlices, as one multi-document YAML text.
pub fn backend(namespace: &str, name: &str, endpoints: &[Endpoint]) -> String {
    let mut docs = vec![service(namespace, name)];
    docs.extend(endpoint_slices(namespace, name, endpoints));
    join(&docs)
}

/// How an Ingress backend names its Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    /// `port.number`.
    Number(u16),
    /// `port.name`.
    Name(String),
}

/// One path of an Ingress rule.
#[derive(Debug, Clone)]
struct Route {
    host: String,
    path: String,
    path_type: PathType,
    service: String,
    port: PortRef,
}

/// Builder of an Ingress of class `pier`:
/// `Ingress::new("default", "site").route("a.example", "/", PathType::Prefix, "svc").to_yaml()`.
#[derive(Debug, Clone)]
pub struct Ingress {
    namespace: String,
    name: String,
    routes: Vec<Route>,
    annotations: Vec<(String, String)>,
}

impl Ingress {
    /// An Ingress without rules.
    pub fn new(namespace: &str, name: &str) -> Ingress {
        Ingress {
            namespace: namespace.to_string(),
            name: name.to_string(),
            routes: Vec::new(),
            annotations: Vec::new(),
        }
    }

    /// Adds annotation `key: value` (e.g. `pier.dev/load-balance`).
    pub fn annotation(mut self, key: &str, value: &str) -> Ingress {
        self.annotations.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds `host` + `path` → `service`:80 (by number). An empty `host` means a rule without
    /// host.
    pub fn route(self, host: &str, path: &str, path_type: PathType, service: &str) -> Ingress {
        self.route_port(
            host,
            path,
            path_type,
            service,
            PortRef::Number(SERVICE_PORT),
        )
    }

    /// Adds `host` + `path` → `service` on the given port reference.
    pub fn route_port(
        mut self,
        host: &str,
        path: &str,
        path_type: PathType,
        service: &str,
        port: PortRef,
    ) -> Ingress {
        self.routes.push(Route {
            host: host.to_string(),
            path: path.to_string(),
            path_type,
            service: service.to_string(),
            port,
        });
        self
    }

    /// The Ingress as a YAML document; routes of the same host share one rule, in order.
    pub fn to_yaml(&self) -> String {
        let mut hosts: Vec<&str> = Vec::new();
        for route in &self.routes {
            if !hosts.contains(&route.host.as_str()) {
                hosts.push(&route.host);
            }
        }
        let rules: Vec<Value> = hosts
            .iter()
            .map(|host| {
                let paths: Vec<Value> = self
                    .routes
                    .iter()
                    .filter(|r| r.host == *host)
                    .map(|r| {
                        let port = match &r.port {
                            PortRef::Number(n) => json!({ "number": n }),
                            PortRef::Name(n) => json!({ "name": n }),
                        };
                        json!({
                            "path": r.path,
                            "pathType": r.path_type.as_str(),
                            "backend": { "service": { "name": r.service, "port": port } },
                        })
                    })
                    .collect();
                let mut rule = json!({ "http": { "paths": paths } });
                if !host.is_empty() {
                    rule["host"] = json!(host);
                }
                rule
            })
            .collect();
        let annotations: serde_json::Map<String, Value> = self
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        to_yaml(&json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": annotations,
            },
            "spec": { "ingressClassName": "pier", "rules": rules },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_group_endpoints_by_port() {
        let a: SocketAddr = "127.0.0.21:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.22:1000".parse().unwrap();
        let c: SocketAddr = "127.0.0.23:2000".parse().unwrap();
        let slices = endpoint_slices(
            "default",
            "svc",
            &[
                Endpoint::ready(a),
                Endpoint::ready(b),
                Endpoint::not_ready(c),
            ],
        );
        assert_eq!(slices.len(), 2);
        let first: Value = serde_yaml::from_str(&slices[0]).unwrap();
        assert_eq!(first["ports"][0]["port"], 1000);
        assert_eq!(first["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(
            first["metadata"]["labels"]["kubernetes.io/service-name"],
            "svc"
        );
        let second: Value = serde_yaml::from_str(&slices[1]).unwrap();
        assert_eq!(second["endpoints"][0]["conditions"]["ready"], false);
        assert_eq!(second["endpoints"][0]["addresses"][0], "127.0.0.23");
    }

    #[test]
    fn ingress_groups_paths_by_host() {
        let yaml = Ingress::new("default", "site")
            .route("a.example", "/", PathType::Prefix, "one")
            .route("b.example", "/x", PathType::Exact, "two")
            .route("a.example", "/api", PathType::Prefix, "two")
            .route("", "/", PathType::Prefix, "three")
            .to_yaml();
        let v: Value = serde_yaml::from_str(&yaml).unwrap();
        let rules = v["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0]["host"], "a.example");
        assert_eq!(rules[0]["http"]["paths"].as_array().unwrap().len(), 2);
        assert!(rules[2].get("host").is_none());
        assert_eq!(v["spec"]["ingressClassName"], "pier");
    }

    #[test]
    fn join_separates_documents() {
        let text = join(&[ingress_class(), service("default", "s")]);
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "Service");
    }
}
