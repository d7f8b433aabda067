//! Search on the local catalog: stays for given nights, and trips from A to
//! B with connections across operators.
//!
//! Pure: the node feeds [`SearchIndex`] the listings and availability of
//! the records it stores and asks it questions, handing it a [`Shelf`] to
//! read the stored listings it prices; nothing here reads a clock or a
//! file. Prices follow the owner's ledger to the minor unit, so an offer's
//! total is the total the owner's hold will ask.
//!
//! - [`stays`]: can a stay be sold for these nights, and at what price.
//! - [`routing`]: the Connection Scan Algorithm over dated connections.
//! - [`trips`]: the timetable built from trip listings, and itineraries.
//! - [`index`]: the in-memory index that answers both.
//! - [`shelf`]: where the index reads what it does not keep in memory.

pub mod floors;
pub mod index;
pub mod routing;
pub mod shelf;
pub mod stays;
pub mod trips;

pub use index::{Handle, SavedEntry, SavedHeld, SearchIndex, StayOffer};
pub use shelf::{MemoryShelf, Shelf};
pub use stays::{Place, StayPrice, StayQuery, StaySort};
pub use trips::{Itinerary, TripLeg, TripQuery, TripSort};

#[cfg(test)]
mod tests;
