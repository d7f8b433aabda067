//! The node's records as the replication core sees them: the SQLite records
//! table, noting what the catalog must learn once the transaction commits.

use caravan_model::Timestamp;
use caravan_records::{EquivocationProof, Origin, Record, RecordId, Verified};
use caravan_replication::{Put, RecordStore};
use caravan_store::records::{self, PutOutcome};
use caravan_store::rusqlite::Connection;
use caravan_store::StoreError;

use caravan_catalog::Change;

/// A record store over one connection (usually a transaction: the shell
/// commits after the core handled an event, or rolls back on error).
#[derive(Debug)]
pub struct SqliteRecords<'c> {
    conn: &'c Connection,
    /// What the search index must learn once the transaction commits.
    pub changes: Vec<Change>,
}

impl<'c> SqliteRecords<'c> {
    pub fn new(conn: &'c Connection) -> SqliteRecords<'c> {
        SqliteRecords { conn, changes: Vec::new() }
    }
}

impl RecordStore for SqliteRecords<'_> {
    type Error = StoreError;

    fn put(&mut self, record: Verified<Record>, now: Timestamp) -> Result<Put, StoreError> {
        let outcome = records::put(self.conn, &record, now)?;
        if outcome.is_new() {
            self.changes.push(Change::Put(Box::new(record.into_inner())));
        } else if let PutOutcome::Equivocation(proof) = &outcome {
            self.changes.push(Change::Freeze(proof.origin()));
        }
        Ok(match outcome {
            PutOutcome::Inserted { gone } | PutOutcome::Replaced { gone, .. } => Put::New { gone },
            PutOutcome::Duplicate | PutOutcome::Stale { .. } | PutOutcome::Withdrawn => Put::Old,
            PutOutcome::Frozen => Put::Frozen,
            PutOutcome::Equivocation(proof) => Put::Equivocation(proof),
        })
    }

    fn get(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        records::signed_by_id(self.conn, id)
    }

    fn items(&self) -> Result<Vec<(u64, RecordId)>, StoreError> {
        records::items(self.conn)
    }

    fn freeze(&mut self, proof: &EquivocationProof, now: Timestamp) -> Result<bool, StoreError> {
        let newly = records::freeze(self.conn, proof, now)?;
        self.changes.push(Change::Freeze(proof.origin()));
        Ok(newly)
    }

    fn proof(&self, origin: Origin) -> Result<Option<Vec<u8>>, StoreError> {
        records::proof(self.conn, origin)
    }
}
