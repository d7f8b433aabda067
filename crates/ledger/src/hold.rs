//! Holds and bookings. A booking is a confirmed hold and keeps its id.
//!
//! ```text
//!            confirm             cancel
//!   Held ─────────────► Confirmed ─────► BookingCancelled
//!    │ cancel
//!    ├────────► Cancelled
//!    │ time is up
//!    └────────► Expired
//! ```
//! A hold resolves exactly once; only `Confirmed` moves on, to
//! `BookingCancelled`.

use caravan_model::{Date, ListingId, Money, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a hold asks for.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum HoldRequest {
    /// `units` of a stay for the nights `check_in..check_out`.
    Stay { listing: ListingId, check_in: Date, check_out: Date, units: u32, guests: u32 },
    /// `seats` on a trip's departure on `departure`; `seat_numbers`, when
    /// not empty, names exactly `seats` seats from the seat map.
    Trip { listing: ListingId, departure: Date, seats: u32, seat_numbers: Vec<String> },
}

impl HoldRequest {
    pub fn listing(&self) -> &ListingId {
        match self {
            HoldRequest::Stay { listing, .. } | HoldRequest::Trip { listing, .. } => listing,
        }
    }

    /// Units or seats held on each day.
    pub fn quantity(&self) -> u32 {
        match self {
            HoldRequest::Stay { units, .. } => *units,
            HoldRequest::Trip { seats, .. } => *seats,
        }
    }

    /// The days this request occupies: each night of a stay, or the departure day.
    pub fn days(&self) -> impl Iterator<Item = Date> {
        let (first, count) = match self {
            HoldRequest::Stay { check_in, check_out, .. } => (*check_in, check_in.days_until(*check_out).max(0)),
            HoldRequest::Trip { departure, .. } => (*departure, 1),
        };
        (0..count).map(move |offset| first.add_days(offset))
    }

    /// The first day: arrival, or departure.
    pub fn start(&self) -> Date {
        match self {
            HoldRequest::Stay { check_in, .. } => *check_in,
            HoldRequest::Trip { departure, .. } => *departure,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HoldId(pub u64);

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}", self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum HoldState {
    Held,
    Expired { at: Timestamp },
    Cancelled { at: Timestamp },
    Confirmed { at: Timestamp },
    BookingCancelled { at: Timestamp, penalty: Money },
}

impl HoldState {
    pub fn name(&self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Expired { .. } => "expired",
            HoldState::Cancelled { .. } => "cancelled",
            HoldState::Confirmed { .. } => "confirmed",
            HoldState::BookingCancelled { .. } => "booking_cancelled",
        }
    }

    /// Whether this hold is or was a booking.
    pub fn is_booking(&self) -> bool {
        matches!(self, HoldState::Confirmed { .. } | HoldState::BookingCancelled { .. })
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub request: HoldRequest,
    /// The price of each day (all units or seats), in order.
    pub day_prices: Vec<Money>,
    pub total: Money,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub state: HoldState,
}
