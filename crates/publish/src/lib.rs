//! Turns the ledger's publications into the owner's next signed records.
//!
//! Every record of one publishing point takes the ledger log index of the
//! `Publish` command as its version, and the command's `now` as its time.
//! Log indexes only grow, so versions only grow; ed25519 is deterministic,
//! so replaying the log (or a Raft replica applying it) signs
//! byte-identical records and can never equivocate.
//!
//! Signature cost dominates a node's CPU, so a publishing point with at
//! least [`BUNDLE_RECORDS_MIN`] records is signed as one bundle (one
//! signature over a Merkle root) instead of one signature per record.

use caravan_ledger::Publication;
use caravan_model::Timestamp;
use caravan_records::{limits::BUNDLE_LEAVES_MAX, proto, sign_bundle, sign_one, Draft, Payload};
use ed25519_dalek::SigningKey;

/// From this many records on, one bundle signature beats one per record:
/// a bundle costs a Merkle proof per record (a few hundred bytes more on
/// the wire at 4096 records) but saves a signature and a verification each.
pub const BUNDLE_RECORDS_MIN: usize = 4;

/// The signed records for one publishing point.
pub fn sign(
    signing_key: &SigningKey,
    publications: Vec<Publication>,
    version: u64,
    time: Timestamp,
) -> Vec<proto::SignedRecord> {
    let drafts: Vec<Draft> = publications
        .into_iter()
        .map(|publication| {
            let (key, payload) = match publication {
                Publication::Listing(listing) => (listing.id.to_string(), Payload::Listing(listing)),
                Publication::Availability { listing, runs } => (listing.to_string(), Payload::Ari(runs)),
                Publication::Withdrawal(listing) => (listing.to_string(), Payload::Withdrawal),
                Publication::Contact(contact) => (caravan_records::CONTACT_KEY.to_owned(), Payload::Contact(contact)),
            };
            Draft { key, version, time, payload }
        })
        .collect();
    if drafts.len() < BUNDLE_RECORDS_MIN {
        return drafts.iter().map(|draft| sign_one(signing_key, draft)).collect();
    }
    drafts.chunks(BUNDLE_LEAVES_MAX as usize).flat_map(|chunk| sign_bundle(signing_key, chunk)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_model::{AriDay, AriRun, ListingId};
    use caravan_records::{verify_batch, Proof};

    fn availability(n: usize, now: Timestamp) -> Vec<Publication> {
        (0..n)
            .map(|i| Publication::Availability {
                listing: ListingId::parse(&format!("room-{i}")).unwrap(),
                runs: vec![AriRun {
                    start: now.date(),
                    days: 3,
                    day: AriDay { available: 1, price_minor: 100, ..AriDay::default() },
                }],
            })
            .collect()
    }

    #[test]
    fn few_records_are_signed_alone_and_many_in_a_bundle() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let now = Timestamp(1_900_000_000_000);
        let few = verify_batch(sign(&key, availability(3, now), 42, now), now);
        assert!(few.iter().all(|r| matches!(r.as_ref().unwrap().proof(), Proof::Signature(_))));
        let many = verify_batch(sign(&key, availability(9, now), 43, now), now);
        assert!(many.iter().all(|r| matches!(r.as_ref().unwrap().proof(), Proof::Bundle { leaf_count: 9, .. })));
        assert!(many.iter().all(|r| r.as_ref().unwrap().version == 43));
    }
}
