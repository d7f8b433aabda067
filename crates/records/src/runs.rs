//! Bundled records on the wire. Each bundled record carries its own proof
//! (the root's signature and up to 12 sibling hashes), which is what it is
//! stored and served with; sent as is, the proof costs more than the
//! record. Records of one bundle that travel together go as a
//! `BundleRun` instead: the signature once, and only the sibling hashes
//! outside the run. The receiver rebuilds every proof before verifying,
//! so nothing past the wire changes.

use std::collections::BTreeMap;

use crate::merkle::{self, Hash};
use crate::proto::{self, signed_record::Proof};
use crate::{limits, Rejection};

/// Splits records for the wire: runs of two or more consecutive records of
/// one bundle become [`proto::BundleRun`]s; the rest stay as they are.
pub fn pack(records: Vec<proto::SignedRecord>) -> (Vec<proto::SignedRecord>, Vec<proto::BundleRun>) {
    let mut alone = Vec::new();
    // Bundle (signature, leaf count) → its records here, by leaf index.
    let mut bundles: BTreeMap<(Vec<u8>, u32), BTreeMap<u32, proto::SignedRecord>> = BTreeMap::new();
    for record in records {
        match &record.proof {
            Some(Proof::Bundle(proof)) => {
                let leaves = bundles.entry((proof.signature.clone(), proof.leaf_count)).or_default();
                if let Some(twin) = leaves.insert(proof.leaf_index, record) {
                    alone.push(twin);
                }
            }
            _ => alone.push(record),
        }
    }
    let mut runs = Vec::new();
    for ((signature, leaf_count), leaves) in bundles {
        let mut run: Vec<(u32, proto::SignedRecord)> = Vec::new();
        for (index, record) in leaves {
            if run.last().is_some_and(|(last, _)| last + 1 != index) {
                close_run(std::mem::take(&mut run), &signature, leaf_count, &mut alone, &mut runs);
            }
            run.push((index, record));
        }
        close_run(run, &signature, leaf_count, &mut alone, &mut runs);
    }
    (alone, runs)
}

/// Makes a run of consecutive records a `BundleRun` if it has two or more
/// and their proofs fit; otherwise leaves its records as they are.
fn close_run(
    run: Vec<(u32, proto::SignedRecord)>,
    signature: &[u8],
    leaf_count: u32,
    alone: &mut Vec<proto::SignedRecord>,
    runs: &mut Vec<proto::BundleRun>,
) {
    let frontier = match (run.first(), run.last()) {
        (Some((first, head)), Some((last, tail))) if first < last => {
            let (head, tail) = (path_of(head), path_of(tail));
            head.zip(tail).and_then(|(head, tail)| merkle::run_frontier(*first, last + 1, leaf_count, &head, &tail))
        }
        _ => None,
    };
    let Some(frontier) = frontier else {
        alone.extend(run.into_iter().map(|(_, record)| record));
        return;
    };
    runs.push(proto::BundleRun {
        signature: signature.to_vec(),
        leaf_count,
        first_index: run[0].0,
        records: run.into_iter().map(|(_, record)| record.record).collect(),
        frontier: frontier.iter().map(|hash| hash.to_vec()).collect(),
    });
}

fn path_of(record: &proto::SignedRecord) -> Option<Vec<Hash>> {
    let Some(Proof::Bundle(proof)) = &record.proof else { return None };
    proof.path.iter().map(|hash| hash.as_slice().try_into().ok()).collect()
}

/// The records of a run, each with its whole proof again, ready for
/// [`crate::verify_batch`]. A run whose shape does not fit its tree is
/// refused here; a forged one fails verification like a forged proof.
pub fn unpack(run: proto::BundleRun) -> Result<Vec<proto::SignedRecord>, Rejection> {
    if run.leaf_count > limits::BUNDLE_LEAVES_MAX {
        return Err(Rejection::Malformed(format!("a bundle of {} records", run.leaf_count)));
    }
    if let Some(body) = run.records.iter().find(|body| body.len() > limits::SIGNED_RECORD_BYTES_MAX) {
        return Err(Rejection::Oversized { size: body.len(), limit: limits::SIGNED_RECORD_BYTES_MAX });
    }
    let frontier: Vec<Hash> = run
        .frontier
        .iter()
        .map(|hash| hash.as_slice().try_into().map_err(|_| Rejection::BadProof))
        .collect::<Result<_, _>>()?;
    let leaves: Vec<Hash> = run.records.iter().map(|body| merkle::leaf_hash(body)).collect();
    let paths = merkle::run_paths(run.first_index, run.leaf_count, &leaves, &frontier).ok_or(Rejection::BadProof)?;
    Ok(run
        .records
        .into_iter()
        .zip(paths)
        .enumerate()
        .map(|(offset, (body, path))| proto::SignedRecord {
            record: body,
            proof: Some(Proof::Bundle(proto::BundleProof {
                signature: run.signature.clone(),
                leaf_index: run.first_index + offset as u32,
                leaf_count: run.leaf_count,
                path: path.iter().map(|hash| hash.to_vec()).collect(),
            })),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sign_bundle, sign_one, verify_batch, Draft, Payload};
    use caravan_model::Timestamp;
    use ed25519_dalek::SigningKey;
    use prost::Message;

    const NOW: Timestamp = Timestamp(1_893_456_000_000);

    fn drafts(count: usize) -> Vec<Draft> {
        (0..count)
            .map(|i| Draft { key: format!("room-{i:04}"), version: 1, time: NOW, payload: Payload::Withdrawal })
            .collect()
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sorted(mut records: Vec<proto::SignedRecord>) -> Vec<Vec<u8>> {
        let mut encoded: Vec<Vec<u8>> = records.drain(..).map(|r| r.encode_to_vec()).collect();
        encoded.sort();
        encoded
    }

    fn unpacked(alone: Vec<proto::SignedRecord>, runs: Vec<proto::BundleRun>) -> Vec<proto::SignedRecord> {
        alone.into_iter().chain(runs.into_iter().flat_map(|run| unpack(run).expect("a packed run unpacks"))).collect()
    }

    #[test]
    fn any_part_of_a_bundle_travels_compact_and_comes_back_the_same() {
        let bundle = sign_bundle(&key(1), &drafts(37));
        let parts: [&[usize]; 4] = [&[0, 1, 2], &[5, 6, 7, 8, 9, 20, 21, 36], &[3, 17, 30], &[0, 36]];
        for part in parts {
            let mut records: Vec<_> = part.iter().map(|&i| bundle[i].clone()).collect();
            records.push(sign_one(&key(2), &drafts(1)[0]));
            let (alone, runs) = pack(records.clone());
            let back = unpacked(alone, runs);
            assert_eq!(sorted(back), sorted(records), "part {part:?}");
        }
    }

    #[test]
    fn a_whole_bundle_costs_little_more_than_its_bodies() {
        let bundle = sign_bundle(&key(1), &drafts(256));
        let bodies: usize = bundle.iter().map(|r| r.record.len()).sum();
        let proofs = proto::Envelope { records: bundle.clone(), proofs: vec![], runs: vec![] }.encode_to_vec().len();
        let (records, runs) = pack(bundle);
        assert!(records.is_empty());
        let compact = proto::Envelope { records, proofs: vec![], runs }.encode_to_vec().len();
        assert!(compact * 100 < bodies * 108, "{compact} bytes on the wire for {bodies} of bodies");
        assert!(proofs > 3 * compact, "each record alone carried {proofs} bytes");
    }

    #[test]
    fn unpacked_records_verify_and_a_forged_run_does_not() {
        let bundle = sign_bundle(&key(1), &drafts(20));
        let (_, runs) = pack(bundle[4..15].to_vec());
        let [run] = <[_; 1]>::try_from(runs).expect("one run");
        let verified = verify_batch(unpack(run.clone()).unwrap(), NOW);
        assert!(verified.iter().all(Result::is_ok), "{verified:?}");

        let mut forged = run.clone();
        forged.frontier[0][0] ^= 1;
        let refused = verify_batch(unpack(forged).unwrap(), NOW);
        assert!(refused.iter().all(|r| matches!(r, Err(Rejection::BadProof))), "{refused:?}");

        let mut moved = run.clone();
        moved.first_index += 1;
        let refused = unpack(moved).map(|records| verify_batch(records, NOW));
        assert!(refused.is_err() || refused.unwrap().iter().all(Result::is_err));

        let mut short = run;
        short.frontier.pop();
        assert_eq!(unpack(short).unwrap_err(), Rejection::BadProof);
    }
}
