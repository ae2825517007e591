//! The compiled matcher: a [`RoutingTable`] turned into hash maps for the hot path.
//!
//! Host lookup is one or two hash probes (exact, then wildcard by dropping the first label),
//! path lookup one probe for Exact plus one per path segment for Prefix, longest first. Nothing
//! scans the list of hosts or routes per request.

use crate::lb::ServiceBalancer;
use crate::table::{normalize_host, BackendGroup, HostMatch, PathKind, RoutingTable};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where a request goes: the backend group plus the label of the route for metrics and logs.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// The weighted services that may serve the request.
    pub group: Arc<Group>,
    /// `namespace/ingress` of the route, or `default-backend`.
    pub label: Arc<str>,
}

/// A backend group ready for picking.
#[derive(Debug)]
pub struct Group {
    services: Vec<(u32, Arc<ServiceBalancer>)>,
    total_weight: u64,
    next: AtomicUsize,
}

impl Group {
    fn compile(group: &BackendGroup, balancers: &mut BalancerCache) -> Group {
        let services: Vec<(u32, Arc<ServiceBalancer>)> = group
            .services
            .iter()
            .map(|s| (s.weight, balancers.get(s)))
            .collect();
        let total_weight = services.iter().map(|(w, _)| u64::from(*w)).sum();
        Group {
            services,
            total_weight,
            next: AtomicUsize::new(0),
        }
    }

    /// Picks the service for one request in proportion to the services' weights.
    pub fn pick_service(&self) -> Option<&Arc<ServiceBalancer>> {
        match self.services.len() {
            0 => None,
            1 => Some(&self.services[0].1),
            _ if self.total_weight == 0 => None,
            _ => {
                let n = self.next.fetch_add(1, Ordering::Relaxed) as u64 % self.total_weight;
                let mut acc = 0u64;
                for (w, s) in &self.services {
                    acc += u64::from(*w);
                    if n < acc {
                        return Some(s);
                    }
                }
                None
            }
        }
    }
}

/// Reuses one balancer per service id while compiling, so routes sharing a Service share its
/// round-robin position and (later) its load state.
#[derive(Default)]
struct BalancerCache {
    by_id: HashMap<Arc<str>, Arc<ServiceBalancer>>,
}

impl BalancerCache {
    fn get(&mut self, s: &crate::table::ServiceBackend) -> Arc<ServiceBalancer> {
        self.by_id
            .entry(s.id.clone())
            .or_insert_with(|| Arc::new(ServiceBalancer::new(s)))
            .clone()
    }
}

#[derive(Debug, Default)]
struct CompiledHost {
    exact: HashMap<String, RouteTarget>,
    prefix: HashMap<String, RouteTarget>,
    default_backend: Option<RouteTarget>,
}

impl CompiledHost {
    fn lookup(&self, path: &str) -> Option<&RouteTarget> {
        if let Some(t) = self.exact.get(path) {
            return Some(t);
        }
        if self.prefix.is_empty() {
            return None;
        }
        // Longest prefix first: the whole path without trailing slashes, then drop one
        // `/`-separated element at a time, ending with the root.
        let mut candidate = path.trim_end_matches('/');
        loop {
            if candidate.is_empty() {
                return self.prefix.get("/");
            }
            if let Some(t) = self.prefix.get(candidate) {
                return Some(t);
            }
            match candidate.rfind('/') {
                Some(i) => candidate = &candidate[..i],
                None => return None,
            }
        }
    }
}

/// The immutable, compiled form of one routing table; swapped as a whole.
#[derive(Debug, Default)]
pub struct Router {
    exact_hosts: HashMap<String, CompiledHost>,
    wildcard_hosts: HashMap<String, CompiledHost>,
    any_host: Option<CompiledHost>,
    default_backend: Option<RouteTarget>,
    table: Arc<RoutingTable>,
}

impl Router {
    /// Compiles a routing table.
    pub fn new(table: Arc<RoutingTable>) -> Router {
        let mut balancers = BalancerCache::default();
        let mut router = Router {
            default_backend: table.default_backend.as_ref().map(|g| RouteTarget {
                group: Arc::new(Group::compile(g, &mut balancers)),
                label: Arc::from("default-backend"),
            }),
            ..Router::default()
        };
        for vhost in &table.virtual_hosts {
            let mut host = CompiledHost {
                default_backend: vhost.default_backend.as_ref().map(|g| RouteTarget {
                    group: Arc::new(Group::compile(g, &mut balancers)),
                    label: Arc::from("default-backend"),
                }),
                ..CompiledHost::default()
            };
            for route in &vhost.routes {
                let target = RouteTarget {
                    group: Arc::new(Group::compile(&route.backend, &mut balancers)),
                    label: Arc::from(route.source.as_str()),
                };
                let map = match route.path.kind {
                    PathKind::Exact => &mut host.exact,
                    PathKind::Prefix => &mut host.prefix,
                };
                // translate() already resolved conflicts; keep the first on a duplicate.
                map.entry(route.path.path.clone()).or_insert(target);
            }
            match &vhost.host {
                HostMatch::Exact(h) => {
                    router.exact_hosts.insert(h.clone(), host);
                }
                HostMatch::Wildcard(s) => {
                    router.wildcard_hosts.insert(s.clone(), host);
                }
                HostMatch::Any => router.any_host = Some(host),
            }
        }
        router.table = table;
        router
    }

    /// The table this router was compiled from.
    pub fn table(&self) -> &Arc<RoutingTable> {
        &self.table
    }

    /// Finds where a request goes. `host` is the raw Host header or `:authority`; `path` is the
    /// request path without the query string. `None` means 404.
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteTarget> {
        let host = normalize_host(host);
        let vhost = self.exact_hosts.get(&host).or_else(|| {
            let wildcard = match host.split_once('.') {
                Some((label, rest)) if !label.is_empty() => self.wildcard_hosts.get(rest),
                _ => None,
            };
            wildcard.or(self.any_host.as_ref())
        });
        match vhost {
            Some(v) => v
                .lookup(path)
                .or(v.default_backend.as_ref())
                .or(self.default_backend.as_ref()),
            None => self.default_backend.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests;
