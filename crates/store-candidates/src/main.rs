//! Measures candidate record stores on the record store's workload, one
//! engine per run (so each run's memory is its own):
//!
//! ```text
//! cargo run --release -p caravan-store-candidates -- --engine fjall --records 1000000 --json out.json
//! ```
//!
//! The workload is what a node's record store does: keep the newest record
//! per slot (origin, kind, key) with an index by `(time, id)` for set
//! reconciliation and one by id for fetches; take records in batches, each
//! batch one durable commit (the writer's group commit); then take newer
//! versions of existing slots (the world's ARI changes); then answer slot
//! lookups and reconciliation range scans. Records are generated, not
//! signed: verification costs the same whichever engine stores them.

mod engines;
mod workload;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use engines::Engine;
use workload::{Proof, Workload};

#[derive(Debug, Parser)]
struct Args {
    /// sqlite, lmdb, fjall or redb.
    #[arg(long)]
    engine: String,
    /// Distinct slots loaded.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Newer versions of loaded slots taken after the load, as a share of `records`.
    #[arg(long, default_value_t = 0.1)]
    updates: f64,
    /// Records per durable commit.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// `single` (a signature per record) or `bundle` (a bundle's proof per record).
    #[arg(long, default_value = "single")]
    proof: String,
    #[arg(long, default_value_t = 100_000)]
    lookups: usize,
    #[arg(long, default_value_t = 200)]
    scans: usize,
    /// Items per reconciliation range scan.
    #[arg(long, default_value_t = 10_000)]
    scan_len: usize,
    /// Where the store lives (a fresh temporary directory if not given).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep what each slot holds in memory (as a catalog would) and write
    /// without looking at the store first.
    #[arg(long)]
    blind: bool,
    /// fjall's block cache in MiB (its default is 32; SQLite's writer
    /// runs with 256).
    #[arg(long)]
    fjall_cache_mib: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let proof = match args.proof.as_str() {
        "single" => Proof::Single,
        "bundle" => Proof::Bundle,
        other => anyhow::bail!("--proof {other:?}: single or bundle"),
    };
    let temp = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let dir = temp.path().join(&args.engine);
    std::fs::create_dir_all(&dir)?;
    let mut engine = engines::open(&args.engine, &dir, args.fjall_cache_mib)?;
    let mut workload = Workload::new(args.records, proof);
    let mut slots = args.blind.then(Slots::default);

    let (load_s, body_bytes) = load(engine.as_mut(), &mut workload, &mut slots, args.records, args.batch)?;
    let update_count = (args.records as f64 * args.updates) as u64;
    let started = Instant::now();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut batch = Vec::with_capacity(args.batch);
    for _ in 0..update_count {
        let row = workload.update(rng.gen_range(0..args.records));
        batch.extend(known(&mut slots, row));
        if batch.len() == args.batch {
            engine.put_batch(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        engine.put_batch(&batch)?;
    }
    let update_s = started.elapsed().as_secs_f64();
    engine.settle()?;

    let mut lookup_us = Vec::with_capacity(args.lookups);
    let mut found = 0;
    for _ in 0..args.lookups {
        let slot = workload.slot_key(rng.gen_range(0..args.records));
        let started = Instant::now();
        found += usize::from(engine.get_slot(&slot)?.is_some());
        lookup_us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    anyhow::ensure!(found == args.lookups, "{found} of {} slots found", args.lookups);
    let mut scan_ms = Vec::with_capacity(args.scans);
    let (first, last) = workload.time_span();
    for _ in 0..args.scans {
        let from = rng.gen_range(first..last.max(first + 1));
        let started = Instant::now();
        let seen = engine.scan_by_time(from, args.scan_len)?;
        scan_ms.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(seen > 0 || from > last, "an empty scan from {from}");
    }
    let slots = engine.count_slots()?;
    anyhow::ensure!(slots == args.records, "{slots} slots held, {} loaded", args.records);
    drop(engine);
    let disk = disk_bytes(&dir)?;

    let result = json!({
        "engine": args.engine,
        "proof": args.proof,
        "records": args.records,
        "batch": args.batch,
        "blind": args.blind,
        "fjall_cache_mib": args.fjall_cache_mib,
        "record_bytes_mean": body_bytes as f64 / args.records as f64,
        "load_records_per_s": args.records as f64 / load_s,
        "update_records_per_s": update_count as f64 / update_s,
        "disk_bytes_per_record": disk as f64 / args.records as f64,
        "rss_mb_max": rss_max_mb()?,
        "lookup_us_p50": quantile(&mut lookup_us, 0.5),
        "lookup_us_p99": quantile(&mut lookup_us, 0.99),
        "scan_items": args.scan_len,
        "scan_ms_p50": quantile(&mut scan_ms, 0.5),
        "scan_ms_p99": quantile(&mut scan_ms, 0.99),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n")
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// Loads `count` fresh slots; returns the seconds it took and the bytes of
/// the records' bodies.
fn load(
    engine: &mut dyn Engine,
    workload: &mut Workload,
    slots: &mut Option<Slots>,
    count: u64,
    batch_len: usize,
) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut body_bytes = 0;
    let mut batch = Vec::with_capacity(batch_len);
    let mut next_report = count / 10;
    for slot in 0..count {
        let row = workload.fresh(slot);
        body_bytes += row.signed.len() as u64;
        batch.extend(known(slots, row));
        if batch.len() == batch_len {
            engine.put_batch(&batch)?;
            batch.clear();
        }
        if slot + 1 == next_report {
            let rate = (slot + 1) as f64 / started.elapsed().as_secs_f64();
            eprintln!("  {} records loaded, {rate:.0}/s so far", slot + 1);
            next_report += count / 10;
        }
    }
    if !batch.is_empty() {
        engine.put_batch(&batch)?;
    }
    Ok((started.elapsed().as_secs_f64(), body_bytes))
}

/// What each slot holds, by slot: version and `time ‖ id`.
type Slots = std::collections::HashMap<Vec<u8>, (u64, [u8; 40])>;

/// `row` with what its slot holds when `slots` knows it; nothing when the
/// slot holds a version as new.
fn known(slots: &mut Option<Slots>, mut row: workload::Row) -> Option<workload::Row> {
    let Some(slots) = slots else { return Some(row) };
    let mut head = [0; 40];
    head[..8].copy_from_slice(&row.time_ms.to_be_bytes());
    head[8..].copy_from_slice(&row.id);
    let replaces = match slots.get(&row.slot) {
        Some((version, _)) if *version >= row.version => return None,
        Some((_, old)) => Some(*old),
        None => None,
    };
    slots.insert(row.slot.clone(), (row.version, head));
    row.replaces = Some(replaces);
    Some(row)
}

fn quantile(values: &mut [f64], q: f64) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_by(f64::total_cmp);
    let at = ((values.len() - 1) as f64 * q).round() as usize;
    json!(values[at])
}

fn disk_bytes(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { disk_bytes(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

/// The process's peak resident memory (`VmHWM`), in MiB.
fn rss_max_mb() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    let kb: f64 = line.split_whitespace().nth(1).context("VmHWM value")?.parse()?;
    Ok(kb / 1024.0)
}
