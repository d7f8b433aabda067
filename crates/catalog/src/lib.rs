//! The catalog: a node's searchable view of the newest records it holds.
//!
//! It is derived data. [`project`] (from `records`, pure) turns one verified
//! record into a row change; [`db`] writes those changes
//! and can throw the whole catalog away and [`db::rebuild`] it from the
//! records table, ending with the same [`db::digest`].

pub mod db;

pub use caravan_records::projection::{decode_runs, project, AriRow, ListingRow, Projection};
