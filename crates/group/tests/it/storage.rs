//! openraft's own conformance suite against the log store (in memory and
//! in SQLite) and the ledger state machine, plus what the suite does not
//! cover: a reopened SQLite log has everything it acknowledged.

use std::sync::Arc;

use caravan_group::openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use caravan_group::openraft::testing::{StoreBuilder, Suite};
use caravan_group::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader};
use caravan_group::{GroupConfig, GroupLog, LedgerMachine, NoEffects, Proposal, SnapshotStore, StorageError};
use caravan_ledger::Command;
use caravan_model::Timestamp;

struct Memory;

impl StoreBuilder<GroupConfig, GroupLog, LedgerMachine<NoEffects>, ()> for Memory {
    async fn build(&self) -> Result<((), GroupLog, LedgerMachine<NoEffects>), StorageError> {
        let log = GroupLog::memory(Default::default());
        let machine = LedgerMachine::open(SnapshotStore::Memory(Default::default()), Arc::new(NoEffects)).unwrap();
        Ok(((), log, machine))
    }
}

struct Sqlite;

impl StoreBuilder<GroupConfig, GroupLog, LedgerMachine<NoEffects>, tempfile::TempDir> for Sqlite {
    async fn build(&self) -> Result<(tempfile::TempDir, GroupLog, LedgerMachine<NoEffects>), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let log = GroupLog::open(&dir.path().join("raft.db")).unwrap();
        let snapshots = SnapshotStore::File(dir.path().join("snapshot.bin"));
        let machine = LedgerMachine::open(snapshots, Arc::new(NoEffects)).unwrap();
        Ok((dir, log, machine))
    }
}

#[test]
fn memory_log_passes_openraft_suite() {
    Suite::test_all(Memory).unwrap();
}

#[test]
fn sqlite_log_passes_openraft_suite() {
    Suite::test_all(Sqlite).unwrap();
}

fn entry(term: u64, index: u64, command: Command) -> Entry<GroupConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Proposal { now: Timestamp(1_000 * index as i64), command }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_log_survives_reopening_with_every_flushed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.db");
    let mut log = GroupLog::open(&path).unwrap();
    let entries: Vec<_> = (1..=50).map(|i| entry(1, i, Command::ExpireHolds)).collect();
    log.blocking_append(entries.clone()).await.unwrap();
    log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 41)).await.unwrap();
    log.purge(LogId::new(CommittedLeaderId::new(1, 1), 10)).await.unwrap();
    drop(log);

    let mut reopened = GroupLog::open(&path).unwrap();
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.unwrap().index, 10);
    assert_eq!(state.last_log_id.unwrap().index, 40);
    let read = reopened.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(read, entries[10..40].to_vec());
}
