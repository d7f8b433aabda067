//! This node's part in its owner's replica group: opens the Raft log
//! (`raft.db`) and the ledger state machine (`ledger.snapshot`), starts
//! Raft, takes commands (stamped with this member's clock when it leads),
//! and runs the ledger's timers (what `ledger::next_duty` says is due) as
//! commands proposed by the leader, so they are in the log like the rest.
//!
//! A member is a group of one until it is told otherwise; the group's
//! members, leader and indexes are in its status. Any member takes
//! commands: a follower forwards them to the leader through its
//! [`Transport`] and answers once it has applied them itself, so a client
//! reads its own writes from the member it asked. Booking commands that
//! arrive together share a log entry ([`Command::Batch`]): a batcher task
//! gathers what queued while the previous entries were being written, so
//! under load one fsync carries many commands, and alone a command waits
//! for nothing. What applied commands produce is made durable by the
//! node's [`Effects`]; the member knows neither the network nor the node's
//! database.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use caravan_accounts::directory::Directory;
use caravan_ledger::{next_duty, Command, Duty, DutyConfig, Ledger, Reply, BATCH_COMMANDS_MAX};
use caravan_model::Timestamp;
use futures_util::stream::{FuturesUnordered, StreamExt};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{CommittedLeaderId, ServerState};
use tokio::sync::{mpsc, oneshot, watch};

use crate::core::Core;
use crate::{
    CallError, ChangeError, Effects, GroupLog, LedgerMachine, LogId, Member, MemberId, MembershipChange, Outcome,
    Proposal, Raft, Rpc, RpcReply, SnapshotStore, Timers, Transport,
};

pub const LOG_FILE: &str = "raft.db";
pub const SNAPSHOT_FILE: &str = "ledger.snapshot";
/// How long a command waits for the group before the client hears
/// "unavailable" (and may retry with the same idempotency key).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a follower waits to apply what it forwarded before answering.
const APPLY_WAIT: Duration = Duration::from_secs(2);
/// How long shutting down waits to publish what is pending.
const FINAL_PUBLISH_WAIT: Duration = Duration::from_secs(2);
/// The longest the timer task sleeps without looking at the ledger.
const TIMER_IDLE_MS: i64 = 1_000;
/// Batches being written at once. While they are, the next commands queue
/// and go together: with one in flight the log would wait idle between an
/// fsync and the next batch; with many, batches would stay small.
const BATCHES_IN_FLIGHT: usize = 2;
/// Commands waiting for the batcher before `propose` waits its turn.
const BATCH_QUEUE_MAX: usize = 8 * BATCH_COMMANDS_MAX;

/// The key under which a member keeps the group's agreed timers.
pub const AGREED_TIMERS: &str = "group_timers";

/// Why a member could not be opened or readied: the directory, the log or
/// Raft refused; the message says which.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Why the replica group did not take a command. Each is "unavailable"
/// to the client, who retries with the same idempotency key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// openraft refused the write (the member is stopping or has failed).
    #[error("the replica group failed: {0}")]
    Group(String),
    /// The leader did not answer a forwarded command: it may have taken it.
    #[error("the group's leader did not answer ({0}); retry with the same idempotency key")]
    LeaderSilent(String),
    /// The leader answered a forwarded command with something else.
    #[error("the group's leader answered {0}")]
    LeaderConfused(String),
    #[error("the command is too large to forward")]
    TooLarge,
    #[error("the replica group did not commit in time; retry with the same idempotency key")]
    Timeout,
}

/// Peers this member drops Raft messages to and from: a fault injected
/// by tests, empty in service. The transport reads it too.
pub type CutOff = Arc<std::sync::RwLock<std::collections::HashSet<String>>>;

/// One member as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStatus {
    pub id: MemberId,
    pub peer_id: String,
    pub voter: bool,
    /// How far its log matches the leader's (on the leader only).
    pub matched_index: Option<u64>,
    pub addrs: Vec<String>,
}

/// The group as this member sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatus {
    pub member_id: MemberId,
    pub peer_id: String,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<MemberId>,
    pub members: Vec<MemberStatus>,
    pub last_log_index: Option<u64>,
    pub applied_index: u64,
    pub snapshot_index: Option<u64>,
    pub timers: Timers,
    pub append_p99_ms: Option<f64>,
}

/// Local keys beside the log: the peers a joining member accepts Raft
/// messages from until it has a membership of its own.
const JOINING: &str = "joining";

pub struct OwnerGroup<T: Transport, E: Effects> {
    core: Core<T, E>,
    ledger: Arc<RwLock<Ledger>>,
    people: Arc<RwLock<Directory>>,
    applied_index: Arc<AtomicU64>,
    log: GroupLog,
    member_id: MemberId,
    peer_id: String,
    writer: Writer<T, E>,
    /// Commands for the batcher (see [`OwnerGroup::run`]).
    batches: mpsc::Sender<Queued>,
    /// Peers cut off by the fault hook, shared with the transport.
    cut_off: CutOff,
    /// Peers a joining member takes Raft messages from before it has a
    /// membership (the group's members when it asked to join).
    joining: Vec<String>,
    clock: fn() -> Timestamp,
    /// Commands for the batcher, until [`OwnerGroup::run`] takes them.
    queue: std::sync::Mutex<Option<mpsc::Receiver<Queued>>>,
    effects: Arc<E>,
    /// Set when the member shuts down: its tasks end.
    stopping: watch::Sender<bool>,
}

impl<T: Transport, E: Effects> std::fmt::Debug for OwnerGroup<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerGroup").field("member_id", &self.member_id).finish_non_exhaustive()
    }
}

/// A ledger rebuilt from a data directory older than replica groups, and
/// the index of its last command.
pub type LegacyLedger = Option<(Ledger, u64)>;

/// Readies a data directory to join a group instead of starting one: it
/// takes Raft messages only from `peers` (the group's members) until the
/// group has added it. Returns the member id to ask the group to add.
pub fn prepare_join(data_dir: &Path, peers: &[String]) -> Result<MemberId, SetupError> {
    let setup = |why: String| SetupError(why);
    let log_path = data_dir.join(LOG_FILE);
    let log = GroupLog::open(&log_path).map_err(setup)?;
    if log.last_log_id().is_some() || data_dir.join(SNAPSHOT_FILE).exists() {
        return Err(setup(format!(
            "{} already belongs to a replica group; run it with `caravan node run`",
            data_dir.display()
        )));
    }
    drop(log);
    crate::write_local(&log_path, JOINING, &peers.to_vec()).map_err(setup)?;
    member_id(&log_path)
}

/// The member id of the node at `data_dir`, drawn now if it has none.
pub fn member_id_of(data_dir: &Path) -> Result<MemberId, SetupError> {
    member_id(&data_dir.join(LOG_FILE))
}

/// This member's id, drawn on first use and kept beside the log.
fn member_id(log_path: &Path) -> Result<MemberId, SetupError> {
    let setup = |why: String| SetupError(why);
    if let Some(id) = crate::read_local::<MemberId>(log_path, "member_id").map_err(setup)? {
        return Ok(id);
    }
    // Random, never reused: a replaced machine gets a new one.
    let id = rand::random::<u64>() >> 1 | 1;
    crate::write_local(log_path, "member_id", &id).map_err(setup)?;
    Ok(id)
}

/// What a member is opened with, beside its data directory.
#[derive(Debug)]
pub struct MemberSetup<T, E> {
    /// This machine: its peer id (addresses come when it listens).
    pub member: Member,
    /// Used unless the group agreed on others through its log.
    pub timers: Timers,
    /// Where the member reads the time it stamps into proposals.
    pub clock: fn() -> Timestamp,
    pub effects: E,
    pub transport: T,
    /// Peers cut off by the fault hook; the transport holds the same set.
    pub cut_off: CutOff,
}

impl<T: Transport + Clone, E: Effects> OwnerGroup<T, E> {
    /// Opens this node's member of its group, a group of one on first
    /// start (or adopting a pre-group ledger log as its first snapshot).
    pub async fn open(
        data_dir: &Path,
        setup_with: MemberSetup<T, E>,
        legacy: impl FnOnce() -> Result<LegacyLedger, SetupError>,
    ) -> Result<OwnerGroup<T, E>, SetupError> {
        let MemberSetup { member, timers, clock, effects, transport, cut_off } = setup_with;
        let setup = |why: String| SetupError(why);
        let log_path = data_dir.join(LOG_FILE);
        let log = GroupLog::open(&log_path).map_err(setup)?;
        let member_id = member_id(&log_path)?;
        // Timers the group agreed on through its log win over the file's.
        let agreed = crate::read_local::<caravan_ledger::GroupTimers>(&log_path, AGREED_TIMERS).map_err(setup)?;
        let timers = agreed.map_or(timers, Timers::from);
        let snapshots = SnapshotStore::File(data_dir.join(SNAPSHOT_FILE));
        let joining = crate::read_local::<Vec<String>>(&log_path, JOINING).map_err(setup)?;
        let effects = Arc::new(effects);
        let mut machine = LedgerMachine::open(snapshots, effects.clone()).map_err(setup)?;
        let fresh = log.last_log_id().is_none() && machine.applied_index().load(Ordering::Acquire) == 0;
        let mut adopted = false;
        // A joining member waits for the leader to send it the group.
        if fresh && joining.is_none() {
            if let Some((ledger, last_index)) = legacy()? {
                let applied = LogId::new(CommittedLeaderId::new(0, member_id), last_index);
                machine.adopt(ledger, applied, (member_id, member.clone())).map_err(setup)?;
                tracing::info!(last_index, "ledger log from before replica groups adopted as the first snapshot");
                adopted = true;
            }
        }
        let (ledger, people, applied_index) = (machine.ledger(), machine.people(), machine.applied_index());
        let core = Core::start(member_id, timers, transport.clone(), log.clone(), machine).await.map_err(setup)?;
        let raft = core.raft();
        let membership = raft.metrics().borrow().membership_config.membership().clone();
        if membership.nodes().next().is_some() && membership.get_node(&member_id).is_none() {
            return Err(setup(format!(
                "member {member_id} was removed from its replica group; start from a fresh data directory \
                 (member ids are never reused) and join again"
            )));
        }
        if fresh && !adopted && joining.is_none() {
            let members = std::collections::BTreeMap::from([(member_id, member.clone())]);
            raft.initialize(members).await.map_err(|e| setup(format!("initializing the replica group: {e}")))?;
            // Metrics follow the core: wait until they show the new group,
            // so what reads them (membership changes, status) sees it.
            let wait = raft.wait(Some(PROPOSE_TIMEOUT));
            let shown = |m: &crate::openraft::RaftMetrics<MemberId, Member>| {
                m.membership_config.membership().get_node(&member_id).is_some()
            };
            wait.metrics(shown, "the new group's membership")
                .await
                .map_err(|e| setup(format!("starting the replica group: {e}")))?;
        }
        let writer = Writer { core: core.clone(), transport, clock };
        let (batches, queue) = mpsc::channel(BATCH_QUEUE_MAX);
        let group = OwnerGroup {
            core,
            ledger,
            people,
            applied_index,
            log,
            member_id,
            peer_id: member.peer_id.clone(),
            writer,
            batches,
            cut_off,
            joining: joining.unwrap_or_default(),
            clock,
            queue: std::sync::Mutex::new(Some(queue)),
            effects,
            stopping: watch::channel(false).0,
        };
        if group.is_sole_voter() {
            // Alone, it need not wait an election timeout to lead.
            let _ = raft.trigger().elect().await;
            let wait = raft.wait(Some(Duration::from_secs(10)));
            wait.current_leader(member_id, "leading a group of one").await.map_err(|e| setup(e.to_string()))?;
        }
        Ok(group)
    }

    pub fn ledger(&self) -> Arc<RwLock<Ledger>> {
        self.ledger.clone()
    }

    /// The group's accounts, tokens and managers as applied here.
    pub fn people(&self) -> Arc<RwLock<Directory>> {
        self.people.clone()
    }

    /// Whether this member is its group's only voter (it commits alone).
    pub fn is_sole_voter(&self) -> bool {
        let metrics = self.core.raft().metrics().borrow().clone();
        let voters: Vec<MemberId> = metrics.membership_config.membership().voter_ids().collect();
        voters == [self.member_id]
    }

    /// Runs `command` through the group; the ledger's answer once it is
    /// committed and applied here, or why the group could not take it.
    /// Booking commands go through the batcher and may share an entry.
    pub async fn propose(&self, command: Command) -> Result<Outcome, ProposeError> {
        if !command.batchable() {
            return self.writer.write(command).await;
        }
        let (answer, answered) = oneshot::channel();
        let stopped = || ProposeError::Group("the member is stopping".into());
        self.batches.send(Queued { command, answer }).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Adds, removes or re-addresses a member, through the leader.
    pub async fn change_members(&self, change: MembershipChange) -> Result<(), ChangeError> {
        let ask_here = |raft: Raft| {
            let change = change.clone();
            async move { crate::change_members(&raft, change).await }
        };
        match self.core.on_core(ask_here).await {
            Err(ChangeError::NotLeader(Some(leader), Some(member))) if leader != self.member_id => {
                let not_led = |why: String| ChangeError::Failed(format!("the group's leader did not answer: {why}"));
                match self.writer.transport.call(leader, &member, Rpc::ChangeMembers(change)).await {
                    Ok(RpcReply::Changed) => Ok(()),
                    Ok(RpcReply::Refused(why)) => Err(ChangeError::Refused(why)),
                    Ok(RpcReply::NotLeader(leader)) => Err(ChangeError::NotLeader(leader, None)),
                    Ok(RpcReply::Failed(why)) => Err(not_led(why)),
                    Ok(other) => Err(not_led(format!("{other:?}"))),
                    Err(error) => Err(not_led(error.to_string())),
                }
            }
            outcome => outcome,
        }
    }

    /// Records where this member listens in the group's membership, so the
    /// others can dial it after a restart.
    pub async fn announce(&self, addrs: Vec<String>) -> Result<(), ChangeError> {
        let member =
            self.core.raft().metrics().borrow().membership_config.membership().get_node(&self.member_id).cloned();
        let Some(mut member) = member else { return Ok(()) }; // Not in yet (joining).
        if member.addrs == addrs {
            return Ok(());
        }
        member.addrs = addrs;
        self.change_members(MembershipChange::SetAddrs(self.member_id, member)).await
    }

    /// The members as the group knows them: peer ids and addresses.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.core.raft().metrics().borrow().clone();
        metrics.membership_config.membership().nodes().map(|(_, member)| member.clone()).collect()
    }

    /// Answers a Raft message from `peer`: only members (and, while this
    /// member joins, the group it asked to join) may send them.
    pub async fn serve(&self, peer: &str, request: &[u8]) -> RpcReply {
        let allowed = {
            let metrics = self.core.raft().metrics();
            let metrics = metrics.borrow();
            let mut members = metrics.membership_config.membership().nodes().peekable();
            match members.peek() {
                None => self.joining.iter().any(|p| p == peer),
                Some(_) => members.any(|(_, m)| m.peer_id == peer),
            }
        };
        if !allowed {
            return RpcReply::Failed(format!("peer {peer} is not a member of this replica group"));
        }
        if self.cut_off.read().expect("cut-off lock").contains(peer) {
            return RpcReply::Failed("cut off (fault hook)".into());
        }
        match Rpc::decode(request) {
            Ok(rpc) => self.core.on_core(|raft| async move { crate::serve(&raft, rpc).await }).await,
            Err(why) => RpcReply::Failed(why),
        }
    }

    /// Drops Raft messages to and from `peers` from now on (none heals).
    pub fn cut_off(&self, peers: std::collections::HashSet<String>) {
        *self.cut_off.write().expect("cut-off lock") = peers;
    }

    /// The log store's recent commit time, p99.
    pub fn append_p99_ms(&self) -> Option<f64> {
        self.log.append_p99_ms()
    }

    /// The log store's commits so far: the fsyncs commands cost.
    pub fn log_commits(&self) -> u64 {
        self.log.commits()
    }

    /// Resolves when Raft has stopped on a fatal error (a failed persist).
    pub async fn stopped(&self) {
        self.core.stopped().await
    }

    /// The group as this member sees it.
    pub fn status(&self) -> GroupStatus {
        let metrics = self.core.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<MemberId> = membership.voter_ids().collect();
        let replication = metrics.replication.clone().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, member)| MemberStatus {
                id: *id,
                peer_id: member.peer_id.clone(),
                voter: voters.contains(id),
                matched_index: replication.get(id).copied().flatten().map(|log_id| log_id.index),
                addrs: member.addrs.clone(),
            })
            .collect();
        GroupStatus {
            member_id: self.member_id,
            peer_id: self.peer_id.clone(),
            role: match metrics.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            },
            term: metrics.current_term,
            leader: metrics.current_leader,
            members,
            last_log_index: metrics.last_log_index,
            applied_index: self.applied_index.load(Ordering::Acquire),
            snapshot_index: metrics.snapshot.map(|log_id| log_id.index),
            timers: self.core.timers(),
            append_p99_ms: self.log.append_p99_ms(),
        }
    }

    /// Whether this member is its group's leader now.
    pub fn leads(&self) -> bool {
        self.core.raft().metrics().borrow().current_leader == Some(self.member_id)
    }

    /// The member's work beside Raft, until [`OwnerGroup::shutdown`]: the
    /// batcher, the ledger's timers (`ExpireHolds` when a hold's time is
    /// up, `Publish` every `publish_interval_ms` while something is
    /// unpublished, on the leader only), and the watch that stops Raft
    /// when the effects fail after the fact. Commands that may share an
    /// entry wait until it runs. The caller runs the returned future as a
    /// task of its own, once.
    pub fn run(self: &Arc<Self>, publish_interval_ms: i64) -> impl std::future::Future<Output = ()> + Send + 'static {
        let timers = self.run_timers(publish_interval_ms);
        let queue = self.queue.lock().expect("queue lock").take();
        let (writer, stopping) = (self.writer.clone(), self.stopping.subscribe());
        let fail_stop = stop_on_failure(self.core.clone(), self.effects.clone(), self.stopping.subscribe());
        let follow_timers = self.follow_timers();
        async move {
            let batches = async move {
                match queue {
                    Some(queue) => gather_batches(writer, queue, stopping).await,
                    None => tracing::error!("the member's tasks run already"),
                }
            };
            tokio::join!(timers, batches, fail_stop, follow_timers);
        }
    }

    /// Starts a new Raft core on the timers the group agrees on through
    /// its log, soon after this member applies them: openraft's timers are
    /// fixed per core.
    fn follow_timers(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let group = self.clone();
        let mut stop = self.stopping.subscribe();
        async move {
            loop {
                let running = group.core.timers();
                let agreed = group.ledger.read().expect("ledger lock").group_timers().map(Timers::from);
                if let Some(agreed) = agreed.filter(|agreed| *agreed != running) {
                    tokio::select! {
                        retimed = group.core.retime(agreed) => if let Err(error) = retimed {
                            tracing::warn!(%error, "the group's new timers not taken");
                        },
                        _ = stop.changed() => return,
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(running.heartbeat_ms)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    fn run_timers(
        self: &Arc<Self>,
        publish_interval_ms: i64,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let group = self.clone();
        let mut stop = self.stopping.subscribe();
        async move {
            let mut last_publish = Timestamp(0);
            let config = DutyConfig { publish_interval_ms, idle_ms: TIMER_IDLE_MS };
            loop {
                let now = (group.clock)();
                let duty = next_duty(&group.ledger.read().expect("ledger lock"), last_publish, config, now);
                if !group.leads() {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(group.core.timers().heartbeat_ms)) => continue,
                        _ = stop.changed() => return,
                    }
                }
                let wait_ms = match duty {
                    Duty::Sleep { ms } => ms,
                    Duty::Publish | Duty::ExpireHolds => {
                        let publishing = duty == Duty::Publish;
                        let command = duty.command().expect("a command is due");
                        match group.propose(command).await {
                            // A point is bounded: one that left changes
                            // behind is followed by the next at once.
                            Ok(_) if publishing && !group.ledger.read().expect("ledger lock").has_unpublished() => {
                                last_publish = now
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "ledger timer not proposed");
                                tokio::time::sleep(Duration::from_millis(group.core.timers().heartbeat_ms)).await;
                            }
                        }
                        continue;
                    }
                };
                let sleep = tokio::time::sleep(Duration::from_millis(wait_ms as u64));
                tokio::select! {
                    () = sleep => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// Stops the timers, signs what is pending (on the leader), then stops
    /// Raft; what is committed stays in the log.
    pub async fn shutdown(&self) {
        self.stopping.send_replace(true);
        // Signed now, not at the next start: a restarted node serves its
        // records at once. Bounded, as a group without quorum cannot.
        let publish_pending = async {
            while self.leads() && self.ledger.read().expect("ledger lock").has_unpublished() {
                if let Err(error) = self.propose(Command::Publish).await {
                    tracing::warn!(%error, "pending changes not published at shutdown");
                    return;
                }
            }
        };
        if tokio::time::timeout(FINAL_PUBLISH_WAIT, publish_pending).await.is_err() {
            tracing::warn!("pending changes not published at shutdown: the group did not commit in time");
        }
        self.core.shutdown().await;
    }
}

/// A command waiting for the batcher, and who waits for its answer.
struct Queued {
    command: Command,
    answer: oneshot::Sender<Result<Outcome, ProposeError>>,
}

/// Writes commands into the group's log: on the leader, or forwarded to it.
struct Writer<T, E> {
    core: Core<T, E>,
    transport: T,
    clock: fn() -> Timestamp,
}

impl<T: Clone, E> Clone for Writer<T, E> {
    fn clone(&self) -> Self {
        Writer { core: self.core.clone(), transport: self.transport.clone(), clock: self.clock }
    }
}

impl<T: Transport + Clone, E: Effects> Writer<T, E> {
    /// Writes `command` as one entry, stamped with this member's clock.
    ///
    /// On a follower the command goes to the leader. It is sent again only
    /// when the leader surely did not take it (no leader yet, or "not the
    /// leader"): a lost answer is reported, and the client retries with its
    /// idempotency key, so nothing runs twice.
    async fn write(&self, command: Command) -> Result<Outcome, ProposeError> {
        let proposal = Proposal { now: (self.clock)(), command };
        let attempt = async {
            loop {
                let here = proposal.clone();
                let written = self.core.on_core(|raft| async move { raft.client_write(here).await });
                let forward = match written.await {
                    Ok(written) => return Ok(written.data),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => forward,
                    Err(error) => return Err(ProposeError::Group(error.to_string())),
                };
                if let (Some(leader), Some(member)) = (forward.leader_id, forward.leader_node) {
                    match self.transport.call(leader, &member, Rpc::Propose(proposal.clone())).await {
                        Ok(RpcReply::Proposed(index, outcome)) => {
                            self.wait_applied(index).await;
                            return Ok(outcome);
                        }
                        Ok(RpcReply::NotLeader(_)) => {}
                        Ok(RpcReply::Failed(why)) | Err(CallError::Unreachable(why)) => {
                            return Err(ProposeError::LeaderSilent(why));
                        }
                        Ok(other) => return Err(ProposeError::LeaderConfused(format!("{other:?}"))),
                        Err(CallError::TooLarge) => return Err(ProposeError::TooLarge),
                    }
                }
                // An election is on: wait a beat for its outcome.
                tokio::time::sleep(Duration::from_millis(self.core.timers().heartbeat_ms)).await;
            }
        };
        match tokio::time::timeout(PROPOSE_TIMEOUT, attempt).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(ProposeError::Timeout),
        }
    }

    /// Writes commands as one entry (a lone command as itself, which any
    /// leader understands) and hands each its own answer.
    async fn write_batch(&self, mut batch: Vec<Queued>) {
        if batch.len() == 1 {
            let Queued { command, answer } = batch.pop().expect("one command");
            let _ = answer.send(self.write(command).await);
            return;
        }
        let (commands, answers): (Vec<Command>, Vec<_>) = batch.into_iter().map(|q| (q.command, q.answer)).unzip();
        let count = commands.len();
        let outcomes: Vec<Result<Outcome, ProposeError>> = match self.write(Command::Batch(commands)).await {
            Ok(Ok(Reply::Batch(outcomes))) if outcomes.len() == count => outcomes.into_iter().map(Ok).collect(),
            // Refused whole (an older ledger, say): each hears why.
            Ok(Err(rejection)) => vec![Ok(Err(rejection)); count],
            Ok(other) => vec![Err(ProposeError::LeaderConfused(format!("{other:?} for a batch of {count}"))); count],
            Err(error) => vec![Err(error); count],
        };
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            let _ = answer.send(outcome);
        }
    }

    /// Waits (briefly) until this member has applied `index`, so what a
    /// client wrote through it can be read from it.
    async fn wait_applied(&self, index: u64) {
        let wait = self.core.raft().wait(Some(APPLY_WAIT));
        if let Err(error) = wait.applied_index_at_least(Some(index), "forwarded command applied here").await {
            tracing::debug!(%error, index, "a forwarded command is not applied here yet");
        }
    }
}

/// The batcher: while fewer than [`BATCHES_IN_FLIGHT`] batches are being
/// written, takes what queued meanwhile, up to a batch's worth, and
/// writes it as one entry; ends when the member stops (what waits in the
/// queue then hears that it stops).
async fn gather_batches<T: Transport + Clone, E: Effects>(
    writer: Writer<T, E>,
    mut queue: mpsc::Receiver<Queued>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut writing = FuturesUnordered::new();
    loop {
        tokio::select! {
            queued = queue.recv(), if writing.len() < BATCHES_IN_FLIGHT => {
                let Some(first) = queued else { break };
                let mut batch = vec![first];
                while batch.len() < BATCH_COMMANDS_MAX {
                    match queue.try_recv() {
                        Ok(queued) => batch.push(queued),
                        Err(_) => break,
                    }
                }
                writing.push(writer.write_batch(batch));
            }
            Some(()) = writing.next(), if !writing.is_empty() => {}
            _ = stopping.changed() => break,
        }
    }
    while writing.next().await.is_some() {}
}

/// Stops Raft if the effects fail after the fact (fail-stop: a restart
/// re-applies the log); ends when the member stops.
async fn stop_on_failure<T: Transport + Clone, E: Effects>(
    core: Core<T, E>,
    effects: Arc<E>,
    mut stopping: watch::Receiver<bool>,
) {
    tokio::select! {
        error = effects.failure() => {
            tracing::error!(%error, "what applied commands produced was not stored; stopping this member");
            core.shutdown().await;
        }
        _ = stopping.changed() => {}
    }
}
