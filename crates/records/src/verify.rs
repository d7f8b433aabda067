//! Verification: limits and payloads first (cheap), then signatures in one
//! ed25519 batch, by the rule of [`crate::signature`]: a record is taken
//! or refused the same whatever else arrived with it. Peer input is never
//! trusted and never panics: every failure is a [`Rejection`] naming its
//! reason.

use std::collections::HashMap;

use caravan_model::{Date, ListingId, Timestamp};
use prost::Message;

use crate::limits::*;
use crate::sign::bundle_message;
use crate::signature::{signer_key, verify_each, SignerKey};
use crate::{merkle, proto, Kind, Origin, Payload, Proof, Record, RecordId, Verified};

/// Why a record was refused. Each variant is one counter in the metrics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The encoded record is larger than [`SIGNED_RECORD_BYTES_MAX`].
    #[error("record is {size} bytes, the limit is {limit}")]
    Oversized { size: usize, limit: usize },
    /// The bytes do not decode, or a required field is missing.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The origin is not a usable ed25519 public key: one of small order,
    /// or not in its canonical encoding. (A key that is no point at all
    /// fails its signature instead: see `signature::signer_key`.)
    #[error("origin is not a valid ed25519 public key")]
    BadOrigin,
    /// A record kind this node does not know.
    #[error("unknown record kind {0}")]
    UnknownKind(i32),
    /// The key is not a valid listing id.
    #[error("bad key: {0}")]
    BadKey(String),
    /// Version 0 is never issued.
    #[error("version must be at least 1")]
    ZeroVersion,
    /// The record claims a time too far ahead of our clock.
    #[error("record time is {ahead_ms} ms ahead of this node's clock (limit {TIME_SKEW_MS_MAX} ms)")]
    TimeInFuture { ahead_ms: i64 },
    /// A string or list is longer than its limit.
    #[error("{field} too long: {reason}")]
    FieldTooLong { field: &'static str, reason: String },
    /// A date lies outside the horizon allowed around the record's time.
    #[error("date {date} is outside the horizon {first}..={last}")]
    OutOfHorizon { date: Date, first: Date, last: Date },
    /// The payload breaks a domain rule.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The signature does not verify under the origin's key.
    #[error("signature does not verify")]
    BadSignature,
    /// The bundle inclusion proof does not lead to a root the origin signed.
    #[error("bundle proof does not verify")]
    BadProof,
}

impl Rejection {
    /// Whether only a forger (or a peer that forwards unchecked) could send
    /// this: bytes that do not decode, or a signature or proof that does
    /// not verify. Other refusals an honest node may cause: a newer one (a
    /// kind or rule this build does not know), or one whose clock is ahead.
    pub fn proves_bad_faith(&self) -> bool {
        matches!(
            self,
            Rejection::Oversized { .. } | Rejection::Malformed(_) | Rejection::BadSignature | Rejection::BadProof
        )
    }

    /// A stable, short label for counters and API error codes.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Oversized { .. } => "oversized",
            Rejection::Malformed(_) => "malformed",
            Rejection::BadOrigin => "bad_origin",
            Rejection::UnknownKind(_) => "unknown_kind",
            Rejection::BadKey(_) => "bad_key",
            Rejection::ZeroVersion => "zero_version",
            Rejection::TimeInFuture { .. } => "time_in_future",
            Rejection::FieldTooLong { .. } => "field_too_long",
            Rejection::OutOfHorizon { .. } => "out_of_horizon",
            Rejection::InvalidPayload(_) => "invalid_payload",
            Rejection::BadSignature => "bad_signature",
            Rejection::BadProof => "bad_proof",
        }
    }
}

/// Decodes an encoded `SignedRecord`, checking its size first.
pub fn decode_signed(bytes: &[u8]) -> Result<proto::SignedRecord, Rejection> {
    if bytes.len() > SIGNED_RECORD_BYTES_MAX {
        return Err(Rejection::Oversized { size: bytes.len(), limit: SIGNED_RECORD_BYTES_MAX });
    }
    proto::SignedRecord::decode(bytes).map_err(|e| Rejection::Malformed(e.to_string()))
}

/// Verifies one record. Prefer [`verify_batch`] for many.
pub fn verify(signed: proto::SignedRecord, now: Timestamp) -> Result<Verified<Record>, Rejection> {
    verify_batch(vec![signed], now).pop().expect("one in, one out")
}

/// A record whose fields passed, waiting for its signature check.
struct Candidate {
    record: Record,
    /// Index into the batch's signature list.
    signature_idx: usize,
}

/// Verifies many records at once; the result has one entry per input, in
/// order. Signatures are checked in one ed25519 batch; a bundle's root
/// signature is checked once however many of its records are present.
pub fn verify_batch(batch: Vec<proto::SignedRecord>, now: Timestamp) -> Vec<Result<Verified<Record>, Rejection>> {
    let mut results: Vec<Option<Result<Verified<Record>, Rejection>>> = Vec::with_capacity(batch.len());
    let mut candidates: Vec<(usize, Candidate)> = Vec::with_capacity(batch.len());
    let mut keys: HashMap<[u8; 32], Option<SignerKey>> = HashMap::new();
    // Distinct (key, message, signature) triples to check.
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut signatures: Vec<[u8; 64]> = Vec::new();
    let mut signers: Vec<SignerKey> = Vec::new();
    let mut bundle_sigs: HashMap<([u8; 32], [u8; 64], merkle::Hash), usize> = HashMap::new();

    for (idx, signed) in batch.into_iter().enumerate() {
        let checked = check_fields(signed, now).and_then(|record| {
            let key = *keys.entry(record.origin.0).or_insert_with(|| signer_key(&record.origin.0));
            Ok((record, key.ok_or(Rejection::BadOrigin)?))
        });
        match checked {
            Err(rejection) => results.push(Some(Err(rejection))),
            Ok((record, key)) => {
                results.push(None);
                let signature_idx = match &record.proof {
                    Proof::Signature(sig) => {
                        messages.push(record.body.clone());
                        signatures.push(*sig);
                        signers.push(key);
                        signatures.len() - 1
                    }
                    Proof::Bundle { signature, leaf_index, leaf_count, path } => {
                        let leaf = merkle::leaf_hash(&record.body);
                        let Some(root) = merkle::root_from_path(leaf, *leaf_index, *leaf_count, path) else {
                            results[idx] = Some(Err(Rejection::BadProof));
                            continue;
                        };
                        *bundle_sigs.entry((record.origin.0, *signature, root)).or_insert_with(|| {
                            messages.push(bundle_message(&root).to_vec());
                            signatures.push(*signature);
                            signers.push(key);
                            signatures.len() - 1
                        })
                    }
                };
                candidates.push((idx, Candidate { record, signature_idx }));
            }
        }
    }

    let signed: Vec<(SignerKey, &[u8], [u8; 64])> =
        signers.into_iter().zip(&messages).zip(signatures).map(|((key, m), sig)| (key, m.as_slice(), sig)).collect();
    let signature_ok = verify_each(&signed);

    for (idx, candidate) in candidates {
        results[idx] = Some(match (signature_ok[candidate.signature_idx], &candidate.record.proof) {
            (true, _) => Ok(Verified(candidate.record)),
            (false, Proof::Signature(_)) => Err(Rejection::BadSignature),
            (false, Proof::Bundle { .. }) => Err(Rejection::BadProof),
        });
    }
    results.into_iter().map(|r| r.expect("every record has a result")).collect()
}

/// Decodes a record this node verified when it arrived and has kept since
/// (in its own store): every field is checked again, the signature is not.
/// Never for bytes from anyone else: those go through [`verify_batch`].
pub fn decode_stored(signed: proto::SignedRecord, now: Timestamp) -> Result<Record, Rejection> {
    check_fields(signed, now)
}

/// Every check but the signature's (and the origin key's curve point).
fn check_fields(signed: proto::SignedRecord, now: Timestamp) -> Result<Record, Rejection> {
    let size = signed.encoded_len();
    if size > SIGNED_RECORD_BYTES_MAX {
        return Err(Rejection::Oversized { size, limit: SIGNED_RECORD_BYTES_MAX });
    }
    let body = signed.record;
    let msg = proto::Record::decode(body.as_slice()).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let origin: [u8; 32] = msg.origin.as_slice().try_into().map_err(|_| Rejection::BadOrigin)?;
    let kind = Kind::from_i32(msg.kind).ok_or(Rejection::UnknownKind(msg.kind))?;
    if msg.key.len() > KEY_BYTES_MAX {
        return Err(Rejection::FieldTooLong {
            field: "key",
            reason: format!("{} bytes, at most {KEY_BYTES_MAX}", msg.key.len()),
        });
    }
    let listing_id = ListingId::parse(&msg.key).map_err(|e| Rejection::BadKey(e.to_string()))?;
    if msg.version == 0 {
        return Err(Rejection::ZeroVersion);
    }
    let ahead_ms = msg.time_ms.saturating_sub(now.ms());
    if ahead_ms > TIME_SKEW_MS_MAX {
        return Err(Rejection::TimeInFuture { ahead_ms });
    }
    if msg.time_ms < 0 {
        return Err(Rejection::Malformed("negative time".into()));
    }
    let time = Timestamp(msg.time_ms);
    let payload = Payload::decode(kind, &listing_id, time, &msg.payload)?;
    let proof = match signed.proof {
        None => return Err(Rejection::Malformed("record without signature or bundle proof".into())),
        Some(proto::signed_record::Proof::Signature(sig)) => {
            Proof::Signature(sig.as_slice().try_into().map_err(|_| Rejection::BadSignature)?)
        }
        Some(proto::signed_record::Proof::Bundle(bundle)) => {
            if bundle.leaf_count == 0 || bundle.leaf_count > BUNDLE_LEAVES_MAX || bundle.path.len() > BUNDLE_PATH_MAX {
                return Err(Rejection::BadProof);
            }
            let path = bundle
                .path
                .iter()
                .map(|h| h.as_slice().try_into().map_err(|_| Rejection::BadProof))
                .collect::<Result<Vec<[u8; 32]>, _>>()?;
            Proof::Bundle {
                signature: bundle.signature.as_slice().try_into().map_err(|_| Rejection::BadProof)?,
                leaf_index: bundle.leaf_index,
                leaf_count: bundle.leaf_count,
                path,
            }
        }
    };
    let record = Record {
        origin: Origin(origin),
        kind,
        key: msg.key,
        version: msg.version,
        time,
        payload,
        id: RecordId(*blake3::hash(&body).as_bytes()),
        body,
        proof,
    };
    Ok(record)
}
