//! The agency's side of a booking, as the API sees it: who travels, what
//! to book, and the booking with its saga.

use caravan_records::Origin;
use serde::{Deserialize, Serialize};

use crate::{HoldSpec, Saga};

pub const TRAVELLER_FIELD_BYTES_MAX: usize = 200;

/// Who travels. Kept at the agency (and, for the stay or seat, told to
/// the owner in a later version); never in a gossiped record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Traveller {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

impl Traveller {
    pub fn validate(&self) -> Result<(), String> {
        let ok = |field: &str, text: &str, required: bool| {
            if required && text.trim().is_empty() {
                return Err(format!("traveller.{field} is required"));
            }
            if text.len() > TRAVELLER_FIELD_BYTES_MAX || text.chars().any(char::is_control) {
                return Err(format!(
                    "traveller.{field}: at most {TRAVELLER_FIELD_BYTES_MAX} bytes, no control characters"
                ));
            }
            Ok(())
        };
        ok("name", &self.name, true)?;
        ok("email", &self.email, true)?;
        if !self.email.contains('@') {
            return Err("traveller.email is not an email address".into());
        }
        ok("phone", self.phone.as_deref().unwrap_or(""), false)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewBooking {
    /// The client's Idempotency-Key: the same key gives the same booking.
    pub client_key: Option<String>,
    pub traveller: Traveller,
    pub parts: Vec<(Origin, HoldSpec)>,
}

/// A booking as the API shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Booking {
    pub saga: Saga,
    pub traveller: Traveller,
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
