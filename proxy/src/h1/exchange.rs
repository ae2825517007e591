//! One request's exchange with the endpoints of its Service: pick an endpoint, reuse or open a
//! connection, send the request, relay the response. Connect failures move on to another
//! endpoint for any method; failures after sending only for idempotent methods, and only
//! before anything reached the client. A pooled connection that turns out to be closed is
//! replaced by a fresh one to the same endpoint without counting against it.

use super::connection::Io;
use super::forward;
use super::head::RequestHead;
use super::pool;
use super::relay::{relay, Relayed};
use super::response::{self, Additions, Framing};
use crate::answer::{self, Answer};
use crate::lb::{PickContext, ServiceBalancer};
use crate::state::ProxyState;
use crate::table::UpstreamPolicy;
use bytes::Buf;
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

/// What one request needs from the exchange.
pub(super) struct Request<'a> {
    /// The parsed request.
    pub head: &'a RequestHead<'a>,
    /// Its whole body.
    pub body: &'a [u8],
    /// What the balancer may look at.
    pub pick: PickContext<'a>,
    /// `Strict-Transport-Security` for the answer (HTTPS clients of HSTS hosts).
    pub hsts: Option<Arc<str>>,
    /// The client connection closes after this request.
    pub close: bool,
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

/// The response head of a successful attempt; `io.out` holds the client's version of it.
pub(super) struct Answered {
    /// The upstream connection.
    pub stream: TcpStream,
    /// Status code.
    pub code: u16,
    /// Length of the endpoint's head at the start of `io.upbuf`.
    pub head_len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the endpoint keeps the connection open.
    pub reusable: bool,
    /// Whether the client connection closes after this response.
    pub close_client: bool,
}

/// Runs the exchange and relays the response (or pier's answer) to the client; `io.body_sent`
/// counts from zero (the caller resets it per request).
pub(super) async fn run(
    io: &mut Io,
    state: &ProxyState,
    service: &ServiceBalancer,
    req: &Request<'_>,
    rng: &mut fastrand::Rng,
) -> Exchanged {
    let started = Instant::now();
    let upstream = &service.policy().upstream;
    let mut tried: SmallVec<[SocketAddr; 4]> = SmallVec::new();
    let mut set_cookie: Option<String> = None;
    forward::write_request(&mut io.out, req.head, &io.peer, req.body);
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
        match attempt(io, addr, upstream, req.head.is_head(), add, started).await {
            Ok(answered) => {
                service.record_answer(pick.guard.state(), addr, answered.code);
                let code = answered.code;
                let (relayed, reusable) = relay(io, answered, upstream.read_timeout).await;
                let finished = Instant::now();
                if let Some(stream) = reusable {
                    pool::put(addr, stream, finished);
                }
                if relayed == Relayed::UpstreamBroke {
                    service.record_failure(pick.guard.state(), addr);
                }
                return Exchanged {
                    code,
                    upstream_time: finished.duration_since(started),
                    upstream: Some(addr),
                    keep_client: relayed == Relayed::KeepClient,
                };
            }
            Err(failure) => {
                service.record_failure(pick.guard.state(), addr);
                let allowed = !failure.committed
                    && (failure.before_send || req.head.is_idempotent())
                    && service.may_retry(&tried);
                if !allowed {
                    if failure.committed {
                        return Exchanged {
                            code: 0,
                            upstream_time: started.elapsed(),
                            upstream: Some(addr),
                            keep_client: false,
                        };
                    }
                    break failure.answer();
                }
                state.metrics.retries.inc();
            }
        }
    };
    super::answer::write(&mut io.out, failed, None, req.head.is_head(), req.close);
    let sent = io.send_out().await.is_ok();
    Exchanged {
        code: if sent { failed.code } else { 0 },
        upstream_time: started.elapsed(),
        upstream: tried.last().copied(),
        keep_client: sent && !req.close,
    }
}

/// One attempt on one endpoint: a pooled connection if one is open (replaced by a fresh one if
/// it turns out closed), else a new one.
async fn attempt(
    io: &mut Io,
    addr: SocketAddr,
    upstream: &UpstreamPolicy,
    head_request: bool,
    add: Additions<'_>,
    now: Instant,
) -> Result<Answered, Failure> {
    if let Some(stream) = pool::take(addr, now) {
        match exchange_head(io, stream, upstream.read_timeout, head_request, add).await {
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
    exchange_head(io, stream, upstream.read_timeout, head_request, add).await
}

/// Sends the request in `io.out` and reads the response head; on success `io.out` holds the
/// client's response head and `io.upbuf` starts with the endpoint's head.
async fn exchange_head(
    io: &mut Io,
    mut stream: TcpStream,
    read_timeout: Duration,
    head_request: bool,
    mut add: Additions<'_>,
) -> Result<Answered, Failure> {
    let mut failure = Failure {
        before_send: false,
        timed_out: false,
        nothing_received: true,
        committed: false,
    };
    // An endpoint that stops reading is as broken as one that stops answering.
    io.upstream_timer.arm(read_timeout);
    match io.upstream_timer.run(stream.write_all(&io.out)).await {
        Some(Ok(())) => {}
        Some(Err(_)) => return Err(failure),
        None => {
            failure.timed_out = true;
            return Err(failure);
        }
    }
    io.upbuf.clear();
    // The first read keeps the deadline armed just before sending (writing to a socket
    // buffer takes no time worth a clock read); later reads re-arm it.
    let mut first = true;
    loop {
        if io.upbuf.capacity() - io.upbuf.len() < READ_CHUNK / 2 {
            io.upbuf.reserve(READ_CHUNK);
        }
        if !first {
            io.upstream_timer.arm(read_timeout);
        }
        first = false;
        match io.upstream_timer.run(stream.read_buf(&mut io.upbuf)).await {
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
            match examine_head(io, head_request, &mut add) {
                Head::Incomplete => break,
                Head::Unusable => return Err(failure),
                Head::Interim(len) => {
                    // An interim response (103 Early Hints…): pass it on, then the final one.
                    failure.committed = true;
                    let sent = io.client.write_all(&io.upbuf[..len]).await;
                    if sent.is_err() || io.client.flush().await.is_err() {
                        return Err(failure);
                    }
                    io.upbuf.advance(len);
                }
                Head::Final(head) => {
                    return Ok(Answered {
                        code: head.code,
                        head_len: head.head_len,
                        framing: head.framing,
                        reusable: head.reusable,
                        close_client: add.close,
                        stream,
                    })
                }
            }
        }
    }
}

/// What the start of `io.upbuf` holds.
enum Head {
    /// Not a whole head yet.
    Incomplete,
    /// Not a usable response.
    Unusable,
    /// An interim (1xx) response of this length.
    Interim(usize),
    /// The final response head; `io.out` holds the client's version of it.
    Final(FinalHead),
}

struct FinalHead {
    code: u16,
    head_len: usize,
    framing: Framing,
    reusable: bool,
}

/// Parses the response head at the start of `io.upbuf` and, for a final one, writes the
/// client's head into `io.out`. Synchronous, so the parsed fields never live across an
/// `.await` (which would make every connection's state larger).
fn examine_head(io: &mut Io, head_request: bool, add: &mut Additions<'_>) -> Head {
    let mut storage = response::header_storage();
    let head = match response::parse(&io.upbuf, &mut storage, head_request) {
        Ok(Some(head)) => head,
        Ok(None) if io.upbuf.len() < MAX_RESPONSE_HEAD => return Head::Incomplete,
        Ok(None) | Err(_) => return Head::Unusable,
    };
    if head.code == 101 {
        // Never asked for (upgrades take the general path).
        return Head::Unusable;
    }
    if head.code < 200 {
        return Head::Interim(head.head_len);
    }
    add.close |= head.framing == Framing::UntilClose;
    response::write_head(&mut io.out, &head, *add);
    Head::Final(FinalHead {
        code: head.code,
        head_len: head.head_len,
        framing: head.framing,
        reusable: head.reusable,
    })
}
