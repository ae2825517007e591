//! A timeout that is cheap to re-arm once per request: one timer per connection, moved only
//! when the wanted deadline leaves a small window, instead of a timer registered and dropped
//! for every read. A timeout may thus fire up to 1/8 of its length (at most 250 ms) late.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The longest lateness allowed.
const MAX_SLACK: Duration = Duration::from_millis(250);

/// One re-armable timer.
pub(super) struct Deadline {
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    /// A timer that is not armed yet (registered on first use).
    pub fn new() -> Deadline {
        Deadline {
            // Far enough never to fire before the first `arm`.
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400 * 365))),
        }
    }

    /// Arms the timer to fire between `after` and `after` plus a slack from now, moving it
    /// only when its current deadline is outside that window.
    pub fn arm(&mut self, after: Duration) {
        self.arm_at(Instant::now(), after);
    }

    /// Like [`Deadline::arm`], counting from `now`.
    pub fn arm_at(&mut self, now: Instant, after: Duration) {
        let earliest = now + after;
        let slack = (after / 8).min(MAX_SLACK);
        let current = self.sleep.deadline();
        if current < earliest || current > earliest + slack {
            self.sleep.as_mut().reset(earliest + slack);
        }
    }

    /// Completes when the armed deadline passes.
    pub fn expired(&mut self) -> &mut Pin<Box<Sleep>> {
        &mut self.sleep
    }

    /// Runs `work` until it completes or the armed deadline passes (`None`).
    pub async fn run<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            done = work => Some(done),
            () = &mut self.sleep => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_within_its_window_and_is_moved_only_when_needed() {
        let mut deadline = Deadline::new();
        deadline.arm(Duration::from_secs(8));
        let first = deadline.sleep.deadline();
        // Re-armed soon after: inside the window, so the timer stays where it is.
        tokio::time::advance(Duration::from_millis(100)).await;
        deadline.arm(Duration::from_secs(8));
        assert_eq!(deadline.sleep.deadline(), first);
        // Later than the slack: moved.
        tokio::time::advance(Duration::from_millis(300)).await;
        deadline.arm(Duration::from_secs(8));
        assert!(deadline.sleep.deadline() > first);

        let started = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(deadline.run(never).await, None);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(8), "fired early: {waited:?}");
        assert!(
            waited <= Duration::from_millis(8_250),
            "fired late: {waited:?}"
        );

        deadline.arm(Duration::from_secs(1));
        assert_eq!(deadline.run(async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_timeout_pulls_the_deadline_in() {
        let mut deadline = Deadline::new();
        deadline.arm(Duration::from_secs(60));
        deadline.arm(Duration::from_millis(200));
        let started = Instant::now();
        assert_eq!(deadline.run(std::future::pending::<()>()).await, None);
        assert!(started.elapsed() <= Duration::from_millis(225));
    }
}
