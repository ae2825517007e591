//! Coalescing bursts of changes into one rebuild: wait for a short quiet period, but never
//! longer than a bound after the first change, so a steady trickle of events (endpoints
//! churning during a rollout) cannot postpone the table forever. After a rebuild, the next one
//! waits at least as long as that rebuild took, so a constant stream of changes keeps the
//! controller busy at most half of the time, however large the cluster. The first rebuild
//! translates everything, which later ones (translating what changed) do not: it does not
//! hold the next one back.

use std::time::Duration;
use tokio::time::Instant;

/// A rebuild waits until no change arrived for this long…
pub const QUIET: Duration = Duration::from_millis(20);
/// …but at most this long after the first change it includes.
pub const MAX_DELAY: Duration = Duration::from_millis(300);

/// When the pending changes should be applied.
#[derive(Debug, Default, Clone)]
pub struct Coalescer {
    first: Option<Instant>,
    last: Option<Instant>,
    /// No rebuild before this: the end of the previous rebuild plus its duration.
    not_before: Option<Instant>,
    /// Whether the first rebuild is done.
    warm: bool,
}

impl Coalescer {
    /// Records a change seen at `now`.
    pub fn note(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When to rebuild, or `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let due = (self.last? + QUIET).min(self.first? + MAX_DELAY);
        Some(
            self.not_before
                .map_or(due, |not_before| due.max(not_before)),
        )
    }

    /// Records a rebuild that ran from `started` to `finished`: the next one starts no earlier
    /// than `finished` plus the same duration (except after the first).
    pub fn rebuilt(&mut self, started: Instant, finished: Instant) {
        if std::mem::replace(&mut self.warm, true) {
            self.not_before = Some(finished + finished.saturating_duration_since(started));
        }
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
        c.note(t0 + Duration::from_millis(15));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(15) + QUIET));
        // …but never past MAX_DELAY after the first one.
        c.note(t0 + Duration::from_millis(290));
        assert_eq!(c.deadline(), Some(t0 + MAX_DELAY));
        assert_eq!(c.take(), Some(t0));
        assert_eq!(c.deadline(), None);
        assert_eq!(c.take(), None);
    }

    #[test]
    fn the_first_rebuild_holds_nothing_back() {
        let mut c = Coalescer::default();
        let t0 = Instant::now();
        c.rebuilt(t0, t0 + Duration::from_millis(500));
        c.note(t0 + Duration::from_millis(510));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(510) + QUIET));
    }

    #[test]
    fn next_rebuild_waits_as_long_as_the_last_took() {
        let mut c = Coalescer::default();
        let t0 = Instant::now();
        // The first rebuild, done long ago.
        c.rebuilt(t0, t0);
        // A rebuild from t0 to t0+80ms: nothing before t0+160ms.
        c.rebuilt(t0, t0 + Duration::from_millis(80));
        c.note(t0 + Duration::from_millis(100));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(160)));
        // Once that point has passed, the quiet period rules again.
        c.note(t0 + Duration::from_millis(150));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(150) + QUIET));
        assert_eq!(c.take(), Some(t0 + Duration::from_millis(100)));
    }
}
