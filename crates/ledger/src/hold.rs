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

use caravan_model::{Money, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::command::HoldRequest;

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
