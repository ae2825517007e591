//! TLS parts of the routing table: certificates, per-host HTTPS policy, backend protocols.
//!
//! Plain data like the rest of the table. Certificates are kept as validated PEM text (see
//! [`crate::tls::parse_certificate`]); the proxy runtime turns them into signing keys. Key
//! material never appears in `Debug` output or in the serialized table (`/debug/routes`).

use super::HostMatch;
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// A certificate chain and its private key, already checked to parse and to match.
///
/// Construct it with [`crate::tls::parse_certificate`]; `==` compares the PEM bytes, so an
/// unchanged Secret leaves the table equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TlsCertificate {
    /// PEM of the chain, leaf first (`tls.crt`).
    pub chain_pem: Arc<[u8]>,
    /// PEM of the private key (`tls.key`): PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key_pem: Arc<[u8]>,
}

impl TlsCertificate {
    /// A short, stable digest of the chain (not cryptographic), to tell certificates apart in
    /// logs and `/debug/routes` without printing them.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.chain_pem.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("fingerprint", &self.fingerprint())
            .field("chain_bytes", &self.chain_pem.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Serialize for TlsCertificate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Only what helps debugging; never the key.
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("TlsCertificate", 1)?;
        s.serialize_field("fingerprint", &self.fingerprint())?;
        s.end()
    }
}

/// HTTPS behaviour of one host that has TLS (an Ingress `tls` entry covers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostTls {
    /// Which request hosts this applies to (matched like virtual hosts).
    pub host: HostMatch,
    /// Answer plain-HTTP requests with 308 to `https://` (annotation `pier.dev/ssl-redirect`).
    pub ssl_redirect: bool,
    /// Value of `Strict-Transport-Security` on HTTPS answers (annotation `pier.dev/hsts`).
    pub hsts: Option<Arc<str>>,
}

/// How pier talks to a backend Service's endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum BackendProtocol {
    /// HTTP/1.1 in clear text.
    #[default]
    Http,
    /// HTTP/1.1 over TLS; SNI is `sni`, the certificate is verified only when `ca` is set.
    Https {
        /// Server name sent to the endpoint (`<service>.<namespace>.svc`).
        sni: Arc<str>,
        /// PEM bundle of trusted CA certificates; `None` means no verification.
        #[serde(serialize_with = "ca_summary")]
        ca: Option<Arc<[u8]>>,
    },
    /// HTTP/2 with prior knowledge in clear text (h2c, gRPC).
    H2c,
}

fn ca_summary<S: Serializer>(ca: &Option<Arc<[u8]>>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(ca.is_some())
}
