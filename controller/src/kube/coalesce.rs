//! Coalescing bursts of changes into one rebuild: wait for a short quiet period, but never
//! longer than a bound after the first change, so a steady trickle of events (endpoints
//! churning during a rollout) cannot postpone the table forever.

use std::time::Duration;
use tokio::time::Instant;

/// A rebuild waits until no change arrived for this long…
pub const QUIET: Duration = Duration::from_millis(50);
/// …but at most this long after the first change it includes.
pub const MAX_DELAY: Duration = Duration::from_millis(300);

/// When the pending changes should be applied.
#[derive(Debug, Default, Clone)]
pub struct Coalescer {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Coalescer {
    /// Records a change seen at `now`.
    pub fn note(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When to rebuild, or `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        Some((self.last? + QUIET).min(self.first? + MAX_DELAY))
    }

    /// Clears the pending changes and returns when the oldest of them was seen (the start of
    /// the propagation latency).
    pub fn take(&mut self) -> Option<Instant> {
        self.last = None;
        self.first.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_period_then_bounded() {
        let mut c = Coalescer::default();
        assert_eq!(c.deadline(), None);
        let t0 = Instant::now();
        c.note(t0);
        assert_eq!(c.deadline(), Some(t0 + QUIET));
        // Each change within the quiet period pushes the deadline…
        c.note(t0 + Duration::from_millis(40));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(90)));
        // …but never past MAX_DELAY after the first one.
        c.note(t0 + Duration::from_millis(290));
        assert_eq!(c.deadline(), Some(t0 + MAX_DELAY));
        assert_eq!(c.take(), Some(t0));
        assert_eq!(c.deadline(), None);
        assert_eq!(c.take(), None);
    }
}
