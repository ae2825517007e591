//! The verdict of active checks on one endpoint: consecutive successes and failures against
//! the healthy and unhealthy thresholds.
//!
//! Only the scheduler writes this state (one check of an endpoint at a time), the balancers
//! only read `healthy`, so plain atomics with relaxed ordering suffice.

use super::Transition;
use crate::table::ActiveCheck;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Active-check state of one endpoint. A new endpoint is unchecked, which counts as not
/// healthy: when checks are configured it gets traffic only after its first passed check
/// (or in panic mode).
#[derive(Debug, Default)]
pub struct ActiveState {
    healthy: AtomicBool,
    checked: AtomicBool,
    successes: AtomicU32,
    failures: AtomicU32,
}

impl ActiveState {
    /// Whether the last verdict was healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether any check has completed.
    pub fn is_checked(&self) -> bool {
        self.checked.load(Ordering::Relaxed)
    }

    /// Records one check result; returns the transition it caused, if any. The first result of
    /// an unchecked endpoint decides at once, so a new endpoint is not held back for
    /// `healthy_threshold` intervals; later flips need the thresholds.
    pub fn record(&self, ok: bool, check: &ActiveCheck) -> Option<Transition> {
        let first = !self.checked.swap(true, Ordering::Relaxed);
        let (streak, other) = if ok {
            (&self.successes, &self.failures)
        } else {
            (&self.failures, &self.successes)
        };
        other.store(0, Ordering::Relaxed);
        let run = streak.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let healthy = self.is_healthy();
        let flip = if ok {
            !healthy && (first || run >= check.healthy_threshold)
        } else {
            (healthy && run >= check.unhealthy_threshold) || first
        };
        if !flip {
            return None;
        }
        self.healthy.store(ok, Ordering::Relaxed);
        Some(if ok {
            Transition::Healthy
        } else {
            Transition::Unhealthy
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(healthy: u32, unhealthy: u32) -> ActiveCheck {
        ActiveCheck {
            path: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
        }
    }

    #[test]
    fn the_first_result_decides_then_thresholds_apply() {
        let c = check(2, 3);
        let s = ActiveState::default();
        assert!(!s.is_healthy() && !s.is_checked());
        assert_eq!(s.record(true, &c), Some(Transition::Healthy));
        assert_eq!(s.record(false, &c), None);
        assert_eq!(s.record(false, &c), None);
        assert!(s.is_healthy());
        assert_eq!(s.record(false, &c), Some(Transition::Unhealthy));
        assert!(!s.is_healthy());
        assert_eq!(s.record(true, &c), None);
        assert_eq!(s.record(false, &c), None, "a failure resets the run");
        assert_eq!(s.record(true, &c), None);
        assert_eq!(s.record(true, &c), Some(Transition::Healthy));
    }

    #[test]
    fn a_new_endpoint_failing_its_first_check_is_reported_unhealthy() {
        let s = ActiveState::default();
        assert_eq!(s.record(false, &check(1, 2)), Some(Transition::Unhealthy));
        assert_eq!(s.record(false, &check(1, 2)), None);
        assert!(!s.is_healthy());
    }
}
