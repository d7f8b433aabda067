//! The node's search index: [`caravan_search::SearchIndex`] over the
//! records it holds, loaded at start-up and kept in step by the writer
//! after every commit that stores new records.

use caravan_model::Timestamp;
use caravan_records::{Origin, Payload, Record};
use caravan_search::SearchIndex;
use caravan_store::rusqlite::Connection;
use caravan_store::{records, StoreError};

pub type Index = SearchIndex<Origin>;

/// What a commit changed in the index's eyes.
#[derive(Debug)]
pub enum IndexChange {
    /// A record that is now the newest in its slot.
    Put(Box<Record>),
    /// An origin caught equivocating: all of it goes.
    Freeze(Origin),
}

pub fn apply(index: &mut Index, change: IndexChange) {
    match change {
        IndexChange::Put(record) => match record.payload {
            Payload::Listing(listing) => index.put_listing(&record.origin, &record.key, listing),
            Payload::Ari(runs) => index.put_ari(&record.origin, &record.key, runs),
            Payload::Withdrawal => index.remove(&record.origin, &record.key),
            Payload::Contact(_) => {}
        },
        IndexChange::Freeze(origin) => index.remove_origin(&origin),
    }
}

/// Builds the index from every stored record (each verified as read back).
pub fn load(conn: &Connection, now: Timestamp) -> Result<Index, StoreError> {
    let mut index = Index::new();
    records::for_each(conn, |stored| {
        let record = records::read_back(&stored.signed, now)?;
        apply(&mut index, IndexChange::Put(Box::new(record.into_inner())));
        Ok(())
    })?;
    Ok(index)
}
