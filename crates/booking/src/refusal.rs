//! Why an owner (or the agency's own node) said no: a stable code and
//! words for people. Codes travel as text on the wire and in stored
//! sagas; in code they are [`RefusalCode`], so every decision on a refusal
//! is a `match`, never a string comparison.

use std::fmt;

use caravan_ledger::Rejection;
use serde::{Deserialize, Serialize};

/// A refusal: its code and a message for people.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(RefusalCode::BadRequest, message)
    }

    pub fn unreachable(message: impl Into<String>) -> Refusal {
        Refusal::new(RefusalCode::OwnerUnreachable, message)
    }
}

impl From<&Rejection> for Refusal {
    fn from(rejection: &Rejection) -> Refusal {
        Refusal::new(RefusalCode::from(rejection), rejection.to_string())
    }
}

/// Defines [`RefusalCode`] with the text of each code, written once.
macro_rules! refusal_codes {
    ($($(#[$doc:meta])* $code:ident => $text:literal,)*) => {
        /// Every code a refusal may carry.
        #[derive(Clone, PartialEq, Eq, Debug)]
        pub enum RefusalCode {
            $($(#[$doc])* $code,)*
            /// A code this build does not know (from a newer owner), kept as sent.
            Other(String),
        }

        impl RefusalCode {
            pub fn as_str(&self) -> &str {
                match self {
                    $(RefusalCode::$code => $text,)*
                    RefusalCode::Other(code) => code,
                }
            }

            /// The code for `text`; one this build does not know is `Other`.
            pub fn parse(text: &str) -> RefusalCode {
                match text {
                    $($text => RefusalCode::$code,)*
                    other => RefusalCode::Other(other.to_owned()),
                }
            }
        }
    };
}

refusal_codes! {
    // The owner's ledger refused the command (see `caravan_ledger::Rejection`).
    UnknownListing => "unknown_listing",
    ListingExists => "listing_exists",
    ListingWithdrawn => "listing_withdrawn",
    ListingPaused => "listing_paused",
    InvalidListing => "invalid_listing",
    WrongKind => "wrong_kind",
    InvalidRequest => "invalid_request",
    NotForSale => "not_for_sale",
    SoldOut => "sold_out",
    Restriction => "restriction",
    SeatUnknown => "seat_unknown",
    SeatTaken => "seat_taken",
    PriceChanged => "price_changed",
    UnknownHold => "unknown_hold",
    HoldExpired => "hold_expired",
    HoldNotLive => "hold_not_live",
    BelowCommitted => "below_committed",
    IdempotencyKeyReused => "idempotency_key_reused",
    LimitReached => "limit_reached",
    /// The agency used up a quota the owner sets per agency: holds in
    /// flight (by its ledger), holds a minute or calls a second.
    QuotaExceeded => "quota_exceeded",
    /// The request did not decode or named what it may not.
    BadRequest => "bad_request",
    /// The owner's answer did not decode.
    BadResponse => "bad_response",
    /// The owner's node cannot take commands now (no leader, stopping).
    Unavailable => "unavailable",
    /// The owner's node failed on its side.
    Internal => "internal",
    /// The owner equivocated; nothing of it is trusted.
    OriginFrozen => "origin_frozen",
    /// No contact record says how to reach the owner.
    OwnerUnknown => "owner_unknown",
    /// No node of the owner answered.
    OwnerUnreachable => "owner_unreachable",
}

impl RefusalCode {
    /// The hold is gone at the owner: expired, resolved, or never known.
    pub fn hold_is_gone(&self) -> bool {
        matches!(self, RefusalCode::HoldExpired | RefusalCode::HoldNotLive | RefusalCode::UnknownHold)
    }
}

impl From<&Rejection> for RefusalCode {
    fn from(rejection: &Rejection) -> RefusalCode {
        use RefusalCode::*;
        match rejection {
            Rejection::UnknownListing(_) => UnknownListing,
            Rejection::ListingExists(_) => ListingExists,
            Rejection::ListingWithdrawn(_) => ListingWithdrawn,
            Rejection::ListingPaused(_) => ListingPaused,
            Rejection::InvalidListing(_) => InvalidListing,
            Rejection::WrongKind { .. } => WrongKind,
            Rejection::InvalidRequest(_) => InvalidRequest,
            Rejection::NotForSale { .. } => NotForSale,
            Rejection::SoldOut { .. } => SoldOut,
            Rejection::Restriction(_) => Restriction,
            Rejection::SeatUnknown(_) => SeatUnknown,
            Rejection::SeatTaken(_) => SeatTaken,
            Rejection::PriceChanged { .. } => PriceChanged,
            Rejection::UnknownHold(_) => UnknownHold,
            Rejection::HoldExpired(_) => HoldExpired,
            Rejection::HoldNotLive { .. } => HoldNotLive,
            Rejection::BelowCommitted { .. } => BelowCommitted,
            Rejection::IdempotencyKeyReused => IdempotencyKeyReused,
            Rejection::LimitReached(_) => LimitReached,
            Rejection::QuotaExceeded(_) => QuotaExceeded,
            // An agency's own write, never an owner's answer.
            Rejection::BookingChanged { .. } => InvalidRequest,
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As text, so sagas stored before codes had a type read unchanged.
impl Serialize for RefusalCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RefusalCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RefusalCode, D::Error> {
        Ok(RefusalCode::parse(&String::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_as_written_and_agree_with_the_ledger() {
        for text in ["sold_out", "hold_expired", "owner_unreachable", "bad_response", "internal", "quota_exceeded"] {
            let code = RefusalCode::parse(text);
            assert!(!matches!(code, RefusalCode::Other(_)), "{text}");
            assert_eq!(code.as_str(), text);
        }
        assert_eq!(RefusalCode::parse("from_a_newer_owner"), RefusalCode::Other("from_a_newer_owner".into()));
        for rejection in [Rejection::IdempotencyKeyReused, Rejection::QuotaExceeded("3 holds in flight".into())] {
            assert_eq!(RefusalCode::from(&rejection).as_str(), rejection.code());
        }
    }

    #[test]
    fn stored_codes_are_the_text_they_were() {
        let code = RefusalCode::SoldOut;
        assert_eq!(postcard::to_stdvec(&code).unwrap(), postcard::to_stdvec("sold_out").unwrap());
        assert_eq!(postcard::from_bytes::<RefusalCode>(&postcard::to_stdvec("sold_out").unwrap()).unwrap(), code);
    }
}
