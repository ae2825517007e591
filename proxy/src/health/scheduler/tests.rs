//! Scheduler tests on paused time: thresholds, jitter, the concurrency cap and target churn.

use super::*;
use crate::health::probe::Prober;
use crate::lb::EndpointRegistry;
use crate::table::Endpoint;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A prober whose answers the test sets; it records when each address was probed.
#[derive(Default)]
struct FakeProber {
    down: Mutex<HashSet<SocketAddr>>,
    probes: Mutex<Vec<(SocketAddr, Instant)>>,
    /// Time each probe takes.
    latency: Duration,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

#[async_trait]
impl Prober for FakeProber {
    async fn probe(&self, address: SocketAddr, _path: Option<&str>) -> bool {
        let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now_running, Ordering::SeqCst);
        self.probes
            .lock()
            .expect("probes")
            .push((address, Instant::now()));
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        !self.down.lock().expect("down").contains(&address)
    }
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, (i / 250) as u8, (i % 250) as u8 + 1], 8080))
}

fn check(interval_ms: u64) -> ActiveCheck {
    ActiveCheck {
        path: Some("/healthz".into()),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(100),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
    }
}

/// `n` endpoints of one Service with fresh states.
fn targets(n: u32, interval_ms: u64) -> Vec<CheckTarget> {
    let registry = EndpointRegistry::default();
    let mut b = EndpointRegistry::next_generation(&registry);
    let svc: Arc<str> = Arc::from("ns/svc:80");
    (0..n)
        .map(|i| {
            let ep = Endpoint {
                address: addr(i),
                weight: 1,
                ready: true,
                serving: true,
                terminating: false,
            };
            CheckTarget {
                service: svc.clone(),
                address: ep.address,
                check: check(interval_ms),
                state: b.state(&svc, &ep, std::time::Instant::now()),
            }
        })
        .collect()
}

fn start(prober: Arc<FakeProber>, set: Vec<CheckTarget>, limit: usize) -> HealthChecker {
    let checker = HealthChecker::default();
    checker.update(set);
    tokio::spawn(run(checker.subscribe(), prober, limit, 7));
    checker
}

#[tokio::test(start_paused = true)]
async fn failing_endpoint_leaves_within_interval_times_threshold_and_comes_back() {
    let prober = Arc::new(FakeProber::default());
    let set = targets(2, 1000);
    let (bad, good) = (set[0].state.clone(), set[1].state.clone());
    let _checker = start(prober.clone(), set, 8);
    // First checks happen within min(interval, 1 s).
    tokio::time::sleep(Duration::from_millis(1001)).await;
    assert!(bad.health.active.is_healthy() && good.health.active.is_healthy());

    prober.down.lock().expect("down").insert(addr(0));
    let failed_at = Instant::now();
    while bad.health.active.is_healthy() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Two checks (threshold) at most 1.1 intervals apart, plus the one already scheduled.
    let took = failed_at.elapsed();
    assert!(
        took <= Duration::from_millis(2 * 1100 + 10),
        "took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "needs two failures: {took:?}"
    );
    assert!(good.health.active.is_healthy());

    prober.down.lock().expect("down").clear();
    let back_at = Instant::now();
    while !bad.health.active.is_healthy() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(back_at.elapsed() <= Duration::from_millis(1110));
}

#[tokio::test(start_paused = true)]
async fn first_checks_are_spread_and_intervals_jittered() {
    let prober = Arc::new(FakeProber::default());
    let _checker = start(prober.clone(), targets(200, 5000), 1000);
    tokio::time::sleep(Duration::from_millis(20_000)).await;
    let probes = prober.probes.lock().expect("probes").clone();
    let t0 = probes.iter().map(|(_, t)| *t).min().expect("probed");
    let firsts: HashSet<Duration> = (0..200)
        .filter_map(|i| probes.iter().find(|(a, _)| *a == addr(i)))
        .map(|(_, t)| t.duration_since(t0))
        .collect();
    assert!(firsts.len() > 150, "first checks bunched: {}", firsts.len());
    assert!(firsts.iter().all(|d| *d <= Duration::from_secs(1)));
    // Gaps between checks of one endpoint vary within ±10 % of the interval.
    let times: Vec<Instant> = probes
        .iter()
        .filter(|(a, _)| *a == addr(3))
        .map(|(_, t)| *t)
        .collect();
    assert!(times.len() >= 3);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps
        .iter()
        .all(|g| *g >= Duration::from_millis(4500) && *g <= Duration::from_millis(5500)));
    assert!(gaps.windows(2).any(|w| w[0] != w[1]), "no jitter: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_capped_and_every_endpoint_is_checked() {
    let prober = Arc::new(FakeProber {
        latency: Duration::from_millis(50),
        ..FakeProber::default()
    });
    let _checker = start(prober.clone(), targets(2000, 1000), 16);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let max = prober.max_running.load(Ordering::SeqCst);
    assert!(max <= 16, "{max} checks ran at once");
    assert!(max >= 8, "the cap should be used: {max}");
    let probes = prober.probes.lock().expect("probes").clone();
    let seen: HashSet<SocketAddr> = probes.iter().map(|(a, _)| *a).collect();
    assert_eq!(seen.len(), 2000);
}

#[tokio::test(start_paused = true)]
async fn removed_targets_are_no_longer_checked_and_new_ones_are() {
    let prober = Arc::new(FakeProber::default());
    let set = targets(3, 500);
    let checker = start(prober.clone(), set.clone(), 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    checker.update(vec![set[0].clone()]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: HashSet<SocketAddr> = prober
        .probes
        .lock()
        .expect("probes")
        .iter()
        .filter(|(_, t)| *t > cut)
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(late, HashSet::from([addr(0)]));
    // A timed-out probe counts as a failure.
    let stuck = Arc::new(StuckProber(AtomicBool::new(false)));
    let checker = HealthChecker::default();
    let one = targets(1, 500);
    checker.update(one.clone());
    tokio::spawn(run(checker.subscribe(), stuck.clone(), 1, 1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(stuck.0.load(Ordering::SeqCst));
    assert!(one[0].state.health.active.is_checked());
    assert!(!one[0].state.health.active.is_healthy());
}

/// Never answers.
struct StuckProber(AtomicBool);

#[async_trait]
impl Prober for StuckProber {
    async fn probe(&self, _address: SocketAddr, _path: Option<&str>) -> bool {
        self.0.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
        true
    }
}
