//! Owner-signed receipts for holds and bookings, and hold tokens.
//!
//! A receipt is the owner's word on one hold at one moment: what was held,
//! at what price, until when, and in which state. It is signed with the
//! origin key (the one the agency already trusts for the owner's records),
//! over a domain-separated message so no receipt can pass for a record.
//!
//! A hold token binds a hold to the peer that asked for it: a keyed BLAKE3
//! of the hold id and the peer id, under a key derived from the origin's
//! secret. The owner stores nothing for it, every member of a replica
//! group computes the same token, and a peer that guesses another's hold
//! id still cannot confirm, cancel or read it.

use caravan_ledger::{Hold, HoldId, HoldState};
use caravan_model::Timestamp;
use caravan_records::{proto, Origin};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::hold::{spec_from_proto, spec_to_proto, HoldRef, HoldSpec};

const RECEIPT_DOMAIN: &[u8] = b"caravan/receipt/1";
const TOKEN_CONTEXT: &str = "caravan 2026 hold token v1";

/// A receipt as signed: the encoded `Receipt` and the signature.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SignedReceipt {
    pub receipt: Vec<u8>,
    #[serde(with = "signature_bytes")]
    pub signature: [u8; 64],
}

mod signature_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(d)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

/// The state of a hold as its receipt states it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReceiptState {
    Held,
    Confirmed,
    /// Let go before it was confirmed.
    Cancelled,
    Expired,
    /// A booking cancelled afterwards, with its penalty.
    BookingCancelled,
}

impl ReceiptState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptState::Held => "held",
            ReceiptState::Confirmed => "confirmed",
            ReceiptState::Cancelled => "cancelled",
            ReceiptState::Expired => "expired",
            ReceiptState::BookingCancelled => "booking_cancelled",
        }
    }

    /// The state named `text`; `None` for a name this build does not know.
    pub fn parse(text: &str) -> Option<ReceiptState> {
        use ReceiptState::*;
        [Held, Confirmed, Cancelled, Expired, BookingCancelled].into_iter().find(|state| state.as_str() == text)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Receipt {
    pub origin: Origin,
    pub hold: HoldRef,
    pub spec: HoldSpec,
    pub state: ReceiptState,
    pub currency: String,
    pub total_minor: i64,
    pub expires_at: Timestamp,
    pub state_at: Timestamp,
    pub penalty_minor: i64,
    pub issued_at: Timestamp,
    /// Each day's price for all units or seats.
    pub day_prices_minor: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt undecodable: {0}")]
    Malformed(String),
    #[error("receipt signed by someone else than the owner")]
    BadSignature,
    #[error("receipt is for another origin")]
    WrongOrigin,
}

/// The token that proves `peer` asked for `hold`.
pub fn hold_token(signing_key: &SigningKey, hold: HoldId, peer: &str) -> [u8; 32] {
    let key = blake3::derive_key(TOKEN_CONTEXT, signing_key.as_bytes());
    let mut mac = blake3::Hasher::new_keyed(&key);
    mac.update(&hold.0.to_le_bytes()).update(peer.as_bytes());
    *mac.finalize().as_bytes()
}

/// Whether `token` is the one [`hold_token`] gives, compared in constant time.
pub fn token_matches(signing_key: &SigningKey, hold: HoldId, peer: &str, token: &[u8; 32]) -> bool {
    blake3::Hash::from(hold_token(signing_key, hold, peer)) == blake3::Hash::from(*token)
}

impl Receipt {
    /// The receipt for `hold` as the ledger has it now.
    pub fn for_hold(origin: Origin, hold: &Hold, token: [u8; 32], spec: HoldSpec, now: Timestamp) -> Receipt {
        // A hold past its time is expired even before the ledger's next
        // command records it: it can no longer be confirmed.
        let (state, state_at, penalty_minor) = match hold.state {
            HoldState::Held if now >= hold.expires_at => (ReceiptState::Expired, hold.expires_at, 0),
            HoldState::Held => (ReceiptState::Held, hold.created_at, 0),
            HoldState::Expired { at } => (ReceiptState::Expired, at, 0),
            HoldState::Cancelled { at } => (ReceiptState::Cancelled, at, 0),
            HoldState::Confirmed { at } => (ReceiptState::Confirmed, at, 0),
            HoldState::BookingCancelled { at, penalty } => (ReceiptState::BookingCancelled, at, penalty.amount_minor),
        };
        Receipt {
            origin,
            hold: HoldRef { hold: hold.id, token },
            spec,
            state,
            currency: hold.total.currency.as_str().to_owned(),
            total_minor: hold.total.amount_minor,
            expires_at: hold.expires_at,
            state_at,
            penalty_minor,
            issued_at: now,
            day_prices_minor: hold.day_prices.iter().map(|m| m.amount_minor).collect(),
        }
    }

    pub fn sign(&self, signing_key: &SigningKey) -> SignedReceipt {
        let receipt = proto::Receipt {
            origin: self.origin.0.to_vec(),
            hold_id: self.hold.hold.0,
            token: self.hold.token.to_vec(),
            spec: Some(spec_to_proto(&self.spec)),
            state: self.state.as_str().to_owned(),
            currency: self.currency.clone(),
            total_minor: self.total_minor,
            expires_at_ms: self.expires_at.ms(),
            state_at_ms: self.state_at.ms(),
            penalty_minor: self.penalty_minor,
            issued_at_ms: self.issued_at.ms(),
            day_prices_minor: self.day_prices_minor.clone(),
        }
        .encode_to_vec();
        let signature = signing_key.sign(&[RECEIPT_DOMAIN, &receipt].concat()).to_bytes();
        SignedReceipt { receipt, signature }
    }
}

impl SignedReceipt {
    /// Checks the signature against `origin` and decodes the receipt.
    pub fn verify(&self, origin: Origin) -> Result<Receipt, ReceiptError> {
        let key = VerifyingKey::from_bytes(&origin.0).map_err(|_| ReceiptError::BadSignature)?;
        let signature = Signature::from_bytes(&self.signature);
        key.verify(&[RECEIPT_DOMAIN, &self.receipt].concat(), &signature).map_err(|_| ReceiptError::BadSignature)?;
        let msg =
            proto::Receipt::decode(self.receipt.as_slice()).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        if msg.origin != origin.0 {
            return Err(ReceiptError::WrongOrigin);
        }
        let token = msg.token.try_into().map_err(|_| ReceiptError::Malformed("token".into()))?;
        let spec = msg.spec.ok_or_else(|| ReceiptError::Malformed("no spec".into()))?;
        let spec = spec_from_proto(spec).map_err(|r| ReceiptError::Malformed(r.message))?;
        Ok(Receipt {
            origin,
            hold: HoldRef { hold: HoldId(msg.hold_id), token },
            spec,
            state: ReceiptState::parse(&msg.state)
                .ok_or_else(|| ReceiptError::Malformed(format!("unknown hold state {:?}", msg.state)))?,
            currency: msg.currency,
            total_minor: msg.total_minor,
            expires_at: Timestamp(msg.expires_at_ms),
            state_at: Timestamp(msg.state_at_ms),
            penalty_minor: msg.penalty_minor,
            issued_at: Timestamp(msg.issued_at_ms),
            day_prices_minor: msg.day_prices_minor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_ledger::HoldRequest;
    use caravan_model::{Currency, ListingId, Money};

    fn hold() -> Hold {
        let request = HoldRequest::Stay {
            listing: ListingId::parse("room").unwrap(),
            check_in: caravan_model::Date::from_days(20_500),
            check_out: caravan_model::Date::from_days(20_502),
            units: 1,
            guests: 2,
        };
        let eur = Currency::parse("EUR").unwrap();
        Hold {
            id: HoldId(3),
            request,
            day_prices: vec![Money::new(100, eur), Money::new(100, eur)],
            total: Money::new(200, eur),
            created_at: Timestamp(1_000),
            expires_at: Timestamp(901_000),
            state: HoldState::Held,
        }
    }

    #[test]
    fn a_signed_receipt_in_a_state_this_build_does_not_know_is_refused() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let origin = Origin(key.verifying_key().to_bytes());
        let hold = hold();
        let spec =
            HoldSpec { request: hold.request.clone(), hold_seconds: 0, expected_total_minor: None, traveller: None };
        let signed = Receipt::for_hold(origin, &hold, [0; 32], spec, Timestamp(2_000)).sign(&key);
        let mut msg = proto::Receipt::decode(signed.receipt.as_slice()).unwrap();
        msg.state = "parked".into();
        let receipt = msg.encode_to_vec();
        let signature = key.sign(&[RECEIPT_DOMAIN, &receipt].concat()).to_bytes();
        let error = SignedReceipt { receipt, signature }.verify(origin).unwrap_err();
        assert!(matches!(&error, ReceiptError::Malformed(why) if why.contains("parked")), "{error:?}");
    }

    #[test]
    fn receipts_verify_only_under_their_origin() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let origin = Origin(key.verifying_key().to_bytes());
        let hold = hold();
        let spec =
            HoldSpec { request: hold.request.clone(), hold_seconds: 0, expected_total_minor: None, traveller: None };
        let token = hold_token(&key, hold.id, "peer-a");
        let receipt = Receipt::for_hold(origin, &hold, token, spec, Timestamp(2_000));
        let signed = receipt.sign(&key);
        assert_eq!(signed.verify(origin), Ok(receipt));

        let other = Origin(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes());
        assert_eq!(signed.verify(other), Err(ReceiptError::BadSignature));
        let mut tampered = signed.clone();
        tampered.receipt[3] ^= 1;
        assert_eq!(tampered.verify(origin), Err(ReceiptError::BadSignature));
    }

    #[test]
    fn tokens_bind_a_hold_to_its_peer() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let token = hold_token(&key, HoldId(3), "peer-a");
        assert!(token_matches(&key, HoldId(3), "peer-a", &token));
        assert!(!token_matches(&key, HoldId(3), "peer-b", &token));
        assert!(!token_matches(&key, HoldId(4), "peer-a", &token));
        assert!(!token_matches(&SigningKey::from_bytes(&[2; 32]), HoldId(3), "peer-a", &token));
    }
}
