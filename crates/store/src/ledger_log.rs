//! The ledger log table: `(index, now, command, reply)` rows, appended by
//! the writer in the same transaction as the records they produced. The
//! store keeps bytes; the node chooses the encoding.

use rusqlite::{params, Connection};

use crate::StoreError;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    pub index: u64,
    pub now_ms: i64,
    pub command: Vec<u8>,
    pub reply: Vec<u8>,
}

pub fn append(conn: &Connection, entry: &Entry) -> Result<(), StoreError> {
    let mut stmt =
        conn.prepare_cached("INSERT INTO ledger_log (idx, now_ms, command, reply) VALUES (?1, ?2, ?3, ?4)")?;
    stmt.execute(params![entry.index as i64, entry.now_ms, entry.command, entry.reply])?;
    Ok(())
}

/// The index of the last entry; 0 when the log is empty.
pub fn last_index(conn: &Connection) -> Result<u64, StoreError> {
    let last: Option<i64> = conn.query_row("SELECT MAX(idx) FROM ledger_log", [], |row| row.get(0))?;
    Ok(last.unwrap_or(0) as u64)
}

/// Calls `visit` on every entry after `after`, in order.
pub fn for_each(
    conn: &Connection,
    after: u64,
    mut visit: impl FnMut(Entry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("SELECT idx, now_ms, command, reply FROM ledger_log WHERE idx > ?1 ORDER BY idx")?;
    let mut rows = stmt.query([after as i64])?;
    let mut expected = after + 1;
    while let Some(row) = rows.next()? {
        let entry = Entry {
            index: row.get::<_, i64>(0)? as u64,
            now_ms: row.get(1)?,
            command: row.get(2)?,
            reply: row.get(3)?,
        };
        if entry.index != expected {
            return Err(StoreError::Corrupt(format!("ledger log jumps from {} to {}", expected - 1, entry.index)));
        }
        expected += 1;
        visit(entry)?;
    }
    Ok(())
}
