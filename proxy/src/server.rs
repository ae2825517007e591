//! Builds and runs the Pingora server hosting the proxy service.

use crate::service::PierProxy;
use crate::state::ProxyState;
use crate::tls::TlsError;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use std::sync::Arc;
use std::time::Duration;

/// How the data plane listens and shuts down.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Plain HTTP listener address, e.g. `0.0.0.0:8080`.
    pub http_listen: String,
    /// HTTPS listener address, e.g. `0.0.0.0:8443`; `None`: no HTTPS listener.
    pub https_listen: Option<String>,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// On SIGTERM, how long listeners keep accepting before they close.
    pub shutdown_delay: Duration,
    /// After that, how long in-flight requests may take before the process exits.
    pub shutdown_timeout: Duration,
}

/// Runs the proxy until the process is told to stop (SIGTERM: graceful; SIGINT: fast).
/// Blocks the calling thread; the routing table is whatever is published to `state`.
/// Fails before serving only if the HTTPS listener cannot be configured.
pub fn run(settings: &ServerSettings, state: Arc<ProxyState>) -> Result<(), TlsError> {
    let conf = ServerConf {
        threads: settings.threads.max(1),
        grace_period_seconds: Some(settings.shutdown_delay.as_secs()),
        graceful_shutdown_timeout_seconds: Some(settings.shutdown_timeout.as_secs()),
        // pier bounds retries itself (see `PierProxy::fail_to_connect`).
        max_retries: 4,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let tls_settings = match &settings.https_listen {
        Some(_) => Some(state.tls.listener_settings()?),
        None => None,
    };
    let mut http = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        PierProxy::new(state),
        "pier http",
    );
    if let Some(app) = http.app_logic_mut() {
        // Plain-text HTTP/2 (prior knowledge) beside HTTP/1.1 on the same port.
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        app.server_options = Some(options);
    }
    http.add_tcp(&settings.http_listen);
    if let (Some(addr), Some(tls)) = (&settings.https_listen, tls_settings) {
        // Same service, so HTTP and HTTPS share routing, pools and metrics.
        http.add_tls_with_settings(addr, None, tls);
    }
    server.add_service(http);
    server.run(RunArgs::default());
    Ok(())
}
