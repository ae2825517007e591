//! Assembling the routing table from valid, served Ingresses.
//!
//! Ingresses must be added oldest first: whoever claims a (host, path), a host's default backend
//! or the global default backend first keeps it, and later claimants get a Diagnostic naming
//! the winner. That makes the outcome independent of the order objects arrived in.

use super::backend::{PortRef, Resolver};
use crate::diagnostic::Diagnostic;
use crate::store::ObjectKey;
use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::{BackendGroup, HostMatch, PathMatch, Route, RoutingTable, VirtualHost};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Routes and default backend of one host, each remembering which Ingress set it.
#[derive(Default)]
struct HostEntry {
    /// Keyed by path so duplicates are found and routes come out sorted.
    routes: BTreeMap<PathMatch, Route>,
    /// `(source Ingress, backend)`.
    default_backend: Option<(String, BackendGroup)>,
}

/// Accumulates the table; see the module doc for the required order of [`TableBuilder::add`].
/// One path of an Ingress's rules with its place in the spec (for diagnostics).
pub(crate) struct RulePath<'a> {
    /// `spec.rules[i].http.paths[j]`.
    pub(crate) field: String,
    /// The rule's host.
    pub(crate) host: HostMatch,
    /// The path rule (`ImplementationSpecific` is `Prefix`).
    pub(crate) path_match: PathMatch,
    /// The path as written.
    pub(crate) path: &'a HTTPIngressPath,
}

/// Every path of every rule, in order.
pub(crate) fn rule_paths(spec: &IngressSpec) -> impl Iterator<Item = RulePath<'_>> {
    spec.rules
        .iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, rule)| {
            let host = HostMatch::from_rule_host(rule.host.as_deref().unwrap_or_default());
            rule.http
                .iter()
                .flat_map(|h| &h.paths)
                .enumerate()
                .map(move |(j, path)| RulePath {
                    field: PathField { rule: i, path: j }.to_string(),
                    host: host.clone(),
                    path_match: path_match(path),
                    path,
                })
        })
}

/// The path rule of an Ingress path (`ImplementationSpecific` is `Prefix`).
fn path_match(path: &HTTPIngressPath) -> PathMatch {
    let value = path.path.as_deref().unwrap_or_default();
    match path.path_type.as_str() {
        "Exact" => PathMatch::exact(value),
        _ => PathMatch::prefix(value),
    }
}

/// `spec.rules[i].http.paths[j]`, formatted only when a Diagnostic names it.
#[derive(Clone, Copy)]
struct PathField {
    rule: usize,
    path: usize,
}

impl std::fmt::Display for PathField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spec.rules[{}].http.paths[{}]", self.rule, self.path)
    }
}

/// Where an Ingress names a backend.
#[derive(Clone, Copy)]
enum BackendField {
    /// `spec.defaultBackend`.
    Default,
    /// `spec.rules[i].http.paths[j].backend`.
    Path(PathField),
}

impl std::fmt::Display for BackendField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendField::Default => f.write_str("spec.defaultBackend"),
            BackendField::Path(path) => write!(f, "{path}.backend"),
        }
    }
}

#[derive(Default)]
pub(crate) struct TableBuilder {
    /// Sorted when the table is finished.
    hosts: HashMap<HostMatch, HostEntry>,
    global_default: Option<(String, BackendGroup)>,
    diagnostics: Vec<Diagnostic>,
}

impl TableBuilder {
    /// Adds one Ingress that is ours and passed validation; call in precedence order.
    pub(crate) fn add<'a>(
        &mut self,
        key: &'a ObjectKey,
        ingress: &'a Ingress,
        resolver: &mut Resolver<'a>,
    ) {
        let Some(spec) = &ingress.spec else { return };
        let source: Arc<str> = Arc::from(key.to_string());
        let at = (&*source, &ingress.metadata);
        let default_backend = spec.default_backend.as_ref().and_then(|b| {
            self.backend_group(at, BackendField::Default, b, &key.namespace, resolver)
        });
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = HostMatch::from_rule_host(rule.host.as_deref().unwrap_or_default());
            for (j, path) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
                let field = PathField { rule: i, path: j };
                let path_match = path_match(path);
                if path.backend.service.is_none() {
                    self.reject_resource(&source, &format!("{field}.backend"));
                    continue;
                }
                let existing = self
                    .hosts
                    .get(&host)
                    .and_then(|e| e.routes.get(&path_match));
                if let Some(winner) = existing.map(|r| r.source.clone()) {
                    let what = format!("{field}: {} on host {host}", describe(&path_match));
                    self.lost(&source, &winner, &what, "this path is ignored");
                    continue;
                }
                let field = BackendField::Path(field);
                let backend =
                    self.backend_group(at, field, &path.backend, &key.namespace, resolver);
                let Some(backend) = backend else { continue };
                let route = Route {
                    path: path_match.clone(),
                    backend,
                    source: source.clone(),
                };
                self.hosts
                    .entry(host.clone())
                    .or_default()
                    .routes
                    .insert(path_match, route);
            }
        }
        if let Some(group) = default_backend {
            let own_hosts: BTreeSet<HostMatch> = spec
                .rules
                .iter()
                .flatten()
                .map(|r| HostMatch::from_rule_host(r.host.as_deref().unwrap_or_default()))
                .collect();
            self.add_default_backend(&source, &own_hosts, group);
        }
    }

    /// The Ingress `defaultBackend` catches what its own hosts do not route, and — for the
    /// oldest such Ingress — what no host matches at all.
    fn add_default_backend(
        &mut self,
        source: &str,
        hosts: &BTreeSet<HostMatch>,
        group: BackendGroup,
    ) {
        for host in hosts {
            let entry = self.hosts.entry(host.clone()).or_default();
            match &entry.default_backend {
                None => entry.default_backend = Some((source.to_string(), group.clone())),
                Some((winner, _)) => {
                    let winner = winner.clone();
                    let what = format!("spec.defaultBackend for host {host}");
                    self.lost(source, &winner, &what, "it does not apply to that host");
                }
            }
        }
        match &self.global_default {
            None => self.global_default = Some((source.to_string(), group)),
            Some((winner, _)) => {
                let winner = winner.clone();
                let what = "spec.defaultBackend as the default for unmatched hosts";
                self.lost(
                    source,
                    &winner,
                    what,
                    "it only applies to this Ingress's hosts",
                );
            }
        }
    }

    /// The route an Ingress added for `path` on `host`, e.g. to attach a canary to it.
    pub(crate) fn route_mut(&mut self, host: &HostMatch, path: &PathMatch) -> Option<&mut Route> {
        self.hosts.get_mut(host)?.routes.get_mut(path)
    }

    /// Whether an Ingress already set the controller-wide default backend.
    pub(crate) fn has_global_default(&self) -> bool {
        self.global_default.is_some()
    }

    /// The table (hosts, routes and TLS bindings sorted) and the Diagnostics found while
    /// building it. `fallback` is the global default backend when no Ingress set one; hosts
    /// equal to one of `previous` (sorted by host) are shared with it.
    pub(crate) fn finish(
        self,
        fallback: Option<BackendGroup>,
        previous: &[Arc<VirtualHost>],
    ) -> (RoutingTable, Vec<Diagnostic>) {
        let mut virtual_hosts: Vec<VirtualHost> = self
            .hosts
            .into_iter()
            .map(|(host, entry)| VirtualHost {
                host,
                routes: entry.routes.into_values().collect(),
                default_backend: entry.default_backend.map(|(_, b)| b),
            })
            .collect();
        // Hosts are distinct: the order is total.
        virtual_hosts.sort_unstable_by(|a, b| a.host.cmp(&b.host));
        let table = RoutingTable {
            virtual_hosts: super::memo::share_hosts(previous, virtual_hosts),
            default_backend: self.global_default.map(|(_, b)| b).or(fallback),
            // TLS parts are added by `super::tls::apply`.
            ..RoutingTable::default()
        };
        (table, self.diagnostics)
    }

    /// Resolves a backend that passed validation; `None` for the `resource` kind, which pier
    /// cannot serve. An unresolvable Service still yields a group so its route answers 503.
    fn backend_group<'a>(
        &mut self,
        (source, meta): (&str, &ObjectMeta),
        field: BackendField,
        backend: &'a IngressBackend,
        namespace: &'a str,
        resolver: &mut Resolver<'a>,
    ) -> Option<BackendGroup> {
        let Some(service) = &backend.service else {
            self.reject_resource(source, &field.to_string());
            return None;
        };
        let port = PortRef::from_backend_port(service.port.as_ref()?)?;
        let backend = resolver.resolve_for(Some((source, meta)), namespace, &service.name, &port);
        if let Some(why) = &backend.unavailable {
            self.diagnostics.push(Diagnostic::new(
                "Ingress",
                source,
                format!("{field}: {why}; requests to it get 503"),
            ));
        }
        Some(BackendGroup {
            services: vec![backend],
            canary: None,
        })
    }

    fn reject_resource(&mut self, source: &str, field: &str) {
        self.diagnostics.push(Diagnostic::new(
            "Ingress",
            source,
            format!("{field}.resource: resource backends are not supported by pier; left out"),
        ));
    }

    fn lost(&mut self, loser: &str, winner: &str, what: &str, consequence: &str) {
        let reason = if loser == winner {
            format!("{what} is defined twice in this Ingress; the first definition is used")
        } else {
            format!(
                "{what} is already defined by Ingress {winner}, which takes precedence (older \
                 creationTimestamp, then namespace/name); {consequence}"
            )
        };
        self.diagnostics
            .push(Diagnostic::new("Ingress", loser, reason));
    }
}

/// `Prefix /api` / `Exact /api`, the way users wrote it.
fn describe(path: &PathMatch) -> String {
    format!("{:?} {}", path.kind, path.path)
}
