//! Helpers of the TLS tests: certificates made per test (rcgen), Secret and Ingress YAML, a
//! TLS client that reports which certificate it was served, and an upgrade-echo backend.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A certificate and key in PEM, plus the leaf's DER to compare with what a server presents.
pub struct Cert {
    pub crt: String,
    pub key: String,
    pub der: Vec<u8>,
}

/// A self-signed ECDSA certificate for `names`, generated now.
pub fn cert(names: &[&str]) -> Cert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = rcgen::CertificateParams::new(names).expect("certificate params");
    let key = rcgen::KeyPair::generate().expect("key pair");
    let c = params.self_signed(&key).expect("self-signed certificate");
    Cert {
        crt: c.pem(),
        key: key.serialize_pem(),
        der: c.der().to_vec(),
    }
}

/// A `kubernetes.io/tls` Secret (with `stringData`, as a user may write it).
pub fn tls_secret(namespace: &str, name: &str, crt: &str, key: &str) -> String {
    yaml(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace },
        "type": "kubernetes.io/tls",
        "stringData": { "tls.crt": crt, "tls.key": key },
    }))
}

/// Adds a `spec.tls` entry to an Ingress made by `e2e::manifests::Ingress::to_yaml`.
pub fn with_tls(ingress_yaml: &str, hosts: &[&str], secret: &str) -> String {
    let mut v: Value = serde_yaml::from_str(ingress_yaml).expect("Ingress YAML");
    let entry = json!({ "hosts": hosts, "secretName": secret });
    match v["spec"]["tls"].as_array_mut() {
        Some(list) => list.push(entry),
        None => v["spec"]["tls"] = json!([entry]),
    }
    yaml(&v)
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).expect("a JSON value renders as YAML")
}

/// Accepts any server certificate: the tests check *which* certificate was served.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects with TLS to `addr`, sending `sni` (none when `None`) and offering `alpn`.
pub async fn connect(addr: SocketAddr, sni: Option<&str>, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_string()).expect("name");
    // `/readyz` turns 200 when the configuration is loaded, which can be a moment before
    // Pingora has bound its listeners: retry refused connects briefly.
    let tcp = e2e::poll_until(std::time::Duration::from_secs(5), || async {
        TcpStream::connect(addr).await.map_err(|e| e.to_string())
    })
    .await
    .expect("connect to HTTPS listener");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// The DER of the leaf certificate a server presented for `sni`.
pub async fn served_leaf(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
    let stream = connect(addr, sni, &[b"http/1.1"]).await;
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .expect("server presented a certificate")
}

/// An HTTP/1.1 sender over one TLS connection.
pub type H1 = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Opens a TLS connection (ALPN http/1.1) and performs the HTTP/1.1 handshake on it.
pub async fn h1_over_tls(addr: SocketAddr, sni: &str) -> H1 {
    let stream = connect(addr, Some(sni), &[b"http/1.1"]).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake over TLS");
    tokio::spawn(conn);
    sender
}

/// `GET path` with `Host: host` on an HTTP/1.1 sender; returns status, headers and JSON body
/// (`Value::Null` when the body is not JSON).
pub async fn get(sender: &mut H1, host: &str, path: &str) -> (u16, http::HeaderMap, Value) {
    sender.ready().await.expect("connection usable");
    let req = http::Request::get(path)
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (parts.status.as_u16(), parts.headers, json)
}

/// What [`h2_get`] got: the negotiated protocol, status, header fields and JSON body.
pub type H2Reply = (Option<Vec<u8>>, u16, http::HeaderMap, Value);

/// One request over TLS with ALPN h2.
pub async fn h2_get(addr: SocketAddr, sni: &str, uri: &str) -> H2Reply {
    let stream = connect(addr, Some(sni), &[b"h2", b"http/1.1"]).await;
    let alpn = stream.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake over TLS");
    tokio::spawn(conn);
    let req = http::Request::get(uri)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("h2 response");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        alpn,
        parts.status.as_u16(),
        parts.headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// A backend that accepts an HTTP/1.1 Upgrade (`101 Switching Protocols`) and then echoes
/// every byte back; enough to see a WebSocket session pass through the proxy.
pub async fn upgrade_echo(ip: std::net::Ipv4Addr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind upgrade echo");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_none() {
                    return;
                }
                let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                              Connection: Upgrade\r\n\r\n";
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Reads up to the end of an HTTP head; returns it as text.
pub async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so nothing after the head is consumed.
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// An HTTPS backend serving `cert`; every answer is `{"sni": <server name it was asked for>}`.
pub async fn tls_echo(ip: std::net::Ipv4Addr, cert: &Cert) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let key = PrivateKeyDer::from_pem_slice(cert.key.as_bytes()).expect("key PEM");
    let chain = vec![CertificateDer::from(cert.der.clone())];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((ip, 0)).await.expect("bind TLS echo");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let body = json!({ "sni": sni }).to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// A Secret holding a CA bundle as `ca.crt`.
pub fn ca_secret(namespace: &str, name: &str, ca_pem: &str) -> String {
    yaml(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace },
        "type": "Opaque",
        "stringData": { "ca.crt": ca_pem },
    }))
}
