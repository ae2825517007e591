//! TLS: the SNI certificate resolver, per-host HTTPS policy, backend TLS/h2c, and the HTTPS
//! listener settings. The only module of pier that touches rustls.
//!
//! Everything comes from the routing table (certificates arrive as validated PEM) and is
//! rebuilt into one [`TlsRuntime`] per table, published with an atomic swap next to the router.
//! The listener's resolver reads the current runtime on every handshake, so a changed Secret
//! takes effect without restarting the listener or closing connections.
//!
//! Listener security: TLS 1.2 and 1.3 only (Pingora's builder), rustls' ring cipher suites
//! (AEAD with ECDHE only: AES-GCM and ChaCha20-Poly1305), session resumption through rustls'
//! default in-memory session cache (TLS 1.2 session ids, TLS 1.3 stateful tickets).

mod cert;
mod policy;
mod resolver;
mod upstream;

pub use cert::{parse_ca_bundle, parse_certificate, self_signed};
pub use policy::HostPolicies;
pub use resolver::{CertStore, SniResolver};
pub use upstream::Upstreams;

use crate::table::RoutingTable;
use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::Session;
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// Why a certificate, key or CA bundle cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The PEM text does not parse.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// No `CERTIFICATE` block.
    #[error("no certificate found in the PEM data")]
    NoCertificate,
    /// No private key block.
    #[error("no private key found in the PEM data")]
    NoKey,
    /// The key is not one rustls can sign with (RSA, ECDSA P-256/P-384, Ed25519).
    #[error("unusable private key: {0}")]
    Key(String),
    /// The key does not belong to the first certificate of the chain.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// A certificate is malformed.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// The self-signed default certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// Pingora refused the listener settings.
    #[error("TLS listener settings: {0}")]
    Listener(String),
}

/// What the TLS parts of the data plane need, compiled from one routing table.
#[derive(Debug, Default)]
pub struct TlsRuntime {
    /// Certificates by SNI.
    pub certs: CertStore,
    /// Redirect and HSTS by request host.
    pub policies: HostPolicies,
    /// TLS and h2c settings of backends.
    pub upstreams: Upstreams,
}

impl TlsRuntime {
    /// Compiles a table; `previous` donates parsed certificates that did not change.
    pub fn build(table: &RoutingTable, previous: &TlsRuntime) -> TlsRuntime {
        TlsRuntime {
            certs: CertStore::build(table, &previous.certs),
            policies: HostPolicies::build(table),
            upstreams: Upstreams::build(table),
        }
    }
}

/// The swapped [`TlsRuntime`] plus the self-signed certificate generated at start-up.
#[derive(Debug)]
pub struct TlsState {
    runtime: Arc<ArcSwap<TlsRuntime>>,
    fallback: Option<Arc<CertifiedKey>>,
}

impl Default for TlsState {
    /// An empty runtime and a freshly generated self-signed fallback certificate. Generation
    /// only fails without a working random source; then handshakes that need the fallback
    /// fail, and everything else works.
    fn default() -> TlsState {
        let fallback = self_signed()
            .and_then(|c| cert::certified_key(&c))
            .map(Arc::new)
            .inspect_err(|e| tracing::error!(error = %e, "no self-signed default certificate"))
            .ok();
        TlsState {
            runtime: Arc::new(ArcSwap::from_pointee(TlsRuntime::default())),
            fallback,
        }
    }
}

impl TlsState {
    /// Compiles and swaps in the TLS runtime of a new table.
    pub fn publish(&self, table: &RoutingTable) {
        let next = TlsRuntime::build(table, &self.runtime.load());
        self.runtime.store(Arc::new(next));
    }

    /// The runtime in effect.
    pub fn current(&self) -> arc_swap::Guard<Arc<TlsRuntime>> {
        self.runtime.load()
    }

    /// The resolver to install in the HTTPS listener.
    pub fn resolver(&self) -> Arc<SniResolver> {
        Arc::new(SniResolver::new(
            self.runtime.clone(),
            self.fallback.clone(),
        ))
    }

    /// Settings of the HTTPS listener: SNI through [`TlsState::resolver`], ALPN `h2` and
    /// `http/1.1`.
    pub fn listener_settings(&self) -> Result<TlsSettings, TlsError> {
        // Paths are unused: a resolver replaces the certificate files.
        let mut settings =
            TlsSettings::intermediate("", "").map_err(|e| TlsError::Listener(e.to_string()))?;
        settings.set_cert_resolver(self.resolver());
        settings.enable_h2();
        Ok(settings)
    }
}

/// Whether the request arrived over TLS (the HTTPS listener).
pub fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
