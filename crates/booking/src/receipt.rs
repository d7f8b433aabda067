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
use caravan_records::{merkle, proto, signature, Origin};
use ed25519_dalek::{Signer, SigningKey};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::hold::{spec_from_proto, spec_to_proto, HoldRef, HoldSpec};

const RECEIPT_DOMAIN: &[u8] = b"caravan/receipt/1";
const RECEIPT_BATCH_DOMAIN: &[u8] = b"caravan/receipt-batch/1";
const TOKEN_CONTEXT: &str = "caravan 2026 hold token v1";
/// The most receipts one signature covers.
pub const RECEIPT_BATCH_MAX: u32 = 256;

/// A receipt as signed: the encoded `Receipt` and the signature, and for a
/// receipt signed in a batch, the path from it to the signed root: each
/// receipt of a batch is still verifiable alone.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedReceipt {
    pub receipt: Vec<u8>,
    pub signature: [u8; 64],
    pub proof: Option<BatchProof>,
}

/// Where a receipt sits in the batch its owner signed at once.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BatchProof {
    pub index: u32,
    pub count: u32,
    pub path: Vec<[u8; 32]>,
}

/// Kept (in agencies' sagas) as the receipt and one byte string: the
/// signature, followed by the batch proof if any. Receipts kept before
/// batches are the signature alone, and read back unchanged.
#[derive(Serialize, Deserialize)]
struct Kept {
    receipt: Vec<u8>,
    #[serde(with = "bytes")]
    signature: Vec<u8>,
}

mod bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Deserialize::deserialize(d)
    }
}

impl Serialize for SignedReceipt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut signature = self.signature.to_vec();
        if let Some(proof) = &self.proof {
            signature.extend(postcard::to_stdvec(proof).expect("proofs serialize"));
        }
        Kept { receipt: self.receipt.clone(), signature }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SignedReceipt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SignedReceipt, D::Error> {
        use serde::de::Error;
        let kept = Kept::deserialize(d)?;
        if kept.signature.len() < 64 {
            return Err(D::Error::custom("a signature is 64 bytes"));
        }
        let (signature, proof) = kept.signature.split_at(64);
        let proof = match proof {
            [] => None,
            proof => Some(postcard::from_bytes(proof).map_err(D::Error::custom)?),
        };
        Ok(SignedReceipt { receipt: kept.receipt, signature: signature.try_into().expect("64 bytes"), proof })
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
        let receipt = self.encode();
        let signature = signing_key.sign(&[RECEIPT_DOMAIN, &receipt].concat()).to_bytes();
        SignedReceipt { receipt, signature, proof: None }
    }

    fn encode(&self) -> Vec<u8> {
        proto::Receipt {
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
        .encode_to_vec()
    }
}

/// Signs receipts together: one signature over the Merkle root of their
/// leaves, each receipt with its path to the root (a lone receipt is
/// signed alone, as before batches). At most [`RECEIPT_BATCH_MAX`].
pub fn sign_batch(receipts: &[Receipt], signing_key: &SigningKey) -> Vec<SignedReceipt> {
    assert!(receipts.len() as u32 <= RECEIPT_BATCH_MAX, "a receipt batch is at most {RECEIPT_BATCH_MAX}");
    if let [one] = receipts {
        return vec![one.sign(signing_key)];
    }
    if receipts.is_empty() {
        return Vec::new();
    }
    let encoded: Vec<Vec<u8>> = receipts.iter().map(Receipt::encode).collect();
    let leaves: Vec<merkle::Hash> = encoded.iter().map(|receipt| merkle::leaf_hash(receipt)).collect();
    let (root, paths) = merkle::build(&leaves);
    let signature = signing_key.sign(&[RECEIPT_BATCH_DOMAIN, &root].concat()).to_bytes();
    let count = receipts.len() as u32;
    encoded
        .into_iter()
        .zip(paths)
        .enumerate()
        .map(|(index, (receipt, path))| SignedReceipt {
            receipt,
            signature,
            proof: Some(BatchProof { index: index as u32, count, path }),
        })
        .collect()
}

impl SignedReceipt {
    /// Checks the signature against `origin` and decodes the receipt.
    pub fn verify(&self, origin: Origin) -> Result<Receipt, ReceiptError> {
        let key = signature::signer_key(&origin.0).ok_or(ReceiptError::BadSignature)?;
        if !signature::verify_one(key, &self.signed_message()?, &self.signature) {
            return Err(ReceiptError::BadSignature);
        }
        self.decode(origin)
    }

    /// What the signature covers: the receipt, or its batch's root.
    fn signed_message(&self) -> Result<Vec<u8>, ReceiptError> {
        let Some(proof) = &self.proof else { return Ok([RECEIPT_DOMAIN, &self.receipt].concat()) };
        let bad = || ReceiptError::Malformed("its batch proof leads nowhere".into());
        if proof.count > RECEIPT_BATCH_MAX {
            return Err(bad());
        }
        let leaf = merkle::leaf_hash(&self.receipt);
        let root = merkle::root_from_path(leaf, proof.index, proof.count, &proof.path).ok_or_else(bad)?;
        Ok([RECEIPT_BATCH_DOMAIN, &root].concat())
    }

    fn decode(&self, origin: Origin) -> Result<Receipt, ReceiptError> {
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

/// Verifies receipts that came together: a batch's receipts share one
/// signature over one root, checked once.
pub fn verify_all<'a>(
    signed: impl IntoIterator<Item = &'a SignedReceipt>,
    origin: Origin,
) -> Vec<Result<Receipt, ReceiptError>> {
    let mut verified: Vec<(Vec<u8>, [u8; 64])> = Vec::new();
    signed
        .into_iter()
        .map(|one| {
            let message = one.signed_message()?;
            if !verified.iter().any(|(m, s)| *m == message && *s == one.signature) {
                let key = signature::signer_key(&origin.0).ok_or(ReceiptError::BadSignature)?;
                if !signature::verify_one(key, &message, &one.signature) {
                    return Err(ReceiptError::BadSignature);
                }
                verified.push((message, one.signature));
            }
            one.decode(origin)
        })
        .collect()
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
        let error = SignedReceipt { receipt, signature, proof: None }.verify(origin).unwrap_err();
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

    fn receipts(key: &SigningKey, n: u64) -> Vec<Receipt> {
        let origin = Origin(key.verifying_key().to_bytes());
        (0..n)
            .map(|i| {
                let hold = Hold { id: HoldId(i + 1), ..hold() };
                let spec = HoldSpec {
                    request: hold.request.clone(),
                    hold_seconds: 0,
                    expected_total_minor: None,
                    traveller: None,
                };
                Receipt::for_hold(origin, &hold, hold_token(key, hold.id, "peer-a"), spec, Timestamp(2_000))
            })
            .collect()
    }

    #[test]
    fn receipts_signed_together_share_one_signature_and_each_verifies_alone() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let origin = Origin(key.verifying_key().to_bytes());
        let receipts = receipts(&key, 5);
        let signed = sign_batch(&receipts, &key);
        assert!(signed.iter().all(|s| s.signature == signed[0].signature), "one signature for the batch");
        for (one, receipt) in signed.iter().zip(&receipts) {
            assert_eq!(one.verify(origin).as_ref(), Ok(receipt), "each receipt verifies alone");
        }
        let all: Vec<_> = verify_all(&signed, origin).into_iter().map(Result::unwrap).collect();
        assert_eq!(all, receipts);

        let mut tampered = signed[2].clone();
        tampered.receipt[3] ^= 1;
        assert_eq!(tampered.verify(origin), Err(ReceiptError::BadSignature), "a changed receipt leads elsewhere");
        let mut moved = signed[2].clone();
        moved.proof.as_mut().unwrap().index = 3;
        assert!(moved.verify(origin).is_err(), "a receipt cannot claim another place");
        let other = Origin(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes());
        assert!(verify_all(&signed, other).iter().all(|r| *r == Err(ReceiptError::BadSignature)));
        assert_eq!(sign_batch(&receipts[..1], &key)[0].proof, None, "a lone receipt is signed as before batches");
    }

    #[test]
    fn kept_receipts_read_back_with_their_proof_and_those_kept_before_batches_too() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let origin = Origin(key.verifying_key().to_bytes());
        let signed = sign_batch(&receipts(&key, 3), &key);
        let kept = postcard::to_stdvec(&signed[1]).unwrap();
        let back: SignedReceipt = postcard::from_bytes(&kept).unwrap();
        assert_eq!(back, signed[1]);
        assert!(back.verify(origin).is_ok());

        // How a receipt was kept before batches: the receipt, then 64 bytes.
        #[derive(Serialize)]
        struct Before<'a> {
            receipt: &'a [u8],
            #[serde(with = "bytes")]
            signature: Vec<u8>,
        }
        let alone = receipts(&key, 1)[0].sign(&key);
        let before = Before { receipt: &alone.receipt, signature: alone.signature.to_vec() };
        let back: SignedReceipt = postcard::from_bytes(&postcard::to_stdvec(&before).unwrap()).unwrap();
        assert_eq!(back, alone);
    }
}
