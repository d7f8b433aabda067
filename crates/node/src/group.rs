//! The node's side of its replica group: the member itself (Raft, the
//! ledger machine, proposing, forwarding, membership, timers) lives in
//! `caravan_group::OwnerGroup`; here are what it is generic over — the
//! effects that make applied commands durable (the writer) and the
//! transport that carries Raft messages (libp2p, `/caravan/raft/1`) — and
//! the group's status as the API shows it.

use std::time::Duration;

use caravan_api::dto::{GroupMemberView, GroupView};
use caravan_group::{
    AppliedCommand, CallError, CutOff, Effects, EffectsError, GroupStatus, Member, MemberId, Rpc, RpcReply, Transport,
    AGREED_TIMERS,
};
use caravan_ledger::Command;
use caravan_net::{Call, Protocol};
use tokio::sync::{mpsc, oneshot};

use caravan_writer::Job;

pub use caravan_group::{member_id_of, prepare_join, LOG_FILE};

/// This node's member of its owner's replica group.
pub type OwnerGroup = caravan_group::OwnerGroup<NetTransport, WriterEffects>;

/// How often a failed persist is tried again before the member stops.
const PERSIST_TRIES: u32 = 3;

/// The writer makes applied commands durable: their records signed and
/// stored, the catalog and the search index told.
#[derive(Debug, Clone)]
pub struct WriterEffects {
    pub queue: mpsc::Sender<Job>,
    /// Where the timers the group agreed on are kept for the next start.
    pub log_path: std::path::PathBuf,
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
#[derive(Debug, Clone, Default)]
pub struct NetTransport {
    pub calls: CallSlot,
    pub cut_off: CutOff,
}

/// A call the network task has not answered in this long is lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(11);

impl Transport for NetTransport {
    async fn call(&self, _to: MemberId, member: &Member, rpc: Rpc) -> Result<RpcReply, CallError> {
        let unreachable = |why: &str| CallError::Unreachable(why.to_owned());
        if self.cut_off.read().expect("cut-off lock").contains(&member.peer_id) {
            return Err(unreachable("cut off (fault hook)"));
        }
        let calls = self.calls.lock().expect("calls lock").clone().ok_or_else(|| unreachable("not on the network"))?;
        let request = rpc.encode();
        if request.len() > caravan_net::RAFT_FRAME_BYTES_MAX {
            return Err(CallError::TooLarge);
        }
        let (reply, answer) = oneshot::channel();
        let call = Call {
            protocol: Protocol::Raft,
            peer: member.peer_id.clone(),
            addrs: member.addrs.clone(),
            request,
            reply,
        };
        calls.send(call).await.map_err(|_| unreachable("the network is stopping"))?;
        match tokio::time::timeout(CALL_TIMEOUT, answer).await {
            Ok(Ok(Ok(bytes))) => RpcReply::decode(&bytes).map_err(CallError::Unreachable),
            Ok(Ok(Err(why))) => Err(CallError::Unreachable(why.to_string())),
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
