//! The candidates, each over the same three key spaces:
//!
//! - slots: origin ‖ kind ‖ key → version ‖ time ‖ id ‖ signed record
//! - by time: time (big-endian) ‖ id → nothing, for reconciliation scans
//! - by id: id → slot, for fetches
//!
//! SQLite keeps today's schema (one rowid table and three indexes) and the
//! writer's settings; the key-value engines keep the three spaces as
//! tables. Every batch is one transaction, durable when `put_batch` returns.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use crate::workload::Row;

pub trait Engine {
    /// Stores each row unless its slot holds a version as new; replaces
    /// the slot's older record (and its index entries) otherwise.
    fn put_batch(&mut self, rows: &[Row]) -> anyhow::Result<()>;
    /// Lets background work settle before the reads are measured.
    fn settle(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn get_slot(&self, slot: &[u8]) -> anyhow::Result<Option<Vec<u8>>>;
    /// Walks up to `limit` `(time, id)` items from `from_ms` on; returns how many.
    fn scan_by_time(&self, from_ms: u64, limit: usize) -> anyhow::Result<usize>;
    fn count_slots(&self) -> anyhow::Result<u64>;
}

/// `fjall_cache_mib`: fjall's block cache, if not its default (32 MiB).
pub fn open(name: &str, dir: &Path, fjall_cache_mib: Option<u64>) -> anyhow::Result<Box<dyn Engine>> {
    Ok(match name {
        "sqlite" => Box::new(Sqlite::open(dir)?),
        "lmdb" => Box::new(Lmdb::open(dir)?),
        "fjall" => Box::new(Fjall::open(dir, fjall_cache_mib)?),
        "redb" => Box::new(Redb::open(dir)?),
        other => anyhow::bail!("--engine {other:?}: sqlite, lmdb, fjall or redb"),
    })
}

fn slot_value(row: &Row) -> Vec<u8> {
    let mut value = Vec::with_capacity(48 + row.signed.len());
    value.extend_from_slice(&row.version.to_be_bytes());
    value.extend_from_slice(&row.time_ms.to_be_bytes());
    value.extend_from_slice(&row.id);
    value.extend_from_slice(&row.signed);
    value
}

/// The version, time and id at the head of a slot's value.
fn slot_head(value: &[u8]) -> (u64, [u8; 40]) {
    let version = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
    (version, value[8..48].try_into().expect("40 bytes"))
}

fn time_key(time_ms: u64, id: &[u8; 32]) -> [u8; 40] {
    let mut key = [0; 40];
    key[..8].copy_from_slice(&time_ms.to_be_bytes());
    key[8..].copy_from_slice(id);
    key
}

/// What storing `row` does, from what its slot held: nothing (`None`, the
/// slot holds a version as new), or a write that first drops the index
/// entries of the replaced record's `time ‖ id`, if any.
fn plan(row: &Row, stored: Option<&[u8]>) -> Option<Option<[u8; 40]>> {
    if let Some(known) = row.replaces {
        return Some(known);
    }
    match stored.map(slot_head) {
        Some((version, _)) if version >= row.version => None,
        Some((_, head)) => Some(Some(head)),
        None => Some(None),
    }
}

#[derive(Debug)]
struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    fn open(dir: &Path) -> anyhow::Result<Sqlite> {
        let conn = rusqlite::Connection::open(dir.join("records.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        conn.pragma_update(None, "cache_size", -256 * 1024)?;
        conn.execute_batch(
            "CREATE TABLE records (
                origin BLOB NOT NULL, kind INTEGER NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
                time_ms INTEGER NOT NULL, id BLOB NOT NULL, signed BLOB NOT NULL);
             CREATE UNIQUE INDEX records_by_slot ON records (origin, key, kind);
             CREATE INDEX records_by_time ON records (time_ms, id);
             CREATE INDEX records_by_id ON records (id);",
        )?;
        Ok(Sqlite { conn })
    }
}

/// The slot key's parts as today's schema stores them.
fn slot_parts(slot: &[u8]) -> (&[u8], i64, &str) {
    (&slot[..32], i64::from(slot[32]), std::str::from_utf8(&slot[33..]).expect("keys are text"))
}

impl Engine for Sqlite {
    fn put_batch(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut look =
                tx.prepare_cached("SELECT version FROM records WHERE origin = ?1 AND key = ?2 AND kind = ?3")?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO records (origin, kind, key, version, time_ms, id, signed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for row in rows {
                let (origin, kind, key) = slot_parts(&row.slot);
                if row.replaces.is_none() {
                    let mut stored = look.query(rusqlite::params![origin, key, kind])?;
                    if let Some(found) = stored.next()? {
                        if found.get::<_, i64>(0)? as u64 >= row.version {
                            continue;
                        }
                    }
                }
                put.execute(rusqlite::params![
                    origin,
                    kind,
                    key,
                    row.version as i64,
                    row.time_ms as i64,
                    &row.id[..],
                    &row.signed
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn settle(&mut self) -> anyhow::Result<()> {
        self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
        Ok(())
    }

    fn get_slot(&self, slot: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let (origin, kind, key) = slot_parts(slot);
        let mut stmt =
            self.conn.prepare_cached("SELECT signed FROM records WHERE origin = ?1 AND key = ?2 AND kind = ?3")?;
        let mut rows = stmt.query(rusqlite::params![origin, key, kind])?;
        Ok(rows.next()?.map(|row| row.get(0)).transpose()?)
    }

    fn scan_by_time(&self, from_ms: u64, limit: usize) -> anyhow::Result<usize> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT time_ms, id FROM records WHERE time_ms >= ?1 ORDER BY time_ms, id LIMIT ?2")?;
        let mut rows = stmt.query(rusqlite::params![from_ms as i64, limit as i64])?;
        let mut seen = 0;
        while let Some(row) = rows.next()? {
            let _item: (i64, Vec<u8>) = (row.get(0)?, row.get(1)?);
            seen += 1;
        }
        Ok(seen)
    }

    fn count_slots(&self) -> anyhow::Result<u64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM records", [], |row| row.get::<_, i64>(0))? as u64)
    }
}

type Bytes = heed::types::Bytes;

#[derive(Debug)]
struct Lmdb {
    env: heed::Env,
    slots: heed::Database<Bytes, Bytes>,
    by_time: heed::Database<Bytes, Bytes>,
    by_id: heed::Database<Bytes, Bytes>,
}

impl Lmdb {
    fn open(dir: &Path) -> anyhow::Result<Lmdb> {
        // SAFETY: this process is the only one that opens the directory,
        // and nothing truncates the file under the map.
        let env = unsafe { heed::EnvOpenOptions::new().map_size(256 << 30).max_dbs(3).open(dir)? };
        let mut tx = env.write_txn()?;
        let slots = env.create_database(&mut tx, Some("slots"))?;
        let by_time = env.create_database(&mut tx, Some("by_time"))?;
        let by_id = env.create_database(&mut tx, Some("by_id"))?;
        tx.commit()?;
        Ok(Lmdb { env, slots, by_time, by_id })
    }
}

impl Engine for Lmdb {
    fn put_batch(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        let mut tx = self.env.write_txn()?;
        for row in rows {
            let stored = match row.replaces {
                Some(_) => None,
                None => self.slots.get(&tx, &row.slot)?.map(<[u8]>::to_vec),
            };
            let Some(replaced) = plan(row, stored.as_deref()) else { continue };
            if let Some(old) = replaced {
                self.by_time.delete(&mut tx, &old)?;
                self.by_id.delete(&mut tx, &old[8..])?;
            }
            self.slots.put(&mut tx, &row.slot, &slot_value(row))?;
            self.by_time.put(&mut tx, &time_key(row.time_ms, &row.id), &[])?;
            self.by_id.put(&mut tx, &row.id, &row.slot)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn get_slot(&self, slot: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let tx = self.env.read_txn()?;
        Ok(self.slots.get(&tx, slot)?.map(|value| value[48..].to_vec()))
    }

    fn scan_by_time(&self, from_ms: u64, limit: usize) -> anyhow::Result<usize> {
        let tx = self.env.read_txn()?;
        let from = time_key(from_ms, &[0; 32]);
        let range = (std::ops::Bound::Included(&from[..]), std::ops::Bound::Unbounded);
        let mut seen = 0;
        for item in self.by_time.range(&tx, &range)?.take(limit) {
            let (_key, _) = item?;
            seen += 1;
        }
        Ok(seen)
    }

    fn count_slots(&self) -> anyhow::Result<u64> {
        let tx = self.env.read_txn()?;
        Ok(self.slots.len(&tx)?)
    }
}

struct Fjall {
    db: fjall::Database,
    slots: fjall::Keyspace,
    by_time: fjall::Keyspace,
    by_id: fjall::Keyspace,
}

impl std::fmt::Debug for Fjall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fjall").finish_non_exhaustive()
    }
}

impl Fjall {
    fn open(dir: &Path, cache_mib: Option<u64>) -> anyhow::Result<Fjall> {
        let mut builder = fjall::Database::builder(dir);
        if let Some(mib) = cache_mib {
            builder = builder.cache_size(mib << 20);
        }
        let db = builder.open()?;
        let options = fjall::KeyspaceCreateOptions::default;
        let slots = db.keyspace("slots", options)?;
        let by_time = db.keyspace("by_time", options)?;
        let by_id = db.keyspace("by_id", options)?;
        Ok(Fjall { db, slots, by_time, by_id })
    }
}

impl Engine for Fjall {
    fn put_batch(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        // A write batch does not read its own writes: slots written earlier
        // in this batch are looked up here first.
        let mut written: HashMap<&[u8], Vec<u8>> = HashMap::new();
        let mut batch = self.db.batch().durability(Some(fjall::PersistMode::SyncAll));
        for row in rows {
            let stored = match (row.replaces, written.get(&row.slot[..])) {
                (Some(_), _) => None,
                (None, Some(value)) => Some(value.clone()),
                (None, None) => self.slots.get(&row.slot)?.map(|v| v.to_vec()),
            };
            let Some(replaced) = plan(row, stored.as_deref()) else { continue };
            if let Some(old) = replaced {
                batch.remove(&self.by_time, old.to_vec());
                batch.remove(&self.by_id, old[8..].to_vec());
            }
            let value = slot_value(row);
            batch.insert(&self.slots, row.slot.clone(), value.clone());
            batch.insert(&self.by_time, time_key(row.time_ms, &row.id).to_vec(), Vec::new());
            batch.insert(&self.by_id, row.id.to_vec(), row.slot.clone());
            written.insert(&row.slot, value);
        }
        batch.commit()?;
        Ok(())
    }

    /// Flushes the memtables to tables, so the journal no longer counts.
    fn settle(&mut self) -> anyhow::Result<()> {
        for keyspace in [&self.slots, &self.by_time, &self.by_id] {
            keyspace.rotate_memtable_and_wait()?;
        }
        Ok(())
    }

    fn get_slot(&self, slot: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.slots.get(slot)?.map(|value| value[48..].to_vec()))
    }

    fn scan_by_time(&self, from_ms: u64, limit: usize) -> anyhow::Result<usize> {
        let from = time_key(from_ms, &[0; 32]).to_vec();
        let mut seen = 0;
        for item in self.by_time.range(from..).take(limit) {
            item.key()?;
            seen += 1;
        }
        Ok(seen)
    }

    fn count_slots(&self) -> anyhow::Result<u64> {
        let mut count = 0;
        for item in self.slots.iter() {
            item.key()?;
            count += 1;
        }
        Ok(count)
    }
}

const SLOTS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("slots");
const BY_TIME: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("by_time");
const BY_ID: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("by_id");

struct Redb {
    db: redb::Database,
}

impl std::fmt::Debug for Redb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redb").finish_non_exhaustive()
    }
}

impl Redb {
    fn open(dir: &Path) -> anyhow::Result<Redb> {
        let db = redb::Database::create(dir.join("records.redb")).context("redb")?;
        let tx = db.begin_write()?;
        tx.open_table(SLOTS)?;
        tx.open_table(BY_TIME)?;
        tx.open_table(BY_ID)?;
        tx.commit()?;
        Ok(Redb { db })
    }
}

impl Engine for Redb {
    fn put_batch(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        use redb::ReadableTable;
        let tx = self.db.begin_write()?;
        {
            let mut slots = tx.open_table(SLOTS)?;
            let mut by_time = tx.open_table(BY_TIME)?;
            let mut by_id = tx.open_table(BY_ID)?;
            for row in rows {
                let stored = match row.replaces {
                    Some(_) => None,
                    None => slots.get(&row.slot[..])?.map(|value| value.value().to_vec()),
                };
                let Some(replaced) = plan(row, stored.as_deref()) else { continue };
                if let Some(old) = replaced {
                    by_time.remove(&old[..])?;
                    by_id.remove(&old[8..])?;
                }
                slots.insert(&row.slot[..], &slot_value(row)[..])?;
                by_time.insert(&time_key(row.time_ms, &row.id)[..], ())?;
                by_id.insert(&row.id[..], &row.slot[..])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get_slot(&self, slot: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        use redb::{ReadableDatabase, ReadableTable};
        let tx = self.db.begin_read()?;
        let slots = tx.open_table(SLOTS)?;
        let value = slots.get(slot)?.map(|value| value.value()[48..].to_vec());
        Ok(value)
    }

    fn scan_by_time(&self, from_ms: u64, limit: usize) -> anyhow::Result<usize> {
        use redb::{ReadableDatabase, ReadableTable};
        let tx = self.db.begin_read()?;
        let by_time = tx.open_table(BY_TIME)?;
        let from = time_key(from_ms, &[0; 32]);
        let mut seen = 0;
        for item in by_time.range(&from[..]..)?.take(limit) {
            let (_key, _) = item?;
            seen += 1;
        }
        Ok(seen)
    }

    fn count_slots(&self) -> anyhow::Result<u64> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(SLOTS)?.len()?)
    }
}
