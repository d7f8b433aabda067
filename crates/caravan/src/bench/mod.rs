//! `caravan bench <scenario>`: whole-path measurements that print a table
//! and write a flat JSON object. Figures go to BENCHMARKS.md; nothing here
//! gates a test.
//!
//! The drivers spawn their own client tasks: they stand in for the many
//! HTTP clients of a real node, outside it.

mod booking;
mod catchup;
mod failover;
mod ledger;
mod proc_stats;
mod records;
mod search;
mod sync;
mod world;

use anyhow::Context;
use serde_json::{Map, Value};
use std::path::Path;

use crate::cli::{Bench, Scenario};

pub fn run(bench: Bench) -> anyhow::Result<()> {
    let (name, json_path, result) = match bench.scenario {
        Scenario::Ledger(args) => ("ledger", args.json.clone(), ledger::run(&args)?),
        Scenario::Records(args) => ("records", args.json.clone(), records::run(&args)?),
        Scenario::Sync(args) => ("sync", args.json.clone(), sync::run(&args)?),
        Scenario::Catchup(args) => ("catchup", args.json.clone(), catchup::run(&args)?),
        Scenario::Search(args) => ("search", args.json.clone(), search::run(&args)?),
        Scenario::Booking(args) => ("booking", args.json.clone(), booking::run(&args)?),
        Scenario::Failover(args) => ("failover", args.json.clone(), failover::run(&args)?),
        Scenario::World(args) => ("world", args.json.clone(), world::run(&args)?),
    };
    print_table(name, &result);
    if let Some(path) = json_path {
        write_json(&path, &result)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_table(name: &str, result: &Map<String, Value>) {
    let width = result.keys().map(String::len).max().unwrap_or(0);
    println!("bench {name}");
    for (key, value) in result {
        match value {
            Value::Number(n) if n.is_f64() => println!("  {key:<width$}  {:.2}", n.as_f64().unwrap_or_default()),
            // Per-node detail: one compact line each.
            Value::Array(rows) => {
                println!("  {key}:");
                for row in rows {
                    println!("    {row}");
                }
            }
            other => println!("  {key:<width$}  {other}"),
        }
    }
}

fn write_json(path: &Path, result: &Map<String, Value>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(result).expect("JSON of plain values");
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// A directory for a benchmark's database: the one given, or a fresh
/// temporary one removed afterwards.
pub enum BenchDir {
    Given(std::path::PathBuf),
    Temporary(tempfile::TempDir),
}

impl BenchDir {
    pub fn new(given: Option<&Path>) -> anyhow::Result<BenchDir> {
        Ok(match given {
            Some(path) => {
                std::fs::create_dir_all(path)?;
                BenchDir::Given(path.to_owned())
            }
            None => BenchDir::Temporary(tempfile::tempdir().context("creating a temporary directory")?),
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            BenchDir::Given(path) => path,
            BenchDir::Temporary(dir) => dir.path(),
        }
    }
}

/// The `q`-quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A tiny deterministic generator so runs are repeatable without `rand`'s
/// thread-local state.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
