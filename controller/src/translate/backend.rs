//! Backend resolution: Ingress service reference → Service port → EndpointSlice endpoints.
//!
//! A backend that cannot be resolved still becomes a [`ServiceBackend`] (with `unavailable`
//! set) so its route exists and the proxy answers 503 instead of falling through to another
//! route or the default backend.

use super::memo::{BackendMemo, Inputs};
use super::policy::{self, Layers, PolicyIndex};
use crate::diagnostic::Diagnostic;
use crate::store::{self, ObjectKey, Store};
use crds::BackendPolicy;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceBackendPort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::{Endpoint, LbPolicy, ServiceBackend};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
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

/// EndpointSlices by namespace and Service (label `kubernetes.io/service-name`), in Store key
/// order for determinism; built once per translation so a Service's slices are one lookup.
pub(crate) struct SliceIndex<'a> {
    by_namespace: HashMap<&'a str, HashMap<&'a str, Vec<SliceRef<'a>>>>,
}

/// An EndpointSlice with its key (for diagnostics).
pub(crate) type SliceRef<'a> = (&'a ObjectKey, &'a Arc<EndpointSlice>);

impl<'a> SliceIndex<'a> {
    /// Indexes every slice labelled with its Service's name.
    pub(crate) fn new(store: &'a Store) -> SliceIndex<'a> {
        let mut by_namespace: HashMap<&str, HashMap<&str, Vec<SliceRef<'a>>>> = HashMap::new();
        for (key, slice) in &store.endpoint_slices {
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(service) = service {
                by_namespace
                    .entry(key.namespace.as_str())
                    .or_default()
                    .entry(service.as_str())
                    .or_default()
                    .push((key, slice));
            }
        }
        SliceIndex { by_namespace }
    }

    /// The slices of Service `namespace/service`.
    pub(crate) fn of(&self, namespace: &str, service: &str) -> &[SliceRef<'a>] {
        self.by_namespace
            .get(namespace)
            .and_then(|m| m.get(service))
            .map_or(&[], Vec::as_slice)
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

/// What translate reads about one Service, looked up once however many paths name it.
struct ServiceEntry<'a> {
    /// `namespace/name`, naming the Service in Diagnostics.
    name: String,
    /// The Service, when it exists.
    service: Option<&'a Arc<Service>>,
    /// The BackendPolicy in effect with its `namespace/name`.
    policy: Option<(String, &'a BackendPolicy)>,
    /// The backends of the ports named so far (a Service has few).
    ports: Vec<(PortRef, ServiceBackend)>,
}

/// Resolves backends against one Store, indexing EndpointSlices once and resolving each
/// Service (and each of its ports) once however many routes name it, or not at all when the
/// memo of earlier translations has it.
pub(crate) struct Resolver<'a> {
    store: &'a Store,
    slices: SliceIndex<'a>,
    memo: BackendMemo,
    /// By `(namespace, name)`.
    services: HashMap<(&'a str, &'a str), ServiceEntry<'a>>,
    /// The BackendPolicy in effect for each Service.
    policies: PolicyIndex<'a>,
    /// Problems found in EndpointSlices, BackendPolicies and load-balancing settings.
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Resolver<'a> {
    /// Indexes the Store's EndpointSlices by Service so each lookup is one hash probe; `memo`
    /// holds the backends of earlier translations.
    pub(crate) fn new(store: &'a Store, mut memo: BackendMemo) -> Resolver<'a> {
        let slices = SliceIndex::new(store);
        let mut diagnostics = Vec::new();
        let policies = PolicyIndex::new(store, &mut diagnostics);
        memo.start();
        Resolver {
            store,
            slices,
            memo,
            services: HashMap::with_capacity(store.services.len()),
            policies,
            diagnostics,
        }
    }

    /// The backend for `namespace/service:port` with its load-balancing policy, which also
    /// depends on the Ingress (`ingress`: its `namespace/name` and metadata; `None` for the
    /// controller's default). `unavailable` says why it cannot serve.
    pub(crate) fn resolve_for(
        &mut self,
        ingress: Option<(&str, &ObjectMeta)>,
        namespace: &'a str,
        service: &'a str,
        port: &PortRef,
    ) -> ServiceBackend {
        let Resolver {
            store,
            slices,
            memo,
            services,
            policies,
            diagnostics,
        } = self;
        let entry = service_entry(services, store, policies, namespace, service);
        let found = entry.ports.iter().find(|(p, _)| p == port);
        let mut backend = match found {
            Some((_, backend)) => backend.clone(),
            None => {
                let inputs = Inputs {
                    service: entry.service,
                    slices: slices.of(namespace, service),
                    policy: policies.get(namespace, service).map(|(_, p)| p),
                };
                let svc = entry.service.map(|s| &**s);
                let at = (namespace, service, port);
                let resolved = memo.resolve(at, inputs, diagnostics, |out| {
                    let ports = Ports {
                        slices,
                        policies,
                        diagnostics: out,
                    };
                    ports.resolve(namespace, service, svc, port)
                });
                entry.ports.push((port.clone(), resolved.clone()));
                resolved
            }
        };
        let layers = Layers {
            policy: entry
                .policy
                .as_ref()
                .map(|(name, p)| (name.as_str(), &p.spec)),
            ingress,
            service: entry.service.map(|s| (entry.name.as_str(), &**s)),
        };
        backend.policy = policy::resolve_policy(layers, diagnostics);
        backend
    }

    /// The Service `namespace/name`, when it exists.
    pub(crate) fn service(&mut self, namespace: &'a str, name: &'a str) -> Option<&'a Service> {
        service_entry(
            &mut self.services,
            self.store,
            &self.policies,
            namespace,
            name,
        )
        .service
        .map(|s| &**s)
    }

    /// Diagnostics about EndpointSlices and policies seen while resolving, and the memo for
    /// the next translation.
    pub(crate) fn finish(mut self) -> (Vec<Diagnostic>, BackendMemo) {
        self.memo.finish();
        (self.diagnostics, self.memo)
    }

    /// The EndpointSlice index, for other parts of translate that read slices.
    pub(crate) fn slices(&self) -> &SliceIndex<'a> {
        &self.slices
    }
}

/// The entry of Service `namespace/name`, looked up the first time it is named.
fn service_entry<'s, 'a>(
    services: &'s mut HashMap<(&'a str, &'a str), ServiceEntry<'a>>,
    store: &'a Store,
    policies: &PolicyIndex<'a>,
    namespace: &'a str,
    name: &'a str,
) -> &'s mut ServiceEntry<'a> {
    services
        .entry((namespace, name))
        .or_insert_with(|| ServiceEntry {
            name: store::key_name(namespace, name),
            service: store::find(&store.services, namespace, name),
            policy: policies
                .get(namespace, name)
                .map(|(k, p)| (k.to_string(), &**p)),
            ports: Vec::with_capacity(1),
        })
}

/// Resolves the ports of Services against their EndpointSlices.
struct Ports<'r, 'a> {
    slices: &'r SliceIndex<'a>,
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
        for &(key, slice) in self.slices.of(namespace, service) {
            if slice.address_type == "FQDN" {
                continue;
            }
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| unnamed_if_empty(p.name.as_deref()) == wanted)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0);
            let Some(port) = port else { continue };
            found.reserve(slice.endpoints.len());
            for endpoint in &slice.endpoints {
                let conditions = endpoint.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                let pod = endpoint.target_ref.as_ref().and_then(|r| r.name.as_deref());
                for address in &endpoint.addresses {
                    let Ok(ip) = address.parse::<IpAddr>() else {
                        self.diagnostics.push(Diagnostic::new(
                            "EndpointSlice",
                            key.to_string(),
                            format!("address {address:?} is not an IP address; skipped"),
                        ));
                        continue;
                    };
                    found.push(Endpoint {
                        address: SocketAddr::new(ip, port),
                        weight: weights.weight(ip, pod),
                        ready,
                        serving,
                        terminating,
                    });
                }
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
