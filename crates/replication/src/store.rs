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
    /// Now the newest in its slot.
    New,
    /// Already held, older than what is held, or for a withdrawn key.
    Old,
    /// Its origin is frozen.
    Frozen,
    /// It conflicts with the stored record: the origin is now frozen.
    Equivocation(Box<EquivocationProof>),
}

pub trait RecordStore {
    fn put(&mut self, record: Verified<Record>, now: Timestamp) -> Put;
    fn get(&self, id: &RecordId) -> Option<Verified<Record>>;
    /// Every stored record as `(time_ms, id)`, ascending: the set that
    /// reconciliation compares.
    fn items(&self) -> Vec<(u64, RecordId)>;
    /// Freezes the proof's origin and drops its records; false if it was
    /// frozen already.
    fn freeze(&mut self, proof: &EquivocationProof) -> bool;
    /// The proof that froze `origin`, if any.
    fn proof(&self, origin: Origin) -> Option<EquivocationProof>;
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
    pub fn records(&self) -> impl Iterator<Item = &Verified<Record>> {
        self.slots.values()
    }

    pub fn frozen(&self) -> impl Iterator<Item = &Origin> {
        self.frozen.keys()
    }
}

impl RecordStore for MemoryStore {
    fn put(&mut self, record: Verified<Record>, _now: Timestamp) -> Put {
        if self.frozen.contains_key(&record.origin) {
            return Put::Frozen;
        }
        let slot: Slot = (record.origin, record.kind, record.key.clone());
        let stored = self.slots.get(&slot).map(|r| (r.version, r.id()));
        let withdrawn = self.withdrawn.contains(&(record.origin, record.key.clone()));
        match slot::decide(stored, withdrawn, &record) {
            SlotDecision::Equivocation => {
                let proof = EquivocationProof::detect(&self.slots[&slot], &record).expect("same slot, other id");
                self.freeze(&proof);
                Put::Equivocation(Box::new(proof))
            }
            decision if decision.stores() => {
                if let Some(old) = self.slots.remove(&slot) {
                    self.by_id.remove(&old.id());
                }
                if record.kind == Kind::Withdrawal {
                    self.withdrawn.insert((record.origin, record.key.clone()));
                    for kind in [Kind::Listing, Kind::Ari] {
                        if let Some(gone) = self.slots.remove(&(record.origin, kind, record.key.clone())) {
                            self.by_id.remove(&gone.id());
                        }
                    }
                }
                self.by_id.insert(record.id(), slot.clone());
                self.slots.insert(slot, record);
                Put::New
            }
            _ => Put::Old,
        }
    }

    fn get(&self, id: &RecordId) -> Option<Verified<Record>> {
        self.by_id.get(id).map(|slot| self.slots[slot].clone())
    }

    fn items(&self) -> Vec<(u64, RecordId)> {
        let mut items: Vec<(u64, RecordId)> = self.slots.values().map(|r| (r.time.ms() as u64, r.id())).collect();
        items.sort();
        items
    }

    fn freeze(&mut self, proof: &EquivocationProof) -> bool {
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

    fn proof(&self, origin: Origin) -> Option<EquivocationProof> {
        self.frozen.get(&origin).cloned()
    }
}
