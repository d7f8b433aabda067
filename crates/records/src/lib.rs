//! Signed replaceable records: the only thing Caravan nodes exchange.
//!
//! A record is one fact from one origin — a listing, its availability, or
//! its withdrawal — identified by the slot `(origin, kind, key)` and ordered
//! within the slot by `version`: the newest version wins and older ones are
//! garbage. The origin signs the exact encoded bytes of the record body with
//! ed25519, either one signature per record or one per *bundle* (a BLAKE3
//! Merkle root over many records, each record keeping its inclusion proof so
//! it stays verifiable on its own).
//!
//! Nothing here does IO. The flow is: bytes → [`verify_batch`] →
//! [`Verified<Record>`] → the store. `Verified` can only be built by this
//! crate's verification, so "verify before store" is a type, not a habit.
//! Two different verified records in one slot with one version are an
//! [`EquivocationProof`].

pub mod limits;
pub mod merkle;
mod payload;
pub mod runs;
mod sign;
pub mod signature;
pub mod slot;
mod verify;

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod proto {
    //! Types generated from `proto/caravan/v1/*.proto`.
    include!(concat!(env!("OUT_DIR"), "/caravan.v1.rs"));
}

pub use payload::{Payload, CONTACT_KEY};
pub use sign::{sign_bundle, sign_one, Draft};
pub use verify::{decode_signed, decode_stored, verify, verify_batch, Rejection};

use caravan_model::Timestamp;
use prost::Message;
use std::fmt;

/// A publishing identity: the origin's ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin(pub [u8; 32]);

impl Origin {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Origin> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (idx, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * idx..2 * idx + 2], 16).ok()?;
        }
        Some(Origin(out))
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.to_hex()[..12])
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Kind {
    Listing = 1,
    Ari = 2,
    Withdrawal = 3,
    Contact = 4,
}

impl Kind {
    pub fn from_i32(value: i32) -> Option<Kind> {
        match value {
            1 => Some(Kind::Listing),
            2 => Some(Kind::Ari),
            3 => Some(Kind::Withdrawal),
            4 => Some(Kind::Contact),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Listing => "listing",
            Kind::Ari => "ari",
            Kind::Withdrawal => "withdrawal",
            Kind::Contact => "contact",
        }
    }
}

/// BLAKE3 of the signed body: equal ids mean the same fact, whatever proof
/// (single signature or bundle) came with it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub [u8; 32]);

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// How the origin vouched for a record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Proof {
    Signature([u8; 64]),
    Bundle { signature: [u8; 64], leaf_index: u32, leaf_count: u32, path: Vec<[u8; 32]> },
}

/// A decoded record with the exact bytes it was signed as.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    pub origin: Origin,
    pub kind: Kind,
    pub key: String,
    pub version: u64,
    pub time: Timestamp,
    pub payload: Payload,
    id: RecordId,
    body: Vec<u8>,
    proof: Proof,
}

impl Record {
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The exact signed body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn proof(&self) -> &Proof {
        &self.proof
    }

    /// The encoded `SignedRecord`, as stored and forwarded.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    pub fn to_proto(&self) -> proto::SignedRecord {
        let proof = match &self.proof {
            Proof::Signature(sig) => proto::signed_record::Proof::Signature(sig.to_vec()),
            Proof::Bundle { signature, leaf_index, leaf_count, path } => {
                proto::signed_record::Proof::Bundle(proto::BundleProof {
                    signature: signature.to_vec(),
                    leaf_index: *leaf_index,
                    leaf_count: *leaf_count,
                    path: path.iter().map(|h| h.to_vec()).collect(),
                })
            }
        };
        proto::SignedRecord { record: self.body.clone(), proof: Some(proof) }
    }

    /// Whether `self` and `other` claim the same slot and version.
    pub fn same_slot_version(&self, other: &Record) -> bool {
        self.origin == other.origin && self.kind == other.kind && self.key == other.key && self.version == other.version
    }
}

/// A value that passed verification. Only this crate can make one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Proof that an origin signed two different records for one slot and version.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EquivocationProof {
    pub first: Verified<Record>,
    pub second: Verified<Record>,
}

impl EquivocationProof {
    /// `Some` when the two records are an equivocation.
    pub fn detect(first: &Verified<Record>, second: &Verified<Record>) -> Option<EquivocationProof> {
        (first.same_slot_version(second) && first.id() != second.id())
            .then(|| EquivocationProof { first: first.clone(), second: second.clone() })
    }

    pub fn origin(&self) -> Origin {
        self.first.origin
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    pub fn to_proto(&self) -> proto::EquivocationProof {
        proto::EquivocationProof { first: Some(self.first.to_proto()), second: Some(self.second.to_proto()) }
    }

    /// Decodes and checks a proof received from a peer.
    pub fn verify(bytes: &[u8], now: Timestamp) -> Result<EquivocationProof, Rejection> {
        let proof = proto::EquivocationProof::decode(bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
        EquivocationProof::verify_proto(proof, now)
    }

    /// Checks a decoded proof.
    pub fn verify_proto(proof: proto::EquivocationProof, now: Timestamp) -> Result<EquivocationProof, Rejection> {
        let (Some(first), Some(second)) = (proof.first, proof.second) else {
            return Err(Rejection::Malformed("equivocation proof needs two records".into()));
        };
        let mut both = verify_batch(vec![first, second], now).into_iter();
        let first = both.next().expect("two in, two out")?;
        let second = both.next().expect("two in, two out")?;
        EquivocationProof::detect(&first, &second)
            .ok_or_else(|| Rejection::Malformed("the two records do not conflict".into()))
    }
}
