//! The replication core, driven by hand: events in, actions out.

use caravan_model::{AriDay, AriRun, Timestamp};
use caravan_records::{proto, sign_one, verify, Draft, Payload, Record, Verified};
use caravan_replication::{Action, Config, MemoryStore, Message, Put, RecordStore, Replica, Verdict};
use ed25519_dalek::SigningKey;
use prost::Message as _;

const NOW: Timestamp = Timestamp(1_893_456_000_000);

fn record(seed: u8, listing: u32, version: u64, available: u32) -> Verified<Record> {
    let draft = Draft {
        key: format!("listing-{listing}"),
        version,
        time: NOW,
        payload: Payload::Ari(vec![AriRun {
            start: NOW.date(),
            days: 7,
            day: AriDay { available, price_minor: 9_000, ..AriDay::default() },
        }]),
    };
    verify(sign_one(&SigningKey::from_bytes(&[seed; 32]), &draft), NOW).unwrap()
}

/// A memory store's results cannot be errors.
fn ok<T>(result: Result<T, std::convert::Infallible>) -> T {
    match result {
        Ok(value) => value,
    }
}

fn actions(replica: &mut Replica<u8>) -> Vec<Action<u8>> {
    std::iter::from_fn(|| replica.poll_action()).collect()
}

fn envelope(records: &[Verified<Record>]) -> Vec<u8> {
    proto::Envelope { records: records.iter().map(|r| r.to_proto()).collect(), proofs: vec![], runs: vec![] }
        .encode_to_vec()
}

#[test]
fn published_records_leave_in_one_envelope_at_the_flush_interval() {
    let mut replica = Replica::<u8>::new(Config::default(), 1);
    let mut store = MemoryStore::default();
    replica.handle_published((0..10).map(|i| record(1, i, 1, 3)).collect(), Vec::new(), NOW);
    assert_eq!(replica.poll_timeout(), Some(NOW.saturating_add_ms(250)));
    ok(replica.handle_timeout(NOW.saturating_add_ms(249), &mut store));
    assert!(actions(&mut replica).is_empty());
    ok(replica.handle_timeout(NOW.saturating_add_ms(250), &mut store));
    let gossiped = actions(&mut replica);
    let [Action::Gossip(bytes)] = gossiped.as_slice() else { panic!("one envelope: {gossiped:?}") };
    assert_eq!(proto::Envelope::decode(bytes.as_slice()).unwrap().records.len(), 10);
}

#[test]
fn a_full_envelope_leaves_at_once_and_the_rest_at_the_interval() {
    let config = Config { envelope_bytes_max: 20 * 1024, ..Config::default() };
    let mut replica = Replica::<u8>::new(config, 1);
    replica.handle_published((0..200).map(|i| record(1, i, 1, 3)).collect(), Vec::new(), NOW);
    let mut envelopes = actions(&mut replica);
    assert!(!envelopes.is_empty(), "full envelopes do not wait");
    ok(replica.handle_timeout(NOW.saturating_add_ms(250), &mut MemoryStore::default()));
    envelopes.extend(actions(&mut replica));
    let mut records = 0;
    for action in envelopes {
        let Action::Gossip(bytes) = action else { panic!() };
        assert!(bytes.len() <= 20 * 1024, "{} bytes", bytes.len());
        records += proto::Envelope::decode(bytes.as_slice()).unwrap().records.len();
    }
    assert_eq!(records, 200);
}

#[test]
fn a_published_bundle_travels_as_runs_and_arrives_whole() {
    let drafts: Vec<Draft> = (0..300)
        .map(|i| Draft { key: format!("listing-{i}"), version: 1, time: NOW, payload: Payload::Withdrawal })
        .collect();
    let bundle: Vec<Verified<Record>> = caravan_records::sign_bundle(&SigningKey::from_bytes(&[3; 32]), &drafts)
        .into_iter()
        .map(|signed| verify(signed, NOW).unwrap())
        .collect();
    let body_bytes: usize = bundle.iter().map(|r| r.body().len()).sum();
    let mut owner = Replica::<u8>::new(Config::default(), 1);
    owner.handle_published(bundle, Vec::new(), NOW);
    ok(owner.handle_timeout(NOW.saturating_add_ms(250), &mut MemoryStore::default()));
    let (mut agency, mut store) = (Replica::<u8>::new(Config::default(), 2), MemoryStore::default());
    let mut wire_bytes = 0;
    for action in actions(&mut owner) {
        let Action::Gossip(bytes) = action else { continue };
        let envelope = proto::Envelope::decode(bytes.as_slice()).unwrap();
        assert!(envelope.records.is_empty() && !envelope.runs.is_empty(), "bundled records go as runs");
        wire_bytes += bytes.len();
        ok(agency.handle_gossip(1, &bytes, NOW, &mut store));
        assert!(matches!(actions(&mut agency).as_slice(), [Action::Validated { verdict: Verdict::Accept, .. }]));
    }
    assert_eq!(ok(store.items()).len(), 300, "every record arrived, with its proof rebuilt");
    assert!(wire_bytes * 100 < body_bytes * 115, "{wire_bytes} bytes on the wire for {body_bytes} of records");
}

#[test]
fn one_bad_record_rejects_the_whole_envelope_and_stores_nothing() {
    let mut replica = Replica::<u8>::new(Config::default(), 1);
    let mut store = MemoryStore::default();
    let good = record(1, 1, 1, 3);
    let mut tampered = record(1, 2, 1, 3).to_proto();
    tampered.record.push(0x00);
    let bytes =
        proto::Envelope { records: vec![good.to_proto(), tampered], proofs: vec![], runs: vec![] }.encode_to_vec();
    ok(replica.handle_gossip(7, &bytes, NOW, &mut store));
    assert!(matches!(actions(&mut replica).as_slice(), [Action::Validated { from: 7, verdict: Verdict::Reject, .. }]));
    assert!(ok(store.items()).is_empty());
    assert!(replica.counters().rejected.values().sum::<u64>() >= 1);

    ok(replica.handle_gossip(7, &envelope(&[good]), NOW, &mut store));
    assert!(matches!(actions(&mut replica).as_slice(), [Action::Validated { verdict: Verdict::Accept, .. }]));
    assert_eq!(ok(store.items()).len(), 1);
}

/// Runs two replicas' exchanges to quiescence, handing every `Send` over.
fn converse(a: (&mut Replica<u8>, &mut MemoryStore), b: (&mut Replica<u8>, &mut MemoryStore), now: Timestamp) {
    let (ra, sa) = a;
    let (rb, sb) = b;
    for _ in 0..10_000 {
        let mut moved = false;
        for action in actions(ra) {
            if let Action::Send(2, message) = action {
                ok(rb.handle_message(1, message, now, sb));
                moved = true;
            }
        }
        for action in actions(rb) {
            if let Action::Send(1, message) = action {
                ok(ra.handle_message(2, message, now, sa));
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
    panic!("the conversation did not end");
}

/// Peer 1 holding `records`, and peer 2, new, connected to it with its
/// first round started: `(peer 1, its store, peer 2, its store)`.
fn a_peer_and_a_new_node(
    config: Config,
    records: impl IntoIterator<Item = Verified<Record>>,
) -> (Replica<u8>, MemoryStore, Replica<u8>, MemoryStore) {
    let (mut a, mut b) = (Replica::<u8>::new(config.clone(), 1), Replica::<u8>::new(config, 2));
    let (mut store_a, mut store_b) = (MemoryStore::default(), MemoryStore::default());
    for record in records {
        ok(store_a.put(record, NOW));
    }
    a.handle_connected(2, NOW);
    b.handle_connected(1, NOW);
    ok(b.handle_timeout(NOW, &mut store_b));
    (a, store_a, b, store_b)
}

/// A node missing more than it can remember at once (a new node joining
/// a large network) reconciles again as soon as it fetched what one round
/// found, not a reconciliation interval later.
#[test]
fn a_node_missing_more_than_one_round_holds_catches_up_in_back_to_back_rounds() {
    let config = Config { fetch_ids_max: 4, wanted_max: 10, ..Config::default() };
    let (mut a, mut store_a, mut b, mut store_b) = a_peer_and_a_new_node(config, (0..35).map(|i| record(1, i, 1, 3)));
    // No timer fires again: every round after the first follows the fetches.
    converse((&mut a, &mut store_a), (&mut b, &mut store_b), NOW);
    assert_eq!(ok(store_b.items()).len(), 35, "four rounds of at most ten, back to back");
    assert_eq!(b.counters().reconcile_rounds, 4);
}

/// Node 0, new, connected to peers 1 and 2 that hold the same `records`
/// records (pages of four, one at a time), with its first rounds started.
fn a_new_node_and_two_peers_holding(records: u32) -> Vec<(Replica<u8>, MemoryStore)> {
    a_new_node_and_two_peers(Config { fetch_ids_max: 4, fetches_in_flight: 1, ..Config::default() }, records)
}

fn a_new_node_and_two_peers(config: Config, records: u32) -> Vec<(Replica<u8>, MemoryStore)> {
    let mut nodes: Vec<(Replica<u8>, MemoryStore)> =
        (0..3).map(|i| (Replica::<u8>::new(config.clone(), i), MemoryStore::default())).collect();
    for (_, store) in &mut nodes[1..] {
        for i in 0..records {
            ok(store.put(record(1, i, 1, 3), NOW));
        }
    }
    for peer in [1, 2] {
        nodes[0].0.handle_connected(peer, NOW);
        nodes[peer as usize].0.handle_connected(0, NOW);
    }
    let (replica, store) = &mut nodes[0];
    ok(replica.handle_timeout(NOW, store));
    nodes
}

/// A new node reconciling with two peers that hold the same records
/// fetches each record once, from one of them.
#[test]
fn what_several_peers_hold_is_fetched_once() {
    let mut nodes = a_new_node_and_two_peers_holding(20);
    deliver_all(&mut nodes, &[0, 1, 2], |_, _| {});
    let (replica, store) = &nodes[0];
    assert_eq!(ok(store.items()).len(), 20);
    assert_eq!(replica.counters().fetched, 20, "each record fetched once, not once per peer");
    let served: Vec<u64> = nodes[1..].iter().map(|(r, _)| r.peer_stats().next().unwrap().1.records_out).collect();
    assert_eq!(served.iter().sum::<u64>(), 20, "{served:?}");
}

/// Delivers every message among `nodes` (replica `i` is peer `i`), in
/// the order of `senders`, until all are quiet; `tamper` may change a
/// message on its way.
fn deliver_all(nodes: &mut [(Replica<u8>, MemoryStore)], senders: &[u8], mut tamper: impl FnMut(u8, &mut Message)) {
    for _ in 0..200 {
        let mut moved = false;
        for &from in senders {
            for action in actions(&mut nodes[from as usize].0) {
                if let Action::Send(to, mut message) = action {
                    tamper(from, &mut message);
                    let (replica, store) = &mut nodes[to as usize];
                    ok(replica.handle_message(from, message, NOW, store));
                    moved = true;
                }
            }
        }
        if !moved {
            return;
        }
    }
    panic!("the conversation did not end");
}

/// A node stopped in the middle of catching up starts again with what it
/// stored: its next rounds fetch only the rest.
#[test]
fn a_node_stopped_mid_catch_up_fetches_only_what_it_still_lacks() {
    let config = Config { fetch_ids_max: 4, ..Config::default() };
    let mut nodes: Vec<(Replica<u8>, MemoryStore)> =
        (0..2).map(|i| (Replica::<u8>::new(config.clone(), i), MemoryStore::default())).collect();
    for i in 0..30 {
        ok(nodes[1].1.put(record(1, i, 1, 3), NOW));
    }
    nodes[0].0.handle_connected(1, NOW);
    nodes[1].0.handle_connected(0, NOW);
    let (replica, store) = &mut nodes[0];
    ok(replica.handle_timeout(NOW, store));
    // Three pages arrive, then the node stops.
    let mut pages = 0;
    deliver_all(&mut nodes, &[0, 1], |_, message| {
        if let Message::Records { records, .. } = message {
            pages += 1;
            if pages > 3 {
                records.clear();
            }
        }
    });
    let stored = ok(nodes[0].1.items()).len();
    assert_eq!(stored, 12);

    // It comes back with its store and a new replica.
    nodes[0].0 = Replica::<u8>::new(config, 9);
    nodes[0].0.handle_connected(1, NOW);
    let (replica, store) = &mut nodes[0];
    ok(replica.handle_timeout(NOW, store));
    deliver_all(&mut nodes, &[0, 1], |_, _| {});
    assert_eq!(ok(nodes[0].1.items()).len(), 30);
    assert_eq!(nodes[0].0.counters().fetched, 30 - stored as u64, "nothing it had was fetched again");
}

/// A peer that serves records that do not verify is asked nothing more,
/// and what it was to serve is fetched from the others.
#[test]
fn a_peer_serving_forged_records_is_dropped_and_the_others_serve_instead() {
    let mut nodes = a_new_node_and_two_peers_holding(20);
    // Peer 2 answers first, so it is asked for everything; its pages are
    // forged (the last byte of each record, in its signature, flipped).
    let forge = |from: u8, message: &mut Message| {
        if let (2, Message::Records { records, .. }) = (from, message) {
            for record in records {
                *record.last_mut().unwrap() ^= 1;
            }
        }
    };
    deliver_all(&mut nodes, &[0, 2, 1], forge);
    assert_eq!(ok(nodes[0].1.items()).len(), 0, "nothing forged was stored");
    assert_eq!(nodes[0].0.counters().rejected.get("junk_peer"), Some(&1));

    // The honest peer's round is due now, not at the interval.
    let (replica, store) = &mut nodes[0];
    ok(replica.handle_timeout(NOW, store));
    deliver_all(&mut nodes, &[0, 2, 1], forge);
    assert_eq!(ok(nodes[0].1.items()).len(), 20, "all of it, from the honest peer");
    let served: Vec<u64> = nodes[1..].iter().map(|(r, _)| r.peer_stats().next().unwrap().1.records_out).collect();
    assert_eq!(served, [20, 4], "the forger served one page before it was dropped");
}

#[test]
fn reconciliation_fetches_what_is_missing_in_pages() {
    let config = Config { fetch_ids_max: 8, ..Config::default() };
    let (mut a, mut b) = (Replica::<u8>::new(config.clone(), 1), Replica::<u8>::new(config, 2));
    let (mut store_a, mut store_b) = (MemoryStore::default(), MemoryStore::default());
    for i in 0..50 {
        assert_eq!(ok(store_a.put(record(1, i, 1, 3), NOW)), Put::New { gone: vec![] });
    }
    for i in 0..5 {
        ok(store_b.put(record(2, i, 1, 3), NOW));
    }
    a.handle_connected(2, NOW);
    b.handle_connected(1, NOW);
    ok(a.handle_timeout(NOW, &mut store_a));
    ok(b.handle_timeout(NOW, &mut store_b));
    converse((&mut a, &mut store_a), (&mut b, &mut store_b), NOW);
    assert_eq!(ok(store_a.items()), ok(store_b.items()));
    assert_eq!(ok(store_a.items()).len(), 55);
    assert!(b.counters().fetched >= 50);
    // Each side counts what it exchanged with the other.
    let (a_saw, b_saw) = (*a.peer_stats().next().unwrap().1, *b.peer_stats().next().unwrap().1);
    assert_eq!((b_saw.records_in, b_saw.records_new, a_saw.records_out), (50, 50, 50));
    assert_eq!((a_saw.records_new, b_saw.records_out), (5, 5));
    let next = b.poll_timeout().unwrap();
    assert!(next >= NOW.saturating_add_ms(30_000) && next < NOW.saturating_add_ms(60_000), "jittered 30-60 s");
}

#[test]
fn an_equivocation_freezes_the_origin_and_its_proof_travels() {
    let mut replica = Replica::<u8>::new(Config::default(), 1);
    let mut store = MemoryStore::default();
    ok(replica.handle_gossip(3, &envelope(&[record(9, 1, 4, 3)]), NOW, &mut store));
    ok(replica.handle_gossip(4, &envelope(&[record(9, 1, 4, 2)]), NOW, &mut store));
    // Records of the liar that come after are not forwarded either, and
    // their senders (who may not have the proof yet) are not penalized.
    ok(replica.handle_gossip(6, &envelope(&[record(9, 2, 5, 1)]), NOW, &mut store));
    let done = actions(&mut replica);
    let verdicts: Vec<(u8, Verdict)> = done
        .iter()
        .filter_map(|action| match action {
            Action::Validated { from, verdict, .. } => Some((*from, *verdict)),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts, [(3, Verdict::Accept), (4, Verdict::Ignore), (6, Verdict::Ignore)]);
    let gossiped: Vec<proto::Envelope> = done
        .into_iter()
        .filter_map(|a| match a {
            Action::Gossip(bytes) => Some(proto::Envelope::decode(bytes.as_slice()).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(gossiped.iter().map(|e| e.proofs.len()).sum::<usize>(), 1, "the proof is gossiped");
    assert!(ok(store.items()).is_empty(), "the liar's records are gone");

    // A peer that still serves the liar's records is told why they are refused.
    ok(replica.handle_message(
        5,
        Message::Records { request: 0, records: vec![record(9, 2, 5, 1).encode()] },
        NOW,
        &mut store,
    ));
    assert!(actions(&mut replica).iter().any(|a| matches!(a, Action::Send(5, Message::Proof(_)))));

    // Another node learns the proof and freezes too.
    let mut other = Replica::<u8>::new(Config::default(), 2);
    let mut other_store = MemoryStore::default();
    ok(other_store.put(record(9, 3, 1, 1), NOW));
    let with_proof =
        proto::Envelope { records: vec![], proofs: gossiped[0].proofs.clone(), runs: vec![] }.encode_to_vec();
    ok(other.handle_gossip(1, &with_proof, NOW, &mut other_store));
    assert!(ok(other_store.items()).is_empty());
}

/// A memory store that counts full scans.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    scans: std::cell::Cell<u32>,
}

impl RecordStore for CountingStore {
    type Error = std::convert::Infallible;
    fn put(&mut self, record: Verified<Record>, now: Timestamp) -> Result<Put, Self::Error> {
        self.inner.put(record, now)
    }
    fn get(&self, id: &caravan_records::RecordId) -> Result<Option<Vec<u8>>, Self::Error> {
        self.inner.get(id)
    }
    fn items(&self) -> Result<Vec<(u64, caravan_records::RecordId)>, Self::Error> {
        self.scans.set(self.scans.get() + 1);
        self.inner.items()
    }
    fn freeze(&mut self, proof: &caravan_records::EquivocationProof, now: Timestamp) -> Result<bool, Self::Error> {
        self.inner.freeze(proof, now)
    }
    fn proof(&self, origin: caravan_records::Origin) -> Result<Option<Vec<u8>>, Self::Error> {
        self.inner.proof(origin)
    }
}

/// The reconciliation frames a replica opens its sessions with.
fn opening_frames(replica: &mut Replica<u8>) -> Vec<Vec<u8>> {
    actions(replica)
        .into_iter()
        .filter_map(|a| match a {
            Action::Send(_, Message::ReconcileQuery { frame, .. }) => Some(frame),
            _ => None,
        })
        .collect()
}

#[test]
fn the_reconciliation_set_is_read_once_and_kept_in_step() {
    let mut replica = Replica::<u8>::new(Config::default(), 1);
    let mut store = CountingStore::default();
    for i in 0..20 {
        ok(store.put(record(1, i, 1, 3), NOW));
    }
    for peer in 2..5 {
        replica.handle_connected(peer, NOW);
    }
    ok(replica.handle_timeout(NOW, &mut store));
    let queries: Vec<Message> = actions(&mut replica)
        .into_iter()
        .filter_map(|a| match a {
            Action::Send(_, message) => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(queries.len(), 3, "a session per peer");
    for query in queries {
        ok(replica.handle_message(9, query, NOW, &mut store));
    }
    assert_eq!(store.scans.get(), 1, "three sessions and three answers from one scan");

    // A new record, and a newer version of one held (the older one goes).
    ok(replica.handle_gossip(7, &envelope(&[record(2, 1, 1, 3), record(1, 0, 2, 4)]), NOW, &mut store));
    let later = NOW.saturating_add_ms(61_000);
    ok(replica.handle_timeout(later, &mut store));
    assert_eq!(store.scans.get(), 1, "the set was kept in step, not read again");
    let kept = opening_frames(&mut replica);

    let mut fresh = Replica::<u8>::new(Config::default(), 1);
    for peer in 2..5 {
        fresh.handle_connected(peer, later);
    }
    ok(fresh.handle_timeout(later, &mut store));
    assert_eq!(store.scans.get(), 2);
    assert_eq!(kept, opening_frames(&mut fresh), "the kept set is the store's");
}

/// Checking needs no replica: envelopes and fetched pages checked on other
/// threads, then handed in, store and answer as if handled directly.
#[test]
fn events_checked_on_other_threads_are_handled_as_if_handled_directly() {
    use caravan_replication::{Checked, Event};
    let mut replica = Replica::<u8>::new(Config::default(), 1);
    let mut store = MemoryStore::default();
    replica.handle_connected(9, NOW);
    let checker = replica.checker();
    let mut forged = record(1, 2, 1, 3).to_proto();
    let last = forged.record.len() - 1;
    forged.record[last] ^= 1;
    let events = vec![
        Event::Gossip { from: 7, envelope: envelope(&[record(1, 1, 1, 3), record(1, 3, 1, 3)]) },
        Event::Gossip {
            from: 8,
            envelope: proto::Envelope { records: vec![forged.clone()], ..proto::Envelope::default() }.encode_to_vec(),
        },
        Event::Message {
            from: 9,
            message: Message::Records {
                request: 0,
                records: vec![record(1, 4, 1, 3).encode(), forged.encode_to_vec()],
            },
        },
    ];
    let checked: Vec<Checked<u8>> = std::thread::scope(|scope| {
        let threads: Vec<_> = events.into_iter().map(|event| scope.spawn(move || checker.check(event, NOW))).collect();
        threads.into_iter().map(|thread| thread.join().unwrap()).collect()
    });
    assert_eq!(checked.iter().map(Checked::records).collect::<Vec<_>>(), [2, 0, 1]);
    for event in checked {
        ok(replica.handle_checked(event, NOW, &mut store));
    }

    let verdicts: Vec<(u8, Verdict)> = actions(&mut replica)
        .into_iter()
        .filter_map(|action| match action {
            Action::Validated { from, verdict, .. } => Some((from, verdict)),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts, [(7, Verdict::Accept), (8, Verdict::Reject)]);
    assert_eq!(ok(store.items()).len(), 3, "two gossiped, one fetched");
    assert_eq!(replica.counters().fetched, 1);
    let rejected = &replica.counters().rejected;
    assert_eq!(rejected.get("bad_signature"), Some(&2), "the forged envelope and the forged page entry: {rejected:?}");
    assert_eq!(rejected.get("junk_peer"), Some(&1), "the peer that served the forged entry");
}

/// A new node with one peer holding `records` records (forty share
/// each instant, as an origin publishes many at once), after one round.
fn one_round_with(config: Config, records: u32) -> (Replica<u8>, MemoryStore) {
    let key = SigningKey::from_bytes(&[5; 32]);
    let records = (0..records).map(|i| {
        let time = NOW.saturating_add_ms(-3_600_000 + (i / 40) as i64);
        let draft = Draft { key: format!("listing-{i}"), version: 1, time, payload: Payload::Ari(vec![]) };
        verify(sign_one(&key, &draft), NOW).unwrap()
    });
    let (mut a, mut store_a, mut b, mut store_b) = a_peer_and_a_new_node(config, records);
    converse((&mut a, &mut store_a), (&mut b, &mut store_b), NOW);
    (b, store_b)
}

/// However many frames the comparison takes.
#[test]
fn one_round_finds_everything_a_large_peer_holds() {
    let (replica, store) = one_round_with(Config::default(), 12_000);
    assert_eq!(replica.counters().reconcile_rounds, 1);
    assert_eq!(ok(store.items()).len(), 12_000);
}

/// A peer fills an answer up to its byte limit and leaves the rest of
/// the ids asked: those are asked again, not left for the next round.
#[test]
fn ids_a_full_answer_left_out_are_asked_again() {
    let config = Config { fetch_ids_max: 256, fetch_bytes_max: 20_000, ..Config::default() };
    let (replica, store) = one_round_with(config, 3_000);
    assert_eq!(replica.counters().reconcile_rounds, 1);
    assert_eq!(ok(store.items()).len(), 3_000);
}

/// What a new node knows it lacks is counted from the moment a round
/// finds it until it is fetched.
#[test]
fn records_found_missing_are_counted_until_fetched() {
    let records = (0..30).map(|i| record(1, i, 1, 3));
    let (mut a, mut store_a, mut b, mut store_b) = a_peer_and_a_new_node(Config::default(), records);
    assert_eq!(b.missing(), 0);
    for action in actions(&mut b) {
        if let Action::Send(1, message) = action {
            ok(a.handle_message(2, message, NOW, &mut store_a));
        }
    }
    for action in actions(&mut a) {
        if let Action::Send(2, message @ Message::ReconcileReply { .. }) = action {
            ok(b.handle_message(1, message, NOW, &mut store_b));
        }
    }
    assert_eq!(b.missing(), 30, "found, asked for, not yet answered");
    converse((&mut a, &mut store_a), (&mut b, &mut store_b), NOW);
    assert_eq!((b.missing(), ok(store_b.items()).len()), (0, 30));
}

/// A new node far behind a peer pages through the peer's ids instead of
/// reconciling: what serving it costs the peer grows with what it holds,
/// where negentropy's cost, with one side empty, grows with its square.
#[test]
fn a_node_far_behind_lists_its_peer_at_a_cost_linear_in_what_it_holds() {
    const HELD: u64 = 12_000;
    let served_by = |config: Config| {
        let key = SigningKey::from_bytes(&[5; 32]);
        let records = (0..HELD as u32).map(|i| {
            let time = NOW.saturating_add_ms(-3_600_000 + (i / 40) as i64);
            let draft = Draft { key: format!("listing-{i}"), version: 1, time, payload: Payload::Ari(vec![]) };
            verify(sign_one(&key, &draft), NOW).unwrap()
        });
        let (mut a, mut store_a, mut b, mut store_b) = a_peer_and_a_new_node(config, records);
        converse((&mut a, &mut store_a), (&mut b, &mut store_b), NOW);
        assert_eq!(ok(store_b.items()).len() as u64, HELD);
        (a.counters().reconcile_items_read, b.counters().listed)
    };
    let (listing_cost, listed) = served_by(Config { bulk_gap: 1_000, ..Config::default() });
    assert_eq!(listed, HELD, "every id listed once");
    assert!(listing_cost <= 4 * HELD, "the peer read {listing_cost} items to serve {HELD}");
    let (reconciling_cost, listed) = served_by(Config { bulk_gap: u64::MAX, ..Config::default() });
    assert_eq!(listed, 0);
    assert!(reconciling_cost > 5 * HELD, "reconciling alone read {reconciling_cost} items");
}

/// A node stopped in the middle of a listing lists again from the start
/// when it comes back, and fetches only what it still lacks.
#[test]
fn a_node_stopped_mid_listing_fetches_only_what_it_still_lacks() {
    let config = Config { fetch_ids_max: 4, fetches_in_flight: 1, bulk_gap: 10, ..Config::default() };
    let mut nodes = a_new_node_and_two_peers(config.clone(), 300);
    let mut pages = 0;
    deliver_all(&mut nodes, &[0, 1, 2], |_, message| {
        if let Message::Records { records, .. } = message {
            pages += 1;
            if pages > 5 {
                records.clear();
            }
        }
    });
    let stored = ok(nodes[0].1.items()).len() as u64;
    assert_eq!(stored, 20, "five pages of four");
    assert_eq!(nodes[0].0.counters().reconcile_rounds, 2, "one opening round with each peer, then listing");
    assert_eq!(nodes[0].0.counters().listed, 300);

    nodes[0].0 = Replica::<u8>::new(config, 9);
    for peer in [1, 2] {
        nodes[0].0.handle_connected(peer, NOW);
    }
    let (replica, store) = &mut nodes[0];
    ok(replica.handle_timeout(NOW, store));
    assert!(replica.missing() == 0, "nothing known missing before a peer answers");
    deliver_all(&mut nodes, &[0, 1, 2], |_, _| {});
    assert_eq!(ok(nodes[0].1.items()).len(), 300);
    let counters = nodes[0].0.counters();
    assert_eq!(counters.listed, 300, "listed again from the start");
    assert_eq!(counters.fetched, 300 - stored, "nothing it had was fetched again");
}

/// A peer that serves forged records while a new node lists is dropped;
/// what it was to serve goes to the others at once, and the node ends
/// with everything.
#[test]
fn a_peer_serving_forged_records_during_a_listing_is_dropped_and_the_others_serve() {
    let config = Config { fetch_ids_max: 4, fetches_in_flight: 1, bulk_gap: 10, ..Config::default() };
    let mut nodes = a_new_node_and_two_peers(config, 300);
    let forge = |from: u8, message: &mut Message| {
        if let (2, Message::Records { records, .. }) = (from, message) {
            for record in records {
                *record.last_mut().unwrap() ^= 1;
            }
        }
    };
    deliver_all(&mut nodes, &[0, 2, 1], forge);
    let (replica, store) = &nodes[0];
    assert_eq!(ok(store.items()).len(), 300, "all of it, from the honest peer");
    assert_eq!(replica.counters().rejected.get("junk_peer"), Some(&1), "{:?}", replica.counters());
    assert_eq!(replica.missing(), 0);
    let served: Vec<u64> = nodes[1..].iter().map(|(r, _)| r.peer_stats().next().unwrap().1.records_out).collect();
    assert_eq!(served, [300, 4], "the forger served one page before it was dropped");
}

/// A lister whose pages go backwards is junk: another peer lists in its
/// place from where it was.
#[test]
fn a_lister_sending_pages_out_of_order_is_replaced() {
    let config = Config { fetch_ids_max: 4, bulk_gap: 10, ..Config::default() };
    let mut nodes = a_new_node_and_two_peers(config, 300);
    deliver_all(&mut nodes, &[0, 2, 1], |from, message| {
        if let (2, Message::Listed { items, .. }) = (from, message) {
            items.reverse();
        }
    });
    let (replica, store) = &nodes[0];
    assert_eq!(ok(store.items()).len(), 300);
    assert_eq!(replica.counters().rejected.get("junk_peer"), Some(&1));
}

/// A peer is asked for several pages at once, and answers matched by
/// their number whatever order they come back in.
#[test]
fn a_peer_is_asked_for_several_pages_at_once_and_answers_match_in_any_order() {
    let config = Config { fetch_ids_max: 4, fetches_in_flight: 3, ..Config::default() };
    let (mut a, mut store_a, mut b, mut store_b) = a_peer_and_a_new_node(config, (0..40).map(|i| record(1, i, 1, 3)));
    let sent = |replica: &mut Replica<u8>| -> Vec<Message> {
        actions(replica)
            .into_iter()
            .filter_map(|action| match action {
                Action::Send(_, message) => Some(message),
                _ => None,
            })
            .collect()
    };
    for message in sent(&mut b) {
        ok(a.handle_message(2, message, NOW, &mut store_a));
    }
    for message in sent(&mut a) {
        ok(b.handle_message(1, message, NOW, &mut store_b));
    }
    let fetches = sent(&mut b);
    assert_eq!(fetches.iter().filter(|m| matches!(m, Message::Fetch { .. })).count(), 3, "{fetches:?}");
    for message in fetches.into_iter().rev() {
        ok(a.handle_message(2, message, NOW, &mut store_a));
    }
    // The answers come back last first.
    for message in sent(&mut a) {
        ok(b.handle_message(1, message, NOW, &mut store_b));
    }
    assert_eq!(ok(store_b.items()).len(), 12);
    converse((&mut a, &mut store_a), (&mut b, &mut store_b), NOW);
    assert_eq!((ok(store_b.items()).len(), b.missing()), (40, 0));
    assert_eq!(a.peer_stats().next().unwrap().1.records_out, 40, "no page asked twice");
}

/// A peer asking more than its budget a second gets no answer to the rest
/// (counted), other peers are answered meanwhile, and a second later it is
/// answered again.
#[test]
fn a_peer_that_floods_requests_is_answered_at_its_rate_only() {
    let config = Config { peer_requests_per_second: 20, ..Config::default() };
    let mut replica = Replica::<u8>::new(config, 1);
    let mut store = MemoryStore::default();
    ok(store.put(record(1, 1, 1, 1), NOW));
    let fetch = |request| Message::Fetch { request, ids: vec![record(1, 1, 1, 1).id()] };
    let answered = |replica: &mut Replica<u8>, peer: u8| {
        actions(replica)
            .iter()
            .filter(|a| matches!(a, Action::Send(to, Message::Records { .. }) if *to == peer))
            .count()
    };
    for request in 0..50 {
        ok(replica.handle_message(7, fetch(request), NOW, &mut store));
    }
    assert_eq!(answered(&mut replica, 7), 20, "a second's worth");
    assert_eq!(replica.counters().rejected.get("rate_limited"), Some(&30));
    ok(replica.handle_message(8, fetch(1), NOW, &mut store));
    assert_eq!(answered(&mut replica, 8), 1, "another peer has its own budget");
    // Reconnecting does not refill it; time does.
    replica.handle_disconnected(&7, NOW);
    ok(replica.handle_message(7, fetch(99), NOW, &mut store));
    assert_eq!(answered(&mut replica, 7), 0);
    let later = NOW.saturating_add_ms(1_000);
    for request in 100..130 {
        ok(replica.handle_message(7, fetch(request), later, &mut store));
    }
    assert_eq!(answered(&mut replica, 7), 20);
}
