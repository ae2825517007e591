//! A client connection whose small writes are gathered until flushed, for Pingora's general
//! path. pier's accepted streams write straight through (the fast path writes whole heads and
//! bodies in one call); the general path writes a response head and its body separately and
//! then flushes, which without a buffer costs one system call (and one TCP segment) more per
//! response.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};

/// Bytes gathered before a write reaches the connection: one TCP segment's payload, as
/// Pingora's own listeners buffer.
const CAPACITY: usize = 1460;

/// `stream` with a write buffer of [`CAPACITY`] bytes; everything else is the stream's.
#[derive(Debug)]
pub(crate) struct WriteBuffered(BufWriter<Stream>);

impl WriteBuffered {
    /// Wraps `stream` for the general path.
    pub(crate) fn wrap(stream: Stream) -> Stream {
        Box::new(Self(BufWriter::with_capacity(CAPACITY, stream)))
    }

    fn inner(&self) -> &Stream {
        self.0.get_ref()
    }
}

impl AsyncRead for WriteBuffered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteBuffered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for WriteBuffered {
    async fn shutdown(&mut self) {
        // What is buffered goes out first; then the stream's own shutdown (for TLS it sends
        // close_notify).
        if let Err(e) = self.0.flush().await {
            tracing::debug!("cannot flush before shutdown: {e}");
        }
        Shutdown::shutdown(self.0.get_mut().as_mut()).await
    }
}

impl UniqueID for WriteBuffered {
    fn id(&self) -> UniqueIDType {
        self.inner().id()
    }
}

impl Ssl for WriteBuffered {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner().get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner().get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner().selected_alpn_proto()
    }
}

impl GetTimingDigest for WriteBuffered {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner().get_write_pending_time()
    }
}

impl GetProxyDigest for WriteBuffered {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner().get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.0.get_mut().set_proxy_digest(digest)
    }
}

impl GetSocketDigest for WriteBuffered {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner().get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.0.get_mut().set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for WriteBuffered {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.0.get_mut().try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two small writes reach the peer in one piece at the flush, not before.
    #[tokio::test]
    async fn small_writes_are_gathered_until_flush() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (server, mut client) = (accepted.unwrap().0, client.unwrap());
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
        let mut buffered = WriteBuffered::wrap(stream);
        buffered
            .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .unwrap();
        buffered.write_all(b"body").await.unwrap();
        let mut got = [0u8; 64];
        let early = tokio::time::timeout(Duration::from_millis(100), client.read(&mut got)).await;
        assert!(early.is_err(), "nothing may arrive before the flush");
        buffered.flush().await.unwrap();
        let n = client.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"HTTP/1.1 200 OK\r\n\r\nbody");
    }
}
