//! A rate limit as a token bucket: up to `per` events, refilled evenly
//! over a window, so a client may burst a window's worth and then goes at
//! the rate. Pure: the caller says what time it is.

use crate::Timestamp;

/// A rate: `per` events a `window_ms`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rate {
    pub per: u32,
    pub window_ms: u64,
}

impl Rate {
    pub fn per_second(per: u32) -> Rate {
        Rate { per, window_ms: 1_000 }
    }

    pub fn per_minute(per: u32) -> Rate {
        Rate { per, window_ms: 60_000 }
    }

    fn capacity(&self) -> u64 {
        self.per as u64 * 1000
    }
}

/// What one client has left of a [`Rate`].
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    /// In thousandths of an event, so slow rates refill smoothly.
    milli_tokens: u64,
    last: Timestamp,
}

impl TokenBucket {
    /// A bucket with a window's worth: a new client may burst.
    pub fn full(rate: Rate, now: Timestamp) -> TokenBucket {
        TokenBucket { milli_tokens: rate.capacity(), last: now }
    }

    /// Takes one event if the rate allows it now.
    pub fn take(&mut self, rate: Rate, now: Timestamp) -> bool {
        self.refill(rate, now);
        if self.milli_tokens < 1000 {
            return false;
        }
        self.milli_tokens -= 1000;
        true
    }

    /// Whether the bucket is full again: forgetting it loses nothing.
    pub fn is_full(&self, rate: Rate, now: Timestamp) -> bool {
        let mut later = *self;
        later.refill(rate, now);
        later.milli_tokens >= rate.capacity()
    }

    fn refill(&mut self, rate: Rate, now: Timestamp) {
        let elapsed_ms = now.ms().saturating_sub(self.last.ms()).max(0) as u128;
        let refill = (elapsed_ms * rate.capacity() as u128 / rate.window_ms.max(1) as u128).min(u64::MAX as u128);
        self.milli_tokens = self.milli_tokens.saturating_add(refill as u64).min(rate.capacity());
        // A clock that steps back refills nothing and takes nothing back.
        self.last = self.last.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_900_000_000_000);

    #[test]
    fn a_bucket_bursts_its_window_then_goes_at_the_rate_and_never_banks_more() {
        let rate = Rate::per_second(3);
        let mut bucket = TokenBucket::full(rate, T0);
        assert_eq!((0..5).filter(|_| bucket.take(rate, T0)).count(), 3);
        assert!(!bucket.take(rate, T0.saturating_add_ms(300)));
        assert!(bucket.take(rate, T0.saturating_add_ms(334)), "a third of a second refills one");
        assert!(!bucket.is_full(rate, T0.saturating_add_ms(500)));
        assert!(bucket.is_full(rate, T0.saturating_add_ms(3_600_000)));
        let later = T0.saturating_add_ms(3_600_000);
        assert_eq!((0..10).filter(|_| bucket.take(rate, later)).count(), 3, "an idle hour banks one window");
        // The clock going back neither refills nor breaks it.
        assert!(!bucket.take(rate, T0));
    }
}
