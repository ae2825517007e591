//! One request's exchange with the endpoints of its Service: pick an endpoint, reuse or open a
//! connection, send the request, relay the response. Connect failures move on to another
//! endpoint for any method; failures after sending only for idempotent methods, and only
//! before anything reached the client. A pooled connection that turns out to be closed is
//! replaced by a fresh one to the same endpoint without counting against it.
//!
//! The upstream side is the same whoever the client is; what reaches the client goes through
//! [`Downstream`], implemented for an HTTP/1.1 connection and for an HTTP/2 stream.

use super::deadline::Deadline;
use super::pool;
use super::response::{self, Additions, Framing, ResponseHead};
use crate::answer::{self, Answer};
use crate::lb::{PickContext, ServiceBalancer};
use crate::state::ProxyState;
use crate::table::UpstreamPolicy;
use bytes::{Buf, BytesMut};
use pingora_timeout::fast_timeout::fast_timeout;
use smallvec::SmallVec;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Room kept free in the upstream buffer before each read.
pub(super) const READ_CHUNK: usize = 8 * 1024;
/// A response head larger than this is refused.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Initial size of the buffer responses are read into (kept below the allocator's large size
/// classes).
const UPSTREAM_BUF: usize = 8 * 1024;
/// Initial size of the buffer the upstream request is written into.
const REQUEST_BUF: usize = 2 * 1024;

/// The upstream side of exchanges: buffers and a timer reused from one request to the next.
pub(super) struct UpstreamIo {
    /// The request as it goes to the endpoint (head and buffered body), written before
    /// [`run`] and sent again unchanged on a retry.
    pub request: Vec<u8>,
    /// Bytes read from the endpoint.
    pub buf: BytesMut,
    /// Times out waits on the endpoint (sending, each read of the response).
    pub timer: Deadline,
}

impl UpstreamIo {
    /// Buffers of the usual size and an unarmed timer.
    pub fn new() -> UpstreamIo {
        let mut up = UpstreamIo::empty();
        up.provision();
        up
    }

    /// No buffers yet ([`UpstreamIo::provision`] makes them) and an unarmed timer.
    pub fn empty() -> UpstreamIo {
        UpstreamIo {
            request: Vec::new(),
            buf: BytesMut::new(),
            timer: Deadline::new(),
        }
    }

    /// Makes buffers of the usual size where there are none (new, or given back by
    /// [`UpstreamIo::trim`]), rather than growing them piece by piece.
    pub fn provision(&mut self) {
        if self.request.capacity() == 0 {
            self.request.reserve(REQUEST_BUF);
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(UPSTREAM_BUF);
        }
    }

    /// Gives the buffers' memory back (an idle client connection).
    pub fn trim(&mut self) {
        self.request = Vec::new();
        self.buf = BytesMut::new();
    }

    /// Reads more from `stream` into `buf` (appending) within `read_timeout`; `Ok(0)` at end
    /// of file, `Err` on an error or timeout.
    pub async fn read_more(
        &mut self,
        stream: &mut TcpStream,
        read_timeout: Duration,
    ) -> Result<usize, Relayed> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        self.timer.arm(read_timeout);
        match self.timer.run(stream.read_buf(&mut self.buf)).await {
            Some(Ok(n)) => Ok(n),
            Some(Err(_)) | None => Err(Relayed::UpstreamBroke),
        }
    }
}

/// Where the response of an exchange goes: an HTTP/1.1 client connection or an HTTP/2 stream.
pub(super) trait Downstream {
    /// Passes an interim (1xx) response, the first `len` bytes of `up.buf`, on to the client;
    /// `false`: the client is gone.
    async fn interim(&mut self, up: &UpstreamIo, len: usize) -> bool;

    /// Prepares the client's version of the endpoint's final response head (sent by
    /// [`Downstream::relay`]); `false`: it cannot be expressed to this client.
    fn final_head(&mut self, head: &ResponseHead<'_>, add: Additions<'_>) -> bool;

    /// Sends the prepared head and relays the body from `answered.stream` (`up.buf` starts
    /// with the body bytes already read); a byte left in `up.buf` afterwards was not part of
    /// the response. Whether the upstream connection is reused is the exchange's decision.
    async fn relay(
        &mut self,
        up: &mut UpstreamIo,
        answered: &mut Answered,
        read_timeout: Duration,
    ) -> Relayed;

    /// Sends one of pier's own answers (without body for `HEAD`); whether it went out.
    async fn answer(&mut self, answer: Answer, head_request: bool, close: bool) -> bool;
}

/// How relaying the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relayed {
    /// Complete; the client connection can take another request.
    KeepClient,
    /// Complete, but the client connection closes (asked for, or the body ran to EOF).
    CloseClient,
    /// The client went away.
    ClientGone,
    /// The endpoint failed in the middle of the body: the client connection must close.
    UpstreamBroke,
    /// The endpoint switched protocols (`101`): the two connections become a tunnel.
    Upgraded,
}

/// What one request needs from the exchange; the request itself is in
/// [`UpstreamIo::request`].
pub(super) struct Request<'a> {
    /// The method is `HEAD` (the response has no body).
    pub head_request: bool,
    /// Sending the request twice can do no harm (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// What the balancer may look at.
    pub pick: PickContext<'a>,
    /// `Strict-Transport-Security` for the answer (HTTPS clients of HSTS hosts).
    pub hsts: Option<Arc<str>>,
    /// The client connection closes after this request.
    pub close: bool,
    /// The client asks to switch protocols: a `101` answer is passed on and ends the exchange.
    pub upgrade: bool,
}

/// How the exchange ended.
#[derive(Debug)]
pub(super) struct Exchanged {
    /// Status sent to the client (0: nothing could be sent).
    pub code: u16,
    /// From the first attempt until the response was done.
    pub upstream_time: Duration,
    /// The endpoint of the last attempt.
    pub upstream: Option<SocketAddr>,
    /// Whether the client connection can take another request.
    pub keep_client: bool,
    /// The upstream connection, when the endpoint switched protocols: the caller joins it to
    /// the client connection.
    pub tunnel: Option<TcpStream>,
}

/// Why an attempt produced no usable response head.
#[derive(Debug, Clone, Copy)]
struct Failure {
    /// Nothing was sent (connect failed): any method may be retried.
    before_send: bool,
    /// The endpoint did not answer in time (504 rather than 502).
    timed_out: bool,
    /// No byte of a response arrived (a pooled connection may just have been closed).
    nothing_received: bool,
    /// Something (an interim response) already went to the client: no retry.
    committed: bool,
}

impl Failure {
    fn answer(self) -> Answer {
        if self.timed_out {
            answer::UPSTREAM_TIMEOUT
        } else {
            answer::UPSTREAM_FAILED
        }
    }
}

/// The response head of a successful attempt; the [`Downstream`] holds the client's version.
pub(super) struct Answered {
    /// The upstream connection.
    pub stream: TcpStream,
    /// Status code.
    pub code: u16,
    /// Length of the endpoint's head at the start of [`UpstreamIo::buf`].
    pub head_len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the endpoint keeps the connection open.
    pub reusable: bool,
    /// Whether the client connection closes after this response.
    pub close_client: bool,
    /// The endpoint switched protocols (`101`, asked for by the request).
    pub upgraded: bool,
}

/// Runs the exchange and relays the response (or pier's answer) to the client.
pub(super) async fn run<D: Downstream>(
    client: &mut D,
    up: &mut UpstreamIo,
    state: &ProxyState,
    service: &ServiceBalancer,
    req: &Request<'_>,
    rng: &mut fastrand::Rng,
) -> Exchanged {
    let started = Instant::now();
    let upstream = &service.policy().upstream;
    let mut tried: SmallVec<[SocketAddr; 4]> = SmallVec::new();
    let mut set_cookie: Option<String> = None;
    let failed = loop {
        let Some(pick) = service.pick(&req.pick, &tried, rng) else {
            break answer::UPSTREAM_FAILED;
        };
        let addr = pick.address;
        tried.push(addr);
        if pick.set_cookie.is_some() {
            set_cookie = pick.set_cookie;
        }
        let add = Additions {
            hsts: req.hsts.as_deref(),
            set_cookie: set_cookie.as_deref(),
            close: req.close,
        };
        match attempt(client, up, addr, upstream, req, add, started).await {
            Ok(mut answered) => {
                service.record_answer(pick.guard.state(), addr, answered.code);
                up.buf.advance(answered.head_len);
                let relayed = client.relay(up, &mut answered, upstream.read_timeout).await;
                let finished = Instant::now();
                let mut tunnel = None;
                match relayed {
                    Relayed::Upgraded => tunnel = Some(answered.stream),
                    Relayed::KeepClient | Relayed::CloseClient => {
                        // Reusable only if the endpoint sent nothing past the response.
                        if answered.reusable && up.buf.is_empty() {
                            pool::put(addr, answered.stream, finished);
                        }
                    }
                    Relayed::UpstreamBroke => service.record_failure(pick.guard.state(), addr),
                    Relayed::ClientGone => {}
                }
                up.buf.clear();
                return Exchanged {
                    code: answered.code,
                    upstream_time: finished.duration_since(started),
                    upstream: Some(addr),
                    keep_client: relayed == Relayed::KeepClient,
                    tunnel,
                };
            }
            Err(failure) => {
                service.record_failure(pick.guard.state(), addr);
                let allowed = !failure.committed
                    && (failure.before_send || req.idempotent)
                    && service.may_retry(&tried);
                if !allowed {
                    if failure.committed {
                        return Exchanged {
                            code: 0,
                            upstream_time: started.elapsed(),
                            upstream: Some(addr),
                            keep_client: false,
                            tunnel: None,
                        };
                    }
                    break failure.answer();
                }
                state.metrics.retries.inc();
            }
        }
    };
    let sent = client.answer(failed, req.head_request, req.close).await;
    Exchanged {
        code: if sent { failed.code } else { 0 },
        upstream_time: started.elapsed(),
        upstream: tried.last().copied(),
        keep_client: sent && !req.close,
        tunnel: None,
    }
}

/// One attempt on one endpoint: a pooled connection if one is open (replaced by a fresh one if
/// it turns out closed), else a new one.
async fn attempt<D: Downstream>(
    client: &mut D,
    up: &mut UpstreamIo,
    addr: SocketAddr,
    upstream: &UpstreamPolicy,
    req: &Request<'_>,
    add: Additions<'_>,
    now: Instant,
) -> Result<Answered, Failure> {
    if let Some(stream) = pool::take(addr, now) {
        match exchange_head(client, up, stream, upstream.read_timeout, req, add).await {
            Err(f) if f.nothing_received && !f.timed_out && !f.committed => {}
            done => return done,
        }
    }
    let stream = match fast_timeout(upstream.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) | Err(_) => {
            return Err(Failure {
                before_send: true,
                timed_out: false,
                nothing_received: true,
                committed: false,
            })
        }
    };
    // Small writes (request heads) must not wait for ACKs.
    let _ = stream.set_nodelay(true);
    exchange_head(client, up, stream, upstream.read_timeout, req, add).await
}

/// Sends the request and reads the response head; on success the client holds its version of
/// the head and `up.buf` starts with the endpoint's.
async fn exchange_head<D: Downstream>(
    client: &mut D,
    up: &mut UpstreamIo,
    mut stream: TcpStream,
    read_timeout: Duration,
    req: &Request<'_>,
    mut add: Additions<'_>,
) -> Result<Answered, Failure> {
    let mut failure = Failure {
        before_send: false,
        timed_out: false,
        nothing_received: true,
        committed: false,
    };
    // An endpoint that stops reading is as broken as one that stops answering.
    up.timer.arm(read_timeout);
    match up.timer.run(stream.write_all(&up.request)).await {
        Some(Ok(())) => {}
        Some(Err(_)) => return Err(failure),
        None => {
            failure.timed_out = true;
            return Err(failure);
        }
    }
    up.buf.clear();
    // The first read keeps the deadline armed just before sending (writing to a socket
    // buffer takes no time worth a clock read); later reads re-arm it.
    let mut first = true;
    loop {
        if up.buf.capacity() - up.buf.len() < READ_CHUNK / 2 {
            up.buf.reserve(READ_CHUNK);
        }
        if !first {
            up.timer.arm(read_timeout);
        }
        first = false;
        match up.timer.run(stream.read_buf(&mut up.buf)).await {
            Some(Ok(0)) | Some(Err(_)) => return Err(failure),
            None => {
                failure.timed_out = true;
                return Err(failure);
            }
            Some(Ok(_)) => failure.nothing_received = false,
        }
        // Every complete head in the buffer: interim ones are passed on, the final one ends
        // the loop.
        loop {
            match examine_head(client, up, req, &mut add) {
                Head::Incomplete => break,
                Head::Unusable => return Err(failure),
                Head::Interim(len) => {
                    // An interim response (103 Early Hints…): pass it on, then the final one.
                    failure.committed = true;
                    if !client.interim(up, len).await {
                        return Err(failure);
                    }
                    up.buf.advance(len);
                }
                Head::Final(head) => {
                    return Ok(Answered {
                        code: head.code,
                        head_len: head.head_len,
                        framing: head.framing,
                        reusable: head.reusable,
                        close_client: add.close,
                        upgraded: head.upgraded,
                        stream,
                    })
                }
            }
        }
    }
}

/// What the start of `up.buf` holds.
enum Head {
    /// Not a whole head yet.
    Incomplete,
    /// Not a usable response.
    Unusable,
    /// An interim (1xx) response of this length.
    Interim(usize),
    /// The final response head; the client holds its version of it.
    Final(FinalHead),
}

struct FinalHead {
    code: u16,
    head_len: usize,
    framing: Framing,
    reusable: bool,
    upgraded: bool,
}

/// Parses the response head at the start of `up.buf` and, for a final one, has the client
/// prepare its version. Synchronous, so the parsed fields never live across an `.await`
/// (which would make every connection's state larger).
fn examine_head<D: Downstream>(
    client: &mut D,
    up: &UpstreamIo,
    req: &Request<'_>,
    add: &mut Additions<'_>,
) -> Head {
    let mut storage = response::header_storage();
    let head = match response::parse(&up.buf, &mut storage, req.head_request) {
        Ok(Some(head)) => head,
        Ok(None) if up.buf.len() < MAX_RESPONSE_HEAD => return Head::Incomplete,
        Ok(None) | Err(_) => return Head::Unusable,
    };
    let upgraded = head.code == 101;
    if upgraded && !req.upgrade {
        // Switching protocols without being asked to.
        return Head::Unusable;
    }
    if head.code < 200 && !upgraded {
        return Head::Interim(head.head_len);
    }
    add.close |= head.framing == Framing::UntilClose;
    if !client.final_head(&head, *add) {
        return Head::Unusable;
    }
    Head::Final(FinalHead {
        code: head.code,
        head_len: head.head_len,
        framing: head.framing,
        reusable: head.reusable && !upgraded,
        upgraded,
    })
}
