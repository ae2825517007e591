//! Passive outlier ejection: an endpoint whose real requests fail (connect errors, 5xx)
//! `consecutive_failures` times in a row is taken out of rotation for a while. Each further
//! ejection lasts one base time longer (up to ten), so a flapping endpoint stays out longer.
//!
//! Everything is atomics: the hot path reads one `AtomicBool` unless the endpoint is ejected.

use super::Transition;
use crate::table::OutlierPolicy;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Longest ejection, in multiples of the base time.
const MAX_EJECTION_MULTIPLIER: u32 = 10;

/// Failure counting and ejection of one endpoint.
#[derive(Debug)]
pub struct PassiveState {
    /// Times below are stored as milliseconds since this instant (atomics hold no `Instant`).
    born: Instant,
    failures: AtomicU32,
    /// Set while ejected; checked first so that healthy endpoints cost one load.
    ejected: AtomicBool,
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
}

impl PassiveState {
    /// A state with no failures.
    pub fn new(now: Instant) -> PassiveState {
        PassiveState {
            born: now,
            failures: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.born).as_millis() as u64
    }

    /// Whether the endpoint is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected.load(Ordering::Relaxed)
            && self.ms(now) < self.ejected_until_ms.load(Ordering::Relaxed)
    }

    /// Remaining ejection time, if ejected.
    pub fn ejected_for(&self, now: Instant) -> Option<Duration> {
        if !self.is_ejected(now) {
            return None;
        }
        let left = self
            .ejected_until_ms
            .load(Ordering::Relaxed)
            .saturating_sub(self.ms(now));
        Some(Duration::from_millis(left))
    }

    /// How many times the endpoint was ejected.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// The current run of failures.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// A request succeeded: the run of failures ends. Returns [`Transition::Returned`] when
    /// this closes an ejection that has run out (so it is reported once).
    pub fn success(&self, now: Instant) -> Option<Transition> {
        // Load first: a store on every success would bounce the cache line between cores.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        self.expire(now)
    }

    /// Clears an ejection whose time has passed; reports it once.
    pub fn expire(&self, now: Instant) -> Option<Transition> {
        if self.ejected.load(Ordering::Relaxed) && !self.is_ejected(now) {
            return self.clear();
        }
        None
    }

    /// Ends an ejection early (an active check succeeded).
    pub fn uneject(&self) -> Option<Transition> {
        if self.ejected.load(Ordering::Relaxed) {
            return self.clear();
        }
        None
    }

    fn clear(&self) -> Option<Transition> {
        self.ejected
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| Transition::Returned)
    }

    /// A request failed (connect error, 5xx, broken connection). Ejects the endpoint when the
    /// run of failures reaches the policy's threshold and `may_eject()` allows it (the cap on
    /// the ejected share of the Service, evaluated only then because it scans the Service).
    pub fn failure(
        &self,
        policy: &OutlierPolicy,
        now: Instant,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Transition> {
        let run = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if policy.consecutive_failures == 0
            || run < policy.consecutive_failures
            || self.is_ejected(now)
            || !may_eject()
        {
            return None;
        }
        let n = self
            .ejections
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
            .min(MAX_EJECTION_MULTIPLIER);
        let until = self.ms(now) + (policy.base_ejection_time * n).as_millis() as u64;
        self.ejected_until_ms.store(until, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        // Only the thread that flips the flag reports; a concurrent one returns None.
        self.ejected
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| Transition::Ejected)
    }
}

/// Whether one more endpoint may be ejected when `ejected` of `total` already are:
/// the ejected share must stay within `max_percent`.
pub fn within_cap(ejected: usize, total: usize, max_percent: u32) -> bool {
    (ejected + 1) * 100 <= total * max_percent as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    fn policy() -> OutlierPolicy {
        OutlierPolicy {
            consecutive_failures: 3,
            max_ejection_percent: 50,
            base_ejection_time: Duration::from_secs(10),
        }
    }

    fn fail(s: &PassiveState, n: u32) -> Option<Transition> {
        let mut last = None;
        for _ in 0..n {
            last = s.failure(&policy(), Instant::now(), || true).or(last);
        }
        last
    }

    #[tokio::test(start_paused = true)]
    async fn ejects_after_consecutive_failures_and_returns_after_the_base_time() {
        let s = PassiveState::new(Instant::now());
        assert_eq!(fail(&s, 2), None);
        assert_eq!(s.success(Instant::now()), None);
        assert_eq!(fail(&s, 2), None, "a success resets the run");
        assert_eq!(fail(&s, 1), Some(Transition::Ejected));
        assert!(s.is_ejected(Instant::now()));
        advance(Duration::from_millis(9_900)).await;
        assert!(s.is_ejected(Instant::now()));
        advance(Duration::from_millis(200)).await;
        assert!(!s.is_ejected(Instant::now()));
        assert_eq!(s.expire(Instant::now()), Some(Transition::Returned));
        assert_eq!(s.expire(Instant::now()), None, "reported once");
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_ejections_last_longer_up_to_ten_base_times() {
        let s = PassiveState::new(Instant::now());
        let mut lengths = Vec::new();
        for _ in 0..12 {
            assert_eq!(fail(&s, 3), Some(Transition::Ejected));
            lengths.push(s.ejected_for(Instant::now()).map(|d| d.as_secs()));
            advance(Duration::from_secs(101)).await;
            assert_eq!(s.expire(Instant::now()), Some(Transition::Returned));
        }
        assert_eq!(&lengths[..3], &[Some(10), Some(20), Some(30)]);
        assert_eq!(lengths[11], Some(100), "capped at ten base times");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_and_zero_threshold_prevent_ejection() {
        let s = PassiveState::new(Instant::now());
        for _ in 0..10 {
            assert_eq!(s.failure(&policy(), Instant::now(), || false), None);
        }
        assert!(!s.is_ejected(Instant::now()));
        let off = OutlierPolicy {
            consecutive_failures: 0,
            ..policy()
        };
        for _ in 0..10 {
            assert_eq!(s.failure(&off, Instant::now(), || true), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_active_check_success_ends_the_ejection() {
        let s = PassiveState::new(Instant::now());
        assert_eq!(fail(&s, 3), Some(Transition::Ejected));
        assert_eq!(s.uneject(), Some(Transition::Returned));
        assert!(!s.is_ejected(Instant::now()));
        assert_eq!(s.uneject(), None);
    }

    #[test]
    fn cap_keeps_the_ejected_share_within_the_percentage() {
        assert!(within_cap(0, 3, 50));
        assert!(!within_cap(1, 3, 50), "2 of 3 is above 50 %");
        assert!(
            !within_cap(0, 1, 50),
            "a lone endpoint is never ejected at 50 %"
        );
        assert!(within_cap(0, 1, 100));
        assert!(within_cap(4, 10, 50));
        assert!(!within_cap(5, 10, 50));
        assert!(!within_cap(0, 10, 0));
    }
}
