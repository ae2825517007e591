//! Backend protocols (`pier.dev/backend-protocol`, `appProtocol`) and backend CA bundles.

use super::{secret_field, Settings};
use crate::diagnostic::Diagnostic;
use crate::store::{self, KeyRef, ObjectKey, Store};
use crate::translate::admit::Admitted;
use crate::translate::annotations;
use crate::translate::backend::PortRef;
use crate::translate::changes::SliceIndex;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::BackendProtocol;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// `appProtocol` value that asks for HTTP/2 prior knowledge (KEP-3726).
const APP_PROTOCOL_H2C: &str = "kubernetes.io/h2c";

/// What [`backend_protocol`] answers for one backend.
type Answer = Result<(BackendProtocol, Option<String>), String>;

/// Plain HTTP, nothing to report: what most backends answer.
const PLAIN: Answer = Ok((BackendProtocol::Http, None));

/// The answer of an Ingress without protocol annotations of its own: plain HTTP, no problem.
fn plain(answer: &Answer) -> bool {
    matches!(answer, Ok((BackendProtocol::Http, None)))
}

/// What each Service port answers for Ingresses without protocol annotations (it depends
/// on the Service alone), kept while the Service, its slices and the Secrets are unchanged;
/// and whether the last translation found every backend plain HTTP. Services that answer
/// plain HTTP on every port (see [`plain_service`]) are not kept: most are.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    by_service: HashMap<ObjectKey, Vec<(PortRef, Answer)>>,
    all_plain: bool,
}

impl Answers {
    /// Forgets what `services` (and, when a Secret changed, every CA bundle) answered.
    pub(crate) fn forget(&mut self, services: &HashSet<ObjectKey>, secrets_changed: bool) {
        if secrets_changed {
            self.by_service.clear();
            return;
        }
        for service in services {
            self.by_service.remove(service);
        }
    }

    /// The answer of backend `namespace/service:port` for an Ingress without annotations.
    fn of(&mut self, store: &Store, slices: &SliceIndex, backend: &BackendKey<'_>) -> &Answer {
        let (namespace, service, port) = backend;
        if plain_service(store, slices, namespace, service) {
            return &PLAIN;
        }
        let known = self.by_service.get(&(*namespace, *service) as &dyn KeyRef);
        if known.is_none_or(|ports| ports.iter().all(|(p, _)| p != port)) {
            let svc = store::find(&store.services, namespace, service);
            let answer = backend_protocol(store, slices, None, svc.map(|s| &**s), backend);
            self.by_service
                .entry(ObjectKey::new(*namespace, *service))
                .or_default()
                .push((port.clone(), answer));
        }
        let ports = &self.by_service[&(*namespace, *service) as &dyn KeyRef];
        let (_, answer) = ports.iter().find(|(p, _)| p == port).expect("just added");
        answer
    }
}

/// A backend as Ingresses name it: `(namespace, service, port)`.
type BackendKey<'a> = (&'a str, &'a str, PortRef);

/// One Ingress (or `--default-backend`) naming one backend.
struct Claim<'a> {
    source: &'a str,
    ingress: Option<&'a Ingress>,
    backend: BackendKey<'a>,
}

/// The Service ports an Ingress names: its default backend first, then every path's.
fn claims_of(m: &Admitted) -> impl Iterator<Item = BackendKey<'_>> {
    let namespace = m.key.namespace.as_str();
    let spec = m.ingress.spec.as_ref();
    let rules = spec.and_then(|s| s.rules.as_ref()).into_iter().flatten();
    let paths = rules.flat_map(|r| &r.http).flat_map(|h| &h.paths);
    let default = spec.and_then(|s| s.default_backend.as_ref());
    default
        .into_iter()
        .chain(paths.map(|p| &p.backend))
        .filter_map(|b| b.service.as_ref())
        .filter_map(move |s| {
            let port = s.port.as_ref().and_then(PortRef::from_backend_port)?;
            Some((namespace, s.name.as_str(), port))
        })
}

/// Whether every port of Service `namespace/name` answers plain HTTP to Ingresses without
/// protocol annotations: no `backend-protocol` annotation and no `kubernetes.io/h2c`
/// anywhere (or no such Service).
fn plain_service(store: &Store, slices: &SliceIndex, namespace: &str, name: &str) -> bool {
    let Some(svc) = store::find(&store.services, namespace, name) else {
        return true;
    };
    let h2c = |p: Option<&str>| p == Some(APP_PROTOCOL_H2C);
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref());
    annotations::get(&svc.metadata, "backend-protocol").is_none()
        && !ports
            .unwrap_or_default()
            .iter()
            .any(|p| h2c(p.app_protocol.as_deref()))
        && !slices
            .of(namespace, name)
            .iter()
            .flat_map(|(_, s)| s.ports.iter())
            .any(|p| h2c(p.app_protocol.as_deref()))
}

/// Protocols of every backend the served Ingresses (`members`, in any order) and
/// `--default-backend` name, by backend id. The oldest Ingress decides a Service port's
/// protocol; a later one that asks for another gets a Diagnostic. Plain HTTP is the default
/// and is not listed. Only backends for which some claim is not plain HTTP are looked at
/// closely: for the others every claim agrees and nothing is reported.
///
/// When the last translation found every backend plain, only what changed is looked at:
/// the Ingresses that `joined` the table and the Services that `changed`.
pub(crate) fn protocols(
    store: &Store,
    slices: &SliceIndex,
    settings: &Settings,
    (members, joined): (&[&Arc<Admitted>], &[Arc<Admitted>]),
    changed: &HashSet<ObjectKey>,
    answers: &mut Answers,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<Arc<str>, BackendProtocol> {
    if answers.all_plain
        && changed
            .iter()
            .all(|s| plain_service(store, slices, &s.namespace, &s.name))
        && joined
            .iter()
            .all(|m| !m.own_protocol && claims_of(m).all(|b| plain(answers.of(store, slices, &b))))
    {
        return BTreeMap::new();
    }
    let fallback = settings
        .default_backend
        .as_deref()
        .and_then(crate::translate::backend::parse_backend_ref);
    let mut interesting: HashSet<BackendKey<'_>> = HashSet::new();
    for member in members {
        for backend in claims_of(member) {
            if member.own_protocol || !plain(answers.of(store, slices, &backend)) {
                interesting.insert(backend);
            }
        }
    }
    if let Some(backend) = &fallback {
        if !plain(answers.of(store, slices, backend)) {
            interesting.insert(backend.clone());
        }
    }
    answers.all_plain = interesting.is_empty();
    if answers.all_plain {
        return BTreeMap::new();
    }
    let mut ordered: Vec<&Arc<Admitted>> = members.to_vec();
    ordered.sort_by(|a, b| a.precedence().cmp(&b.precedence()));
    let mut claims: Vec<Claim<'_>> = Vec::new();
    for member in ordered {
        for backend in claims_of(member).filter(|b| interesting.contains(b)) {
            claims.push(Claim {
                source: &member.source,
                ingress: Some(&member.ingress),
                backend,
            });
        }
    }
    if let Some(backend) = fallback.filter(|b| interesting.contains(b)) {
        claims.push(Claim {
            source: "--default-backend",
            ingress: None,
            backend,
        });
    }
    decide_all(store, slices, &claims, answers, diagnostics)
}

/// Decides, claim by claim (oldest first), the protocol of each backend claimed.
fn decide_all(
    store: &Store,
    slices: &SliceIndex,
    claims: &[Claim<'_>],
    answers: &mut Answers,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<Arc<str>, BackendProtocol> {
    // Backend → the source that decided its protocol (the oldest naming it), and the protocol.
    let mut decided: HashMap<BackendKey<'_>, (&str, BackendProtocol)> = HashMap::new();
    for claim in claims {
        let (namespace, service, port) = &claim.backend;
        let id = || format!("{namespace}/{service}:{port}");
        let own = claim
            .ingress
            .filter(|i| has_protocol_annotations(&i.metadata));
        let answer = match own {
            Some(_) => {
                let svc = store::find(&store.services, namespace, service);
                backend_protocol(store, slices, own, svc.map(|s| &**s), &claim.backend)
            }
            None => answers.of(store, slices, &claim.backend).clone(),
        };
        let protocol = match answer {
            Ok((p, None)) => p,
            Ok((p, Some(why))) => {
                let reason = format!("backend {}: {why}", id());
                diagnostics.push(Diagnostic::new("Ingress", claim.source, reason));
                p
            }
            Err(why) => {
                let reason = format!("backend {}: {why}; plain HTTP is used", id());
                diagnostics.push(Diagnostic::new("Ingress", claim.source, reason));
                BackendProtocol::Http
            }
        };
        match decided.get(&claim.backend) {
            None => drop(decided.insert(claim.backend.clone(), (claim.source, protocol))),
            Some((winner, chosen)) if *chosen != protocol => {
                let reason = format!(
                    "backend {} is already used as {} by {winner}, which takes precedence; \
                     that protocol applies",
                    id(),
                    protocol_name(chosen)
                );
                diagnostics.push(Diagnostic::new("Ingress", claim.source, reason));
            }
            Some(_) => {}
        }
    }
    decided
        .into_iter()
        .filter(|(_, (_, p))| *p != BackendProtocol::Http)
        .map(|((namespace, service, port), (_, p))| {
            (Arc::from(format!("{namespace}/{service}:{port}")), p)
        })
        .collect()
}

/// Whether an Ingress sets the backend protocol or CA itself (else its backends' protocols
/// depend on their Services alone).
pub(crate) fn has_protocol_annotations(meta: &ObjectMeta) -> bool {
    annotations::get(meta, "backend-protocol").is_some()
        || annotations::get(meta, "backend-ca-secret").is_some()
}

fn protocol_name(p: &BackendProtocol) -> &'static str {
    match p {
        BackendProtocol::Http => "HTTP",
        BackendProtocol::Https { .. } => "HTTPS",
        BackendProtocol::H2c => "H2C",
    }
}

/// The protocol of backend `namespace/service:port` as one Ingress references it: the
/// Ingress's `backend-protocol`, else the Service's, else `appProtocol: kubernetes.io/h2c` on
/// the Service port or its EndpointSlice port. `Err` explains an unusable annotation; a
/// problem that still leaves a protocol (an unusable CA Secret) comes with it.
/// `svc` is the Service, when it exists.
fn backend_protocol(
    store: &Store,
    slices: &SliceIndex,
    ingress: Option<&Ingress>,
    svc: Option<&Service>,
    (namespace, service, port): &BackendKey<'_>,
) -> Answer {
    let metas = [ingress.map(|i| &i.metadata), svc.map(|s| &s.metadata)];
    let first = |key| {
        metas
            .iter()
            .flatten()
            .find_map(|meta| annotations::get(meta, key))
    };
    let value = match first("backend-protocol") {
        Some(v) => Cow::Owned(v.to_ascii_uppercase()),
        None if svc.is_some_and(|svc| app_protocol_h2c(slices, svc, namespace, service, port)) => {
            Cow::Borrowed("H2C")
        }
        None => Cow::Borrowed("HTTP"),
    };
    match &*value {
        "HTTP" => Ok((BackendProtocol::Http, None)),
        "H2C" | "GRPC" => Ok((BackendProtocol::H2c, None)),
        "HTTPS" => {
            let (ca, problem) = match first("backend-ca-secret") {
                None => (None, None),
                Some(name) => match ca_bundle(store, namespace, name) {
                    Ok(ca) => (Some(ca), None),
                    // Fail closed: an empty bundle trusts nothing, so requests get 502
                    // rather than reaching an unverified pod.
                    Err(why) => (
                        Some(Arc::from(&b""[..])),
                        Some(format!("{why}; connections to it fail until it is fixed")),
                    ),
                },
            };
            let sni = Arc::from(format!("{service}.{namespace}.svc"));
            Ok((BackendProtocol::Https { sni, ca }, problem))
        }
        other => Err(format!(
            "pier.dev/backend-protocol: {other:?} is not HTTP, HTTPS, H2C or GRPC"
        )),
    }
}

/// The CA bundle (`ca.crt`, else `tls.crt`) of Secret `namespace/name`.
fn ca_bundle(store: &Store, namespace: &str, name: &str) -> Result<Arc<[u8]>, String> {
    let key = store::key_name(namespace, name);
    let secret = store::find(&store.secrets, namespace, name)
        .ok_or(format!("backend CA Secret {key} not found"))?;
    let pem = secret_field(secret, "ca.crt")
        .or_else(|| secret_field(secret, "tls.crt"))
        .ok_or(format!("backend CA Secret {key} has no ca.crt"))?;
    proxy::tls::parse_ca_bundle(pem).map_err(|e| format!("backend CA Secret {key}: {e}"))
}

/// Whether the Service port (or the matching EndpointSlice port) says `kubernetes.io/h2c`.
fn app_protocol_h2c(
    slices: &SliceIndex,
    svc: &Service,
    namespace: &str,
    service: &str,
    port: &PortRef,
) -> bool {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref());
    let Some(service_port) = ports.unwrap_or_default().iter().find(|p| match port {
        PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
        PortRef::Number(n) => p.port == *n,
    }) else {
        return false;
    };
    if service_port.app_protocol.as_deref() == Some(APP_PROTOCOL_H2C) {
        return true;
    }
    let wanted = service_port.name.as_deref().filter(|n| !n.is_empty());
    slices
        .of(namespace, service)
        .iter()
        .flat_map(|(_, s)| s.ports.iter())
        .any(|p| {
            p.name.as_deref().filter(|n| !n.is_empty()) == wanted
                && p.app_protocol.as_deref() == Some(APP_PROTOCOL_H2C)
        })
}
