//! Graceful shutdown around Pingora's server loop.
//!
//! Pingora closes its listeners the moment its shutdown signal fires, then sleeps a fixed
//! grace period whether requests are in flight or not, and ignores further signals. So pier
//! keeps the signals itself: the first SIGTERM fails `/readyz` at once while the listeners
//! keep serving for the shutdown delay (load balancers notice), then Pingora is told to stop
//! accepting, and pier returns as soon as no request is in flight (or the shutdown timeout
//! passes). A second signal, or SIGINT, returns at once.

use crate::state::ProxyState;
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// How often the drain checks the number of requests in flight.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// What pier tells Pingora to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Close the listeners, let in-flight requests finish.
    Graceful,
    /// Stop everything now.
    Fast,
}

/// Pingora's shutdown signal, fired by [`supervise`] instead of by Unix signals.
pub(crate) struct Relay(pub(crate) watch::Receiver<Option<Stop>>);

#[async_trait]
impl ShutdownSignalWatch for Relay {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        loop {
            let stop = *rx.borrow_and_update();
            match stop {
                Some(Stop::Graceful) => return ShutdownSignal::GracefulTerminate,
                Some(Stop::Fast) => return ShutdownSignal::FastShutdown,
                None => {}
            }
            if rx.changed().await.is_err() {
                return ShutdownSignal::FastShutdown;
            }
        }
    }
}

/// Runs the shutdown sequence on the calling thread until it is time to return (see the
/// module doc). `pingora_ended` completes when the thread running the server ends (its sender
/// is dropped there), which also ends this.
pub(crate) fn supervise(
    delay: Duration,
    timeout: Duration,
    state: &ProxyState,
    stop: watch::Sender<Option<Stop>>,
    pingora_ended: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {
                stop.send_replace(Some(Stop::Fast));
                return Ok(());
            }
            _ = pingora_ended => return Ok(()),
        }
        state.start_draining();
        tracing::info!(
            delay_s = delay.as_secs_f64(),
            "SIGTERM: /readyz fails now; listeners close after the shutdown delay"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => return fast(&stop),
            _ = int.recv() => return fast(&stop),
        }
        stop.send_replace(Some(Stop::Graceful));
        tracing::info!(
            in_flight = state.requests_in_flight(),
            "listeners closing; draining in-flight requests"
        );
        let deadline = Instant::now() + timeout;
        // Two idle polls in a row: a request read just as the listeners closed is counted.
        let mut idle_polls = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_POLL) => {}
                _ = term.recv() => return fast(&stop),
                _ = int.recv() => return fast(&stop),
            }
            if state.requests_in_flight() == 0 {
                idle_polls += 1;
                if idle_polls >= 2 {
                    tracing::info!("drained; exiting");
                    return Ok(());
                }
            } else {
                idle_polls = 0;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    in_flight = state.requests_in_flight(),
                    "shutdown timeout reached with requests in flight; exiting"
                );
                return Ok(());
            }
        }
    })
}

fn fast(stop: &watch::Sender<Option<Stop>>) -> std::io::Result<()> {
    tracing::info!("second signal: exiting at once");
    stop.send_replace(Some(Stop::Fast));
    Ok(())
}
