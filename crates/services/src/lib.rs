//! The node's services, each with its own state: accounts (people, their
//! tokens and mails), the agency (bookings run by sagas) and the booking
//! service (answering agencies from the ledger, asking owners over the
//! network). Each implements its trait of `caravan_api::services` and runs
//! over a [`Database`] and what the node hands it at open; none knows how
//! the node is wired.

pub mod accounts;
pub mod agency;
pub mod booking;
mod database;
pub mod mail;

pub use database::Database;
