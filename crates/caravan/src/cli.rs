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
    /// Run a local cluster: one node process per peer of a graph, on loopback.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Drive ARI changes into running nodes so each publishes signed records.
    Load(LoadArgs),
    /// Measure throughput; prints a table and writes a flat JSON object.
    Bench(Bench),
    /// Manage the node's accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// A small travel network on this machine: two agencies, four providers, sample services and logins.
    Demo(DemoArgs),
    /// Run an owner as a replica group of nodes (Raft): one leads, the others follow and take over.
    #[command(subcommand)]
    Group(GroupCommand),
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Initialize a node (a replica group of one when it runs) and print its origin, peer id and member id.
    Init(Init),
    /// Join a running group, then run the node: with an invitation (`--invite`), or with a copy of the owner's
    /// node.key and an admin token of a member (`--via`).
    Join(GroupJoin),
    /// Print a one-time, expiring invitation for a machine to join the group (`caravan group join --invite`).
    Invite(GroupInvite),
    /// Show a member's view of its group: role, term, leader, members and log indexes.
    Status(GroupApi),
    /// Take a member out of its group (by default the member asked).
    Leave(GroupLeave),
}

#[derive(Debug, clap::Args)]
pub struct GroupJoin {
    /// The new member's data directory.
    #[arg(long, env = "CARAVAN_DATA_DIR", default_value = "caravan-data")]
    pub data_dir: PathBuf,
    /// An invitation from `caravan group invite`: the owner key comes over an encrypted peer connection.
    #[arg(long, conflicts_with_all = ["via", "key"], required_unless_present = "via")]
    pub invite: Option<String>,
    /// A member of the group to join: its HTTP API, e.g. http://10.0.0.1:7070.
    #[arg(long)]
    pub via: Option<String>,
    /// An admin API token of that member.
    #[arg(long, env = "CARAVAN_TOKEN")]
    pub token: Option<String>,
    /// A copy of the owner's node.key, installed in the data directory if it has none.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Address for this node's HTTP API; overrides `http` in caravan.toml.
    #[arg(long, env = "CARAVAN_HTTP")]
    pub http: Option<SocketAddr>,
    /// Multiaddr this member listens on, which the group dials, e.g. /ip4/10.0.0.2/tcp/7171; repeatable.
    #[arg(long = "p2p", value_name = "MULTIADDR")]
    pub p2p: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct GroupInvite {
    #[command(flatten)]
    pub api: GroupApi,
    /// How long the invitation lasts, in seconds (at most a week).
    #[arg(long, default_value_t = 3600)]
    pub ttl_seconds: u32,
}

#[derive(Debug, clap::Args)]
pub struct GroupApi {
    /// The member's HTTP API.
    #[arg(long, env = "CARAVAN_API", default_value = "http://127.0.0.1:7070")]
    pub api: String,
    /// An admin API token of that member.
    #[arg(long, env = "CARAVAN_TOKEN")]
    pub token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct GroupLeave {
    #[command(flatten)]
    pub api: GroupApi,
    /// The member to take out (its id, as `group status` shows); the asked member by default.
    #[arg(long)]
    pub member: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the first agency's pages are served; the other nodes take the ports after it.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub http: SocketAddr,
    /// The nodes' data directories go here (kept between runs).
    #[arg(long, default_value = "caravan-demo")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account (verified). The password comes from CARAVAN_PASSWORD,
    /// or the first line of standard input.
    Add(UserAdd),
    /// Issue an API token for an account; it is printed once.
    Token(UserToken),
}

#[derive(Debug, clap::Args)]
pub struct UserAdd {
    #[arg(long, env = "CARAVAN_DATA_DIR", default_value = "caravan-data")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub email: String,
    /// traveller, provider or admin.
    #[arg(long, default_value = "traveller", conflicts_with = "admin")]
    pub role: String,
    /// Same as --role admin: how the first admin is made.
    #[arg(long)]
    pub admin: bool,
}

#[derive(Debug, clap::Args)]
pub struct UserToken {
    #[arg(long, env = "CARAVAN_DATA_DIR", default_value = "caravan-data")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub email: String,
    /// What the token is for, e.g. "channel manager".
    #[arg(long)]
    pub name: String,
}

/// Where a cluster lives: its members' data directories and `cluster.json`.
pub const CLUSTER_DIR_DEFAULT: &str = "caravan-cluster";

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start one node per peer of GRAPH (see `caravan topology`), dialling
    /// along its edges; print their status; stop them all on Ctrl-C.
    Up(ClusterUp),
    /// Show each member's peers, records held and replication lag.
    Status(ClusterStatus),
}

#[derive(Debug, clap::Args)]
pub struct ClusterUp {
    /// The graph: one line per undirected edge, `i j`.
    #[arg(long, default_value = "graph.txt")]
    pub graph: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterOptions,
    /// Run each peer as an owner's replica group of this many nodes (Raft; 3 survives the loss of one).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=7))]
    pub replicas: u32,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterOptions {
    /// The members' data directories go here (kept between runs).
    #[arg(long, default_value = CLUSTER_DIR_DEFAULT)]
    pub dir: PathBuf,
    /// Member i serves HTTP on BASE_PORT + 2i and p2p on BASE_PORT + 2i + 1.
    #[arg(long, default_value_t = 17_000)]
    pub base_port: u16,
    /// How often each member signs and publishes its changes, ms.
    #[arg(long, default_value_t = 250)]
    pub publish_interval_ms: u64,
}

#[derive(Debug, clap::Args)]
pub struct ClusterStatus {
    #[arg(long, default_value = CLUSTER_DIR_DEFAULT)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LoadShape {
    /// seed: RATE events/s per node; world: RATE events/s in total.
    #[arg(long, value_enum, default_value = "seed")]
    pub mode: crate::load::Mode,
    /// Events per second (per node in seed mode, in total in world mode).
    #[arg(long, default_value_t = 1_200.0)]
    pub rate: f64,
    /// About how long each signed record is, bytes.
    #[arg(long, default_value_t = 300)]
    pub bytes: usize,
    /// Listings per node the events walk (default: one per event per second).
    #[arg(long)]
    pub listings: Option<u32>,
}

impl LoadShape {
    /// This load, run for `seconds`.
    pub fn plan(&self, seconds: u64) -> crate::load::Plan {
        crate::load::Plan {
            mode: self.mode,
            rate: self.rate,
            record_bytes: self.bytes,
            duration: std::time::Duration::from_secs(seconds),
            listings: self.listings,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub shape: LoadShape,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// The cluster to load (its `cluster.json`), unless --node is given.
    #[arg(long, default_value = CLUSTER_DIR_DEFAULT)]
    pub cluster: PathBuf,
    /// A node's HTTP address to load instead; repeatable.
    #[arg(long = "node", value_name = "ADDR")]
    pub nodes: Vec<SocketAddr>,
    /// An API token the nodes accept (an admin's or a provider's); a
    /// cluster's own by default.
    #[arg(long, env = "CARAVAN_TOKEN")]
    pub token: Option<String>,
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
    /// A local cluster under load: CPU, memory, bytes and propagation latency per node.
    Sync(SyncBench),
    /// How fast a node that was offline while others published catches up.
    Catchup(CatchupBench),
    /// Stay and trip search latency over a large synthetic catalog.
    Search(SearchBench),
    /// Multi-part bookings per second across owners over libp2p, and their latency.
    Booking(BookingBench),
    /// Holds through an owner's replica group of three processes; the leader is killed halfway.
    Failover(FailoverBench),
    /// A fresh node bootstraps a synthetic world from seed nodes, takes the world's load, searches, restarts.
    World(WorldBench),
}

#[derive(Debug, clap::Args)]
pub struct WorldBench {
    /// Where to write the JSON result (fields listings, origins, records,
    /// bootstrap_s, bootstrap_records_per_s, bootstrap_bytes_per_record,
    /// rss_mb_max, index_bytes_per_listing, disk_bytes_per_listing,
    /// cpu_pct_world_load, lag_p99_ms, stay_search_p50_ms,
    /// stay_search_p99_ms, restart_to_search_s, converged).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Listings in the world, each with a year of availability.
    #[arg(long, default_value_t = 1_000_000)]
    pub listings: u64,
    /// Origins publishing them (default: one per 10 listings).
    #[arg(long)]
    pub origins: Option<u64>,
    /// Seed nodes holding the world before the fresh node starts.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub seeds: u32,
    /// The world's changes per second, in total, during the load.
    #[arg(long, default_value_t = 1_200.0)]
    pub rate: f64,
    /// Seconds of world load.
    #[arg(long, default_value_t = 60)]
    pub load_seconds: u64,
    /// Stay searches on the fresh node.
    #[arg(long, default_value_t = 2_000)]
    pub searches: u32,
    /// The world's seed: the same seed, the same world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Node `i` serves HTTP on `base_port + 2i` and p2p on the next port.
    #[arg(long, default_value_t = 19_000)]
    pub base_port: u16,
    /// Directory for the nodes' data (a temporary one by default); plan
    /// ~6 KB per listing per node.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct FailoverBench {
    /// Where to write the JSON result (fields holds_per_s, latency_p99_ms,
    /// failover_s, acked_lost, oversold).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Concurrent travellers holding rooms back to back over HTTP.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds to run; the leader is killed halfway.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// The three members take the six ports from this one.
    #[arg(long, default_value_t = 21_000)]
    pub base_port: u16,
    /// Rooms of the hotel; few rooms make travellers race for the last ones.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rooms: u32,
    /// Nights the holds spread over, from tomorrow.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i32).range(1..=700))]
    pub nights: i32,
    /// The group's election timeout, ms, with a heartbeat of a tenth of it
    /// (the node's default, 1,000 ms, when not given).
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub election_timeout_ms: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct SearchBench {
    /// Where to write the JSON result (fields stay_search_p50_ms,
    /// stay_search_p99_ms, trip_search_p99_ms).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Stay listings in the catalog.
    #[arg(long, default_value_t = 1_000_000)]
    pub listings: u32,
    /// Cities they spread over (one city holds listings / cities).
    #[arg(long, default_value_t = 2_000)]
    pub cities: u32,
    /// Daily trip departures in the timetable.
    #[arg(long, default_value_t = 10_000)]
    pub departures: u32,
    /// Stations the trips run between.
    #[arg(long, default_value_t = 300)]
    pub stations: u32,
    /// Queries of each kind.
    #[arg(long, default_value_t = 2_000)]
    pub queries: u32,
}

#[derive(Debug, clap::Args)]
pub struct BookingBench {
    /// Where to write the JSON result (fields bookings_per_s, latency_p50_ms,
    /// latency_p99_ms for a 2-part booking across two owners).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Concurrent travellers booking back to back.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Parts per booking: 2 (a room and a bus seat at two owners) or 1
    /// (the room only: one owner's throughput over the network).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub parts: u8,
}

/// The local cluster a network benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchCluster {
    #[arg(long, default_value_t = 10)]
    pub peers: u32,
    #[arg(long, default_value_t = 3)]
    pub degree: u32,
    /// The topology's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First port; see `cluster up`.
    #[arg(long, default_value_t = 17_000)]
    pub base_port: u16,
    /// Directory for the cluster (a temporary one by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SyncBench {
    /// Where to write the JSON result.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: BenchCluster,
    #[command(flatten)]
    pub shape: LoadShape,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// The nodes' publishing interval, ms (default: 250 in seed mode,
    /// 10 in world mode so most records are signed one by one).
    #[arg(long)]
    pub publish_interval_ms: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct CatchupBench {
    /// Where to write the JSON result (fields catchup_s, records_missing).
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: BenchCluster,
    /// The others' load while the node is offline (BENCHMARKS.md uses
    /// `--mode world`).
    #[command(flatten)]
    pub shape: LoadShape,
    /// Seconds the node stays offline while the others publish.
    #[arg(long, default_value_t = 600)]
    pub offline: u64,
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
