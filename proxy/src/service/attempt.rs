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

    /// Reports the status of an answer from the endpoint of the last attempt.
    pub(super) fn attempt_answered(&self, code: u16) {
        if let (Some(service), Some(guard), Some(addr)) =
            (&self.service, &self.in_flight, self.tried.last())
        {
            service.record_answer(guard.state(), *addr, code);
        }
    }

    /// Whether the retry budget of the Service allows another attempt on an untried endpoint.
    pub(super) fn may_retry(&self) -> bool {
        self.service
            .as_ref()
            .is_some_and(|s| s.may_retry(&self.tried))
    }
}
