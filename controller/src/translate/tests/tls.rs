//! TLS: Secrets to certificates, redirect/HSTS policy, default certificate, backend protocols.

use super::*;
use crate::store::ObjectKey;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use proxy::table::{BackendProtocol, HostTls};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A certificate for `names` with its key, made now (never a checked-in key).
pub(super) fn generated(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = rcgen::CertificateParams::new(names).expect("params");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

fn tls_secret(store: &mut Store, namespace: &str, name: &str, crt: &str, key: &str) {
    let data = BTreeMap::from([
        ("tls.crt".to_string(), ByteString(crt.as_bytes().to_vec())),
        ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
    ]);
    let secret = Secret {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    store.insert(Object::Secret(Arc::new(secret)));
}

/// Service `a` (port 80) so that only the Diagnostics under test appear.
fn store() -> Store {
    let mut store = Store::default();
    service(&mut store, "default", "a", &[(Some("http"), 80)]);
    store
}

fn store_with_certs() -> Store {
    let mut store = store();
    let (crt, key) = generated(&["a.com", "*.a.com"]);
    tls_secret(&mut store, "default", "a-cert", &crt, &key);
    let (other_crt, _) = generated(&["b.com"]);
    // A key that belongs to another certificate.
    tls_secret(&mut store, "default", "b-cert", &other_crt, &key);
    store
}

#[test]
fn a_bad_or_missing_secret_only_affects_its_hosts() {
    let mut store = store_with_certs();
    IngressBuilder::new("default", "web")
        .rule("a.com", "/", "Prefix", "a", 80)
        .rule("b.com", "/", "Prefix", "a", 80)
        .tls(&["a.com", "*.a.com"], Some("a-cert"))
        .tls(&["b.com"], Some("b-cert"))
        .tls(&["c.com"], Some("missing"))
        .insert(&mut store);
    let (table, diags) = run(&store);
    let certs: Vec<(&str, bool)> = table
        .tls
        .iter()
        .map(|b| (b.secret.as_str(), b.certificate.is_some()))
        .collect();
    assert_eq!(
        certs,
        [
            ("default/a-cert", true),
            ("default/b-cert", false),
            ("default/missing", false)
        ]
    );
    let tls_diags: Vec<&str> = diags_for(&diags, "default/web")
        .iter()
        .map(|d| d.reason.as_str())
        .filter(|r| r.starts_with("spec.tls"))
        .collect();
    assert_eq!(tls_diags.len(), 2, "{diags:?}");
    assert!(tls_diags[0].contains("Secret default/b-cert") && tls_diags[0].contains("match"));
    assert!(tls_diags[1].contains("Secret default/missing not found"));
    assert!(tls_diags[1].contains("[c.com] get the default certificate"));
    // Unchanged input gives an equal table (no-op updates are skipped).
    assert_eq!(run(&store).0, table);
}

#[test]
fn tls_hosts_redirect_unless_told_not_to_and_carry_hsts() {
    let mut store = store_with_certs();
    IngressBuilder::new("default", "secure")
        .annotation("pier.dev/hsts", "max-age=600; includeSubDomains")
        .rule("a.com", "/", "Prefix", "a", 80)
        .tls(&["a.com", "*.a.com"], Some("a-cert"))
        .insert(&mut store);
    IngressBuilder::new("default", "relaxed")
        .annotation("pier.dev/ssl-redirect", "false")
        .rule("x.a.com", "/", "Prefix", "a", 80)
        .insert(&mut store);
    IngressBuilder::new("default", "plain")
        .annotation("pier.dev/hsts", "forever")
        .rule("plain.com", "/", "Prefix", "a", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    let policy = |host: &str| -> &HostTls {
        let host = HostMatch::from_rule_host(host);
        table
            .tls_hosts
            .iter()
            .find(|p| p.host == host)
            .expect("policy")
    };
    assert!(policy("a.com").ssl_redirect);
    assert_eq!(
        policy("a.com").hsts.as_deref(),
        Some("max-age=600; includeSubDomains")
    );
    assert!(!policy("x.a.com").ssl_redirect, "annotation turns it off");
    assert!(!policy("plain.com").ssl_redirect, "no TLS, no redirect");
    let plain = diags_for(&diags, "default/plain");
    assert_eq!(plain.len(), 1, "{diags:?}");
    assert!(plain[0].reason.contains("pier.dev/hsts"));
}

#[test]
fn default_certificate_comes_from_settings() {
    let store = store_with_certs();
    let settings = Settings {
        default_certificate: Some("default/a-cert".into()),
        ..Settings::default()
    };
    let (table, diags) = translate(&store, &settings);
    assert!(diags.is_empty(), "{diags:?}");
    assert!(table.default_certificate.is_some());
    for bad in ["default/b-cert", "default/nope", "nonamespace"] {
        let settings = Settings {
            default_certificate: Some(bad.into()),
            ..Settings::default()
        };
        let (table, diags) = translate(&store, &settings);
        assert!(table.default_certificate.is_none());
        assert_eq!(diags.len(), 1, "{bad}: {diags:?}");
        assert_eq!(diags[0].kind, "Settings");
    }
}

#[test]
fn backend_protocols_from_annotations_and_app_protocol() {
    let mut store = store();
    service(&mut store, "default", "grpc", &[(Some("grpc"), 50051)]);
    service(&mut store, "default", "tls", &[(Some("https"), 443)]);
    service(&mut store, "default", "h2", &[(Some("h2"), 80)]);
    let key = ObjectKey::new("default", "h2");
    if let Some(port) = store
        .services
        .get_mut(&key)
        .and_then(|s| Arc::make_mut(s).spec.as_mut())
        .and_then(|s| s.ports.as_mut())
        .and_then(|p| p.first_mut())
    {
        port.app_protocol = Some("kubernetes.io/h2c".into());
    }
    IngressBuilder::new("default", "grpc")
        .annotation("pier.dev/backend-protocol", "GRPC")
        .rule("g.com", "/", "Prefix", "grpc", "grpc")
        .insert(&mut store);
    IngressBuilder::new("default", "tls")
        .annotation("pier.dev/backend-protocol", "https")
        .rule("t.com", "/", "Prefix", "tls", 443)
        .insert(&mut store);
    IngressBuilder::new("default", "h2")
        .rule("h.com", "/", "Prefix", "h2", "h2")
        .insert(&mut store);
    IngressBuilder::new("default", "wrong")
        .annotation("pier.dev/backend-protocol", "SPDY")
        .rule("w.com", "/", "Prefix", "h2", 80)
        .insert(&mut store);
    let (table, diags) = run(&store);
    let protocol = |id: &str| table.backend_protocols.get(id).cloned();
    assert_eq!(protocol("default/grpc:grpc"), Some(BackendProtocol::H2c));
    assert_eq!(protocol("default/h2:h2"), Some(BackendProtocol::H2c));
    assert_eq!(
        protocol("default/tls:443"),
        Some(BackendProtocol::Https {
            sni: "tls.default.svc".into(),
            ca: None
        })
    );
    assert_eq!(protocol("default/h2:80"), None, "plain HTTP is not listed");
    let wrong = diags_for(&diags, "default/wrong");
    assert_eq!(wrong.len(), 1, "{diags:?}");
    assert!(wrong[0].reason.contains("SPDY"));
}
