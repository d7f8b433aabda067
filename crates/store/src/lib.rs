//! The node's databases: the only crate that opens database files.
//!
//! - [`records`]: the record store, a fjall database (`records/` in the
//!   data directory) built for tens of millions of records arriving in no
//!   order: every origin's newest records and the equivocation proofs.
//! - `caravan.sqlite`: what stays with one machine, in SQLite: login
//!   throttles, accounts the CLI writes until the replica group takes
//!   them (and, from nodes before replica groups kept them, agency
//!   bookings and the ledger log). It runs in WAL mode with `synchronous=FULL`: a
//!   committed transaction survives power loss.
//!
//! One writer (see `caravan-writer`) batches many commands or records into
//! one transaction, so durability costs one fsync per batch, not per
//! write; readers read in parallel.

pub mod agency;
pub mod ledger_log;
mod migrations;
pub mod records;
pub mod users;

use rusqlite::{Connection, OpenFlags};
use std::path::Path;

pub use records::{Records, RECORDS_DIR};
pub use rusqlite;

/// The database file inside a node's data directory.
pub const DB_FILE: &str = "caravan.sqlite";

/// How long a connection waits for a lock before giving up. Only the
/// writer writes, so waits are short: checkpoints and readers' snapshots.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The writer's page cache. A 4 GB node can afford 256 MiB for the hottest
/// pages of the records and catalog B-trees.
const WRITER_CACHE_KIB: i64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("record store: {0}")]
    Records(#[from] fjall::Error),
    /// The file was written by a newer Caravan.
    #[error("database schema version {found} is newer than this build's {supported}; upgrade caravan")]
    TooNew { found: u32, supported: u32 },
    /// A stored row failed its read-back check.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The write could not be made durable (a failed commit, a stopping node).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Opens (creating if needed) the database for the single writer and brings
/// its schema up to date.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Keep the WAL from growing without bound under a steady write load.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // Records arrive in no particular key order, so inserts touch pages all
    // over the B-trees; SQLite's default 2 MiB cache turns that into a read
    // syscall per insert. Negative means KiB.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// How a record store transaction's commit reaches the disk (SQLite's
/// commits are always `synchronous=FULL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Durable when the commit returns (fsynced): for what someone was
    /// told is done.
    Full,
    /// Not fsynced at commit: it survives the process crashing, and is
    /// durable at the next `Full` commit; a power cut before that loses it
    /// whole, never half. For what can be had again: peers' records,
    /// which reconciliation brings back.
    Relaxed,
}

/// Opens a read-only connection to a database the writer has created.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    migrations::check_readable(&conn)?;
    Ok(conn)
}
