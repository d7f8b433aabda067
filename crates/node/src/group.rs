//! The node's side of its replica group: the member itself (Raft, the
//! ledger machine, proposing, forwarding, membership, timers) lives in
//! `caravan_group::OwnerGroup`; here are what it is generic over — the
//! effects that store what applied commands produce (the writer) and the
//! transport that carries Raft messages (libp2p, `/caravan/raft/1`, and
//! forwarded writes on `/caravan/raft-forward/1`) — and
//! the group's status as the API shows it.

use std::sync::Arc;
use std::time::Duration;

use caravan_api::dto::{GroupMemberView, GroupView};
use caravan_group::{
    AppliedCommand, CallError, CutOff, Effects, EffectsError, GroupStatus, Member, MemberId, Rpc, RpcReply, Transport,
    AGREED_TIMERS,
};
use caravan_ledger::Command;
use caravan_net::{Call, CallFailed, Protocol};
use tokio::sync::{mpsc, oneshot};

use caravan_writer::Job;

pub use caravan_group::{member_id_of, prepare_join, LOG_FILE};

/// This node's member of its owner's replica group.
pub type OwnerGroup = caravan_group::OwnerGroup<NetTransport, WriterEffects>;

/// How often a failed persist is tried again before the member stops.
const PERSIST_TRIES: u32 = 3;

/// The writer stores what applied commands produced: their records signed
/// and stored, the catalog and the search index told.
#[derive(Debug, Clone)]
pub struct WriterEffects {
    pub queue: mpsc::Sender<Job>,
    /// Where the timers the group agreed on are kept for the next start.
    pub log_path: std::path::PathBuf,
    /// The record store the writer commits to without fsync, made durable
    /// before each snapshot.
    pub records: caravan_store::Records,
}

impl Effects for WriterEffects {
    async fn persist(&self, applied: Vec<AppliedCommand>) -> Result<(), EffectsError> {
        let mut last_error = None;
        for attempt in 0..PERSIST_TRIES {
            let (done, outcome) = oneshot::channel();
            let job = Job::Apply { applied: applied.clone(), done };
            self.queue.send(job).await.map_err(|_| "the writer has stopped")?;
            match outcome.await.map_err(|_| "the writer has stopped")? {
                Ok(()) => return self.keep_agreed_timers(&applied).await,
                Err(error) => {
                    tracing::error!(%error, attempt, "applied commands not stored; trying again");
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        // Fail-stop: Raft stops this member, a restart re-applies the log.
        Err(last_error.map_or_else(|| "no attempt to store".into(), EffectsError::from))
    }

    async fn settle(&self) -> Result<(), EffectsError> {
        let records = self.records.clone();
        Ok(tokio::task::spawn_blocking(move || records.persist()).await??)
    }
}

impl WriterEffects {
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
