//! What an owner lets one agency do, so that no agency (hostile, or just
//! broken) can lock a hotel's inventory or take its node's time from the
//! others: holds in flight (counted by the owner's ledger, the same on
//! every member of its group), holds a minute and booking calls a second
//! (metered by the member that answers). Each is set in `caravan.toml`
//! (`[quotas]`); a request beyond one is refused with `quota_exceeded`,
//! saying which.

use std::collections::HashMap;

use caravan_ledger::Command;
use caravan_model::rate::{Rate, TokenBucket};
use caravan_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Refusal, RefusalCode};

/// Per agency, at this owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Live holds an agency may keep at once (its bookings do not count).
    pub holds_in_flight: u32,
    /// Holds an agency may ask for in a minute (a burst of a minute's
    /// worth, refilled evenly).
    pub holds_per_minute: u32,
    /// Booking calls (frames, each up to a batch of requests) an agency
    /// may make in a second.
    pub calls_per_second: u32,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas { holds_in_flight: 1_000, holds_per_minute: 3_000, calls_per_second: 200 }
    }
}

impl Quotas {
    /// No practical bound: for load tests that measure the owner itself.
    pub fn unbounded() -> Quotas {
        Quotas { holds_in_flight: u32::MAX, holds_per_minute: u32::MAX, calls_per_second: u32::MAX }
    }

    pub fn validate(&self) -> Result<(), String> {
        let Quotas { holds_in_flight, holds_per_minute, calls_per_second } = *self;
        if holds_in_flight == 0 || holds_per_minute == 0 || calls_per_second == 0 {
            return Err("quotas must be at least 1 (a 0 would refuse every agency)".into());
        }
        Ok(())
    }

    /// `command` as the ledger should run it for `agency`: a hold counted
    /// against the agency's holds in flight; anything else as it is.
    pub fn within(&self, agency: &str, command: Command) -> Command {
        match command {
            Command::Hold { .. } | Command::HoldFor { .. } => Command::HoldWithin {
                holder: agency.to_owned(),
                holds_max: self.holds_in_flight,
                hold: Box::new(command),
            },
            other => other,
        }
    }
}

/// Which quota refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    HoldsInFlight,
    HoldsPerMinute,
    CallsPerSecond,
}

impl Quota {
    pub const ALL: [Quota; 3] = [Quota::HoldsInFlight, Quota::HoldsPerMinute, Quota::CallsPerSecond];

    /// The setting's name in `[quotas]`, also the metric's label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Quota::HoldsInFlight => "holds_in_flight",
            Quota::HoldsPerMinute => "holds_per_minute",
            Quota::CallsPerSecond => "calls_per_second",
        }
    }
}

/// Agencies metered at once before idle ones are forgotten.
const AGENCIES_METERED_MAX: usize = 10_000;

/// The rates each agency used at this member, and what was refused.
#[derive(Debug)]
pub struct Meters {
    quotas: Quotas,
    /// Holds a minute and calls a second, by agency.
    agencies: HashMap<String, (TokenBucket, TokenBucket)>,
    refused: [u64; 3],
}

impl Meters {
    pub fn new(quotas: Quotas) -> Meters {
        Meters { quotas, agencies: HashMap::new(), refused: [0; 3] }
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Takes one booking call of `agency`'s, or says why not.
    pub fn call(&mut self, agency: &str, now: Timestamp) -> Result<(), Refusal> {
        let rate = self.calls();
        let taken = self.buckets(agency, now).1.take(rate, now);
        self.judge(taken, Quota::CallsPerSecond, || format!("{} booking calls a second", rate.per))
    }

    /// Takes one hold of `agency`'s, or says why not.
    pub fn hold(&mut self, agency: &str, now: Timestamp) -> Result<(), Refusal> {
        let rate = self.holds();
        let taken = self.buckets(agency, now).0.take(rate, now);
        self.judge(taken, Quota::HoldsPerMinute, || format!("{} holds a minute", rate.per))
    }

    fn holds(&self) -> Rate {
        Rate::per_minute(self.quotas.holds_per_minute)
    }

    fn calls(&self) -> Rate {
        Rate::per_second(self.quotas.calls_per_second)
    }

    /// Counts a refusal the ledger made (holds in flight).
    pub fn count_refusal(&mut self, quota: Quota) {
        self.refused[quota as usize] += 1;
    }

    /// Refusals so far, by quota.
    pub fn refused(&self) -> impl Iterator<Item = (Quota, u64)> + '_ {
        Quota::ALL.into_iter().map(|quota| (quota, self.refused[quota as usize]))
    }

    fn judge(&mut self, taken: bool, quota: Quota, what: impl FnOnce() -> String) -> Result<(), Refusal> {
        if taken {
            return Ok(());
        }
        self.count_refusal(quota);
        let why = format!("quota exceeded: {} (this owner's [quotas] {})", what(), quota.as_str());
        Err(Refusal::new(RefusalCode::QuotaExceeded, why))
    }

    fn buckets(&mut self, agency: &str, now: Timestamp) -> &mut (TokenBucket, TokenBucket) {
        let (holds, calls) = (self.holds(), self.calls());
        if !self.agencies.contains_key(agency) && self.agencies.len() >= AGENCIES_METERED_MAX {
            // Agencies whose buckets refilled lose nothing by being forgotten.
            self.agencies.retain(|_, (h, c)| !(h.is_full(holds, now) && c.is_full(calls, now)));
        }
        self.agencies
            .entry(agency.to_owned())
            .or_insert_with(|| (TokenBucket::full(holds, now), TokenBucket::full(calls, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_900_000_000_000);

    fn at(ms: i64) -> Timestamp {
        T0.saturating_add_ms(ms)
    }

    #[test]
    fn calls_beyond_the_rate_are_refused_for_that_agency_alone_until_time_refills_them() {
        let mut meters = Meters::new(Quotas { calls_per_second: 3, ..Quotas::default() });
        for _ in 0..3 {
            meters.call("agency:a", at(0)).unwrap();
        }
        let refused = meters.call("agency:a", at(0)).unwrap_err();
        assert_eq!(refused.code, RefusalCode::QuotaExceeded);
        assert!(refused.message.contains("3 booking calls a second"), "{}", refused.message);
        meters.call("agency:b", at(0)).expect("another agency has its own");
        meters.call("agency:a", at(334)).expect("a third of a second refills one");
        assert!(meters.call("agency:a", at(334)).is_err());
        let counted: Vec<_> = meters.refused().collect();
        assert_eq!(counted[2], (Quota::CallsPerSecond, 2));
    }

    #[test]
    fn holds_a_minute_refill_evenly_and_never_beyond_a_minutes_worth() {
        let mut meters = Meters::new(Quotas { holds_per_minute: 60, ..Quotas::default() });
        for _ in 0..60 {
            meters.hold("agency:a", at(0)).unwrap();
        }
        assert!(meters.hold("agency:a", at(0)).is_err());
        meters.hold("agency:a", at(1_000)).expect("a second refills one");
        assert!(meters.hold("agency:a", at(1_000)).is_err());
        // An hour idle refills a minute's worth, no more.
        let taken = (0..100).filter(|_| meters.hold("agency:a", at(3_600_000)).is_ok()).count();
        assert_eq!(taken, 60);
    }

    #[test]
    fn holds_go_to_the_ledger_counted_against_the_agency_and_nothing_else_does() {
        let quotas = Quotas { holds_in_flight: 7, ..Quotas::default() };
        let cancel = Command::Cancel { idempotency_key: None, hold: caravan_ledger::HoldId(1) };
        assert_eq!(quotas.within("agency:a", cancel.clone()), cancel);
        let hold = Command::Hold {
            idempotency_key: None,
            request: caravan_ledger::HoldRequest::Stay {
                listing: caravan_model::ListingId::parse("room").unwrap(),
                check_in: T0.date(),
                check_out: T0.date().add_days(1),
                units: 1,
                guests: 1,
            },
            ttl_ms: 60_000,
            expected_total_minor: None,
        };
        let within = quotas.within("agency:a", hold.clone());
        assert_eq!(within, Command::HoldWithin { holder: "agency:a".into(), holds_max: 7, hold: Box::new(hold) });
        assert!(Quotas { calls_per_second: 0, ..quotas }.validate().is_err());
    }
}
