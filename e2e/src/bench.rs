//! Helpers shared by the benchmarks under `e2e/bench/`: percentiles, polling until a change is
//! answered, peak memory of a process, a bounded background load, and the machine's
//! description.

use crate::client::KeepAliveConnection;
use crate::pier::Pier;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// p50, p99 and max of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Stats {
    /// Nearest-rank percentiles of `samples` (all zero when empty).
    pub fn of(samples: &[Duration]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |p: f64| {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
            ms(sorted[rank - 1])
        };
        Stats {
            n: sorted.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: sorted.last().copied().map_or(0.0, ms),
        }
    }

    /// `| n | p50 | p99 | max |` cells (one decimal), for Markdown tables.
    pub fn cells(&self) -> String {
        format!(
            "{} | {:.1} | {:.1} | {:.1}",
            self.n, self.p50_ms, self.p99_ms, self.max_ms
        )
    }

    /// As JSON: `{"n", "p50_ms", "p99_ms", "max_ms"}` (three decimals).
    pub fn to_json(&self) -> Value {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        json!({ "n": self.n, "p50_ms": r(self.p50_ms), "p99_ms": r(self.p99_ms), "max_ms": r(self.max_ms) })
    }
}

/// Median, min and max of plain numbers (e.g. start-up seconds over runs).
pub fn spread(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Value::Null;
    }
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    };
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    json!({ "median": r(median), "min": r(sorted[0]), "max": r(sorted[sorted.len() - 1]), "n": sorted.len() })
}

/// Polls `host` `/` through the proxy every millisecond until echo backend `name` answers 200;
/// the time since `started`. `Err` after `within`.
pub async fn until_answered_by(
    pier: &Pier,
    host: &str,
    name: &str,
    started: Instant,
    within: Duration,
) -> Result<Duration, String> {
    loop {
        if let Ok(r) = pier.get(host, "/").await {
            if r.status == 200 && r.echo_name().as_deref() == Some(name) {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > within {
            return Err(format!("{host} not answered by {name} within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Polls `host` `/` through the proxy every millisecond until it answers `status`; the time
/// since `started`. `Err` after `within`.
pub async fn until_status(
    pier: &Pier,
    host: &str,
    status: u16,
    started: Instant,
    within: Duration,
) -> Result<Duration, String> {
    loop {
        if let Ok(r) = pier.get(host, "/").await {
            if r.status.as_u16() == status {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > within {
            return Err(format!("{host} did not answer {status} within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Peak resident set size (`VmHWM` of `/proc/PID/status`) in KiB; `None` off Linux or when the
/// process is gone.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM")
}

/// A size field of `/proc/PID/status` (`VmRSS`, `VmHWM`, …) in KiB; `None` off Linux or when
/// the process is gone.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The machine, for the figures' context: CPUs, CPU model, kernel.
pub fn machine() -> Value {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "nproc": nproc, "cpu_model": cpu_model, "kernel": kernel })
}

/// Settings of a [`BackgroundLoad`].
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Where to send (the proxy's HTTP listener).
    pub addr: SocketAddr,
    /// `Host` header.
    pub host: String,
    /// Keep-alive connections, each sending one request at a time.
    pub connections: usize,
    /// Total requests per second over all connections.
    pub rate: u64,
    /// Hard limit: the load stops by itself after this long even if never stopped.
    pub max_duration: Duration,
}

/// What a background load saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Answers with status 200.
    pub ok: u64,
    /// Answers with any other status.
    pub non_200: u64,
    /// Connect errors, closed connections and timeouts (the connection is then replaced).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    ok: AtomicU64,
    non_200: AtomicU64,
    errors: AtomicU64,
}

/// A paced load of `GET /` over a few keep-alive connections, on tokio tasks; bounded by
/// [`LoadSpec::max_duration`] (and therefore in requests: rate × duration).
pub struct BackgroundLoad {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BackgroundLoad {
    /// Starts the connections; they send until [`BackgroundLoad::stop`] or the hard limit.
    pub fn start(spec: &LoadSpec) -> BackgroundLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let connections = spec.connections.max(1);
        let per_connection = (spec.rate.max(1) as f64 / connections as f64).max(0.001);
        let period = Duration::from_secs_f64(1.0 / per_connection);
        let deadline = Instant::now() + spec.max_duration;
        let tasks = (0..connections)
            .map(|_| {
                let stop = stop.clone();
                let counters = counters.clone();
                let spec = spec.clone();
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(period);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut conn: Option<KeepAliveConnection> = None;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        ticker.tick().await;
                        if conn.is_none() {
                            match KeepAliveConnection::connect(spec.addr).await {
                                Ok(c) => conn = Some(c),
                                Err(_) => {
                                    counters.requests.fetch_add(1, Ordering::Relaxed);
                                    counters.errors.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                            }
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        counters.requests.fetch_add(1, Ordering::Relaxed);
                        match c.get(&spec.host, "/").await {
                            Ok(r) if r.status == 200 => {
                                counters.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {
                                counters.non_200.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                counters.errors.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        BackgroundLoad {
            stop,
            counters,
            tasks,
        }
    }

    /// What was counted so far.
    pub fn report(&self) -> LoadReport {
        LoadReport {
            requests: self.counters.requests.load(Ordering::Relaxed),
            ok: self.counters.ok.load(Ordering::Relaxed),
            non_200: self.counters.non_200.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops every connection (after its request in flight) and returns the counts.
    pub async fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.report()
    }
}

impl Drop for BackgroundLoad {
    fn drop(&mut self) {
        // Dropped without `stop` (e.g. a panicking benchmark): the tasks end after their
        // request in flight.
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Stats::of(&samples);
        assert_eq!(s.n, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(Stats::of(&[]).n, 0);
    }

    #[test]
    fn spread_of_values() {
        let v = spread(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!(v["median"], 2.5);
        assert_eq!(v["min"], 1.0);
        assert_eq!(v["max"], 10.0);
        assert!(spread(&[]).is_null());
    }
}
