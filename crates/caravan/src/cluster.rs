//! `caravan cluster`: one node process per peer of a topology graph, on
//! loopback, each with its own data directory and ports, dialling its
//! neighbours along the graph's edges.
//!
//! The cluster directory holds `node-<i>/` (data, `caravan.toml`,
//! `node.log`) and `cluster.json`, which `cluster status` reads. Members
//! are stopped with SIGINT, as Ctrl-C would, so each finishes its queued
//! work and closes its database cleanly.
//!
//! With replicas, each peer of the graph is an owner run as a replica
//! group: `node-<i>` starts it, and `node-<i>-<r>` (a copy of its key,
//! its own peer and member ids) join it, as `caravan group join` would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caravan_api::dto::{GroupMemberInput, GroupView, NodeStatus};
use caravan_topology::Graph;
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "cluster.json";
/// How long a member gets to stop after SIGINT before it is killed: a
/// node holding the world saves a catalog snapshot of ~1.3 GB as it stops
/// (systemd's default stop timeout is 90 s).
const STOP_GRACE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct Options {
    pub dir: PathBuf,
    /// Member `i` serves HTTP on `base_port + 2i` and p2p on `base_port + 2i + 1`.
    pub base_port: u16,
    pub publish_interval_ms: u64,
    /// An admin API token every member accepts (see [`new_token`]).
    pub token: String,
    /// Nodes per peer of the graph: 1, or a replica group of this many.
    pub replicas: u32,
    /// The groups' election timeout, ms (heartbeat a tenth of it); the
    /// node's default when `None`.
    pub election_timeout_ms: Option<u64>,
}

/// The admin every cluster member has; its API token is the cluster's.
pub const ADMIN_EMAIL: &str = "admin@cluster.local";

/// A fresh random API token for a cluster, in the form clients send.
pub fn new_token() -> String {
    caravan_accounts::token::Secret::from_bytes(rand::random()).reveal()
}

/// One member as `cluster.json` records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    /// The peer of the graph this node runs.
    pub index: u32,
    /// Which of the peer's replicas it is: 0 started the group.
    #[serde(default)]
    pub replica: u32,
    pub pid: u32,
    pub http: SocketAddr,
    pub p2p: String,
    pub data_dir: PathBuf,
}

impl Member {
    /// `i` for a peer's first node, `i.r` for its replicas.
    pub fn name(&self) -> String {
        match self.replica {
            0 => self.index.to_string(),
            r => format!("{}.{r}", self.index),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    members: Vec<Member>,
    /// The members' shared admin API token.
    #[serde(default)]
    token: Option<String>,
}

/// Running member processes; stops them all when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    members: Vec<Member>,
    children: Vec<Option<Child>>,
    token: String,
}

impl Cluster {
    /// Prepares every member's data directory and configuration, then
    /// starts them all. Data from an earlier run in `dir` is kept.
    pub fn up(graph: &Graph, options: &Options) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster::prepare(graph, options)?;
        for i in 0..cluster.members.len() {
            cluster.start(i)?;
        }
        Ok(cluster)
    }

    /// Prepares every member's data directory and configuration without
    /// starting any: [`Cluster::start`] starts each.
    pub fn prepare(graph: &Graph, options: &Options) -> anyhow::Result<Cluster> {
        let peers = graph.peers();
        let replicas = options.replicas.max(1);
        let last_port = options.base_port as u32 + 2 * peers * replicas;
        if last_port > u16::MAX as u32 {
            bail!("{} nodes need ports up to {last_port}: lower --base-port", peers * replicas);
        }
        // Peers' first nodes take the first ports, their replicas the rest.
        let slot = |i: u32, r: u32| if r == 0 { i } else { peers + i * (replicas - 1) + r - 1 };
        let port = |slot: u32, offset: u32| (options.base_port as u32 + 2 * slot + offset) as u16;
        let p2p = |slot: u32| format!("/ip4/127.0.0.1/tcp/{}", port(slot, 1));
        let mut members = Vec::with_capacity((peers * replicas) as usize);
        for r in 0..replicas {
            for i in 0..peers {
                let http = SocketAddr::from(([127, 0, 0, 1], port(slot(i, r), 0)));
                for address in [http, SocketAddr::from(([127, 0, 0, 1], port(slot(i, r), 1)))] {
                    std::net::TcpListener::bind(address)
                        .with_context(|| format!("port {} is taken: choose another --base-port", address.port()))?;
                }
                let first = options.dir.join(format!("node-{i}"));
                let data_dir = if r == 0 { first.clone() } else { options.dir.join(format!("node-{i}-{r}")) };
                let joins = r > 0 && !data_dir.join(caravan_node::identity::KEY_FILE).exists();
                if joins {
                    // A new replica: the owner's key, its own ids.
                    std::fs::create_dir_all(&data_dir)?;
                    let key = caravan_node::identity::KEY_FILE;
                    std::fs::copy(first.join(key), data_dir.join(key)).context("copying the owner's key")?;
                }
                caravan_node::init(&data_dir).with_context(|| format!("initializing {}", data_dir.display()))?;
                if joins {
                    let leader = caravan_node::identity(&first)?.peer_id;
                    caravan_node::prepare_join(&data_dir, &[leader])?;
                }
                install_token(&data_dir, &options.token)?;
                let mut config = caravan_node::Config::load(&data_dir).map_err(anyhow::Error::msg)?;
                config.http = http;
                config.ledger.publish_interval_ms = options.publish_interval_ms;
                if let Some(election_timeout_ms) = options.election_timeout_ms {
                    config.group.election_timeout_ms = election_timeout_ms;
                    config.group.heartbeat_ms = election_timeout_ms / 10;
                }
                config.p2p.listen = vec![p2p(slot(i, r))];
                config.p2p.bootstrap = match r {
                    // Each edge is dialled once, by its higher end.
                    0 => graph.neighbours(i).into_iter().filter(|&j| j < i).map(p2p).collect(),
                    // A replica follows its group's first node.
                    _ => vec![p2p(i)],
                };
                // The graph is the experiment: no peers beyond its edges.
                config.p2p.discovery = false;
                config.validate().map_err(anyhow::Error::msg)?;
                std::fs::write(data_dir.join(caravan_node::config::CONFIG_FILE), config.to_toml())?;
                members.push(Member { index: i, replica: r, pid: 0, http, p2p: p2p(slot(i, r)), data_dir });
            }
        }
        let children = members.iter().map(|_| None).collect();
        Ok(Cluster { dir: options.dir.clone(), members, children, token: options.token.clone() })
    }

    /// Adds every replica its group does not have yet, one at a time (each
    /// answer waits until the new member has caught up and votes).
    pub async fn form_groups(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        for replica in self.members.iter().filter(|m| m.replica > 0) {
            let first = &self.members[replica.index as usize];
            let url = format!("http://{}/api/v1/group", first.http);
            let group: GroupView = crate::group::get(client, &url).await?;
            let me = caravan_node::identity(&replica.data_dir)?;
            if group.members.iter().any(|m| m.id == me.member_id) {
                continue;
            }
            let input =
                GroupMemberInput { member_id: me.member_id, peer_id: me.peer_id, addrs: vec![replica.p2p.clone()] };
            let response = client.post(format!("{url}/members")).json(&input).send().await?;
            let joined: anyhow::Result<GroupView> = crate::group::answer(response).await;
            joined.with_context(|| format!("node {} joining the group of node {}", replica.name(), replica.index))?;
        }
        Ok(())
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn http_addresses(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.http).collect()
    }

    /// Starts member `i` (again), logging to its `node.log`; `i` counts
    /// every node, peers' first nodes first. The node dies with this
    /// process; call this from the thread that owns the cluster (the
    /// kernel's parent-death signal follows the thread that started it).
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let member = &mut self.members[i];
        let log_path = member.data_dir.join("node.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let exe = std::env::current_exe().context("finding the caravan executable")?;
        let child = std::process::Command::new(exe)
            .arg("node")
            .arg("run")
            .arg("--data-dir")
            .arg(&member.data_dir)
            // It dies with this process, however this process ends.
            .env(crate::stop::PARENT_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {i}"))?;
        member.pid = child.id();
        self.children[i] = Some(child);
        self.save()
    }

    /// Stops member `i` with SIGINT, killing it if it has not ended in time.
    pub fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(mut child) = self.children[i].take() else { return Ok(()) };
        interrupt(child.id());
        let deadline = Instant::now() + STOP_GRACE;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                eprintln!("node {i} did not stop within {STOP_GRACE:?}; killing it");
                child.kill()?;
                child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills member `i` with SIGKILL, as a machine that loses power.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[i].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops every member: all are interrupted first, so they stop in parallel.
    pub fn down(&mut self) -> anyhow::Result<()> {
        for child in self.children.iter().flatten() {
            interrupt(child.id());
        }
        for i in 0..self.children.len() {
            self.stop(i)?;
        }
        Ok(())
    }

    /// Members whose process has ended, with how it ended.
    pub fn exited(&mut self) -> Vec<(Member, String)> {
        let mut exited = Vec::new();
        for (member, slot) in self.members.iter().zip(self.children.iter_mut()) {
            if let Some(child) = slot {
                if let Ok(Some(status)) = child.try_wait() {
                    exited.push((member.clone(), status.to_string()));
                    *slot = None;
                }
            }
        }
        exited
    }

    /// Waits until every running member answers and has at least as many
    /// peers as the graph gives it.
    pub async fn wait_ready(&self, client: &reqwest::Client, graph: &Graph, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let bar = crate::progress::counting(self.members.len() as u64, "nodes ready");
        loop {
            let statuses = statuses(client, &self.members, false).await;
            let waiting: Vec<String> = self
                .members
                .iter()
                .zip(&statuses)
                .filter(|(m, s)| match s {
                    Ok(status) if m.replica > 0 => status.peers == 0,
                    Ok(status) => status.peers < graph.neighbours(m.index).len() as u64,
                    Err(_) => true,
                })
                .map(|(m, _)| m.name())
                .collect();
            bar.set_position((self.members.len() - waiting.len()) as u64);
            if waiting.is_empty() {
                bar.finish_and_clear();
                return Ok(());
            }
            if Instant::now() >= deadline {
                bar.abandon();
                bail!("nodes {waiting:?} not ready after {timeout:?}; see their node.log in {}", self.dir.display());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn save(&self) -> anyhow::Result<()> {
        let state = State { members: self.members.clone(), token: Some(self.token.clone()) };
        let path = self.dir.join(STATE_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&state)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.down() {
            eprintln!("stopping the cluster: {error:#}");
        }
    }
}

fn interrupt(pid: u32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    // It may have ended already; then there is nothing to do.
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
}

/// The members `cluster up` recorded in `dir`.
pub fn load_members(dir: &Path) -> anyhow::Result<Vec<Member>> {
    Ok(load_state(dir)?.members)
}

/// The cluster's admin API token, from `cluster.json`.
pub fn load_token(dir: &Path) -> anyhow::Result<Option<String>> {
    Ok(load_state(dir)?.token)
}

fn load_state(dir: &Path) -> anyhow::Result<State> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is a cluster running from {}?)", path.display(), dir.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Gives the member at `data_dir` the cluster's admin and its token.
fn install_token(data_dir: &Path, token: &str) -> anyhow::Result<()> {
    let secret = caravan_accounts::token::Secret::parse(token).context("a cluster token is 64 hex characters")?;
    let conn = caravan_store::open_writer(&data_dir.join(caravan_store::DB_FILE))?;
    let now = crate::now();
    let already =
        caravan_store::users::token_by_hash(&conn, &secret.stored_hash(caravan_accounts::token::TokenKind::Api))?;
    if already.is_none() {
        caravan_services::accounts::rules::install_admin_token(&conn, ADMIN_EMAIL, &secret, "cluster", now)?;
    }
    Ok(())
}

/// Every member's `/api/v1/status`, in member order.
pub async fn statuses(
    client: &reqwest::Client,
    members: &[Member],
    with_digest: bool,
) -> Vec<anyhow::Result<NodeStatus>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (position, member) in members.iter().enumerate() {
        let url = format!("http://{}/api/v1/status?digest={with_digest}", member.http);
        let client = client.clone();
        tasks.spawn(async move {
            let answer = async {
                let response = client.get(&url).timeout(Duration::from_secs(30)).send().await?;
                let response = response.error_for_status()?;
                Ok::<_, anyhow::Error>(response.json::<NodeStatus>().await?)
            };
            (position, answer.await)
        });
    }
    let mut answers: Vec<(usize, anyhow::Result<NodeStatus>)> = Vec::with_capacity(members.len());
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.unwrap_or_else(|e| (usize::MAX, Err(anyhow::anyhow!("status task failed: {e}")))));
    }
    answers.sort_by_key(|(position, _)| *position);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

/// A table of the members' state; `behind` counts the records the member
/// holds fewer than the fullest member.
pub fn status_table(members: &[Member], statuses: &[anyhow::Result<NodeStatus>]) -> String {
    use std::fmt::Write;
    let most = statuses.iter().flatten().map(|s| s.records_held).max().unwrap_or(0);
    let mut out = String::new();
    writeln!(
        out,
        "{:>4} {:>8} {:<21} {:>5} {:>9} {:>9} {:>7} {:>11} {:>10}",
        "node", "pid", "http", "peers", "records", "listings", "behind", "lag_last_ms", "lag_p99_ms"
    )
    .expect("writing to a String");
    for (member, status) in members.iter().zip(statuses) {
        let line = match status {
            Ok(s) => format!(
                "{:>4} {:>8} {:<21} {:>5} {:>9} {:>9} {:>7} {:>11} {:>10}",
                member.name(),
                member.pid,
                member.http,
                s.peers,
                s.records_held,
                s.catalog_listings,
                most.saturating_sub(s.records_held),
                s.replication_lag.last_ms,
                s.replication_lag.p99_ms
            ),
            Err(error) => format!("{:>4} {:>8} {:<21} down: {error:#}", member.name(), member.pid, member.http),
        };
        writeln!(out, "{line}").expect("writing to a String");
    }
    out
}
