//! Making records: one signature each, or one signature per bundle.
//!
//! ed25519 signatures are deterministic, so the same drafts signed by the
//! same key always give byte-identical records: replaying an owner's ledger
//! (or a Raft replica applying the same log) reproduces its records exactly.

use caravan_model::Timestamp;
use ed25519_dalek::{Signer, SigningKey};
use prost::Message;

use crate::{merkle, proto, Payload};

/// A record before signing. The origin is the signing key's public half.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Draft {
    pub key: String,
    pub version: u64,
    pub time: Timestamp,
    pub payload: Payload,
}

impl Draft {
    fn body(&self, signing_key: &SigningKey) -> Vec<u8> {
        proto::Record {
            origin: signing_key.verifying_key().to_bytes().to_vec(),
            kind: self.payload.kind() as i32,
            key: self.key.clone(),
            version: self.version,
            time_ms: self.time.ms(),
            payload: self.payload.encode(),
        }
        .encode_to_vec()
    }
}

/// Signs one record on its own.
pub fn sign_one(signing_key: &SigningKey, draft: &Draft) -> proto::SignedRecord {
    let body = draft.body(signing_key);
    let signature = signing_key.sign(&body).to_bytes().to_vec();
    proto::SignedRecord { record: body, proof: Some(proto::signed_record::Proof::Signature(signature)) }
}

/// The message an origin signs for a bundle with this Merkle root.
pub(crate) fn bundle_message(root: &merkle::Hash) -> [u8; 49] {
    let mut message = [0u8; 49];
    message[0] = 0xFF;
    message[1..17].copy_from_slice(b"caravan/bundle/1");
    message[17..].copy_from_slice(root);
    message
}

/// Signs `drafts` as one bundle: one signature over the Merkle root, and an
/// inclusion proof per record. Panics on an empty or oversized bundle: the
/// caller decides bundle boundaries.
pub fn sign_bundle(signing_key: &SigningKey, drafts: &[Draft]) -> Vec<proto::SignedRecord> {
    assert!(!drafts.is_empty());
    assert!(drafts.len() <= crate::limits::BUNDLE_LEAVES_MAX as usize);
    let bodies: Vec<Vec<u8>> = drafts.iter().map(|d| d.body(signing_key)).collect();
    let leaves: Vec<merkle::Hash> = bodies.iter().map(|b| merkle::leaf_hash(b)).collect();
    let (root, paths) = merkle::build(&leaves);
    let signature = signing_key.sign(&bundle_message(&root)).to_bytes().to_vec();
    let leaf_count = drafts.len() as u32;
    bodies
        .into_iter()
        .zip(paths)
        .enumerate()
        .map(|(idx, (body, path))| proto::SignedRecord {
            record: body,
            proof: Some(proto::signed_record::Proof::Bundle(proto::BundleProof {
                signature: signature.clone(),
                leaf_index: idx as u32,
                leaf_count,
                path: path.into_iter().map(|h| h.to_vec()).collect(),
            })),
        })
        .collect()
}
