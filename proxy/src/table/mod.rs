//! The routing table: plain, immutable data describing where every request goes.
//!
//! It is produced by the controller's `translate()` and consumed by the proxy runtime. It holds
//! no tokio, kube or pingora types, so it can be built, compared and printed anywhere.

mod host;
mod path;
mod policy;
mod tls;

pub use host::{normalize_host, HostMap, HostMatch};
pub use path::{PathKind, PathMatch};
pub use policy::{
    ActiveCheck, Affinity, Algorithm, Canary, HashKey, HeaderRule, HealthPolicy, LbPolicy,
    OutlierPolicy, UpstreamPolicy,
};
pub use tls::{BackendProtocol, HostTls, TlsCertificate};

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything the proxy needs to route requests. Compare two tables with `==` to skip no-op updates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoutingTable {
    /// Virtual hosts, at most one per distinct [`HostMatch`]. Shared, so that a producer can
    /// hand the same host to consecutive tables and the router recompiles only what changed.
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
    /// Backend for requests that match no virtual host or no route and have no host-level default.
    pub default_backend: Option<BackendGroup>,
    /// TLS bindings declared by Ingresses (hosts → Secret), kept for the TLS listener.
    pub tls: Vec<TlsBinding>,
    /// Certificate for unknown SNI, no SNI and hosts without a usable Secret
    /// (`--default-certificate`); `None`: the proxy's self-signed one.
    pub default_certificate: Option<TlsCertificate>,
    /// Redirect and HSTS policy of the hosts that have TLS, at most one per [`HostMatch`].
    pub tls_hosts: Vec<HostTls>,
    /// Backends not spoken to in clear-text HTTP/1.1, by [`ServiceBackend::id`]. One protocol
    /// per Service port (translate() resolves conflicts), so balancers shared by id stay right.
    pub backend_protocols: BTreeMap<Arc<str>, BackendProtocol>,
}

/// The routes that apply to one host pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualHost {
    /// Which request hosts this virtual host answers.
    pub host: HostMatch,
    /// Routes in any order; the matcher picks the longest matching path (Exact on a tie).
    pub routes: Vec<Route>,
    /// Backend for requests to this host that match no route (from the Ingress `defaultBackend`).
    pub default_backend: Option<BackendGroup>,
}

/// One path rule and where it sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The path the request must match.
    pub path: PathMatch,
    /// Where matching requests go.
    pub backend: BackendGroup,
    /// The object this route came from, `namespace/name` of the Ingress; used in metrics and logs.
    pub source: Arc<str>,
}

/// A set of weighted services sharing a route's traffic (a single service without traffic split).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendGroup {
    /// The services; each request goes to one of them in proportion to its weight.
    pub services: Vec<ServiceBackend>,
    /// A canary backend taking a share of the traffic or the requests that ask for it.
    pub canary: Option<Box<Canary>>,
}

/// One Kubernetes Service port as a backend: its identity, its endpoints and whether it is usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceBackend {
    /// `namespace/name:port`, unique per Service port; keys per-backend state in the proxy.
    pub id: Arc<str>,
    /// Relative share of the group's traffic.
    pub weight: u32,
    /// All known endpoints with their conditions; the proxy decides which are routable.
    /// Shared: every route to the same Service port holds the same list.
    pub endpoints: Arc<[Endpoint]>,
    /// Why this backend cannot serve, if it cannot (the proxy answers 503).
    pub unavailable: Option<String>,
    /// How endpoints are picked.
    pub policy: LbPolicy,
}

/// One endpoint (pod address and port) of a Service, with its EndpointSlice conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    /// Where to connect.
    pub address: SocketAddr,
    /// Relative weight among the Service's endpoints (default 1; 0 receives nothing).
    pub weight: u32,
    /// `conditions.ready` (absent means ready).
    pub ready: bool,
    /// `conditions.serving` (absent means the value of `ready`).
    pub serving: bool,
    /// `conditions.terminating` (absent means false).
    pub terminating: bool,
}

/// Hosts that a TLS Secret covers, as declared in an Ingress `tls` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsBinding {
    /// Host names (may include `*.` wildcards).
    pub hosts: Vec<String>,
    /// `namespace/name` of the `kubernetes.io/tls` Secret.
    pub secret: String,
    /// `namespace/name` of the Ingress that declared it.
    pub source: String,
    /// The Secret's certificate; `None` when it is missing or invalid (its hosts then get the
    /// default certificate, and translate() reported why).
    pub certificate: Option<TlsCertificate>,
}

impl ServiceBackend {
    /// The endpoints that may receive new requests: the ready ones, or when none is ready, the
    /// ones that are still serving while terminating. Never an endpoint with `serving == false`.
    pub fn routable_endpoints(&self) -> Vec<Endpoint> {
        self.routable().copied().collect()
    }

    /// The endpoints of [`ServiceBackend::routable_endpoints`], in order, without copying them.
    pub fn routable(&self) -> impl Iterator<Item = &Endpoint> {
        let routable = self.routable_filter();
        self.endpoints.iter().filter(move |e| routable(e))
    }

    /// Whether an endpoint of this backend is one of its routable endpoints.
    pub fn routable_filter(&self) -> impl Fn(&Endpoint) -> bool {
        let any_ready = self.endpoints.iter().any(|e| e.ready);
        move |e: &Endpoint| {
            if any_ready {
                e.ready
            } else {
                e.serving && e.terminating
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16, ready: bool, serving: bool, terminating: bool) -> Endpoint {
        Endpoint {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            weight: 1,
            ready,
            serving,
            terminating,
        }
    }

    fn backend(endpoints: Vec<Endpoint>) -> ServiceBackend {
        ServiceBackend {
            id: Arc::from("default/svc:80"),
            weight: 1,
            endpoints: endpoints.into(),
            unavailable: None,
            policy: LbPolicy::default(),
        }
    }

    #[test]
    fn ready_endpoints_are_preferred() {
        let b = backend(vec![ep(1, true, true, false), ep(2, false, true, true)]);
        assert_eq!(b.routable_endpoints(), vec![ep(1, true, true, false)]);
    }

    #[test]
    fn serving_terminating_is_the_fallback_when_none_is_ready() {
        let b = backend(vec![ep(1, false, false, true), ep(2, false, true, true)]);
        assert_eq!(b.routable_endpoints(), vec![ep(2, false, true, true)]);
    }

    #[test]
    fn not_serving_is_never_routable() {
        let b = backend(vec![ep(1, false, false, false), ep(2, false, false, true)]);
        assert!(b.routable_endpoints().is_empty());
    }
}
