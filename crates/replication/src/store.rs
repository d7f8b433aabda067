//! What the replication core needs from a record store, and an in-memory
//! store with the same rules as the node's SQLite one (for the simulator
//! and tests).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caravan_model::Timestamp;
use caravan_records::slot::{self, SlotDecision};
use caravan_records::{EquivocationProof, Kind, Origin, Record, RecordId, Verified};

/// What storing one verified record did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Put {
    /// Now the newest in its slot. `gone`: the `(time, id)` of the records
    /// it took the place of (the older version; for a withdrawal, also the
    /// key's listing and availability).
    New { gone: Vec<(u64, RecordId)> },
    /// Already held, older than what is held, or for a withdrawn key.
    Old,
    /// Its origin is frozen.
    Frozen,
    /// It conflicts with the stored record: the origin is now frozen.
    Equivocation(Box<EquivocationProof>),
}

/// The records a node holds. Methods fail only when the storage itself
/// does; the core then stops handling the event and hands the error to the
/// shell (which rolls back and retries or stops).
pub trait RecordStore {
    type Error: std::fmt::Debug;
    fn put(&mut self, record: Verified<Record>, now: Timestamp) -> Result<Put, Self::Error>;
    /// The encoded `SignedRecord` with this id, if held.
    fn get(&self, id: &RecordId) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Every stored record as `(time_ms, id)`, ascending: the set that
    /// reconciliation compares.
    fn items(&self) -> Result<Vec<(u64, RecordId)>, Self::Error>;
    /// Freezes the proof's origin and drops its records; false if it was
    /// frozen already.
    fn freeze(&mut self, proof: &EquivocationProof, now: Timestamp) -> Result<bool, Self::Error>;
    /// The encoded proof that froze `origin`, if any.
    fn proof(&self, origin: Origin) -> Result<Option<Vec<u8>>, Self::Error>;
}

type Slot = (Origin, Kind, String);

/// Records in memory, newest per slot.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    slots: BTreeMap<Slot, Verified<Record>>,
    by_id: HashMap<RecordId, Slot>,
    withdrawn: BTreeSet<(Origin, String)>,
    frozen: BTreeMap<Origin, EquivocationProof>,
}

impl MemoryStore {
    /// Whether `origin` is frozen.
    pub fn is_frozen(&self, origin: Origin) -> bool {
        self.frozen.contains_key(&origin)
    }

    pub fn records(&self) -> impl Iterator<Item = &Verified<Record>> {
        self.slots.values()
    }

    pub fn frozen(&self) -> impl Iterator<Item = &Origin> {
        self.frozen.keys()
    }
}

impl RecordStore for MemoryStore {
    type Error = std::convert::Infallible;

    fn put(&mut self, record: Verified<Record>, _now: Timestamp) -> Result<Put, Self::Error> {
        Ok(self.put_record(record))
    }

    fn get(&self, id: &RecordId) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.by_id.get(id).map(|slot| self.slots[slot].encode()))
    }

    fn items(&self) -> Result<Vec<(u64, RecordId)>, Self::Error> {
        let mut items: Vec<(u64, RecordId)> = self.slots.values().map(|r| (r.time.ms() as u64, r.id())).collect();
        items.sort();
        Ok(items)
    }

    fn freeze(&mut self, proof: &EquivocationProof, _now: Timestamp) -> Result<bool, Self::Error> {
        Ok(self.freeze_origin(proof))
    }

    fn proof(&self, origin: Origin) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.frozen.get(&origin).map(EquivocationProof::encode))
    }
}

impl MemoryStore {
    fn put_record(&mut self, record: Verified<Record>) -> Put {
        if self.frozen.contains_key(&record.origin) {
            return Put::Frozen;
        }
        let slot: Slot = (record.origin, record.kind, record.key.clone());
        let stored = self.slots.get(&slot).map(|r| (r.version, r.id()));
        let withdrawn = self.withdrawn.contains(&(record.origin, record.key.clone()));
        match slot::decide(stored, withdrawn, &record) {
            SlotDecision::Equivocation => {
                let proof = EquivocationProof::detect(&self.slots[&slot], &record).expect("same slot, other id");
                self.freeze_origin(&proof);
                Put::Equivocation(Box::new(proof))
            }
            decision if decision.stores() => {
                let mut gone = Vec::new();
                let mut take = |store: &mut MemoryStore, slot: &Slot| {
                    if let Some(old) = store.slots.remove(slot) {
                        store.by_id.remove(&old.id());
                        gone.push((old.time.ms() as u64, old.id()));
                    }
                };
                take(self, &slot);
                if record.kind == Kind::Withdrawal {
                    self.withdrawn.insert((record.origin, record.key.clone()));
                    for kind in [Kind::Listing, Kind::Ari] {
                        take(self, &(record.origin, kind, record.key.clone()));
                    }
                }
                self.by_id.insert(record.id(), slot.clone());
                self.slots.insert(slot, record);
                Put::New { gone }
            }
            _ => Put::Old,
        }
    }

    fn freeze_origin(&mut self, proof: &EquivocationProof) -> bool {
        let origin = proof.origin();
        if self.frozen.contains_key(&origin) {
            return false;
        }
        self.frozen.insert(origin, proof.clone());
        let gone: Vec<Slot> = self.slots.keys().filter(|(o, _, _)| *o == origin).cloned().collect();
        for slot in gone {
            let record = self.slots.remove(&slot).expect("listed");
            self.by_id.remove(&record.id());
        }
        true
    }
}
