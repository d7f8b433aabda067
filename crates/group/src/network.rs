//! Messages between members, over whatever carries them.
//!
//! The node carries [`Rpc`]s over libp2p (`/caravan/raft/1`), the
//! simulation over channels that lose, repeat and cut; both implement
//! [`Transport`]. A failed call is "unreachable" to openraft, which backs
//! off and retries: a remote error is no different from a lost message.
//! [`Rpc::Propose`] carries a command a follower received to the leader,
//! [`Rpc::ChangeMembers`] a membership change.

use std::future::Future;

use openraft::error::{InstallSnapshotError, PayloadTooLarge, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::membership::{change_members, ChangeError, MembershipChange};
use crate::{GroupConfig, Member, MemberId, Outcome, Proposal, Raft};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Rpc {
    Append(AppendEntriesRequest<GroupConfig>),
    Vote(VoteRequest<MemberId>),
    Snapshot(InstallSnapshotRequest<GroupConfig>),
    /// A command for the leader, from a member that is not.
    Propose(Proposal),
    /// A membership change for the leader, from a member that is not.
    ChangeMembers(MembershipChange),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcReply {
    Append(AppendEntriesResponse<MemberId>),
    Vote(VoteResponse<MemberId>),
    Snapshot(InstallSnapshotResponse<MemberId>),
    /// Applied at this log index, with this outcome.
    Proposed(u64, Outcome),
    /// The membership change is committed.
    Changed,
    /// The leader refused the membership change, and why.
    Refused(String),
    /// Not the leader; who is, if known.
    NotLeader(Option<MemberId>),
    /// The member could not handle the message (stopping, say).
    Failed(String),
}

impl Rpc {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("messages serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<Rpc, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("bad raft message: {e}"))
    }
}

impl RpcReply {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("messages serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<RpcReply, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("bad raft reply: {e}"))
    }
}

/// Why a message brought no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Lost, refused, timed out: openraft backs off and sends again.
    #[error("{0}")]
    Unreachable(String),
    /// Larger than the transport carries: openraft sends fewer entries.
    #[error("the message is too large for the transport")]
    TooLarge,
}

/// Carries one message to a member and brings its reply back.
pub trait Transport: Clone + Send + Sync + 'static {
    fn call(&self, to: MemberId, member: &Member, rpc: Rpc)
        -> impl Future<Output = Result<RpcReply, CallError>> + Send;
}

/// Hands a message that reached this member to its Raft.
pub async fn serve(raft: &Raft, rpc: Rpc) -> RpcReply {
    let failed = |e: &dyn std::fmt::Display| RpcReply::Failed(e.to_string());
    match rpc {
        Rpc::Append(request) => raft.append_entries(request).await.map_or_else(|e| failed(&e), RpcReply::Append),
        Rpc::Vote(request) => raft.vote(request).await.map_or_else(|e| failed(&e), RpcReply::Vote),
        Rpc::Snapshot(request) => raft.install_snapshot(request).await.map_or_else(|e| failed(&e), RpcReply::Snapshot),
        Rpc::Propose(proposal) => match raft.client_write(proposal).await {
            Ok(written) => RpcReply::Proposed(written.log_id.index, written.data),
            Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(forward))) => {
                RpcReply::NotLeader(forward.leader_id)
            }
            Err(e) => failed(&e),
        },
        Rpc::ChangeMembers(change) => match change_members(raft, change).await {
            Ok(()) => RpcReply::Changed,
            Err(ChangeError::NotLeader(leader, _)) => RpcReply::NotLeader(leader),
            Err(ChangeError::Refused(why)) => RpcReply::Refused(why),
            Err(e @ ChangeError::Failed(_)) => failed(&e),
        },
    }
}

#[derive(Debug, Clone)]
pub struct TransportFactory<T>(pub T);

impl<T: Transport> RaftNetworkFactory<GroupConfig> for TransportFactory<T> {
    type Network = Link<T>;

    async fn new_client(&mut self, target: MemberId, member: &Member) -> Link<T> {
        Link { transport: self.0.clone(), target, member: member.clone() }
    }
}

/// The way to one member.
#[derive(Debug)]
pub struct Link<T> {
    transport: T,
    target: MemberId,
    member: Member,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LinkError(String);

impl<T: Transport> Link<T> {
    async fn call<E: std::error::Error>(&self, rpc: Rpc) -> Result<RpcReply, RPCError<MemberId, Member, E>> {
        let entries = match &rpc {
            Rpc::Append(request) => request.entries.len() as u64,
            _ => 0,
        };
        let unreachable = |why: String| RPCError::Unreachable(Unreachable::new(&LinkError(why)));
        match self.transport.call(self.target, &self.member, rpc).await {
            Ok(RpcReply::Failed(why)) | Err(CallError::Unreachable(why)) => Err(unreachable(why)),
            Err(CallError::TooLarge) if entries > 1 => {
                Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)))
            }
            Err(error @ CallError::TooLarge) => Err(unreachable(error.to_string())),
            Ok(reply) => Ok(reply),
        }
    }
}

fn unexpected<E: std::error::Error>(reply: RpcReply) -> RPCError<MemberId, Member, E> {
    RPCError::Unreachable(Unreachable::new(&LinkError(format!("unexpected reply {reply:?}"))))
}

impl<T: Transport> RaftNetwork<GroupConfig> for Link<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<GroupConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId>>> {
        match self.call(Rpc::Append(rpc)).await? {
            RpcReply::Append(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<GroupConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId, InstallSnapshotError>>>
    {
        match self.call(Rpc::Snapshot(rpc)).await? {
            RpcReply::Snapshot(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId>>> {
        match self.call(Rpc::Vote(rpc)).await? {
            RpcReply::Vote(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }
}
