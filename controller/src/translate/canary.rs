//! Canary Ingresses (`pier.dev/canary: "true"`), the traffic split ingress-nginx users know.
//!
//! A canary Ingress creates no routes of its own: for each of its (host, path) it attaches a
//! [`Canary`] to the primary route with the same host and the same path match. Canaries are
//! attached oldest first, so when two claim one route the older keeps it (the same order as
//! route conflicts) and the other gets a Diagnostic. Its `defaultBackend` is ignored with a
//! Diagnostic; its `tls` entries are left to the TLS translation like any Ingress's.

use super::admit::Admitted;
use super::annotations;
use super::backend::{PortRef, Resolver};
use super::policy::values;
use super::table::{rule_paths, HostBuilder, RulePath};
use crate::diagnostic::Diagnostic;
use crate::store::ObjectKey;
use k8s_openapi::api::networking::v1::Ingress;
use proxy::table::{Canary, HeaderRule, HostMatch, PathMatch};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Denominator of `canary-weight` when `canary-weight-total` is not set.
const DEFAULT_WEIGHT_TOTAL: u32 = 100;

/// Whether the Ingress is a canary. An invalid `canary` value is a Diagnostic and the Ingress
/// is treated as a primary (the default).
pub(crate) fn is_canary(key: &ObjectKey, ingress: &Ingress, out: &mut Vec<Diagnostic>) -> bool {
    let Some(raw) = annotations::get(&ingress.metadata, "canary") else {
        return false;
    };
    annotations::parse_bool(raw).unwrap_or_else(|| {
        out.push(Diagnostic::new(
            "Ingress",
            key.to_string(),
            format!(
                "annotation {}canary {raw:?}: expected true or false; the Ingress is treated \
                 as a primary (not a canary)",
                annotations::PREFIX
            ),
        ));
        false
    })
}

/// Attaches the canary Ingresses of `host` (oldest first) to its primary routes. Call after
/// every primary Ingress of the host was added to `builder`.
pub(crate) fn attach(
    host: &HostMatch,
    builder: &mut HostBuilder<'_>,
    canaries: &[&Arc<Admitted>],
    resolver: &mut Resolver,
    out: &mut Vec<Diagnostic>,
) {
    // Path → the canary Ingress that took it.
    let mut taken: BTreeMap<PathMatch, Arc<str>> = BTreeMap::new();
    for admitted in canaries {
        let Some(rules) = &admitted.canary_rules else {
            continue;
        };
        let Some(spec) = &admitted.ingress.spec else {
            continue;
        };
        let source = &admitted.source;
        let report = |out: &mut Vec<Diagnostic>, reason: String| {
            out.push(Diagnostic::new("Ingress", &**source, reason));
        };
        for RulePath {
            field,
            path_match,
            path,
        } in rule_paths(spec, host)
        {
            let value = path.path.as_deref().unwrap_or_default();
            let what = format!("{field}: {:?} {} on host {host}", path_match.kind, value);
            let Some(service) = &path.backend.service else {
                report(out, format!("{field}.backend.resource: resource backends are not supported by pier; left out"));
                continue;
            };
            let port = service.port.as_ref().and_then(PortRef::from_backend_port);
            let Some(port) = port else { continue };
            if let Some(winner) = taken.get(&path_match) {
                let reason = if winner == source {
                    format!("canary {what} is defined twice in this Ingress; the first definition is used")
                } else {
                    format!(
                        "canary {what}: the route already has canary Ingress {winner}, which \
                         takes precedence (older creationTimestamp, then namespace/name); \
                         this canary is ignored"
                    )
                };
                report(out, reason);
                continue;
            }
            let Some(route) = builder.route_mut(&path_match) else {
                report(
                    out,
                    format!(
                        "canary {what}: no primary Ingress defines this host and path; the \
                         canary is ignored"
                    ),
                );
                continue;
            };
            let meta = Some((&**source, &admitted.ingress.metadata));
            let namespace = &admitted.key.namespace;
            let at = (namespace.as_str(), service.name.as_str(), &port);
            let backend = resolver.resolve_for(meta, at, out);
            if let Some(why) = &backend.unavailable {
                report(
                    out,
                    format!("{field}.backend: {why}; canary requests to it get 503"),
                );
            }
            route.backend.canary = Some(Box::new(Canary {
                backend,
                weight: rules.weight,
                weight_total: rules.weight_total,
                by_header: rules.by_header.clone(),
                by_cookie: rules.by_cookie.clone(),
            }));
            taken.insert(path_match, source.clone());
        }
    }
}

/// The canary annotations of one Ingress.
#[derive(Debug)]
pub(crate) struct Rules {
    weight: u32,
    weight_total: u32,
    by_header: Option<HeaderRule>,
    by_cookie: Option<String>,
}

/// Reads the canary annotations of a canary Ingress; an invalid value is a Diagnostic and its
/// default applies (weight 0, total 100, no header or cookie rule). A `defaultBackend` is
/// reported as ignored.
pub(crate) fn rules(source: &str, ingress: &Ingress, out: &mut Vec<Diagnostic>) -> Rules {
    if ingress
        .spec
        .as_ref()
        .is_some_and(|s| s.default_backend.is_some())
    {
        out.push(Diagnostic::new(
            "Ingress",
            source,
            "spec.defaultBackend of a canary Ingress is ignored (canaries only apply to rules)",
        ));
    }
    let meta = &ingress.metadata;
    let mut bad = |key: &str, raw: &str, why: &str| {
        out.push(Diagnostic::new(
            "Ingress",
            source,
            format!(
                "annotation {}{key} {raw:?}: {why}; the default applies",
                annotations::PREFIX
            ),
        ));
    };
    let mut weight_total = DEFAULT_WEIGHT_TOTAL;
    if let Some(raw) = annotations::get(meta, "canary-weight-total") {
        match raw.parse::<u32>() {
            Ok(n) if n > 0 => weight_total = n,
            _ => bad(
                "canary-weight-total",
                raw,
                "expected a positive integer (default 100)",
            ),
        }
    }
    let mut weight = 0;
    if let Some(raw) = annotations::get(meta, "canary-weight") {
        match raw.parse::<u32>() {
            Ok(n) if n <= weight_total => weight = n,
            _ => {
                let why = format!("expected an integer from 0 to {weight_total} (default 0)");
                bad("canary-weight", raw, &why);
            }
        }
    }
    let mut by_header = None;
    if let Some(raw) = annotations::get(meta, "canary-by-header") {
        match values::token(raw) {
            Ok(name) => {
                let value = annotations::get(meta, "canary-by-header-value")
                    .filter(|v| !v.is_empty())
                    .map(str::to_string);
                by_header = Some(HeaderRule {
                    name: name.to_ascii_lowercase(),
                    value,
                });
            }
            Err(why) => bad("canary-by-header", raw, &why),
        }
    } else if let Some(raw) = annotations::get(meta, "canary-by-header-value") {
        bad(
            "canary-by-header-value",
            raw,
            "needs pier.dev/canary-by-header to name the header",
        );
    }
    let mut by_cookie = None;
    if let Some(raw) = annotations::get(meta, "canary-by-cookie") {
        match values::token(raw) {
            Ok(name) => by_cookie = Some(name.to_string()),
            Err(why) => bad("canary-by-cookie", raw, &why),
        }
    }
    Rules {
        weight,
        weight_total,
        by_header,
        by_cookie,
    }
}
