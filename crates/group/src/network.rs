//! Messages between members, over whatever carries them.
//!
//! The node carries [`Rpc`]s over libp2p (`/caravan/raft/1`), the
//! simulation over channels that lose, repeat and cut; both implement
//! [`Transport`]. A failed call is "unreachable" to openraft, which backs
//! off and retries: a remote error is no different from a lost message.
//! [`Rpc::Propose`] carries a command a follower received to the leader.

use std::future::Future;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::{GroupConfig, Member, MemberId, Outcome, Proposal, Raft};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Rpc {
    Append(AppendEntriesRequest<GroupConfig>),
    Vote(VoteRequest<MemberId>),
    Snapshot(InstallSnapshotRequest<GroupConfig>),
    /// A command for the leader, from a member that is not.
    Propose(Proposal),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcReply {
    Append(AppendEntriesResponse<MemberId>),
    Vote(VoteResponse<MemberId>),
    Snapshot(InstallSnapshotResponse<MemberId>),
    /// Applied at this log index, with this outcome.
    Proposed(u64, Outcome),
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

/// Carries one message to a member and brings its reply back.
pub trait Transport: Clone + Send + Sync + 'static {
    fn call(&self, to: MemberId, member: &Member, rpc: Rpc) -> impl Future<Output = Result<RpcReply, String>> + Send;
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
        match self.transport.call(self.target, &self.member, rpc).await {
            Ok(RpcReply::Failed(why)) | Err(why) => Err(RPCError::Unreachable(Unreachable::new(&LinkError(why)))),
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
