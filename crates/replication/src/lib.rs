//! Sans-io replication: how every node comes to hold every origin's newest
//! records.
//!
//! Two mechanisms, one fast and lossy, one slow and complete:
//!
//! - **Push.** A node packs the records its own origin publishes into an
//!   *envelope* (flushed every `flush_interval_ms` or at
//!   `envelope_bytes_max`) and gossips it. A node receiving an envelope
//!   verifies every record (one ed25519 batch) before storing any; only an
//!   envelope whose records all verified is *accepted*, which is what lets
//!   gossipsub forward it, and a sender of an invalid one is *rejected*
//!   (penalized by peer scoring).
//! - **Pull.** Each node reconciles with each peer on connect and every
//!   `reconcile_interval_ms` (jittered): a negentropy session over the
//!   `(time, id)` of the records both hold finds the ids it lacks, which it
//!   then fetches in pages of at most `fetch_ids_max`. Gossip may drop
//!   messages; reconciliation makes every node converge anyway.
//!
//! An equivocation (two records in one slot with one version) freezes the
//! origin. Its proof spreads in envelopes, and a node that receives records
//! of an origin it froze sends the proof back, so a peer that missed the
//! gossip learns it too.
//!
//! The core does no IO and reads no clock: events come in through
//! `handle_*` with `now`, actions go out through [`Replica::poll_action`],
//! and [`Replica::poll_timeout`] says when to call
//! [`Replica::handle_timeout`]. Records live in a [`RecordStore`] the shell
//! passes in. Generic over the peer id, so the simulator and libp2p drive
//! the same code.

mod check;
mod items;
mod lag;
mod store;
mod wire;

pub use check::{Checked, CheckedEnvelope, Checker};
pub use lag::{LagHistogram, LAG_BUCKETS_MS};

pub use store::{MemoryStore, Put, RecordStore};
pub use wire::MESSAGE_ITEMS_MAX;

use std::collections::{BTreeMap, HashSet, VecDeque};

use caravan_model::rng::SplitMix64;
use caravan_model::Timestamp;
use caravan_records::{proto, EquivocationProof, Record, RecordId, Rejection, Verified};
use items::{Items, Snapshot};
use negentropy::Negentropy;
use prost::Message as _;

/// Tuning; the defaults are the production values.
#[derive(Clone, Debug)]
pub struct Config {
    /// Envelopes stay below gossipsub's 64 KiB message cap.
    pub envelope_bytes_max: usize,
    pub flush_interval_ms: i64,
    /// A reconciliation round with each peer starts this often, plus a
    /// random share of the same again (30–60 s by default).
    pub reconcile_interval_ms: i64,
    /// A session or fetch that got no answer in this long is dropped.
    pub request_timeout_ms: i64,
    /// Ids per fetch request.
    pub fetch_ids_max: usize,
    /// Bytes of records per fetch answer.
    pub fetch_bytes_max: usize,
    /// Ids a node remembers to fetch from one peer. When a round finds
    /// more, the next round starts as soon as these are fetched, not at
    /// the interval: a new node catches up in back-to-back rounds.
    pub wanted_max: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            envelope_bytes_max: 32 * 1024,
            flush_interval_ms: 250,
            reconcile_interval_ms: 30_000,
            request_timeout_ms: 10_000,
            fetch_ids_max: 256,
            fetch_bytes_max: 256 * 1024,
            wanted_max: 100_000,
        }
    }
}

/// negentropy frames: at least 4096 by its rules; ours fit request-response.
const RECONCILE_FRAME_BYTES_MAX: u64 = 60_000;

/// Request-response messages between two peers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    ReconcileQuery {
        session: u64,
        frame: Vec<u8>,
    },
    ReconcileReply {
        session: u64,
        frame: Vec<u8>,
    },
    Fetch {
        ids: Vec<RecordId>,
    },
    /// Encoded `SignedRecord`s.
    Records {
        records: Vec<Vec<u8>>,
    },
    /// An encoded `EquivocationProof`.
    Proof(Vec<u8>),
}

/// What the network hands the core, for shells that queue events.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event<P> {
    Connected(P),
    Disconnected(P),
    Gossip { from: P, envelope: Vec<u8> },
    Message { from: P, message: Message },
}

/// Whether a gossiped envelope may travel on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Every record verified: forward it.
    Accept,
    /// Something in it was forged, tampered or oversized: drop it and
    /// penalize the sender.
    Reject,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action<P> {
    /// Publish an encoded `Envelope` on the gossip topic.
    Gossip(Vec<u8>),
    Send(P, Message),
    /// The verdict on an envelope `from` sent, identified by its hash.
    Validated {
        from: P,
        envelope_id: [u8; 32],
        verdict: Verdict,
    },
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub envelopes_in: u64,
    pub envelopes_out: u64,
    pub records_in: u64,
    pub records_new: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub reconcile_rounds: u64,
    pub reconcile_bytes: u64,
    pub fetched: u64,
    /// Payload bytes received: envelopes, reconciliation frames and fetched
    /// records (not transport framing or gossipsub control messages).
    pub bytes_in: u64,
    /// From a record's signing to its storing here, for records new here.
    pub lag: LagHistogram,
}

/// What one connected peer and this node have exchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStats {
    pub connected_at: Timestamp,
    /// Records from it that verified (gossiped or fetched), duplicates included.
    pub records_in: u64,
    /// Of those, records that were new here.
    pub records_new: u64,
    /// Records sent to it when it fetched what it missed. (Our gossip goes
    /// to the topic, not to one peer, so it is not counted here.)
    pub records_out: u64,
}

struct Session {
    id: u64,
    negentropy: Negentropy<'static, Snapshot>,
    /// When the peer last answered (or the session started): a session
    /// stalls when the peer stops answering, however long it has run,
    /// since a new node's first session lasts as long as its answers wait
    /// behind the records they ask for.
    heard: Timestamp,
}

/// A fetch sent to a peer and not yet answered.
struct Fetch {
    since: Timestamp,
    ids: Vec<RecordId>,
}

struct PeerState {
    next_reconcile: Timestamp,
    session: Option<Session>,
    /// Ids found missing, to fetch from this peer.
    wanted: VecDeque<RecordId>,
    /// The last round found more than `wanted` could hold: reconcile again
    /// once it is fetched.
    more: bool,
    /// The fetch in flight, if any.
    fetching: Option<Fetch>,
    /// It served records that do not verify: nothing more is asked of it
    /// while it stays connected.
    distrusted: bool,
    stats: PeerStats,
}

pub struct Replica<P> {
    config: Config,
    pending: Vec<proto::SignedRecord>,
    pending_bytes: usize,
    pending_since: Option<Timestamp>,
    proofs_to_gossip: Vec<proto::EquivocationProof>,
    /// The `(time, id)` of every stored record, read from the store at the
    /// first reconciliation and kept in step since; `None` until then, or
    /// after a freeze dropped an origin's records wholesale.
    items: Option<Items>,
    peers: BTreeMap<P, PeerState>,
    /// Ids some peer is to be asked for, or was and has not answered.
    assigned: HashSet<RecordId>,
    next_session: u64,
    rng: SplitMix64,
    actions: VecDeque<Action<P>>,
    counters: Counters,
}

impl<P: std::fmt::Debug> std::fmt::Debug for Replica<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .field("pending", &self.pending.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl<P: Clone + Ord + std::fmt::Debug> Replica<P> {
    /// `seed` drives the jitter of reconciliation rounds.
    pub fn new(config: Config, seed: u64) -> Replica<P> {
        assert!(config.envelope_bytes_max > caravan_records::limits::SIGNED_RECORD_BYTES_MAX);
        assert!(config.fetch_bytes_max > caravan_records::limits::SIGNED_RECORD_BYTES_MAX);
        assert!(config.fetch_ids_max > 0 && config.reconcile_interval_ms > 0 && config.wanted_max > 0);
        Replica {
            config,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
            proofs_to_gossip: Vec::new(),
            items: None,
            peers: BTreeMap::new(),
            assigned: HashSet::new(),
            next_session: 1,
            rng: SplitMix64::new(seed),
            actions: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Peers currently connected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Records found missing and not fetched yet, queued or asked for:
    /// what a new node still has to fetch of what it knows about.
    pub fn missing(&self) -> u64 {
        // An id is assigned from the moment it is queued for a peer until
        // that peer answers for it.
        self.assigned.len() as u64
    }

    /// Each connected peer with what it exchanged since it connected.
    pub fn peer_stats(&self) -> impl Iterator<Item = (&P, &PeerStats)> {
        self.peers.iter().map(|(peer, state)| (peer, &state.stats))
    }

    /// A peer connected: reconcile with it at once.
    pub fn handle_connected(&mut self, peer: P, now: Timestamp) {
        let stats = PeerStats { connected_at: now, records_in: 0, records_new: 0, records_out: 0 };
        let state = PeerState {
            next_reconcile: now,
            session: None,
            wanted: VecDeque::new(),
            more: false,
            fetching: None,
            distrusted: false,
            stats,
        };
        self.peers.insert(peer, state);
    }

    pub fn handle_disconnected(&mut self, peer: &P) {
        if let Some(mut state) = self.peers.remove(peer) {
            release(&mut self.assigned, state.wanted.drain(..));
            release(&mut self.assigned, state.fetching.into_iter().flat_map(|fetch| fetch.ids));
        }
    }

    /// Dispatches a queued [`Event`]: checks it, then handles it.
    pub fn handle_event<S: RecordStore>(
        &mut self,
        event: Event<P>,
        now: Timestamp,
        store: &mut S,
    ) -> Result<(), S::Error> {
        let checked = self.checker().check(event, now);
        self.handle_checked(checked, now, store)
    }

    /// What checks events for this replica, on any thread.
    pub fn checker(&self) -> Checker {
        Checker::new(&self.config)
    }

    /// Handles an event a [`Checker`] decoded and verified.
    pub fn handle_checked<S: RecordStore>(
        &mut self,
        checked: Checked<P>,
        now: Timestamp,
        store: &mut S,
    ) -> Result<(), S::Error> {
        match checked {
            Checked::Plain(Event::Connected(peer)) => self.handle_connected(peer, now),
            Checked::Plain(Event::Disconnected(peer)) => self.handle_disconnected(&peer),
            Checked::Plain(Event::Message { from, message }) => self.handle_unchecked(from, message, now, store)?,
            // Built by hand, not by a checker: check it now.
            Checked::Plain(gossip @ Event::Gossip { .. }) => self.handle_event(gossip, now, store)?,
            Checked::Gossip { from, envelope_id, bytes, envelope } => {
                self.counters.envelopes_in += 1;
                self.counters.bytes_in += bytes as u64;
                let verdict = match envelope {
                    Ok(envelope) => {
                        for proof in envelope.proofs {
                            self.learn_proof(&proof, now, store)?;
                        }
                        self.store_all(&from, envelope.records, now, store)?;
                        Verdict::Accept
                    }
                    Err(rejection) => {
                        self.count_rejection(&rejection);
                        Verdict::Reject
                    }
                };
                self.actions.push_back(Action::Validated { from, envelope_id, verdict });
            }
            Checked::Records { from, bytes, verified, rejected } => {
                if let Some(peer) = self.peers.get_mut(&from) {
                    if let Some(fetch) = peer.fetching.take() {
                        let served: HashSet<RecordId> = verified.iter().map(|r| r.id()).collect();
                        let (tried, untried) = split_at_last_served(fetch.ids, &served);
                        release(&mut self.assigned, tried);
                        // Still assigned to this peer: asked again next.
                        for id in untried.into_iter().rev() {
                            peer.wanted.push_front(id);
                        }
                    }
                }
                self.counters.bytes_in += bytes as u64;
                for rejection in &rejected {
                    self.count_rejection(rejection);
                }
                // A peer serves only records it verified; one that does
                // not verify here is junk (a clock ahead of ours is not).
                if rejected.iter().any(|r| !matches!(r, Rejection::TimeInFuture { .. })) {
                    self.distrust(&from, now);
                }
                self.counters.fetched += verified.len() as u64;
                self.store_all(&from, verified, now, store)?;
                self.fetch_next(&from, now);
                self.catch_up(from, now, store)?;
            }
            Checked::Proof { proof, .. } => match proof {
                Ok(proof) => self.learn_proof(&proof, now, store)?,
                Err(rejection) => self.count_rejection(&rejection),
            },
        }
        Ok(())
    }

    /// Our own origin published these, and the store holds them now in
    /// place of `gone` (as `(time, id)`, what [`Put::New`] would say):
    /// gossip them.
    pub fn handle_published(&mut self, records: Vec<Verified<Record>>, gone: Vec<(u64, RecordId)>, now: Timestamp) {
        self.note_stored(records.iter().map(|r| (r.time.ms() as u64, r.id())), &gone);
        for record in records {
            let signed = record.to_proto();
            let size = signed.encoded_len() + 4;
            if self.pending_bytes + size > self.config.envelope_bytes_max {
                self.flush();
            }
            self.pending_since.get_or_insert(now);
            self.pending_bytes += size;
            self.pending.push(signed);
        }
    }

    /// An envelope arrived by gossip.
    pub fn handle_gossip<S: RecordStore>(
        &mut self,
        from: P,
        bytes: &[u8],
        now: Timestamp,
        store: &mut S,
    ) -> Result<(), S::Error> {
        self.handle_event(Event::Gossip { from, envelope: bytes.to_vec() }, now, store)
    }

    /// A request-response message from a peer.
    pub fn handle_message<S: RecordStore>(
        &mut self,
        from: P,
        message: Message,
        now: Timestamp,
        store: &mut S,
    ) -> Result<(), S::Error> {
        self.handle_event(Event::Message { from, message }, now, store)
    }

    /// A message with nothing to verify.
    fn handle_unchecked<S: RecordStore>(
        &mut self,
        from: P,
        message: Message,
        now: Timestamp,
        store: &mut S,
    ) -> Result<(), S::Error> {
        match message {
            Message::ReconcileQuery { session, frame } => {
                self.counters.reconcile_bytes += frame.len() as u64;
                self.counters.bytes_in += frame.len() as u64;
                let index = self.index(store)?;
                let reply = Negentropy::owned(index, RECONCILE_FRAME_BYTES_MAX).and_then(|mut n| n.reconcile(&frame));
                match reply {
                    Ok(frame) => self.actions.push_back(Action::Send(from, Message::ReconcileReply { session, frame })),
                    Err(_) => self.count_reason("bad_reconcile_frame"),
                }
            }
            Message::ReconcileReply { session, frame } => self.continue_session(from, session, &frame, now),
            Message::Fetch { ids } => {
                let mut records = Vec::new();
                let mut bytes = 0;
                for id in ids.iter().take(self.config.fetch_ids_max) {
                    let Some(encoded) = store.get(id)? else { continue };
                    if bytes + encoded.len() > self.config.fetch_bytes_max {
                        break;
                    }
                    bytes += encoded.len();
                    records.push(encoded);
                }
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.stats.records_out += records.len() as u64;
                }
                self.actions.push_back(Action::Send(from, Message::Records { records }));
            }
            Message::Records { .. } | Message::Proof(_) => {
                self.handle_event(Event::Message { from, message }, now, store)?;
            }
        }
        Ok(())
    }

    /// Flushes a due envelope, starts due reconciliations, drops stalled ones.
    pub fn handle_timeout<S: RecordStore>(&mut self, now: Timestamp, store: &mut S) -> Result<(), S::Error> {
        if self.pending_since.is_some_and(|since| now.ms() - since.ms() >= self.config.flush_interval_ms) {
            self.flush();
        }
        let timeout_ms = self.config.request_timeout_ms;
        let due: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, s)| s.next_reconcile <= now && !s.distrusted)
            .map(|(p, _)| p.clone())
            .collect();
        for (_, state) in self.peers.iter_mut() {
            if state.session.as_ref().is_some_and(|s| now.ms() - s.heard.ms() >= timeout_ms) {
                // What it had not compared yet, the next round will.
                state.session = None;
                state.more = true;
            }
            if state.fetching.as_ref().is_some_and(|fetch| now.ms() - fetch.since.ms() >= timeout_ms) {
                // Another peer may have them: the next round finds them again.
                release(&mut self.assigned, state.fetching.take().into_iter().flat_map(|fetch| fetch.ids));
            }
        }
        for peer in due {
            self.start_session(peer, now, store)?;
        }
        let idle: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, s)| s.fetching.is_none() && !s.wanted.is_empty())
            .map(|(p, _)| p.clone())
            .collect();
        for peer in idle {
            self.fetch_next(&peer, now);
        }
        Ok(())
    }

    pub fn poll_action(&mut self) -> Option<Action<P>> {
        self.actions.pop_front()
    }

    /// When `handle_timeout` should run next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let flush = self.pending_since.map(|since| since.saturating_add_ms(self.config.flush_interval_ms));
        let timeout_ms = self.config.request_timeout_ms;
        let peers = self.peers.values().flat_map(|s| {
            let session = s.session.as_ref().map(|session| session.heard.saturating_add_ms(timeout_ms));
            let fetch = s.fetching.as_ref().map(|fetch| fetch.since.saturating_add_ms(timeout_ms));
            [Some(s.next_reconcile), session, fetch]
        });
        flush.into_iter().chain(peers.flatten()).min()
    }

    /// The store now holds `stored` in place of `gone` (all as `(time,
    /// id)`): the reconciliation set follows, if it was read yet.
    fn note_stored(&mut self, stored: impl IntoIterator<Item = (u64, RecordId)>, gone: &[(u64, RecordId)]) {
        let Some(items) = &mut self.items else { return };
        for (time, id) in gone {
            items.remove(&items::item(*time, id));
        }
        for (time, id) in stored {
            items.insert(items::item(time, &id));
        }
    }

    /// The set as it is now, for a negentropy session; read from the store
    /// only the first time (or after a freeze).
    fn index<S: RecordStore>(&mut self, store: &S) -> Result<Snapshot, S::Error> {
        let items = match &mut self.items {
            Some(items) => items,
            None => {
                let stored = store.items()?.iter().map(|(time, id)| items::item(*time, id)).collect();
                self.items.insert(Items::new(stored))
            }
        };
        Ok(items.snapshot())
    }

    fn flush(&mut self) {
        if self.pending.is_empty() && self.proofs_to_gossip.is_empty() {
            return;
        }
        // Records of one bundle go as runs: the bundle's signature once.
        let (records, runs) = caravan_records::runs::pack(std::mem::take(&mut self.pending));
        let envelope = proto::Envelope { records, proofs: std::mem::take(&mut self.proofs_to_gossip), runs };
        self.pending_bytes = 0;
        self.pending_since = None;
        self.counters.envelopes_out += 1;
        self.actions.push_back(Action::Gossip(envelope.encode_to_vec()));
    }

    fn store_all<S: RecordStore>(
        &mut self,
        from: &P,
        records: Vec<Verified<Record>>,
        now: Timestamp,
        store: &mut S,
    ) -> Result<(), S::Error> {
        self.counters.records_in += records.len() as u64;
        let mut new = 0;
        let total = records.len() as u64;
        for record in records {
            let origin = record.origin;
            let signed_at = record.time;
            let id = record.id();
            match store.put(record, now)? {
                Put::New { gone } => {
                    new += 1;
                    self.counters.records_new += 1;
                    self.counters.lag.record(now.ms() - signed_at.ms());
                    self.note_stored([(signed_at.ms() as u64, id)], &gone);
                }
                Put::Old => {}
                Put::Frozen => {
                    // The sender still serves a frozen origin: tell it why.
                    if let Some(proof) = store.proof(origin)? {
                        self.actions.push_back(Action::Send(from.clone(), Message::Proof(proof)));
                    }
                }
                Put::Equivocation(proof) => {
                    // The store dropped the origin's records wholesale.
                    self.items = None;
                    self.count_reason("equivocation");
                    self.proofs_to_gossip.push(proof.to_proto());
                    self.flush();
                }
            }
        }
        if let Some(peer) = self.peers.get_mut(from) {
            peer.stats.records_in += total;
            peer.stats.records_new += new;
        }
        Ok(())
    }

    fn learn_proof<S: RecordStore>(
        &mut self,
        proof: &EquivocationProof,
        now: Timestamp,
        store: &mut S,
    ) -> Result<(), S::Error> {
        if store.freeze(proof, now)? {
            self.items = None;
            self.count_reason("equivocation");
            self.proofs_to_gossip.push(proof.to_proto());
            self.flush();
        }
        Ok(())
    }

    fn start_session<S: RecordStore>(&mut self, peer: P, now: Timestamp, store: &mut S) -> Result<(), S::Error> {
        let jitter = self.rng.below(self.config.reconcile_interval_ms as u64);
        let next = now.saturating_add_ms(self.config.reconcile_interval_ms + jitter as i64);
        let session_id = self.next_session;
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        state.next_reconcile = next;
        if state.session.is_some() {
            return Ok(());
        }
        let index = self.index(store)?;
        // Looked up again: building the index needed all of `self`.
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        let Ok(mut negentropy) = Negentropy::owned(index, RECONCILE_FRAME_BYTES_MAX) else { return Ok(()) };
        let Ok(frame) = negentropy.initiate() else { return Ok(()) };
        self.next_session += 1;
        self.counters.reconcile_rounds += 1;
        self.counters.reconcile_bytes += frame.len() as u64;
        state.session = Some(Session { id: session_id, negentropy, heard: now });
        self.actions.push_back(Action::Send(peer, Message::ReconcileQuery { session: session_id, frame }));
        Ok(())
    }

    fn continue_session(&mut self, from: P, session_id: u64, frame: &[u8], now: Timestamp) {
        self.counters.reconcile_bytes += frame.len() as u64;
        self.counters.bytes_in += frame.len() as u64;
        let Some(state) = self.peers.get_mut(&from) else { return };
        let Some(session) = state.session.as_mut().filter(|s| s.id == session_id) else { return };
        session.heard = now;
        let (mut have, mut need) = (Vec::new(), Vec::new());
        match session.negentropy.reconcile_with_ids(frame, &mut have, &mut need) {
            Ok(next) => {
                // Negentropy lists what we need in hash-set order, which
                // differs run to run: sorted, the same events give the
                // same fetches.
                need.sort_unstable();
                // An id another peer was asked for already is not asked
                // for twice: a new node reconciling with several peers
                // fetches each record once, from the first that has it.
                for id in need.iter().map(|id| RecordId(id.to_bytes())) {
                    if self.assigned.contains(&id) {
                        continue;
                    }
                    if state.wanted.len() >= self.config.wanted_max {
                        state.more = true;
                        break;
                    }
                    self.assigned.insert(id);
                    state.wanted.push_back(id);
                }
                match next {
                    Some(frame) => {
                        self.counters.reconcile_bytes += frame.len() as u64;
                        self.actions.push_back(Action::Send(
                            from.clone(),
                            Message::ReconcileQuery { session: session_id, frame },
                        ));
                    }
                    None => state.session = None,
                }
            }
            Err(_) => {
                state.session = None;
                self.count_reason("bad_reconcile_frame");
            }
        }
        if self.peers.get(&from).is_some_and(|s| s.fetching.is_none()) {
            self.fetch_next(&from, now);
        }
    }

    /// After a round that found more than it could keep, and once that is
    /// fetched, the next round starts now rather than at the interval.
    fn catch_up<S: RecordStore>(&mut self, peer: P, now: Timestamp, store: &mut S) -> Result<(), S::Error> {
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        if !state.more || !state.wanted.is_empty() || state.fetching.is_some() || state.session.is_some() {
            return Ok(());
        }
        state.more = false;
        self.start_session(peer, now, store)
    }

    /// Asks nothing more of `peer`, and gives what it was to serve back to
    /// the others: they reconcile now.
    fn distrust(&mut self, peer: &P, now: Timestamp) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        if state.distrusted {
            return;
        }
        state.distrusted = true;
        state.session = None;
        state.more = false;
        release(&mut self.assigned, state.wanted.drain(..));
        release(&mut self.assigned, state.fetching.take().into_iter().flat_map(|fetch| fetch.ids));
        self.count_reason("junk_peer");
        for (other, state) in self.peers.iter_mut() {
            if other != peer && !state.distrusted {
                state.next_reconcile = now;
            }
        }
    }

    fn fetch_next(&mut self, peer: &P, now: Timestamp) {
        let fetch_ids_max = self.config.fetch_ids_max;
        let Some(state) = self.peers.get_mut(peer) else { return };
        if state.wanted.is_empty() || state.distrusted {
            return;
        }
        let ids: Vec<RecordId> = state.wanted.drain(..fetch_ids_max.min(state.wanted.len())).collect();
        state.fetching = Some(Fetch { since: now, ids: ids.clone() });
        self.actions.push_back(Action::Send(peer.clone(), Message::Fetch { ids }));
    }

    fn count_rejection(&mut self, rejection: &Rejection) {
        self.count_reason(rejection.reason());
    }

    fn count_reason(&mut self, reason: &'static str) {
        *self.counters.rejected.entry(reason).or_default() += 1;
    }
}

/// A fetch's ids split by its answer: those the peer tried (served, or no
/// longer held) and those it did not get to. A peer serves a fetch in the
/// order asked until its answer is full, so the ids after the last one
/// served are the untried. An answer with nothing served tried them all,
/// so asking the untried again always makes progress.
fn split_at_last_served(mut ids: Vec<RecordId>, served: &HashSet<RecordId>) -> (Vec<RecordId>, Vec<RecordId>) {
    let tried = ids.iter().rposition(|id| served.contains(id)).map_or(ids.len(), |last| last + 1);
    let untried = ids.split_off(tried);
    (ids, untried)
}

/// Ids no peer is asked for any more: another may be, at the next round.
fn release(assigned: &mut HashSet<RecordId>, ids: impl IntoIterator<Item = RecordId>) {
    for id in ids {
        assigned.remove(&id);
    }
}
