//! The SNI certificate resolver: an in-memory map swapped with the routing table.
//!
//! rustls asks for a certificate synchronously during the handshake, so everything it may
//! need is already parsed here. A new table yields a new [`CertStore`]; certificates whose PEM
//! did not change are carried over rather than parsed again.

use super::cert::certified_key;
use super::TlsRuntime;
use crate::table::{normalize_host, RoutingTable, TlsCertificate};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// Certificates by SNI name, compiled from one routing table.
#[derive(Debug, Default)]
pub struct CertStore {
    /// Exact names (lower-case) → certificate.
    exact: HashMap<String, Entry>,
    /// `*.foo.com` stored as `foo.com` → certificate.
    wildcard: HashMap<String, Entry>,
    /// From the table's `default_certificate`, when it parsed.
    default: Option<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    source: TlsCertificate,
    key: Arc<CertifiedKey>,
}

impl CertStore {
    /// Compiles the table's TLS bindings. A host named by several bindings keeps the first
    /// (translate() sorts them deterministically). `previous` donates already parsed keys.
    pub fn build(table: &RoutingTable, previous: &CertStore) -> CertStore {
        // Also dedups within the table: one Secret named by several Ingresses parses once.
        let mut parsed: HashMap<TlsCertificate, Arc<CertifiedKey>> = previous
            .entries()
            .map(|e| (e.source.clone(), e.key.clone()))
            .collect();
        let mut entry = |cert: &TlsCertificate| -> Option<Entry> {
            if let Some(key) = parsed.get(cert) {
                return Some(Entry {
                    source: cert.clone(),
                    key: key.clone(),
                });
            }
            match certified_key(cert) {
                Ok(key) => {
                    let key = Arc::new(key);
                    parsed.insert(cert.clone(), key.clone());
                    Some(Entry {
                        source: cert.clone(),
                        key,
                    })
                }
                Err(e) => {
                    // translate() validated it; this only happens if the two disagree.
                    tracing::warn!(error = %e, "certificate rejected by the TLS runtime");
                    None
                }
            }
        };
        let mut store = CertStore {
            default: table.default_certificate.as_ref().and_then(&mut entry),
            ..CertStore::default()
        };
        for binding in &table.tls {
            let Some(cert) = &binding.certificate else {
                continue;
            };
            let Some(e) = entry(cert) else { continue };
            for host in &binding.hosts {
                let host = normalize_host(host);
                let (map, name) = match host.strip_prefix("*.") {
                    Some(rest) => (&mut store.wildcard, rest.to_string()),
                    None => (&mut store.exact, host.into_owned()),
                };
                map.entry(name).or_insert_with(|| e.clone());
            }
        }
        store
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(self.default.iter())
    }

    /// The certificate for an SNI name: exact, then a wildcard one label up; `None` means the
    /// default one.
    pub fn lookup(&self, server_name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(e) = self.exact.get(&name) {
            return Some(&e.key);
        }
        let (label, rest) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(rest).map(|e| &e.key)
    }

    /// The configured default certificate, if it is usable.
    pub fn default_key(&self) -> Option<&Arc<CertifiedKey>> {
        self.default.as_ref().map(|e| &e.key)
    }

    /// How many SNI names (exact and wildcard) have their own certificate.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Whether no SNI name has its own certificate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The resolver installed once in the listener; it reads whatever store is current, so a
/// changed Secret is served from the next handshake on.
#[derive(Debug)]
pub struct SniResolver {
    runtime: Arc<ArcSwap<TlsRuntime>>,
    fallback: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// A resolver over the current TLS runtime, answering `fallback` (the generated
    /// self-signed certificate) when neither SNI nor the configured default gives one.
    pub fn new(
        runtime: Arc<ArcSwap<TlsRuntime>>,
        fallback: Option<Arc<CertifiedKey>>,
    ) -> SniResolver {
        SniResolver { runtime, fallback }
    }

    /// The certificate for a handshake with this SNI name (or none); `None` only when not
    /// even the fallback exists.
    pub fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let runtime = self.runtime.load();
        let store = &runtime.certs;
        server_name
            .and_then(|n| store.lookup(n))
            .or(store.default_key())
            .or(self.fallback.as_ref())
            .cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TlsBinding;
    use crate::tls::cert::{parse_certificate, self_signed};

    fn cert(name: &str) -> TlsCertificate {
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let crt = params.self_signed(&key).unwrap();
        parse_certificate(crt.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()
    }

    fn binding(hosts: &[&str], certificate: Option<TlsCertificate>) -> TlsBinding {
        TlsBinding {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            secret: "ns/s".into(),
            source: "ns/i".into(),
            certificate,
        }
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let (a, w) = (cert("a.example"), cert("*.example"));
        let table = RoutingTable {
            tls: vec![
                binding(&["A.example"], Some(a.clone())),
                binding(&["*.example"], Some(w.clone())),
                binding(&["broken.example"], None),
            ],
            ..RoutingTable::default()
        };
        let runtime = TlsRuntime::build(&table, &TlsRuntime::default());
        let fallback = Arc::new(certified_key(&self_signed().unwrap()).unwrap());
        let resolver = SniResolver::new(
            Arc::new(ArcSwap::from_pointee(runtime)),
            Some(fallback.clone()),
        );
        let leaf = |n: Option<&str>| resolver.choose(n).unwrap().cert[0].clone();
        let der = |c: &TlsCertificate| certified_key(c).unwrap().cert[0].clone();
        assert_eq!(leaf(Some("a.example")), der(&a));
        assert_eq!(leaf(Some("b.example")), der(&w));
        // The wildcard covers one label only; a broken Secret falls back too.
        assert_eq!(leaf(Some("x.b.example")), fallback.cert[0]);
        assert_eq!(leaf(Some("example")), fallback.cert[0]);
        assert_eq!(leaf(Some("broken.example")), der(&w));
        assert_eq!(leaf(None), fallback.cert[0]);
    }

    #[test]
    fn unchanged_certificates_are_carried_over() {
        let a = cert("a.example");
        let table = RoutingTable {
            tls: vec![binding(&["a.example"], Some(a))],
            default_certificate: Some(cert("default.example")),
            ..RoutingTable::default()
        };
        let first = CertStore::build(&table, &CertStore::default());
        let second = CertStore::build(&table, &first);
        assert!(Arc::ptr_eq(
            first.lookup("a.example").unwrap(),
            second.lookup("a.example").unwrap()
        ));
        assert!(Arc::ptr_eq(
            first.default_key().unwrap(),
            second.default_key().unwrap()
        ));
        // Anything but a.example gets the configured default.
        assert!(second.lookup("b.example").is_none());
    }
}
