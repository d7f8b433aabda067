//! The node's in-memory view of the catalog: the search index
//! ([`caravan_search::SearchIndex`]), every origin's contact, and the
//! frozen origins. Loaded at start-up from the records and kept in step by
//! the writer after every commit that stores new records, so searching and
//! calling an owner never wait on the database.

use std::collections::{HashMap, HashSet};

use caravan_model::{Contact, Timestamp};
use caravan_records::{Origin, Payload, Record};
use caravan_search::SearchIndex;
use caravan_store::rusqlite::Connection;
use caravan_store::{records, StoreError};

#[derive(Debug, Default)]
pub struct Catalog {
    pub index: SearchIndex<Origin>,
    contacts: HashMap<Origin, Contact>,
    frozen: HashSet<Origin>,
}

impl Catalog {
    /// How to reach `origin`'s nodes, if it published a contact.
    pub fn contact(&self, origin: &Origin) -> Option<&Contact> {
        self.contacts.get(origin)
    }

    /// Whether `origin` was caught equivocating.
    pub fn is_frozen(&self, origin: &Origin) -> bool {
        self.frozen.contains(origin)
    }
}

/// What a commit changed in the catalog's eyes.
#[derive(Debug)]
pub enum IndexChange {
    /// A record that is now the newest in its slot.
    Put(Box<Record>),
    /// An origin caught equivocating: all of it goes.
    Freeze(Origin),
}

pub fn apply(catalog: &mut Catalog, change: IndexChange) {
    let index = &mut catalog.index;
    match change {
        IndexChange::Put(record) => match record.payload {
            Payload::Listing(listing) => index.put_listing(&record.origin, &record.key, listing),
            Payload::Ari(runs) => index.put_ari(&record.origin, &record.key, runs),
            Payload::Withdrawal => index.remove(&record.origin, &record.key),
            Payload::Contact(contact) => {
                catalog.contacts.insert(record.origin, contact);
            }
        },
        IndexChange::Freeze(origin) => {
            index.remove_origin(&origin);
            catalog.contacts.remove(&origin);
            catalog.frozen.insert(origin);
        }
    }
}

/// Builds the view from every stored record (each verified as read back)
/// and the equivocation proofs.
pub fn load(conn: &Connection, now: Timestamp) -> Result<Catalog, StoreError> {
    let mut catalog = Catalog::default();
    records::for_each(conn, |stored| {
        let record = records::read_back(&stored.signed, now)?;
        apply(&mut catalog, IndexChange::Put(Box::new(record.into_inner())));
        Ok(())
    })?;
    for (origin, _) in records::equivocations(conn)? {
        catalog.frozen.insert(origin);
    }
    Ok(catalog)
}
