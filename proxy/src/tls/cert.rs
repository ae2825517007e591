//! Certificates: validating PEM from Secrets, turning it into rustls signing keys, and the
//! self-signed fallback generated at start-up.

use super::TlsError;
use crate::table::TlsCertificate;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use std::sync::Arc;

/// The crypto provider pier uses everywhere: ring, with rustls' default (AEAD-only, ECDHE-only)
/// cipher suites.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks a `kubernetes.io/tls` Secret's `tls.crt` (chain, leaf first) and `tls.key` (PKCS#8,
/// PKCS#1 RSA or SEC1 EC) and returns them as table data: both must parse, the key must be
/// one rustls can sign with, and it must belong to the leaf certificate.
pub fn parse_certificate(chain_pem: &[u8], key_pem: &[u8]) -> Result<TlsCertificate, TlsError> {
    let certificate = TlsCertificate {
        chain_pem: Arc::from(chain_pem),
        key_pem: Arc::from(key_pem),
    };
    certified_key(&certificate)?;
    Ok(certificate)
}

/// Checks a PEM bundle of CA certificates (for verifying HTTPS backends) and returns it as
/// table data.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Arc<[u8]>, TlsError> {
    ca_certificates(pem)?;
    Ok(Arc::from(pem))
}

/// The DER certificates of a CA bundle, each accepted as a trust anchor.
pub(crate) fn ca_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = chain(pem)?;
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
    }
    Ok(certs)
}

/// The signing key and chain rustls serves for a certificate.
pub(crate) fn certified_key(certificate: &TlsCertificate) -> Result<CertifiedKey, TlsError> {
    let certs = chain(&certificate.chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&certificate.key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
        other => TlsError::Pem(other.to_string()),
    })?;
    let certified = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch,
        other => TlsError::Key(other.to_string()),
    })?;
    // from_der accepts a key whose public half it cannot compute; pier wants certainty.
    certified.keys_match().map_err(|_| TlsError::KeyMismatch)?;
    Ok(certified)
}

fn chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// A self-signed ECDSA P-256 certificate for `pier.invalid`, generated in memory; served when
/// no `--default-certificate` is usable. Clients will not trust it, which is the point: it
/// only keeps the handshake from failing outright.
pub fn self_signed() -> Result<TlsCertificate, TlsError> {
    let mut params = rcgen::CertificateParams::new(vec!["pier.invalid".to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pier default certificate");
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    parse_certificate(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(name: &str, alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn accepts_ecdsa_and_rejects_garbage() {
        let (crt, key) = generate("a.example", &rcgen::PKCS_ECDSA_P256_SHA256);
        let parsed = parse_certificate(crt.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(parsed.fingerprint().len(), 16);
        assert!(!format!("{parsed:?}").contains("PRIVATE"));
        assert!(matches!(
            parse_certificate(b"nope", key.as_bytes()),
            Err(TlsError::NoCertificate)
        ));
        assert!(matches!(
            parse_certificate(crt.as_bytes(), b""),
            Err(TlsError::NoKey)
        ));
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let (crt, _) = generate("a.example", &rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other_key) = generate("b.example", &rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(matches!(
            parse_certificate(crt.as_bytes(), other_key.as_bytes()),
            Err(TlsError::KeyMismatch)
        ));
    }

    /// ring cannot generate RSA keys, so an RSA pair comes from the `openssl` command
    /// (PKCS#8 and the traditional PKCS#1 form); `scripts/install-deps` installs it.
    #[test]
    fn accepts_rsa_in_pkcs8_and_pkcs1() {
        let dir = std::env::temp_dir().join(format!("pier-rsa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (crt, key, key1) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("k1.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=rsa.example", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output();
        assert!(
            made.is_ok_and(|o| o.status.success()),
            "the openssl command is needed to make an RSA key (scripts/install-deps installs it)"
        );
        let pkcs1 = std::process::Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&key1)
            .output();
        let crt = std::fs::read(&crt).unwrap();
        assert!(parse_certificate(&crt, &std::fs::read(&key).unwrap()).is_ok());
        assert!(
            pkcs1.is_ok_and(|o| o.status.success()),
            "openssl rsa -traditional failed"
        );
        {
            let key1 = std::fs::read(&key1).unwrap();
            assert!(String::from_utf8_lossy(&key1).contains("BEGIN RSA PRIVATE KEY"));
            assert!(parse_certificate(&crt, &key1).is_ok());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn self_signed_is_usable_and_ca_bundles_parse() {
        let cert = self_signed().unwrap();
        assert!(certified_key(&cert).is_ok());
        assert!(parse_ca_bundle(&cert.chain_pem).is_ok());
        assert!(parse_ca_bundle(b"").is_err());
    }
}
