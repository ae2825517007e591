//! The outcome of one upstream attempt: reported to passive health, and whether the Service's
//! retry budget allows another attempt.

use super::RequestCtx;

impl RequestCtx {
    /// Reports a failed attempt to the passive health of the endpoint it went to.
    pub(super) fn attempt_failed(&self) {
        if let (Some(service), Some(guard), Some(addr)) =
            (&self.service, &self.in_flight, self.tried.last())
        {
            service.record_failure(guard.state(), *addr);
        }
    }

    /// Reports an answer below 500 (ends the endpoint's run of failures).
    pub(super) fn attempt_succeeded(&self) {
        if let (Some(service), Some(guard), Some(addr)) =
            (&self.service, &self.in_flight, self.tried.last())
        {
            service.record_success(guard.state(), *addr);
        }
    }

    /// Whether the retry budget of the Service allows another attempt on an untried endpoint
    /// (`retries` extra attempts after the first).
    pub(super) fn may_retry(&self) -> bool {
        self.service.as_ref().is_some_and(|s| {
            self.tried.len() <= s.policy().upstream.retries as usize && s.has_untried(&self.tried)
        })
    }
}
