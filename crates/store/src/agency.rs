//! The agency's bookings as a node kept them before they lived in its
//! replica group: one row per saga. The node hands them to the group once
//! and forgets them here. The store keeps bytes; the node chooses the
//! encoding.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::StoreError;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BookingRow {
    pub id: u64,
    pub client_key: Option<String>,
    pub user_id: Option<u64>,
    pub phase: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub traveller: Vec<u8>,
    pub saga: Vec<u8>,
}

/// Inserts or replaces a booking. A new booking whose client key is taken
/// is refused by the UNIQUE constraint; callers look the key up first.
pub fn put(conn: &Connection, row: &BookingRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO agency_bookings (id, client_key, phase, created_ms, updated_ms, traveller, saga, user_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, updated_ms = excluded.updated_ms, saga = excluded.saga",
    )?
    .execute(params![
        row.id as i64,
        row.client_key,
        row.phase,
        row.created_ms,
        row.updated_ms,
        row.traveller,
        row.saga,
        row.user_id.map(|id| id as i64)
    ])?;
    Ok(())
}

fn from_row(row: &Row) -> rusqlite::Result<BookingRow> {
    Ok(BookingRow {
        id: row.get::<_, i64>(0)? as u64,
        client_key: row.get(1)?,
        phase: row.get(2)?,
        created_ms: row.get(3)?,
        updated_ms: row.get(4)?,
        traveller: row.get(5)?,
        saga: row.get(6)?,
        user_id: row.get::<_, Option<i64>>(7)?.map(|id| id as u64),
    })
}

const COLUMNS: &str = "id, client_key, phase, created_ms, updated_ms, traveller, saga, user_id";

pub fn get(conn: &Connection, id: u64) -> Result<Option<BookingRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM agency_bookings WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id as i64], from_row).optional()?)
}

pub fn by_client_key(conn: &Connection, key: &str) -> Result<Option<BookingRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM agency_bookings WHERE client_key = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([key], from_row).optional()?)
}

/// Bookings newest first, with ids below `before_id` if given; only
/// `user`'s when given.
pub fn list(
    conn: &Connection,
    user: Option<u64>,
    before_id: Option<u64>,
    limit: u32,
) -> Result<Vec<BookingRow>, StoreError> {
    let before = before_id.map_or(i64::MAX, |id| id as i64);
    let rows = match user {
        Some(user) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM agency_bookings WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![user as i64, before, limit], from_row)?.collect::<Result<_, _>>()?;
            rows
        }
        None => {
            let sql = format!("SELECT {COLUMNS} FROM agency_bookings WHERE id < ?1 ORDER BY id DESC LIMIT ?2");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![before, limit], from_row)?.collect::<Result<_, _>>()?;
            rows
        }
    };
    Ok(rows)
}

/// Bookings whose saga has not ended (`phase` not in `terminal`).
pub fn unfinished(conn: &Connection, terminal: &[&str]) -> Result<Vec<BookingRow>, StoreError> {
    let mut rows = Vec::new();
    let sql = format!("SELECT {COLUMNS} FROM agency_bookings ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    for row in stmt.query_map([], from_row)? {
        let row = row?;
        if !terminal.contains(&row.phase.as_str()) {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Forgets a booking (once the replica group keeps it).
pub fn delete(conn: &Connection, id: u64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM agency_bookings WHERE id = ?1")?.execute([id as i64])?;
    Ok(())
}

/// The highest booking id; 0 when there is none.
pub fn last_id(conn: &Connection) -> Result<u64, StoreError> {
    let last: Option<i64> = conn.query_row("SELECT MAX(id) FROM agency_bookings", [], |row| row.get(0))?;
    Ok(last.unwrap_or(0) as u64)
}
