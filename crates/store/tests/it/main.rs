//! The records table's rules and the ledger log.

use caravan_model::{AriDay, AriRun, Timestamp};
use caravan_records::{sign_one, verify, Draft, Payload, Record, Verified};
use caravan_store::records::{self, PutOutcome};
use caravan_store::{ledger_log, open_reader, open_writer, DB_FILE};
use ed25519_dalek::SigningKey;

const NOW: Timestamp = Timestamp(1_893_456_000_000);

fn record(seed: u8, key: &str, version: u64, payload: Payload) -> Verified<Record> {
    let draft = Draft { key: key.into(), version, time: NOW, payload };
    verify(sign_one(&SigningKey::from_bytes(&[seed; 32]), &draft), NOW).unwrap()
}

fn ari(available: u32) -> Payload {
    let day = AriDay { available, price_minor: 100, ..AriDay::default() };
    Payload::Ari(vec![AriRun { start: NOW.date(), days: 1, day }])
}

#[test]
fn newest_version_wins() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    let inserted = || PutOutcome::Inserted { gone: vec![] };
    let first = record(1, "a", 2, ari(1));
    assert_eq!(records::put(&conn, &first, NOW).unwrap(), inserted());
    assert_eq!(records::put(&conn, &record(1, "a", 2, ari(1)), NOW).unwrap(), PutOutcome::Duplicate);
    assert_eq!(records::put(&conn, &record(1, "a", 1, ari(5)), NOW).unwrap(), PutOutcome::Stale { stored_version: 2 });
    assert_eq!(
        records::put(&conn, &record(1, "a", 3, ari(0)), NOW).unwrap(),
        PutOutcome::Replaced { previous_version: 2, gone: vec![(NOW.ms() as u64, first.id())] }
    );
    assert_eq!(records::put(&conn, &record(2, "a", 1, ari(0)), NOW).unwrap(), inserted(), "another origin");
    assert_eq!(records::count(&conn).unwrap(), 2);
}

#[test]
fn a_withdrawal_is_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    let availability = record(1, "a", 2, ari(1));
    records::put(&conn, &availability, NOW).unwrap();
    assert_eq!(
        records::put(&conn, &record(1, "a", 3, Payload::Withdrawal), NOW).unwrap(),
        PutOutcome::Inserted { gone: vec![(NOW.ms() as u64, availability.id())] }
    );
    assert_eq!(records::count(&conn).unwrap(), 1, "the ARI record went with the withdrawal");
    assert_eq!(records::put(&conn, &record(1, "a", 9, ari(1)), NOW).unwrap(), PutOutcome::Withdrawn);
}

#[test]
fn equivocation_freezes_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    records::put(&conn, &record(1, "a", 4, ari(1)), NOW).unwrap();
    records::put(&conn, &record(1, "b", 4, ari(1)), NOW).unwrap();
    let outcome = records::put(&conn, &record(1, "a", 4, ari(2)), NOW).unwrap();
    assert!(matches!(outcome, PutOutcome::Equivocation(_)));
    assert_eq!(records::count(&conn).unwrap(), 0);
    assert_eq!(records::put(&conn, &record(1, "c", 5, ari(1)), NOW).unwrap(), PutOutcome::Frozen);
    assert_eq!(records::equivocations(&conn).unwrap().len(), 1);
}

/// Every version of three keys of two origins (withdrawals among them),
/// and, when `liar`, a second record for one slot and version.
fn histories(liar: bool) -> Vec<Verified<Record>> {
    let mut all = Vec::new();
    for seed in [1, 2] {
        for key in ["a", "b", "c"] {
            for version in 1..=4 {
                let payload = match (key, version) {
                    ("c", 3) => Payload::Withdrawal,
                    _ => ari(version as u32 * 10 + seed as u32),
                };
                all.push(record(seed, key, version, payload));
            }
        }
    }
    if liar {
        all.push(record(2, "b", 2, ari(99)));
    }
    all
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever order records arrive in, the store holds what the
    /// replication core's model holds: the newest version of each slot,
    /// nothing after a withdrawal, nothing of a frozen origin.
    #[test]
    fn the_newest_version_wins_in_any_arrival_order(
        (liar, order) in any::<bool>().prop_flat_map(|liar| {
            let n = histories(liar).len();
            (Just(liar), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        })
    ) {
        use caravan_replication::{MemoryStore, RecordStore};
        let all = histories(liar);
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
        let mut model = MemoryStore::default();
        for &i in &order {
            records::put(&conn, &all[i], NOW).unwrap();
            match model.put(all[i].clone(), NOW) {
                Ok(_) => {}
                Err(never) => match never {},
            }
        }
        let Ok(expected) = model.items();
        prop_assert_eq!(records::items(&conn).unwrap(), expected.clone());
        for (_, id) in &expected {
            let Ok(held) = model.get(id);
            prop_assert_eq!(records::signed_by_id(&conn, id).unwrap(), held);
        }
        // A lie is caught only if both versions meet in the slot.
        let frozen: Vec<_> = records::equivocations(&conn).unwrap().into_iter().map(|(origin, _)| origin).collect();
        prop_assert_eq!(frozen, model.frozen().copied().collect::<Vec<_>>());
    }
}

#[test]
fn the_ledger_log_reads_back_in_order_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let conn = open_writer(&path).unwrap();
        assert_eq!(ledger_log::last_index(&conn).unwrap(), 0);
        for index in 1..=3 {
            let entry = ledger_log::Entry { index, now_ms: index as i64, command: vec![index as u8], reply: vec![] };
            ledger_log::append(&conn, &entry).unwrap();
        }
    }
    let conn = open_writer(&path).unwrap();
    assert_eq!(ledger_log::last_index(&conn).unwrap(), 3);
    let mut seen = Vec::new();
    ledger_log::for_each(&conn, 1, |entry| {
        seen.push(entry.index);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![2, 3]);
    let reader = open_reader(&path).unwrap();
    assert_eq!(ledger_log::last_index(&reader).unwrap(), 3);
    assert!(reader.execute("DELETE FROM ledger_log", []).is_err(), "readers cannot write");
}

#[test]
fn an_entry_index_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    let entry = ledger_log::Entry { index: 1, now_ms: 0, command: vec![], reply: vec![] };
    ledger_log::append(&conn, &entry).unwrap();
    assert!(ledger_log::append(&conn, &entry).is_err());
}

#[test]
fn accounts_tokens_and_managers() {
    use caravan_store::users::{self, TokenRow};
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    let ada = users::create(&conn, "ada@example.org", "$argon2id$x", "traveller", false, 1).unwrap().unwrap();
    assert_eq!(
        users::create(&conn, "ada@example.org", "other", "admin", true, 2).unwrap(),
        None,
        "one account per email"
    );
    assert!(users::set_role(&conn, ada, "provider").unwrap() && users::set_verified(&conn, ada).unwrap());
    let row = users::by_email(&conn, "ada@example.org").unwrap().unwrap();
    assert_eq!((row.id, row.role.as_str(), row.verified), (ada, "provider", true));

    let reset = TokenRow {
        hash: [1; 32],
        kind: "password_reset".into(),
        user_id: ada,
        name: None,
        created_ms: 1,
        expires_ms: Some(9),
    };
    users::put_token(&conn, &reset).unwrap();
    assert_eq!(users::take_token(&conn, &[1; 32]).unwrap(), Some(reset));
    assert_eq!(users::take_token(&conn, &[1; 32]).unwrap(), None, "a single-use token is spent once");

    users::add_manager(&conn, "room-1", ada).unwrap();
    users::add_manager(&conn, "room-1", ada).unwrap();
    assert_eq!(users::managers(&conn, "room-1").unwrap(), vec![ada]);
    assert!(users::remove_manager(&conn, "room-1", ada).unwrap());

    users::set_throttle(&conn, "ada@example.org", 6, 99).unwrap();
    assert_eq!(users::throttle(&conn, "ada@example.org").unwrap(), (6, 99));
    users::set_throttle(&conn, "ada@example.org", 0, 0).unwrap();
    assert_eq!(users::throttle(&conn, "ada@example.org").unwrap(), (0, 0));
}
