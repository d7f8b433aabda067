//! The node's records as the replication core sees them: a transaction on
//! the record store, noting what the catalog must learn once it commits.

use caravan_model::Timestamp;
use caravan_records::{EquivocationProof, Origin, Record, RecordId, Verified};
use caravan_replication::{Put, RecordStore};
use caravan_store::records::{PutOutcome, Tx};
use caravan_store::StoreError;

use caravan_catalog::Change;

/// A record store over the writer's transaction: the shell commits after
/// the core handled an event, or drops it (rolling back) on error.
#[derive(Debug)]
pub struct TxRecords<'t, 'r> {
    tx: &'t mut Tx<'r>,
    /// What the search index must learn once the transaction commits.
    pub changes: Vec<Change>,
}

impl<'t, 'r> TxRecords<'t, 'r> {
    pub fn new(tx: &'t mut Tx<'r>) -> TxRecords<'t, 'r> {
        TxRecords { tx, changes: Vec::new() }
    }
}

impl RecordStore for TxRecords<'_, '_> {
    type Error = StoreError;

    fn put(&mut self, record: Verified<Record>, now: Timestamp) -> Result<Put, StoreError> {
        let outcome = self.tx.put(&record, now)?;
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
        self.tx.signed_by_id(id)
    }

    fn items(&self) -> Result<Vec<(u64, RecordId)>, StoreError> {
        self.tx.items()
    }

    fn freeze(&mut self, proof: &EquivocationProof, now: Timestamp) -> Result<bool, StoreError> {
        let newly = self.tx.freeze(proof, now)?;
        self.changes.push(Change::Freeze(proof.origin()));
        Ok(newly)
    }

    fn proof(&self, origin: Origin) -> Result<Option<Vec<u8>>, StoreError> {
        self.tx.proof(origin)
    }
}
