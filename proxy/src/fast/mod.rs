//! pier's fast path, on pier's listeners ([`crate::listen`]) and Pingora's TLS: HTTP/1.1
//! connections, and HTTP/2 streams on Pingora's HTTP/2 connections ([`stream`]).
//!
//! Pingora's general proxy path is built for every case (HTTP/2, upgrades, streamed bodies,
//! caching, modules) and pays for it on every request: a boxed request future, downstream and
//! upstream halves joined over a channel, a task per pooled upstream connection. Most ingress
//! traffic is the plain case: an HTTP/1.1 request with no body or a small one, to a clear-text
//! HTTP/1.1 endpoint. This module serves that case in one loop per client connection, with
//! heads parsed in place, the upstream request written in one buffer, and upstream
//! connections kept per worker thread ([`pool`]).
//!
//! HTTP/1.1 upgrades (WebSocket) are forwarded, and on `101 Switching Protocols` the client
//! and upstream connections are joined into a tunnel.
//!
//! HTTP/2 connections (TLS with ALPN `h2`, clear text with the preface) are run by Pingora,
//! which hands each stream to [`stream`]: streams without a request body or with a small one
//! announced by `Content-Length`, to a clear-text HTTP/1.1 backend, are exchanged with the same
//! upstream side; the others go to the general path.
//!
//! Everything else (`Expect`, chunked or large request bodies, HTTP/1.0, HTTPS and h2c
//! backends, malformed requests) goes to Pingora's general path with the bytes already read,
//! so behaviour stays the same whichever path serves a request. Routing, balancing, health
//! reporting, retries, HSTS and redirects, metrics and the answers pier writes itself are
//! shared by both paths.

mod answer;
mod chunked;
mod connection;
mod deadline;
mod exchange;
pub(crate) mod forward;
mod head;
mod pool;
mod relay;
mod response;
mod stream;
mod write_buffer;

use crate::accepted::Accepted;
use crate::listen::{ConnectionApp, Serving};
use crate::metrics::ReasonLabels;
use crate::service::PierProxy;
use crate::state::ProxyState;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::ALPN;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use stream::StreamApp;

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The application behind pier's listeners: the fast path, and Pingora's general path for
/// what the fast path does not serve.
pub struct PierApp {
    state: Arc<ProxyState>,
    general: Arc<HttpProxy<PierProxy>>,
    /// HTTP/2 connections, served stream by stream.
    streams: Arc<StreamApp>,
    /// Accept HTTP/2 with prior knowledge on clear-text connections (as `general` does).
    h2c: bool,
}

impl PierApp {
    /// Serves HTTP/1.1 and HTTP/2 streams itself where it can and hands the rest to `general`;
    /// clear-text HTTP/2 with prior knowledge is accepted when `general`'s server options allow
    /// h2c.
    pub fn new(state: Arc<ProxyState>, general: HttpProxy<PierProxy>) -> PierApp {
        let h2c = general.server_options.as_ref().is_some_and(|o| o.h2c);
        let general = Arc::new(general);
        PierApp {
            streams: Arc::new(StreamApp::new(state.clone(), general.clone())),
            state,
            general,
            h2c,
        }
    }

    /// Counts a connection the general path serves, by reason.
    fn count_general(&self, reason: &'static str) {
        self.state
            .metrics
            .general_path
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Serves a clear-text connection that began with the HTTP/2 preface as HTTP/2, `read`
    /// being the bytes read so far (put back to be read again).
    async fn hand_off_h2c(
        self: &Arc<Self>,
        client: Accepted,
        read: BytesMut,
        shutdown: &ShutdownWatch,
    ) {
        match client.into_rewound_stream(&read) {
            Some(stream) => {
                self.streams.process_new(stream, shutdown).await;
            }
            None => tracing::debug!("h2c on a stream that cannot rewind: closed"),
        }
    }

    /// Gives the connection to the general path, `read` being what was read of it so far (the
    /// start of the current request); it stays there until it closes. The loop is Pingora's
    /// HTTP/1 keep-alive loop (`ServerApp for HttpServerApp`), which cannot take bytes already
    /// read on a TLS stream; it keeps the fast path's idle timeout ([`connection::KEEPALIVE`])
    /// and send timeout ([`connection::SEND_TIMEOUT`]).
    /// Pingora's per-connection request limit is not set in pier, so it is left out.
    async fn hand_off(
        self: &Arc<Self>,
        client: Accepted,
        read: BytesMut,
        reason: &'static str,
        shutdown: &ShutdownWatch,
    ) {
        self.count_general(reason);
        let stream = write_buffer::WriteBuffered::wrap(client.into_stream());
        let mut session = ServerSession::new_http1(stream);
        let keepalive = (!*shutdown.borrow()).then_some(connection::KEEPALIVE.as_secs());
        session.set_keepalive(keepalive);
        session.set_write_timeout(Some(connection::SEND_TIMEOUT));
        if !read.is_empty() {
            session.set_pipelined_prefix(read);
        }
        let mut result = self.general.process_new_http(session, shutdown).await;
        while let Some((stream, settings)) = result.map(|r| r.consume()) {
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            session.set_write_timeout(Some(connection::SEND_TIMEOUT));
            result = self.general.process_new_http(session, shutdown).await;
        }
    }
}

impl ConnectionApp for PierApp {
    fn serve(self: Arc<Self>, client: Accepted, shutdown: ShutdownWatch) -> Serving {
        crate::listen::boxed_in_place(move || async move {
            match client {
                Accepted::Tls(stream) if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) => {
                    // Pingora gives a stream back only to reuse an HTTP/1 connection.
                    self.streams.process_new(stream, &shutdown).await;
                }
                client => {
                    // Clear-text HTTP/2 is recognised by its preface in the first bytes read.
                    let sniff_h2c = !client.is_tls() && self.h2c;
                    connection::serve(&self, client, sniff_h2c, &shutdown).await;
                }
            }
        })
    }

    async fn cleanup(&self) {
        self.general.http_cleanup().await;
    }
}
