//! Changing who is in a group, one member at a time, on the leader.
//!
//! A new member joins as a learner and is promoted to voter only once it
//! has caught up, so a slow newcomer never stalls the quorum. Removing
//! takes the member out entirely (its id is random and never comes back).
//! Every change is a Raft membership entry: members learn it through the
//! log like any command.

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::{Member, MemberId, Raft};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds a member: learner first, voter once caught up.
    Add(MemberId, Member),
    /// Takes a member out of the group.
    Remove(MemberId),
    /// Records where a member listens now.
    SetAddrs(MemberId, Member),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// This member does not lead; the leader, if known.
    #[error("this member does not lead its group")]
    NotLeader(Option<MemberId>, Option<Member>),
    /// The change makes no sense for this group.
    #[error("{0}")]
    Refused(String),
    #[error("the replica group failed: {0}")]
    Failed(String),
}

/// Applies `change` if this member leads; the leader otherwise.
pub async fn change_members(raft: &Raft, change: MembershipChange) -> Result<(), ChangeError> {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
    let known = |id: &MemberId| membership.get_node(id).is_some();
    match change {
        MembershipChange::Add(id, member) => {
            if voters.contains(&id) {
                return Ok(()); // Already in: adding again is a retry.
            }
            if membership.nodes().any(|(other, m)| *other != id && m.peer_id == member.peer_id) {
                return Err(ChangeError::Refused(format!("peer {} is already a member", member.peer_id)));
            }
            // Blocks until the learner has caught up with the leader's log.
            raft.add_learner(id, member, true).await.map_err(write_error)?;
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(write_error)?;
        }
        MembershipChange::Remove(id) => {
            if !known(&id) {
                return Err(ChangeError::Refused(format!("member {id} is not in this group")));
            }
            if voters.len() == 1 && voters.contains(&id) {
                return Err(ChangeError::Refused("the group's last voter cannot leave it".into()));
            }
            let change = if voters.contains(&id) {
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            };
            raft.change_membership(change, false).await.map_err(write_error)?;
        }
        MembershipChange::SetAddrs(id, member) => {
            if !known(&id) {
                return Err(ChangeError::Refused(format!("member {id} is not in this group")));
            }
            if membership.get_node(&id) == Some(&member) {
                return Ok(());
            }
            raft.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, member)])), false)
                .await
                .map_err(write_error)?;
        }
    }
    Ok(())
}

fn write_error(error: RaftError<MemberId, ClientWriteError<MemberId, Member>>) -> ChangeError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            ChangeError::NotLeader(forward.leader_id, forward.leader_node)
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => ChangeError::Refused(error.to_string()),
        other => ChangeError::Failed(other.to_string()),
    }
}
