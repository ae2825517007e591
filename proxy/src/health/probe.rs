//! How one endpoint is checked: a TCP connect, or an HTTP/1.1 `GET` whose status must be 2xx
//! or 3xx. The caller bounds the time; a probe never retries.

use async_trait::async_trait;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Checks one endpoint; `true` means healthy.
#[async_trait]
pub trait Prober: Send + Sync + 'static {
    /// Probes `address`: an HTTP GET of `path`, or a TCP connect when `path` is `None`.
    async fn probe(&self, address: SocketAddr, path: Option<&str>) -> bool;
}

/// The real prober: plain TCP and clear-text HTTP/1.1.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetProber;

/// Longest status line we read before giving up (a real one is ~20 bytes).
const MAX_STATUS_LINE: usize = 256;

#[async_trait]
impl Prober for NetProber {
    async fn probe(&self, address: SocketAddr, path: Option<&str>) -> bool {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            return false;
        };
        let Some(path) = path else {
            return true;
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: pier-health-check\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 64];
        while !head.contains(&b'\n') && head.len() < MAX_STATUS_LINE {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        status_is_healthy(&head)
    }
}

/// Whether a response starting with `head` has a 2xx or 3xx status.
pub fn status_is_healthy(head: &[u8]) -> bool {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let version_ok = parts.next().is_some_and(|v| v.starts_with(b"HTTP/1."));
    let code = parts
        .next()
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.trim().parse::<u16>().ok());
    version_ok && matches!(code, Some(200..=399))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines() {
        assert!(status_is_healthy(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_healthy(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_is_healthy(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!status_is_healthy(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_is_healthy(b"garbage"));
        assert!(!status_is_healthy(b""));
    }

    async fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn http_and_tcp_probes() {
        let ok = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let bad = serve_once(b"HTTP/1.1 503 Busy\r\n\r\n").await;
        assert!(NetProber.probe(ok, Some("/healthz")).await);
        assert!(!NetProber.probe(bad, Some("/healthz")).await);
        assert!(NetProber.probe(bad, None).await, "TCP check only connects");
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        assert!(!NetProber.probe(closed, None).await);
    }
}
