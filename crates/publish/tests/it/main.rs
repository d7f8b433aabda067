//! Replaying an owner's command log signs byte-identical records.

use caravan_ledger::{Command, HoldId, HoldRequest, Ledger};
use caravan_model::*;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const T0: Timestamp = Timestamp(1_893_456_000_000);

fn listing(idx: u8) -> Listing {
    caravan_test_utils::stay(&format!("flat-{idx}"), "Porto", 3)
}

fn command() -> impl Strategy<Value = Command> {
    let date = |offset: i32| T0.date().add_days(offset);
    prop_oneof![
        (0u8..6).prop_map(|i| Command::CreateListing(listing(i))),
        (0u8..6, 0i32..20, 1i32..5, 0u32..4, 1i64..30_000).prop_map(move |(i, from, len, available, price)| {
            Command::SetAri {
                listing: listing(i).id,
                from: date(from),
                to: date(from + len),
                patch: AriPatch { available: Some(available), price_minor: Some(price), ..AriPatch::default() },
            }
        }),
        (0u8..6, 0i32..20, 1i32..4, 1u32..3).prop_map(move |(i, from, nights, units)| {
            Command::Hold {
                idempotency_key: None,
                request: HoldRequest::Stay {
                    listing: listing(i).id,
                    check_in: date(from),
                    check_out: date(from + nights),
                    units,
                    guests: 1,
                },
                ttl_ms: 60_000,
                expected_total_minor: None,
            }
        }),
        (1u64..20).prop_map(|h| Command::Confirm { idempotency_key: None, hold: HoldId(h) }),
        (1u64..20).prop_map(|h| Command::Cancel { idempotency_key: None, hold: HoldId(h) }),
        (0u8..6).prop_map(|i| Command::WithdrawListing(listing(i).id)),
        Just(Command::Publish),
        Just(Command::Publish),
    ]
}

/// Applies the log, signing at every publishing point; all records' bytes in order.
fn replay(log: &[(Command, Timestamp)], key: &SigningKey) -> (Ledger, Vec<Vec<u8>>) {
    let mut ledger = Ledger::new();
    let mut records = Vec::new();
    for (index, (command, now)) in log.iter().enumerate() {
        let applied = ledger.apply(command, *now);
        let version = index as u64 + 1;
        for signed in caravan_publish::sign(key, applied.publications, version, *now) {
            records.push(stored_bytes(&signed));
        }
    }
    (ledger, records)
}

fn stored_bytes(signed: &caravan_records::proto::SignedRecord) -> Vec<u8> {
    // Verify like any peer would, then keep the stored form.
    caravan_records::verify(signed.clone(), Timestamp(i64::MAX / 2)).expect("own records verify").encode()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replay_signs_byte_identical_records(commands in prop::collection::vec((command(), 0i64..90_000), 1..80)) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let mut now = T0;
        let log: Vec<(Command, Timestamp)> = commands
            .into_iter()
            .map(|(command, gap_ms)| {
                now = now.saturating_add_ms(gap_ms);
                (command, now)
            })
            .collect();
        let (first_state, first_records) = replay(&log, &key);
        let (second_state, second_records) = replay(&log, &key);
        prop_assert_eq!(first_state, second_state);
        prop_assert_eq!(first_records, second_records);
    }
}
