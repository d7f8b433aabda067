//! Random interleavings of hold/confirm/cancel/expire from many clients.

use super::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Hold { client: u8, listing: u8, first: i32, nights: i32, units: u32, keyed: bool },
    Confirm { hold: u8, keyed: bool },
    Cancel { hold: u8 },
    Advance { minutes: i64 },
    Expire,
    Reopen { listing: u8, day: i32, available: u32 },
    Publish,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..8, 0u8..2, 0i32..6, 1i32..4, 1u32..4, any::<bool>())
            .prop_map(|(client, listing, first, nights, units, keyed)| Step::Hold { client, listing, first, nights, units, keyed }),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(hold, keyed)| Step::Confirm { hold, keyed }),
        1 => any::<u8>().prop_map(|hold| Step::Cancel { hold }),
        2 => (1i64..20).prop_map(|minutes| Step::Advance { minutes }),
        1 => Just(Step::Expire),
        1 => (0u8..2, 0i32..8, 0u32..5).prop_map(|(listing, day, available)| Step::Reopen { listing, day, available }),
        1 => Just(Step::Publish),
    ]
}

fn listing_name(idx: u8) -> String {
    format!("room-{idx}")
}

fn run(steps: &[Step]) -> Harness {
    let mut h = Harness::new();
    for idx in 0..2 {
        h.ok(Command::CreateListing(stay(&listing_name(idx), 4)));
        h.ok(open(&listing_name(idx), 0, 10, 3, 5_000));
    }
    for (seq, step) in steps.iter().enumerate() {
        let command = match step.clone() {
            Step::Hold { client, listing, first, nights, units, keyed } => {
                let Command::Hold { request, ttl_ms, .. } =
                    hold_stay(&listing_name(listing), first, first + nights, units)
                else {
                    unreachable!()
                };
                let idempotency_key = keyed.then(|| IdempotencyKey::parse(&format!("c{client}-{}", seq % 7)).unwrap());
                Command::Hold { idempotency_key, request, ttl_ms, expected_total_minor: None }
            }
            Step::Confirm { hold, keyed } => Command::Confirm {
                idempotency_key: keyed.then(|| IdempotencyKey::parse(&format!("confirm-{hold}")).unwrap()),
                hold: HoldId(hold as u64 % 24 + 1),
            },
            Step::Cancel { hold } => Command::Cancel { idempotency_key: None, hold: HoldId(hold as u64 % 24 + 1) },
            Step::Advance { minutes } => {
                h.advance_ms(minutes * MINUTE_MS);
                continue;
            }
            Step::Expire => Command::ExpireHolds,
            Step::Reopen { listing, day, available } => open(&listing_name(listing), day, day + 1, available, 5_000),
            Step::Publish => Command::Publish,
        };
        // `Harness::apply` checks every invariant, `held + booked <=
        // allotment` first among them, after every command.
        h.apply(command);
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_never_oversell(steps in prop::collection::vec(step(), 1..120)) {
        let h = run(&steps);
        for state in h.ledger.listings() {
            for day in state.days.values() {
                prop_assert!(day.held + day.booked <= day.terms.available);
            }
        }
        // Every hold resolved at most once: a resolved state never changes
        // back, which `check_invariants` already tied to the day counters.
        for hold in h.ledger.holds() {
            if hold.state == caravan_ledger::HoldState::Held {
                prop_assert!(hold.expires_at > h.ledger.last_now());
            }
        }
    }

    #[test]
    fn replaying_the_log_reproduces_state_and_replies(steps in prop::collection::vec(step(), 1..120)) {
        let h = run(&steps);
        let mut replica = Ledger::new();
        let mut original = Ledger::new();
        for (command, now) in &h.log {
            let a = original.apply(command, *now);
            let b = replica.apply(command, *now);
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(&replica, &h.ledger);
    }

    #[test]
    fn batching_commands_changes_no_answer(
        steps in prop::collection::vec(step(), 1..120),
        sizes in prop::collection::vec(1usize..6, 1..40),
    ) {
        let h = run(&steps);
        let (mut alone, mut batched) = (Ledger::new(), Ledger::new());
        let mut sizes = sizes.iter().cycle();
        let mut log = h.log.iter().peekable();
        while let Some((command, now)) = log.next() {
            // Consecutive commands of one time that may share an entry.
            let mut group = vec![command.clone()];
            if command.batchable() {
                let size = *sizes.next().expect("cycles");
                while group.len() < size {
                    match log.peek() {
                        Some((next, at)) if next.batchable() && at == now => group.push(next.clone()),
                        _ => break,
                    }
                    log.next();
                }
            }
            let answers_alone: Vec<_> = group.iter().map(|c| alone.apply(c, *now).reply).collect();
            let answers_batched = if group.len() == 1 {
                vec![batched.apply(&group[0], *now).reply]
            } else {
                match batched.apply(&Command::Batch(group), *now).reply {
                    Ok(Reply::Batch(answers)) => answers,
                    other => panic!("a batch answered {other:?}"),
                }
            };
            prop_assert_eq!(answers_alone, answers_batched);
        }
        batched.check_invariants();
        prop_assert_eq!(alone, batched);
    }
}
