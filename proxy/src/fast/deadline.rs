//! A timeout that is cheap to re-arm once per request: one timer per connection, moved only
//! when the wanted deadline leaves a small window, instead of a timer registered and dropped
//! for every read. A timeout may thus fire up to 1/8 of its length (at most 250 ms) late.
//!
//! Arming only records the wanted timeout; the timer is moved when a wait actually begins,
//! that is when the work it bounds is not done at its first poll. A read whose bytes are
//! already there, or a write the socket takes at once (most of them), touches neither the
//! timer nor the clock.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The longest lateness allowed.
const MAX_SLACK: Duration = Duration::from_millis(250);

/// One re-armable timer.
pub(super) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    /// The armed timeout, and the instant it counts from (when the wait begins if `None`).
    wanted: Option<(Option<Instant>, Duration)>,
}

impl Deadline {
    /// A timer that is not armed yet (registered on first wait).
    pub fn new() -> Deadline {
        Deadline {
            // Far enough never to fire before the first `arm`.
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400 * 365))),
            wanted: None,
        }
    }

    /// Arms the timer to fire between `after` and `after` plus a slack from when the next
    /// wait begins.
    pub fn arm(&mut self, after: Duration) {
        self.wanted = Some((None, after));
    }

    /// Like [`Deadline::arm`], counting from `now`.
    pub fn arm_at(&mut self, now: Instant, after: Duration) {
        self.wanted = Some((Some(now), after));
    }

    /// Moves the timer into the armed window if it is outside it.
    fn sync(&mut self) {
        if let Some((from, after)) = self.wanted {
            let earliest = from.unwrap_or_else(Instant::now) + after;
            let slack = (after / 8).min(MAX_SLACK);
            let current = self.sleep.deadline();
            if current < earliest || current > earliest + slack {
                self.sleep.as_mut().reset(earliest + slack);
            }
        }
    }

    /// Completes when the armed deadline passes.
    pub fn expired(&mut self) -> &mut Pin<Box<Sleep>> {
        self.sync();
        &mut self.sleep
    }

    /// Runs `work` until it completes or the armed deadline passes (`None`).
    pub async fn run<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        let mut waiting = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(done));
            }
            if !waiting {
                self.sync();
                waiting = true;
            }
            self.sleep.as_mut().poll(cx).map(|()| None)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_within_its_window_and_is_moved_only_when_needed() {
        let mut deadline = Deadline::new();
        deadline.arm(Duration::from_secs(8));
        let first = deadline.expired().deadline();
        // Re-armed soon after: inside the window, so the timer stays where it is.
        tokio::time::advance(Duration::from_millis(100)).await;
        deadline.arm(Duration::from_secs(8));
        assert_eq!(deadline.expired().deadline(), first);
        // Later than the slack: moved.
        tokio::time::advance(Duration::from_millis(300)).await;
        deadline.arm(Duration::from_secs(8));
        assert!(deadline.expired().deadline() > first);

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

    #[tokio::test(start_paused = true)]
    async fn work_done_at_its_first_poll_moves_no_timer() {
        let mut deadline = Deadline::new();
        let unarmed = deadline.sleep.deadline();
        deadline.arm(Duration::from_secs(8));
        assert_eq!(deadline.run(async { 7 }).await, Some(7));
        assert_eq!(
            deadline.sleep.deadline(),
            unarmed,
            "no wait, no timer moved"
        );
        // A wait moves it into the armed window, and the work still completes.
        let started = Instant::now();
        let work = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            8
        };
        assert_eq!(deadline.run(work).await, Some(8));
        let moved = deadline.sleep.deadline();
        assert!(moved >= started + Duration::from_secs(8));
        assert!(moved <= started + Duration::from_millis(8_250));
    }
}
