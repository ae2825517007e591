//! One client connection on the fast path: read a request, route it, exchange it with an
//! endpoint, write the answer, and again while the client keeps the connection. A request the
//! fast path does not serve hands the connection, with the bytes read so far, to Pingora.

use super::deadline::Deadline;
use super::exchange::{self, Answered, Downstream, Relayed, Request, UpstreamIo};
use super::forward::{self, Client};
use super::head::{classify, header_storage, Classified, RequestHead};
use super::response::{self, Additions, ResponseHead};
use super::{PierApp, H2_PREFACE};
use crate::accepted::Accepted;
use crate::access;
use crate::answer::{self, Answer};
use crate::lb::{PickContext, RequestHeaders};
use crate::router::RouteTarget;
use crate::state::ProxyState;
use bytes::{Buf, BytesMut};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How long an idle client connection is kept between requests, and how long a request may
/// take to arrive once started.
pub(super) const KEEPALIVE: Duration = Duration::from_secs(60);
/// How long one write to a client may wait for the client to take the bytes (nginx's
/// `send_timeout`); a client that stops reading is then disconnected, and the endpoint
/// connection serving it released.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long closing a TLS connection waits to send its `close_notify`.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);
/// Initial size of the request buffer (grown for large heads and bodies).
const REQUEST_BUF: usize = 4 * 1024;
/// Initial size of the buffer a response head is written into.
const OUT_BUF: usize = 2 * 1024;
/// An idle connection gives its buffers back after this long.
const TRIM_AFTER: Duration = Duration::from_secs(1);
/// How much a connection without buffers (new, or idle after giving them back) reads before
/// making them: most requests' heads fit.
const FIRST_READ: usize = 1024;
/// A request head not complete within this many bytes goes to the general path, which
/// refuses it properly.
const MAX_HEAD: usize = 32 * 1024;
/// The largest first write to a client sent with Nagle's algorithm still on: any socket's send
/// buffer (16 KiB by default) takes it in one system call, which sends all of it at once.
const SMALL_FIRST_WRITE: usize = 4 * 1024;

/// Whether Nagle's algorithm may hold back the next write to a clear-text client.
///
/// Linux's holds a small segment back while an earlier small one is unacknowledged, which for
/// a connection's first write none is, so `TCP_NODELAY` is set only before a second write (or
/// a large first one): a connection that carries one request with a small response makes one
/// system call less, as with nginx. TLS connections have it set before their handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nagle {
    /// Nothing written yet.
    Unwritten,
    /// Written once with Nagle's algorithm on.
    Written,
    /// `TCP_NODELAY` is set.
    Off,
}

impl Nagle {
    /// Where a connection starts.
    fn initial(client: &Accepted) -> Nagle {
        if client.is_tls() {
            Nagle::Off
        } else {
            Nagle::Unwritten
        }
    }

    /// Before writing `len` bytes to `client`: sets `TCP_NODELAY` unless this write is the
    /// first and small.
    fn before_write(&mut self, client: &Accepted, len: usize) {
        match self {
            Nagle::Off => {}
            Nagle::Unwritten if len <= SMALL_FIRST_WRITE => *self = Nagle::Written,
            Nagle::Unwritten | Nagle::Written => self.turn_off(client),
        }
    }

    /// Sets `TCP_NODELAY` on `client` unless it is set already.
    fn turn_off(&mut self, client: &Accepted) {
        if *self != Nagle::Off {
            client.set_nodelay();
            *self = Nagle::Off;
        }
    }
}

/// The client connection and the buffers one request at a time reuses.
pub(super) struct Io {
    /// The client connection.
    pub client: Accepted,
    /// Who the client is.
    pub peer: Client,
    /// Outgoing bytes: the client's response head (with the first body bytes).
    pub out: Vec<u8>,
    /// Times out waits on the client: idle keep-alive, a request arriving, a write the client
    /// does not take (never two at once).
    pub client_timer: Deadline,
    /// Tells when an idle connection should give its buffers back.
    pub trim_timer: Deadline,
    /// Response body bytes sent to the client for the current request.
    pub body_sent: u64,
    /// Whether `TCP_NODELAY` must be set before the next write.
    pub nagle: Nagle,
}

impl Io {
    /// Writes `out` to the client and flushes, within [`SEND_TIMEOUT`].
    pub async fn send_out(&mut self) -> std::io::Result<()> {
        self.nagle.before_write(&self.client, self.out.len());
        send(&mut self.client, &mut self.client_timer, &self.out).await
    }

    /// Writes `bytes` to the client and flushes, within [`SEND_TIMEOUT`].
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.nagle.before_write(&self.client, bytes.len());
        send(&mut self.client, &mut self.client_timer, bytes).await
    }
}

/// Writes `bytes` to `client` and flushes, failing with `TimedOut` when that takes longer
/// than [`SEND_TIMEOUT`], timed by the client timer (no request is awaited meanwhile).
async fn send(client: &mut Accepted, timer: &mut Deadline, bytes: &[u8]) -> std::io::Result<()> {
    timer.arm(SEND_TIMEOUT);
    let write = async {
        client.write_all(bytes).await?;
        client.flush().await
    };
    match timer.run(write).await {
        Some(written) => written,
        None => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

impl Downstream for Io {
    async fn interim(&mut self, up: &UpstreamIo, len: usize) -> bool {
        self.send(&up.buf[..len]).await.is_ok()
    }

    fn final_head(&mut self, head: &ResponseHead<'_>, add: Additions<'_>) -> bool {
        response::write_head(&mut self.out, head, add);
        true
    }

    async fn relay(
        &mut self,
        up: &mut UpstreamIo,
        answered: &mut Answered,
        read_timeout: Duration,
    ) -> Relayed {
        super::relay::relay(self, up, answered, read_timeout).await
    }

    async fn answer(&mut self, answer: Answer, head_request: bool, close: bool) -> bool {
        super::answer::write(&mut self.out, answer, None, head_request, close);
        self.send_out().await.is_ok()
    }
}

/// What a served request leaves the connection in.
enum Next {
    /// Ready for the next request.
    KeepAlive,
    /// Close it.
    Close,
    /// Give it to the general path, starting with the current request, for this reason.
    HandOff(&'static str),
    /// The endpoint switched protocols: join the connection to this upstream connection.
    Tunnel(tokio::net::TcpStream),
}

/// Serves the connection until it closes or is handed off.
pub(super) async fn serve(
    app: &Arc<PierApp>,
    client: Accepted,
    mut sniff_h2c: bool,
    shutdown: &ShutdownWatch,
) {
    let peer = Client::new(client.peer_ip(), client.is_tls());
    let mut io = Io {
        nagle: Nagle::initial(&client),
        client,
        peer,
        out: Vec::new(),
        client_timer: Deadline::new(),
        trim_timer: Deadline::new(),
        body_sent: 0,
    };
    let mut up = UpstreamIo::empty();
    let mut inbuf = BytesMut::new();
    // Resolves when shutdown begins; polled while the connection is idle. One future for the
    // connection's life rather than one registration per request.
    let mut watch = shutdown.clone();
    let stopping = async move {
        let _ = watch.changed().await;
    };
    tokio::pin!(stopping);
    if !read_first_bytes(&mut io, &mut up, &mut inbuf, shutdown, stopping.as_mut()).await {
        return;
    }
    loop {
        if sniff_h2c {
            match h2c_preface(&inbuf) {
                Preface::Absent => sniff_h2c = false,
                Preface::Present => return app.hand_off_h2c(io.client, inbuf, shutdown).await,
                Preface::Undecided => {
                    if read_request_bytes(&mut io, &mut up, &mut inbuf, shutdown, stopping.as_mut())
                        .await
                    {
                        continue;
                    }
                    return;
                }
            }
        }
        let mut storage = header_storage();
        let next = match classify(&inbuf, &mut storage) {
            Classified::Serve(head) if inbuf.len() >= head.head_len + head.content_length => {
                let end = head.head_len + head.content_length;
                let closing = *shutdown.borrow();
                let next = serve_one(
                    &app.state,
                    &mut io,
                    &mut up,
                    &head,
                    &inbuf[head.head_len..end],
                    closing,
                )
                .await;
                if let Next::KeepAlive | Next::Tunnel(_) = next {
                    inbuf.advance(end);
                }
                next
            }
            Classified::Partial if inbuf.len() > MAX_HEAD => Next::HandOff("large head"),
            // The head is incomplete, or the body (at most MAX_BUFFERED_BODY) still arriving.
            Classified::Serve(_) | Classified::Partial => {
                if read_request_bytes(&mut io, &mut up, &mut inbuf, shutdown, stopping.as_mut())
                    .await
                {
                    continue;
                }
                Next::Close
            }
            Classified::HandOff(why) => Next::HandOff(why),
        };
        match next {
            Next::KeepAlive => {}
            Next::Close => {
                // Over TLS this sends close_notify, for at most a moment: a client that does
                // not read (the send timeout may be why the connection closes) must not hold
                // it. On clear text, closing the socket sends the FIN after what is queued
                // just as `shutdown` would, one call fewer.
                if io.peer.tls {
                    io.client_timer.arm(CLOSE_NOTIFY_WAIT);
                    let _ = io.client_timer.run(io.client.shutdown()).await;
                }
                return;
            }
            Next::HandOff(why) => return app.hand_off(io.client, inbuf, why, shutdown).await,
            Next::Tunnel(upstream) => {
                // A tunnel may stay open for hours: keep none of the request buffers.
                up.trim();
                io.out = Vec::new();
                // The tunnel's writes are the endpoint's, in whatever pieces it sends.
                io.nagle.turn_off(&io.client);
                return tunnel(&app.state, io.client, upstream, inbuf).await;
            }
        }
    }
}

/// Carries bytes both ways between the client and the endpoint after a protocol switch (a
/// WebSocket, say) until either side closes; `early` is what the client sent after its
/// request, already in the new protocol. Counted as a request in flight, so a graceful
/// shutdown waits for it (up to its timeout).
async fn tunnel(
    state: &ProxyState,
    mut client: Accepted,
    mut upstream: tokio::net::TcpStream,
    early: BytesMut,
) {
    let _request = state.track_request();
    if !early.is_empty() && upstream.write_all(&early).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Whether a clear-text connection starts with the HTTP/2 preface.
#[derive(Debug, PartialEq, Eq)]
enum Preface {
    Absent,
    Present,
    /// Too few bytes to tell.
    Undecided,
}

fn h2c_preface(read: &[u8]) -> Preface {
    let n = read.len().min(H2_PREFACE.len());
    if read[..n] != H2_PREFACE[..n] {
        Preface::Absent
    } else if n == H2_PREFACE.len() {
        Preface::Present
    } else {
        Preface::Undecided
    }
}

/// Reads the first bytes of a new connection. Until they come it holds no buffers (a browser
/// may open a connection it uses only later) and one timer, [`KEEPALIVE`]; it gives up at once
/// when shutdown begins. The buffers are made when the bytes are there. `false`: the
/// connection is done (closed by the client, timed out, or shutting down).
async fn read_first_bytes(
    io: &mut Io,
    up: &mut UpstreamIo,
    inbuf: &mut BytesMut,
    shutdown: &ShutdownWatch,
    stopping: Pin<&mut impl Future<Output = ()>>,
) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    io.client_timer.arm(KEEPALIVE);
    read_unbuffered(io, up, inbuf, stopping).await
}

/// Waits for bytes holding no buffers, within the armed client timer; once they are there,
/// makes the connection's buffers and puts the bytes in `inbuf`. `false`: closed by the
/// client, timed out, or shutting down.
async fn read_unbuffered(
    io: &mut Io,
    up: &mut UpstreamIo,
    inbuf: &mut BytesMut,
    stopping: Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let Io {
        client,
        out,
        client_timer,
        ..
    } = io;
    let read = tokio::select! {
        biased;
        read = client_timer.run(read_provisioning(client, out, up, inbuf)) => read,
        () = stopping => return false,
    };
    matches!(read, Some(Ok(n)) if n > 0)
}

/// Reads the bytes that end a wait, making the connection's buffers only once they are
/// there. A clear-text socket is waited on for readiness, then read on the stack: nothing to
/// read into is held while it waits (tokio takes a socket just accepted as ready, so a request
/// already there, as deferred accepting makes it, is read at once). A TLS stream may hold
/// decrypted bytes that no socket readiness shows, so it waits with a small buffer on the heap.
async fn read_provisioning(
    client: &mut Accepted,
    out: &mut Vec<u8>,
    up: &mut UpstreamIo,
    inbuf: &mut BytesMut,
) -> std::io::Result<usize> {
    match client {
        Accepted::Tcp(tcp, _) => loop {
            tcp.readable().await?;
            let mut first = [0u8; FIRST_READ];
            match tcp.try_read(&mut first) {
                Ok(n) => {
                    keep_first(&first[..n], out, up, inbuf);
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        },
        Accepted::Tls(stream) => {
            let mut first = Vec::with_capacity(FIRST_READ);
            let n = stream.read_buf(&mut first).await?;
            keep_first(&first, out, up, inbuf);
            Ok(n)
        }
    }
}

/// Makes the connection's buffers and puts the bytes that ended a wait in `inbuf`; nothing
/// when there are none (the client closed).
fn keep_first(read: &[u8], out: &mut Vec<u8>, up: &mut UpstreamIo, inbuf: &mut BytesMut) {
    if !read.is_empty() {
        provision(out, up, inbuf);
        inbuf.extend_from_slice(read);
    }
}

/// Makes the connection's buffers where it has none (new, or given back while idle).
fn provision(out: &mut Vec<u8>, up: &mut UpstreamIo, inbuf: &mut BytesMut) {
    reserve(inbuf);
    if out.capacity() == 0 {
        out.reserve(OUT_BUF);
    }
    up.provision();
}

/// Reads more of a request into `inbuf`. Between requests it waits up to [`KEEPALIVE`] and
/// gives up at once when shutdown begins. `false`: the connection is done (closed by the
/// client, timed out, or shutting down).
async fn read_request_bytes(
    io: &mut Io,
    up: &mut UpstreamIo,
    inbuf: &mut BytesMut,
    shutdown: &ShutdownWatch,
    mut stopping: Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let now = Instant::now();
    io.client_timer.arm_at(now, KEEPALIVE);
    if !inbuf.is_empty() {
        // The rest of a request that has begun.
        reserve(inbuf);
        let read = io.client_timer.run(io.client.read_buf(inbuf)).await;
        return matches!(read, Some(Ok(n)) if n > 0);
    }
    if *shutdown.borrow() {
        return false;
    }
    // Between requests: wait with the buffers for a moment (the next request usually comes
    // soon), then give them back and wait without them (a clear-text connection with no
    // buffer at all), so an idle keep-alive connection holds little memory.
    inbuf.clear();
    reserve(inbuf);
    io.trim_timer.arm_at(now, TRIM_AFTER);
    tokio::select! {
        biased;
        read = io.client_timer.run(io.client.read_buf(inbuf)) => {
            return matches!(read, Some(Ok(n)) if n > 0);
        }
        () = stopping.as_mut() => return false,
        () = io.trim_timer.expired() => {}
    }
    *inbuf = BytesMut::new();
    io.out = Vec::new();
    up.trim();
    read_unbuffered(io, up, inbuf, stopping).await
}

/// Makes room for the next read.
fn reserve(inbuf: &mut BytesMut) {
    if inbuf.capacity() - inbuf.len() < REQUEST_BUF / 2 {
        inbuf.reserve(REQUEST_BUF);
    }
}

/// How a request was served, for the access log.
struct Served {
    next: Next,
    status: u16,
    upstream: Option<SocketAddr>,
    route: Option<Arc<str>>,
}

impl Served {
    fn answered(next: Next, status: u16, route: Option<&Arc<str>>) -> Served {
        Served {
            next,
            status,
            upstream: None,
            route: route.cloned(),
        }
    }
}

/// Serves one complete request and writes its access-log line (when enabled).
async fn serve_one(
    state: &ProxyState,
    io: &mut Io,
    up: &mut UpstreamIo,
    head: &RequestHead<'_>,
    body: &[u8],
    closing: bool,
) -> Next {
    let _request = state.track_request();
    let started = access::enabled().then(Instant::now);
    io.body_sent = 0;
    let served = respond(state, io, up, head, body, closing).await;
    if let Some(started) = started {
        if !matches!(served.next, Next::HandOff(_)) {
            access::log(&access::Entry {
                client: io.peer.ip,
                method: head.method,
                host: head.host,
                target: head.target,
                status: served.status,
                bytes: io.body_sent,
                duration: started.elapsed(),
                upstream: served.upstream,
                route: served.route.as_deref(),
            });
        }
    }
    served.next
}

/// Serves one complete request: pier's own answer, or the exchange with an endpoint.
async fn respond(
    state: &ProxyState,
    io: &mut Io,
    up: &mut UpstreamIo,
    head: &RequestHead<'_>,
    body: &[u8],
    closing: bool,
) -> Served {
    let close = head.close || closing;
    let tls = state.tls.current();
    if !io.peer.tls {
        let location = tls.policies.redirect_location(head.host, head.target);
        if let Some(location) = location {
            drop(tls);
            return answer(
                state,
                io,
                None,
                answer::HTTPS_ONLY,
                Some(&location),
                head,
                close,
            )
            .await;
        }
    }
    let target = state.router().route(head.host, head.path).cloned();
    let Some(target) = target else {
        drop(tls);
        return answer(state, io, None, answer::NO_ROUTE, None, head, close).await;
    };
    let pick = PickContext {
        client_ip: io.peer.ip,
        headers: RequestHeaders::Raw(head.headers),
        path: head.path,
        query: head.query,
    };
    let mut rng = fastrand::Rng::new();
    let service = target.group.pick_service(&pick, &mut rng).cloned();
    let service = match service {
        Some(s) if s.unavailable.is_none() && s.has_endpoints() => s,
        _ => {
            drop(tls);
            let target = Some(&target);
            return answer(state, io, target, answer::NO_ENDPOINT, None, head, close).await;
        }
    };
    if !tls.upstreams.is_plain_http1(&service.id) {
        // HTTPS and h2c backends: Pingora's connectors speak those.
        return Served::answered(Next::HandOff("HTTPS or h2c backend"), 0, None);
    }
    let hsts = if io.peer.tls {
        tls.policies.lookup(head.host).and_then(|p| p.hsts.clone())
    } else {
        None
    };
    drop(tls);
    forward::write_request(&mut up.request, head, &io.peer, body);
    let request = Request {
        head_request: head.is_head(),
        idempotent: head.is_idempotent(),
        pick,
        hsts,
        close,
        upgrade: head.upgrade,
    };
    let mut done = exchange::run(io, up, state, &service, &request, &mut rng).await;
    state.metrics.record_route(
        &target.label,
        &target.metrics,
        done.code,
        Some(done.upstream_time),
    );
    let next = match done.tunnel.take() {
        Some(upstream) => Next::Tunnel(upstream),
        None if done.keep_client => Next::KeepAlive,
        None => Next::Close,
    };
    Served {
        next,
        status: done.code,
        upstream: done.upstream,
        route: Some(target.label),
    }
}

/// Sends one of pier's own answers and records it.
async fn answer(
    state: &ProxyState,
    io: &mut Io,
    target: Option<&RouteTarget>,
    answer: Answer,
    location: Option<&str>,
    head: &RequestHead<'_>,
    close: bool,
) -> Served {
    super::answer::write(&mut io.out, answer, location, head.is_head(), close);
    let sent = io.send_out().await.is_ok();
    let status = if sent { answer.code } else { 0 };
    let route = target.map(|t| &t.label);
    match target {
        Some(t) => state
            .metrics
            .record_route(&t.label, &t.metrics, status, None),
        None => state.metrics.record_unrouted(status),
    }
    if sent && !head.is_head() {
        io.body_sent = answer.body.len() as u64;
    }
    let next = if sent && !close {
        Next::KeepAlive
    } else {
        Next::Close
    };
    Served::answered(next, status, route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h2c_preface_is_recognised_from_its_first_bytes() {
        assert_eq!(h2c_preface(b""), Preface::Undecided);
        assert_eq!(h2c_preface(b"PRI * HT"), Preface::Undecided);
        assert_eq!(h2c_preface(H2_PREFACE), Preface::Present);
        assert_eq!(
            h2c_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Preface::Present
        );
        assert_eq!(h2c_preface(b"GET / HTTP/1.1\r\n"), Preface::Absent);
        assert_eq!(h2c_preface(b"PRIX"), Preface::Absent);
    }
}

#[cfg(test)]
mod send_tests {
    use super::*;
    use crate::accepted::connected_pair as pair;
    use tokio::io::AsyncReadExt;

    /// More than the two sockets' buffers can hold, so the write waits for the client.
    const LARGE: usize = 64 << 20;

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_timed_out() {
        let (mut server, _client_never_reads) = pair().await;
        let mut timer = Deadline::new();
        let started = Instant::now();
        let large = vec![b'x'; LARGE];
        let sent = tokio::time::timeout(2 * SEND_TIMEOUT, send(&mut server, &mut timer, &large))
            .await
            .expect("the send timeout fires first");
        assert_eq!(
            sent.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::TimedOut)
        );
        assert!(started.elapsed() >= SEND_TIMEOUT);
    }

    #[tokio::test]
    async fn a_reading_client_gets_everything() {
        let (mut server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.map(|_| got.len())
        });
        let mut timer = Deadline::new();
        send(&mut server, &mut timer, &vec![b'x'; LARGE])
            .await
            .unwrap();
        drop(server);
        assert_eq!(reader.await.unwrap().unwrap(), LARGE);
    }
}

#[cfg(test)]
mod first_bytes_tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A new connection's state as `serve` makes it, and the client end of the connection.
    pub(super) async fn new_connection() -> (Io, UpstreamIo, BytesMut, tokio::net::TcpStream) {
        let (client, remote) = crate::accepted::connected_pair().await;
        connection_state(client, remote)
    }

    /// A new clear-text connection and a new TLS one, for tests that hold for both.
    async fn both_kinds() -> [(Io, UpstreamIo, BytesMut, tokio::net::TcpStream); 2] {
        [new_connection().await, new_tls_connection().await]
    }

    /// Like [`new_connection`], as a TLS connection is served: through a Pingora stream,
    /// which socket readiness does not describe (no TLS on it: the way it is read is what is
    /// tested).
    async fn new_tls_connection() -> (Io, UpstreamIo, BytesMut, tokio::net::TcpStream) {
        let (Accepted::Tcp(tcp, peer), remote) = crate::accepted::connected_pair().await else {
            unreachable!("a clear-text connection")
        };
        let stream = Box::new(crate::accepted::l4_stream(tcp, peer));
        connection_state(Accepted::Tls(stream), remote)
    }

    /// The state `serve` makes for `client`, and the client end of the connection.
    fn connection_state(
        client: Accepted,
        remote: tokio::net::TcpStream,
    ) -> (Io, UpstreamIo, BytesMut, tokio::net::TcpStream) {
        let io = Io {
            peer: Client::new(client.peer_ip(), false),
            nagle: Nagle::initial(&client),
            client,
            out: Vec::new(),
            client_timer: Deadline::new(),
            trim_timer: Deadline::new(),
            body_sent: 0,
        };
        (io, UpstreamIo::empty(), BytesMut::new(), remote)
    }

    fn has_buffers(io: &Io, up: &UpstreamIo, inbuf: &BytesMut) -> [bool; 4] {
        [
            inbuf.capacity() > 0,
            io.out.capacity() > 0,
            up.request.capacity() > 0,
            up.buf.capacity() > 0,
        ]
    }

    #[tokio::test]
    async fn buffers_are_made_when_the_first_bytes_come() {
        for (io, up, inbuf, client) in both_kinds().await {
            first_bytes_make_the_buffers(io, up, inbuf, client).await;
        }
    }

    #[tokio::test]
    async fn a_wait_for_the_first_bytes_holds_no_read_buffer() {
        for (mut io, mut up, mut inbuf, _client) in both_kinds().await {
            let (_stop, shutdown) = tokio::sync::watch::channel(false);
            let stopping = std::pin::pin!(std::future::pending::<()>());
            let waiting = read_first_bytes(&mut io, &mut up, &mut inbuf, &shutdown, stopping);
            // The wait is part of every connection's future, and so of its task: no room to
            // read into (a TLS connection's small buffer is on the heap while it waits). With
            // the bytes read into an array in the future, it was larger than the array.
            let size = std::mem::size_of_val(&waiting);
            assert!(size < FIRST_READ, "{size} bytes");
        }
    }

    async fn first_bytes_make_the_buffers(
        mut io: Io,
        mut up: UpstreamIo,
        mut inbuf: BytesMut,
        mut client: tokio::net::TcpStream,
    ) {
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let stopping = std::pin::pin!(std::future::pending::<()>());
        let sending = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        };
        let (read, ()) = tokio::join!(
            read_first_bytes(&mut io, &mut up, &mut inbuf, &shutdown, stopping),
            sending
        );
        assert!(read);
        assert_eq!(&inbuf[..], b"GET / HTTP/1.1\r\n");
        assert_eq!(has_buffers(&io, &up, &inbuf), [true; 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_holds_no_buffers_and_times_out() {
        for (mut io, mut up, mut inbuf, _silent) in both_kinds().await {
            let (_stop, shutdown) = tokio::sync::watch::channel(false);
            let stopping = std::pin::pin!(std::future::pending::<()>());
            let started = Instant::now();
            let waiting = read_first_bytes(&mut io, &mut up, &mut inbuf, &shutdown, stopping);
            let read = tokio::time::timeout(2 * KEEPALIVE, waiting)
                .await
                .expect("the keep-alive timeout fires");
            assert!(!read);
            assert!(started.elapsed() >= KEEPALIVE);
            assert_eq!(has_buffers(&io, &up, &inbuf), [false; 4]);
        }
    }

    #[tokio::test]
    async fn a_connection_closed_before_its_first_bytes_makes_no_buffers() {
        for (mut io, mut up, mut inbuf, client) in both_kinds().await {
            let (_stop, shutdown) = tokio::sync::watch::channel(false);
            let stopping = std::pin::pin!(std::future::pending::<()>());
            drop(client);
            let waiting = read_first_bytes(&mut io, &mut up, &mut inbuf, &shutdown, stopping);
            let read = tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("the close ends the wait");
            assert!(!read);
            assert_eq!(has_buffers(&io, &up, &inbuf), [false; 4]);
        }
    }

    #[tokio::test]
    async fn a_silent_connection_ends_when_shutdown_begins() {
        let (mut io, mut up, mut inbuf, _silent) = new_connection().await;
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut watch = shutdown.clone();
        let stopping = std::pin::pin!(async move {
            let _ = watch.changed().await;
        });
        let signal = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stop.send(true).unwrap();
        };
        let waiting = read_first_bytes(&mut io, &mut up, &mut inbuf, &shutdown, stopping);
        let (read, ()) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(waiting, signal)
        })
        .await
        .expect("ends at once");
        assert!(!read);
    }
}

#[cfg(test)]
mod nagle_tests {
    use super::first_bytes_tests::new_connection;
    use super::*;

    /// Whether `TCP_NODELAY` is set on the client connection.
    fn nodelay(io: &Io) -> bool {
        match &io.client {
            Accepted::Tcp(tcp, _) => tcp.nodelay().unwrap(),
            Accepted::Tls(_) => unreachable!("a clear-text connection"),
        }
    }

    #[tokio::test]
    async fn nagle_is_turned_off_before_the_second_write_not_the_first() {
        let (mut io, _, _, _client) = new_connection().await;
        io.out
            .extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n");
        io.send_out().await.unwrap();
        assert!(
            !nodelay(&io),
            "a small first write leaves Nagle's algorithm on"
        );
        io.send(b"body").await.unwrap();
        assert!(nodelay(&io), "TCP_NODELAY is set before the second write");
    }

    #[tokio::test]
    async fn a_large_first_write_turns_nagle_off() {
        let (mut io, _, _, _client) = new_connection().await;
        io.send(&[b'x'; SMALL_FIRST_WRITE + 1]).await.unwrap();
        assert!(nodelay(&io));
    }
}
