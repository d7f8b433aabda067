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
//! of one built from the store's records at once. The digest is kept in
//! step with every change (an order-free sum of each entry's hash), so
//! reading it costs nothing however large the catalog. [`snapshot`]
//! writes the catalog to bytes with a checksum, so a node restarts without
//! reading every record again.
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
    /// The hashes of every entry and of every contact, summed.
    entries_fold: Fold,
    contacts_fold: Fold,
}

/// A set's hashes summed mod 2²⁵⁶, with their count: order-free, so it is
/// kept in step member by member (negentropy fingerprints sets so too).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Serialize, Deserialize)]
pub struct Fold {
    sum: [u64; 4],
    count: u64,
}

impl Fold {
    fn add(&mut self, hash: [u8; 32]) {
        let mut carry = false;
        for (lane, word) in self.sum.iter_mut().zip(hash.chunks_exact(8)) {
            let (sum, over) = lane.overflowing_add(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            let (sum, over_carry) = sum.overflowing_add(carry as u64);
            (*lane, carry) = (sum, over || over_carry);
        }
        self.count += 1;
    }

    fn remove(&mut self, hash: [u8; 32]) {
        let mut borrow = false;
        for (lane, word) in self.sum.iter_mut().zip(hash.chunks_exact(8)) {
            let (difference, under) = lane.overflowing_sub(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            let (difference, under_borrow) = difference.overflowing_sub(borrow as u64);
            (*lane, borrow) = (difference, under || under_borrow);
        }
        self.count -= 1;
    }

    fn hash_into(&self, hasher: &mut blake3::Hasher) {
        for lane in self.sum {
            hasher.update(&lane.to_le_bytes());
        }
        hasher.update(&self.count.to_le_bytes());
    }
}

/// The first eight bytes of the ids of an entry's listing and
/// availability records (zeros: none): 16 bytes where the ids would take
/// 64. The digest compares honest nodes' catalogs, where two different
/// records sharing 64 bits of id happen once in 2⁶⁴ (ids are hashes).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Serialize, Deserialize)]
pub struct Stamps {
    listing: [u8; 8],
    ari: [u8; 8],
}

fn stamp(id: RecordId) -> [u8; 8] {
    id.0[..8].try_into().expect("8 of 32 bytes")
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
                self.fold_out_key(&record.origin, &record.key);
                let handle = self.index.put_listing(&record.origin, &record.key, listing);
                self.stamps_mut(handle).listing = id;
                self.fold_in(handle);
            }
            Payload::Ari(runs) => {
                self.fold_out_key(&record.origin, &record.key);
                let handle = self.index.put_ari(&record.origin, &record.key, &runs);
                self.stamps_mut(handle).ari = id;
                self.fold_in(handle);
            }
            Payload::Withdrawal => {
                self.fold_out_key(&record.origin, &record.key);
                if let Some(handle) = self.index.remove(&record.origin, &record.key) {
                    *self.stamps_mut(handle) = Stamps::default();
                }
            }
            Payload::Contact(contact) => {
                self.contacts_fold.add(contact_hash(&record.origin, &contact));
                if let Some(old) = self.contacts.insert(record.origin, contact) {
                    self.contacts_fold.remove(contact_hash(&record.origin, &old));
                }
            }
        }
    }

    /// The entry at `handle` counts in the digest again (after a change).
    fn fold_in(&mut self, handle: Handle) {
        if let Some(hash) = self.entry_hash(handle) {
            self.entries_fold.add(hash);
        }
    }

    /// The entry of `origin`'s `key`, if any, leaves the digest (before a
    /// change).
    fn fold_out_key(&mut self, origin: &Origin, key: &str) {
        if let Some(handle) = self.index.handle(origin, key) {
            self.fold_out(handle);
        }
    }

    fn fold_out(&mut self, handle: Handle) {
        if let Some(hash) = self.entry_hash(handle) {
            self.entries_fold.remove(hash);
        }
    }

    fn entry_hash(&self, handle: Handle) -> Option<[u8; 32]> {
        let (origin, saved) = self.index.saved_entry(handle)?;
        let stamps = self.stamps.get(handle as usize).copied().unwrap_or_default();
        Some(entry_hash(origin, &saved, &stamps))
    }

    fn stamps_mut(&mut self, handle: Handle) -> &mut Stamps {
        let at = handle as usize;
        while at >= self.stamps.len() {
            caravan_search::index::reserve_an_eighth(&mut self.stamps);
            self.stamps.push(Stamps::default());
        }
        &mut self.stamps[at]
    }

    /// Everything `origin` published goes, and it stays frozen.
    pub fn freeze(&mut self, origin: Origin) {
        // One walk over the entries: what leaves the digest, then the index.
        let handles = self.index.handles_of(&origin);
        for &handle in &handles {
            self.fold_out(handle);
            *self.stamps_mut(handle) = Stamps::default();
        }
        self.index.remove_handles(&handles);
        if let Some(contact) = self.contacts.remove(&origin) {
            self.contacts_fold.remove(contact_hash(&origin, &contact));
        }
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

    /// A hash of everything the catalog holds: equal digests, equal
    /// catalogs, however each was built. Kept in step, so it costs only
    /// the frozen origins to read.
    pub fn digest(&self) -> [u8; 32] {
        digest_of(&self.entries_fold, &self.contacts_fold, &self.frozen)
    }

    /// The digest recomputed from every entry and contact, to check the
    /// one kept in step (tests, and a doubtful snapshot).
    pub fn digest_recomputed(&self) -> [u8; 32] {
        let mut entries = Fold::default();
        for (origin, saved, stamps) in self.entries() {
            entries.add(entry_hash(&origin, &saved, &stamps));
        }
        let mut contacts = Fold::default();
        for (origin, contact) in &self.contacts {
            contacts.add(contact_hash(origin, contact));
        }
        digest_of(&entries, &contacts, &self.frozen)
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

fn entry_hash(origin: &Origin, entry: &SavedEntry, stamps: &Stamps) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&origin.0);
    // Runs are packed, and packing is canonical: equal entries, equal bytes.
    hash_bytes(&mut hasher, &postcard::to_stdvec(entry).expect("entries encode"));
    hasher.update(&stamps.listing);
    hasher.update(&stamps.ari);
    *hasher.finalize().as_bytes()
}

fn contact_hash(origin: &Origin, contact: &Contact) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&origin.0);
    hash_bytes(&mut hasher, &postcard::to_stdvec(contact).expect("contacts encode"));
    *hasher.finalize().as_bytes()
}

fn digest_of(entries: &Fold, contacts: &Fold, frozen: &BTreeSet<Origin>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"entries");
    entries.hash_into(&mut hasher);
    hasher.update(b"contacts");
    contacts.hash_into(&mut hasher);
    hasher.update(b"frozen");
    hasher.update(&(frozen.len() as u64).to_le_bytes());
    for origin in frozen {
        hasher.update(&origin.0);
    }
    *hasher.finalize().as_bytes()
}

/// Length first, so no two entries hash alike by moving bytes between fields.
fn hash_bytes(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}
