//! Command-line arguments, parsed without touching the environment beyond
//! `CARAVAN_*` variables that clap reads for us.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "caravan", version, about = "An open peer-to-peer travel distribution network node")]
#[command(after_help = "Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change the level.")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node's data directory: its signing key (node.key, mode 0600), caravan.toml and database.
    Init(Init),
    /// Run and manage a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Generate a connected peer graph where every peer has at least D neighbours; writes graph.txt.
    Topology(TopologyArgs),
    /// Measure throughput; prints a table and writes a flat JSON object.
    Bench(Bench),
}

#[derive(Debug, clap::Args)]
pub struct TopologyArgs {
    /// Number of peers (numbered 0..N).
    #[arg(long)]
    pub peers: u32,
    /// Minimum number of neighbours of every peer.
    #[arg(long)]
    pub degree: u32,
    /// Random seed: the same seed gives the same graph.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the graph: one line per edge, `i j`, 0-based.
    #[arg(long, default_value = "graph.txt")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct Init {
    /// The node's data directory.
    #[arg(long, env = "CARAVAN_DATA_DIR", default_value = "caravan-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a node: the ledger and the HTTP API (initializes the data directory on first run).
    Run(NodeRun),
}

#[derive(Debug, clap::Args)]
pub struct NodeRun {
    /// The node's data directory.
    #[arg(long, env = "CARAVAN_DATA_DIR", default_value = "caravan-data")]
    pub data_dir: PathBuf,
    /// Address for the HTTP API; overrides `http` in caravan.toml (default 127.0.0.1:7070).
    #[arg(long, env = "CARAVAN_HTTP")]
    pub http: Option<SocketAddr>,
    /// Multiaddr to listen on for peers, e.g. /ip4/127.0.0.1/tcp/7171; repeatable.
    /// Adds to `p2p.listen` in caravan.toml.
    #[arg(long = "p2p", value_name = "MULTIADDR")]
    pub p2p: Vec<String>,
    /// Multiaddr of a peer to dial at start; repeatable. Adds to `p2p.bootstrap`.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct Bench {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Durable holds per second through the ledger writer with group commit.
    Ledger(LedgerBench),
    /// Records verified + stored + applied to the catalog per second on one core.
    Records(RecordsBench),
}

#[derive(Debug, clap::Args)]
pub struct LedgerBench {
    /// Where to write the JSON result (fields holds_per_s, fsync_per_s, batch_size).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Concurrent clients submitting holds.
    #[arg(long, default_value_t = 512)]
    pub clients: usize,
    /// Seconds to measure. Holds last an hour, so keep rate × seconds under
    /// the ledger's limit of 1,000,000 live holds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Listings the holds spread over.
    #[arg(long, default_value_t = 1_000)]
    pub listings: u32,
    /// Directory for the benchmark's database (a temporary one by default);
    /// put it on the disk you want to measure.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RecordsBench {
    /// Where to write the JSON result (fields records_per_s_verify_store_apply,
    /// bundled_records_per_s_verify_store_apply, verify_per_s).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Records in each run.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// Distinct origins signing them.
    #[arg(long, default_value_t = 1_000)]
    pub origins: usize,
    /// Records per bundle in the bundled run.
    #[arg(long, default_value_t = 256)]
    pub bundle_size: usize,
    /// Records per verification batch and per transaction (the node's
    /// writer takes up to 4096 per transaction).
    #[arg(long, default_value_t = 4_096)]
    pub batch: usize,
    /// Directory for the benchmark's database (a temporary one by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Args::command().debug_assert();
    }
}
