//! The Pingora `ProxyHttp` implementation: route lookup, endpoint choice, forwarding headers,
//! retries (per the Service's policy), passive health reporting and pier's own error answers.

use crate::answer::{self, Answer};
use crate::ip_text::IpText;
use crate::lb::{InFlightGuard, PickContext, ServiceBalancer};
use crate::router::RouteTarget;
use crate::state::{ProxyState, RequestGuard};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora_error::{ErrorSource, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an idle pooled upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy service; cheap to clone, all state lives in [`ProxyState`].
#[derive(Clone)]
pub struct PierProxy {
    state: Arc<ProxyState>,
}

impl PierProxy {
    /// A proxy serving whatever table is published to `state`.
    pub fn new(state: Arc<ProxyState>) -> PierProxy {
        PierProxy { state }
    }
}

/// Per-request state carried between the phases.
#[derive(Default)]
pub struct RequestCtx {
    target: Option<RouteTarget>,
    service: Option<Arc<ServiceBalancer>>,
    tried: Vec<SocketAddr>,
    upstream_start: Option<Instant>,
    /// Counts this request on the endpoint it was sent to; released when the request ends.
    in_flight: Option<InFlightGuard>,
    /// Affinity cookie to send with the response.
    set_cookie: Option<String>,
    /// Counts the request for graceful shutdown until it ends.
    _request: Option<RequestGuard>,
    /// When the request began, noted only when the access log is on.
    started: Option<Instant>,
}

mod attempt;

/// The parts of a request the balancers may use.
fn pick_context<'a>(session: &'a Session) -> PickContext<'a> {
    let req = session.req_header();
    PickContext {
        client_ip: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        headers: (&req.headers).into(),
        path: req.uri.path(),
        query: req.uri.query(),
    }
}

/// The request's host: `:authority` (HTTP/2, absolute-form) or the `Host` header.
pub(crate) fn request_host(req: &http::request::Parts) -> &str {
    if let Some(authority) = req.uri.authority() {
        return authority.as_str();
    }
    req.headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A client address as a header value, formatted on the stack (one allocation: the value).
fn ip_header_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_bytes(IpText::new(Some(ip)).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Writes one of pier's own answers: short text body, `Server: pier`.
async fn respond(session: &mut Session, answer: Answer) -> Result<()> {
    write_answer(session, answer, None).await
}

/// Sends a plain-HTTP request of a TLS host to HTTPS: 308 keeps the method and body.
async fn redirect_to_https(session: &mut Session, location: &str) -> Result<()> {
    write_answer(session, answer::HTTPS_ONLY, Some(location)).await
}

/// Writes a response pier makes itself (the body left out for HEAD).
async fn write_answer(session: &mut Session, answer: Answer, location: Option<&str>) -> Result<()> {
    let resp = answer.response_header(location)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from_static(answer.body.as_bytes())), true)
            .await?;
    }
    Ok(())
}

/// What pier answers for a failed proxy attempt; `None` when the client is gone.
fn failure_response(e: &Error) -> Option<Answer> {
    match e.etype() {
        ErrorType::HTTPStatus(code) => Some(Answer {
            code: *code,
            body: "pier: request failed\n",
        }),
        _ => match e.esource() {
            ErrorSource::Upstream => match e.etype() {
                ErrorType::ConnectTimedout
                | ErrorType::ReadTimedout
                | ErrorType::WriteTimedout
                | ErrorType::TLSHandshakeTimedout => Some(answer::UPSTREAM_TIMEOUT),
                _ => Some(answer::UPSTREAM_FAILED),
            },
            ErrorSource::Downstream => match e.etype() {
                // The client is gone: nothing can be sent.
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => None,
                _ => Some(answer::BAD_REQUEST),
            },
            ErrorSource::Internal | ErrorSource::Unset => Some(answer::INTERNAL_ERROR),
        },
    }
}

#[async_trait]
impl ProxyHttp for PierProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            _request: Some(self.state.track_request()),
            started: crate::access::enabled().then(Instant::now),
            ..RequestCtx::default()
        }
    }

    /// Runs first for every request: finds the route and the Service, and answers 404/503
    /// itself when there is nowhere to send the request.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if !crate::tls::is_tls(session) {
            let location = {
                let req = session.req_header();
                let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
                let tls = self.state.tls.current();
                tls.policies.redirect_location(request_host(req), path)
            };
            if let Some(location) = location {
                redirect_to_https(session, &location).await?;
                return Ok(true);
            }
        }
        let target = {
            let req = session.req_header();
            let router = self.state.router();
            router.route(request_host(req), req.uri.path()).cloned()
        };
        let Some(target) = target else {
            respond(session, answer::NO_ROUTE).await?;
            return Ok(true);
        };
        let service = {
            let mut rng = fastrand::Rng::new();
            target
                .group
                .pick_service(&pick_context(session), &mut rng)
                .cloned()
        };
        ctx.target = Some(target);
        match service {
            Some(s) if s.unavailable.is_none() && s.has_endpoints() => {
                ctx.service = Some(s);
                Ok(false)
            }
            _ => {
                respond(session, answer::NO_ENDPOINT).await?;
                Ok(true)
            }
        }
    }

    /// Picks an endpoint not yet tried by this request.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let service = ctx
            .service
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no service selected"))?;
        let mut rng = fastrand::Rng::new();
        let pick = service
            .pick(&pick_context(session), &ctx.tried, &mut rng)
            .ok_or_else(|| {
                Error::explain(
                    ErrorType::ConnectNoRoute,
                    "every endpoint failed for this request",
                )
            })?;
        let addr = pick.address;
        // Replacing the guard releases the endpoint of a failed attempt.
        ctx.in_flight = Some(pick.guard);
        if pick.set_cookie.is_some() {
            ctx.set_cookie = pick.set_cookie;
        }
        ctx.tried.push(addr);
        ctx.upstream_start.get_or_insert_with(Instant::now);
        let mut peer = HttpPeer::new(addr, false, String::new());
        let upstream = &service.policy().upstream;
        peer.options.connection_timeout = Some(upstream.connect_timeout);
        peer.options.read_timeout = Some(upstream.read_timeout);
        peer.options.idle_timeout = Some(IDLE_TIMEOUT);
        // HTTPS or h2c backends (`backend-protocol`, `appProtocol`).
        let tls = self.state.tls.current();
        tls.upstreams.configure(&service.id, &mut peer);
        Ok(Box::new(peer))
    }

    /// Adds the forwarding headers; path, query and Host stay as the client sent them.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        let host = request_host(session.req_header());
        if !host.is_empty() {
            if upstream_request.headers.get(header::HOST).is_none() {
                // HTTP/2 clients send no Host header; HTTP/1 backends need one.
                upstream_request.insert_header(header::HOST, host)?;
            }
            upstream_request.insert_header("x-forwarded-host", host)?;
        }
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            let ip = ip_header_value(ip);
            // Earlier proxies' addresses, from every field (a list may be split over several),
            // then the client's: the same value the fast path writes.
            let mut value = Vec::new();
            let prior = upstream_request.headers.get_all("x-forwarded-for");
            crate::fast::forward::append_forwarded_for(
                &mut value,
                prior.iter().map(|v| v.as_bytes()),
                ip.as_bytes(),
            );
            let forwarded_for = HeaderValue::from_bytes(&value)
                .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "X-Forwarded-For"))?;
            upstream_request.insert_header("x-forwarded-for", forwarded_for)?;
            upstream_request.insert_header("x-real-ip", ip)?;
        }
        let proto = if crate::tls::is_tls(session) {
            HeaderValue::from_static("https")
        } else {
            HeaderValue::from_static("http")
        };
        upstream_request.insert_header("x-forwarded-proto", proto)?;
        Ok(())
    }

    /// Adds the affinity cookie when this request established a binding, and HSTS to HTTPS
    /// answers of hosts that ask for it.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if crate::tls::is_tls(session) {
            let tls = self.state.tls.current();
            if let Some(hsts) = tls.policies.hsts(request_host(session.req_header())) {
                upstream_response.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts)?;
            }
        }
        if let Some(cookie) = ctx.set_cookie.take() {
            upstream_response.append_header(header::SET_COOKIE, cookie)?;
        }
        Ok(())
    }

    /// Feeds the answer's status to passive health: 5xx is a failure, anything else a
    /// success. Runs once per answer received from an endpoint.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.attempt_answered(upstream_response.status.as_u16());
        Ok(())
    }

    /// A connect failure counts against the endpoint and is retried on another endpoint of
    /// the same Service while the Service's retry budget lasts. Nothing was sent, so every
    /// method may be retried.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.attempt_failed();
        let retry = ctx.may_retry();
        e.set_retry(retry);
        if retry {
            self.state.metrics.retries.inc();
        }
        e
    }

    /// An error after the connection was made (the request may have reached the endpoint).
    /// Upstream errors count against the endpoint; the request is retried on another endpoint
    /// only when that cannot do harm twice: an idempotent method, a body that was not
    /// streamed past the retry buffer, and no answer sent to the client yet.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let upstream = e.esource() == &ErrorSource::Upstream;
        if upstream {
            ctx.attempt_failed();
        }
        let safe = upstream
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none();
        let retry = safe && ctx.may_retry();
        e.set_retry(retry);
        if retry {
            self.state.metrics.retries.inc();
        }
        e
    }

    /// Answers 502/504 (or the error's own status) with `Server: pier`.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let answer = failure_response(e);
        // Pingora does not reuse the client connection after a failed proxy attempt, so the
        // answer must say `Connection: close` rather than promise keep-alive.
        session.as_downstream_mut().set_keepalive(None);
        if let Some(answer) = answer {
            if let Err(write_err) = respond(session, answer).await {
                tracing::debug!("could not send error response: {write_err}");
            }
        }
        FailToProxy {
            error_code: answer.map_or(0, |a| a.code),
            can_reuse_downstream: false,
        }
    }

    /// Records the request in the metrics.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let code = session.response_written().map_or(0, |r| r.status.as_u16());
        let upstream_time = ctx.upstream_start.map(|start| start.elapsed());
        match &ctx.target {
            Some(t) => self
                .state
                .metrics
                .record_route(&t.label, &t.metrics, code, upstream_time),
            None => self.state.metrics.record_unrouted(code),
        }
        if let Some(started) = ctx.started {
            let req = session.req_header();
            crate::access::log(&crate::access::Entry {
                client: session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip()),
                method: req.method.as_str(),
                host: request_host(req),
                target: req.uri.path_and_query().map_or("/", |p| p.as_str()),
                status: code,
                bytes: session.body_bytes_sent() as u64,
                duration: started.elapsed(),
                upstream: ctx.tried.last().copied(),
                route: ctx.target.as_ref().map(|t| &*t.label),
            });
        }
    }
}
