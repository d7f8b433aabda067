//! The catalog: a node's searchable view of the newest records it holds.
//! One structure, in memory, that search, booking and the digest all read:
//! the search index over every listing and its newest availability, every
//! origin's contact, and the origins frozen for equivocating. A stay's
//! listing and runs are not held here but read from the record store when
//! a search prices it (`caravan_search::Shelf`).
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

use caravan_model::Contact;
use caravan_records::{Origin, Payload, Record, RecordId};
use caravan_search::{Handle, SavedEntry, SearchIndex};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub struct Catalog {
    pub index: SearchIndex<Origin>,
    /// By the index's handles: which records each entry was built from.
    /// The digest covers them, as the stays' listings and runs are not in
    /// memory but in the store.
    stamps: Vec<Stamps>,
    contacts: BTreeMap<Origin, Contact>,
    frozen: BTreeSet<Origin>,
}

/// The first half of the ids of an entry's listing and availability
/// records (zeros: none): 32 bytes where the ids would take 64, and as
/// good for telling catalogs apart.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Serialize, Deserialize)]
pub struct Stamps {
    listing: [u8; 16],
    ari: [u8; 16],
}

fn stamp(id: RecordId) -> [u8; 16] {
    id.0[..16].try_into().expect("16 of 32 bytes")
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
        let id = stamp(record.id());
        match record.payload {
            Payload::Listing(listing) => {
                let handle = self.index.put_listing(&record.origin, &record.key, listing);
                self.stamps_mut(handle).listing = id;
            }
            Payload::Ari(runs) => {
                let handle = self.index.put_ari(&record.origin, &record.key, &runs);
                self.stamps_mut(handle).ari = id;
            }
            Payload::Withdrawal => {
                if let Some(handle) = self.index.remove(&record.origin, &record.key) {
                    *self.stamps_mut(handle) = Stamps::default();
                }
            }
            Payload::Contact(contact) => {
                self.contacts.insert(record.origin, contact);
            }
        }
    }

    fn stamps_mut(&mut self, handle: Handle) -> &mut Stamps {
        let at = handle as usize;
        if at >= self.stamps.len() {
            self.stamps.resize(at + 1, Stamps::default());
        }
        &mut self.stamps[at]
    }

    /// Everything `origin` published goes, and it stays frozen.
    pub fn freeze(&mut self, origin: Origin) {
        for handle in self.index.remove_origin(&origin) {
            *self.stamps_mut(handle) = Stamps::default();
        }
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

    /// What the digest covers, taken without hashing, so that the hashing
    /// can run without holding the catalog, which the writer must lock to
    /// change it.
    pub fn digest_input(&self) -> DigestInput {
        DigestInput {
            entries: self.entries().collect(),
            contacts: self.contacts.iter().map(|(origin, contact)| (*origin, contact.clone())).collect(),
            frozen: self.frozen.iter().copied().collect(),
        }
    }

    /// Every entry of the index spelled out, with the records it came from.
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.index.saved().map(|(handle, origin, saved)| {
            (*origin, saved, self.stamps.get(handle as usize).copied().unwrap_or_default())
        })
    }
}

/// One entry of the index: its origin, its contents and its records.
type Entry = (Origin, SavedEntry, Stamps);

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
        self.entries.sort_unstable_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"entries");
        hasher.update(&(self.entries.len() as u64).to_le_bytes());
        for (origin, entry, stamps) in &self.entries {
            hasher.update(&origin.0);
            // Runs are packed, and packing is canonical: equal entries,
            // equal bytes.
            hash_bytes(&mut hasher, &postcard::to_stdvec(entry).expect("entries encode"));
            hasher.update(&stamps.listing);
            hasher.update(&stamps.ari);
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
