//! Records verified + stored + applied to the catalog per second, on one
//! core (this thread does everything), signed one by one and in bundles.
//!
//! Each record is an ARI record of about 300 bytes (a dozen runs), as in
//! the world scenario: a listing's availability over a few months, made
//! 1 ms after the one before. Batches
//! of `batch` records are verified together (one ed25519 batch), then
//! stored in one transaction and put in the catalog, as the writer does.
//!
//! Then the same records go through a node's own ingestion path, as a peer
//! would gossip them (envelopes of up to 32 KiB, a bundle's records as
//! runs): the verifier stage on every core, then the writer, which stores
//! them and updates the catalogs.

use anyhow::Context;
use serde_json::{json, Map, Value};
use std::time::Instant;

use caravan_model::{AriDay, AriRun, Timestamp};
use caravan_records::{proto, sign_bundle, sign_one, verify_batch, Draft, Payload};
use ed25519_dalek::SigningKey;
use prost::Message;

use super::BenchDir;
use crate::cli::RecordsBench;

fn draft(idx: usize, now: Timestamp) -> Draft {
    let today = now.date();
    let runs = (0..12)
        .map(|run| AriRun {
            start: today.add_days(run * 7),
            days: 7,
            day: AriDay {
                available: (idx as u32 + run as u32) % 9,
                price_minor: 9_000 + (idx as i64 * 37 + run as i64 * 500) % 20_000,
                min_stay: (run % 3) as u16,
                ..AriDay::default()
            },
        })
        .collect();
    // Records are made over time and arrive roughly in time order (gossip
    // is near-current, reconciliation walks (time, id) order): 1 ms apart.
    let time = now.saturating_add_ms(idx as i64 - 10_000_000);
    Draft { key: format!("listing-{idx}"), version: 1 + idx as u64, time, payload: Payload::Ari(runs) }
}

fn key(origin: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(origin as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

pub fn run(args: &RecordsBench) -> anyhow::Result<Map<String, Value>> {
    anyhow::ensure!(
        args.records > 0 && args.origins > 0 && args.bundle_size > 0 && args.batch > 0,
        "all counts must be positive"
    );
    anyhow::ensure!(args.bundle_size <= caravan_records::limits::BUNDLE_LEAVES_MAX as usize, "bundle too large");
    let now = crate::now();
    let keys: Vec<SigningKey> = (0..args.origins).map(key).collect();

    eprintln!("signing {} records one by one and {} in bundles of {}", args.records, args.records, args.bundle_size);
    let singles: Vec<proto::SignedRecord> =
        (0..args.records).map(|i| sign_one(&keys[i % args.origins], &draft(i, now))).collect();
    let drafts: Vec<Draft> = (0..args.records).map(|i| draft(i, now)).collect();
    let bundled: Vec<proto::SignedRecord> = drafts
        .chunks(args.bundle_size)
        .enumerate()
        .flat_map(|(bundle, chunk)| sign_bundle(&keys[bundle % args.origins], chunk))
        .collect();
    let record_bytes = singles.iter().map(|r| r.encoded_len()).sum::<usize>() / singles.len();
    let bundled_bytes = bundled.iter().map(|r| r.encoded_len()).sum::<usize>() / bundled.len();

    let verify_per_s = {
        let started = Instant::now();
        for chunk in singles.chunks(args.batch) {
            let verified = verify_batch(chunk.to_vec(), now);
            anyhow::ensure!(verified.iter().all(Result::is_ok), "a benchmark record failed verification");
        }
        args.records as f64 / started.elapsed().as_secs_f64()
    };
    let dir = BenchDir::new(args.dir.as_deref())?;
    let (single_rate, single_verify_share) =
        verify_store_apply(&dir.path().join("singles"), &singles, args.batch, now)?;
    let (bundled_rate, bundled_verify_share) =
        verify_store_apply(&dir.path().join("bundled"), &bundled, args.batch, now)?;

    let workers = caravan_node::verifier::workers();
    eprintln!("the same through a node: the verifier stage on {workers} threads, then the writer");
    let singles_run = through_a_node(&dir.path().join("node-singles"), &singles)?;
    let bundled_run = through_a_node(&dir.path().join("node-bundled"), &bundled)?;

    let mut out = Map::new();
    out.insert("pipeline_records_per_s".into(), json!(singles_run.records_per_s));
    out.insert("pipeline_bundled_records_per_s".into(), json!(bundled_run.records_per_s));
    out.insert("pipeline_verifiers".into(), json!(workers));
    out.insert("restart_from_snapshot_s".into(), json!(singles_run.restart_from_snapshot_s));
    out.insert("restart_rebuilding_s".into(), json!(singles_run.restart_rebuilding_s));
    out.insert("snapshot_bytes_per_record".into(), json!(singles_run.snapshot_bytes as f64 / singles.len() as f64));
    out.insert("records_per_s_verify_store_apply".into(), json!(single_rate));
    out.insert("bundled_records_per_s_verify_store_apply".into(), json!(bundled_rate));
    out.insert("verify_per_s".into(), json!(verify_per_s));
    out.insert("verify_share_of_time".into(), json!(single_verify_share));
    out.insert("bundled_verify_share_of_time".into(), json!(bundled_verify_share));
    out.insert("records".into(), json!(args.records));
    out.insert("record_bytes".into(), json!(record_bytes));
    out.insert("bundled_record_bytes".into(), json!(bundled_bytes));
    out.insert("bundle_size".into(), json!(args.bundle_size));
    out.insert("batch".into(), json!(args.batch));
    Ok(out)
}

/// Records per second, and the share of the time spent verifying.
fn verify_store_apply(
    path: &std::path::Path,
    signed: &[proto::SignedRecord],
    batch: usize,
    now: Timestamp,
) -> anyhow::Result<(f64, f64)> {
    let store = caravan_store::Records::open(path).context("opening the bench's record store")?;
    let started = Instant::now();
    let mut verifying = std::time::Duration::ZERO;
    let mut catalog = caravan_catalog::Catalog::default();
    for chunk in signed.chunks(batch) {
        let verify_started = Instant::now();
        let verified = verify_batch(chunk.to_vec(), now);
        verifying += verify_started.elapsed();
        let mut tx = store.write(caravan_store::Sync::Relaxed);
        let mut stored = Vec::with_capacity(verified.len());
        for record in verified {
            let record = record.map_err(|e| anyhow::anyhow!("benchmark record rejected: {e}"))?;
            let outcome = tx.put(&record, now)?;
            anyhow::ensure!(outcome.is_new(), "benchmark record not new: {outcome:?}");
            stored.push(record.into_inner());
        }
        tx.bump_mark()?;
        tx.commit()?;
        for record in stored {
            catalog.put(record);
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(store.count()? == signed.len() as u64, "not every record was stored");
    Ok((signed.len() as f64 / elapsed.as_secs_f64(), verifying.as_secs_f64() / elapsed.as_secs_f64()))
}

/// What a node did with the records.
struct NodeRun {
    records_per_s: f64,
    /// From opening the node until it searches, loading its catalog's
    /// snapshot, and again rebuilding the catalog from the records.
    restart_from_snapshot_s: f64,
    restart_rebuilding_s: f64,
    snapshot_bytes: u64,
}

/// A fresh node takes in the records from gossip (timed from the first
/// envelope handed to it until the last record is stored and in its
/// catalog), then restarts twice: from its catalog's snapshot, then
/// without one.
fn through_a_node(dir: &std::path::Path, signed: &[proto::SignedRecord]) -> anyhow::Result<NodeRun> {
    use caravan_node::{Node, NodeOptions, ReplicationEvent};
    std::fs::create_dir_all(dir)?;
    caravan_node::init(dir).context("initializing the bench node")?;
    let envelopes = envelopes(signed, crate::now())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let node = Node::open(dir, NodeOptions::default()).await?;
        let stored = || node.stats().replication.lock().expect("stats lock").clone();
        let started = Instant::now();
        let feeder = node.clone();
        let feeding = tokio::spawn(async move {
            for envelope in envelopes {
                feeder.replicate(ReplicationEvent::Gossip { from: "bench-peer".into(), envelope }).await?;
            }
            anyhow::Ok(())
        });
        loop {
            let counters = stored();
            anyhow::ensure!(counters.rejected.is_empty(), "the node rejected records: {:?}", counters.rejected);
            if counters.records_new >= signed.len() as u64 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let records_per_s = signed.len() as f64 / started.elapsed().as_secs_f64();
        feeding.await??;
        let listings = node.read_catalog(|catalog| catalog.index.len());
        node.shutdown().await;

        let snapshot = dir.join(caravan_node::CATALOG_FILE);
        let snapshot_bytes = std::fs::metadata(&snapshot).context("the node saved no catalog snapshot")?.len();
        let restart_from_snapshot_s = restart(dir, listings).await?;
        std::fs::remove_file(&snapshot).context("the node saved no catalog snapshot when it stopped")?;
        let restart_rebuilding_s = restart(dir, listings).await?;
        Ok(NodeRun { records_per_s, restart_from_snapshot_s, restart_rebuilding_s, snapshot_bytes })
    })
}

/// Seconds from opening the node in `dir` until it searches its catalog,
/// which must hold `listings` entries.
async fn restart(dir: &std::path::Path, listings: usize) -> anyhow::Result<f64> {
    use caravan_node::{Node, NodeOptions};
    let started = Instant::now();
    let node = Node::open(dir, NodeOptions::default()).await?;
    let opened_s = started.elapsed().as_secs_f64();
    let held = node.read_catalog(|catalog| catalog.index.len());
    node.shutdown().await;
    anyhow::ensure!(held == listings, "the restarted node holds {held} of {listings} catalog entries");
    Ok(opened_s)
}

/// The envelopes a peer would gossip: the records handed to a replication
/// core as its own publications, packed by it (up to its envelope size,
/// a bundle's records as runs).
fn envelopes(signed: &[proto::SignedRecord], now: Timestamp) -> anyhow::Result<Vec<Vec<u8>>> {
    use caravan_replication::{Action, Config, MemoryStore, Replica};
    let verified = verify_batch(signed.to_vec(), now).into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut peer = Replica::<u8>::new(Config::default(), 1);
    let flush_ms = Config::default().flush_interval_ms;
    peer.handle_published(verified, Vec::new(), now);
    match peer.handle_timeout(now.saturating_add_ms(flush_ms), &mut MemoryStore::default()) {
        Ok(()) => {}
        Err(never) => match never {},
    }
    let gossip = std::iter::from_fn(|| peer.poll_action()).filter_map(|action| match action {
        Action::Gossip(envelope) => Some(envelope),
        _ => None,
    });
    Ok(gossip.collect())
}
