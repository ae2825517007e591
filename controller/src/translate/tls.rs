//! TLS in translate(): Secrets → certificates, per-host redirect/HSTS policy and backend
//! protocols (design.md §5, §9).
//!
//! Certificates are validated here (through `proxy::tls`, which owns rustls) so a bad Secret
//! is a Diagnostic naming the Secret and the Ingress; its hosts get the default certificate
//! and every other host keeps its own.

mod protocol;

use super::annotations;
use crate::diagnostic::Diagnostic;
use crate::settings::Settings;
use crate::store::{ObjectKey, Store};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use proxy::table::{HostMatch, HostTls, RoutingTable, TlsBinding, TlsCertificate};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A byte field of a Secret, from `data` (base64 in YAML) or `stringData`.
pub(super) fn secret_field<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| &b.0[..]);
    data.or_else(|| {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes())
    })
}

/// The certificate of Secret `namespace/name` (`tls.crt` + `tls.key`), or why there is none.
pub(crate) fn certificate(
    store: &Store,
    namespace: &str,
    name: &str,
) -> Result<TlsCertificate, String> {
    let key = ObjectKey::new(namespace, name);
    let Some(secret) = store.secrets.get(&key) else {
        return Err(format!("Secret {key} not found"));
    };
    if let Some(t) = secret
        .type_
        .as_deref()
        .filter(|t| *t != "kubernetes.io/tls")
    {
        return Err(format!("Secret {key} has type {t}, not kubernetes.io/tls"));
    }
    let crt = secret_field(secret, "tls.crt").ok_or(format!("Secret {key} has no tls.crt"))?;
    let pem = secret_field(secret, "tls.key").ok_or(format!("Secret {key} has no tls.key"))?;
    proxy::tls::parse_certificate(crt, pem).map_err(|e| format!("Secret {key}: {e}"))
}

/// The TLS bindings of one Ingress, each with its certificate when the Secret is usable.
pub(crate) fn bindings(
    store: &Store,
    key: &ObjectKey,
    ingress: &Ingress,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<TlsBinding> {
    let Some(tls) = ingress.spec.as_ref().and_then(|s| s.tls.as_ref()) else {
        return Vec::new();
    };
    let source = key.to_string();
    let mut out = Vec::new();
    for (i, entry) in tls.iter().enumerate() {
        let Some(secret) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let hosts = entry.hosts.clone().unwrap_or_default();
        let certificate = match certificate(store, &key.namespace, secret) {
            Ok(c) => Some(c),
            Err(why) => {
                let reason = format!(
                    "spec.tls[{i}]: {why}; hosts [{}] get the default certificate",
                    hosts.join(", ")
                );
                diagnostics.push(Diagnostic::new("Ingress", source.as_str(), reason));
                None
            }
        };
        out.push(TlsBinding {
            hosts,
            secret: format!("{}/{secret}", key.namespace),
            source: source.clone(),
            certificate,
        });
    }
    out
}

/// Whether a TLS host pattern (`a.b.com`, `*.b.com`) covers a virtual host.
fn covers(tls_host: &str, host: &HostMatch) -> bool {
    let tls_host = HostMatch::from_rule_host(tls_host);
    match (&tls_host, host) {
        (_, HostMatch::Any) | (HostMatch::Any, _) => false,
        (HostMatch::Wildcard(a), HostMatch::Wildcard(b)) => a == b,
        (pattern, HostMatch::Exact(h)) => pattern.matches(h),
        (HostMatch::Exact(_), HostMatch::Wildcard(_)) => false,
    }
}

/// One Ingress's say on a host's HTTPS policy.
struct Claim {
    source: String,
    ssl_redirect: Option<bool>,
    hsts: Option<Arc<str>>,
}

/// Collects `ssl-redirect` / `hsts` annotations per host, oldest Ingress first.
#[derive(Default)]
pub(crate) struct HostPolicyBuilder {
    claims: BTreeMap<HostMatch, Vec<Claim>>,
    /// Without any TLS binding no host gets a policy: annotations are only checked.
    check_only: bool,
}

impl HostPolicyBuilder {
    /// Records the annotations of a served Ingress for the hosts of its rules; call in
    /// precedence order.
    pub(crate) fn add(
        &mut self,
        key: &ObjectKey,
        ingress: &Ingress,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let meta = &ingress.metadata;
        let ssl_redirect = annotations::get(meta, "ssl-redirect").and_then(|v| {
            let parsed = annotations::parse_bool(v);
            if parsed.is_none() {
                let reason = format!("pier.dev/ssl-redirect: {v:?} is not true or false; ignored");
                diagnostics.push(Diagnostic::new("Ingress", key.to_string(), reason));
            }
            parsed
        });
        let hsts = annotations::get(meta, "hsts").and_then(|v| {
            if valid_hsts(v) {
                Some(Arc::from(v))
            } else {
                let reason =
                    format!("pier.dev/hsts: {v:?} is not \"max-age=SECONDS[; …]\"; ignored");
                diagnostics.push(Diagnostic::new("Ingress", key.to_string(), reason));
                None
            }
        });
        if self.check_only {
            return;
        }
        let source = key.to_string();
        let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
        for rule in rules.into_iter().flatten() {
            let host = HostMatch::from_rule_host(rule.host.as_deref().unwrap_or_default());
            self.claims.entry(host).or_default().push(Claim {
                source: source.clone(),
                ssl_redirect,
                hsts: hsts.clone(),
            });
        }
    }

    /// One [`HostTls`] per virtual host (so an exact host without TLS shadows a wildcard one,
    /// as in routing), or none at all when no host has TLS. A host redirects when a TLS entry
    /// covers it, unless the oldest Ingress that sets `ssl-redirect` for it says `false`.
    pub(crate) fn finish(
        self,
        hosts: impl Iterator<Item = HostMatch>,
        tls: &[TlsBinding],
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Vec<HostTls> {
        if tls.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for host in hosts {
            let has_tls = tls.iter().flat_map(|b| &b.hosts).any(|h| covers(h, &host));
            let claims = self
                .claims
                .get(&host)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let redirect = decide(
                &host,
                "ssl-redirect",
                claims,
                |c| c.ssl_redirect,
                diagnostics,
            );
            let hsts = decide(&host, "hsts", claims, |c| c.hsts.clone(), diagnostics);
            out.push(HostTls {
                host,
                ssl_redirect: has_tls && redirect.unwrap_or(true),
                hsts: if has_tls { hsts } else { None },
            });
        }
        out
    }
}

/// The first claim's value; later Ingresses that disagree get a Diagnostic.
fn decide<T: PartialEq + std::fmt::Debug>(
    host: &HostMatch,
    what: &str,
    claims: &[Claim],
    value: impl Fn(&Claim) -> Option<T>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut set = claims.iter().filter_map(|c| value(c).map(|v| (c, v)));
    let (winner, chosen) = set.next()?;
    for (loser, v) in set.filter(|(_, v)| *v != chosen) {
        let reason = format!(
            "pier.dev/{what} {v:?} for host {host} conflicts with {chosen:?} from Ingress {}, \
             which takes precedence; ignored",
            winner.source
        );
        diagnostics.push(Diagnostic::new("Ingress", loser.source.as_str(), reason));
    }
    Some(chosen)
}

/// `max-age=<seconds>` optionally followed by `; includeSubDomains` / `; preload`.
fn valid_hsts(value: &str) -> bool {
    let mut parts = value.split(';').map(str::trim);
    let max_age = parts.next().and_then(|p| p.strip_prefix("max-age="));
    max_age.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && parts.all(|p| p.eq_ignore_ascii_case("includeSubDomains") || p == "preload")
}

/// Fills the TLS parts of a freshly built table: bindings with certificates, per-host
/// policies, the default certificate and backend protocols. `served` is in precedence order.
pub(crate) fn apply<'a>(
    store: &'a Store,
    resolver: &mut super::backend::Resolver<'a>,
    settings: &'a Settings,
    served: &[(&'a ObjectKey, &'a Ingress)],
    table: &mut RoutingTable,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut tls = Vec::new();
    for (key, ingress) in served {
        tls.extend(bindings(store, key, ingress, diagnostics));
    }
    let mut policies = HostPolicyBuilder {
        check_only: tls.is_empty(),
        ..HostPolicyBuilder::default()
    };
    for (key, ingress) in served {
        policies.add(key, ingress, diagnostics);
    }
    // Precedence order is kept (a host in two entries gets the oldest Ingress's certificate);
    // it is deterministic, so equal Stores still give equal tables.
    let hosts = table.virtual_hosts.iter().map(|v| v.host.clone());
    table.tls_hosts = policies.finish(hosts, &tls, diagnostics);
    table.tls = tls;
    table.default_certificate = settings.default_certificate.as_deref().and_then(|value| {
        let found = value
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
            .ok_or_else(|| format!("{value:?} is not namespace/name"))
            .and_then(|(ns, name)| certificate(store, ns, name));
        found
            .inspect_err(|why| {
                let reason = format!("{why}; the generated self-signed certificate is used");
                diagnostics.push(Diagnostic::new("Settings", "default-certificate", reason));
            })
            .ok()
    });
    table.backend_protocols = protocol::protocols(store, resolver, settings, served, diagnostics);
}
