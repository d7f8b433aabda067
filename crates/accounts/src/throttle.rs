//! Login throttling: after a few wrong passwords for one account (or from
//! one address), each further attempt waits twice as long as the last, up
//! to an hour. A right password resets the count. Pure: the shell keeps
//! one [`Throttle`] per key (email, client address) and passes `now`.

use caravan_model::Timestamp;
use serde::{Deserialize, Serialize};

/// Wrong passwords allowed before waiting starts.
pub const FREE_FAILURES: u32 = 5;
/// The first wait; it doubles with each further failure.
pub const FIRST_WAIT_MS: i64 = 30_000;
pub const WAIT_MS_MAX: i64 = 60 * 60 * 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Throttle {
    pub failures: u32,
    /// No attempt is judged before this.
    pub locked_until: Timestamp,
}

impl Throttle {
    /// `Err(wait_ms)` while attempts must wait; the attempt is then not
    /// even checked, so guessing gains nothing.
    pub fn check(&self, now: Timestamp) -> Result<(), i64> {
        match self.locked_until.ms() - now.ms() {
            wait if wait > 0 => Err(wait),
            _ => Ok(()),
        }
    }

    pub fn record_failure(&mut self, now: Timestamp) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= FREE_FAILURES {
            let doublings = (self.failures - FREE_FAILURES).min(20);
            let wait = (FIRST_WAIT_MS << doublings).min(WAIT_MS_MAX);
            self.locked_until = now.saturating_add_ms(wait);
        }
    }

    pub fn record_success(&mut self) {
        *self = Throttle::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_after_the_free_failures_and_double() {
        let mut throttle = Throttle::default();
        let now = Timestamp(1_000_000);
        for _ in 0..FREE_FAILURES - 1 {
            throttle.record_failure(now);
            assert_eq!(throttle.check(now), Ok(()));
        }
        throttle.record_failure(now);
        assert_eq!(throttle.check(now), Err(FIRST_WAIT_MS));
        let later = now.saturating_add_ms(FIRST_WAIT_MS);
        assert_eq!(throttle.check(later), Ok(()));
        throttle.record_failure(later);
        assert_eq!(throttle.check(later), Err(2 * FIRST_WAIT_MS));
        for _ in 0..40 {
            throttle.record_failure(later);
        }
        assert_eq!(throttle.check(later), Err(WAIT_MS_MAX), "capped at an hour");
        throttle.record_success();
        assert_eq!(throttle.check(later), Ok(()));
        assert_eq!(throttle.failures, 0);
    }
}
