//! One scheduler for the active checks of every endpoint of every Service.
//!
//! Each published table hands over its check targets through a `watch` channel. Every
//! endpoint is checked once per interval (± 10 % jitter, counted from the end of its previous
//! check, so checks of one endpoint never overlap); a new endpoint is checked within
//! `min(interval, 1s)` at a random offset, and at most `limit` checks run at once. So a table
//! with 10,000 endpoints spreads its checks instead of opening 10,000 connections at once.

use super::probe::Prober;
use super::{metrics, Transition};
use crate::lb::EndpointState;
use crate::table::ActiveCheck;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Checks that may run at the same time.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// New endpoints are first checked within this time (or the interval, if shorter).
const FIRST_CHECK_SPREAD: Duration = Duration::from_secs(1);

/// One endpoint to check, with the live state the verdict goes to.
#[derive(Debug, Clone)]
pub struct CheckTarget {
    /// `namespace/name:port` of the Service.
    pub service: Arc<str>,
    /// The endpoint.
    pub address: SocketAddr,
    /// How to check it.
    pub check: ActiveCheck,
    /// The endpoint's live state (shared with the balancers).
    pub state: Arc<EndpointState>,
}

/// The check targets of the table in effect.
pub type Targets = Arc<Vec<CheckTarget>>;

/// Where published tables leave their check targets; the scheduler follows them.
#[derive(Debug)]
pub struct HealthChecker {
    tx: watch::Sender<Targets>,
}

impl Default for HealthChecker {
    fn default() -> Self {
        HealthChecker {
            tx: watch::Sender::new(Arc::new(Vec::new())),
        }
    }
}

impl HealthChecker {
    /// Replaces the set of endpoints to check (works without a runtime).
    pub fn update(&self, targets: Vec<CheckTarget>) {
        self.tx.send_replace(Arc::new(targets));
    }

    /// Follows the targets.
    pub fn subscribe(&self) -> watch::Receiver<Targets> {
        self.tx.subscribe()
    }
}

type Key = (Arc<str>, SocketAddr);

/// Runs checks until the sender of `targets` is gone. `seed` fixes the jitter in tests.
pub async fn run(
    mut targets: watch::Receiver<Targets>,
    prober: Arc<dyn Prober>,
    limit: usize,
    seed: u64,
) {
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Key, u64)>();
    let mut rng = fastrand::Rng::with_seed(seed);
    // The current targets, each with the token of its one outstanding check.
    let mut entries: HashMap<Key, (CheckTarget, u64)> = HashMap::new();
    let mut queue: BinaryHeap<Reverse<(Instant, u64, Key)>> = BinaryHeap::new();
    let mut next_token = 0u64;
    let mut apply = |set: &Targets,
                     entries: &mut HashMap<Key, (CheckTarget, u64)>,
                     queue: &mut BinaryHeap<Reverse<(Instant, u64, Key)>>,
                     rng: &mut fastrand::Rng| {
        let now = Instant::now();
        let mut next: HashMap<Key, (CheckTarget, u64)> = HashMap::with_capacity(set.len());
        for t in set.iter() {
            let key = (t.service.clone(), t.address);
            if next.contains_key(&key) {
                continue;
            }
            let token = match entries.remove(&key) {
                Some((_, token)) => token,
                None => {
                    next_token += 1;
                    let spread = t.check.interval.min(FIRST_CHECK_SPREAD);
                    let offset = spread.mul_f64(rng.f64());
                    queue.push(Reverse((now + offset, next_token, key.clone())));
                    next_token
                }
            };
            next.insert(key, (t.clone(), token));
        }
        // Targets left in `entries` are gone; their queued checks are skipped by token.
        *entries = next;
    };
    let initial = targets.borrow_and_update().clone();
    apply(&initial, &mut entries, &mut queue, &mut rng);
    loop {
        let next_due = queue.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            changed = targets.changed() => {
                if changed.is_err() {
                    return;
                }
                let set = targets.borrow_and_update().clone();
                apply(&set, &mut entries, &mut queue, &mut rng);
            }
            Some((key, token)) = done_rx.recv() => {
                if let Some((t, current)) = entries.get(&key) {
                    if *current == token {
                        let wait = t.check.interval.mul_f64(0.9 + 0.2 * rng.f64());
                        queue.push(Reverse((Instant::now() + wait, token, key)));
                    }
                }
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while let Some(Reverse((at, token, key))) = queue.peek().cloned() {
                    if at > now {
                        break;
                    }
                    queue.pop();
                    let Some((t, current)) = entries.get(&key) else { continue };
                    if *current != token {
                        continue;
                    }
                    let (t, permits, prober, done) =
                        (t.clone(), permits.clone(), prober.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        if let Ok(_permit) = permits.acquire_owned().await {
                            check_once(&t, prober.as_ref()).await;
                        }
                        let _ = done.send((key, token));
                    });
                }
            }
        }
    }
}

/// Runs one check and applies the verdict.
async fn check_once(t: &CheckTarget, prober: &dyn Prober) {
    let probe = prober.probe(t.address, t.check.path.as_deref());
    let ok = tokio::time::timeout(t.check.timeout, probe)
        .await
        .unwrap_or(false);
    metrics().check_ran();
    let health = &t.state.health;
    if let Some(change) = health.active.record(ok, &t.check) {
        metrics().report(&t.service, t.address, change);
    }
    // A passed check ends a passive ejection early: the endpoint has proven it is back.
    if ok && health.passive.uneject() == Some(Transition::Returned) {
        metrics().report(&t.service, t.address, Transition::Returned);
    }
}

/// The scheduler as a Pingora background service (its own runtime, stops on shutdown).
pub struct HealthService {
    targets: watch::Receiver<Targets>,
    prober: Arc<dyn Prober>,
}

impl HealthService {
    /// A service checking whatever `checker` is given, with `prober`.
    pub fn new(checker: &HealthChecker, prober: Arc<dyn Prober>) -> HealthService {
        HealthService {
            targets: checker.subscribe(),
            prober,
        }
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let checks = run(
            self.targets.clone(),
            self.prober.clone(),
            DEFAULT_CONCURRENCY,
            fastrand::u64(..),
        );
        tokio::select! {
            _ = checks => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests;
