//! HTTP/2 streams on the fast path. Pingora runs each HTTP/2 connection (handshake, flow
//! control, GOAWAY on shutdown, the idle timeout, the malformed-stream budget) and hands pier
//! one stream at a time through [`HttpServerApp`]. A stream the fast path's upstream side can
//! serve (no request body or one of at most [`MAX_BUFFERED_BODY`] with `Content-Length`,
//! buffered whole so an attempt can be retried; a route whose Service has a ready endpoint; a
//! clear-text HTTP/1.1 backend) is exchanged here, its response written to the stream; every
//! other stream (larger or unannounced request bodies, `CONNECT`, pier's own 308/404/503,
//! HTTPS and h2c backends) goes to Pingora's general path, stream by stream.

use super::connection::{KEEPALIVE, SEND_TIMEOUT};
use super::exchange::{self, Answered, Downstream, Relayed, Request, UpstreamIo};
use super::forward::{self, Client};
use super::head::{parse_length, ConnectionNamed, MAX_BUFFERED_BODY};
use super::response::{self, Additions, Framing, Kept, ResponseHead};
use crate::access;
use crate::answer::Answer;
use crate::lb::{PickContext, RequestHeaders, ServiceBalancer};
use crate::metrics::ReasonLabels;
use crate::router::RouteTarget;
use crate::service::{request_host, PierProxy};
use crate::state::ProxyState;
use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::v2::server::{H2Options, HttpSession as H2Session};
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use pingora_http::{RequestHeader, ResponseHeader};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Spare upstream buffers kept per worker thread for the next stream.
const SPARE_UPSTREAM_IO: usize = 16;

/// The per-stream application behind HTTP/2 connections.
pub(super) struct StreamApp {
    state: Arc<ProxyState>,
    general: Arc<HttpProxy<PierProxy>>,
}

impl StreamApp {
    /// Serves what it can of `state`'s routes and gives the rest to `general`.
    pub fn new(state: Arc<ProxyState>, general: Arc<HttpProxy<PierProxy>>) -> StreamApp {
        StreamApp { state, general }
    }

    /// Gives a stream to the general path, counted by reason.
    async fn hand_off(
        self: &Arc<Self>,
        session: ServerSession,
        reason: &'static str,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.state
            .metrics
            .general_path_streams
            .get_or_create(&ReasonLabels { reason })
            .inc();
        self.general.process_new_http(session, shutdown).await
    }
}

#[async_trait]
impl HttpServerApp for StreamApp {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // The session (a few hundred bytes) is moved once, into a box, and lent from then
        // on: each copy held across a wait would be part of every stream's future, which is
        // itself copied into a box for every stream.
        let mut client = match session {
            ServerSession::H2(h2) => Box::new(H2Client {
                session: h2,
                head: None,
                body_sent: 0,
            }),
            other => return self.hand_off(other, "not HTTP/2", shutdown).await,
        };
        let tls = client
            .session
            .digest()
            .is_some_and(|d| d.ssl_digest.is_some());
        // A client that stops taking a stream's response is dropped as on HTTP/1.1.
        client.session.set_write_timeout(Some(SEND_TIMEOUT));
        match plan(&self.state, &mut client.session, tls) {
            Plan::Serve(mut serving) => {
                serve_stream(&self.state, &mut client, tls, &mut serving).await;
                None
            }
            Plan::General(reason) => {
                let H2Client { session, .. } = *client;
                self.hand_off(ServerSession::new_http2(session), reason, shutdown)
                    .await
            }
        }
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.general.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.general.server_options()
    }
}

/// Who serves a stream.
enum Plan {
    /// The fast path, with what the plan found.
    Serve(Box<Serving>),
    /// The general path, for this reason.
    General(&'static str),
}

/// A stream the fast path serves: its route, the chosen Service, and its request head, taken
/// out of the session (which does not read it again).
struct Serving {
    /// The client's address, read once from the session.
    client_ip: Option<std::net::IpAddr>,
    target: RouteTarget,
    service: Arc<ServiceBalancer>,
    hsts: Option<Arc<str>>,
    request: http::request::Parts,
    /// Length of the request body still to be read from the stream.
    body_length: usize,
}

/// Decides who serves the stream in `h2`.
fn plan(state: &ProxyState, h2: &mut H2Session, tls: bool) -> Plan {
    let body_length = if h2.is_body_empty() {
        0
    } else {
        let length = h2
            .req_header()
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| parse_length(v.as_bytes()));
        match length {
            // Bounded by MAX_BUFFERED_BODY.
            Some(n) if n <= MAX_BUFFERED_BODY => n as usize,
            Some(_) => return Plan::General("large request body"),
            None => return Plan::General("request body without Content-Length"),
        }
    };
    let req = h2.req_header();
    if req.method == Method::CONNECT {
        return Plan::General("CONNECT");
    }
    let host = request_host(req);
    let runtime = state.tls.current();
    if !tls {
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        if runtime.policies.redirect_location(host, target).is_some() {
            return Plan::General("redirect to HTTPS");
        }
    }
    let Some(target) = state.router().route(host, req.uri.path()).cloned() else {
        return Plan::General("no route");
    };
    let ip = client_ip(h2);
    let pick = PickContext {
        client_ip: ip,
        headers: RequestHeaders::Map(&req.headers),
        path: req.uri.path(),
        query: req.uri.query(),
    };
    let service = target
        .group
        .pick_service(&pick, &mut fastrand::Rng::new())
        .cloned();
    let service = match service {
        Some(s) if s.unavailable.is_none() && s.has_endpoints() => s,
        _ => return Plan::General("no ready endpoint"),
    };
    if !runtime.upstreams.is_plain_http1(&service.id) {
        return Plan::General("HTTPS or h2c backend");
    }
    let hsts = if tls {
        runtime.policies.lookup(host).and_then(|p| p.hsts.clone())
    } else {
        None
    };
    drop(runtime);
    // The session does not read its request head again; an empty one (no allocation) takes
    // its place.
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let request = std::mem::replace(h2.req_header_mut(), placeholder).into();
    Plan::Serve(Box::new(Serving {
        client_ip: ip,
        target,
        service,
        hsts,
        request,
        body_length,
    }))
}

fn client_ip(h2: &H2Session) -> Option<std::net::IpAddr> {
    h2.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

/// Exchanges the stream's request with the Service's endpoints and writes the response (or
/// pier's answer) to the stream; writes its access-log line when enabled.
async fn serve_stream(state: &ProxyState, client: &mut H2Client, tls: bool, serving: &mut Serving) {
    let _request = state.track_request();
    let started = access::enabled().then(Instant::now);
    let Serving {
        client_ip: ip,
        target,
        service,
        hsts,
        request: req,
        body_length,
    } = serving;
    let ip = *ip;
    let host = request_host(req);
    let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut up = spare::take();
    forward::write_request_from_map(
        &mut up.request,
        req.method.as_str(),
        path_and_query,
        host,
        &req.headers,
        &Client::new(ip, tls),
    );
    let (code, upstream, upstream_time, bytes) =
        if read_body(&mut client.session, *body_length, &mut up.request).await {
            let request = Request {
                head_request: req.method == Method::HEAD,
                idempotent: req.method.is_idempotent(),
                pick: PickContext {
                    client_ip: ip,
                    headers: RequestHeaders::Map(&req.headers),
                    path: req.uri.path(),
                    query: req.uri.query(),
                },
                hsts: hsts.take(),
                close: false,
                upgrade: false,
            };
            let mut rng = fastrand::Rng::new();
            let done = exchange::run(client, &mut up, state, service, &request, &mut rng).await;
            // A stream whose response did not end (the endpoint failed in the middle of the body)
            // is reset when the session is dropped, so the client knows the response is
            // incomplete.
            (
                done.code,
                done.upstream,
                Some(done.upstream_time),
                client.body_sent,
            )
        } else {
            // The client did not send the body it announced: the stream is reset, nothing sent.
            (0, None, None, 0)
        };
    spare::put(up);
    state
        .metrics
        .record_route(&target.label, &target.metrics, code, upstream_time);
    if let Some(started) = started {
        access::log(&access::Entry {
            client: ip,
            method: req.method.as_str(),
            host,
            target: path_and_query,
            status: code,
            bytes,
            duration: started.elapsed(),
            upstream,
            route: Some(&target.label),
        });
    }
}

/// Reads the stream's request body, announced as `length` bytes, onto `out` (after the
/// upstream request head), waiting at most [`KEEPALIVE`] for it; `false` when the client does
/// not send exactly that much.
async fn read_body(session: &mut H2Session, length: usize, out: &mut Vec<u8>) -> bool {
    if length == 0 {
        return true;
    }
    let expected = out.len() + length;
    out.reserve(length);
    let read = async {
        while let Some(data) = session.read_body_bytes().await.ok()? {
            if out.len() + data.len() > expected {
                return None;
            }
            out.extend_from_slice(&data);
        }
        Some(())
    };
    matches!(tokio::time::timeout(KEEPALIVE, read).await, Ok(Some(()))) && out.len() == expected
}

/// An HTTP/2 stream as the receiver of an exchange's response.
struct H2Client {
    session: H2Session,
    /// The client's version of the endpoint's head, until sent.
    head: Option<Box<ResponseHeader>>,
    /// Response body bytes sent.
    body_sent: u64,
}

impl H2Client {
    /// Sends a piece of the body, `end` with the last one.
    async fn send(&mut self, data: Bytes, end: bool) -> Result<(), Relayed> {
        let len = data.len() as u64;
        self.session
            .write_body(data, end)
            .await
            .map_err(|_| Relayed::ClientGone)?;
        self.body_sent += len;
        Ok(())
    }

    /// Sends the first `n` bytes of `up.buf` (without copying them).
    async fn send_buffered(
        &mut self,
        up: &mut UpstreamIo,
        n: usize,
        end: bool,
    ) -> Result<(), Relayed> {
        if n == 0 && !end {
            return Ok(());
        }
        let data = up.buf.split_to(n).freeze();
        self.send(data, end).await
    }

    async fn relay_length(
        &mut self,
        up: &mut UpstreamIo,
        stream: &mut TcpStream,
        length: u64,
        read_timeout: Duration,
    ) -> Result<(), Relayed> {
        let mut left = length;
        loop {
            let take = left.min(up.buf.len() as u64);
            left -= take;
            self.send_buffered(up, take as usize, left == 0).await?;
            if left == 0 {
                return Ok(());
            }
            if up.read_more(stream, read_timeout).await? == 0 {
                return Err(Relayed::UpstreamBroke);
            }
        }
    }

    async fn relay_chunked(
        &mut self,
        up: &mut UpstreamIo,
        stream: &mut TcpStream,
        read_timeout: Duration,
    ) -> Result<(), Relayed> {
        let mut end = super::chunked::ChunkedEnd::default();
        loop {
            let mut payload = BytesMut::new();
            let used = end
                .decode(&up.buf, |range| payload.extend_from_slice(&up.buf[range]))
                .map_err(|_| Relayed::UpstreamBroke)?;
            up.buf.advance(used);
            let done = end.is_done();
            if !payload.is_empty() || done {
                // The trailer section, if any, is not passed on.
                self.send(payload.freeze(), done).await?;
            }
            if done {
                return Ok(());
            }
            if up.read_more(stream, read_timeout).await? == 0 {
                return Err(Relayed::UpstreamBroke);
            }
        }
    }

    async fn relay_until_close(
        &mut self,
        up: &mut UpstreamIo,
        stream: &mut TcpStream,
        read_timeout: Duration,
    ) -> Result<(), Relayed> {
        loop {
            let n = up.buf.len();
            self.send_buffered(up, n, false).await?;
            if up.read_more(stream, read_timeout).await? == 0 {
                return self.send(Bytes::new(), true).await;
            }
        }
    }
}

impl Downstream for H2Client {
    /// Interim responses are not passed on: Pingora's HTTP/2 session has no way to send one
    /// (its general path drops them too).
    async fn interim(&mut self, _up: &UpstreamIo, _len: usize) -> bool {
        true
    }

    fn final_head(&mut self, head: &ResponseHead<'_>, add: Additions<'_>) -> bool {
        match client_head(head, add) {
            Some(resp) => {
                self.head = Some(Box::new(resp));
                true
            }
            None => false,
        }
    }

    async fn relay(
        &mut self,
        up: &mut UpstreamIo,
        answered: &mut Answered,
        read_timeout: Duration,
    ) -> Relayed {
        let Some(head) = self.head.take() else {
            return Relayed::ClientGone;
        };
        let framing = answered.framing;
        let no_body = matches!(framing, Framing::Empty | Framing::Length(0));
        if self.session.write_response_header(head, no_body).is_err() {
            return Relayed::ClientGone;
        }
        let stream = &mut answered.stream;
        let result = match framing {
            Framing::Empty => Ok(()),
            Framing::Length(n) => self.relay_length(up, stream, n, read_timeout).await,
            Framing::Chunked => self.relay_chunked(up, stream, read_timeout).await,
            Framing::UntilClose => self.relay_until_close(up, stream, read_timeout).await,
        };
        result.err().unwrap_or(Relayed::KeepClient)
    }

    async fn answer(&mut self, answer: Answer, head_request: bool, _close: bool) -> bool {
        let Ok(resp) = answer.response_header(None) else {
            return false;
        };
        if self
            .session
            .write_response_header(Box::new(resp), head_request)
            .is_err()
        {
            return false;
        }
        head_request
            || self
                .send(Bytes::from_static(answer.body.as_bytes()), true)
                .await
                .is_ok()
    }
}

/// The client's version of the endpoint's response head, with pier's additions; `None` when
/// a field cannot be carried (not a valid HTTP/2 field).
fn client_head(head: &ResponseHead<'_>, add: Additions<'_>) -> Option<ResponseHeader> {
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = StatusCode::from_u16(head.code).ok()?;
    parts.headers.reserve(head.headers.len() + 2);
    let named = ConnectionNamed::of(head.headers);
    for h in head.headers {
        // Pingora's HTTP/2 session sets its own `Date` on every response.
        if h.name.eq_ignore_ascii_case("date")
            || response::kept_from(head, h.name, add, &named) != Kept::Yes
        {
            continue;
        }
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        parts.headers.append(name, value);
    }
    if let Some(hsts) = add.hsts {
        let value = HeaderValue::from_str(hsts).ok()?;
        parts
            .headers
            .insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
    if let Some(cookie) = add.set_cookie {
        let value = HeaderValue::from_str(cookie).ok()?;
        parts.headers.append(header::SET_COOKIE, value);
    }
    Some(parts.into())
}

/// Upstream buffers reused by the streams of one worker thread.
mod spare {
    use super::{RefCell, UpstreamIo, SPARE_UPSTREAM_IO};

    thread_local! {
        static SPARE: RefCell<Vec<UpstreamIo>> = const { RefCell::new(Vec::new()) };
    }

    /// A spare set of buffers, or new ones.
    pub fn take() -> UpstreamIo {
        SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_else(UpstreamIo::new)
    }

    /// Keeps `up` for another stream (while fewer than [`SPARE_UPSTREAM_IO`] are kept).
    pub fn put(mut up: UpstreamIo) {
        up.buf.clear();
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_UPSTREAM_IO {
                spare.push(up);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_for_client(raw: &str, add: Additions<'_>) -> ResponseHeader {
        let mut storage = response::header_storage();
        let head = response::parse(raw.as_bytes(), &mut storage, false)
            .expect("valid")
            .expect("complete");
        client_head(&head, add).expect("expressible")
    }

    #[test]
    fn the_client_head_keeps_what_http2_can_carry_and_adds_pier_s() {
        let raw = "HTTP/1.1 200 OK\r\nServer: app\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
                   Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\
                   Upgrade: foo\r\nStrict-Transport-Security: max-age=1\r\nSet-Cookie: a=1\r\n\r\n";
        let resp = head_for_client(
            raw,
            Additions {
                hsts: Some("max-age=600"),
                set_cookie: Some("pier-affinity=x"),
                close: false,
            },
        );
        assert_eq!(resp.status, StatusCode::OK);
        let names: Vec<&str> = resp.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            ["server", "set-cookie", "strict-transport-security"],
            "{resp:?}"
        );
        assert_eq!(resp.headers["strict-transport-security"], "max-age=600");
        let cookies: Vec<_> = resp.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "pier-affinity=x"]);
    }

    #[test]
    fn values_keep_their_bytes_and_the_endpoint_s_date_is_left_to_pingora() {
        let resp = head_for_client(
            "HTTP/1.1 200 OK\r\nDate: Sun, 29 Nov 2026 00:00:00 GMT\r\nX-A: first\r\n\
             Connection: X-Gone\r\nX-Gone: 1\r\nX-B: \r\nX-A: second value\r\n\r\n",
            Additions::default(),
        );
        assert!(!resp.headers.contains_key("date"), "{resp:?}");
        let a: Vec<_> = resp.headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["first", "second value"]);
        assert_eq!(resp.headers["x-b"], "");
        assert_eq!(resp.headers.len(), 3, "{resp:?}");
    }

    #[test]
    fn a_length_is_kept_when_it_frames_the_body() {
        let resp = head_for_client(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n",
            Additions::default(),
        );
        assert_eq!(resp.status, StatusCode::NOT_FOUND);
        assert_eq!(resp.headers["content-length"], "3");
    }
}
