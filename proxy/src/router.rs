//! The compiled matcher: a [`RoutingTable`] turned into hash maps for the hot path.
//!
//! Host lookup is one or two hash probes (exact, then wildcard by dropping the first label),
//! path lookup one probe for Exact plus one per path segment for Prefix, longest first. Nothing
//! scans the list of hosts or routes per request.

mod balancers;

use crate::lb::{PickContext, RegistryBuilder, ServiceBalancer};
use crate::metrics::RouteMetrics;
use crate::table::{BackendGroup, HeaderRule, HostMap, PathKind, RoutingTable, VirtualHost};
use balancers::{BalancerCache, Balancers};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where a request goes: the backend group plus the label of the route for metrics and logs.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// The weighted services that may serve the request.
    pub group: Arc<Group>,
    /// `namespace/ingress` of the route, or `default-backend`.
    pub label: Arc<str>,
    /// The route's request metrics, resolved once rather than looked up per request.
    pub metrics: Arc<RouteMetrics>,
}

/// A backend group ready for picking.
#[derive(Debug)]
pub struct Group {
    services: Vec<(u32, Arc<ServiceBalancer>)>,
    total_weight: u64,
    next: AtomicUsize,
    canary: Option<CompiledCanary>,
}

#[derive(Debug)]
struct CompiledCanary {
    balancer: Arc<ServiceBalancer>,
    weight: u32,
    weight_total: u32,
    by_header: Option<HeaderRule>,
    by_cookie: Option<String>,
}

impl CompiledCanary {
    /// Whether this request goes to the canary: header rule, then cookie rule, then weight.
    fn selects(&self, req: &PickContext<'_>, rng: &mut fastrand::Rng) -> bool {
        if let Some(rule) = &self.by_header {
            if let Some(value) = req.header_str(rule.name.as_str()) {
                match &rule.value {
                    Some(wanted) if value == wanted => return true,
                    Some(_) => {}
                    None if value == "always" => return true,
                    None if value == "never" => return false,
                    None => {}
                }
            }
        }
        if let Some(name) = &self.by_cookie {
            match req.cookie(name) {
                Some("always") => return true,
                Some("never") => return false,
                _ => {}
            }
        }
        self.weight > 0 && self.weight_total > 0 && rng.u32(..self.weight_total) < self.weight
    }
}

impl Group {
    fn compile(group: &BackendGroup, balancers: &mut BalancerCache<'_, '_>) -> Group {
        let services: Vec<(u32, Arc<ServiceBalancer>)> = group
            .services
            .iter()
            .map(|s| (s.weight, balancers.get(s)))
            .collect();
        let total_weight = services.iter().map(|(w, _)| u64::from(*w)).sum();
        let canary = group.canary.as_ref().map(|c| CompiledCanary {
            balancer: balancers.get(&c.backend),
            weight: c.weight,
            weight_total: c.weight_total,
            by_header: c.by_header.clone(),
            by_cookie: c.by_cookie.clone(),
        });
        Group {
            services,
            total_weight,
            next: AtomicUsize::new(0),
            canary,
        }
    }

    /// Every balancer this group may pick.
    fn balancers(&self) -> impl Iterator<Item = &Arc<ServiceBalancer>> {
        let canary = self.canary.as_ref().map(|c| &c.balancer);
        self.services.iter().map(|(_, b)| b).chain(canary)
    }

    /// Picks the service for one request: the canary when its rules select it, else one of the
    /// services in proportion to their weights.
    pub fn pick_service(
        &self,
        req: &PickContext<'_>,
        rng: &mut fastrand::Rng,
    ) -> Option<&Arc<ServiceBalancer>> {
        if let Some(canary) = &self.canary {
            if canary.selects(req, rng) {
                return Some(&canary.balancer);
            }
        }
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

/// One virtual host's routes, ready for lookups.
#[derive(Debug, Default)]
struct CompiledHost {
    /// What it was compiled from: a later table that holds the same `Arc` reuses it as is.
    source: Option<Arc<VirtualHost>>,
    exact: crate::FastMap<String, RouteTarget>,
    prefix: crate::FastMap<String, RouteTarget>,
    default_backend: Option<RouteTarget>,
}

impl CompiledHost {
    fn compile(vhost: &Arc<VirtualHost>, balancers: &mut BalancerCache<'_, '_>) -> CompiledHost {
        let mut host = CompiledHost {
            source: Some(vhost.clone()),
            default_backend: vhost.default_backend.as_ref().map(|g| RouteTarget {
                group: Arc::new(Group::compile(g, balancers)),
                label: Arc::from("default-backend"),
                metrics: Arc::default(),
            }),
            ..CompiledHost::default()
        };
        for route in &vhost.routes {
            let target = RouteTarget {
                group: Arc::new(Group::compile(&route.backend, balancers)),
                label: route.source.clone(),
                metrics: Arc::default(),
            };
            let map = match route.path.kind {
                PathKind::Exact => &mut host.exact,
                PathKind::Prefix => &mut host.prefix,
            };
            // translate() already resolved conflicts; keep the first on a duplicate.
            map.entry(route.path.path.clone()).or_insert(target);
        }
        host
    }

    /// The compiled host of the previous router for `vhost`, when it was compiled from the
    /// very same virtual host and its balancers are the ones this table gets.
    fn reuse(
        previous: &Router,
        vhost: &Arc<VirtualHost>,
        balancers: &mut BalancerCache<'_, '_>,
    ) -> Option<Arc<CompiledHost>> {
        let host = previous.hosts.get(&vhost.host)?;
        if !host.source.as_ref().is_some_and(|s| Arc::ptr_eq(s, vhost)) {
            return None;
        }
        let targets = host.exact.values().chain(host.prefix.values());
        let mut groups = targets.chain(&host.default_backend).map(|t| &t.group);
        groups
            .all(|g| g.balancers().all(|b| balancers.adopt(b)))
            .then(|| host.clone())
    }

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
    /// Shared with the next router for every virtual host the next table shares.
    hosts: HostMap<Arc<CompiledHost>>,
    default_backend: Option<RouteTarget>,
    table: Arc<RoutingTable>,
    /// Every balancer of the table, for the debug view and the next table.
    balancers: Balancers,
}

impl Router {
    /// Compiles a routing table; endpoint state is taken from (and recorded in) `registry`.
    pub fn new(table: Arc<RoutingTable>, registry: &mut RegistryBuilder<'_>) -> Router {
        Router::compile(table, registry, &Router::default())
    }

    /// Like [`Router::new`], carrying over the balancers of `previous` whose Service did not
    /// change (with their round-robin positions), and the compiled hosts of `previous` whose
    /// virtual host the new table shares (same `Arc`), so that a change costs what it touches.
    pub fn compile(
        table: Arc<RoutingTable>,
        registry: &mut RegistryBuilder<'_>,
        previous: &Router,
    ) -> Router {
        let mut balancers = BalancerCache::new(&previous.balancers, registry);
        let mut router = Router {
            default_backend: table.default_backend.as_ref().map(|g| RouteTarget {
                group: Arc::new(Group::compile(g, &mut balancers)),
                label: Arc::from("default-backend"),
                metrics: Arc::default(),
            }),
            ..Router::default()
        };
        for vhost in &table.virtual_hosts {
            let host = CompiledHost::reuse(previous, vhost, &mut balancers)
                .unwrap_or_else(|| Arc::new(CompiledHost::compile(vhost, &mut balancers)));
            router.hosts.insert(&vhost.host, host);
        }
        router.table = table;
        router.balancers = balancers.finish();
        router
    }

    /// Every Service balancer of this table (one per Service and policy).
    pub fn balancers(&self) -> Vec<Arc<ServiceBalancer>> {
        self.balancers.values().cloned().collect()
    }

    /// The table this router was compiled from.
    pub fn table(&self) -> &Arc<RoutingTable> {
        &self.table
    }

    /// Finds where a request goes. `host` is the raw Host header or `:authority`; `path` is the
    /// request path without the query string. `None` means 404.
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteTarget> {
        let vhost = self.hosts.lookup(host);
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

#[cfg(test)]
#[path = "router/reuse_tests.rs"]
mod reuse_tests;
