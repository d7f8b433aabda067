//! The single writer of a node's databases (the record store and
//! `caravan.sqlite`) and what it feeds: records signed at our own
//! publishing points and records from peers (verified before they reach
//! it), stored in one transaction per batch, then handed to the in-memory
//! catalog that search reads.
//!
//! - [`writer`]: the writer thread, its queue of jobs and group commit;
//!   it hosts the replication core, which stores through it.
//! - [`replica_store`]: the record store as the replication core's
//!   `RecordStore`, noting what the catalog must learn.
//! - [`catalog`]: the catalog (`caravan-catalog`) across restarts: its
//!   snapshot file, loaded at start when in step with the records (else
//!   rebuilt from them) and saved when the writer stops.
//!
//! The node spawns the thread and owns the queue's senders; nothing here
//! starts a task or a thread.

pub mod catalog;
pub mod replica_store;
pub mod writer;

pub use writer::{
    legacy_ledger, CheckedEvent, Done, Job, Peer, ReplicationEvent, Write, WriteFailed, Writer, WriterStats,
    ACTIONS_MAX, BATCH_MAX, QUEUE_MAX, REPLICATION_QUEUE_MAX, REPLICATION_RECORDS_MAX,
};
