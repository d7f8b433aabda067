//! The record store: the newest verified record per `(origin, kind, key)`,
//! in a fjall database (an LSM tree) of its own, `records/` in the data
//! directory. Why fjall and not SQLite: ARCHITECTURE.md, "The record store".
//!
//! Rules, in the order [`Tx::put`] applies them:
//! 1. records of a frozen origin (one with an equivocation proof) are refused;
//! 2. a withdrawal is terminal: listing and ARI records for a withdrawn key
//!    are refused, and storing a withdrawal deletes them;
//! 3. a higher version replaces, an equal version with the same id is a
//!    duplicate, a lower version is stale;
//! 4. an equal version with a different id is an equivocation: the proof is
//!    stored, the origin frozen and its records deleted.
//!
//! Keyspaces (each its own LSM tree; a transaction spans them all):
//! - `slots`: `origin ‖ key length (u16) ‖ key ‖ kind` → `version ‖ time ‖ id ‖ signed`;
//! - `by_time`: `time ‖ id` → nothing: what set reconciliation walks;
//! - `by_id`: `id` → slot key: what peers fetch by;
//! - `frozen`: `origin` → `detected_ms ‖ proof`;
//! - `meta`: the mark (see [`Tx::bump_mark`]).
//!
//! Integers are big-endian, so keys sort as their numbers do.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use caravan_model::Timestamp;
use caravan_records::slot::{self, SlotDecision};
use caravan_records::{decode_signed, verify, EquivocationProof, Kind, Origin, Record, RecordId, Verified};
use fjall::{KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace};

use crate::{StoreError, Sync};

/// The record store's directory inside a node's data directory.
pub const RECORDS_DIR: &str = "records";

/// fjall's block cache, shared by every reader. Point reads of a slot at
/// 10 M records took 240 µs with its 32 MiB default and 11.6 µs with this
/// (BENCHMARKS.md, "Record stores compared").
const CACHE_BYTES: u64 = 256 << 20;

/// The journal's bound: past it, fjall writes the memtables out to tables.
/// Its 512 MiB default let up to that much wait in memory and be replayed
/// at every start (0.6 s for 100,000 records); 64 MiB is fjall's floor.
const JOURNAL_BYTES_MAX: u64 = 64 << 20;

/// The slot value's fixed part: version, time, id.
const SLOT_HEAD: usize = 8 + 8 + 32;

const MARK: &[u8] = b"mark";

/// What `put` did with a record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PutOutcome {
    /// First record in its slot. `gone`: for a withdrawal, the `(time, id)`
    /// of the key's records it deleted.
    Inserted { gone: Vec<(u64, RecordId)> },
    /// Replaced an older version; `gone` holds its `(time, id)` (and, for a
    /// withdrawal, those of the key's records it deleted).
    Replaced { previous_version: u64, gone: Vec<(u64, RecordId)> },
    /// This very record was already stored.
    Duplicate,
    /// A newer version is already stored.
    Stale { stored_version: u64 },
    /// The key was withdrawn; nothing more is accepted for it.
    Withdrawn,
    /// The origin is frozen.
    Frozen,
    /// The record conflicts with the stored one: the origin is now frozen.
    Equivocation(Box<EquivocationProof>),
}

impl PutOutcome {
    /// Whether the record is now the newest in its slot (and should reach
    /// the catalog and be forwarded).
    pub fn is_new(&self) -> bool {
        matches!(self, PutOutcome::Inserted { .. } | PutOutcome::Replaced { .. })
    }
}

/// A stored record, as read back.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Stored {
    pub origin: Origin,
    pub kind: Kind,
    pub key: String,
    pub version: u64,
    pub time_ms: i64,
    pub id: RecordId,
    /// The encoded `SignedRecord`.
    pub signed: Vec<u8>,
}

/// The record store; cheap to clone (every clone is the same store).
/// One thread writes, through [`Records::write`]; any number read.
#[derive(Clone)]
pub struct Records {
    db: SingleWriterTxDatabase,
    slots: SingleWriterTxKeyspace,
    by_time: SingleWriterTxKeyspace,
    by_id: SingleWriterTxKeyspace,
    frozen: SingleWriterTxKeyspace,
    meta: SingleWriterTxKeyspace,
    /// A fault drill: while set, every commit fails as a full disk would.
    failing: Arc<AtomicBool>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Records {
    /// Opens (creating if needed) the record store in `dir`. One process
    /// at a time: fjall locks the directory.
    pub fn open(dir: &Path) -> Result<Records, StoreError> {
        let db = SingleWriterTxDatabase::builder(dir)
            .cache_size(CACHE_BYTES)
            .max_journaling_size(JOURNAL_BYTES_MAX)
            .open()?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Records {
            slots: keyspace("slots")?,
            by_time: keyspace("by_time")?,
            by_id: keyspace("by_id")?,
            frozen: keyspace("frozen")?,
            meta: keyspace("meta")?,
            db,
            failing: Arc::default(),
        })
    }

    /// Starts the writer's transaction: it reads its own writes, and
    /// nothing of it is seen or kept until [`Tx::commit`]. Dropping it
    /// rolls back. Transactions take turns.
    pub fn write(&self, sync: Sync) -> Tx<'_> {
        let durability = match sync {
            Sync::Full => PersistMode::SyncAll,
            // Written to the OS at commit: a crashed process loses
            // nothing, a power cut may lose the last commits whole.
            Sync::Relaxed => PersistMode::Buffer,
        };
        Tx { store: self, tx: self.db.write_tx().durability(Some(durability)) }
    }

    /// Makes every commit fail (or work again), as a full or broken disk
    /// would: what the node does then is tested, and drilled.
    pub fn fail_writes(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// The encoded `SignedRecord` with this id, if stored.
    pub fn signed_by_id(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        signed_by_id(self, &self.db.read_tx(), id)
    }

    /// The encoded newest records of `key` at `origin` of the kinds
    /// `kinds` (say, the listing and its availability), one per kind.
    pub fn signed_of_key(&self, origin: Origin, key: &str, kinds: &[Kind]) -> Result<Vec<(Kind, Vec<u8>)>, StoreError> {
        let read = self.db.read_tx();
        let mut found = Vec::new();
        for &kind in kinds {
            if let Some(value) = read.get(&self.slots, slot_key(origin, key, kind))? {
                found.push((kind, signed_part(&value)?.to_vec()));
            }
        }
        Ok(found)
    }

    /// Every stored record as `(time_ms, id)`, in that order: what set
    /// reconciliation compares.
    pub fn items(&self) -> Result<Vec<(u64, RecordId)>, StoreError> {
        items(self, &self.db.read_tx())
    }

    pub fn count(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.db.read_tx().iter(&self.by_time) {
            item.key()?;
            count += 1;
        }
        Ok(count)
    }

    pub fn is_frozen(&self, origin: Origin) -> Result<bool, StoreError> {
        Ok(self.db.read_tx().contains_key(&self.frozen, origin.0)?)
    }

    /// The encoded proof that froze `origin`, if it is frozen.
    pub fn proof(&self, origin: Origin) -> Result<Option<Vec<u8>>, StoreError> {
        proof(self, &self.db.read_tx(), origin)
    }

    /// The frozen origins with their encoded proofs, by origin.
    pub fn equivocations(&self) -> Result<Vec<(Origin, Vec<u8>)>, StoreError> {
        Ok(self.frozen_rows()?.into_iter().map(|(origin, _, proof)| (origin, proof)).collect())
    }

    /// The frozen origins and when each was frozen here, newest first.
    pub fn frozen_origins(&self) -> Result<Vec<(Origin, Timestamp)>, StoreError> {
        let mut frozen: Vec<_> = self.frozen_rows()?.into_iter().map(|(origin, at, _)| (origin, at)).collect();
        frozen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(frozen)
    }

    fn frozen_rows(&self) -> Result<Vec<(Origin, Timestamp, Vec<u8>)>, StoreError> {
        let mut rows = Vec::new();
        for item in self.db.read_tx().iter(&self.frozen) {
            let (origin, value) = item.into_inner()?;
            let (at, proof) = split_frozen(&value)?;
            rows.push((Origin(to_array(&origin, "origin")?), at, proof.to_vec()));
        }
        Ok(rows)
    }

    /// Records held per origin, with the newest record's signing time: the
    /// `limit` origins with the most records. Walks the id index once, so
    /// it is an operator's query, not one to run per request.
    pub fn per_origin(&self, limit: u32) -> Result<Vec<(Origin, u64, Timestamp)>, StoreError> {
        let read = self.db.read_tx();
        let mut counts: std::collections::HashMap<[u8; 32], u64> = std::collections::HashMap::new();
        for item in read.iter(&self.by_id) {
            let slot = item.value()?;
            *counts.entry(to_array(slot.get(..32).unwrap_or_default(), "origin")?).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts.truncate(limit as usize);
        counts
            .into_iter()
            .map(|(origin, count)| {
                let mut newest = i64::MIN;
                for item in read.prefix(&self.slots, origin) {
                    newest = newest.max(SlotHead::parse(&item.value()?)?.time_ms);
                }
                Ok((Origin(origin), count, Timestamp(newest)))
            })
            .collect()
    }

    /// One origin's records with a version above `after_version`, oldest
    /// first (by version, kind, key). Walks the origin's records.
    pub fn by_origin(&self, origin: Origin, after_version: u64, limit: u32) -> Result<Vec<Stored>, StoreError> {
        let mut found = Vec::new();
        for item in self.db.read_tx().prefix(&self.slots, origin.0) {
            let (key, value) = item.into_inner()?;
            let stored = parse_stored(&key, &value)?;
            if stored.version > after_version {
                found.push(stored);
            }
        }
        found.sort_by(|a, b| (a.version, a.kind as i32, &a.key).cmp(&(b.version, b.kind as i32, &b.key)));
        found.truncate(limit as usize);
        Ok(found)
    }

    /// Calls `visit` on every stored record, in slot order.
    pub fn for_each(&self, mut visit: impl FnMut(Stored) -> Result<(), StoreError>) -> Result<(), StoreError> {
        for item in self.db.read_tx().iter(&self.slots) {
            let (key, value) = item.into_inner()?;
            visit(parse_stored(&key, &value)?)?;
        }
        Ok(())
    }

    /// How many transactions changed the records: what a catalog snapshot
    /// must have been taken at to be in step.
    pub fn mark(&self) -> Result<u64, StoreError> {
        mark(self, &self.db.read_tx())
    }

    /// Waits until every commit so far is on disk.
    pub fn persist(&self) -> Result<(), StoreError> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    /// Bytes the store takes on disk.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.disk_space()?)
    }
}

/// The writer's transaction on the record store; see [`Records::write`].
pub struct Tx<'r> {
    store: &'r Records,
    tx: fjall::SingleWriterWriteTx<'r>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl Tx<'_> {
    /// Stores `record` if it is now the newest in its slot, by the rules
    /// in the module doc, and says what it did. `now` is only used to
    /// re-verify a stored record that conflicts with this one.
    pub fn put(&mut self, record: &Verified<Record>, now: Timestamp) -> Result<PutOutcome, StoreError> {
        let s = self.store;
        if self.tx.contains_key(&s.frozen, record.origin.0)? {
            return Ok(PutOutcome::Frozen);
        }
        let slot = slot_key(record.origin, &record.key, record.kind);
        let stored = self.tx.get(&s.slots, &slot)?;
        let head = stored.as_deref().map(SlotHead::parse).transpose()?;
        let withdrawn = match record.kind {
            Kind::Withdrawal => head.is_some(),
            _ => self.tx.contains_key(&s.slots, slot_key(record.origin, &record.key, Kind::Withdrawal))?,
        };
        let mut outcome = match slot::decide(head.map(|h| (h.version, h.id)), withdrawn, record) {
            SlotDecision::Stale { stored_version } => return Ok(PutOutcome::Stale { stored_version }),
            SlotDecision::Duplicate => return Ok(PutOutcome::Duplicate),
            SlotDecision::Withdrawn => return Ok(PutOutcome::Withdrawn),
            SlotDecision::Equivocation => {
                let stored = read_back(signed_part(stored.as_deref().unwrap_or_default())?, now)?;
                let proof = EquivocationProof::detect(&stored, record).expect("same slot and version, other id");
                self.freeze(&proof, now)?;
                return Ok(PutOutcome::Equivocation(Box::new(proof)));
            }
            SlotDecision::Replace { previous_version } => {
                let head = head.expect("a replaced slot was stored");
                self.unindex(head.time_ms, &head.id);
                PutOutcome::Replaced { previous_version, gone: vec![(head.time_ms as u64, head.id)] }
            }
            SlotDecision::Insert => PutOutcome::Inserted { gone: Vec::new() },
        };
        self.insert(slot, record.version, record.time.ms(), record.id(), &record.encode());
        if record.kind == Kind::Withdrawal {
            let mut prefix = slot_key(record.origin, &record.key, Kind::Withdrawal);
            prefix.pop();
            for (key, head) in self.slots_under(&prefix)? {
                if key.last() == Some(&(Kind::Withdrawal as u8)) {
                    continue;
                }
                self.delete(key, &head);
                if let PutOutcome::Inserted { gone } | PutOutcome::Replaced { gone, .. } = &mut outcome {
                    gone.push((head.time_ms as u64, head.id));
                }
            }
        }
        Ok(outcome)
    }

    /// Stores an equivocation proof (ours or a peer's, verified), freezes
    /// the origin and deletes its records. Returns false if it was frozen
    /// already.
    pub fn freeze(&mut self, proof: &EquivocationProof, now: Timestamp) -> Result<bool, StoreError> {
        let s = self.store;
        let origin = proof.origin();
        let newly = !self.tx.contains_key(&s.frozen, origin.0)?;
        if newly {
            let mut value = now.ms().to_be_bytes().to_vec();
            value.extend_from_slice(&proof.encode());
            self.tx.insert(&s.frozen, origin.0, value);
        }
        for (key, head) in self.slots_under(&origin.0)? {
            self.delete(key, &head);
        }
        Ok(newly)
    }

    /// Notes that this transaction changed the records: the catalog
    /// snapshot taken before it is no longer in step. Once per transaction.
    pub fn bump_mark(&mut self) -> Result<(), StoreError> {
        let next = mark(self.store, &self.tx)? + 1;
        self.tx.insert(&self.store.meta, MARK, next.to_be_bytes());
        Ok(())
    }

    /// The encoded `SignedRecord` with this id, if stored (or put in this
    /// transaction).
    pub fn signed_by_id(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        signed_by_id(self.store, &self.tx, id)
    }

    /// Every record as `(time_ms, id)`, this transaction's included.
    pub fn items(&self) -> Result<Vec<(u64, RecordId)>, StoreError> {
        items(self.store, &self.tx)
    }

    pub fn proof(&self, origin: Origin) -> Result<Option<Vec<u8>>, StoreError> {
        proof(self.store, &self.tx, origin)
    }

    /// Makes the transaction's writes visible, and durable as its `Sync`
    /// says, all of them or none.
    pub fn commit(self) -> Result<(), StoreError> {
        if self.store.failing.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("the record store refuses writes (fault drill)".into()));
        }
        Ok(self.tx.commit()?)
    }

    fn insert(&mut self, slot: Vec<u8>, version: u64, time_ms: i64, id: RecordId, signed: &[u8]) {
        let s = self.store;
        let mut value = Vec::with_capacity(SLOT_HEAD + signed.len());
        value.extend_from_slice(&version.to_be_bytes());
        value.extend_from_slice(&time_ms.to_be_bytes());
        value.extend_from_slice(&id.0);
        value.extend_from_slice(signed);
        self.tx.insert(&s.by_time, time_key(time_ms, &id), []);
        self.tx.insert(&s.by_id, id.0, slot.clone());
        self.tx.insert(&s.slots, slot, value);
    }

    fn delete(&mut self, slot: Vec<u8>, head: &SlotHead) {
        self.unindex(head.time_ms, &head.id);
        self.tx.remove(&self.store.slots, slot);
    }

    /// Takes a record out of the time and id indexes.
    fn unindex(&mut self, time_ms: i64, id: &RecordId) {
        self.tx.remove(&self.store.by_time, time_key(time_ms, id));
        self.tx.remove(&self.store.by_id, id.0);
    }

    /// The slots whose key starts with `prefix`, with their heads.
    fn slots_under(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, SlotHead)>, StoreError> {
        let mut found = Vec::new();
        for item in self.tx.prefix(&self.store.slots, prefix) {
            let (key, value) = item.into_inner()?;
            found.push((key.to_vec(), SlotHead::parse(&value)?));
        }
        Ok(found)
    }
}

/// Moves the records a node kept in its SQLite database (before the
/// record store was its own) into `records`, then drops those tables.
/// Safe to stop at any point: what was moved is moved again as is.
pub fn move_from_sqlite(conn: &mut rusqlite::Connection, records: &Records) -> Result<u64, StoreError> {
    /// Records per transaction: a transaction is held in memory whole.
    const MOVE_BATCH: u64 = 10_000;
    let sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'";
    if !conn.prepare(sql)?.exists([])? {
        return Ok(0);
    }
    let mut moved = 0;
    {
        let mut tx = records.write(Sync::Relaxed);
        let mut rows = conn.prepare("SELECT origin, kind, key, version, time_ms, id, signed FROM records")?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let origin = Origin(to_array(&row.get::<_, Vec<u8>>(0)?, "origin")?);
            let kind = kind_of(row.get::<_, i64>(1)?)?;
            let key: String = row.get(2)?;
            let id = RecordId(to_array(&row.get::<_, Vec<u8>>(5)?, "id")?);
            let signed: Vec<u8> = row.get(6)?;
            tx.insert(slot_key(origin, &key, kind), row.get::<_, i64>(3)? as u64, row.get(4)?, id, &signed);
            moved += 1;
            if moved % MOVE_BATCH == 0 {
                tx.commit()?;
                tx = records.write(Sync::Relaxed);
            }
        }
        let mut frozen = conn.prepare("SELECT origin, proof, detected_ms FROM equivocations")?;
        let mut frozen = frozen.query([])?;
        while let Some(row) = frozen.next()? {
            let origin: [u8; 32] = to_array(&row.get::<_, Vec<u8>>(0)?, "origin")?;
            let mut value = row.get::<_, i64>(2)?.to_be_bytes().to_vec();
            value.extend_from_slice(&row.get::<_, Vec<u8>>(1)?);
            tx.tx.insert(&records.frozen, origin, value);
        }
        // The catalog snapshot names the mark it is in step with.
        let mark: i64 = conn.query_row("SELECT commits FROM records_mark", [], |row| row.get(0))?;
        tx.tx.insert(&records.meta, MARK, (mark as u64).to_be_bytes());
        tx.commit()?;
    }
    records.persist()?;
    let tx = conn.transaction()?;
    tx.execute_batch("DROP TABLE records; DROP TABLE equivocations; DROP TABLE records_mark;")?;
    tx.commit()?;
    Ok(moved)
}

/// Re-verifies a stored record: the pair of the check made before storing.
pub fn read_back(signed: &[u8], now: Timestamp) -> Result<Verified<Record>, StoreError> {
    let decoded = decode_signed(signed).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // Stored records were checked against an earlier clock; a later one
    // can only be further ahead of them.
    verify(decoded, now).map_err(|e| StoreError::Corrupt(format!("stored record fails verification: {e}")))
}

/// Decodes a stored record without checking its signature again: it was
/// verified before it was stored (see `put`), and the catalog is rebuilt
/// from every stored record, where verifying again would cost ~10× more.
pub fn decode(signed: &[u8], now: Timestamp) -> Result<Record, StoreError> {
    let decoded = decode_signed(signed).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    caravan_records::decode_stored(decoded, now)
        .map_err(|e| StoreError::Corrupt(format!("stored record does not decode: {e}")))
}

fn signed_by_id(s: &Records, read: &impl Readable, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(slot) = read.get(&s.by_id, id.0)? else { return Ok(None) };
    match read.get(&s.slots, slot)? {
        Some(value) => Ok(Some(signed_part(&value)?.to_vec())),
        None => Ok(None),
    }
}

fn items(s: &Records, read: &impl Readable) -> Result<Vec<(u64, RecordId)>, StoreError> {
    let mut items = Vec::new();
    for item in read.iter(&s.by_time) {
        let key = item.key()?;
        let (time, id) = key.split_at_checked(8).ok_or_else(|| StoreError::Corrupt("time key".into()))?;
        items.push((u64::from_be_bytes(time.try_into().expect("8 bytes")), RecordId(to_array(id, "id")?)));
    }
    Ok(items)
}

fn proof(s: &Records, read: &impl Readable, origin: Origin) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(value) = read.get(&s.frozen, origin.0)? else { return Ok(None) };
    Ok(Some(split_frozen(&value)?.1.to_vec()))
}

fn mark(s: &Records, read: &impl Readable) -> Result<u64, StoreError> {
    Ok(match read.get(&s.meta, MARK)? {
        Some(value) => u64::from_be_bytes(to_array(&value, "mark")?),
        None => 0,
    })
}

/// A slot's key: the origin, then the key with its length (so that no key
/// is a prefix of another's slots), then the kind.
fn slot_key(origin: Origin, key: &str, kind: Kind) -> Vec<u8> {
    let mut slot = Vec::with_capacity(32 + 2 + key.len() + 1);
    slot.extend_from_slice(&origin.0);
    // Keys are at most `KEY_BYTES_MAX` bytes (checked when verified).
    slot.extend_from_slice(&(key.len() as u16).to_be_bytes());
    slot.extend_from_slice(key.as_bytes());
    slot.push(kind as u8);
    slot
}

fn time_key(time_ms: i64, id: &RecordId) -> [u8; 40] {
    let mut key = [0; 40];
    key[..8].copy_from_slice(&(time_ms as u64).to_be_bytes());
    key[8..].copy_from_slice(&id.0);
    key
}

/// The fixed part of a slot's value.
#[derive(Clone, Copy, Debug)]
struct SlotHead {
    version: u64,
    time_ms: i64,
    id: RecordId,
}

impl SlotHead {
    fn parse(value: &[u8]) -> Result<SlotHead, StoreError> {
        let head = value.get(..SLOT_HEAD).ok_or_else(|| StoreError::Corrupt("slot value too short".into()))?;
        Ok(SlotHead {
            version: u64::from_be_bytes(head[..8].try_into().expect("8 bytes")),
            time_ms: i64::from_be_bytes(head[8..16].try_into().expect("8 bytes")),
            id: RecordId(to_array(&head[16..], "id")?),
        })
    }
}

/// The signed record in a slot's value.
fn signed_part(value: &[u8]) -> Result<&[u8], StoreError> {
    value.get(SLOT_HEAD..).ok_or_else(|| StoreError::Corrupt("slot value too short".into()))
}

fn parse_stored(key: &[u8], value: &[u8]) -> Result<Stored, StoreError> {
    let corrupt = || StoreError::Corrupt("slot key".into());
    let (origin, rest) = key.split_at_checked(32).ok_or_else(corrupt)?;
    let (length, rest) = rest.split_at_checked(2).ok_or_else(corrupt)?;
    let length = u16::from_be_bytes(length.try_into().expect("2 bytes")) as usize;
    let (name, kind) = rest.split_at_checked(length).ok_or_else(corrupt)?;
    let [kind] = kind else { return Err(corrupt()) };
    let head = SlotHead::parse(value)?;
    Ok(Stored {
        origin: Origin(to_array(origin, "origin")?),
        kind: kind_of(i64::from(*kind))?,
        key: String::from_utf8(name.to_vec()).map_err(|_| StoreError::Corrupt("slot key is not UTF-8".into()))?,
        version: head.version,
        time_ms: head.time_ms,
        id: head.id,
        signed: signed_part(value)?.to_vec(),
    })
}

fn split_frozen(value: &[u8]) -> Result<(Timestamp, &[u8]), StoreError> {
    let (at, proof) = value.split_at_checked(8).ok_or_else(|| StoreError::Corrupt("frozen origin".into()))?;
    Ok((Timestamp(i64::from_be_bytes(at.try_into().expect("8 bytes"))), proof))
}

fn kind_of(kind: i64) -> Result<Kind, StoreError> {
    Kind::from_i32(kind as i32).ok_or_else(|| StoreError::Corrupt(format!("kind {kind}")))
}

fn to_array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes", bytes.len())))
}
