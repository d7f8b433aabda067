//! The agency's side of a booking, as the API sees it: who travels, what
//! to book, and the booking with its saga.

pub use caravan_model::Traveller;
use caravan_records::Origin;

use crate::{HoldSpec, Saga};

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewBooking {
    /// The client's Idempotency-Key: the same key gives the same booking.
    pub client_key: Option<String>,
    /// The account booking, when one is logged in.
    pub user: Option<u64>,
    pub traveller: Traveller,
    pub parts: Vec<(Origin, HoldSpec)>,
    /// Hold every part, then wait for [`Decision::Confirm`] (a traveller
    /// watching a countdown) instead of confirming at once.
    pub wait_to_confirm: bool,
}

/// What a traveller decides about a held booking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    Confirm,
    Release,
}

/// A booking as the API shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Booking {
    pub saga: Saga,
    pub traveller: Traveller,
    pub user: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    #[error("{0}")]
    Invalid(String),
    #[error("no booking {0}")]
    NotFound(u64),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}
