//! The records table: the newest verified record per `(origin, kind, key)`.
//!
//! Rules, in the order `put` applies them:
//! 1. records of a frozen origin (one with an equivocation proof) are refused;
//! 2. a withdrawal is terminal: listing and ARI records for a withdrawn key
//!    are refused, and storing a withdrawal deletes them;
//! 3. a higher version replaces, an equal version with the same id is a
//!    duplicate, a lower version is stale;
//! 4. an equal version with a different id is an equivocation: the proof is
//!    stored, the origin frozen and its records deleted.

use caravan_model::Timestamp;
use caravan_records::slot::{self, SlotDecision};
use caravan_records::{decode_signed, verify, EquivocationProof, Kind, Origin, Record, RecordId, Verified};
use rusqlite::{params, Connection};

use crate::StoreError;

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

/// Stores `record` if it is now the newest in its slot, by the rules in the
/// module doc, and says what it did. `now` is only used to re-verify a
/// stored record that conflicts with this one.
pub fn put(conn: &Connection, record: &Verified<Record>, now: Timestamp) -> Result<PutOutcome, StoreError> {
    if is_frozen(conn, record.origin)? {
        return Ok(PutOutcome::Frozen);
    }
    let origin = &record.origin.0[..];
    // One look at the slot and at the key's withdrawal, through the slot index.
    // The record in the slot: (version, time, id).
    let mut stored = None;
    let mut withdrawn = false;
    let mut stmt = conn.prepare_cached(
        "SELECT kind, version, id, time_ms FROM records WHERE origin = ?1 AND key = ?2 AND kind IN (?3, ?4)",
    )?;
    let mut rows = stmt.query(params![origin, record.key, record.kind as i64, Kind::Withdrawal as i64])?;
    while let Some(row) = rows.next()? {
        let kind: i64 = row.get(0)?;
        if kind == record.kind as i64 {
            let id = RecordId(to_array(&row.get::<_, Vec<u8>>(2)?, "id")?);
            stored = Some((row.get::<_, i64>(1)? as u64, row.get::<_, i64>(3)? as u64, id));
        }
        withdrawn |= kind == Kind::Withdrawal as i64;
    }
    let stored_version = stored.map(|(version, _, id)| (version, id));
    let mut outcome = match slot::decide(stored_version, withdrawn, record) {
        SlotDecision::Stale { stored_version } => return Ok(PutOutcome::Stale { stored_version }),
        SlotDecision::Duplicate => return Ok(PutOutcome::Duplicate),
        SlotDecision::Withdrawn => return Ok(PutOutcome::Withdrawn),
        SlotDecision::Equivocation => {
            let signed: Vec<u8> = conn
                .prepare_cached("SELECT signed FROM records WHERE origin = ?1 AND kind = ?2 AND key = ?3")?
                .query_row(params![origin, record.kind as i64, record.key], |row| row.get(0))?;
            let stored = read_back(&signed, now)?;
            let proof = EquivocationProof::detect(&stored, record).expect("same slot and version, other id");
            freeze(conn, &proof, now)?;
            return Ok(PutOutcome::Equivocation(Box::new(proof)));
        }
        SlotDecision::Replace { previous_version } => PutOutcome::Replaced {
            previous_version,
            gone: stored.map(|(_, time, id)| (time, id)).into_iter().collect(),
        },
        SlotDecision::Insert => PutOutcome::Inserted { gone: Vec::new() },
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO records (origin, kind, key, version, time_ms, id, signed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        origin,
        record.kind as i64,
        record.key,
        record.version as i64,
        record.time.ms(),
        &record.id().0[..],
        record.encode()
    ])?;
    if record.kind == Kind::Withdrawal {
        let mut deleted = conn.prepare_cached(
            "DELETE FROM records WHERE origin = ?1 AND key = ?2 AND kind != ?3 RETURNING time_ms, id",
        )?;
        let mut rows = deleted.query(params![origin, record.key, Kind::Withdrawal as i64])?;
        while let Some(row) = rows.next()? {
            let item = (row.get::<_, i64>(0)? as u64, RecordId(to_array(&row.get::<_, Vec<u8>>(1)?, "id")?));
            if let PutOutcome::Inserted { gone } | PutOutcome::Replaced { gone, .. } = &mut outcome {
                gone.push(item);
            }
        }
    }
    Ok(outcome)
}

pub fn is_frozen(conn: &Connection, origin: Origin) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM equivocations WHERE origin = ?1")?;
    Ok(stmt.exists([&origin.0[..]])?)
}

/// Stores an equivocation proof (ours or a peer's, verified), freezes the
/// origin and deletes its records. Returns false if it was frozen already.
pub fn freeze(conn: &Connection, proof: &EquivocationProof, now: Timestamp) -> Result<bool, StoreError> {
    let origin = &proof.origin().0[..];
    let inserted = conn
        .prepare_cached("INSERT OR IGNORE INTO equivocations (origin, proof, detected_ms) VALUES (?1, ?2, ?3)")?
        .execute(params![origin, proof.encode(), now.ms()])?;
    conn.prepare_cached("DELETE FROM records WHERE origin = ?1")?.execute([origin])?;
    Ok(inserted == 1)
}

/// The frozen origins with their encoded proofs.
pub fn equivocations(conn: &Connection) -> Result<Vec<(Origin, Vec<u8>)>, StoreError> {
    let mut stmt = conn.prepare("SELECT origin, proof FROM equivocations ORDER BY origin")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
    rows.map(|row| {
        let (origin, proof) = row?;
        Ok((Origin(to_array(&origin, "origin")?), proof))
    })
    .collect()
}

/// The frozen origins and when each was frozen here, newest first.
pub fn frozen_origins(conn: &Connection) -> Result<Vec<(Origin, Timestamp)>, StoreError> {
    let mut stmt = conn.prepare("SELECT origin, detected_ms FROM equivocations ORDER BY detected_ms DESC")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)))?;
    rows.map(|row| {
        let (origin, at) = row?;
        Ok((Origin(to_array(&origin, "origin")?), Timestamp(at)))
    })
    .collect()
}

/// Records held per origin, with the newest record's signing time: the
/// `limit` origins with the most records. Walks the slot index once, so
/// it is an operator's query, not one to run per request.
pub fn per_origin(conn: &Connection, limit: u32) -> Result<Vec<(Origin, u64, Timestamp)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT origin, COUNT(*) AS n, MAX(time_ms) FROM records GROUP BY origin ORDER BY n DESC, origin LIMIT ?1",
    )?;
    let rows =
        stmt.query_map([limit], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)))?;
    rows.map(|row| {
        let (origin, count, newest) = row?;
        Ok((Origin(to_array(&origin, "origin")?), count as u64, Timestamp(newest)))
    })
    .collect()
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

/// The encoded `SignedRecord` with this id, if stored.
pub fn signed_by_id(conn: &Connection, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT signed FROM records WHERE id = ?1")?;
    let mut rows = stmt.query([&id.0[..]])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

/// The encoded newest records of `key` at `origin`, one per kind (the
/// listing and its availability, or a withdrawal), through the slot index.
pub fn signed_of_key(conn: &Connection, origin: Origin, key: &str) -> Result<Vec<(Kind, Vec<u8>)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT kind, signed FROM records WHERE origin = ?1 AND key = ?2")?;
    let rows = stmt.query_map(params![&origin.0[..], key], |row| Ok((row.get::<_, i64>(0)?, row.get(1)?)))?;
    rows.map(|row| {
        let (kind, signed) = row?;
        let kind = Kind::from_i32(kind as i32).ok_or_else(|| StoreError::Corrupt(format!("kind {kind}")))?;
        Ok((kind, signed))
    })
    .collect()
}

/// Every stored record as `(time_ms, id)`, in that order: what set
/// reconciliation compares.
pub fn items(conn: &Connection) -> Result<Vec<(u64, RecordId)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT time_ms, id FROM records ORDER BY time_ms, id")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
    rows.map(|row| {
        let (time_ms, id) = row?;
        Ok((time_ms as u64, RecordId(to_array(&id, "id")?)))
    })
    .collect()
}

/// The encoded proof that froze `origin`, if it is frozen.
pub fn proof(conn: &Connection, origin: Origin) -> Result<Option<Vec<u8>>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT proof FROM equivocations WHERE origin = ?1")?;
    let mut rows = stmt.query([&origin.0[..]])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

/// One origin's records with a version above `after_version`, oldest first.
pub fn by_origin(conn: &Connection, origin: Origin, after_version: u64, limit: u32) -> Result<Vec<Stored>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT origin, kind, key, version, time_ms, id, signed FROM records
         WHERE origin = ?1 AND version > ?2 ORDER BY version, kind, key LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![&origin.0[..], after_version as i64, limit], stored_from_row)?;
    rows.map(|row| row?).collect()
}

/// Calls `visit` on every stored record, in slot order.
pub fn for_each(conn: &Connection, mut visit: impl FnMut(Stored) -> Result<(), StoreError>) -> Result<(), StoreError> {
    let mut stmt =
        conn.prepare("SELECT origin, kind, key, version, time_ms, id, signed FROM records ORDER BY origin, key, kind")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        visit(stored_from_row(row)??)?;
    }
    Ok(())
}

/// Notes that this transaction changed the records: the catalog snapshot
/// taken before it is no longer in step. Once per transaction.
pub fn bump_mark(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE records_mark SET commits = commits + 1")?.execute([])?;
    Ok(())
}

/// How many transactions changed the records: what a catalog snapshot
/// must have been taken at to be in step.
pub fn mark(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT commits FROM records_mark", [], |row| row.get::<_, i64>(0))? as u64)
}

pub fn count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM records", [], |row| row.get::<_, i64>(0))? as u64)
}

fn stored_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Stored, StoreError>> {
    let origin: Vec<u8> = row.get(0)?;
    let kind: i64 = row.get(1)?;
    let id: Vec<u8> = row.get(5)?;
    let parsed = (|| {
        Ok(Stored {
            origin: Origin(to_array(&origin, "origin")?),
            kind: Kind::from_i32(kind as i32).ok_or_else(|| StoreError::Corrupt(format!("kind {kind}")))?,
            key: row.get(2)?,
            version: row.get::<_, i64>(3)? as u64,
            time_ms: row.get(4)?,
            id: RecordId(to_array(&id, "id")?),
            signed: row.get(6)?,
        })
    })();
    Ok(parsed)
}

fn to_array(bytes: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes", bytes.len())))
}
