//! The traveller's personal details. They travel only between the agency
//! and the owner over the booking protocol and stay in those two nodes'
//! databases; no record carries them.

use serde::{Deserialize, Serialize};

pub const TRAVELLER_FIELD_BYTES_MAX: usize = 200;

/// Who travels: kept at the agency, told to the owner with the hold (a
/// hotel needs the name at check-in), never in a gossiped record.
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
