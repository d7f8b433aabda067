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
//! - **Bulk.** A node far behind a peer (a new node joining a network that
//!   holds millions of records, or one back from long offline) learns it
//!   from the peer's first reply, which says how many records it holds.
//!   Negentropy costs the answering side a walk over everything the
//!   behind side lacks for every frame, so the node pages through the
//!   peer's ordered `(time, id)` list instead (`O(log n + page)` a page),
//!   spreads what it lacks over all its peers' fetch queues, and
//!   reconciles only the remainder. Pages are asked only as fetches drain,
//!   so memory stays bounded; a node stopped midway lists again from the
//!   start and fetches only what it still lacks.
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

use caravan_model::rate::{Rate, TokenBucket};
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
    /// Fetches one peer may have unanswered at once: while it reads one
    /// page from its store, this node verifies and stores the one before.
    pub fetches_in_flight: usize,
    /// Bytes of records per fetch answer.
    pub fetch_bytes_max: usize,
    /// Ids a node remembers to fetch from one peer. When a round finds
    /// more, the next round starts as soon as these are fetched, not at
    /// the interval: a new node catches up in back-to-back rounds.
    pub wanted_max: usize,
    /// A peer that holds this many records more than this node is listed
    /// page by page rather than reconciled.
    pub bulk_gap: u64,
    /// Requests (reconciliation queries, listings, fetches) one peer may
    /// make of this node a second, in bursts of a second's worth; beyond,
    /// they go unanswered, and the peer's timeout paces it. A node
    /// bootstrapping from this one asks for ~80 pages a second at most.
    pub peer_requests_per_second: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            envelope_bytes_max: 32 * 1024,
            flush_interval_ms: 250,
            reconcile_interval_ms: 30_000,
            request_timeout_ms: 10_000,
            fetch_ids_max: 256,
            fetches_in_flight: 4,
            fetch_bytes_max: 256 * 1024,
            wanted_max: 100_000,
            bulk_gap: 100_000,
            peer_requests_per_second: 200,
        }
    }
}

/// negentropy frames: at least 4096 by its rules; ours fit request-response.
const RECONCILE_FRAME_BYTES_MAX: u64 = 60_000;

/// A node listing a peer asks for the next page once fewer ids than this
/// wait to be fetched: enough to keep every peer's fetches going, few
/// enough that a listing of millions holds little memory.
const LIST_AHEAD: usize = 2 * MESSAGE_ITEMS_MAX;

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
        /// How many records the answering node holds.
        held: u64,
    },
    /// `request` numbers the fetch for its answer (0: unnumbered).
    Fetch {
        request: u64,
        ids: Vec<RecordId>,
    },
    /// Encoded `SignedRecord`s, answering the fetch `request`.
    Records {
        request: u64,
        records: Vec<Vec<u8>>,
    },
    /// An encoded `EquivocationProof`.
    Proof(Vec<u8>),
    /// Asks for a page of the `(time, id)` held after `after`.
    List {
        after: Option<(u64, RecordId)>,
    },
    /// That page, ascending, at most [`MESSAGE_ITEMS_MAX`]; empty past the
    /// end.
    Listed {
        items: Vec<(u64, RecordId)>,
        held: u64,
    },
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
    /// Not taken or not to travel, but no proof of bad faith: records of
    /// an origin frozen for equivocating (its proof travels instead; the
    /// sender may not have it yet; the envelope's other records were
    /// taken and peers reconcile them), or a refusal a newer or skewed
    /// honest node could cause (an unknown kind, a time ahead of ours).
    Ignore,
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
    /// Items of the reconciliation set read to answer or run sessions and
    /// to serve listings: what reconciling costs this node's CPU.
    pub reconcile_items_read: u64,
    /// Ids a peer listed to this node while it was far behind.
    pub listed: u64,
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
    /// What `negentropy` reads, and how much of what it read is counted.
    set: Snapshot,
    counted: u64,
    /// When the peer last answered (or the session started): a session
    /// stalls when the peer stops answering, however long it has run,
    /// since a new node's first session lasts as long as its answers wait
    /// behind the records they ask for.
    heard: Timestamp,
}

/// A node far behind pages through one peer's ids.
struct Bulk<P> {
    lister: P,
    /// What the lister holds.
    held: u64,
    /// The last item listed: the next page starts after it.
    cursor: Option<negentropy::Item>,
    /// When the page in flight was asked for, if one is.
    asked: Option<Timestamp>,
}

/// A fetch sent to a peer and not yet answered.
struct Fetch {
    request: u64,
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
    /// The fetches in flight, oldest first.
    fetching: VecDeque<Fetch>,
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
    /// What each peer has left of `peer_requests_per_second`.
    request_budgets: BTreeMap<P, TokenBucket>,
    /// Ids some peer is to be asked for, or was and has not answered.
    assigned: HashSet<RecordId>,
    /// Listing a peer, while far behind it.
    bulk: Option<Bulk<P>>,
    next_session: u64,
    next_request: u64,
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
        assert!(config.fetches_in_flight > 0);
        Replica {
            config,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
            proofs_to_gossip: Vec::new(),
            items: None,
            peers: BTreeMap::new(),
            request_budgets: BTreeMap::new(),
            assigned: HashSet::new(),
            bulk: None,
            next_session: 1,
            next_request: 1,
            rng: SplitMix64::new(seed),
            actions: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Records the store holds, if the reconciliation set was read.
    pub fn held(&self) -> Option<u64> {
        self.items.as_ref().map(|items| items.len() as u64)
    }

    /// Peers currently connected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Records found missing and not fetched yet, queued or asked for:
    /// what a new node still has to fetch of what it knows about. While it
    /// lists a peer, what that peer holds beyond what it has.
    pub fn missing(&self) -> u64 {
        // An id is assigned from the moment it is queued for a peer until
        // that peer answers for it.
        let assigned = self.assigned.len() as u64;
        let held = self.items.as_ref().map_or(0, |items| items.len() as u64);
        let behind = self.bulk.as_ref().map_or(0, |bulk| bulk.held.saturating_sub(held));
        assigned.max(behind)
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
            fetching: VecDeque::new(),
            distrusted: false,
            stats,
        };
        self.peers.insert(peer, state);
    }

    pub fn handle_disconnected(&mut self, peer: &P, now: Timestamp) {
        // Budgets that refilled are forgotten; one that did not outlives
        // the connection, so reconnecting does not refill it.
        let rate = Rate::per_second(self.config.peer_requests_per_second);
        self.request_budgets.retain(|_, budget| !budget.is_full(rate, now));
        if let Some(mut state) = self.peers.remove(peer) {
            let dropped: Vec<RecordId> =
                state.wanted.drain(..).chain(state.fetching.drain(..).flat_map(|fetch| fetch.ids)).collect();
            self.give_back(dropped, now);
        }
        if self.bulk.as_ref().is_some_and(|bulk| bulk.lister == *peer) {
            self.hand_over_listing(now);
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
            Checked::Plain(Event::Disconnected(peer)) => self.handle_disconnected(&peer, now),
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
                        let touched_frozen = self.store_all(&from, envelope.records, now, store)?;
                        if touched_frozen {
                            Verdict::Ignore
                        } else {
                            Verdict::Accept
                        }
                    }
                    Err(rejection) => {
                        self.count_rejection(&rejection);
                        if rejection.proves_bad_faith() {
                            Verdict::Reject
                        } else {
                            Verdict::Ignore
                        }
                    }
                };
                self.actions.push_back(Action::Validated { from, envelope_id, verdict });
            }
            Checked::Records { from, request, bytes, verified, rejected } => {
                // A peer serves only records it verified; one that does
                // not verify here is junk (a clock ahead of ours is not).
                let junk = rejected.iter().any(|r| !matches!(r, Rejection::TimeInFuture { .. }));
                let served: HashSet<RecordId> = verified.iter().map(|r| r.id()).collect();
                let mut not_served = Vec::new();
                if let Some(peer) = self.peers.get_mut(&from) {
                    // An unnumbered answer (an older peer's) is the oldest's.
                    let at = peer.fetching.iter().position(|f| f.request == request || request == 0);
                    if let Some(fetch) = at.and_then(|at| peer.fetching.remove(at)) {
                        let (tried, untried) = split_at_last_served(fetch.ids, &served);
                        let (good, bad): (Vec<_>, Vec<_>) = tried.into_iter().partition(|id| served.contains(id));
                        release(&mut self.assigned, good);
                        // A junk peer's answers are worth nothing: others
                        // are asked. An honest peer no longer holds them.
                        if junk {
                            not_served = bad;
                        } else {
                            release(&mut self.assigned, bad);
                        }
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
                if junk {
                    self.distrust(&from, now);
                    self.give_back(not_served, now);
                }
                self.counters.fetched += verified.len() as u64;
                self.store_all(&from, verified, now, store)?;
                self.fetch_next(&from, now);
                self.list_next(now);
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
        let asks = matches!(message, Message::ReconcileQuery { .. } | Message::List { .. } | Message::Fetch { .. });
        if asks && !self.within_request_budget(&from, now) {
            self.count_reason("rate_limited");
            return Ok(());
        }
        match message {
            Message::ReconcileQuery { session, frame } => {
                self.counters.reconcile_bytes += frame.len() as u64;
                self.counters.bytes_in += frame.len() as u64;
                let held = self.loaded(store)?.len() as u64;
                let index = self.index(store)?;
                let reply =
                    Negentropy::owned(index.clone(), RECONCILE_FRAME_BYTES_MAX).and_then(|mut n| n.reconcile(&frame));
                self.counters.reconcile_items_read += index.read();
                match reply {
                    Ok(frame) => {
                        self.actions.push_back(Action::Send(from, Message::ReconcileReply { session, frame, held }))
                    }
                    Err(_) => self.count_reason("bad_reconcile_frame"),
                }
            }
            Message::ReconcileReply { session, frame, held } => {
                self.continue_session(from, session, &frame, held, now, store)?
            }
            Message::List { after } => {
                let items = self.loaded(store)?;
                let cursor = after.map(|(time, id)| items::item(time, &id));
                let page = items.after(cursor.as_ref(), MESSAGE_ITEMS_MAX);
                let held = items.len() as u64;
                self.counters.reconcile_items_read += page.len() as u64;
                let items = page.iter().map(|item| (item.timestamp, RecordId(item.id.to_bytes()))).collect();
                self.actions.push_back(Action::Send(from, Message::Listed { items, held }));
            }
            Message::Listed { items, held } => self.take_listed(from, items, held, now, store)?,
            Message::Fetch { request, ids } => {
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
                self.actions.push_back(Action::Send(from, Message::Records { request, records }));
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
        if self.bulk.as_ref().and_then(|bulk| bulk.asked).is_some_and(|asked| now.ms() - asked.ms() >= timeout_ms) {
            self.hand_over_listing(now);
        }
        for (_, state) in self.peers.iter_mut() {
            if state.session.as_ref().is_some_and(|s| now.ms() - s.heard.ms() >= timeout_ms) {
                // What it had not compared yet, the next round will.
                state.session = None;
                state.more = true;
            }
            while state.fetching.front().is_some_and(|fetch| now.ms() - fetch.since.ms() >= timeout_ms) {
                // Another peer may have them: the next round finds them again.
                release(&mut self.assigned, state.fetching.pop_front().into_iter().flat_map(|fetch| fetch.ids));
            }
        }
        for peer in due {
            self.start_session(peer, now, store)?;
        }
        self.fetch_where_idle(now);
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
            let fetch = s.fetching.front().map(|fetch| fetch.since.saturating_add_ms(timeout_ms));
            [Some(s.next_reconcile), session, fetch]
        });
        let listing = self.bulk.as_ref().and_then(|bulk| bulk.asked).map(|asked| asked.saturating_add_ms(timeout_ms));
        flush.into_iter().chain(listing).chain(peers.flatten()).min()
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

    /// The set as it is now, for a negentropy session.
    fn index<S: RecordStore>(&mut self, store: &S) -> Result<Snapshot, S::Error> {
        Ok(self.loaded(store)?.snapshot())
    }

    /// The set, read from the store only the first time (or after a freeze).
    fn loaded<S: RecordStore>(&mut self, store: &S) -> Result<&mut Items, S::Error> {
        if self.items.is_none() {
            let stored = store.items()?.iter().map(|(time, id)| items::item(*time, id)).collect();
            self.items = Some(Items::new(stored));
        }
        Ok(self.items.as_mut().expect("just loaded"))
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

    /// Stores what `from` sent; whether any of it was of an origin frozen
    /// for equivocating (the sender is then sent the proof).
    fn store_all<S: RecordStore>(
        &mut self,
        from: &P,
        records: Vec<Verified<Record>>,
        now: Timestamp,
        store: &mut S,
    ) -> Result<bool, S::Error> {
        self.counters.records_in += records.len() as u64;
        let mut new = 0;
        let mut frozen = false;
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
                    frozen = true;
                    // The sender still serves a frozen origin: tell it why.
                    if let Some(proof) = store.proof(origin)? {
                        self.actions.push_back(Action::Send(from.clone(), Message::Proof(proof)));
                    }
                }
                Put::Equivocation(proof) => {
                    frozen = true;
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
        Ok(frozen)
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
        // While listing, the rounds wait: they would find what the listing
        // finds, at negentropy's cost; they start again when it ends.
        if state.session.is_some() || self.bulk.is_some() {
            return Ok(());
        }
        let index = self.index(store)?;
        // Looked up again: building the index needed all of `self`.
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        let Ok(mut negentropy) = Negentropy::owned(index.clone(), RECONCILE_FRAME_BYTES_MAX) else { return Ok(()) };
        let Ok(frame) = negentropy.initiate() else { return Ok(()) };
        self.next_session += 1;
        self.counters.reconcile_rounds += 1;
        self.counters.reconcile_bytes += frame.len() as u64;
        let counted = index.read();
        self.counters.reconcile_items_read += counted;
        state.session = Some(Session { id: session_id, negentropy, set: index, counted, heard: now });
        self.actions.push_back(Action::Send(peer, Message::ReconcileQuery { session: session_id, frame }));
        Ok(())
    }

    fn continue_session<S: RecordStore>(
        &mut self,
        from: P,
        session_id: u64,
        frame: &[u8],
        held: u64,
        now: Timestamp,
        store: &S,
    ) -> Result<(), S::Error> {
        self.counters.reconcile_bytes += frame.len() as u64;
        self.counters.bytes_in += frame.len() as u64;
        let ours = self.loaded(store)?.len() as u64;
        let far_behind = self.bulk.is_none() && held > ours.saturating_add(self.config.bulk_gap);
        let Some(state) = self.peers.get_mut(&from) else { return Ok(()) };
        let Some(session) = state.session.as_mut().filter(|s| s.id == session_id) else { return Ok(()) };
        if far_behind {
            // Rounds with the other peers would find the same, at the cost
            // listing avoids: they stop too.
            for state in self.peers.values_mut() {
                state.session = None;
            }
            self.bulk = Some(Bulk { lister: from, held, cursor: None, asked: None });
            self.list_next(now);
            return Ok(());
        }
        session.heard = now;
        let (mut have, mut need) = (Vec::new(), Vec::new());
        let step = session.negentropy.reconcile_with_ids(frame, &mut have, &mut need);
        let read = session.set.read();
        self.counters.reconcile_items_read += read - session.counted;
        session.counted = read;
        match step {
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
        self.fetch_next(&from, now);
        Ok(())
    }

    /// A page of the ids a peer holds, while this node lists it: what is
    /// missing here goes to the peers' fetch queues.
    fn take_listed<S: RecordStore>(
        &mut self,
        from: P,
        page: Vec<(u64, RecordId)>,
        held: u64,
        now: Timestamp,
        store: &S,
    ) -> Result<(), S::Error> {
        self.counters.bytes_in += (page.len() * 40) as u64;
        let Some(bulk) = self.bulk.as_mut().filter(|bulk| bulk.lister == from && bulk.asked.is_some()) else {
            // Unasked, or from a lister that was replaced.
            return Ok(());
        };
        bulk.asked = None;
        bulk.held = held;
        let page: Vec<negentropy::Item> = page.iter().map(|(time, id)| items::item(*time, id)).collect();
        let ascending = page.windows(2).all(|pair| pair[0] < pair[1]);
        let after_cursor = bulk.cursor.zip(page.first()).is_none_or(|(cursor, first)| cursor < *first);
        if !(ascending && after_cursor) {
            self.distrust(&from, now);
            return Ok(());
        }
        let Some(last) = page.last().copied() else {
            // The end of its list: reconciliation finds what changed since.
            self.bulk = None;
            for state in self.peers.values_mut() {
                state.next_reconcile = now;
            }
            return Ok(());
        };
        bulk.cursor = Some(last);
        self.counters.listed += page.len() as u64;
        self.loaded(store)?;
        let (held_here, assigned) = (self.items.as_ref().expect("loaded"), &self.assigned);
        let missing: Vec<RecordId> = page
            .iter()
            .filter(|item| !held_here.contains(item))
            .map(|item| RecordId(item.id.to_bytes()))
            .filter(|id| !assigned.contains(id))
            .collect();
        self.reassign(missing, now);
        self.list_next(now);
        Ok(())
    }

    /// Asks the lister for the next page, if none is in flight and few
    /// enough ids wait to be fetched.
    fn list_next(&mut self, now: Timestamp) {
        let Some(bulk) = self.bulk.as_mut() else { return };
        if bulk.asked.is_some() || self.assigned.len() >= LIST_AHEAD {
            return;
        }
        bulk.asked = Some(now);
        let after = bulk.cursor.map(|item| (item.timestamp, RecordId(item.id.to_bytes())));
        self.actions.push_back(Action::Send(bulk.lister.clone(), Message::List { after }));
    }

    /// The lister left, stalled or served junk: another peer goes on from
    /// the same cursor, or, with none left, reconciliation takes over.
    fn hand_over_listing(&mut self, now: Timestamp) {
        let Some(bulk) = self.bulk.as_mut() else { return };
        let next = self
            .peers
            .iter()
            .filter(|(peer, state)| !state.distrusted && **peer != bulk.lister)
            .map(|(peer, _)| peer.clone())
            .next();
        match next {
            Some(peer) => {
                bulk.lister = peer;
                bulk.asked = None;
                self.list_next(now);
            }
            None => self.bulk = None,
        }
    }

    /// Queues `ids` on the trusted peers, a fetch's worth to the one with
    /// the shortest queue at a time, and starts fetches where none run.
    /// Ids no peer can take are released: reconciliation finds them again.
    fn reassign(&mut self, ids: Vec<RecordId>, now: Timestamp) {
        for page in ids.chunks(self.config.fetch_ids_max) {
            let shortest = self.peers.iter_mut().filter(|(_, state)| !state.distrusted).min_by_key(|(_, state)| {
                state.wanted.len() + state.fetching.iter().map(|f| f.ids.len()).sum::<usize>()
            });
            match shortest {
                Some((_, state)) => {
                    state.wanted.extend(page);
                    self.assigned.extend(page);
                }
                None => release(&mut self.assigned, page.iter().copied()),
            }
        }
        self.fetch_where_idle(now);
    }

    /// Starts fetches at every peer with ids queued and room in flight.
    fn fetch_where_idle(&mut self, now: Timestamp) {
        let idle: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, state)| state.fetching.len() < self.config.fetches_in_flight && !state.wanted.is_empty())
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in idle {
            self.fetch_next(&peer, now);
        }
    }

    /// After a round that found more than it could keep, and once that is
    /// fetched, the next round starts now rather than at the interval.
    fn catch_up<S: RecordStore>(&mut self, peer: P, now: Timestamp, store: &mut S) -> Result<(), S::Error> {
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        if !state.more || !state.wanted.is_empty() || !state.fetching.is_empty() || state.session.is_some() {
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
        let dropped: Vec<RecordId> =
            state.wanted.drain(..).chain(state.fetching.drain(..).flat_map(|fetch| fetch.ids)).collect();
        self.count_reason("junk_peer");
        for (other, state) in self.peers.iter_mut() {
            if other != peer && !state.distrusted {
                state.next_reconcile = now;
            }
        }
        if self.bulk.as_ref().is_some_and(|bulk| bulk.lister == *peer) {
            self.hand_over_listing(now);
        }
        self.give_back(dropped, now);
    }

    /// Ids a peer will not serve after all. While listing, the others
    /// fetch them; otherwise the next rounds find them again.
    fn give_back(&mut self, ids: Vec<RecordId>, now: Timestamp) {
        if self.bulk.is_some() {
            self.reassign(ids, now);
        } else {
            release(&mut self.assigned, ids);
        }
    }

    /// Asks `peer` for the next pages it is to serve, up to
    /// `fetches_in_flight` at once.
    fn fetch_next(&mut self, peer: &P, now: Timestamp) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        while !state.wanted.is_empty() && !state.distrusted && state.fetching.len() < self.config.fetches_in_flight {
            let ids: Vec<RecordId> = state.wanted.drain(..self.config.fetch_ids_max.min(state.wanted.len())).collect();
            let request = self.next_request;
            self.next_request += 1;
            state.fetching.push_back(Fetch { request, since: now, ids: ids.clone() });
            self.actions.push_back(Action::Send(peer.clone(), Message::Fetch { request, ids }));
        }
    }

    /// Takes one of `peer`'s requests from its budget, if any is left.
    fn within_request_budget(&mut self, peer: &P, now: Timestamp) -> bool {
        let rate = Rate::per_second(self.config.peer_requests_per_second);
        let budget = self.request_budgets.entry(peer.clone()).or_insert_with(|| TokenBucket::full(rate, now));
        budget.take(rate, now)
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
