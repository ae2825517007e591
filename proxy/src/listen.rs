//! pier's listeners: the sockets are bound before the proxy starts (so a wrong address fails
//! start-up with the address in the error), and each accepted connection runs in a task of
//! its own: the TLS handshake on an HTTPS listener, then the [`ConnectionApp`] (the fast path)
//! for as long as the connection lives. By default the kernel hands a connection over only
//! once its first bytes are there ([`defer_accept`]).
//!
//! pier accepts connections itself rather than through Pingora's listening service because
//! of what a task costs: Pingora's per-connection future lays out the TLS handshake and the
//! connection's other states in about 8.7 KB, even on a clear-text listener, and tokio copies
//! a task's future whole when it spawns it and again as the task finishes. Here the task of a
//! clear-text connection holds a handful of pointers, and an HTTPS connection's handshake is
//! boxed apart (see docs/performance.md, "New connections"). A clear-text connection reaches
//! the application as the socket tokio accepted ([`Accepted`]).

use crate::accepted::{l4_stream, Accepted};
use crate::metrics::ReasonLabels;
use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::protocols::Stream;
use pingora::server::{ListenFds, ShutdownWatch};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long a client has to complete the TLS handshake (nginx's `ssl_handshake_timeout`
/// default, and what Pingora's listeners allow).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Pending connections the kernel queues per listener before pier accepts them (the cap
/// Linux applies is `net.core.somaxconn`).
const BACKLOG: i32 = 65_535;

/// After `accept` fails for want of a resource (file descriptors, socket memory), how long the
/// accept loop waits before it tries again, rather than spinning on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    /// The address as given.
    pub addr: String,
    /// What the system said.
    #[source]
    pub source: io::Error,
}

/// Failed TLS handshakes, counted by reason (`error`, `timeout`).
pub type HandshakeFailures = Family<ReasonLabels, Counter>;

/// What makes a listener an HTTPS listener.
pub struct TlsListener {
    /// The TLS settings (certificates, ALPN).
    pub settings: TlsSettings,
    /// Where failed handshakes are counted.
    pub failures: HandshakeFailures,
}

/// A bound listening socket, with the TLS settings of an HTTPS listener.
pub struct Listener {
    socket: std::net::TcpListener,
    tls: Option<TlsListener>,
}

impl Listener {
    /// Binds `addr` (`host:port`, the first address it resolves to) with `SO_REUSEADDR`, so
    /// a restarted pier can bind while connections of the previous one are in `TIME_WAIT`.
    /// With `defer` above zero, the kernel hands a new connection over only once its first
    /// bytes are there, or after about that long without any (see [`defer_accept`]).
    pub fn bind(
        addr: &str,
        tls: Option<TlsListener>,
        defer: Duration,
    ) -> Result<Self, ListenError> {
        let error = |source| ListenError {
            addr: addr.to_string(),
            source,
        };
        let resolved = addr
            .to_socket_addrs()
            .map_err(error)?
            .next()
            .ok_or_else(|| error(io::Error::other("the address resolves to nothing")))?;
        let socket = bind_socket(resolved).map_err(error)?;
        if let Err(e) = defer_accept(&socket, defer) {
            // Only a cost: connections are then accepted before their first bytes.
            tracing::warn!(listen = %addr, "cannot defer accepting connections: {e}");
        }
        Ok(Self { socket, tls })
    }

    /// The address the socket is bound to (the port the system chose, for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

fn bind_socket(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Asks the kernel to hand connections on `socket` to pier only once their first bytes are
/// there (Linux's `TCP_DEFER_ACCEPT`), for about `wait`, rounded up to whole seconds; zero
/// turns it off. A client of HTTP or TLS speaks first, so a connection then arrives with its
/// request or ClientHello and is served in the task's first poll: no wake-up between accept
/// and request, no read that finds nothing. Linux counts the wait in SYN-ACK retransmissions
/// (1 s, then 2 s more, ...): a connection still silent then is handed over at the next
/// retransmission the client answers (for one second, after one or, when thousands come at
/// once, some after three) and waits for its first bytes in pier, within the keep-alive
/// timeout. Where the option does not exist this does nothing.
pub fn defer_accept(socket: &impl std::os::fd::AsFd, wait: Duration) -> io::Result<()> {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    // The kernel takes a C int.
    set_defer_accept(socket, seconds.min(i32::MAX as u64) as usize)
}

/// The socket option nix does not name.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sockopt {
    // nix's macro names these unqualified.
    use nix::{getsockopt_impl, libc, setsockopt_impl, sockopt_impl};

    sockopt_impl!(
        /// `TCP_DEFER_ACCEPT`, in seconds.
        TcpDeferAccept,
        Both,
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        usize
    );
}
#[cfg(any(target_os = "linux", target_os = "android"))]
use sockopt::TcpDeferAccept;

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_defer_accept(socket: &impl std::os::fd::AsFd, seconds: usize) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, TcpDeferAccept, &seconds).map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_defer_accept(_socket: &impl std::os::fd::AsFd, _seconds: usize) -> io::Result<()> {
    Ok(())
}

/// A connection's work, boxed: its task then holds only a pointer to it.
pub type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Boxes the future `make` makes, a connection's work, into memory allocated before it is
/// made, so that it can be written there rather than built elsewhere and copied whole.
#[inline(always)]
pub fn boxed_in_place<F, M>(make: M) -> Serving
where
    F: Future<Output = ()> + Send + 'static,
    M: FnOnce() -> F,
{
    let slot = Box::<F>::new_uninit();
    let boxed: Box<F> = Box::write(slot, make());
    Box::into_pin(boxed)
}

/// What pier's listeners run on each connection they accept.
pub trait ConnectionApp: Send + Sync + 'static {
    /// Serves `connection` until it closes (shutdown beginning is seen through `shutdown`).
    fn serve(self: Arc<Self>, connection: Accepted, shutdown: ShutdownWatch) -> Serving;

    /// Releases what the application holds once the listeners are closed.
    fn cleanup(&self) -> impl Future<Output = ()> + Send;
}

/// A Pingora service that accepts connections on pier's listeners and runs `app` on each,
/// until Pingora's shutdown signal; then the listeners close and `app` is cleaned up.
pub struct ListeningService<A> {
    name: String,
    listeners: Vec<Listener>,
    app: Option<Arc<A>>,
}

impl<A> ListeningService<A> {
    /// A service named `name` (Pingora names its threads after it) for `listeners`.
    pub fn new(name: impl Into<String>, listeners: Vec<Listener>, app: A) -> Self {
        Self {
            name: name.into(),
            listeners,
            app: Some(Arc::new(app)),
        }
    }
}

#[async_trait::async_trait]
impl<A: ConnectionApp> pingora::services::Service for ListeningService<A> {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(app) = self.app.take() else {
            return;
        };
        let runtime = pingora_runtime::current_handle();
        let loops: Vec<_> = self
            .listeners
            .drain(..)
            .map(|listener| runtime.spawn(accept_loop(listener, app.clone(), shutdown.clone())))
            .collect();
        for accepting in loops {
            let _ = accepting.await;
        }
        app.cleanup().await;
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Accepts connections on `listener` until shutdown, one task each.
async fn accept_loop<A: ConnectionApp>(
    listener: Listener,
    app: Arc<A>,
    mut shutdown: ShutdownWatch,
) {
    let socket = match tokio::net::TcpListener::from_std(listener.socket) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!("cannot accept connections: {e}");
            return;
        }
    };
    let acceptor = listener
        .tls
        .map(|tls| Arc::new((tls.settings.build(), tls.failures)));
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            changed = shutdown.changed() => match changed {
                Ok(()) if !*shutdown.borrow() => continue,
                _ => break,
            },
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Nagle's algorithm is turned off where it could hold a write back: before a
                // clear-text connection's second write, before a TLS handshake.
                let (app, shutdown) = (app.clone(), shutdown.clone());
                // The connection's work is boxed, so the task itself stays a pointer wide
                // whatever it holds; on a worker thread picked as Pingora's listeners pick one
                // (with one runtime per thread, at random).
                let runtime = pingora_runtime::current_handle();
                match &acceptor {
                    None => runtime.spawn(app.serve(Accepted::Tcp(tcp, peer), shutdown)),
                    Some(acceptor) => runtime.spawn(Box::pin(serve_tls(
                        tcp,
                        peer,
                        acceptor.clone(),
                        app,
                        shutdown,
                    ))),
                };
            }
            // A connection the client gave up on before it was accepted fails alone.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) =>
            {
                tracing::debug!("accept failed: {e}");
            }
            // Anything else (out of file descriptors, of socket memory) fails again at once
            // until something is released: wait rather than spin.
            Err(e) => {
                tracing::warn!("accept failed, retrying in {ACCEPT_BACKOFF:?}: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Completes the TLS handshake, then serves.
async fn serve_tls<A: ConnectionApp>(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Arc<(Acceptor, HandshakeFailures)>,
    app: Arc<A>,
    shutdown: ShutdownWatch,
) {
    // The handshake's outcome (4.7 KB before it is boxed) is gone before serving begins, so
    // this task does not hold it for the connection's life.
    let Some(stream) = tls_handshake(tcp, peer, &tls).await else {
        return;
    };
    app.serve(Accepted::Tls(stream), shutdown).await;
}

/// The TLS handshake, within [`TLS_HANDSHAKE_TIMEOUT`]; `None` when it fails, counted (and
/// logged at debug level: clients that fail are mostly scanners and clients refusing the
/// certificate, too many for a log line each).
async fn tls_handshake(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    (acceptor, failures): &(Acceptor, HandshakeFailures),
) -> Option<Stream> {
    let handshake = Box::pin(acceptor.tls_handshake(l4_stream(tcp, peer)));
    let failed = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => return Some(Box::new(tls)),
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, "TLS handshake failed: {e}");
            "error"
        }
        Err(_) => {
            tracing::debug!(client = %peer, "TLS handshake timed out");
            "timeout"
        }
    };
    failures
        .get_or_create(&ReasonLabels { reason: failed })
        .inc();
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::services::Service;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Accepting at once: [`SaysPeer`] speaks first, so its clients send nothing.
    const SPEAKS_FIRST: Duration = Duration::ZERO;

    /// Answers every connection with the client address it was given, then closes it.
    #[derive(Default)]
    struct SaysPeer {
        cleaned_up: AtomicBool,
    }

    impl ConnectionApp for SaysPeer {
        fn serve(self: Arc<Self>, connection: Accepted, _shutdown: ShutdownWatch) -> Serving {
            Box::pin(async move {
                let peer = match &connection {
                    Accepted::Tcp(_, peer) => peer.to_string(),
                    Accepted::Tls(stream) => stream
                        .get_socket_digest()
                        .and_then(|d| d.peer_addr().cloned())
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                };
                let mut connection = connection;
                let _ = connection.write_all(peer.as_bytes()).await;
                let _ = connection.flush().await;
            })
        }

        async fn cleanup(&self) {
            self.cleaned_up.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn connections_are_served_until_shutdown_then_the_listener_closes() {
        let listener = Listener::bind("127.0.0.1:0", None, SPEAKS_FIRST).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut service = ListeningService::new("test", vec![listener], SaysPeer::default());
        let app = service.app.clone().unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(async move { service.start_service(None, shutdown, 1).await });

        for _ in 0..3 {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut said = String::new();
            client.read_to_string(&mut said).await.unwrap();
            assert_eq!(said, client.local_addr().unwrap().to_string());
        }
        assert!(!app.cleaned_up.load(Ordering::SeqCst));

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the service ends on shutdown")
            .unwrap();
        assert!(app.cleaned_up.load(Ordering::SeqCst));
        let refused = tokio::net::TcpStream::connect(addr).await;
        assert!(refused.is_err(), "the listener is closed after shutdown");
    }

    /// Answers every clear-text connection with whether it came with Nagle's algorithm on.
    struct SaysNagle;

    impl ConnectionApp for SaysNagle {
        fn serve(self: Arc<Self>, connection: Accepted, _shutdown: ShutdownWatch) -> Serving {
            Box::pin(async move {
                let said: &[u8] = match &connection {
                    Accepted::Tcp(tcp, _) if tcp.nodelay().unwrap() => b"off",
                    Accepted::Tcp(..) => b"on",
                    Accepted::Tls(_) => b"tls",
                };
                let mut connection = connection;
                let _ = connection.write_all(said).await;
                let _ = connection.flush().await;
            })
        }

        async fn cleanup(&self) {}
    }

    #[tokio::test]
    async fn a_clear_text_connection_is_accepted_with_nagle_on() {
        let listener = Listener::bind("127.0.0.1:0", None, SPEAKS_FIRST).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut service = ListeningService::new("test", vec![listener], SaysNagle);
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move { service.start_service(None, shutdown, 1).await });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut said = String::new();
        client.read_to_string(&mut said).await.unwrap();
        // The connection turns it off itself, before a write it could hold back.
        assert_eq!(said, "on", "no setsockopt(TCP_NODELAY) when accepting");
    }

    /// An HTTPS listener (pier's TLS settings, the generated fallback certificate) serving
    /// [`SaysPeer`]; its address, failure counter and shutdown switch.
    async fn https_service() -> (
        SocketAddr,
        HandshakeFailures,
        tokio::sync::watch::Sender<bool>,
    ) {
        let settings = crate::tls::TlsState::default().listener_settings().unwrap();
        let failures = HandshakeFailures::default();
        let tls = TlsListener {
            settings,
            failures: failures.clone(),
        };
        let listener = Listener::bind("127.0.0.1:0", Some(tls), SPEAKS_FIRST).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut service = ListeningService::new("test", vec![listener], SaysPeer::default());
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move { service.start_service(None, shutdown, 1).await });
        (addr, failures, stop)
    }

    fn failed(failures: &HandshakeFailures, reason: &'static str) -> u64 {
        failures.get_or_create(&ReasonLabels { reason }).get()
    }

    #[tokio::test]
    async fn a_client_that_does_not_speak_tls_is_counted() {
        let (addr, failures, _stop) = https_service().await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        for _ in 0..100 {
            if failed(&failures, "error") == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(failed(&failures, "error"), 1);
        assert_eq!(failed(&failures, "timeout"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_completes_the_handshake_is_timed_out() {
        let (addr, failures, _stop) = https_service().await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(2 * TLS_HANDSHAKE_TIMEOUT, client.read_to_end(&mut rest));
        assert!(closed.await.is_ok(), "pier closes the connection");
        assert!(started.elapsed() >= TLS_HANDSHAKE_TIMEOUT);
        assert_eq!(failed(&failures, "timeout"), 1);
    }

    #[tokio::test]
    async fn a_tls_connection_s_task_is_small_while_it_is_served() {
        let settings = crate::tls::TlsState::default().listener_settings().unwrap();
        let tls = Arc::new((settings.build(), HandshakeFailures::default()));
        let (Accepted::Tcp(tcp, peer), _client) = crate::accepted::connected_pair().await else {
            unreachable!("a clear-text connection")
        };
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let task = serve_tls(tcp, peer, tls, Arc::new(SaysPeer::default()), shutdown);
        // Held for each TLS connection's life: the handshake's outcome is not part of it.
        let size = std::mem::size_of_val(&task);
        assert!(size < 1024, "{size} bytes");
    }

    #[test]
    fn an_address_in_use_is_refused_with_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let error = match Listener::bind(&addr, None, Duration::ZERO) {
            Ok(_) => panic!("{addr} is taken"),
            Err(e) => e,
        };
        assert_eq!(error.source.kind(), io::ErrorKind::AddrInUse);
        assert!(error
            .to_string()
            .starts_with(&format!("cannot listen on {addr}: ")));
        assert!(Listener::bind("not an address", None, Duration::ZERO).is_err());
    }

    /// Accepts on `listener` until `within` has passed: `None` when nothing was handed over.
    fn accept_within(listener: &Listener, within: Duration) -> Option<std::net::TcpStream> {
        let deadline = std::time::Instant::now() + within;
        loop {
            match listener.socket.accept() {
                Ok((tcp, _)) => return Some(tcp),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_deferring_listener_hands_a_connection_over_with_its_first_bytes() {
        use std::io::{Read, Write};
        let listener = Listener::bind("127.0.0.1:0", None, Duration::from_secs(5)).unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let held = accept_within(&listener, Duration::from_millis(300));
        assert!(held.is_none(), "handed over before its first bytes");
        client.write_all(b"GET").unwrap();
        let mut accepted = accept_within(&listener, Duration::from_secs(2)).expect("handed over");
        accepted.set_nonblocking(false).unwrap();
        let mut first = [0u8; 3];
        accepted.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"GET");
    }

    #[test]
    fn without_deferral_a_silent_connection_is_handed_over_at_once() {
        let listener = Listener::bind("127.0.0.1:0", None, Duration::ZERO).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let accepted = accept_within(&listener, Duration::from_millis(500));
        assert!(accepted.is_some(), "not handed over without bytes");
    }

    #[test]
    fn deferral_is_set_in_whole_seconds_rounded_up() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        defer_accept(&listener, Duration::from_millis(1500)).unwrap();
        let seconds = nix::sys::socket::getsockopt(&listener, TcpDeferAccept).unwrap();
        // Linux keeps a number of SYN-ACK retransmissions (1 s, then 2 s: 3 s for two) and
        // gives back the time they take.
        assert_eq!(seconds, 3);
        defer_accept(&listener, Duration::ZERO).unwrap();
        assert_eq!(
            nix::sys::socket::getsockopt(&listener, TcpDeferAccept).unwrap(),
            0
        );
    }
}
