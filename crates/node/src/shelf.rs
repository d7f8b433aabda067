//! The catalog's shelf: the listings and availability of stays, read from
//! the record store when a search prices them or a page shows them. The
//! catalog in memory holds only what a search filters on.
//!
//! Searches run on the HTTP handlers' threads and read a record or two
//! per candidate: point reads of the record store, which any number of
//! threads read at once.

use std::sync::atomic::{AtomicU64, Ordering};

use caravan_model::{AriRun, Listing, Timestamp};
use caravan_records::{Kind, Origin, Payload};
use caravan_search::Shelf;
use caravan_store::{records, Records};

#[derive(Debug)]
pub struct StoreShelf {
    records: Records,
    clock: fn() -> Timestamp,
    /// Stays read to price search candidates: what searches cost in store
    /// reads.
    stays_read: AtomicU64,
}

/// What the store holds for one key, decoded.
#[derive(Default)]
struct Stored {
    listing: Option<Listing>,
    runs: Option<Vec<AriRun>>,
}

impl StoreShelf {
    pub fn new(records: Records, clock: fn() -> Timestamp) -> StoreShelf {
        StoreShelf { records, clock, stays_read: AtomicU64::new(0) }
    }

    pub fn stays_read(&self) -> u64 {
        self.stays_read.load(Ordering::Relaxed)
    }

    /// The newest records of `(origin, key)` of the kinds `wanted`
    /// (listing, availability), decoded. A read that fails is logged and
    /// reads as nothing: a search leaves that stay out.
    fn read(&self, origin: &Origin, key: &str, wanted: &[Kind]) -> Stored {
        let found = self.records.signed_of_key(*origin, key, wanted);
        let rows = match found {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%origin, key, %error, "the shelf could not read a listing");
                return Stored::default();
            }
        };
        let mut stored = Stored::default();
        for (_, signed) in rows {
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
        self.stays_read.fetch_add(1, Ordering::Relaxed);
        let stored = self.read(origin, key, &[Kind::Listing, Kind::Ari]);
        Some((stored.listing?, stored.runs?))
    }
}
