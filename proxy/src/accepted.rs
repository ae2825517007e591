//! A connection accepted on one of pier's listeners, as the application serving it gets it.
//!
//! A clear-text connection stays the socket tokio accepted: the fast path reads and writes it
//! directly, and only a connection handed to Pingora (the general path, HTTP/2 with prior
//! knowledge) is wrapped in Pingora's stream, with the client's address in its digest. The
//! wrapper costs on every connection what the fast path does not use: two allocations, a
//! clock read per wait for its timing figures, and a `getsockopt` as it is dropped.

use pingora::protocols::l4::socket::SocketAddr as PingoraSocketAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client connection: clear text as accepted, or TLS after its handshake.
pub enum Accepted {
    /// A clear-text connection and the client's address.
    Tcp(TcpStream, SocketAddr),
    /// A TLS connection whose handshake is done: Pingora's stream, the client's address in
    /// its socket digest.
    Tls(Stream),
}

impl Accepted {
    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Accepted::Tls(_))
    }

    /// The client's IP address, where known.
    pub fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Accepted::Tcp(_, peer) => Some(peer.ip()),
            Accepted::Tls(stream) => stream
                .get_socket_digest()
                .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip())),
        }
    }

    /// Turns Nagle's algorithm off (`TCP_NODELAY`): a clear-text connection is accepted with
    /// it on (see `fast::connection::Nagle`); a TLS connection has it off already.
    pub fn set_nodelay(&self) {
        if let Accepted::Tcp(tcp, _) = self {
            nagle_off(tcp);
        }
    }

    /// The connection as a Pingora stream, for Pingora to serve.
    pub fn into_stream(self) -> Stream {
        match self {
            Accepted::Tcp(tcp, peer) => Box::new(l4_stream(tcp, peer)),
            Accepted::Tls(stream) => stream,
        }
    }

    /// The connection as a Pingora stream that reads `read` again first (bytes already read
    /// from it); `None` for TLS, whose stream cannot take bytes back.
    pub fn into_rewound_stream(self, read: &[u8]) -> Option<Stream> {
        match self {
            Accepted::Tcp(tcp, peer) => {
                let mut stream = l4_stream(tcp, peer);
                stream.rewind(read);
                Some(Box::new(stream))
            }
            Accepted::Tls(_) => None,
        }
    }
}

/// A Pingora stream for an accepted clear-text connection, the client's address where
/// Pingora reads it, with Nagle's algorithm off: Pingora (a TLS handshake, HTTP/2, the general
/// path) writes in pieces that must not wait for acknowledgements.
pub(crate) fn l4_stream(tcp: TcpStream, peer: SocketAddr) -> L4Stream {
    nagle_off(&tcp);
    let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
    let _ = digest.peer_addr.set(Some(PingoraSocketAddr::Inet(peer)));
    let mut stream = L4Stream::from(tcp);
    stream.set_socket_digest(digest);
    stream
}

/// Sets `TCP_NODELAY` on `tcp`; a socket that refuses it is served as it is.
fn nagle_off(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Tcp(tcp, _) => Pin::new(tcp).poll_read(cx, buf),
            Accepted::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Tcp(tcp, _) => Pin::new(tcp).poll_write(cx, buf),
            Accepted::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Tcp(tcp, _) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Accepted::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Accepted::Tcp(tcp, _) => tcp.is_write_vectored(),
            Accepted::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Tcp(tcp, _) => Pin::new(tcp).poll_flush(cx),
            Accepted::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Tcp(tcp, _) => Pin::new(tcp).poll_shutdown(cx),
            Accepted::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// A connection on loopback, for tests: the accepted side as a listener hands it over, and
/// the client.
#[cfg(test)]
pub(crate) async fn connected_pair() -> (Accepted, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (accepted, client) = tokio::join!(listener.accept(), client);
    let (tcp, peer) = accepted.unwrap();
    (Accepted::Tcp(tcp, peer), client.unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_handed_over_connection_keeps_the_client_address_and_the_bytes_read() {
        let (accepted, mut client) = connected_pair().await;
        let client_addr = client.local_addr().unwrap();
        assert_eq!(accepted.peer_ip(), Some(client_addr.ip()));
        client.write_all(b" world").await.unwrap();
        let mut stream = accepted.into_rewound_stream(b"hello").unwrap();
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().cloned());
        assert_eq!(peer.map(|a| a.to_string()), Some(client_addr.to_string()));
        let mut read = [0u8; 11];
        let mut at = 0;
        while at < read.len() {
            at += stream.read(&mut read[at..]).await.unwrap();
        }
        assert_eq!(&read, b"hello world");
    }

    /// Whether `TCP_NODELAY` is set on the socket `probe` duplicates.
    fn nodelay(probe: &std::os::fd::OwnedFd) -> bool {
        socket2::SockRef::from(probe).tcp_nodelay().unwrap()
    }

    #[tokio::test]
    async fn a_connection_given_to_pingora_has_nagle_off() {
        for rewound in [false, true] {
            let (accepted, _client) = connected_pair().await;
            let Accepted::Tcp(tcp, _) = &accepted else {
                unreachable!("a clear-text connection")
            };
            let probe = std::os::fd::AsFd::as_fd(tcp).try_clone_to_owned().unwrap();
            assert!(!nodelay(&probe), "accepted with Nagle's algorithm on");
            let _stream = if rewound {
                accepted.into_rewound_stream(b"").unwrap()
            } else {
                accepted.into_stream()
            };
            assert!(nodelay(&probe), "off once Pingora has it");
        }
    }

    #[tokio::test]
    async fn set_nodelay_turns_nagle_off() {
        let (accepted, _client) = connected_pair().await;
        let Accepted::Tcp(tcp, _) = &accepted else {
            unreachable!("a clear-text connection")
        };
        let probe = std::os::fd::AsFd::as_fd(tcp).try_clone_to_owned().unwrap();
        accepted.set_nodelay();
        assert!(nodelay(&probe));
    }
}
