//! The catalog: a node's searchable view of the newest records it holds.
//! One structure, in memory, that search, booking and the digest all read:
//! every listing with its newest availability (the search index), every
//! origin's contact, and the origins frozen for equivocating.
//!
//! It is derived data: [`Catalog::apply`] takes what the record store says
//! changed (a record now newest in its slot, an origin frozen), and a
//! catalog built change by change in any order has the [`Catalog::digest`]
//! of one built from the store's records at once. [`snapshot`] writes it
//! to bytes with a checksum, so a node restarts without reading every
//! record again.
//!
//! Pure: no IO, no clock. The writer feeds it; the node keeps the file.

pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use caravan_model::{Contact, Listing, PackedRuns};
use caravan_records::{Origin, Payload, Record};
use caravan_search::SearchIndex;

#[derive(Debug, Default)]
pub struct Catalog {
    pub index: SearchIndex<Origin>,
    contacts: BTreeMap<Origin, Contact>,
    frozen: BTreeSet<Origin>,
}

/// What the record store says changed.
#[derive(Debug)]
pub enum Change {
    /// A record that is now the newest in its slot.
    Put(Box<Record>),
    /// An origin caught equivocating: all of it goes.
    Freeze(Origin),
}

impl Catalog {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Put(record) => self.put(*record),
            Change::Freeze(origin) => self.freeze(origin),
        }
    }

    /// `record` is now the newest in its slot.
    pub fn put(&mut self, record: Record) {
        let index = &mut self.index;
        match record.payload {
            Payload::Listing(listing) => index.put_listing(&record.origin, &record.key, listing),
            Payload::Ari(runs) => index.put_ari(&record.origin, &record.key, runs),
            Payload::Withdrawal => index.remove(&record.origin, &record.key),
            Payload::Contact(contact) => {
                self.contacts.insert(record.origin, contact);
            }
        }
    }

    /// Everything `origin` published goes, and it stays frozen.
    pub fn freeze(&mut self, origin: Origin) {
        self.index.remove_origin(&origin);
        self.contacts.remove(&origin);
        self.frozen.insert(origin);
    }

    /// How to reach `origin`'s nodes, if it published a contact.
    pub fn contact(&self, origin: &Origin) -> Option<&Contact> {
        self.contacts.get(origin)
    }

    /// Whether `origin` was caught equivocating.
    pub fn is_frozen(&self, origin: &Origin) -> bool {
        self.frozen.contains(origin)
    }

    pub fn listing_count(&self) -> usize {
        self.index.listing_count()
    }

    /// Origins whose contact the catalog holds.
    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    /// BLAKE3 over everything the catalog holds, in a canonical order:
    /// equal digests, equal catalogs, however each was built.
    pub fn digest(&self) -> [u8; 32] {
        self.digest_input().digest()
    }

    /// What the digest covers, taken quickly (listings and runs are shared,
    /// not copied), so that the hashing can run without holding the
    /// catalog, which the writer must lock to change it.
    pub fn digest_input(&self) -> DigestInput {
        DigestInput {
            entries: self
                .index
                .entries()
                .map(|(origin, key, listing, runs)| (*origin, key.to_owned(), listing.cloned(), runs.clone()))
                .collect(),
            contacts: self.contacts.iter().map(|(origin, contact)| (*origin, contact.clone())).collect(),
            frozen: self.frozen.iter().copied().collect(),
        }
    }
}

/// One `(origin, key)` of the index: its listing, if described, and runs.
type Entry = (Origin, String, Option<Arc<Listing>>, PackedRuns);

/// A catalog's contents for [`Catalog::digest`], taken by
/// [`Catalog::digest_input`].
#[derive(Debug)]
pub struct DigestInput {
    entries: Vec<Entry>,
    /// In origin order, as the catalog keeps them.
    contacts: Vec<(Origin, Contact)>,
    frozen: Vec<Origin>,
}

impl DigestInput {
    pub fn digest(mut self) -> [u8; 32] {
        self.entries.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"entries");
        hasher.update(&(self.entries.len() as u64).to_le_bytes());
        for (origin, key, listing, runs) in &self.entries {
            hasher.update(&origin.0);
            hash_bytes(&mut hasher, key.as_bytes());
            hash_bytes(&mut hasher, &postcard::to_stdvec(&listing.as_deref()).expect("listings encode"));
            // Packing is canonical: equal runs, equal bytes.
            hash_bytes(&mut hasher, runs.bytes());
        }
        hasher.update(b"contacts");
        hasher.update(&(self.contacts.len() as u64).to_le_bytes());
        for (origin, contact) in &self.contacts {
            hasher.update(&origin.0);
            hash_bytes(&mut hasher, &postcard::to_stdvec(contact).expect("contacts encode"));
        }
        hasher.update(b"frozen");
        hasher.update(&(self.frozen.len() as u64).to_le_bytes());
        for origin in &self.frozen {
            hasher.update(&origin.0);
        }
        *hasher.finalize().as_bytes()
    }
}

/// Length first, so no two entries hash alike by moving bytes between fields.
fn hash_bytes(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}
