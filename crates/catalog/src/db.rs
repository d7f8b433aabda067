//! Catalog tables in the node's database (schema in `caravan-store`).

use caravan_model::Timestamp;
use caravan_records::{Origin, Record};
use caravan_store::records::{self, PutOutcome};
use caravan_store::rusqlite::{params, types::ValueRef, Connection};
use caravan_store::StoreError;

use crate::{project, Projection};

/// Every catalog table; each row belongs to one origin.
const CATALOG_TABLES: [&str; 3] = ["catalog_listings", "catalog_ari", "catalog_contacts"];

/// Writes one projection.
pub fn apply(conn: &Connection, projection: &Projection) -> Result<(), StoreError> {
    match projection {
        Projection::Listing(row) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO catalog_listings (origin, key, version, record_id, kind, title, currency,
                 city, country, lat_e7, lon_e7, max_guests, from_code, to_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                &row.origin.0[..],
                row.key,
                row.version as i64,
                &row.record_id.0[..],
                row.kind,
                row.title,
                row.currency,
                row.city,
                row.country,
                row.lat_e7,
                row.lon_e7,
                row.max_guests,
                row.from_code,
                row.to_code
            ])?;
        }
        Projection::Ari(row) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO catalog_ari (origin, key, version, record_id, first_day, end_day, price_min_minor, runs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                &row.origin.0[..],
                row.key,
                row.version as i64,
                &row.record_id.0[..],
                row.first_day,
                row.end_day,
                row.price_min_minor,
                row.runs
            ])?;
        }
        Projection::Contact { origin, version, record_id, contact } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO catalog_contacts (origin, version, record_id, contact) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&origin.0[..], *version as i64, &record_id.0[..], contact])?;
        }
        Projection::Remove { origin, key } => {
            for table in ["catalog_listings", "catalog_ari"] {
                conn.prepare_cached(&format!("DELETE FROM {table} WHERE origin = ?1 AND key = ?2"))?
                    .execute(params![&origin.0[..], key])?;
            }
        }
    }
    Ok(())
}

/// Brings the catalog in line with what `records::put` just did.
pub fn on_put(conn: &Connection, record: &Record, outcome: &PutOutcome) -> Result<(), StoreError> {
    match outcome {
        outcome if outcome.is_new() => apply(conn, &project(record)),
        PutOutcome::Equivocation(proof) => remove_origin(conn, proof.origin()),
        _ => Ok(()),
    }
}

/// Drops everything a frozen origin had in the catalog.
pub fn remove_origin(conn: &Connection, origin: Origin) -> Result<(), StoreError> {
    for table in CATALOG_TABLES {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE origin = ?1"))?.execute([&origin.0[..]])?;
    }
    Ok(())
}

/// BLAKE3 over every catalog row in key order: equal digests, equal catalogs.
pub fn digest(conn: &Connection) -> Result<[u8; 32], StoreError> {
    let mut hasher = blake3::Hasher::new();
    for table in CATALOG_TABLES {
        hasher.update(table.as_bytes());
        let order = if table == "catalog_contacts" { "origin" } else { "origin, key" };
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            for idx in 0..columns {
                // Tag each value with its type and length so no two rows
                // hash alike by shifting bytes between columns.
                match row.get_ref(idx)? {
                    ValueRef::Null => hasher.update(&[0]),
                    ValueRef::Integer(v) => hasher.update(&[1]).update(&v.to_le_bytes()),
                    ValueRef::Real(v) => hasher.update(&[2]).update(&v.to_le_bytes()),
                    ValueRef::Text(v) => hasher.update(&[3]).update(&(v.len() as u64).to_le_bytes()).update(v),
                    ValueRef::Blob(v) => hasher.update(&[4]).update(&(v.len() as u64).to_le_bytes()).update(v),
                };
            }
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Throws the catalog away and projects every stored record again,
/// re-verifying each as it is read back. Returns the number of records.
pub fn rebuild(conn: &Connection, now: Timestamp) -> Result<u64, StoreError> {
    conn.execute_batch("DELETE FROM catalog_listings; DELETE FROM catalog_ari; DELETE FROM catalog_contacts;")?;
    let mut count = 0;
    // Writing the catalog tables while stepping through `records` is safe:
    // SQLite only forbids changing the table being read.
    records::for_each(conn, |stored| {
        let record = records::read_back(&stored.signed, now)?;
        count += 1;
        apply(conn, &project(&record))
    })?;
    Ok(count)
}

/// Listings in the catalog.
pub fn listing_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM catalog_listings", params![], |row| row.get::<_, i64>(0))? as u64)
}

/// The contact an origin published, if any.
pub fn contact(conn: &Connection, origin: Origin) -> Result<Option<caravan_model::Contact>, StoreError> {
    use caravan_store::rusqlite::OptionalExtension;
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT contact FROM catalog_contacts WHERE origin = ?1")?
        .query_row([&origin.0[..]], |row| row.get(0))
        .optional()?;
    let Some(bytes) = bytes else { return Ok(None) };
    let msg = <caravan_records::proto::ContactPayload as prost::Message>::decode(bytes.as_slice())
        .map_err(|e| StoreError::Corrupt(format!("catalog contact: {e}")))?;
    let peers =
        msg.peers.into_iter().map(|p| caravan_model::PeerContact { peer_id: p.peer_id, addrs: p.addrs }).collect();
    Ok(Some(caravan_model::Contact { peers }))
}
