//! A deterministic simulation of a replica group of three (four while a
//! machine is replaced): real openraft, the
//! real state machine and log store (in memory, kept across crashes as a
//! disk would be), and a network that loses, repeats, delays and cuts
//! messages, all on tokio's paused clock and seeded randomness. Clients
//! send single commands and batches of them (one entry, as a member's
//! batcher writes them); the group adds a spare machine and removes a
//! member (so, in turn, replaces machines) while all this goes on.
//!
//! After every step it checks, on every running member: no day is oversold;
//! every acknowledged hold and booking is there once the member has applied
//! its index; equal applied index ⇒ equal ledger. At the end, once healed:
//! every member stands at the same index with the same ledger, every
//! acknowledgement survived, the members applied the same command with the
//! same reply at every index, and replaying those commands in order gives
//! every reply again — the ones the clients were told included.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use caravan_group::openraft::ServerState;
use caravan_group::{
    change_members, raft_config, seed_thread_rng, serve, AppliedCommand, CallError, ChangeError, Effects, GroupLog,
    LedgerMachine, Member, MemberId, MembershipChange, MemoryDisk, Outcome, Proposal, Raft, Rpc, RpcReply,
    SnapshotSlot, SnapshotStore, Timers, Transport, TransportFactory,
};
use caravan_ledger::{Command, HoldId, HoldRequest, HoldState, IdempotencyKey, Ledger, Reply};
use caravan_model::{AriPatch, Date, ListingId, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MEMBERS: [MemberId; 3] = [1, 2, 3];
/// Machines the group may add (each once: member ids are never reused).
const SPARES: [MemberId; 3] = [4, 5, 6];
const STEPS: usize = 300;
/// 2030-01-01T00:00Z: the simulated wall clock starts here.
const T0: Timestamp = Timestamp(1_893_456_000_000);
const UNITS: u32 = 3;
const DAYS: i32 = 5;

fn day(offset: i32) -> Date {
    T0.date().add_days(offset)
}

fn room() -> ListingId {
    ListingId::parse("room").unwrap()
}

#[derive(Default, Debug)]
struct Faults {
    /// Chance that a request, or its reply, is lost.
    loss: f64,
    /// Chance that a request is delivered twice.
    duplication: f64,
    down: BTreeSet<MemberId>,
    /// Links cut (both directions are listed).
    cut: BTreeSet<(MemberId, MemberId)>,
}

struct Running {
    raft: Raft,
    ledger: Arc<RwLock<Ledger>>,
    applied: Arc<std::sync::atomic::AtomicU64>,
}

struct World {
    rng: StdRng,
    faults: Faults,
    running: BTreeMap<MemberId, Running>,
    /// The group's members (voters and learners) as last seen committed.
    members: BTreeSet<MemberId>,
    /// Spares added once, and members removed: never started again.
    used: BTreeSet<MemberId>,
    /// Whether a membership change is in flight.
    changing: bool,
    /// Membership changes the group made.
    changes: usize,
}

type Shared = Arc<Mutex<World>>;

#[derive(Clone)]
struct SimTransport {
    from: MemberId,
    world: Shared,
}

impl SimTransport {
    fn reachable(&self, to: MemberId) -> Option<Raft> {
        let world = self.world.lock().unwrap();
        let faults = &world.faults;
        if faults.down.contains(&self.from) || faults.cut.contains(&(self.from, to)) {
            return None;
        }
        world.running.get(&to).map(|member| member.raft.clone())
    }
}

impl Transport for SimTransport {
    async fn call(&self, to: MemberId, _member: &Member, rpc: Rpc) -> Result<RpcReply, CallError> {
        let lost = |why: &str| Err(CallError::Unreachable(why.into()));
        let (delay_ms, lose_request, lose_reply, duplicate) = {
            let mut world = self.world.lock().unwrap();
            let (loss, duplication) = (world.faults.loss, world.faults.duplication);
            let rng = &mut world.rng;
            (rng.gen_range(1..=15), rng.gen_bool(loss), rng.gen_bool(loss), rng.gen_bool(duplication))
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let Some(target) = self.reachable(to).filter(|_| !lose_request) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return lost("lost");
        };
        // Every message crosses the wire format, as on the network.
        let rpc = Rpc::decode(&rpc.encode()).map_err(CallError::Unreachable)?;
        if duplicate {
            let (again, raft) = (rpc.clone(), target.clone());
            tokio::spawn(async move { serve(&raft, again).await });
        }
        let reply = serve(&target, rpc).await;
        if lose_reply || self.reachable(to).is_none() {
            return lost("reply lost");
        }
        RpcReply::decode(&reply.encode()).map_err(CallError::Unreachable)
    }
}

/// What every member applied, by index; members must agree.
#[derive(Clone, Default)]
struct Applied(Arc<Mutex<AppliedLog>>);

type AppliedLog = BTreeMap<u64, (Command, Timestamp, Outcome)>;

impl Effects for Applied {
    async fn persist(&self, applied: Vec<AppliedCommand>) -> Result<(), caravan_group::EffectsError> {
        let mut log = self.0.lock().unwrap();
        for AppliedCommand { index, now, command, applied } in applied {
            let entry = (command, now, applied.reply);
            let first = log.entry(index).or_insert_with(|| entry.clone());
            assert_eq!(first, &entry, "two members applied different things at index {index}");
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Ack {
    index: u64,
    key: String,
    command: Command,
    outcome: Outcome,
}

struct Sim {
    world: Shared,
    disks: BTreeMap<MemberId, (MemoryDisk, SnapshotSlot)>,
    applied: Applied,
    acks: Arc<Mutex<Vec<Ack>>>,
    config: Arc<caravan_group::openraft::Config>,
    started: tokio::time::Instant,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut config = raft_config(Timers { heartbeat_ms: 50, election_timeout_ms: 500 }).unwrap();
        // Snapshots every few dozen entries, so lagging members catch up
        // from snapshots as well as from the log.
        config.snapshot_policy = caravan_group::openraft::SnapshotPolicy::LogsSinceLast(40);
        config.max_in_snapshot_log_to_keep = 5;
        config.max_payload_entries = 16;
        let world = World {
            rng: StdRng::seed_from_u64(seed),
            faults: Faults::default(),
            running: BTreeMap::new(),
            members: MEMBERS.into_iter().collect(),
            used: BTreeSet::new(),
            changing: false,
            changes: 0,
        };
        Sim {
            world: Arc::new(Mutex::new(world)),
            disks: MEMBERS.iter().chain(&SPARES).map(|id| (*id, Default::default())).collect(),
            applied: Applied::default(),
            acks: Arc::default(),
            config: Arc::new(config.validate().unwrap()),
            started: tokio::time::Instant::now(),
        }
    }

    async fn start(&self, id: MemberId) {
        let (disk, snapshot) = &self.disks[&id];
        let log = GroupLog::memory(disk.clone());
        let snapshots = SnapshotStore::Memory(snapshot.clone());
        let machine = LedgerMachine::open(snapshots, Arc::new(self.applied.clone())).unwrap();
        let (ledger, applied) = (machine.ledger(), machine.applied_index());
        let network = TransportFactory(SimTransport { from: id, world: self.world.clone() });
        let raft = Raft::new(id, self.config.clone(), network, log, machine).await.unwrap();
        let mut world = self.world.lock().unwrap();
        world.faults.down.remove(&id);
        world.running.insert(id, Running { raft, ledger, applied });
    }

    async fn crash(&self, id: MemberId) {
        let running = {
            let mut world = self.world.lock().unwrap();
            world.faults.down.insert(id);
            world.running.remove(&id)
        };
        if let Some(running) = running {
            running.raft.shutdown().await.unwrap();
        }
    }

    fn now(&self) -> Timestamp {
        T0.saturating_add_ms(self.started.elapsed().as_millis() as i64)
    }

    fn rng<R>(&self, draw: impl FnOnce(&mut StdRng) -> R) -> R {
        draw(&mut self.world.lock().unwrap().rng)
    }

    /// Sends a command to `via`, following it to the leader; the index and
    /// outcome if it was acknowledged in time.
    fn propose(&self, via: MemberId, key: String, command: Command) {
        let (world, acks, now) = (self.world.clone(), self.acks.clone(), self.now());
        tokio::spawn(async move {
            let mut target = via;
            for _ in 0..3 {
                let Some(raft) = world.lock().unwrap().running.get(&target).map(|m| m.raft.clone()) else { return };
                let proposal = Proposal { now, command: command.clone() };
                let reply = tokio::time::timeout(Duration::from_secs(2), serve(&raft, Rpc::Propose(proposal))).await;
                match reply {
                    Ok(RpcReply::Proposed(index, outcome)) => {
                        acks.lock().unwrap().push(Ack { index, key, command, outcome });
                        return;
                    }
                    Ok(RpcReply::NotLeader(Some(leader))) => target = leader,
                    _ => return,
                }
            }
        });
    }

    fn acked_holds(&self) -> Vec<HoldId> {
        let acks = self.acks.lock().unwrap();
        acks.iter().flat_map(|ack| holds_in(&ack.outcome)).map(|hold| hold.id).collect()
    }

    /// One random client command, fault or membership change.
    async fn step(&self, n: usize) {
        let roll = self.rng(|rng| rng.gen_range(0..100));
        let members: Vec<MemberId> = self.world.lock().unwrap().members.iter().copied().collect();
        let any_member = self.rng(|rng| members[rng.gen_range(0..members.len())]);
        let (down, live): (Vec<MemberId>, Vec<MemberId>) = {
            let world = self.world.lock().unwrap();
            members.iter().partition(|id| world.faults.down.contains(id))
        };
        match roll {
            0..=44 if !live.is_empty() => {
                let via = live[self.rng(|rng| rng.gen_range(0..live.len()))];
                let (key, command) = self.random_command(n, format!("k{n}"));
                self.propose(via, key, command);
            }
            // Several commands in one entry, as a member's batcher writes them.
            45..=54 if !live.is_empty() => {
                let via = live[self.rng(|rng| rng.gen_range(0..live.len()))];
                let size = self.rng(|rng| rng.gen_range(2..=4));
                let commands = (0..size)
                    .map(|i| self.random_command(n, format!("k{n}.{i}")).1)
                    .filter(Command::batchable)
                    .collect();
                self.propose(via, format!("batch-{n}"), Command::Batch(commands));
            }
            55..=59 if down.is_empty() => self.crash(any_member).await,
            60..=69 if !down.is_empty() => self.start(down[0]).await,
            70..=74 => {
                let mut world = self.world.lock().unwrap();
                world.faults.cut = members
                    .iter()
                    .filter(|other| **other != any_member)
                    .flat_map(|other| [(any_member, *other), (*other, any_member)])
                    .collect();
            }
            75..=81 => self.world.lock().unwrap().faults.cut.clear(),
            82..=86 => {
                let mut world = self.world.lock().unwrap();
                world.faults.loss = world.rng.gen_range(0.0..0.3);
                world.faults.duplication = world.rng.gen_range(0.0..0.3);
            }
            87..=89 => self.change_members(any_member).await,
            _ => {}
        }
        let pause = self.rng(|rng| rng.gen_range(5..250));
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }

    /// Adds a spare to a group of three, or removes `member` from a group
    /// of four (a group that replaces a machine does both, in turn), on
    /// whichever member leads; what was committed is read back after.
    async fn change_members(&self, member: MemberId) {
        let (spare, size) = {
            let mut world = self.world.lock().unwrap();
            if world.changing {
                return;
            }
            world.changing = true;
            let spare = SPARES.into_iter().find(|id| !world.used.contains(id));
            (spare, world.members.len())
        };
        let change = match (size, spare) {
            (3, Some(spare)) => {
                self.world.lock().unwrap().used.insert(spare);
                self.start(spare).await;
                MembershipChange::Add(spare, Member { peer_id: format!("member-{spare}"), addrs: vec![] })
            }
            (4.., _) => MembershipChange::Remove(member),
            _ => {
                self.world.lock().unwrap().changing = false;
                return;
            }
        };
        let world = self.world.clone();
        tokio::spawn(async move {
            let leader = {
                let world = world.lock().unwrap();
                world
                    .running
                    .values()
                    .find(|m| m.raft.metrics().borrow().state == ServerState::Leader)
                    .map(|m| m.raft.clone())
            };
            let changed = match leader {
                Some(raft) => {
                    tokio::time::timeout(Duration::from_secs(10), change_members(&raft, change.clone())).await
                }
                None => Ok(Err(ChangeError::NotLeader(None, None))),
            };
            let done = matches!(changed, Ok(Ok(())));
            let removed = match &change {
                MembershipChange::Remove(id) if done => Some(*id),
                _ => None,
            };
            let mut world = world.lock().unwrap();
            world.changes += usize::from(done);
            if let Some(id) = removed {
                // A removed machine is gone for good.
                world.used.insert(id);
                world.faults.down.insert(id);
                if let Some(running) = world.running.remove(&id) {
                    let raft = running.raft;
                    tokio::spawn(async move { raft.shutdown().await });
                }
            }
            world.members = committed_members(&world);
            world.changing = false;
        });
    }

    fn random_command(&self, n: usize, key: String) -> (String, Command) {
        let holds = self.acked_holds();
        let retry = self.rng(|rng| rng.gen_bool(0.1));
        if retry {
            let acks = self.acks.lock().unwrap();
            if let Some(ack) = acks.get(n % acks.len().max(1)) {
                return (ack.key.clone(), ack.command.clone());
            }
        }
        let idempotency_key = Some(IdempotencyKey::parse(&key).unwrap());
        let kind = self.rng(|rng| rng.gen_range(0..10));
        let command = match kind {
            0..=2 if !holds.is_empty() => {
                let hold = holds[self.rng(|rng| rng.gen_range(0..holds.len()))];
                Command::Confirm { idempotency_key, hold }
            }
            3 if !holds.is_empty() => {
                let hold = holds[self.rng(|rng| rng.gen_range(0..holds.len()))];
                Command::Cancel { idempotency_key, hold }
            }
            _ => {
                let check_in = self.rng(|rng| rng.gen_range(0..DAYS - 1));
                let nights = self.rng(|rng| rng.gen_range(1..=2));
                let request = HoldRequest::Stay {
                    listing: room(),
                    check_in: day(check_in),
                    check_out: day((check_in + nights).min(DAYS)),
                    units: self.rng(|rng| rng.gen_range(1..=2)),
                    guests: 1,
                };
                // The shortest hold, so some expire during the run.
                Command::Hold { idempotency_key, request, ttl_ms: 10_000, expected_total_minor: None }
            }
        };
        (key, command)
    }

    /// The invariants every running member must keep at every step.
    fn check(&self) {
        let world = self.world.lock().unwrap();
        let acks = self.acks.lock().unwrap();
        let mut by_index: BTreeMap<u64, (MemberId, blake3::Hash)> = BTreeMap::new();
        for (id, member) in &world.running {
            let ledger = member.ledger.read().unwrap();
            let applied = member.applied.load(Ordering::Acquire);
            ledger.check_invariants();
            let hash = blake3::hash(&postcard::to_stdvec(&*ledger).unwrap());
            if let Some((other, other_hash)) = by_index.insert(applied, (*id, hash)) {
                assert_eq!(hash, other_hash, "members {id} and {other} differ at applied index {applied}");
            }
            for ack in acks.iter().filter(|ack| ack.index <= applied) {
                assert_survives(&ledger, ack, *id);
            }
        }
    }

    /// Heals everything, lets a membership change end, stops machines the
    /// group no longer has, restarts every member and waits until all
    /// stand at the same index.
    async fn settle(&self) {
        {
            let mut world = self.world.lock().unwrap();
            world.faults = Faults { down: world.faults.down.clone(), ..Faults::default() };
        }
        for _ in 0..200 {
            if !self.world.lock().unwrap().changing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Members that are down come back first, so a leader can be elected.
        let down: Vec<MemberId> = {
            let world = self.world.lock().unwrap();
            world.members.iter().filter(|id| !world.running.contains_key(id)).copied().collect()
        };
        for id in down {
            self.start(id).await;
        }
        for _ in 0..200 {
            let led = {
                let world = self.world.lock().unwrap();
                world.running.values().any(|m| m.raft.metrics().borrow().state == ServerState::Leader)
            };
            if led {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (strays, down): (Vec<MemberId>, Vec<MemberId>) = {
            let mut world = self.world.lock().unwrap();
            world.members = committed_members(&world);
            let strays = world.running.keys().filter(|id| !world.members.contains(id)).copied().collect();
            let down = world.members.iter().filter(|id| !world.running.contains_key(id)).copied().collect();
            (strays, down)
        };
        for id in strays {
            self.crash(id).await;
        }
        for id in down {
            self.start(id).await;
        }
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let indexes: BTreeSet<u64> = {
                let world = self.world.lock().unwrap();
                world.running.values().map(|m| m.applied.load(Ordering::Acquire)).collect()
            };
            let last_ack = self.acks.lock().unwrap().iter().map(|a| a.index).max().unwrap_or(0);
            if indexes.len() == 1 && indexes.first().copied().unwrap_or(0) >= last_ack {
                return;
            }
        }
        let world = self.world.lock().unwrap();
        let states: Vec<String> = world
            .running
            .iter()
            .map(|(id, m)| {
                let metrics = m.raft.metrics().borrow().clone();
                format!(
                    "{id}: {:?} applied {} leader {:?} membership {:?}",
                    metrics.state,
                    m.applied.load(Ordering::Acquire),
                    metrics.current_leader,
                    metrics.membership_config.membership()
                )
            })
            .collect();
        panic!("the group did not settle in 60 s once healed: {states:#?}, members {:?}", world.members);
    }

    /// Replays what was applied, in index order, on a fresh ledger.
    fn check_replay(&self) {
        let applied = self.applied.0.lock().unwrap();
        let mut ledger = Ledger::new();
        for (index, (command, now, outcome)) in applied.iter() {
            let replayed = ledger.apply(command, *now);
            assert_eq!(&replayed.reply, outcome, "replaying index {index} gave another reply");
        }
        for ack in self.acks.lock().unwrap().iter() {
            let (command, _, outcome) = &applied[&ack.index];
            assert_eq!(
                (command, outcome),
                (&ack.command, &ack.outcome),
                "ack at {} is not what was applied",
                ack.index
            );
        }
        let world = self.world.lock().unwrap();
        for (id, member) in &world.running {
            assert_eq!(*member.ledger.read().unwrap(), ledger, "member {id} differs from the replay");
        }
    }
}

/// The members (voters and learners) of the group as its newest leader
/// sees it: a machine that took an uncommitted entry adding it, truncated
/// since, only believes it belongs. The last known set without a leader.
fn committed_members(world: &World) -> BTreeSet<MemberId> {
    let leader = world
        .running
        .values()
        .map(|m| m.raft.metrics().borrow().clone())
        .filter(|metrics| metrics.state == ServerState::Leader)
        .max_by_key(|metrics| metrics.current_term);
    match leader {
        Some(metrics) => metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect(),
        None => world.members.clone(),
    }
}

/// An acknowledged hold (or booking) is in `ledger` as it was acknowledged.
fn assert_survives(ledger: &Ledger, ack: &Ack, member: MemberId) {
    for acked in holds_in(&ack.outcome) {
        assert_hold_survives(ledger, acked, member);
    }
}

/// The holds an outcome acknowledged, alone or in a batch.
fn holds_in(outcome: &Outcome) -> Vec<&caravan_ledger::Hold> {
    match outcome {
        Ok(Reply::Hold(hold)) => vec![hold],
        Ok(Reply::Batch(outcomes)) => outcomes.iter().flat_map(holds_in).collect(),
        _ => Vec::new(),
    }
}

fn assert_hold_survives(ledger: &Ledger, acked: &caravan_ledger::Hold, member: MemberId) {
    let hold = ledger.hold(acked.id).unwrap_or_else(|| panic!("member {member} lost acked hold {:?}", acked.id));
    assert_eq!(hold.request, acked.request, "member {member}: hold {:?} changed", acked.id);
    if matches!(acked.state, HoldState::Confirmed { .. }) {
        assert!(
            matches!(hold.state, HoldState::Confirmed { .. } | HoldState::BookingCancelled { .. }),
            "member {member}: acked booking {:?} is {:?}",
            acked.id,
            hold.state
        );
    }
}

/// Runs one seeded simulation: the final ledger's hash, the acknowledgements and the membership
/// changes made, to compare runs.
fn simulate(seed: u64) -> (blake3::Hash, Vec<(u64, String)>, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    seed_thread_rng(seed);
    runtime.block_on(async {
        let sim = Sim::new(seed);
        for id in MEMBERS {
            sim.start(id).await;
        }
        let first = sim.world.lock().unwrap().running[&1].raft.clone();
        let members = MEMBERS.iter().map(|id| (*id, Member { peer_id: format!("member-{id}"), addrs: vec![] }));
        first.initialize(members.collect::<BTreeMap<_, _>>()).await.unwrap();
        first.wait(Some(Duration::from_secs(10))).current_leader(1, "first leader").await.unwrap();
        let setup = [
            Command::CreateListing(caravan_test_utils::stay("room", "Vienna", UNITS)),
            Command::SetAri {
                listing: room(),
                from: day(0),
                to: day(DAYS),
                patch: AriPatch { available: Some(UNITS), price_minor: Some(10_000), ..AriPatch::default() },
            },
        ];
        for command in setup {
            first.client_write(Proposal { now: sim.now(), command }).await.unwrap().data.unwrap();
        }
        for n in 0..STEPS {
            sim.step(n).await;
            sim.check();
        }
        sim.settle().await;
        sim.check();
        sim.check_replay();
        let hash = {
            let world = sim.world.lock().unwrap();
            let ledger = world.running.values().next().expect("a member runs").ledger.read().unwrap();
            blake3::hash(&postcard::to_stdvec(&*ledger).unwrap())
        };
        let acks = sim.acks.lock().unwrap().iter().map(|a| (a.index, a.key.clone())).collect();
        let running: Vec<MemberId> = sim.world.lock().unwrap().running.keys().copied().collect();
        for id in running {
            sim.crash(id).await;
        }
        let changes = sim.world.lock().unwrap().changes;
        (hash, acks, changes)
    })
}

#[test]
fn three_members_keep_every_invariant_under_loss_duplication_partitions_crashes_and_membership_changes() {
    let mut membership_changes = 0;
    for seed in 1..=16 {
        let (_, acks, changes) = simulate(seed);
        assert!(acks.len() > 30, "seed {seed}: only {} commands acknowledged; the faults drown the test", acks.len());
        membership_changes += changes;
    }
    assert!(membership_changes >= 8, "only {membership_changes} membership changes in 16 runs");
}

#[test]
fn a_seed_replays_the_same_run() {
    assert_eq!(simulate(42), simulate(42));
}
