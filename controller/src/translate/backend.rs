//! Backend resolution: Ingress service reference → Service port → EndpointSlice endpoints.
//!
//! A backend that cannot be resolved still becomes a [`ServiceBackend`] (with `unavailable`
//! set) so its route exists and the proxy answers 503 instead of falling through to another
//! route or the default backend.

use super::changes::SliceIndex;
use super::policy::{self, Layers, PolicyIndex};
use crate::diagnostic::Diagnostic;
use crate::store::{self, KeyRef, ObjectKey, Store};
use crds::BackendPolicy;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::networking::v1::ServiceBackendPort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::{Endpoint, LbPolicy, ServiceBackend};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Weight of a Service that does not share its route with others.
const SINGLE_SERVICE_WEIGHT: u32 = 100;

/// A Service port as an Ingress names it; kept as written because it is part of the backend id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PortRef {
    /// `port.name`, matched against the Service port's `name`.
    Name(String),
    /// `port.number`, matched against the Service port's `port`.
    Number(i32),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Name(n) => f.write_str(n),
            PortRef::Number(n) => write!(f, "{n}"),
        }
    }
}

impl PortRef {
    /// The port an Ingress backend names: `name` when set and non-empty, else `number`.
    pub(crate) fn from_backend_port(port: &ServiceBackendPort) -> Option<PortRef> {
        match (&port.name, port.number) {
            (Some(name), _) if !name.is_empty() => Some(PortRef::Name(name.clone())),
            (_, Some(number)) => Some(PortRef::Number(number)),
            _ => None,
        }
    }
}

/// What translate reads about one Service, looked up once per translation however many
/// paths name it.
struct ServiceEntry {
    /// `namespace/name`, naming the Service in Diagnostics.
    name: String,
    /// The Service, when it exists.
    service: Option<Arc<Service>>,
    /// The BackendPolicy in effect with its `namespace/name`.
    policy: Option<(String, Arc<BackendPolicy>)>,
    /// The backends of the ports named so far (a Service has few), with what resolving
    /// them reported.
    ports: Vec<(PortRef, ServiceBackend, Vec<Diagnostic>)>,
}

/// Resolves backends against one Store, resolving each Service (and each of its ports) once
/// however many routes name it.
pub(crate) struct Resolver<'a> {
    store: &'a Store,
    slices: &'a SliceIndex,
    /// By `namespace/name`.
    services: HashMap<ObjectKey, ServiceEntry>,
    /// The BackendPolicy in effect for each Service.
    policies: PolicyIndex<'a>,
    /// Problems found in BackendPolicies.
    diagnostics: Vec<Diagnostic>,
    /// The Services resolved since [`Resolver::start_recording`].
    recorded: Vec<ObjectKey>,
}

impl<'a> Resolver<'a> {
    /// A resolver over `store` whose EndpointSlices `slices` indexes.
    pub(crate) fn new(store: &'a Store, slices: &'a SliceIndex) -> Self {
        let mut diagnostics = Vec::new();
        let policies = PolicyIndex::new(store, &mut diagnostics);
        Resolver {
            store,
            slices,
            services: HashMap::new(),
            policies,
            diagnostics,
            recorded: Vec::new(),
        }
    }

    /// The backend for `namespace/service:port` with its load-balancing policy, which also
    /// depends on the Ingress (`ingress`: its `namespace/name` and metadata; `None` for the
    /// controller's default). `unavailable` says why it cannot serve. Problems with its
    /// EndpointSlices and policy go to `out`, every time.
    pub(crate) fn resolve_for(
        &mut self,
        ingress: Option<(&str, &ObjectMeta)>,
        (namespace, service, port): (&str, &str, &PortRef),
        out: &mut Vec<Diagnostic>,
    ) -> ServiceBackend {
        let Resolver {
            store,
            slices,
            services,
            policies,
            recorded,
            ..
        } = self;
        if !recorded
            .iter()
            .any(|k| k.namespace == namespace && k.name == service)
        {
            recorded.push(ObjectKey::new(namespace, service));
        }
        let entry = service_entry(services, store, policies, namespace, service);
        let found = entry.ports.iter().find(|(p, _, _)| p == port);
        let mut backend = match found {
            Some((_, backend, problems)) => {
                out.extend(problems.iter().cloned());
                backend.clone()
            }
            None => {
                let mut problems = Vec::new();
                let ports = Ports {
                    slices,
                    policies,
                    diagnostics: &mut problems,
                };
                let resolved = ports.resolve(namespace, service, entry.service.as_deref(), port);
                out.extend(problems.iter().cloned());
                entry.ports.push((port.clone(), resolved.clone(), problems));
                resolved
            }
        };
        let layers = Layers {
            policy: entry
                .policy
                .as_ref()
                .map(|(name, p)| (name.as_str(), &p.spec)),
            ingress,
            service: entry.service.as_ref().map(|s| (entry.name.as_str(), &**s)),
        };
        backend.policy = policy::resolve_policy(layers, out);
        backend
    }

    /// Starts recording which Services are resolved (to know what a result depends on).
    pub(crate) fn start_recording(&mut self) {
        self.recorded.clear();
    }

    /// The Services resolved since [`Resolver::start_recording`].
    pub(crate) fn take_recorded(&mut self) -> Vec<ObjectKey> {
        std::mem::take(&mut self.recorded)
    }

    /// Diagnostics about BackendPolicies.
    pub(crate) fn finish(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

/// The entry of Service `namespace/name`, looked up the first time it is named.
fn service_entry<'s>(
    services: &'s mut HashMap<ObjectKey, ServiceEntry>,
    store: &Store,
    policies: &PolicyIndex<'_>,
    namespace: &str,
    name: &str,
) -> &'s mut ServiceEntry {
    if !services.contains_key(&(namespace, name) as &dyn KeyRef) {
        let entry = ServiceEntry {
            name: store::key_name(namespace, name),
            service: store::find(&store.services, namespace, name).cloned(),
            policy: policies
                .get(namespace, name)
                .map(|(k, p)| (k.to_string(), p.clone())),
            ports: Vec::with_capacity(1),
        };
        services.insert(ObjectKey::new(namespace, name), entry);
    }
    services
        .get_mut(&(namespace, name) as &dyn KeyRef)
        .expect("just inserted")
}

/// Resolves the ports of Services against their EndpointSlices.
struct Ports<'r, 'a> {
    slices: &'r SliceIndex,
    policies: &'r PolicyIndex<'a>,
    diagnostics: &'r mut Vec<Diagnostic>,
}

impl Ports<'_, '_> {
    /// The backend of port `port` of Service `namespace/service` (`svc` when it exists), with
    /// the default policy.
    fn resolve(
        self,
        namespace: &str,
        service: &str,
        svc: Option<&Service>,
        port: &PortRef,
    ) -> ServiceBackend {
        let mut backend = ServiceBackend {
            id: Arc::from(format!("{namespace}/{service}:{port}")),
            weight: SINGLE_SERVICE_WEIGHT,
            endpoints: Arc::from([]),
            unavailable: None,
            policy: LbPolicy::default(),
        };
        let Some(svc) = svc else {
            backend.unavailable = Some(format!("service {namespace}/{service} not found"));
            return backend;
        };
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            backend.unavailable = Some("ExternalName services are not supported".to_string());
            return backend;
        }
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let Some(service_port) = ports.iter().find(|p| port_matches(p, port)) else {
            backend.unavailable = Some(format!("service {namespace}/{service} has no port {port}"));
            return backend;
        };
        backend.endpoints = self.endpoints(namespace, service, service_port).into();
        backend
    }

    /// The union of the Service's slices, one Endpoint per address (the most usable one wins
    /// when slices disagree, e.g. during a rollout; the first seen on a tie), sorted by address.
    fn endpoints(
        self,
        namespace: &str,
        service: &str,
        service_port: &ServicePort,
    ) -> Vec<Endpoint> {
        let wanted = unnamed_if_empty(service_port.name.as_deref());
        let weights = self.policies.weights(namespace, service);
        let mut found: Vec<Endpoint> = Vec::new();
        for (key, slice) in self.slices.of(namespace, service) {
            if slice.fqdn {
                continue;
            }
            let port = slice
                .ports
                .iter()
                .find(|p| unnamed_if_empty(p.name.as_deref()) == wanted)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0);
            let Some(port) = port else { continue };
            found.reserve(slice.endpoints.len());
            for endpoint in &slice.endpoints {
                let ip = match &endpoint.address {
                    Ok(ip) => *ip,
                    Err(address) => {
                        self.diagnostics.push(Diagnostic::new(
                            "EndpointSlice",
                            key.to_string(),
                            format!("address {address:?} is not an IP address; skipped"),
                        ));
                        continue;
                    }
                };
                found.push(Endpoint {
                    address: SocketAddr::new(ip, port),
                    weight: weights.weight(ip, endpoint.pod.as_deref()),
                    ready: endpoint.ready,
                    serving: endpoint.serving,
                    terminating: endpoint.terminating,
                });
            }
        }
        if found.windows(2).all(|w| w[0].address < w[1].address) {
            // Already sorted and without duplicates (the common case: one slice).
            return found;
        }
        // Stable: among equally usable duplicates the first seen stays first and is kept.
        found.sort_by(|a, b| {
            a.address
                .cmp(&b.address)
                .then_with(|| usability(b).cmp(&usability(a)))
        });
        found.dedup_by_key(|e| e.address);
        found
    }
}

/// Orders duplicate endpoints: ready first, then serving, then not terminating.
fn usability(e: &Endpoint) -> (bool, bool, bool) {
    (e.ready, e.serving, !e.terminating)
}

fn port_matches(service_port: &ServicePort, port: &PortRef) -> bool {
    match port {
        PortRef::Name(name) => service_port.name.as_deref() == Some(name.as_str()),
        PortRef::Number(n) => service_port.port == *n,
    }
}

/// Kubernetes writes an unnamed port both as an absent and as an empty name.
fn unnamed_if_empty(name: Option<&str>) -> Option<&str> {
    name.filter(|n| !n.is_empty())
}

/// Parses the controller's `--default-backend` value, `namespace/name:port`.
pub(crate) fn parse_backend_ref(value: &str) -> Option<(&str, &str, PortRef)> {
    let (namespace, rest) = value.split_once('/')?;
    let (name, port) = rest.rsplit_once(':')?;
    if namespace.is_empty() || name.is_empty() || port.is_empty() {
        return None;
    }
    let port = match port.parse::<i32>() {
        Ok(n) => PortRef::Number(n),
        Err(_) => PortRef::Name(port.to_string()),
    };
    Some((namespace, name, port))
}
