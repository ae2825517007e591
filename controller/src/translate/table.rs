//! Building one virtual host from the valid, served Ingresses that have rules for it.
//!
//! Ingresses are taken oldest first: whoever claims a path of the host, or the host's default
//! backend, first keeps it, and later claimants get a Diagnostic naming the winner. That makes
//! the outcome independent of the order objects arrived in. Nothing outside the host takes
//! part, so a host is rebuilt only when its Ingresses or the Services they name change.

use super::admit::Admitted;
use super::backend::{PortRef, Resolver};
use crate::diagnostic::Diagnostic;
use k8s_openapi::api::networking::v1::{HTTPIngressPath, IngressBackend, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::{BackendGroup, HostMatch, PathMatch, Route, VirtualHost};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One path of an Ingress's rules with its place in the spec (for diagnostics).
pub(crate) struct RulePath<'a> {
    /// `spec.rules[i].http.paths[j]`.
    pub(crate) field: PathField,
    /// The path rule (`ImplementationSpecific` is `Prefix`).
    pub(crate) path_match: PathMatch,
    /// The path as written.
    pub(crate) path: &'a HTTPIngressPath,
}

/// Every path of the rules for `host`, in order.
pub(crate) fn rule_paths<'a>(
    spec: &'a IngressSpec,
    host: &'a HostMatch,
) -> impl Iterator<Item = RulePath<'a>> {
    spec.rules
        .iter()
        .flatten()
        .enumerate()
        .filter(move |(_, rule)| {
            HostMatch::from_rule_host(rule.host.as_deref().unwrap_or_default()) == *host
        })
        .flat_map(|(i, rule)| {
            rule.http
                .iter()
                .flat_map(|h| &h.paths)
                .enumerate()
                .map(move |(j, path)| RulePath {
                    field: PathField { rule: i, path: j },
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
pub(crate) struct PathField {
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
pub(crate) enum BackendField {
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

/// The routes and default backend of one host, each remembering which Ingress set it.
pub(crate) struct HostBuilder<'h> {
    host: &'h HostMatch,
    /// Keyed by path so duplicates are found and routes come out sorted.
    routes: BTreeMap<PathMatch, Route>,
    /// `(source Ingress, backend)`.
    default_backend: Option<(Arc<str>, BackendGroup)>,
}

impl<'h> HostBuilder<'h> {
    /// An empty host.
    pub(crate) fn new(host: &'h HostMatch) -> HostBuilder<'h> {
        HostBuilder {
            host,
            routes: BTreeMap::new(),
            default_backend: None,
        }
    }

    /// Adds what one primary Ingress says about this host; call oldest first.
    pub(crate) fn add(
        &mut self,
        ingress: &Admitted,
        resolver: &mut Resolver,
        out: &mut Vec<Diagnostic>,
    ) {
        let Some(spec) = &ingress.ingress.spec else {
            return;
        };
        let namespace = &ingress.key.namespace;
        let at = (&*ingress.source, &ingress.ingress.metadata);
        let default_backend = spec
            .default_backend
            .as_ref()
            .and_then(|b| backend_group(at, BackendField::Default, b, namespace, resolver, out));
        let source = &ingress.source;
        for RulePath {
            field,
            path_match,
            path,
        } in rule_paths(spec, self.host)
        {
            if path.backend.service.is_none() {
                out.push(reject_resource(source, &format!("{field}.backend")));
                continue;
            }
            if let Some(winner) = self.routes.get(&path_match).map(|r| r.source.clone()) {
                let what = format!("{field}: {} on host {}", describe(&path_match), self.host);
                out.push(lost(source, &winner, &what, "this path is ignored"));
                continue;
            }
            let field = BackendField::Path(field);
            let backend = backend_group(at, field, &path.backend, namespace, resolver, out);
            let Some(backend) = backend else { continue };
            let route = Route {
                path: path_match.clone(),
                backend,
                source: source.clone(),
            };
            self.routes.insert(path_match, route);
        }
        // The Ingress `defaultBackend` catches what its own hosts do not route.
        if let Some(group) = default_backend {
            match &self.default_backend {
                None => self.default_backend = Some((source.clone(), group)),
                Some((winner, _)) => {
                    let what = format!("spec.defaultBackend for host {}", self.host);
                    out.push(lost(
                        source,
                        winner,
                        &what,
                        "it does not apply to that host",
                    ));
                }
            }
        }
    }

    /// The route an Ingress added for `path`, e.g. to attach a canary to it.
    pub(crate) fn route_mut(&mut self, path: &PathMatch) -> Option<&mut Route> {
        self.routes.get_mut(path)
    }

    /// The virtual host (routes sorted), or `None` when nothing routes there.
    pub(crate) fn finish(self) -> Option<VirtualHost> {
        if self.routes.is_empty() && self.default_backend.is_none() {
            return None;
        }
        Some(VirtualHost {
            host: self.host.clone(),
            routes: self.routes.into_values().collect(),
            default_backend: self.default_backend.map(|(_, b)| b),
        })
    }
}

/// Resolves a backend that passed validation; `None` for the `resource` kind, which pier
/// cannot serve. An unresolvable Service still yields a group so its route answers 503.
pub(crate) fn backend_group(
    (source, meta): (&str, &ObjectMeta),
    field: BackendField,
    backend: &IngressBackend,
    namespace: &str,
    resolver: &mut Resolver,
    out: &mut Vec<Diagnostic>,
) -> Option<BackendGroup> {
    let Some(service) = &backend.service else {
        out.push(reject_resource(source, &field.to_string()));
        return None;
    };
    let port = PortRef::from_backend_port(service.port.as_ref()?)?;
    let at = (namespace, service.name.as_str(), &port);
    let backend = resolver.resolve_for(Some((source, meta)), at, out);
    if let Some(why) = &backend.unavailable {
        out.push(Diagnostic::new(
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

fn reject_resource(source: &str, field: &str) -> Diagnostic {
    Diagnostic::new(
        "Ingress",
        source,
        format!("{field}.resource: resource backends are not supported by pier; left out"),
    )
}

/// The Diagnostic of an Ingress that claims what an older one (or itself) already has.
pub(crate) fn lost(loser: &str, winner: &str, what: &str, consequence: &str) -> Diagnostic {
    let reason = if loser == winner {
        format!("{what} is defined twice in this Ingress; the first definition is used")
    } else {
        format!(
            "{what} is already defined by Ingress {winner}, which takes precedence (older \
             creationTimestamp, then namespace/name); {consequence}"
        )
    };
    Diagnostic::new("Ingress", loser, reason)
}

/// `Prefix /api` / `Exact /api`, the way users wrote it.
fn describe(path: &PathMatch) -> String {
    format!("{:?} {}", path.kind, path.path)
}
