//! The ledger's rules, one scenario each, and property tests over random
//! interleavings of many clients.

mod properties;
mod rules;

use caravan_ledger::{Applied, Command, Hold, HoldId, HoldRequest, IdempotencyKey, Ledger, Rejection, Reply};
use caravan_model::*;

/// 2030-01-01T00:00Z.
pub const T0: Timestamp = Timestamp(1_893_456_000_000);
pub const MINUTE_MS: i64 = 60_000;

pub fn day(offset: i32) -> Date {
    T0.date().add_days(offset)
}

pub fn stay(id: &str, units: u32) -> Listing {
    caravan_test_utils::stay(id, "Vienna", units)
}

pub fn trip(id: &str, seat_map: &[&str]) -> Listing {
    caravan_test_utils::bus(id, seat_map)
}

pub fn id(text: &str) -> ListingId {
    ListingId::parse(text).unwrap()
}

pub fn open(listing: &str, from: i32, to: i32, available: u32, price_minor: i64) -> Command {
    let patch = AriPatch { available: Some(available), price_minor: Some(price_minor), ..AriPatch::default() };
    Command::SetAri { listing: id(listing), from: day(from), to: day(to), patch }
}

pub fn hold_stay(listing: &str, check_in: i32, check_out: i32, units: u32) -> Command {
    Command::Hold {
        idempotency_key: None,
        request: HoldRequest::Stay {
            listing: id(listing),
            check_in: day(check_in),
            check_out: day(check_out),
            units,
            guests: 1,
        },
        ttl_ms: 15 * MINUTE_MS,
        expected_total_minor: None,
    }
}

pub fn key(text: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse(text).unwrap())
}

/// A ledger with the command log it was built from.
#[derive(Default, Debug)]
pub struct Harness {
    pub ledger: Ledger,
    pub log: Vec<(Command, Timestamp)>,
    pub now: Timestamp,
}

impl Harness {
    pub fn new() -> Harness {
        Harness { ledger: Ledger::new(), log: Vec::new(), now: T0 }
    }

    pub fn advance_ms(&mut self, ms: i64) {
        self.now = self.now.saturating_add_ms(ms);
    }

    pub fn apply(&mut self, command: Command) -> Applied {
        self.log.push((command.clone(), self.now));
        let applied = self.ledger.apply(&command, self.now);
        self.ledger.check_invariants();
        applied
    }

    pub fn ok(&mut self, command: Command) -> Reply {
        let name = command.name();
        self.apply(command).reply.unwrap_or_else(|e| panic!("{name} refused: {e}"))
    }

    pub fn err(&mut self, command: Command) -> Rejection {
        self.apply(command).reply.expect_err("must be refused")
    }

    pub fn hold(&mut self, command: Command) -> Hold {
        match self.ok(command) {
            Reply::Hold(hold) => *hold,
            other => panic!("not a hold: {other:?}"),
        }
    }

    pub fn free(&self, listing: &str, offset: i32) -> u32 {
        self.ledger.listing(&id(listing)).unwrap().days[&day(offset)].free()
    }

    pub fn confirm(&mut self, hold: HoldId) -> Result<Reply, Rejection> {
        self.apply(Command::Confirm { idempotency_key: None, hold }).reply
    }

    pub fn cancel(&mut self, hold: HoldId) -> Result<Reply, Rejection> {
        self.apply(Command::Cancel { idempotency_key: None, hold }).reply
    }
}
