//! Replica groups: an owner's ledger under Raft (openraft), on one node
//! (the default) or three.
//!
//! Every ledger command becomes a Raft log entry stamped with the leader's
//! clock ([`Proposal`]). Each member applies the committed log in order to
//! its own [`Ledger`](caravan_ledger::Ledger), so every member holds the
//! same ledger at the same index, and the records a `Publish` entry
//! produces take their version from that entry's index: byte-identical on
//! every member, so a failover cannot equivocate.
//!
//! ```text
//! propose ─► batcher ─► leader appends (log store, fsync) ─► followers append ─► committed
//!    ◄── reply ◄── LedgerMachine::apply ─► Effects::persist ─► (later) records signed, stored
//! ```
//!
//! IO stays at the edges: the log store owns its SQLite file on a thread of
//! its own ([`GroupLog`]), the network is a [`Transport`] the node
//! implements over libp2p (and the simulation over lossy channels), and
//! what applying a command means outside the ledger is the node's
//! [`Effects`].

mod core;
mod log_store;
mod machine;
mod member;
mod membership;
mod network;
mod runtime;
mod snapshot;
mod timers;

pub use log_store::{read_local, write_local, GroupLog, LogContents, MemoryDisk};
pub use machine::{AppliedCommand, Effects, EffectsError, LedgerMachine, NoEffects};
pub use member::{
    member_id_of, prepare_join, CutOff, GroupStatus, LegacyLedger, MemberSetup, MemberStatus, OwnerGroup, ProposeError,
    SetupError, AGREED_TIMERS, LOG_FILE, SNAPSHOT_FILE,
};
pub use membership::{change_members, ChangeError, MembershipChange};
pub use network::{serve, CallError, Link, Rpc, RpcReply, Transport, TransportFactory};
pub use runtime::{seed_thread_rng, GroupRuntime};
pub use snapshot::{SnapshotImage, SnapshotSlot, SnapshotStore};
pub use timers::{raft_config, Timers};

use caravan_ledger::{Command, Rejection, Reply};
use caravan_model::Timestamp;
use serde::{Deserialize, Serialize};

pub use openraft;

/// A member's id in its group. Ids are handed out in order and never
/// reused, so a replaced machine can never be mistaken for the old one.
pub type MemberId = u64;

/// How members reach each other: a libp2p peer and its addresses.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Member {
    pub peer_id: String,
    pub addrs: Vec<String>,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.peer_id)
    }
}

/// One ledger command as the leader logged it: `now` is the leader's clock
/// when it took the command, so `apply` never reads one.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Proposal {
    pub now: Timestamp,
    pub command: Command,
}

/// What applying an entry answered. Entries that are not commands (a new
/// leader's blank entry, a membership change) answer `Reply::Done`.
pub type Outcome = Result<Reply, Rejection>;

openraft::declare_raft_types!(
    /// The type configuration of an owner's replica group.
    pub GroupConfig:
        D = Proposal,
        R = Outcome,
        NodeId = MemberId,
        Node = Member,
        Entry = openraft::Entry<GroupConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = GroupRuntime,
);

pub type Raft = openraft::Raft<GroupConfig>;
pub type Entry = openraft::Entry<GroupConfig>;
pub type LogId = openraft::LogId<MemberId>;
pub type Vote = openraft::Vote<MemberId>;
pub type StoredMembership = openraft::StoredMembership<MemberId, Member>;
pub type StorageError = openraft::StorageError<MemberId>;
pub type RaftMetrics = openraft::RaftMetrics<MemberId, Member>;

/// An IO failure as openraft's storage error.
fn io_error(verb: openraft::ErrorVerb, subject: openraft::ErrorSubject<MemberId>, why: impl ToString) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(why.to_string())).into()
}
