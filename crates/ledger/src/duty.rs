//! The leader's clock duties, decided without a clock: given the ledger,
//! when the last publishing point was and `now`, which timer command is
//! due, or how long the leader may sleep before one can be.
//!
//! Two duties, both proposed through the log like any command, so every
//! member applies them at the same point:
//! - **expire holds** once the earliest hold's time is up;
//! - **publish** what changed, at most every `publish_interval_ms` (a
//!   publishing point is bounded, so one that left changes behind is
//!   followed at once: the shell then keeps `last_publish` as it was).

use caravan_model::Timestamp;

use crate::{Command, Ledger};

/// What the leader's timer does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Duty {
    /// Propose [`Command::Publish`] now.
    Publish,
    /// Propose [`Command::ExpireHolds`] now.
    ExpireHolds,
    /// Nothing is due for this long.
    Sleep { ms: i64 },
}

impl Duty {
    /// The command to propose, if one is due.
    pub fn command(&self) -> Option<Command> {
        match self {
            Duty::Publish => Some(Command::Publish),
            Duty::ExpireHolds => Some(Command::ExpireHolds),
            Duty::Sleep { .. } => None,
        }
    }
}

/// How the timer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DutyConfig {
    /// The least time between two publishing points.
    pub publish_interval_ms: i64,
    /// The longest sleep, so a change made meanwhile waits at most this.
    pub idle_ms: i64,
}

/// The next duty at `now`; `last_publish` is the last publishing point
/// that left nothing behind. Publishing goes first when both are due: it
/// is what agencies wait for, and expiry happens before every command
/// anyway.
pub fn next_duty(ledger: &Ledger, last_publish: Timestamp, config: DutyConfig, now: Timestamp) -> Duty {
    assert!(config.idle_ms >= 1, "the timer sleeps at least a millisecond");
    let publish_at = ledger.has_unpublished().then(|| last_publish.ms().saturating_add(config.publish_interval_ms));
    let expiry_at = ledger.next_expiry().map(Timestamp::ms);
    if publish_at.is_some_and(|at| at <= now.ms()) {
        return Duty::Publish;
    }
    if expiry_at.is_some_and(|at| at <= now.ms()) {
        return Duty::ExpireHolds;
    }
    let next = [publish_at, expiry_at].into_iter().flatten().min();
    let ms = next.map_or(config.idle_ms, |at| at - now.ms()).clamp(1, config.idle_ms);
    Duty::Sleep { ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HoldRequest;

    const CONFIG: DutyConfig = DutyConfig { publish_interval_ms: 250, idle_ms: 1_000 };

    #[test]
    fn an_idle_ledger_sleeps_the_longest() {
        let ledger = Ledger::new();
        assert_eq!(next_duty(&ledger, Timestamp(0), CONFIG, Timestamp(5_000)), Duty::Sleep { ms: 1_000 });
    }

    #[test]
    fn a_change_is_published_an_interval_after_the_last_point() {
        let mut ledger = Ledger::new();
        let listing = caravan_test_utils::stay("room", "Lyon", 2);
        let created = ledger.apply(&Command::CreateListing(listing), Timestamp(1_000));
        assert!(created.reply.is_ok(), "{created:?}");
        assert!(ledger.has_unpublished());
        let last = Timestamp(900);
        assert_eq!(next_duty(&ledger, last, CONFIG, Timestamp(1_000)), Duty::Sleep { ms: 150 });
        assert_eq!(next_duty(&ledger, last, CONFIG, Timestamp(1_150)), Duty::Publish);
        ledger.apply(&Command::Publish, Timestamp(1_150));
        assert_eq!(next_duty(&ledger, Timestamp(1_150), CONFIG, Timestamp(1_151)), Duty::Sleep { ms: 1_000 });
    }

    #[test]
    fn a_hold_is_expired_when_its_time_is_up() {
        let mut ledger = Ledger::new();
        let listing = caravan_test_utils::stay("room", "Lyon", 2);
        let day = caravan_model::Date::from_days(20_500);
        let (start, now) =
            (Timestamp(day.start().ms() - 10 * 86_400_000), Timestamp(day.start().ms() - 9 * 86_400_000));
        ledger.apply(&Command::CreateListing(listing.clone()), start);
        let patch = caravan_model::AriPatch { available: Some(2), price_minor: Some(100), ..Default::default() };
        let opened = ledger
            .apply(&Command::SetAri { listing: listing.id.clone(), from: day, to: day.add_days(2), patch }, start);
        assert!(opened.reply.is_ok(), "{opened:?}");
        ledger.apply(&Command::Publish, start);
        let request = HoldRequest::Stay {
            listing: listing.id.clone(),
            check_in: day,
            check_out: day.add_days(1),
            units: 1,
            guests: 1,
        };
        let held = ledger
            .apply(&Command::Hold { idempotency_key: None, request, ttl_ms: 60_000, expected_total_minor: None }, now);
        assert!(held.reply.is_ok(), "{held:?}");
        ledger.apply(&Command::Publish, now);
        let expires = Timestamp(now.ms() + 60_000);
        assert_eq!(next_duty(&ledger, now, CONFIG, Timestamp(expires.ms() - 400)), Duty::Sleep { ms: 400 });
        assert_eq!(next_duty(&ledger, now, CONFIG, expires), Duty::ExpireHolds);
    }
}
