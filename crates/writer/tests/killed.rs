//! A process killed with SIGKILL in the middle of storing peers' records
//! loses none of the transactions it committed and holds no record half
//! written.
//!
//! The test runs itself again as a child process that stores records as
//! the writer does (batches through the replication core's store, each
//! batch one transaction committed without fsync, as peers' records are)
//! and says after each commit which batch it committed; the parent kills
//! it mid-batch and opens what it left.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use caravan_model::{AriDay, AriRun, Timestamp};
use caravan_records::{proto, sign_one, verify, Draft, Payload, Record, Verified};
use caravan_replication::RecordStore;
use caravan_store::{Records, Sync};
use caravan_writer::replica_store::TxRecords;
use ed25519_dalek::SigningKey;
use prost::Message as _;

const NOW: Timestamp = Timestamp(1_893_456_000_000);
/// Set in the child's environment: the directory to ingest into.
const CHILD: &str = "CARAVAN_TEST_INGEST_INTO";
const BATCH: u64 = 200;
/// Keys the batches cycle through: later batches replace earlier records.
const KEYS: u64 = 3_000;

/// Record `n` of the stream: key `n % KEYS`, a version that grows with `n`.
fn record(key: &SigningKey, n: u64) -> Verified<Record> {
    let day = AriDay { available: (n % 7) as u32, price_minor: 10_000 + n as i64, ..AriDay::default() };
    let draft = Draft {
        key: format!("listing-{}", n % KEYS),
        version: n / KEYS + 1,
        time: NOW,
        payload: Payload::Ari(vec![AriRun { start: NOW.date(), days: 30, day }]),
    };
    verify(sign_one(key, &draft), NOW).expect("a record we signed verifies")
}

/// The child: stores batch after batch until it is killed.
#[test]
fn ingest_until_killed() {
    let Ok(dir) = std::env::var(CHILD) else { return };
    let key = SigningKey::from_bytes(&[7; 32]);
    let records = Records::open(std::path::Path::new(&dir)).unwrap();
    for batch in 0.. {
        let mut tx = records.write(Sync::Relaxed);
        let mut store = TxRecords::new(&mut tx);
        for n in batch * BATCH..(batch + 1) * BATCH {
            store.put(record(&key, n), NOW).unwrap();
        }
        tx.commit().unwrap();
        println!("committed {batch}");
    }
}

/// The child, killed however the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_store_killed_mid_ingestion_keeps_every_commit_and_no_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(std::env::current_exe().unwrap())
            .args(["ingest_until_killed", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut committed = None;
    for line in BufReader::new(child.0.stdout.take().unwrap()).lines() {
        let Some(batch) = line.unwrap().strip_prefix("committed ").map(|b| b.parse::<u64>().unwrap()) else {
            continue;
        };
        committed = Some(batch);
        // Past one round of every key, so versions are being replaced.
        if batch >= 2 * KEYS / BATCH {
            child.0.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.0.wait().unwrap();
    let committed = committed.expect("the child committed batches");

    let records = Records::open(dir.path()).unwrap();
    // Every key holds at least the version its last committed record gave it.
    let through = (committed + 1) * BATCH;
    let mut held = Vec::new();
    records
        .for_each(|stored| {
            let signed = proto::SignedRecord::decode(stored.signed.as_slice()).expect("a whole record");
            let record = verify(signed, NOW).expect("a stored record verifies");
            assert_eq!((record.id(), &record.key, record.version), (stored.id, &stored.key, stored.version));
            let key: u64 = stored.key.strip_prefix("listing-").unwrap().parse().unwrap();
            let last_committed = (0..through).rev().find(|n| n % KEYS == key).unwrap();
            let committed_version = last_committed / KEYS + 1;
            assert!(stored.version >= committed_version, "{} lost its committed version", stored.key);
            held.push((stored.time_ms as u64, stored.id, stored.signed));
            Ok(())
        })
        .unwrap();
    assert_eq!(held.len() as u64, KEYS, "one record per key, each whole");
    // The indexes name exactly the records held: no transaction half kept.
    let mut by_time: Vec<_> = held.iter().map(|(time, id, _)| (*time, *id)).collect();
    by_time.sort();
    assert_eq!(records.items().unwrap(), by_time);
    for (_, id, signed) in &held {
        assert_eq!(records.signed_by_id(id).unwrap().as_ref(), Some(signed));
    }
}
