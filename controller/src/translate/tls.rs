//! TLS in translate(): Secrets → certificates, per-host redirect/HSTS policy and backend
//! protocols (design.md §5, §9).
//!
//! Certificates are validated here (through `proxy::tls`, which owns rustls) so a bad Secret
//! is a Diagnostic naming the Secret and the Ingress; its hosts get the default certificate
//! and every other host keeps its own.

mod policy;
mod protocol;

pub(crate) use policy::{policy_annotations, HostPolicy};
pub(crate) use protocol::{has_protocol_annotations, protocols, Answers};

use super::admit::Admitted;
use super::hosts::HostView;
use crate::diagnostic::Diagnostic;
use crate::settings::Settings;
use crate::store::{self, ObjectKey, Store};
use k8s_openapi::api::core::v1::Secret;
use proxy::table::{HostTls, RoutingTable, TlsBinding, TlsCertificate};
use std::collections::{HashMap, HashSet};
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
    let key = store::key_name(namespace, name);
    let Some(secret) = store::find(&store.secrets, namespace, name) else {
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

/// The TLS bindings of one Ingress with the Secrets they read, kept while neither changes.
#[derive(Debug)]
struct Bindings {
    ingress: Arc<Admitted>,
    secrets: Vec<ObjectKey>,
    bindings: Vec<TlsBinding>,
    diagnostics: Vec<Diagnostic>,
}

/// The default certificate with the Secret it came from.
#[derive(Debug)]
struct DefaultCertificate {
    secret: Option<ObjectKey>,
    certificate: Option<TlsCertificate>,
    diagnostics: Vec<Diagnostic>,
}

/// Certificates parsed by earlier translations: parsing is the expensive part of TLS. Entries
/// of Ingresses that are gone (or no longer have `tls`) are dropped at each translation.
#[derive(Debug, Default)]
pub(crate) struct TlsMemo {
    bindings: HashMap<ObjectKey, Bindings>,
    default_certificate: Option<DefaultCertificate>,
}

/// The TLS bindings of one Ingress, each with its certificate when the Secret is usable.
fn bindings(store: &Store, admitted: &Arc<Admitted>) -> Bindings {
    let mut out = Bindings {
        ingress: admitted.clone(),
        secrets: Vec::new(),
        bindings: Vec::new(),
        diagnostics: Vec::new(),
    };
    let tls = admitted.ingress.spec.as_ref().and_then(|s| s.tls.as_ref());
    let key = &admitted.key;
    for (i, entry) in tls.into_iter().flatten().enumerate() {
        let Some(secret) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        out.secrets.push(ObjectKey::new(&key.namespace, secret));
        let hosts = entry.hosts.clone().unwrap_or_default();
        let certificate = match certificate(store, &key.namespace, secret) {
            Ok(c) => Some(c),
            Err(why) => {
                let reason = format!(
                    "spec.tls[{i}]: {why}; hosts [{}] get the default certificate",
                    hosts.join(", ")
                );
                out.diagnostics
                    .push(Diagnostic::new("Ingress", &*admitted.source, reason));
                None
            }
        };
        out.bindings.push(TlsBinding {
            hosts,
            secret: format!("{}/{secret}", key.namespace),
            source: admitted.source.to_string(),
            certificate,
        });
    }
    out
}

impl TlsMemo {
    /// The bindings of every served, valid Ingress with `tls` (`with_tls`, oldest first),
    /// parsing only the certificates of Ingresses or Secrets that changed.
    fn bindings(
        &mut self,
        store: &Store,
        with_tls: &[&Arc<Admitted>],
        changed: &HashSet<ObjectKey>,
        out: &mut Vec<Diagnostic>,
    ) -> Vec<TlsBinding> {
        let mut all = Vec::new();
        let mut used = HashSet::with_capacity(with_tls.len());
        for admitted in with_tls {
            let fresh = |b: &Bindings| {
                Arc::ptr_eq(&b.ingress, admitted) && !b.secrets.iter().any(|s| changed.contains(s))
            };
            let found = match self.bindings.get_mut(&admitted.key) {
                Some(kept) if fresh(kept) => kept,
                Some(stale) => {
                    *stale = bindings(store, admitted);
                    stale
                }
                None => self
                    .bindings
                    .entry(admitted.key.clone())
                    .or_insert_with(|| bindings(store, admitted)),
            };
            all.extend(found.bindings.iter().cloned());
            out.extend(found.diagnostics.iter().cloned());
            used.insert(Arc::as_ptr(admitted));
        }
        self.bindings
            .retain(|_, b| used.contains(&Arc::as_ptr(&b.ingress)));
        all
    }

    /// `--default-certificate`, parsed again only when its Secret changed.
    fn default_certificate(
        &mut self,
        store: &Store,
        settings: &Settings,
        changed: &HashSet<ObjectKey>,
        out: &mut Vec<Diagnostic>,
    ) -> Option<TlsCertificate> {
        let value = settings.default_certificate.as_deref()?;
        let kept = self
            .default_certificate
            .take()
            .filter(|d| d.secret.as_ref().is_none_or(|s| !changed.contains(s)));
        let found = kept.unwrap_or_else(|| {
            let parts = value
                .split_once('/')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty());
            let found = parts
                .ok_or_else(|| format!("{value:?} is not namespace/name"))
                .and_then(|(ns, name)| certificate(store, ns, name));
            let diagnostics = found
                .as_ref()
                .err()
                .map(|why| {
                    let reason = format!("{why}; the generated self-signed certificate is used");
                    Diagnostic::new("Settings", "default-certificate", reason)
                })
                .into_iter()
                .collect();
            DefaultCertificate {
                secret: parts.map(|(ns, name)| ObjectKey::new(ns, name)),
                certificate: found.ok(),
                diagnostics,
            }
        });
        out.extend(found.diagnostics.iter().cloned());
        let certificate = found.certificate.clone();
        self.default_certificate = Some(found);
        certificate
    }
}

/// Fills the TLS parts of a table whose virtual hosts are `hosts`: bindings with
/// certificates, per-host policies and the default certificate. `with_tls` are the served,
/// valid Ingresses with `tls`, oldest first; `changed` the Secrets that changed.
pub(crate) fn apply(
    store: &Store,
    settings: &Settings,
    memo: &mut TlsMemo,
    (with_tls, hosts): (&[&Arc<Admitted>], &[HostView<'_>]),
    changed: &HashSet<ObjectKey>,
    table: &mut RoutingTable,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let tls = memo.bindings(store, with_tls, changed, diagnostics);
    // Without any TLS binding no host gets a policy (annotations were only checked).
    if !tls.is_empty() {
        let covered = policy::Covered::new(&tls);
        table.tls_hosts = hosts
            .iter()
            .map(|view| {
                let host = &view.vhost.host;
                diagnostics.extend(view.policy.diagnostics.iter().cloned());
                let has_tls = covered.covers(host);
                HostTls {
                    host: host.clone(),
                    ssl_redirect: has_tls && view.policy.redirect.unwrap_or(true),
                    hsts: if has_tls {
                        view.policy.hsts.clone()
                    } else {
                        None
                    },
                }
            })
            .collect();
    }
    // Precedence order is kept (a host in two entries gets the oldest Ingress's certificate);
    // it is deterministic, so equal Stores still give equal tables.
    table.tls = tls;
    table.default_certificate = memo.default_certificate(store, settings, changed, diagnostics);
}
