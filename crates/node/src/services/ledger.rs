//! The ledger service: commands through the replica group, reads of the
//! committed ledger, and this origin's own signed records.

use std::sync::RwLockReadGuard;

use caravan_api::async_trait;
use caravan_api::{Internal, LedgerService, SubmitError};
use caravan_ledger::{Command, Ledger, Reply};
use caravan_records::{Origin, Record, Verified};

use crate::Node;

#[async_trait]
impl LedgerService for Node {
    async fn submit(&self, command: Command) -> Result<Reply, SubmitError> {
        Node::submit(self, command).await
    }

    fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        self.inner.ledger.read().expect("ledger lock")
    }

    fn origin(&self) -> Origin {
        self.inner.origin
    }

    fn hold_ms_default(&self) -> i64 {
        self.inner.hold_ms_default
    }

    async fn own_records(&self, after_version: u64, limit: u32) -> Result<Vec<Verified<Record>>, Internal> {
        let (origin, now) = (self.inner.origin, self.now());
        let records = self.read_records(move |records| {
            let stored = records.by_origin(origin, after_version, limit)?;
            stored.iter().map(|s| caravan_store::records::read_back(&s.signed, now)).collect::<Result<Vec<_>, _>>()
        });
        records.await.map_err(super::internal)
    }
}
