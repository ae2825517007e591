//! A tiny HTTP/1.1 client that can send any `Host` to any loopback address.

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

/// How long one request (connect, send, read the whole response) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP/1.1 client with a keep-alive connection pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

/// A fully read response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Response status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Whole response body.
    pub body: Bytes,
}

impl Reply {
    /// Reads a whole response; `what` names the request in errors.
    async fn read(
        response: http::Response<hyper::body::Incoming>,
        what: &str,
    ) -> anyhow::Result<Reply> {
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .with_context(|| format!("reading body of {what}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response ({}) is not JSON: {e}; body: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The value of header `name` (first one), if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `name` field of an echo backend's answer, if this is one.
    pub fn echo_name(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("name")?.as_str().map(str::to_string)
    }

    /// One-line summary for assertion messages: status, `server` header and a body prefix.
    pub fn summary(&self) -> String {
        let text = self.text();
        let prefix: String = text.chars().take(300).collect();
        format!(
            "{} server={:?} body={prefix:?}",
            self.status,
            self.header("server")
        )
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl HttpClient {
    /// A client whose pool keeps idle connections open for reuse (keep-alive).
    pub fn new() -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { inner }
    }

    /// `GET path_and_query` on `addr` with header `Host: host`.
    pub async fn get(
        &self,
        addr: SocketAddr,
        host: &str,
        path_and_query: &str,
    ) -> anyhow::Result<Reply> {
        self.request(
            Method::GET,
            addr,
            Some(host),
            path_and_query,
            &[],
            Bytes::new(),
        )
        .await
    }

    /// Sends one request and reads the whole response (bounded by a 10 s timeout).
    ///
    /// `host` sets the `Host` header (otherwise it is `addr`); `headers` are added as given.
    pub async fn request(
        &self,
        method: Method,
        addr: SocketAddr,
        host: Option<&str>,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let uri = format!("http://{addr}{path_and_query}");
        let mut builder = Request::builder().method(method).uri(&uri);
        if let Some(host) = host {
            builder = builder.header(http::header::HOST, host);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .with_context(|| format!("building request {uri}"))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .with_context(|| format!("request {uri} (host {host:?})"))?;
            Reply::read(response, &format!("{uri} (host {host:?})")).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("request {uri} (host {host:?}) timed out"))?
    }
}

/// One HTTP/1.1 connection used for request after request (keep-alive), never silently
/// replaced: if the server closes it, the next request fails.
pub struct KeepAliveConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl KeepAliveConnection {
    /// Connects to `addr` and performs the HTTP/1.1 handshake.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<KeepAliveConnection> {
        let stream =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await
                .with_context(|| format!("connect {addr} timed out"))?
                .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .with_context(|| format!("handshake with {addr}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(KeepAliveConnection { sender, addr })
    }

    /// `GET path_and_query` with `Host: host` on this connection (10 s timeout). Fails if the
    /// connection was closed.
    pub async fn get(&mut self, host: &str, path_and_query: &str) -> anyhow::Result<Reply> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path_and_query)
            .header(http::header::HOST, host)
            .body(Full::new(Bytes::new()))
            .context("building request")?;
        let addr = self.addr;
        let exchange = async {
            self.sender
                .ready()
                .await
                .with_context(|| format!("connection to {addr} is closed"))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .with_context(|| format!("request {path_and_query} (host {host}) to {addr}"))?;
            Reply::read(response, &format!("{path_and_query} from {addr}")).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("request {path_and_query} (host {host}) timed out"))?
    }
}

/// An HTTP/2 connection with prior knowledge (clear-text, no upgrade) to `addr`, driven by a
/// spawned task; requests (with bodies of type `B`) go through the returned sender.
pub async fn h2c_connect<B>(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<B>>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .with_context(|| format!("HTTP/2 handshake with {addr}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
