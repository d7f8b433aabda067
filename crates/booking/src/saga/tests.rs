//! The saga against fake owners that refuse, lose requests, lose answers
//! and expire holds: whatever happens, it ends all-or-nothing.

use super::*;
use crate::receipt::hold_token;
use crate::RefusalCode;
use caravan_ledger::{HoldId, HoldRequest};
use caravan_model::rng::SplitMix64;
use caravan_model::{Date, ListingId};
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;

const TTL_MS: i64 = 60_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OwnerState {
    Held { expires_at: i64 },
    Confirmed,
    Released,
    Cancelled,
}

/// One owner holding one part: answers by idempotency key, like the ledger.
struct FakeOwner {
    key: SigningKey,
    state: Option<OwnerState>,
    answers: BTreeMap<String, Outcome>,
    refuses_holds: bool,
}

impl FakeOwner {
    fn new(seed: u8) -> FakeOwner {
        FakeOwner {
            key: SigningKey::from_bytes(&[seed; 32]),
            state: None,
            answers: BTreeMap::new(),
            refuses_holds: false,
        }
    }

    fn origin(&self) -> Origin {
        Origin(self.key.verifying_key().to_bytes())
    }

    fn expire(&mut self, now: i64) {
        if let Some(OwnerState::Held { expires_at }) = self.state {
            if expires_at <= now {
                self.state = Some(OwnerState::Released);
            }
        }
    }

    fn handle(&mut self, request: &BookRequest, spec: &HoldSpec, now: i64) -> Outcome {
        self.expire(now);
        if let Some(answer) = self.answers.get(&request.idempotency_key) {
            return answer.clone();
        }
        let answer = match (&request.op, self.state) {
            (Op::Hold(_), _) if self.refuses_holds => Outcome::Refused(Refusal::new(RefusalCode::SoldOut, "sold out")),
            (Op::Hold(_), None) => {
                self.state = Some(OwnerState::Held { expires_at: now + TTL_MS });
                self.receipt(spec, ReceiptState::Held, now)
            }
            (Op::Confirm { .. }, Some(OwnerState::Held { .. })) => {
                self.state = Some(OwnerState::Confirmed);
                self.receipt(spec, ReceiptState::Confirmed, now)
            }
            (Op::Confirm { .. }, Some(OwnerState::Released)) => {
                Outcome::Refused(Refusal::new(RefusalCode::HoldExpired, "expired"))
            }
            (Op::Cancel(_), Some(OwnerState::Held { .. })) => {
                self.state = Some(OwnerState::Released);
                self.receipt(spec, ReceiptState::Cancelled, now)
            }
            (Op::Cancel(_), Some(OwnerState::Confirmed)) => {
                self.state = Some(OwnerState::Cancelled);
                self.receipt(spec, ReceiptState::BookingCancelled, now)
            }
            (Op::Cancel(_), _) => Outcome::Refused(Refusal::new(RefusalCode::HoldNotLive, "not live")),
            (op, state) => panic!("the saga sent {op:?} to an owner in {state:?}"),
        };
        self.answers.insert(request.idempotency_key.clone(), answer.clone());
        answer
    }

    fn receipt(&self, spec: &HoldSpec, state: ReceiptState, now: i64) -> Outcome {
        let hold = HoldRef { hold: HoldId(1), token: hold_token(&self.key, HoldId(1), "agency") };
        let expires_at = match self.state {
            Some(OwnerState::Held { expires_at }) => expires_at,
            _ => now,
        };
        let receipt = Receipt {
            origin: self.origin(),
            hold,
            spec: spec.clone(),
            state,
            currency: "EUR".into(),
            total_minor: 100,
            expires_at: Timestamp(expires_at),
            state_at: Timestamp(now),
            penalty_minor: 0,
            issued_at: Timestamp(now),
            day_prices_minor: vec![100],
        };
        let signed = receipt.sign(&self.key);
        Outcome::Receipt(Box::new(receipt), signed)
    }

    /// Whether the owner still has something held or booked for the traveller.
    fn holds_something(&mut self, now: i64) -> bool {
        self.expire(now);
        matches!(self.state, Some(OwnerState::Held { .. } | OwnerState::Confirmed))
    }
}

fn spec(n: usize) -> HoldSpec {
    HoldSpec {
        request: HoldRequest::Trip {
            listing: ListingId::parse(&format!("leg-{n}")).unwrap(),
            departure: Date::from_days(20_500),
            seats: 1,
            seat_numbers: Vec::new(),
        },
        hold_seconds: 60,
        expected_total_minor: None,
        traveller: None,
    }
}

/// Delivery faults for a run.
#[derive(Clone, Copy)]
struct Faults {
    lose_request: f64,
    lose_answer: f64,
}

/// Drives a saga to its end against `owners`; returns it.
fn run(owners: &mut [FakeOwner], faults: Faults, seed: u64) -> (Saga, i64) {
    let mut rng = SplitMix64::new(seed);
    let parts = owners.iter().enumerate().map(|(i, o)| Part::new(o.origin(), spec(i))).collect();
    let mut now = 1_000_000i64;
    let mut saga = Saga::new(7, seed, parts, Timestamp(now)).unwrap();
    for _ in 0..10_000 {
        if saga.phase.is_terminal() {
            return (saga, now);
        }
        let steps = saga.next_steps(Timestamp(now));
        for step in steps {
            let owner = &mut owners[step.part];
            let outcome = if rng.chance(faults.lose_request) {
                Outcome::Unreachable("request lost".into())
            } else {
                let answer = owner.handle(&step.request, &saga.parts[step.part].spec, now);
                if rng.chance(faults.lose_answer) {
                    Outcome::Unreachable("answer lost".into())
                } else {
                    answer
                }
            };
            saga.apply(step.part, &step.request.op, outcome, Timestamp(now));
        }
        saga.advance(Timestamp(now));
        now += 100 + rng.below(2_000) as i64;
    }
    panic!("saga {:?} did not end: {saga:#?}", saga.phase);
}

fn owners(n: u8) -> Vec<FakeOwner> {
    (1..=n).map(FakeOwner::new).collect()
}

#[test]
fn all_parts_held_then_all_confirmed() {
    let mut owners = owners(3);
    let (saga, now) = run(&mut owners, Faults { lose_request: 0.0, lose_answer: 0.0 }, 1);
    assert_eq!(saga.phase, Phase::Confirmed);
    assert!(saga.parts.iter().all(|p| p.status == PartStatus::Confirmed && p.receipt.is_some()));
    assert!(owners.iter_mut().all(|o| o.holds_something(now)));
    assert_eq!(saga.totals(), vec![("EUR".to_owned(), 300)]);
}

#[test]
fn one_refusal_releases_every_other_hold() {
    let mut owners = owners(3);
    owners[1].refuses_holds = true;
    let (saga, now) = run(&mut owners, Faults { lose_request: 0.0, lose_answer: 0.0 }, 2);
    assert_eq!(saga.phase, Phase::Failed);
    assert_eq!(saga.parts[1].refusal.as_ref().unwrap().code, RefusalCode::SoldOut);
    assert!(owners.iter_mut().all(|o| !o.holds_something(now)), "every hold released at once, not by expiry");
}

#[test]
fn a_cancelled_booking_cancels_every_part() {
    let mut owners = owners(2);
    let (mut saga, now) = run(&mut owners, Faults { lose_request: 0.0, lose_answer: 0.0 }, 3);
    assert!(saga.request_cancel(Timestamp(now)));
    for step in saga.next_steps(Timestamp(now)) {
        let outcome = owners[step.part].handle(&step.request, &saga.parts[step.part].spec, now);
        saga.apply(step.part, &step.request.op, outcome, Timestamp(now));
    }
    assert_eq!(saga.phase, Phase::Cancelled);
    assert!(owners.iter_mut().all(|o| !o.holds_something(now)));
    assert!(!saga.request_cancel(Timestamp(now)), "only a confirmed booking can be cancelled");
}

#[test]
fn an_owner_that_never_answers_is_abandoned_and_the_rest_released() {
    let mut owners = owners(2);
    let parts = owners.iter().enumerate().map(|(i, o)| Part::new(o.origin(), spec(i))).collect();
    let mut now = 0i64;
    let mut saga = Saga::new(9, 9, parts, Timestamp(now)).unwrap();
    while !saga.phase.is_terminal() {
        for step in saga.next_steps(Timestamp(now)) {
            let outcome = match step.part {
                0 => owners[0].handle(&step.request, &saga.parts[0].spec, now),
                _ => Outcome::Unreachable("connection refused".into()),
            };
            saga.apply(step.part, &step.request.op, outcome, Timestamp(now));
        }
        saga.advance(Timestamp(now));
        now = saga.next_wakeup().map_or(now + 1, |at| at.ms().max(now + 1));
        assert!(now < 10 * TTL_MS, "the saga must end");
    }
    assert_eq!(saga.phase, Phase::Failed);
    assert_eq!(saga.parts[1].status, PartStatus::Abandoned);
    assert_eq!(saga.parts[1].refusal.as_ref().unwrap().code, RefusalCode::OwnerUnreachable);
    assert!(!owners[0].holds_something(now));
}

proptest::proptest! {
    /// Lost requests, lost answers, slow steps (holds expire), refusals:
    /// the saga ends, and when it does, either every owner has the part
    /// booked or none holds anything.
    #[test]
    fn every_saga_ends_all_or_nothing(seed in 0u64..2_000, parts in 1u8..=4, refuse in proptest::option::of(0usize..4)) {
        let mut owners = owners(parts);
        if let Some(idx) = refuse.filter(|&i| i < parts as usize) {
            owners[idx].refuses_holds = true;
        }
        let faults = Faults { lose_request: 0.2, lose_answer: 0.2 };
        let (saga, now) = run(&mut owners, faults, seed);
        let booked: Vec<bool> = owners.iter_mut().map(|o| o.holds_something(now)).collect();
        match saga.phase {
            Phase::Confirmed => proptest::prop_assert!(booked.iter().all(|&b| b), "{booked:?}"),
            Phase::Failed => {
                // Held parts may still be live at an owner whose answers were
                // lost, but only until their expiry, and none is confirmed.
                let later = now + TTL_MS;
                let booked: Vec<bool> = owners.iter_mut().map(|o| o.holds_something(later)).collect();
                proptest::prop_assert!(booked.iter().all(|&b| !b), "{booked:?} {saga:#?}");
            }
            other => proptest::prop_assert!(false, "ended in {other:?}"),
        }
    }
}

#[test]
fn a_waiting_saga_holds_then_confirms_on_request_or_lets_go_at_expiry() {
    let mut owners = owners(2);
    let parts = owners.iter().enumerate().map(|(i, o)| Part::new(o.origin(), spec(i))).collect();
    let now = 1_000i64;
    let mut saga = Saga::waiting(3, 3, parts, Timestamp(now)).unwrap();
    let drive = |saga: &mut Saga, owners: &mut [FakeOwner], now: i64| {
        for step in saga.next_steps(Timestamp(now)) {
            let outcome = owners[step.part].handle(&step.request, &saga.parts[step.part].spec, now);
            saga.apply(step.part, &step.request.op, outcome, Timestamp(now));
        }
    };
    drive(&mut saga, &mut owners, now);
    assert_eq!(saga.phase, Phase::Held);
    assert_eq!(saga.held_until(), Some(Timestamp(now + TTL_MS)));
    assert!(saga.next_steps(Timestamp(now)).is_empty(), "nothing happens while the traveller decides");
    let mut expired = saga.clone();
    assert!(saga.confirm(Timestamp(now + 10)));
    drive(&mut saga, &mut owners, now + 10);
    assert_eq!(saga.phase, Phase::Confirmed);

    // Too late: the holds ran out, so confirming is refused and they are released.
    let late = Timestamp(now + TTL_MS);
    assert!(!expired.confirm(late));
    assert_eq!(expired.phase, Phase::Failed);
}

#[test]
fn a_saga_has_one_to_parts_max_parts() {
    let owners = owners(1);
    let parts = |n: usize| (0..n).map(|i| Part::new(owners[0].origin(), spec(i))).collect::<Vec<_>>();
    assert_eq!(Saga::new(1, 1, parts(0), Timestamp(0)).unwrap_err(), PartsOutOfRange(0));
    assert_eq!(Saga::waiting(1, 1, parts(PARTS_MAX + 1), Timestamp(0)).unwrap_err(), PartsOutOfRange(PARTS_MAX + 1));
    assert_eq!(Saga::new(1, 1, parts(PARTS_MAX), Timestamp(0)).unwrap().parts.len(), PARTS_MAX);
}
