//! Builds and runs the Pingora server hosting the proxy service.

use crate::fast::PierApp;
use crate::health::probe::NetProber;
use crate::health::scheduler::HealthService;
use crate::listen::{ListenError, Listener, ListeningService, TlsListener};
use crate::service::PierProxy;
use crate::shutdown::{self, Relay, Stop};
use crate::state::ProxyState;
use crate::tls::TlsError;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use std::sync::Arc;
use std::time::Duration;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The HTTPS listener could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The thread running Pingora could not be started.
    #[error("cannot start the proxy thread: {0}")]
    Thread(std::io::Error),
}

/// How the data plane listens and shuts down.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Plain HTTP listener address, e.g. `0.0.0.0:8080`.
    pub http_listen: String,
    /// HTTPS listener address, e.g. `0.0.0.0:8443`; `None`: no HTTPS listener.
    pub https_listen: Option<String>,
    /// How long the kernel may hold a new connection until its first bytes arrive before
    /// handing it to pier anyway (`TCP_DEFER_ACCEPT`); zero: at once. See
    /// [`crate::listen::defer_accept`].
    pub defer_accept: Duration,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// On SIGTERM, how long listeners keep accepting before they close.
    pub shutdown_delay: Duration,
    /// After that, how long in-flight requests may take before the process exits.
    pub shutdown_timeout: Duration,
}

/// Runs the proxy until the process is told to stop (SIGTERM: graceful; SIGINT or a second
/// signal: fast; see [`crate::shutdown`]). Blocks the calling thread, which handles the
/// signals while Pingora runs on its own thread; the routing table is whatever is published
/// to `state`. `on_listening` is called once the listeners are bound (connections from then
/// on wait in the kernel's queue until the proxy takes them, moments later). Fails before
/// serving only if a listener cannot be bound or the HTTPS listener cannot be configured.
pub fn run(
    settings: &ServerSettings,
    state: Arc<ProxyState>,
    on_listening: impl FnOnce(),
) -> Result<(), ServerError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let (built_tx, built_rx) = std::sync::mpsc::sync_channel::<Result<(), ServerError>>(1);
    // Dropped when the server thread ends, however it ends (a panic included).
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let pingora = {
        let (settings, state) = (settings.clone(), state.clone());
        std::thread::Builder::new()
            .name("pier-proxy".into())
            .spawn(move || {
                let _ended = ended_tx;
                match build(&settings, state) {
                    Ok(server) => {
                        let _ = built_tx.send(Ok(()));
                        server.run(RunArgs {
                            shutdown_signal: Box::new(Relay(stop_rx)),
                        });
                    }
                    Err(e) => {
                        let _ = built_tx.send(Err(e));
                    }
                }
            })
            .map_err(ServerError::Thread)?
    };
    match built_rx.recv() {
        Ok(Ok(())) => on_listening(),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    }
    if let Err(e) = shutdown::supervise(
        settings.shutdown_delay,
        settings.shutdown_timeout,
        &state,
        stop_tx,
        ended_rx,
    ) {
        tracing::error!("cannot handle signals: {e}");
        let _ = pingora.join();
    }
    Ok(())
}

/// The Pingora server with the proxy and health-check services, its listeners bound.
fn build(settings: &ServerSettings, state: Arc<ProxyState>) -> Result<Server, ServerError> {
    let conf = ServerConf {
        threads: settings.threads.max(1),
        // Listeners close when pier fires the shutdown signal; pier itself returns once the
        // drain is done, so this is only the upper bound of Pingora's own wait.
        grace_period_seconds: Some(settings.shutdown_timeout.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        // pier bounds retries itself by each Service's budget (at most 10 retries, see
        // `PierProxy::fail_to_connect`); this only has to allow the largest.
        max_retries: 11,
        // One worker: a single-threaded runtime, which spends far less per request on
        // scheduling than the work-stealing one (see docs/performance.md). More workers: the
        // work-stealing runtime, because with one single-threaded runtime per worker a pooled
        // upstream connection released on one worker and taken by another is dropped instead
        // of reused ("failed to acquire reusable stream").
        work_stealing: settings.threads > 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let tls_settings = match &settings.https_listen {
        Some(_) => Some(state.tls.listener_settings()?),
        None => None,
    };
    let checks = HealthService::new(&state.health, Arc::new(NetProber));
    // Pingora's general proxy path, for what the fast path hands over.
    let mut general =
        pingora::proxy::http_proxy(&server.configuration, PierProxy::new(state.clone()));
    // Plain-text HTTP/2 (prior knowledge) beside HTTP/1.1 on the same port.
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    general.server_options = Some(options);
    let failures = state.metrics.tls_handshake_failures.clone();
    let app = PierApp::new(state, general);
    let defer = settings.defer_accept;
    let mut listeners = vec![Listener::bind(&settings.http_listen, None, defer)?];
    if let (Some(addr), Some(settings)) = (&settings.https_listen, tls_settings) {
        // Same service, so HTTP and HTTPS share routing, pools and metrics.
        let tls = TlsListener { settings, failures };
        listeners.push(Listener::bind(addr, Some(tls), defer)?);
    }
    server.add_service(ListeningService::new("pier http", listeners, app));
    server.add_service(pingora::services::background::background_service(
        "pier health checks",
        checks,
    ));
    Ok(server)
}
