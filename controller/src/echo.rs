//! `pier echo`: a small HTTP backend that answers every request with JSON describing it.
//!
//! Used by the quickstart (`pier demo`) and the e2e tests as a stand-in upstream. It speaks
//! HTTP/1.1 (with keep-alive) and HTTP/2 with prior knowledge (h2c) on the same port, waits
//! `delay_ms` before answering, and answers with a fixed status. The body is
//! `{"name","method","path","query","host","headers","version"}` (`version` e.g. `HTTP/2.0`):
//! - `path` is the request path without the query string, `query` the raw query string or `""`;
//! - `host` is the `Host` header, or the URI authority when there is none (HTTP/2);
//! - `headers` maps lower-case header names to their values, repeated headers joined by `", "`.

use anyhow::Context;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What every response of one echo server is made of.
#[derive(Debug)]
struct EchoConfig {
    name: String,
    delay: Duration,
    status: StatusCode,
}

/// Binds `listen` and serves echo responses forever (until the process ends).
///
/// Every request is answered after `delay_ms` milliseconds with `status` and a JSON body naming
/// this server `name`. Fails only when the address cannot be bound or `status` is not a valid
/// HTTP status code; errors on single connections are logged and never stop the server.
pub async fn serve(
    listen: SocketAddr,
    name: String,
    delay_ms: u64,
    status: u16,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("echo: cannot listen on {listen}"))?;
    serve_on(listener, name, delay_ms, status).await
}

/// Like [`serve`], on an already bound listener (tests bind `127.0.0.1:0` and read the port).
pub async fn serve_on(
    listener: TcpListener,
    name: String,
    delay_ms: u64,
    status: u16,
) -> anyhow::Result<()> {
    let status = StatusCode::from_u16(status)
        .with_context(|| format!("echo: invalid status code {status}"))?;
    let config = Arc::new(EchoConfig {
        name,
        delay: Duration::from_millis(delay_ms),
        status,
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(name = %config.name, %addr, "echo backend listening");
    }
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Typically EMFILE or a connection reset before accept: back off briefly so a
                // persistent error does not spin, then keep serving.
                tracing::warn!(error = %err, "echo: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let config = config.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let config = config.clone();
                async move { Ok::<_, Infallible>(answer(&config, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %err, "echo: connection ended with an error");
            }
        });
    }
}

/// Reads and discards the request body, waits the configured delay, and builds the answer.
async fn answer(config: &EchoConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, mut body) = req.into_parts();
    // Drain frame by frame so large uploads are not buffered; a broken body still gets an answer
    // (the connection error surfaces in serve_connection).
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    if !config.delay.is_zero() {
        tokio::time::sleep(config.delay).await;
    }
    let description = describe(&config.name, &parts);
    let body = serde_json::to_vec(&description).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = config.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The JSON object describing one request (see the module docs for the fields).
fn describe(name: &str, parts: &http::request::Parts) -> serde_json::Value {
    let host = parts
        .headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    for key in parts.headers.keys() {
        let joined = parts
            .headers
            .get_all(key)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        // HeaderName is always lower-case.
        headers.insert(key.as_str().to_string(), serde_json::Value::String(joined));
    }
    serde_json::json!({
        "name": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "host": host,
        "headers": headers,
        // Lets tests see which protocol reached the backend (e.g. h2c from the proxy).
        "version": format!("{:?}", parts.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Starts an echo server on 127.0.0.1:0 and returns its address.
    async fn start(name: &str, delay_ms: u64, status: u16) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_on(listener, name.to_string(), delay_ms, status));
        addr
    }

    /// Sends raw bytes, reads until the server closes, returns (status line, headers, body).
    async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (String, String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
            .await
            .expect("echo did not close the connection in time")
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("no end of headers");
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (
            status_line.to_string(),
            headers.to_ascii_lowercase(),
            body.to_string(),
        )
    }

    #[tokio::test]
    async fn describes_an_http1_request() {
        let addr = start("alpha", 0, 200).await;
        let request = "GET /some/path?a=1&b=two HTTP/1.1\r\n\
                       Host: Example.COM:8080\r\n\
                       X-Multi: one\r\n\
                       X-Multi: two\r\n\
                       X-Custom: Value\r\n\
                       Connection: close\r\n\r\n";
        let (status, headers, body) = raw_exchange(addr, request.as_bytes()).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            headers.contains("content-type: application/json"),
            "{headers}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["name"], "alpha");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/some/path");
        assert_eq!(v["query"], "a=1&b=two");
        assert_eq!(v["host"], "Example.COM:8080");
        assert_eq!(v["headers"]["x-multi"], "one, two");
        assert_eq!(v["headers"]["x-custom"], "Value");
        assert_eq!(v["headers"]["host"], "Example.COM:8080");
    }

    #[tokio::test]
    async fn empty_query_and_discarded_body() {
        let addr = start("beta", 0, 200).await;
        let request = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\
                       Connection: close\r\n\r\nhello world";
        let (status, _, body) = raw_exchange(addr, request.as_bytes()).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/upload");
        assert_eq!(v["query"], "");
        assert_eq!(v["headers"]["content-length"], "11");
    }

    #[tokio::test]
    async fn configured_status_and_delay() {
        let addr = start("slow", 150, 503).await;
        let started = std::time::Instant::now();
        let request = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        let (status, _, body) = raw_exchange(addr, request.as_bytes()).await;
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(status.starts_with("HTTP/1.1 503"), "{status}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["name"], "slow");
    }

    #[tokio::test]
    async fn invalid_status_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert!(serve_on(listener, "x".into(), 0, 1000).await.is_err());
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_per_connection() {
        let addr = start("ka", 0, 200).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        for i in 0..3 {
            let request = format!("GET /n/{i} HTTP/1.1\r\nHost: h\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let body = read_one_response(&mut stream).await;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["path"], format!("/n/{i}"));
        }
    }

    /// Reads one Content-Length delimited response from a keep-alive stream; returns its body.
    async fn read_one_response(stream: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-response");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("no content-length")
            .trim()
            .parse()
            .unwrap();
        while buf.len() < head_end + len {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        buf[head_end..head_end + len].to_vec()
    }

    #[tokio::test]
    async fn answers_h2_prior_knowledge_with_authority_as_host() {
        let addr = start("h2", 0, 200).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = Request::builder()
            .uri("http://svc.example:81/h2/path?x=y")
            .header("x-test", "1")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["name"], "h2");
        assert_eq!(v["path"], "/h2/path");
        assert_eq!(v["query"], "x=y");
        assert_eq!(v["host"], "svc.example:81");
        assert_eq!(v["headers"]["x-test"], "1");
    }

    #[tokio::test]
    async fn a_broken_connection_does_not_stop_the_server() {
        let addr = start("sturdy", 0, 200).await;
        // Garbage, then an abrupt close.
        let mut bad = TcpStream::connect(addr).await.unwrap();
        bad.write_all(b"\x00\x01 not http at all\r\n\r\n")
            .await
            .unwrap();
        drop(bad);
        let request = "GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        let (status, _, body) = raw_exchange(addr, request.as_bytes()).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["path"], "/ok");
    }
}
