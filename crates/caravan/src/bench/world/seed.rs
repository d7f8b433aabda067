//! Fills a seed node's record store with the world before the node starts,
//! as if it had already received every origin's records from peers: each
//! origin signs its listings and their availability the way its node
//! publishes them (a chain's as bundles, a host's one by one), and the
//! records are verified and stored with the node's own store code.
//!
//! Signing and verifying run on every core; one thread writes.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Context;
use caravan_model::Timestamp;
use caravan_records::Verified;
use caravan_records::{limits::BUNDLE_LEAVES_MAX, proto, sign_bundle, sign_one, verify_batch, Draft, Payload, Record};
use ed25519_dalek::SigningKey;

use super::generate::World;

/// Records per write transaction, as the node's writer takes them.
const TRANSACTION_RECORDS: usize = 4_096;

/// The key origin `origin` of the world signs with.
pub fn key(world_seed: u64, origin: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&world_seed.to_le_bytes());
    seed[8..16].copy_from_slice(&(origin as u64).to_le_bytes());
    seed[16] = 0x57;
    SigningKey::from_bytes(&seed)
}

/// An origin's records as its node publishes them at one publishing
/// point: a listing and its availability per listing, in bundles when
/// there are four or more.
pub fn sign_origin(world: &World, origin: usize, now: Timestamp) -> Vec<proto::SignedRecord> {
    let key = key(world.seed, origin);
    // Published an hour ago, an origin a millisecond after the one before.
    let time = now.saturating_add_ms(-3_600_000 + (origin % 1_000_000) as i64);
    let drafts: Vec<Draft> = world
        .origin(origin)
        .into_iter()
        .flat_map(|(listing, runs)| {
            let key = listing.id.to_string();
            [
                Draft { key: key.clone(), version: 1, time, payload: Payload::Listing(listing) },
                Draft { key, version: 1, time, payload: Payload::Ari(runs) },
            ]
        })
        .collect();
    if drafts.len() < 4 {
        return drafts.iter().map(|draft| sign_one(&key, draft)).collect();
    }
    drafts.chunks(BUNDLE_LEAVES_MAX as usize).flat_map(|chunk| sign_bundle(&key, chunk)).collect()
}

/// Signs, verifies and stores every origin's records in the record store
/// at `db`; `progress` is told the listings done. Returns the records stored.
pub fn populate(world: &World, db: &Path, now: Timestamp, progress: &indicatif::ProgressBar) -> anyhow::Result<u64> {
    let next = AtomicUsize::new(0);
    let workers = caravan_node::verifier::workers();
    let (sender, receiver) = mpsc::sync_channel::<(u64, Vec<Verified<Record>>)>(4 * workers);
    std::thread::scope(|scope| {
        let signers: Vec<_> = (0..workers)
            .map(|_| {
                let sender = sender.clone();
                let next = &next;
                scope.spawn(move || loop {
                    let origin = next.fetch_add(1, Ordering::Relaxed);
                    if origin >= world.origin_sizes.len() {
                        return anyhow::Ok(());
                    }
                    let verified = verify_batch(sign_origin(world, origin, now), now)
                        .into_iter()
                        .collect::<Result<Vec<_>, _>>()
                        .with_context(|| format!("origin {origin}'s records do not verify"))?;
                    if sender.send((world.origin_sizes[origin], verified)).is_err() {
                        return Ok(()); // The writer failed; it reports why.
                    }
                })
            })
            .collect();
        drop(sender);
        let stored = write(db, receiver, now, progress)?;
        for signer in signers {
            signer.join().expect("a signer panicked")?;
        }
        Ok(stored)
    })
}

fn write(
    db: &Path,
    receiver: mpsc::Receiver<(u64, Vec<Verified<Record>>)>,
    now: Timestamp,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<u64> {
    let store = caravan_store::Records::open(db).context("opening the seed's store")?;
    let mut stored = 0u64;
    let mut pending: Vec<(u64, Vec<Verified<Record>>)> = Vec::new();
    let mut pending_records = 0;
    let mut batches = receiver.into_iter();
    loop {
        let batch = batches.next();
        let end = batch.is_none();
        if let Some(batch) = batch {
            pending_records += batch.1.len();
            pending.push(batch);
        }
        if pending_records >= TRANSACTION_RECORDS || end {
            let mut tx = store.write(caravan_store::Sync::Relaxed);
            for record in pending.iter().flat_map(|(_, records)| records) {
                let outcome = tx.put(record, now)?;
                anyhow::ensure!(outcome.is_new(), "a world record was not new: {outcome:?}");
                stored += 1;
            }
            tx.bump_mark()?;
            tx.commit()?;
            progress.inc(pending.drain(..).map(|(listings, _)| listings).sum());
            pending_records = 0;
        }
        if end {
            break;
        }
    }
    store.persist()?;
    Ok(stored)
}
