//! The record store's rules, and the SQLite database's tables.

use caravan_model::{AriDay, AriRun, Timestamp};
use caravan_records::{sign_one, verify, Draft, Payload, Record, Verified};
use caravan_store::records::PutOutcome;
use caravan_store::{ledger_log, open_reader, open_writer, Records, Sync, DB_FILE};
use ed25519_dalek::SigningKey;

const NOW: Timestamp = Timestamp(1_893_456_000_000);

fn record(seed: u8, key: &str, version: u64, payload: Payload) -> Verified<Record> {
    let draft = Draft { key: key.into(), version, time: NOW, payload };
    verify(sign_one(&SigningKey::from_bytes(&[seed; 32]), &draft), NOW).unwrap()
}

/// Stores one record in a transaction of its own.
fn put(store: &Records, record: &Verified<Record>) -> PutOutcome {
    let mut tx = store.write(Sync::Relaxed);
    let outcome = tx.put(record, NOW).unwrap();
    tx.commit().unwrap();
    outcome
}

fn ari(available: u32) -> Payload {
    let day = AriDay { available, price_minor: 100, ..AriDay::default() };
    Payload::Ari(vec![AriRun { start: NOW.date(), days: 1, day }])
}

#[test]
fn newest_version_wins() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Records::open(dir.path()).unwrap();
    let inserted = || PutOutcome::Inserted { gone: vec![] };
    let first = record(1, "a", 2, ari(1));
    assert_eq!(put(&conn, &first), inserted());
    assert_eq!(put(&conn, &record(1, "a", 2, ari(1))), PutOutcome::Duplicate);
    assert_eq!(put(&conn, &record(1, "a", 1, ari(5))), PutOutcome::Stale { stored_version: 2 });
    assert_eq!(
        put(&conn, &record(1, "a", 3, ari(0))),
        PutOutcome::Replaced { previous_version: 2, gone: vec![(NOW.ms() as u64, first.id())] }
    );
    assert_eq!(put(&conn, &record(2, "a", 1, ari(0))), inserted(), "another origin");
    assert_eq!(conn.count().unwrap(), 2);
}

#[test]
fn a_withdrawal_is_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Records::open(dir.path()).unwrap();
    let availability = record(1, "a", 2, ari(1));
    put(&conn, &availability);
    assert_eq!(
        put(&conn, &record(1, "a", 3, Payload::Withdrawal)),
        PutOutcome::Inserted { gone: vec![(NOW.ms() as u64, availability.id())] }
    );
    assert_eq!(conn.count().unwrap(), 1, "the ARI record went with the withdrawal");
    assert_eq!(put(&conn, &record(1, "a", 9, ari(1))), PutOutcome::Withdrawn);
}

#[test]
fn equivocation_freezes_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Records::open(dir.path()).unwrap();
    put(&conn, &record(1, "a", 4, ari(1)));
    put(&conn, &record(1, "b", 4, ari(1)));
    let outcome = put(&conn, &record(1, "a", 4, ari(2)));
    assert!(matches!(outcome, PutOutcome::Equivocation(_)));
    assert_eq!(conn.count().unwrap(), 0);
    assert_eq!(put(&conn, &record(1, "c", 5, ari(1))), PutOutcome::Frozen);
    assert_eq!(conn.equivocations().unwrap().len(), 1);
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
    /// Records arrive in transactions of any size: a transaction reads its
    /// own writes, so two versions of one slot in one transaction obey the
    /// same rules as across transactions.
    #[test]
    fn the_newest_version_wins_in_any_arrival_order(
        ((liar, order), per_tx) in any::<bool>().prop_flat_map(|liar| {
            let n = histories(liar).len();
            (Just(liar), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        }).prop_flat_map(|drawn| (Just(drawn), 1..8usize))
    ) {
        use caravan_replication::{MemoryStore, RecordStore};
        let all = histories(liar);
        let dir = tempfile::tempdir().unwrap();
        let store = Records::open(dir.path()).unwrap();
        let mut model = MemoryStore::default();
        for chunk in order.chunks(per_tx) {
            let mut tx = store.write(Sync::Relaxed);
            for &i in chunk {
                tx.put(&all[i], NOW).unwrap();
                match model.put(all[i].clone(), NOW) {
                    Ok(_) => {}
                    Err(never) => match never {},
                }
            }
            tx.commit().unwrap();
        }
        let Ok(expected) = model.items();
        prop_assert_eq!(store.items().unwrap(), expected.clone());
        for (_, id) in &expected {
            let Ok(held) = model.get(id);
            prop_assert_eq!(store.signed_by_id(id).unwrap(), held);
        }
        // A lie is caught only if both versions meet in the slot.
        let frozen: Vec<_> = store.equivocations().unwrap().into_iter().map(|(origin, _)| origin).collect();
        prop_assert_eq!(frozen, model.frozen().copied().collect::<Vec<_>>());
    }
}

#[test]
fn a_transaction_is_kept_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let kept = record(1, "a", 1, ari(1));
    {
        let store = Records::open(dir.path()).unwrap();
        let mut tx = store.write(Sync::Full);
        tx.put(&kept, NOW).unwrap();
        tx.bump_mark().unwrap();
        tx.commit().unwrap();
        let mut dropped = store.write(Sync::Full);
        dropped.put(&record(1, "b", 1, ari(1)), NOW).unwrap();
        dropped.bump_mark().unwrap();
        drop(dropped);
        store.fail_writes(true);
        let mut refused = store.write(Sync::Full);
        refused.put(&record(1, "c", 1, ari(1)), NOW).unwrap();
        assert!(refused.commit().is_err(), "a failing store refuses the commit");
    }
    let store = Records::open(dir.path()).unwrap();
    assert_eq!(store.items().unwrap(), vec![(NOW.ms() as u64, kept.id())]);
    assert_eq!(store.mark().unwrap(), 1);
    let slot = store.signed_of_key(kept.origin, "a", &[caravan_records::Kind::Ari]).unwrap();
    assert_eq!(slot, vec![(caravan_records::Kind::Ari, kept.encode())]);
}

#[test]
fn records_kept_in_sqlite_move_to_the_record_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    let (listing, lie) = (record(1, "a", 2, ari(1)), record(2, "b", 1, ari(1)));
    conn.execute(
        "INSERT INTO records (origin, kind, key, version, time_ms, id, signed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        caravan_store::rusqlite::params![
            &listing.origin.0[..],
            listing.kind as i64,
            listing.key,
            listing.version as i64,
            listing.time.ms(),
            &listing.id().0[..],
            listing.encode()
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO equivocations (origin, proof, detected_ms) VALUES (?1, ?2, 7)",
        caravan_store::rusqlite::params![&lie.origin.0[..], vec![1u8, 2, 3]],
    )
    .unwrap();
    conn.execute("UPDATE records_mark SET commits = 41", []).unwrap();

    let store = Records::open(&dir.path().join("records")).unwrap();
    assert_eq!(caravan_store::records::move_from_sqlite(&mut conn, &store).unwrap(), 1);
    assert_eq!(store.items().unwrap(), vec![(NOW.ms() as u64, listing.id())]);
    assert_eq!(store.signed_by_id(&listing.id()).unwrap(), Some(listing.encode()));
    assert_eq!(store.equivocations().unwrap(), vec![(lie.origin, vec![1, 2, 3])]);
    assert_eq!(store.mark().unwrap(), 41, "a catalog snapshot stays in step");
    assert_eq!(put(&store, &record(1, "a", 2, ari(1))), PutOutcome::Duplicate);
    // Moved once: the tables are gone, and a second start moves nothing.
    assert_eq!(caravan_store::records::move_from_sqlite(&mut conn, &store).unwrap(), 0);
    assert!(conn.prepare("SELECT 1 FROM records").is_err());
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
