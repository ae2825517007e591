//! Backend protocols (`pier.dev/backend-protocol`, `appProtocol`) and backend CA bundles.

use super::{secret_field, Settings};
use crate::diagnostic::Diagnostic;
use crate::store::{ObjectKey, Store};
use crate::translate::annotations;
use crate::translate::backend::{PortRef, Resolver, SliceIndex};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proxy::table::BackendProtocol;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

/// `appProtocol` value that asks for HTTP/2 prior knowledge (KEP-3726).
const APP_PROTOCOL_H2C: &str = "kubernetes.io/h2c";

/// What [`backend_protocol`] answers for one backend.
type Answer = Result<(BackendProtocol, Option<String>), String>;

/// What is known about one backend while protocols are decided.
#[derive(Default)]
struct Slot {
    /// The answer when the Ingress sets no protocol annotation of its own: it depends on the
    /// Service alone, so it is worked out once.
    by_service: Option<Answer>,
    /// The source that decided the protocol (the oldest naming the backend), and the protocol.
    decided: Option<(Rc<str>, BackendProtocol)>,
}

/// A backend as Ingresses name it: `(namespace, service, port)`.
type BackendKey<'a> = (&'a str, &'a str, PortRef);

/// Protocols of every backend the served Ingresses (and `--default-backend`) name, by
/// backend id. The oldest Ingress decides a Service port's protocol; a later one that asks
/// for another gets a Diagnostic. Plain HTTP is the default and is not listed.
pub(super) fn protocols<'a>(
    store: &'a Store,
    resolver: &mut Resolver<'a>,
    settings: &'a Settings,
    served: &[(&'a ObjectKey, &'a Ingress)],
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<Arc<str>, BackendProtocol> {
    let mut backends: HashMap<BackendKey<'a>, Slot> = HashMap::with_capacity(2 * served.len());
    let mut decide = |source: &Rc<str>, ingress: Option<&Ingress>, backend: BackendKey<'a>| {
        let (namespace, service, port) = &backend;
        let id = || format!("{namespace}/{service}:{port}");
        let own = ingress.filter(|i| has_protocol_annotations(&i.metadata));
        let slot = backends.entry(backend.clone()).or_default();
        let mut answer = |ingress| {
            let svc = resolver.service(namespace, service);
            let at = (*namespace, *service, port);
            backend_protocol(store, resolver.slices(), ingress, svc, at)
        };
        let answer = match own {
            Some(_) => answer(own),
            None => slot.by_service.get_or_insert_with(|| answer(None)).clone(),
        };
        let protocol = match answer {
            Ok((p, None)) => p,
            Ok((p, Some(why))) => {
                let reason = format!("backend {}: {why}", id());
                diagnostics.push(Diagnostic::new("Ingress", &**source, reason));
                p
            }
            Err(why) => {
                let reason = format!("backend {}: {why}; plain HTTP is used", id());
                diagnostics.push(Diagnostic::new("Ingress", &**source, reason));
                BackendProtocol::Http
            }
        };
        match &slot.decided {
            None => slot.decided = Some((source.clone(), protocol)),
            Some((winner, chosen)) if *chosen != protocol => {
                let reason = format!(
                    "backend {} is already used as {} by {winner}, which takes precedence; \
                     that protocol applies",
                    id(),
                    protocol_name(chosen)
                );
                diagnostics.push(Diagnostic::new("Ingress", &**source, reason));
            }
            Some(_) => {}
        }
    };
    for (key, ingress) in served {
        let Some(spec) = &ingress.spec else { continue };
        let source: Rc<str> = Rc::from(key.to_string());
        let paths = spec
            .rules
            .iter()
            .flatten()
            .flat_map(|r| &r.http)
            .flat_map(|h| &h.paths);
        let backends = spec.default_backend.iter().chain(paths.map(|p| &p.backend));
        for service in backends.filter_map(|b| b.service.as_ref()) {
            let port = service.port.as_ref().and_then(PortRef::from_backend_port);
            let Some(port) = port else { continue };
            let backend = (key.namespace.as_str(), service.name.as_str(), port);
            decide(&source, Some(*ingress), backend);
        }
    }
    if let Some(backend) = settings
        .default_backend
        .as_deref()
        .and_then(crate::translate::backend::parse_backend_ref)
    {
        decide(&Rc::from("--default-backend"), None, backend);
    }
    backends
        .into_iter()
        .filter_map(|(backend, slot)| Some((backend, slot.decided?.1)))
        .filter(|(_, p)| *p != BackendProtocol::Http)
        .map(|((namespace, service, port), p)| {
            (Arc::from(format!("{namespace}/{service}:{port}")), p)
        })
        .collect()
}

/// Whether an Ingress sets the backend protocol or CA itself (else its backends' protocols
/// depend on their Services alone).
fn has_protocol_annotations(meta: &ObjectMeta) -> bool {
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
pub(crate) fn backend_protocol(
    store: &Store,
    slices: &SliceIndex<'_>,
    ingress: Option<&Ingress>,
    svc: Option<&Service>,
    (namespace, service, port): (&str, &str, &PortRef),
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
    let key = ObjectKey::new(namespace, name);
    let secret = store
        .secrets
        .get(&key)
        .ok_or(format!("backend CA Secret {key} not found"))?;
    let pem = secret_field(secret, "ca.crt")
        .or_else(|| secret_field(secret, "tls.crt"))
        .ok_or(format!("backend CA Secret {key} has no ca.crt"))?;
    proxy::tls::parse_ca_bundle(pem).map_err(|e| format!("backend CA Secret {key}: {e}"))
}

/// Whether the Service port (or the matching EndpointSlice port) says `kubernetes.io/h2c`.
fn app_protocol_h2c(
    slices: &SliceIndex<'_>,
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
        .flat_map(|(_, s)| s.ports.iter().flatten())
        .any(|p| {
            p.name.as_deref().filter(|n| !n.is_empty()) == wanted
                && p.app_protocol.as_deref() == Some(APP_PROTOCOL_H2C)
        })
}
