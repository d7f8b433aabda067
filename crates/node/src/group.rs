//! This node's part in its owner's replica group: opens the Raft log
//! (`raft.db`) and the ledger state machine (`ledger.snapshot`), starts
//! Raft, takes commands (stamped with this node's clock when it leads),
//! and runs the ledger's timers — expiring holds, publishing points — as
//! commands proposed by the leader, so they are in the log like the rest.
//!
//! A node is a group of one until it is told otherwise; the group's
//! members, leader and indexes are in [`GroupStatus`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use caravan_api::dto::{GroupMemberView, GroupView};
use caravan_group::openraft::error::{ClientWriteError, RaftError};
use caravan_group::openraft::{CommittedLeaderId, ServerState};
use caravan_group::{
    AppliedCommand, Effects, GroupLog, LedgerMachine, LogId, Member, MemberId, Outcome, Proposal, Raft, Rpc, RpcReply,
    SnapshotStore, Timers, Transport, TransportFactory,
};
use caravan_ledger::{Command, Ledger};
use caravan_model::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};

use crate::writer::Job;
use crate::NodeError;

pub const LOG_FILE: &str = "raft.db";
pub const SNAPSHOT_FILE: &str = "ledger.snapshot";
/// How long a command waits for the group before the client hears
/// "unavailable" (and may retry with the same idempotency key).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a failed persist is tried again before the member stops.
const PERSIST_TRIES: u32 = 3;
/// The longest the timer task sleeps without looking at the ledger.
const TIMER_IDLE_MS: i64 = 1_000;

/// The writer makes applied commands durable: their records signed and
/// stored, the catalog and the search index told.
#[derive(Debug, Clone)]
pub struct WriterEffects {
    pub queue: mpsc::Sender<Job>,
    /// Where the timers the group agreed on are kept for the next start.
    pub log_path: std::path::PathBuf,
}

/// The key under which a member keeps the group's agreed timers.
const AGREED_TIMERS: &str = "group_timers";

impl Effects for WriterEffects {
    async fn persist(&self, applied: Vec<AppliedCommand>) -> Result<(), String> {
        let mut last_error = String::new();
        for attempt in 0..PERSIST_TRIES {
            let (done, outcome) = oneshot::channel();
            let job = Job::Apply { applied: applied.clone(), done };
            self.queue.send(job).await.map_err(|_| "the writer has stopped".to_string())?;
            match outcome.await.map_err(|_| "the writer has stopped".to_string())? {
                Ok(()) => return self.keep_agreed_timers(&applied).await,
                Err(error) => {
                    tracing::error!(%error, attempt, "applied commands not stored; trying again");
                    last_error = error;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        // Fail-stop: Raft stops this member, a restart re-applies the log.
        Err(last_error)
    }
}

impl WriterEffects {
    /// Keeps the last timers the group agreed on beside the log, so this
    /// member starts with them next time (openraft's are fixed per start).
    async fn keep_agreed_timers(&self, applied: &[AppliedCommand]) -> Result<(), String> {
        let agreed = applied.iter().rev().find_map(|c| match (&c.command, &c.applied.reply) {
            (Command::SetGroupTimers(timers), Ok(_)) => Some(*timers),
            _ => None,
        });
        let Some(timers) = agreed else { return Ok(()) };
        let path = self.log_path.clone();
        let keep = move || caravan_group::write_local(&path, AGREED_TIMERS, &timers);
        tokio::task::spawn_blocking(keep).await.map_err(|e| e.to_string())?
    }
}

/// Carries group messages to other members. Members on other machines
/// arrive with `caravan group join`, which needs the libp2p transport.
#[derive(Debug, Clone, Default)]
pub struct NoTransport;

impl Transport for NoTransport {
    async fn call(&self, _to: MemberId, member: &Member, _rpc: Rpc) -> Result<RpcReply, String> {
        Err(format!("no transport to group member {member} yet"))
    }
}

pub struct OwnerGroup {
    raft: Raft,
    ledger: Arc<RwLock<Ledger>>,
    applied_index: Arc<AtomicU64>,
    log: GroupLog,
    member_id: MemberId,
    timers: Timers,
    clock: fn() -> Timestamp,
    stop_timers: watch::Sender<bool>,
}

impl std::fmt::Debug for OwnerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerGroup").field("member_id", &self.member_id).finish_non_exhaustive()
    }
}

/// A ledger rebuilt from a data directory older than replica groups, and
/// the index of its last command.
pub type LegacyLedger = Option<(Ledger, u64)>;

impl OwnerGroup {
    /// Opens this node's member of its group, a group of one on first
    /// start (or adopting a pre-group ledger log as its first snapshot).
    pub async fn open(
        data_dir: &Path,
        member: Member,
        timers: Timers,
        clock: fn() -> Timestamp,
        effects: WriterEffects,
        legacy: impl FnOnce() -> Result<LegacyLedger, NodeError>,
    ) -> Result<OwnerGroup, NodeError> {
        let setup = NodeError::Setup;
        let log_path = data_dir.join(LOG_FILE);
        let log = GroupLog::open(&log_path).map_err(setup)?;
        let member_id = match caravan_group::read_local::<MemberId>(&log_path, "member_id").map_err(setup)? {
            Some(id) => id,
            None => {
                // Random, never reused: a replaced machine gets a new one.
                let id = rand::random::<u64>() >> 1 | 1;
                caravan_group::write_local(&log_path, "member_id", &id).map_err(setup)?;
                id
            }
        };
        // Timers the group agreed on through its log win over the file's.
        let agreed =
            caravan_group::read_local::<caravan_ledger::GroupTimers>(&log_path, AGREED_TIMERS).map_err(setup)?;
        let timers = match agreed {
            Some(agreed) => {
                Timers { heartbeat_ms: agreed.heartbeat_ms, election_timeout_ms: agreed.election_timeout_ms }
            }
            None => timers,
        };
        let snapshots = SnapshotStore::File(data_dir.join(SNAPSHOT_FILE));
        let mut machine = LedgerMachine::open(snapshots, Arc::new(effects)).map_err(setup)?;
        let fresh = log.last_log_id().is_none() && machine.applied_index().load(Ordering::Acquire) == 0;
        let mut adopted = false;
        if fresh {
            if let Some((ledger, last_index)) = legacy()? {
                let applied = LogId::new(CommittedLeaderId::new(0, member_id), last_index);
                machine.adopt(ledger, applied, (member_id, member.clone())).map_err(setup)?;
                tracing::info!(last_index, "ledger log from before replica groups adopted as the first snapshot");
                adopted = true;
            }
        }
        let (ledger, applied_index) = (machine.ledger(), machine.applied_index());
        let config = caravan_group::raft_config(timers).map_err(setup)?;
        let raft = Raft::new(member_id, Arc::new(config), TransportFactory(NoTransport), log.clone(), machine)
            .await
            .map_err(|e| setup(format!("starting the replica group: {e}")))?;
        if fresh && !adopted {
            let members = std::collections::BTreeMap::from([(member_id, member)]);
            raft.initialize(members).await.map_err(|e| setup(format!("initializing the replica group: {e}")))?;
        }
        let group = OwnerGroup {
            raft,
            ledger,
            applied_index,
            log,
            member_id,
            timers,
            clock,
            stop_timers: watch::channel(false).0,
        };
        if group.is_sole_voter() {
            // Alone, it need not wait an election timeout to lead.
            let _ = group.raft.trigger().elect().await;
            let wait = group.raft.wait(Some(Duration::from_secs(10)));
            wait.current_leader(member_id, "leading a group of one").await.map_err(|e| setup(e.to_string()))?;
        }
        Ok(group)
    }

    pub fn ledger(&self) -> Arc<RwLock<Ledger>> {
        self.ledger.clone()
    }

    fn is_sole_voter(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: Vec<MemberId> = metrics.membership_config.membership().voter_ids().collect();
        voters == [self.member_id]
    }

    /// Runs `command` through the group; the ledger's answer once it is
    /// committed and applied, or why the group could not take it.
    pub async fn propose(&self, command: Command) -> Result<Outcome, String> {
        let proposal = Proposal { now: (self.clock)(), command };
        let write = tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.client_write(proposal));
        match write.await {
            Err(_elapsed) => {
                Err("the replica group did not commit in time; retry with the same idempotency key".into())
            }
            Ok(Ok(written)) => Ok(written.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(format!("this member does not lead its group (leader: {:?})", forward.leader_id))
            }
            Ok(Err(error)) => Err(format!("the replica group failed: {error}")),
        }
    }

    /// The log store's recent commit time, p99.
    pub fn append_p99_ms(&self) -> Option<f64> {
        self.log.append_p99_ms()
    }

    /// Resolves when Raft has stopped on a fatal error (a failed persist).
    pub async fn stopped(&self) {
        let mut metrics = self.raft.metrics();
        let _ = metrics.wait_for(|m| m.state == ServerState::Shutdown || m.running_state.is_err()).await;
    }

    /// The group as this member sees it (the agreed timers left for the
    /// caller, who reads the ledger).
    pub fn status(&self) -> GroupView {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<MemberId> = membership.voter_ids().collect();
        let replication = metrics.replication.clone().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, member)| GroupMemberView {
                id: *id,
                peer_id: member.peer_id.clone(),
                voter: voters.contains(id),
                matched_index: replication.get(id).copied().flatten().map(|log_id| log_id.index),
            })
            .collect();
        GroupView {
            member_id: self.member_id,
            role: match metrics.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .into(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            members,
            last_log_index: metrics.last_log_index,
            applied_index: self.applied_index.load(Ordering::Acquire),
            snapshot_index: metrics.snapshot.map(|log_id| log_id.index),
            heartbeat_ms: self.timers.heartbeat_ms,
            election_timeout_ms: self.timers.election_timeout_ms,
            agreed_heartbeat_ms: None,
            agreed_election_timeout_ms: None,
            append_p99_ms: self.log.append_p99_ms(),
        }
    }

    fn leads(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.member_id)
    }

    /// Proposes `ExpireHolds` when a hold's time is up and `Publish` every
    /// `publish_interval_ms` while something is unpublished, on the leader
    /// only, until [`OwnerGroup::shutdown`].
    pub fn run_timers(self: &Arc<Self>, publish_interval_ms: i64) -> tokio::task::JoinHandle<()> {
        let group = self.clone();
        let mut stop = self.stop_timers.subscribe();
        tokio::spawn(async move {
            let mut last_publish = Timestamp(0);
            loop {
                let now = (group.clock)();
                let (expiry_due, publish_due, wait_ms) = {
                    let ledger = group.ledger.read().expect("ledger lock");
                    let expiry = ledger.next_expiry();
                    let publish_at = ledger.has_unpublished().then(|| last_publish.ms() + publish_interval_ms);
                    let mut wait = TIMER_IDLE_MS;
                    if let Some(at) = expiry {
                        wait = wait.min(at.ms() - now.ms());
                    }
                    if let Some(at) = publish_at {
                        wait = wait.min(at - now.ms());
                    }
                    (expiry.is_some_and(|at| at <= now), publish_at.is_some_and(|at| at <= now.ms()), wait)
                };
                if !group.leads() {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(group.timers.heartbeat_ms)) => continue,
                        _ = stop.changed() => return,
                    }
                }
                if expiry_due || publish_due {
                    let command = if publish_due { Command::Publish } else { Command::ExpireHolds };
                    match group.propose(command).await {
                        // A point is bounded: one that left changes behind
                        // is followed by the next at once.
                        Ok(_) if publish_due && group.ledger.read().expect("ledger lock").has_unpublished() => {}
                        Ok(_) if publish_due => last_publish = now,
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "ledger timer not proposed");
                            tokio::time::sleep(Duration::from_millis(group.timers.heartbeat_ms)).await;
                        }
                    }
                    continue;
                }
                let sleep = tokio::time::sleep(Duration::from_millis(wait_ms.clamp(1, TIMER_IDLE_MS) as u64));
                tokio::select! {
                    () = sleep => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }

    /// Stops the timers and Raft; what is committed stays in the log.
    pub async fn shutdown(&self) {
        self.stop_timers.send_replace(true);
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "the replica group did not stop cleanly");
        }
    }
}
