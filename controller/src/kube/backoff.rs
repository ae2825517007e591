//! Retry delays for watchers that lost the API server.

use ::kube::runtime::utils::Backoff;
use std::time::Duration;

/// First delay after an error.
const MIN: Duration = Duration::from_millis(250);
/// Longest delay: short enough that routes catch up within seconds once the API server is
/// back, long enough not to hammer a struggling one (five watchers, one request each).
pub const MAX: Duration = Duration::from_secs(5);

/// Doubling delays from 250 ms up to 5 s, reset by the first successful event. No jitter: a
/// single replica set of watchers is not a thundering herd, and fixed delays keep the
/// "not in sync" window predictable.
#[derive(Debug, Clone)]
pub struct CappedBackoff {
    next: Duration,
}

impl Default for CappedBackoff {
    fn default() -> Self {
        CappedBackoff { next: MIN }
    }
}

impl Iterator for CappedBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (current * 2).min(MAX);
        Some(current)
    }
}

impl Backoff for CappedBackoff {
    fn reset(&mut self) {
        self.next = MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = CappedBackoff::default();
        let first: Vec<u64> = b.by_ref().take(7).map(|d| d.as_millis() as u64).collect();
        assert_eq!(first, vec![250, 500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(MIN));
    }
}
