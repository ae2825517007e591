//! How pier connects to backends that do not speak clear-text HTTP/1.1: HTTPS (TLS to the
//! pod) and h2c (HTTP/2 with prior knowledge, also used for gRPC).

use super::cert::ca_certificates;
use crate::table::{BackendProtocol, RoutingTable};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora_core::protocols::tls::CaType;
use pingora_core::utils::tls::{parse_x509, WrappedX509};
use std::collections::HashMap;
use std::sync::Arc;

/// Concurrent streams pier opens on one h2c connection (Pingora's default is 1, which would
/// make HTTP/2 no better than HTTP/1.1).
const H2_STREAMS_PER_CONNECTION: usize = 100;

/// The prepared connection settings of one backend Service port.
#[derive(Debug, Clone)]
enum Upstream {
    Https {
        sni: String,
        /// Parsed CA certificates; `None` means the pod's certificate is not verified.
        ca: Option<Arc<CaType>>,
    },
    H2c,
}

/// Connection settings for every non-HTTP/1.1 backend of a table, by service id.
#[derive(Default)]
pub struct Upstreams {
    by_id: HashMap<Arc<str>, Upstream>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("backends", &self.by_id.len())
            .finish()
    }
}

impl Upstreams {
    /// Prepares the table's backend protocols; CA bundles are parsed here, once per table,
    /// rather than per connection.
    pub fn build(table: &RoutingTable) -> Upstreams {
        let mut by_id = HashMap::new();
        for (id, protocol) in &table.backend_protocols {
            let upstream = match protocol {
                BackendProtocol::Http => continue,
                BackendProtocol::H2c => Upstream::H2c,
                BackendProtocol::Https { sni, ca } => Upstream::Https {
                    sni: sni.to_string(),
                    // An unusable bundle (translate() reported it) becomes an empty list, which
                    // fails every connection: never connect unverified by accident.
                    ca: ca.as_deref().map(|pem| {
                        wrapped_cas(pem).unwrap_or_else(|e| {
                            tracing::debug!(backend = %id, error = %e, "unusable backend CA");
                            Arc::from(Vec::new())
                        })
                    }),
                },
            };
            by_id.insert(id.clone(), upstream);
        }
        Upstreams { by_id }
    }

    /// Whether backend `id` speaks clear-text HTTP/1.1 (neither HTTPS nor h2c).
    pub fn is_plain_http1(&self, id: &str) -> bool {
        self.by_id.is_empty() || !self.by_id.contains_key(id)
    }

    /// Adapts a clear-text HTTP/1.1 peer for backend `id`: TLS with SNI (and verification when
    /// a CA is configured), or HTTP/2 prior knowledge. Other backends are left as they are.
    pub fn configure(&self, id: &str, peer: &mut HttpPeer) {
        match self.by_id.get(id) {
            None => {}
            Some(Upstream::H2c) => {
                peer.options.alpn = ALPN::H2;
                peer.options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
            }
            Some(Upstream::Https { sni, ca }) => {
                peer.scheme = pingora::upstreams::peer::Scheme::HTTPS;
                peer.sni = sni.clone();
                peer.options.alpn = ALPN::H1;
                match ca {
                    Some(ca) => {
                        peer.options.verify_cert = true;
                        peer.options.verify_hostname = true;
                        // An empty list makes Pingora refuse the connection: fail closed.
                        peer.options.ca = Some(ca.clone());
                    }
                    None => {
                        peer.options.verify_cert = false;
                        peer.options.verify_hostname = false;
                    }
                }
            }
        }
    }
}

/// Parses a CA bundle into Pingora's form. `parse_x509` panics on bad DER, so the bundle goes
/// through rustls' trust-anchor parsing first.
fn wrapped_cas(pem: &[u8]) -> Result<Arc<CaType>, super::TlsError> {
    let cas: Vec<WrappedX509> = ca_certificates(pem)?
        .into_iter()
        .map(|der| WrappedX509::new(der.to_vec(), parse_x509))
        .collect();
    Ok(Arc::from(cas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::self_signed;

    fn peer() -> HttpPeer {
        HttpPeer::new("127.0.0.1:80", false, String::new())
    }

    #[test]
    fn configures_h2c_https_and_leaves_plain_backends_alone() {
        let ca = self_signed().unwrap().chain_pem;
        let https = |ca| BackendProtocol::Https {
            sni: Arc::from("svc.ns.svc"),
            ca,
        };
        let table = RoutingTable {
            backend_protocols: [
                (Arc::from("ns/h2:80"), BackendProtocol::H2c),
                (Arc::from("ns/tls:443"), https(None)),
                (Arc::from("ns/ver:443"), https(Some(ca))),
                (Arc::from("ns/bad:443"), https(Some(Arc::from(&b""[..])))),
            ]
            .into_iter()
            .collect(),
            ..RoutingTable::default()
        };
        let upstreams = Upstreams::build(&table);
        let configured = |id: &str| {
            let mut p = peer();
            upstreams.configure(id, &mut p);
            p
        };
        let plain = configured("ns/web:80");
        assert!(!plain.is_tls());
        assert_eq!(plain.options.alpn, ALPN::H1);
        let h2 = configured("ns/h2:80");
        assert_eq!((h2.is_tls(), h2.options.alpn.clone()), (false, ALPN::H2));
        assert!(h2.options.max_h2_streams > 1);
        let tls = configured("ns/tls:443");
        assert!(tls.is_tls() && !tls.options.verify_cert);
        assert_eq!(tls.sni, "svc.ns.svc");
        let verified = configured("ns/ver:443");
        assert!(verified.options.verify_cert && verified.options.verify_hostname);
        assert_eq!(verified.options.ca.as_ref().map(|c| c.len()), Some(1));
        // An unusable CA fails closed: verification on, nothing trusted.
        let bad = configured("ns/bad:443");
        assert!(bad.options.verify_cert);
        assert_eq!(bad.options.ca.as_ref().map(|c| c.len()), Some(0));
    }
}
