//! Caravan's domain vocabulary: dates, money, listings (stays and trips),
//! availability/rates/inventory (ARI) and cancellation policies.
//!
//! Every type checks its invariants where it is built (`parse`, `new`,
//! `validate`), so the crates above can trust a value once they hold it.
//! This crate does no IO and knows nothing of records, storage or HTTP.

pub mod ari;
pub mod contact;
pub mod limits;
pub mod listing;
pub mod money;
pub mod rate;
pub mod rng;
pub mod time;
pub mod traveller;
pub mod zone;

pub use ari::{AriDay, AriPatch, AriRun, PackedRuns};
pub use contact::{Contact, PeerContact};
pub use listing::{
    CancellationPolicy, GeoPoint, InvalidListing, Listing, ListingDetails, ListingId, Penalty, Stay, StayType, Stop,
    StopTime, Trip, TripMode,
};
pub use money::{CountryCode, Currency, Money};
pub use time::{Date, TimeOfDay, Timestamp};
pub use traveller::Traveller;
pub use zone::Zone;

/// A value that failed to parse, with the reason in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct ParseError {
    /// What was being parsed, e.g. "date".
    pub what: &'static str,
    /// Why it was refused.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> ParseError {
        ParseError { what, reason: reason.into() }
    }
}
