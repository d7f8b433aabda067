//! A deterministic simulator of many nodes running the replication core
//! over an unreliable network, and the invariants every run must end with.
//!
//! Everything non-deterministic is a function of one seed: the peer graph,
//! message loss, duplication and delay (hence reordering), who publishes
//! what and when. Time is virtual. Gossip is modelled as flooding with
//! de-duplication by envelope id (what gossipsub does, minus the mesh), and
//! a node forwards only the envelopes its core accepted.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};

use caravan_model::rng::SplitMix64;
use caravan_model::{AriDay, AriRun, Timestamp};
use caravan_records::{proto, sign_bundle, sign_one, verify, Draft, Origin, Payload, RecordId};
use caravan_replication::{Action, Config, MemoryStore, Message, RecordStore, Replica, Verdict};
use ed25519_dalek::SigningKey;
use prost::Message as _;

/// What a run looks like; every field has a sensible default.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: u32,
    pub degree: u32,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Delivery delay, uniform in this range: messages overtake each other.
    pub delay_ms: (i64, i64),
    /// Publishing origins, each living on one node.
    pub origins: u32,
    /// Records published in all.
    pub records: u32,
    /// Publishing happens in `0..publish_ms`.
    pub publish_ms: i64,
    /// The nodes split in two halves during this window.
    pub partition_ms: Option<(i64, i64)>,
    /// One node is offline during this window.
    pub offline_ms: Option<(i64, i64)>,
    /// The run ends here; the network stays lossy to the end.
    pub end_ms: i64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            nodes: 20,
            degree: 3,
            loss: 0.10,
            duplicate: 0.05,
            delay_ms: (1, 400),
            origins: 8,
            records: 240,
            publish_ms: 60_000,
            partition_ms: Some((20_000, 70_000)),
            offline_ms: Some((10_000, 90_000)),
            end_ms: 240_000,
        }
    }
}

/// How the replication core is tuned in simulation: rounds every few
/// seconds instead of every half minute, so a run covers many of them.
pub fn replication_config() -> Config {
    Config { reconcile_interval_ms: 5_000, request_timeout_ms: 3_000, fetch_ids_max: 32, ..Config::default() }
}

/// What travels between two simulated nodes.
enum Wire {
    Gossip(Vec<u8>),
    Message(Message),
}

struct Delivery {
    to: u32,
    from: u32,
    payload: Wire,
}

struct Node {
    replica: Replica<u32>,
    store: MemoryStore,
    /// Envelopes already handled (gossip de-duplication).
    seen: HashSet<[u8; 32]>,
}

pub struct Simulation {
    pub seed: u64,
    config: SimConfig,
    now: Timestamp,
    nodes: Vec<Node>,
    neighbours: Vec<Vec<u32>>,
    queue: BinaryHeap<Reverse<(Timestamp, u64)>>,
    deliveries: BTreeMap<u64, Delivery>,
    next_seq: u64,
    rng: SplitMix64,
    origins: Vec<SigningKey>,
    /// Next version per origin.
    versions: Vec<u64>,
    /// Ids of records that must never be stored anywhere.
    pub forged: BTreeSet<RecordId>,
    /// The origin that equivocates.
    pub liar: Origin,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// The simulated clock starts here (2030-01-01), so records are recent.
const EPOCH: Timestamp = Timestamp(1_893_456_000_000);

impl Simulation {
    pub fn new(seed: u64, config: SimConfig) -> Simulation {
        let graph = caravan_topology::generate(config.nodes, config.degree, seed).expect("a valid layout");
        let neighbours = (0..config.nodes).map(|p| graph.neighbours(p)).collect();
        let nodes = (0..config.nodes)
            .map(|idx| Node {
                replica: Replica::new(replication_config(), seed ^ ((idx as u64 + 1) * 0x1000_0000_01B3)),
                store: MemoryStore::default(),
                seen: HashSet::new(),
            })
            .collect();
        let origins: Vec<SigningKey> = (0..config.origins)
            .map(|idx| {
                let mut secret = [0u8; 32];
                secret[..8].copy_from_slice(&seed.to_le_bytes());
                secret[8..12].copy_from_slice(&idx.to_le_bytes());
                SigningKey::from_bytes(&secret)
            })
            .collect();
        let liar = Origin(origins[0].verifying_key().to_bytes());
        let versions = vec![1; origins.len()];
        let mut sim = Simulation {
            seed,
            config,
            now: EPOCH,
            nodes,
            neighbours,
            queue: BinaryHeap::new(),
            deliveries: BTreeMap::new(),
            next_seq: 0,
            rng: SplitMix64::new(seed),
            origins,
            versions,
            forged: BTreeSet::new(),
            liar,
        };
        for node in 0..sim.config.nodes {
            for peer in sim.neighbours[node as usize].clone() {
                sim.nodes[node as usize].replica.handle_connected(peer, EPOCH);
            }
        }
        sim
    }

    fn at(&self, offset_ms: i64) -> Timestamp {
        EPOCH.saturating_add_ms(offset_ms)
    }

    fn in_window(&self, window: Option<(i64, i64)>) -> bool {
        window.is_some_and(|(from, to)| self.now >= self.at(from) && self.now < self.at(to))
    }

    /// The node that goes offline for a while.
    fn offline_node(&self) -> u32 {
        self.config.nodes - 1
    }

    fn online(&self, node: u32) -> bool {
        !(node == self.offline_node() && self.in_window(self.config.offline_ms))
    }

    fn can_talk(&self, a: u32, b: u32) -> bool {
        let half = self.config.nodes / 2;
        self.online(a) && self.online(b) && (!self.in_window(self.config.partition_ms) || (a < half) == (b < half))
    }

    /// Runs to the end and returns the per-node outcome.
    pub fn run(&mut self) {
        let publish_gap_ms = (self.config.publish_ms / self.config.records.max(1) as i64).max(1);
        let mut next_publish = self.at(0);
        let mut published = 0;
        let mut was_online = true;
        let end = self.at(self.config.end_ms);
        while self.now < end {
            // Churn: the offline node's neighbours see it go and come back.
            let online = self.online(self.offline_node());
            if online != was_online {
                self.toggle_links(self.offline_node(), online);
                was_online = online;
            }
            if published < self.config.records && self.now >= next_publish {
                self.publish(published);
                published += 1;
                next_publish = next_publish.saturating_add_ms(publish_gap_ms);
            }
            // Early, before any partition or churn, so it is surely delivered.
            if published == 1 && self.forged.is_empty() {
                self.inject_forgery();
            }
            self.deliver_due();
            for node in 0..self.config.nodes {
                if !self.online(node) {
                    continue;
                }
                let due = self.nodes[node as usize].replica.poll_timeout().is_some_and(|t| t <= self.now);
                if due {
                    let Node { replica, store, .. } = &mut self.nodes[node as usize];
                    infallible(replica.handle_timeout(self.now, store));
                }
                self.drain_actions(node);
            }
            self.now = self.now.saturating_add_ms(10);
        }
    }

    fn toggle_links(&mut self, node: u32, up: bool) {
        for peer in self.neighbours[node as usize].clone() {
            if up {
                self.nodes[peer as usize].replica.handle_connected(node, self.now);
                self.nodes[node as usize].replica.handle_connected(peer, self.now);
            } else {
                self.nodes[peer as usize].replica.handle_disconnected(&node, self.now);
                self.nodes[node as usize].replica.handle_disconnected(&peer, self.now);
            }
        }
    }

    /// Origin `n % origins` publishes; every fifth publication is a bundle of
    /// three; the liar equivocates once, from two nodes.
    fn publish(&mut self, n: u32) {
        let origin = (n % self.config.origins) as usize;
        let home = origin as u32 % self.config.nodes;
        let version = self.versions[origin];
        self.versions[origin] += 1;
        let key = self.origins[origin].clone();
        let listings = 4;
        let now = self.now;
        let draft = |listing: u32, available: u32| Draft {
            key: format!("listing-{listing}"),
            version,
            time: now,
            payload: Payload::Ari(vec![AriRun {
                start: now.date(),
                days: 30,
                day: AriDay { available, price_minor: 10_000 + available as i64, ..AriDay::default() },
            }]),
        };
        let signed: Vec<proto::SignedRecord> = if n % 5 == 4 {
            sign_bundle(&key, &(0..3).map(|l| draft(l, n % 7)).collect::<Vec<_>>())
        } else {
            vec![sign_one(&key, &draft(n % listings, n % 7))]
        };
        self.publish_at(home, signed);
        if origin == 0 && version == 3 {
            // Same slot, same version, different content, from another node.
            let twin = sign_one(&key, &draft(n % listings, 99));
            self.publish_at((home + self.config.nodes / 2) % self.config.nodes, vec![twin]);
        }
    }

    fn publish_at(&mut self, node: u32, signed: Vec<proto::SignedRecord>) {
        if !self.online(node) {
            return;
        }
        let Node { replica, store, .. } = &mut self.nodes[node as usize];
        let (mut fresh, mut displaced) = (Vec::new(), Vec::new());
        for record in signed {
            let record = verify(record, self.now).expect("own records verify");
            if let caravan_replication::Put::New { gone } = infallible(store.put(record.clone(), self.now)) {
                displaced.extend(gone);
                fresh.push(record);
            }
        }
        replica.handle_published(fresh, displaced, self.now);
    }

    /// A peer gossips a record whose content was changed after signing.
    fn inject_forgery(&mut self) {
        let key = &self.origins[1];
        let draft = Draft {
            key: "listing-0".into(),
            version: 10_000,
            time: self.now,
            payload: Payload::Ari(vec![AriRun { start: self.now.date(), days: 1, day: AriDay::default() }]),
        };
        let mut forged = sign_one(key, &draft);
        let mut body = proto::Record::decode(forged.record.as_slice()).expect("just encoded");
        body.version = 10_001;
        forged.record = body.encode_to_vec();
        self.forged.insert(RecordId(*blake3::hash(&forged.record).as_bytes()));
        let envelope = proto::Envelope { records: vec![forged], proofs: vec![], runs: vec![] }.encode_to_vec();
        // Delivered for sure, to a node that is up: the test must see it refused.
        let target = self.rng.below(self.config.nodes as u64 - 1) as u32;
        let from = self.neighbours[target as usize][0];
        self.enqueue(from, target, Wire::Gossip(envelope), 1);
    }

    fn send(&mut self, from: u32, to: u32, payload: Wire) {
        if self.rng.chance(self.config.loss) {
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) { 2 } else { 1 };
        let payload_copies: Vec<Wire> = match payload {
            Wire::Gossip(bytes) => (0..copies).map(|_| Wire::Gossip(bytes.clone())).collect(),
            Wire::Message(message) => (0..copies).map(|_| Wire::Message(message.clone())).collect(),
        };
        for payload in payload_copies {
            let (low, high) = self.config.delay_ms;
            let delay = low + self.rng.below((high - low + 1) as u64) as i64;
            self.enqueue(from, to, payload, delay);
        }
    }

    fn enqueue(&mut self, from: u32, to: u32, payload: Wire, delay_ms: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse((self.now.saturating_add_ms(delay_ms), seq)));
        self.deliveries.insert(seq, Delivery { to, from, payload });
    }

    fn deliver_due(&mut self) {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let delivery = self.deliveries.remove(&seq).expect("queued deliveries are kept");
            let (to, from) = (delivery.to, delivery.from);
            if !self.can_talk(from, to) {
                continue;
            }
            let Node { replica, store, seen } = &mut self.nodes[to as usize];
            match delivery.payload {
                Wire::Gossip(bytes) => {
                    if seen.insert(*blake3::hash(&bytes).as_bytes()) {
                        infallible(replica.handle_gossip(from, &bytes, self.now, store));
                        self.forward_if_accepted(to, from, bytes);
                    }
                }
                Wire::Message(message) => infallible(replica.handle_message(from, message, self.now, store)),
            }
            self.drain_actions(to);
        }
    }

    /// Gossip: an accepted envelope goes on to every other neighbour.
    fn forward_if_accepted(&mut self, node: u32, from: u32, bytes: Vec<u8>) {
        let id = *blake3::hash(&bytes).as_bytes();
        if self.take_verdict(node, id) == Some(Verdict::Accept) {
            for peer in self.neighbours[node as usize].clone() {
                if peer != from {
                    self.send(node, peer, Wire::Gossip(bytes.clone()));
                }
            }
        }
    }

    fn take_verdict(&mut self, node: u32, envelope_id: [u8; 32]) -> Option<Verdict> {
        let mut verdict = None;
        let mut others = Vec::new();
        while let Some(action) = self.nodes[node as usize].replica.poll_action() {
            match action {
                Action::Validated { envelope_id: id, verdict: v, .. } if id == envelope_id => verdict = Some(v),
                other => others.push(other),
            }
        }
        self.perform(node, others);
        verdict
    }

    fn drain_actions(&mut self, node: u32) {
        let mut actions = Vec::new();
        while let Some(action) = self.nodes[node as usize].replica.poll_action() {
            actions.push(action);
        }
        self.perform(node, actions);
    }

    fn perform(&mut self, node: u32, actions: Vec<Action<u32>>) {
        for action in actions {
            match action {
                Action::Gossip(bytes) => {
                    self.nodes[node as usize].seen.insert(*blake3::hash(&bytes).as_bytes());
                    for peer in self.neighbours[node as usize].clone() {
                        self.send(node, peer, Wire::Gossip(bytes.clone()));
                    }
                }
                Action::Send(peer, message) => self.send(node, peer, Wire::Message(message)),
                Action::Validated { .. } => {}
            }
        }
    }

    pub fn stores(&self) -> impl Iterator<Item = &MemoryStore> {
        self.nodes.iter().map(|n| &n.store)
    }

    pub fn replicas(&self) -> impl Iterator<Item = &Replica<u32>> {
        self.nodes.iter().map(|n| &n.replica)
    }
}

/// Invariant checkers, one per property a run must end with.
pub mod invariants {
    use super::*;

    /// Every node holds exactly the same records.
    pub fn records_converge(sim: &Simulation) -> Result<(), String> {
        let sets: Vec<Vec<(u64, RecordId)>> = sim.stores().map(|s| infallible(s.items())).collect();
        match sets.iter().position(|set| set != &sets[0]) {
            None => Ok(()),
            Some(node) => {
                Err(format!("node {node} holds {} records, node 0 holds {}", sets[node].len(), sets[0].len()))
            }
        }
    }

    /// Every node's catalog (as production builds it from its records) is the same.
    pub fn catalogs_converge(sim: &Simulation) -> Result<(), String> {
        let digests: Vec<[u8; 32]> = sim.stores().map(catalog_digest).collect();
        match digests.iter().position(|d| d != &digests[0]) {
            None => Ok(()),
            Some(node) => Err(format!("node {node}'s catalog digest differs from node 0's")),
        }
    }

    /// The equivocating origin is frozen everywhere, and holds nothing.
    pub fn equivocation_freezes_everywhere(sim: &Simulation) -> Result<(), String> {
        for (node, store) in sim.stores().enumerate() {
            if !store.is_frozen(sim.liar) {
                return Err(format!("node {node} did not freeze the equivocating origin"));
            }
            if store.records().any(|r| r.origin == sim.liar) {
                return Err(format!("node {node} still holds records of the frozen origin"));
            }
        }
        Ok(())
    }

    /// No node stored a forged record, and the node it was sent to refused it.
    pub fn forged_records_rejected(sim: &Simulation) -> Result<(), String> {
        if sim.forged.is_empty() {
            return Err("no forged record was injected".into());
        }
        for (node, store) in sim.stores().enumerate() {
            if store.records().any(|r| sim.forged.contains(&r.id())) {
                return Err(format!("node {node} stored a forged record"));
            }
        }
        let refused: u64 =
            sim.replicas().map(|r| r.counters().rejected.get("bad_signature").copied().unwrap_or(0)).sum();
        if refused == 0 {
            return Err("nobody counted the forged record as a bad signature".into());
        }
        Ok(())
    }

    /// The digest of the catalog production searches, built from the
    /// node's records and frozen origins.
    fn catalog_digest(store: &MemoryStore) -> [u8; 32] {
        let mut catalog = caravan_catalog::Catalog::default();
        for record in store.records() {
            catalog.put((**record).clone());
        }
        for origin in store.frozen() {
            catalog.freeze(*origin);
        }
        catalog.digest()
    }
}

/// The value of a memory store's result, which cannot be an error.
pub fn infallible<T>(result: Result<T, std::convert::Infallible>) -> T {
    match result {
        Ok(value) => value,
    }
}
