//! The replication core over the node's real store: two record stores
//! reconcile and end with the same records and the same catalog.

use caravan_model::{AriDay, AriRun, Timestamp};
use caravan_node::replica_store::TxRecords;
use caravan_records::{sign_bundle, sign_one, verify_batch, Draft, Payload};
use caravan_replication::{Action, Config, RecordStore, Replica};
use caravan_store::{Records, Sync};

const NOW: Timestamp = Timestamp(1_893_456_000_000);

fn store(dir: &tempfile::TempDir, name: &str) -> Records {
    Records::open(&dir.path().join(name)).unwrap()
}

/// Runs `step` in one transaction on `store` and commits it, as the
/// writer does with each batch of replication events.
fn in_tx<R>(store: &Records, step: impl FnOnce(&mut TxRecords<'_, '_>) -> R) -> R {
    let mut tx = store.write(Sync::Relaxed);
    let out = step(&mut TxRecords::new(&mut tx));
    tx.commit().unwrap();
    out
}

/// Hands every `Send` between the two replicas until neither has more to say.
fn converse(a: &mut Replica<u8>, db_a: &Records, b: &mut Replica<u8>, db_b: &Records) {
    for _ in 0..1_000 {
        let mut moved = false;
        for action in std::iter::from_fn(|| a.poll_action()).collect::<Vec<_>>() {
            if let Action::Send(2, message) = action {
                in_tx(db_b, |store| b.handle_message(1, message, NOW, store)).unwrap();
                moved = true;
            }
        }
        for action in std::iter::from_fn(|| b.poll_action()).collect::<Vec<_>>() {
            if let Action::Send(1, message) = action {
                in_tx(db_a, |store| a.handle_message(2, message, NOW, store)).unwrap();
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
    panic!("the conversation did not end");
}

#[test]
fn two_record_stores_converge_to_the_same_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let (db_a, db_b) = (store(&dir, "a"), store(&dir, "b"));
    let hotel = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let chain = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let ari = |available| {
        Payload::Ari(vec![AriRun {
            start: NOW.date(),
            days: 14,
            day: AriDay { available, price_minor: 15_000, ..AriDay::default() },
        }])
    };
    // A holds a hotel's listings and availability; B a chain's bundle.
    for idx in 0..40u32 {
        let id = format!("room-{idx}");
        let listing = caravan_test_utils::stay(&id, "Lyon", 4);
        let drafts = [
            Draft { key: id.clone(), version: 1, time: NOW, payload: Payload::Listing(listing) },
            Draft { key: id, version: 2, time: NOW, payload: ari(idx % 4) },
        ];
        for record in verify_batch(drafts.iter().map(|d| sign_one(&hotel, d)).collect(), NOW) {
            in_tx(&db_a, |store| store.put(record.unwrap(), NOW)).unwrap();
        }
    }
    let bundle: Vec<Draft> =
        (0..30).map(|idx| Draft { key: format!("suite-{idx}"), version: 7, time: NOW, payload: ari(2) }).collect();
    for record in verify_batch(sign_bundle(&chain, &bundle), NOW) {
        in_tx(&db_b, |store| store.put(record.unwrap(), NOW)).unwrap();
    }

    let config = Config { fetch_ids_max: 16, ..Config::default() };
    let (mut a, mut b) = (Replica::<u8>::new(config.clone(), 1), Replica::<u8>::new(config, 2));
    a.handle_connected(2, NOW);
    b.handle_connected(1, NOW);
    in_tx(&db_a, |store| a.handle_timeout(NOW, store)).unwrap();
    in_tx(&db_b, |store| b.handle_timeout(NOW, store)).unwrap();
    converse(&mut a, &db_a, &mut b, &db_b);

    assert_eq!(db_a.items().unwrap(), db_b.items().unwrap());
    assert_eq!(db_a.count().unwrap(), 110);
    let (catalog_a, catalog_b) =
        (caravan_writer::catalog::rebuild(&db_a, NOW).unwrap(), caravan_writer::catalog::rebuild(&db_b, NOW).unwrap());
    assert_eq!(catalog_b.listing_count(), 40);
    assert_eq!(catalog_a.digest(), catalog_b.digest());
}

/// The digest of a running node's catalog.
fn catalog_digest(node: &caravan_node::Node) -> [u8; 32] {
    node.read_catalog(|catalog| catalog.digest())
}

/// Stands in for the network task: carries one node's replication actions
/// to the other as events.
fn carry(mut actions: tokio::sync::mpsc::Receiver<Action<String>>, from: &'static str, to: caravan_node::Node) {
    use caravan_node::ReplicationEvent;
    tokio::spawn(async move {
        while let Some(action) = actions.recv().await {
            let event = match action {
                Action::Gossip(envelope) => ReplicationEvent::Gossip { from: from.into(), envelope },
                Action::Send(_, message) => ReplicationEvent::Message { from: from.into(), message },
                Action::Validated { .. } => continue,
            };
            if to.replicate(event).await.is_err() {
                return;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owners_changes_reach_another_node_through_its_writer() {
    use crate::{stay_hold, TestNode};
    use caravan_node::ReplicationEvent;
    let (owner, agency) = (TestNode::start().await, TestNode::start().await);
    carry(owner.node.take_replication_actions().unwrap(), "owner", agency.node.clone());
    carry(agency.node.take_replication_actions().unwrap(), "agency", owner.node.clone());
    owner.node.replicate(ReplicationEvent::Connected("agency".into())).await.unwrap();
    agency.node.replicate(ReplicationEvent::Connected("owner".into())).await.unwrap();

    let id = owner.hotel(3).await;
    let (status, _) = owner.call("POST", "/api/v1/holds", Some(stay_hold(&id, 2, 4, 2))).await;
    assert_eq!(status, axum::http::StatusCode::CREATED);

    // The owner publishes the listing, then availability after the hold:
    // the agency's catalog must show 3 - 2 = 1 room left on the held night,
    // and be the owner's catalog exactly.
    let night = caravan_model::Date::parse(&crate::day(2)).unwrap();
    let mut same = false;
    for _ in 0..500 {
        let left = crate::available_on(&agency.node, night);
        if left == Some(1) && catalog_digest(&owner.node) == catalog_digest(&agency.node) {
            same = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(same, "the agency's catalog never caught up with the owner's");
}

/// ARI records of one origin, `per_envelope` to a gossip envelope.
fn flood(envelopes: usize, per_envelope: usize, now: Timestamp) -> Vec<Vec<u8>> {
    use caravan_records::proto;
    use prost::Message as _;
    let chain = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
    let day = AriDay { available: 2, price_minor: 9_000, ..AriDay::default() };
    (0..envelopes)
        .map(|envelope| {
            let records = (0..per_envelope)
                .map(|idx| {
                    let runs = vec![AriRun { start: now.date(), days: 30, day }];
                    let key = format!("room-{envelope}-{idx}");
                    sign_one(&chain, &Draft { key, version: 1, time: now, payload: Payload::Ari(runs) })
                })
                .collect();
            proto::Envelope { records, ..proto::Envelope::default() }.encode_to_vec()
        })
        .collect()
}

fn wall_clock() -> Timestamp {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    Timestamp(now_ms as i64)
}

/// Peers' records go through the verifier stage to the writer: a flood of
/// them is all stored, and a hold made meanwhile is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_peers_records_is_stored_while_holds_are_answered() {
    use crate::{stay_hold, TestNode};
    use caravan_node::ReplicationEvent;

    let owner = TestNode::start().await;
    let id = owner.hotel(3).await;
    let (envelopes, per_envelope) = (200, 100);
    for envelope in flood(envelopes, per_envelope, wall_clock()) {
        owner.node.replicate(ReplicationEvent::Gossip { from: "peer".into(), envelope }).await.unwrap();
    }
    let (status, _) = owner.call("POST", "/api/v1/holds", Some(stay_hold(&id, 2, 4, 1))).await;
    assert_eq!(status, axum::http::StatusCode::CREATED);

    let stored = || owner.node.stats().replication.lock().unwrap().records_new;
    let total = (envelopes * per_envelope) as u64;
    for _ in 0..3_000 {
        if stored() == total {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("only {} of {total} peers' records were stored", stored());
}

/// The writer's jobs (what bookings wait for) have their own lane: with
/// tens of thousands of checked records already waiting for it, a job
/// runs after at most one transaction of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_runs_jobs_before_a_backlog_of_peers_records() {
    use caravan_node::ReplicationEvent;
    use caravan_writer::{Job, Write, Writer, WriterStats, REPLICATION_RECORDS_MAX};
    use tokio::sync::mpsc;

    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::new(Config::default(), 1);
    let checker = replica.checker();
    let (actions, _actions_rx) = mpsc::channel(caravan_node::ACTIONS_MAX);
    let records = store(&dir, "records");
    let writer = Writer {
        conn: caravan_store::open_writer(&dir.path().join("writer.sqlite")).unwrap(),
        records: records.clone(),
        key: ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        stats: std::sync::Arc::new(WriterStats::default()),
        clock: wall_clock,
        replica,
        actions,
        catalog: std::sync::Arc::default(),
        catalog_file: None,
    };
    let stats = writer.stats.clone();
    let (envelopes, per_envelope) = (200, 100);
    let (replication, replication_rx) = mpsc::channel(envelopes);
    for envelope in flood(envelopes, per_envelope, wall_clock()) {
        let checked = checker.check(ReplicationEvent::Gossip { from: "peer".into(), envelope }, wall_clock());
        assert_eq!(checked.records(), per_envelope);
        replication.send(checked).await.unwrap();
    }
    let (jobs, jobs_rx) = mpsc::channel(8);
    let (seen_tx, seen) = std::sync::mpsc::sync_channel(1);
    let count_stored = Write {
        run: Box::new(move |_| {
            seen_tx.send(records.count().unwrap()).unwrap();
            true
        }),
        deliver: Box::new(|outcome| outcome.unwrap()),
    };
    jobs.send(Job::Write(count_stored)).await.unwrap();

    let runtime = tokio::runtime::Handle::current();
    let thread = std::thread::spawn(move || writer.run(jobs_rx, replication_rx, runtime));
    let stored_before = tokio::task::spawn_blocking(move || seen.recv().unwrap()).await.unwrap();
    assert!(
        stored_before <= REPLICATION_RECORDS_MAX as u64,
        "the job waited behind {stored_before} records, more than one transaction's {REPLICATION_RECORDS_MAX}"
    );

    let total = (envelopes * per_envelope) as u64;
    for _ in 0..3_000 {
        if stats.replication.lock().unwrap().records_new == total {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stats.replication.lock().unwrap().records_new, total, "the backlog was stored");

    // Peers' records commit without an fsync; the writer's jobs are durable.
    let (sync_tx, sync) = std::sync::mpsc::sync_channel(1);
    let read_sync = Write {
        run: Box::new(move |conn| {
            sync_tx.send(conn.pragma_query_value(None, "synchronous", |row| row.get::<_, i64>(0)).unwrap()).unwrap();
            true
        }),
        deliver: Box::new(|outcome| outcome.unwrap()),
    };
    jobs.send(Job::Write(read_sync)).await.unwrap();
    let level = tokio::task::spawn_blocking(move || sync.recv().unwrap()).await.unwrap();
    assert_eq!(level, 2, "synchronous=FULL for the writer's jobs");
    drop(jobs);
    tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
}
