//! The catalog across restarts: loaded from its snapshot file when that is
//! whole and in step with the records, else rebuilt from every stored
//! record; saved again when the writer stops.
//!
//! A snapshot is in step when it names the store's mark (the count of
//! transactions that changed the records). It is also taken away as soon as
//! it is loaded, so after a crash — when the catalog in memory is lost
//! with changes the file does not have — the next start rebuilds.

use std::path::Path;

use caravan_catalog::{snapshot, Catalog};
use caravan_model::Timestamp;
use caravan_store::{records, Records, StoreError};

/// The snapshot's file in the data directory.
pub const CATALOG_FILE: &str = "catalog.snapshot";

/// How the catalog came back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// From its snapshot.
    Loaded,
    /// From the records, because there was no usable snapshot.
    Rebuilt { why: String },
}

/// The catalog of the records in `store`: from the snapshot at `path` if
/// it is whole and in step, else rebuilt. The snapshot is removed either way.
pub fn open(store: &Records, path: &Path, now: Timestamp) -> Result<(Catalog, Opened), StoreError> {
    let why = match std::fs::read(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => "no snapshot".to_owned(),
        Err(error) => format!("the snapshot could not be read: {error}"),
        Ok(bytes) => match snapshot::decode(&bytes) {
            Err(error) => error.to_string(),
            Ok((catalog, mark)) => {
                let store_mark = store.mark()?;
                if mark == store_mark {
                    take_away(path)?;
                    return Ok((catalog, Opened::Loaded));
                }
                format!("the snapshot is of mark {mark}, the records are at {store_mark}")
            }
        },
    };
    take_away(path)?;
    Ok((rebuild(store, now)?, Opened::Rebuilt { why }))
}

/// The catalog of every stored record and frozen origin. Records were
/// verified when they arrived, so they are decoded, not verified again.
pub fn rebuild(store: &Records, now: Timestamp) -> Result<Catalog, StoreError> {
    let mut catalog = Catalog::default();
    store.for_each(|stored| {
        catalog.put(records::decode(&stored.signed, now)?);
        Ok(())
    })?;
    for (origin, _) in store.equivocations()? {
        catalog.freeze(origin);
    }
    Ok(catalog)
}

/// Writes the snapshot of `catalog`, in step with the records in `store`,
/// to `path` (through a temporary file, so a crash leaves the old file or
/// the new one, never half of one).
pub fn save(store: &Records, catalog: &Catalog, path: &Path) -> Result<(), StoreError> {
    let mark = store.mark()?;
    let unavailable = |error: std::io::Error| StoreError::Unavailable(format!("catalog snapshot: {error}"));
    let partial = path.with_extension("partial");
    let file = std::fs::File::create(&partial).map_err(unavailable)?;
    let mut out = std::io::BufWriter::new(file);
    snapshot::encode(catalog, mark, &mut out).map_err(unavailable)?;
    let file = out.into_inner().map_err(|e| unavailable(e.into_error()))?;
    file.sync_all().map_err(unavailable)?;
    std::fs::rename(&partial, path).map_err(unavailable)
}

fn take_away(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::Unavailable(format!("removing the catalog snapshot: {error}")))
        }
        _ => Ok(()),
    }
}
