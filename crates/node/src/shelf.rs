//! The catalog's shelf: the listings and availability of stays, read from
//! the record store when a search prices them or a page shows them. The
//! catalog in memory holds only what a search filters on.
//!
//! Searches run on the HTTP handlers' threads and read a record or two
//! per candidate, so the shelf keeps reader connections of its own, one
//! per core, rather than queueing behind the node's other reads.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use caravan_model::{AriRun, Listing, Timestamp};
use caravan_records::{Kind, Origin, Payload};
use caravan_search::Shelf;
use caravan_store::rusqlite::Connection;
use caravan_store::{records, StoreError};

#[derive(Debug)]
pub struct StoreShelf {
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    clock: fn() -> Timestamp,
}

/// What the store holds for one key, decoded.
#[derive(Default)]
struct Stored {
    listing: Option<Listing>,
    runs: Option<Vec<AriRun>>,
}

impl StoreShelf {
    pub fn open(db_path: &Path, clock: fn() -> Timestamp) -> Result<StoreShelf, StoreError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let readers =
            (0..cores).map(|_| caravan_store::open_reader(db_path).map(Mutex::new)).collect::<Result<_, _>>()?;
        Ok(StoreShelf { readers, next: AtomicUsize::new(0), clock })
    }

    /// A free reader if there is one, else the next in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.readers.len();
        (0..count)
            .find_map(|i| self.readers[(start + i) % count].try_lock().ok())
            .unwrap_or_else(|| self.readers[start % count].lock().expect("shelf reader lock"))
    }

    /// The newest records of `(origin, key)` of the kinds `wanted`
    /// (listing, availability), decoded. A read that fails is logged and
    /// reads as nothing: a search leaves that stay out.
    fn read(&self, origin: &Origin, key: &str, wanted: &[Kind]) -> Stored {
        let found = records::signed_of_key(&self.reader(), *origin, key);
        let rows = match found {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%origin, key, %error, "the shelf could not read a listing");
                return Stored::default();
            }
        };
        let mut stored = Stored::default();
        for (kind, signed) in rows {
            if !wanted.contains(&kind) {
                continue;
            }
            match records::decode(&signed, (self.clock)()) {
                Ok(record) => match record.payload {
                    Payload::Listing(listing) => stored.listing = Some(listing),
                    Payload::Ari(runs) => stored.runs = Some(runs),
                    _ => {}
                },
                Err(error) => tracing::warn!(%origin, key, %error, "a stored record does not decode"),
            }
        }
        stored
    }

    pub fn listing(&self, origin: &Origin, key: &str) -> Option<Listing> {
        self.read(origin, key, &[Kind::Listing]).listing
    }

    pub fn runs(&self, origin: &Origin, key: &str) -> Option<Vec<AriRun>> {
        self.read(origin, key, &[Kind::Ari]).runs
    }
}

impl Shelf<Origin> for StoreShelf {
    fn stay(&self, origin: &Origin, key: &str) -> Option<(Listing, Vec<AriRun>)> {
        let stored = self.read(origin, key, &[Kind::Listing, Kind::Ari]);
        Some((stored.listing?, stored.runs?))
    }
}
