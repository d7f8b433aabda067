//! The node's side of its replica group: the member itself (Raft, the
//! ledger machine, proposing, forwarding, membership, timers) lives in
//! `caravan_group::OwnerGroup`; here are what it is generic over — the
//! effects that store what applied commands produce (the writer) and the
//! transport that carries Raft messages (libp2p, `/caravan/raft/1`, and
//! forwarded writes on `/caravan/raft-forward/1`) — and
//! the group's status as the API shows it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use caravan_api::dto::{GroupMemberView, GroupView};
use caravan_group::{
    AppliedCommand, CallError, CutOff, Effects, EffectsError, GroupStatus, Member, MemberId, Rpc, RpcReply, Transport,
    AGREED_TIMERS,
};
use caravan_ledger::Command;
use caravan_net::{Call, CallFailed, Protocol};
use tokio::sync::{mpsc, oneshot, watch};

use caravan_writer::Job;

pub use caravan_group::{member_id_of, prepare_join, LOG_FILE};

/// This node's member of its owner's replica group.
pub type OwnerGroup = caravan_group::OwnerGroup<NetTransport, WriterEffects>;

/// The writer stores what applied commands produced: their records signed
/// and stored, the catalog and the search index told. That is derived from
/// the log, so it is done after the answer, never before: applying hands
/// it to the writer and goes on, and a failed store stops the member
/// (a restart re-applies the log). Commands that publish nothing (holds,
/// bookings: nearly all of them) never reach the writer.
#[derive(Debug, Clone)]
pub struct WriterEffects {
    queue: mpsc::Sender<Job>,
    /// Counts the commands applied.
    stats: Arc<caravan_writer::WriterStats>,
    /// Where the timers the group agreed on are kept for the next start.
    log_path: std::path::PathBuf,
    /// The record store the writer commits to without fsync, made durable
    /// before each snapshot.
    records: caravan_store::Records,
    /// How the stores handed to the writer went.
    stores: Arc<watch::Sender<Stores>>,
}

/// The stores handed to the writer: how many, how many are done, and the
/// first failure.
#[derive(Debug, Default)]
struct Stores {
    sent: u64,
    done: u64,
    failed: Option<String>,
}

impl Effects for WriterEffects {
    async fn persist(&self, applied: Vec<AppliedCommand>) -> Result<(), EffectsError> {
        let commands: usize = applied.iter().map(|c| c.command.count()).sum();
        self.stats.commands.fetch_add(commands as u64, Ordering::Relaxed);
        if let Some(why) = &self.stores.borrow().failed {
            return Err(why.clone().into());
        }
        self.keep_agreed_timers(&applied).await?;
        if applied.iter().all(|c| c.applied.publications.is_empty()) {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        self.queue.send(Job::Apply { applied, done }).await.map_err(|_| "the writer has stopped")?;
        self.stores.send_modify(|stores| stores.sent += 1);
        let stores = self.stores.clone();
        tokio::spawn(async move {
            let failed = match outcome.await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some("the writer has stopped".to_string()),
            };
            stores.send_modify(|stores| {
                stores.done += 1;
                stores.failed = stores.failed.take().or(failed);
            });
        });
        Ok(())
    }

    async fn settle(&self) -> Result<(), EffectsError> {
        // The writer takes its jobs in order: once as many are done as
        // were sent by now, all of these are.
        let sent = self.stores.borrow().sent;
        let mut stores = self.stores.subscribe();
        let failed = {
            let settled = stores.wait_for(|s| s.failed.is_some() || s.done >= sent).await.expect("the sender is ours");
            settled.failed.clone()
        };
        if let Some(why) = failed {
            return Err(why.into());
        }
        let records = self.records.clone();
        Ok(tokio::task::spawn_blocking(move || records.persist()).await??)
    }

    async fn failure(&self) -> EffectsError {
        let mut stores = self.stores.subscribe();
        let failed = stores.wait_for(|s| s.failed.is_some()).await.expect("the sender is ours");
        failed.failed.clone().unwrap_or_default().into()
    }
}

impl WriterEffects {
    pub fn new(
        queue: mpsc::Sender<Job>,
        stats: Arc<caravan_writer::WriterStats>,
        log_path: std::path::PathBuf,
        records: caravan_store::Records,
    ) -> WriterEffects {
        WriterEffects { queue, stats, log_path, records, stores: Arc::new(watch::channel(Stores::default()).0) }
    }

    /// Keeps the last timers the group agreed on beside the log, so this
    /// member starts with them next time (openraft's are fixed per start).
    async fn keep_agreed_timers(&self, applied: &[AppliedCommand]) -> Result<(), EffectsError> {
        let agreed = applied.iter().rev().find_map(|c| match (&c.command, &c.applied.reply) {
            (Command::SetGroupTimers(timers), Ok(_)) => Some(*timers),
            _ => None,
        });
        let Some(timers) = agreed else { return Ok(()) };
        let path = self.log_path.clone();
        let keep = move || caravan_group::write_local(&path, AGREED_TIMERS, &timers);
        Ok(tokio::task::spawn_blocking(keep).await??)
    }
}

/// Where the network task takes calls to peers, once it runs.
pub use caravan_services::booking::CallSlot;

/// Carries group messages to other members over libp2p.
#[derive(Debug, Clone)]
pub struct NetTransport {
    calls: CallSlot,
    cut_off: CutOff,
    /// Forwarded writes in flight; more wait here for their turn.
    forwards: Arc<tokio::sync::Semaphore>,
}

impl NetTransport {
    pub fn new(calls: CallSlot, cut_off: CutOff) -> NetTransport {
        let forwards = Arc::new(tokio::sync::Semaphore::new(caravan_net::FORWARDS_IN_FLIGHT_MAX));
        NetTransport { calls, cut_off, forwards }
    }
}

/// A call the network task has not answered in this long is lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(11);

impl Transport for NetTransport {
    async fn call(&self, _to: MemberId, member: &Member, rpc: Rpc) -> Result<RpcReply, CallError> {
        if self.cut_off.read().expect("cut-off lock").contains(&member.peer_id) {
            return Err(CallError::Unreachable("cut off (fault hook)".into()));
        }
        let request = rpc.encode();
        if request.len() > caravan_net::RAFT_FRAME_BYTES_MAX {
            return Err(CallError::TooLarge);
        }
        let answer = match rpc {
            // Clients' writes travel apart from the group's own traffic, a
            // bounded number at once: a burst queues here rather than
            // taking the streams heartbeats need.
            Rpc::Propose(_) | Rpc::ChangeMembers(_) => {
                let _turn = self.forwards.acquire().await.map_err(|_| CallError::Unreachable("stopping".into()))?;
                match self.send(Protocol::Forward, member, request).await? {
                    // A leader of an older version: the request never left,
                    // so it goes the old way.
                    Err(CallFailed::Unsupported) => self.send(Protocol::Raft, member, rpc.encode()).await?,
                    answer => answer,
                }
            }
            Rpc::Append(_) | Rpc::Vote(_) | Rpc::Snapshot(_) => self.send(Protocol::Raft, member, request).await?,
        };
        match answer {
            Ok(bytes) => RpcReply::decode(&bytes).map_err(CallError::Unreachable),
            Err(why) => Err(CallError::Unreachable(why.to_string())),
        }
    }
}

impl NetTransport {
    /// Hands `request` to the network task; the peer's answer, or why the
    /// network has none.
    async fn send(
        &self,
        protocol: Protocol,
        member: &Member,
        request: Vec<u8>,
    ) -> Result<Result<Vec<u8>, CallFailed>, CallError> {
        let unreachable = |why: &str| CallError::Unreachable(why.to_owned());
        let calls = self.calls.lock().expect("calls lock").clone().ok_or_else(|| unreachable("not on the network"))?;
        let (reply, answer) = oneshot::channel();
        let call = Call { protocol, peer: member.peer_id.clone(), addrs: member.addrs.clone(), request, reply };
        calls.send(call).await.map_err(|_| unreachable("the network is stopping"))?;
        match tokio::time::timeout(CALL_TIMEOUT, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(unreachable("the network is stopping")),
            Err(_) => Err(unreachable("no answer in time")),
        }
    }
}

/// The group's status as the API shows it; the agreed timers are the
/// caller's to add, from the ledger.
pub fn view(status: GroupStatus) -> GroupView {
    GroupView {
        member_id: status.member_id,
        peer_id: status.peer_id,
        addrs: Vec::new(),
        role: status.role.into(),
        term: status.term,
        leader: status.leader,
        members: status
            .members
            .into_iter()
            .map(|m| GroupMemberView {
                id: m.id,
                peer_id: m.peer_id,
                voter: m.voter,
                matched_index: m.matched_index,
                addrs: m.addrs,
            })
            .collect(),
        last_log_index: status.last_log_index,
        applied_index: status.applied_index,
        snapshot_index: status.snapshot_index,
        heartbeat_ms: status.timers.heartbeat_ms,
        election_timeout_ms: status.timers.election_timeout_ms,
        agreed_heartbeat_ms: None,
        agreed_election_timeout_ms: None,
        append_p99_ms: status.append_p99_ms,
    }
}
