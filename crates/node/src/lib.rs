//! A running Caravan node: the wiring. It opens the data directory
//! (identity, configuration, database), starts the writer thread
//! (`caravan-writer`) and this member of the owner's replica group
//! (`caravan-group`), opens the services (`caravan-services`: accounts,
//! the agency's sagas, the booking service), serves the HTTP surface
//! (`caravan-api`) over them and over its own ledger, catalog and admin
//! views (`services`), starts the network (`network`, over `caravan-net`),
//! owns every thread and task, and stops them in order.
//!
//! ```text
//! HTTP ─► api ─► services ─► group: Raft ─► LedgerMachine ─► writer: sign, store, catalog ─► reply
//! peers ─► net ─► writer: replication core ─► store + catalog
//! ```

pub mod config;
mod database;
mod group;
pub mod identity;
pub mod invitation;
mod network;
mod services;
mod shelf;
pub mod verifier;

pub use caravan_booking::agency;
use caravan_catalog::Catalog;
pub use caravan_net::NetConfig;
pub use caravan_services::mail;
pub use caravan_writer::catalog::CATALOG_FILE;
use caravan_writer::{catalog as stored_catalog, writer};
pub use caravan_writer::{replica_store, Peer, ReplicationEvent, WriterStats, ACTIONS_MAX, BATCH_MAX, QUEUE_MAX};
pub use config::Config;
pub use group::{member_id_of, prepare_join};
pub use identity::NodeKey;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use caravan_api::{AppState, SubmitError};
use caravan_ledger::{Command, Ledger, Reply};
use caravan_model::Timestamp;
use caravan_records::Origin;
use caravan_services::accounts::{Accounts, AccountsSetup};
use caravan_services::agency::Agency;
use caravan_services::booking::{BookingService, BookingSetup, CallSlot};
use caravan_store::rusqlite::Connection;
pub use database::NodeDb;
use network::Network;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Store(#[from] caravan_store::StoreError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Net(#[from] caravan_net::NetError),
    #[error(transparent)]
    Mail(#[from] mail::MailConfigError),
    #[error(transparent)]
    Key(#[from] identity::KeyError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Group(#[from] caravan_group::SetupError),
}

/// What `init` found or made.
#[derive(Debug)]
pub struct Initialized {
    pub origin: Origin,
    /// False when the directory already held a node.
    pub created: bool,
}

/// Creates a node's data directory: key (mode 0600), config and database.
/// Leaves an existing node untouched.
pub fn init(data_dir: &Path) -> Result<Initialized, NodeError> {
    std::fs::create_dir_all(data_dir)?;
    if data_dir.join(identity::KEY_FILE).exists() {
        let key = NodeKey::load(data_dir)?;
        return Ok(Initialized { origin: key.origin(), created: false });
    }
    let key = NodeKey::create(data_dir)?;
    let config_path = data_dir.join(config::CONFIG_FILE);
    if !config_path.exists() {
        std::fs::write(&config_path, Config::default().to_toml())?;
    }
    caravan_store::open_writer(&data_dir.join(caravan_store::DB_FILE))?;
    Ok(Initialized { origin: key.origin(), created: true })
}

/// Who a data directory is in the network and in its replica group.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The owner's signing key: every member of a group shares it.
    pub origin: Origin,
    /// This machine's libp2p peer id: its own, never copied.
    pub peer_id: String,
    /// This machine's member id in its replica group, never reused.
    pub member_id: u64,
}

/// The identity of the node at `data_dir` (which must be initialized),
/// drawing its peer and member ids if it has none yet.
pub fn identity(data_dir: &Path) -> Result<Identity, NodeError> {
    let key = NodeKey::load(data_dir)?;
    let net_key = NodeKey::load_or_create_net_key(data_dir)?;
    let peer_id = caravan_net::peer_id(&caravan_net::keypair_from_seed(net_key.seed()));
    Ok(Identity { origin: key.origin(), peer_id, member_id: group::member_id_of(data_dir)? })
}

/// Settings `Node::open` takes beside the data directory.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub publish_interval_ms: u64,
    /// Where the node reads the time; the wall clock except in tests.
    pub clock: fn() -> Timestamp,
    pub replication: caravan_replication::Config,
    /// How long a hold lasts when the request does not say.
    pub hold_ms_default: i64,
    pub search: config::SearchConfig,
    /// Where people reach the pages, for links in mails.
    pub public_url: String,
    /// How account mails leave the node.
    pub mail: mail::MailConfig,
    /// The replica group's heartbeat and election timeout.
    pub group_timers: caravan_group::Timers,
    /// Whether admins may cut this member off from others (fault tests).
    pub group_fault_hooks: bool,
    /// What each agency may do at this owner.
    pub quotas: caravan_booking::Quotas,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions::from(&Config::default())
    }
}

impl From<&Config> for NodeOptions {
    fn from(config: &Config) -> NodeOptions {
        NodeOptions {
            publish_interval_ms: config.ledger.publish_interval_ms,
            clock: wall_clock,
            replication: caravan_replication::Config::default(),
            hold_ms_default: config.ledger.hold_seconds_default as i64 * 1000,
            search: config.search.clone(),
            public_url: config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.http)),
            mail: config.mail.clone(),
            group_timers: config.group.timers(),
            group_fault_hooks: config.group.fault_hooks,
            quotas: config.quotas,
        }
    }
}

/// A handle on a running node; cheap to clone.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Origin,
    db_path: PathBuf,
    /// The record store; the writer thread writes it, anyone reads.
    records: caravan_store::Records,
    ledger: Arc<RwLock<Ledger>>,
    /// This node's member of its owner's replica group.
    group: Arc<group::OwnerGroup>,
    /// The member's batcher, timers and fail-stop watch (`OwnerGroup::run`).
    group_tasks: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Replication events for the verifier stage, then the writer.
    replication: mpsc::Sender<ReplicationEvent>,
    /// The replication core's actions, for the network task to take.
    actions: Mutex<Option<mpsc::Receiver<caravan_replication::Action<Peer>>>>,
    db: NodeDb,
    stats: Arc<WriterStats>,
    clock: fn() -> Timestamp,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Becomes true when the writer thread ends, however it ends.
    writer_stopped: tokio::sync::watch::Receiver<bool>,
    network: Mutex<Option<Network>>,
    /// Bytes on the network's TCP connections.
    traffic: Arc<caravan_net::Traffic>,
    /// Connected peers' addresses and pings, as the network task saw them.
    links: Arc<caravan_net::PeerLinks>,
    /// The catalog in memory (search, contacts, frozen origins), kept in
    /// step by the writer.
    catalog: Arc<RwLock<Catalog>>,
    /// The stays' listings and runs, which the catalog leaves in the store.
    shelf: shelf::StoreShelf,
    /// Stay searches answered (with the shelf's reads: reads per search).
    stay_searches: std::sync::atomic::AtomicU64,
    /// Whether admins may cut this member off from others (fault tests).
    fault_hooks: bool,
    /// Calls to peers (bookings, and the group's Raft messages), once the
    /// network runs.
    calls: CallSlot,
    /// How peers reach this node, once it listens.
    contact: Mutex<Option<caravan_model::PeerContact>>,
    /// Issuing and redeeming invitations, one at a time.
    invitations: tokio::sync::Mutex<()>,
    hold_ms_default: i64,
    booking: Arc<BookingService<group::OwnerGroup>>,
    agency: Agency<NodeDb, group::OwnerGroup>,
    accounts: Arc<NodeAccounts>,
}

/// The accounts of this node's group.
pub type NodeAccounts = Accounts<NodeDb, group::OwnerGroup>;

/// How often a member looks for accounts the command line wrote into its
/// own database while it ran (a token issued on one machine works at
/// every member within this time; at the machine itself, at once).
const TAKE_IN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Hands the group the accounts the command line writes into this
/// member's own database (and those a version before replicated accounts
/// kept there). A group of one commits alone, so those of the start are
/// handed over before the node serves anyone; a member of a larger group
/// may have no leader yet. Then it looks again every [`TAKE_IN_INTERVAL`]
/// (a cheap query when nothing waits) for as long as the node runs.
async fn take_in_local_accounts(accounts: &Arc<NodeAccounts>, alone: bool) {
    if alone {
        if let Err(error) = accounts.take_in_local().await {
            tracing::warn!(%error, "local accounts not taken into the group yet");
        }
    }
    let accounts = Arc::downgrade(accounts);
    drop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(TAKE_IN_INTERVAL).await;
            // Ends with the node.
            let Some(accounts) = accounts.upgrade() else { return };
            if let Err(error) = accounts.take_in_local().await {
                tracing::debug!(%error, "local accounts not taken into the group yet");
            }
        }
    }));
}

impl Node {
    /// Opens an initialized data directory, replays the ledger log and
    /// starts the writer. Call from within a tokio runtime.
    pub async fn open(data_dir: &Path, options: NodeOptions) -> Result<Node, NodeError> {
        let key = NodeKey::load(data_dir)?;
        let origin = key.origin();
        let db_path = data_dir.join(caravan_store::DB_FILE);
        let mailer = mail::Mailer::new(&options.mail, data_dir.join(mail::OUTBOX_DIR))?;
        options.group_timers.validate(None).map_err(NodeError::Setup)?;
        let mut conn = caravan_store::open_writer(&db_path)?;
        let records = caravan_store::Records::open(&data_dir.join(caravan_store::RECORDS_DIR))?;
        let moved = caravan_store::records::move_from_sqlite(&mut conn, &records)?;
        if moved > 0 {
            tracing::info!(moved, "records moved from the SQLite database to the record store");
        }
        let started = std::time::Instant::now();
        let catalog_file = data_dir.join(CATALOG_FILE);
        let (mut catalog, opened) = stored_catalog::open(&records, &catalog_file, (options.clock)())?;
        let rules = &options.search;
        catalog.index.set_min_connection(rules.min_connection_minutes.clone(), rules.min_connection_minutes_default);
        let listings = catalog.listing_count();
        let catalog = Arc::new(RwLock::new(catalog));
        let load_ms = started.elapsed().as_millis() as u64;
        match opened {
            stored_catalog::Opened::Loaded => tracing::info!(listings, load_ms, "catalog loaded"),
            stored_catalog::Opened::Rebuilt { why } => {
                tracing::info!(listings, load_ms, %why, "catalog rebuilt from the records")
            }
        }
        let legacy = writer::legacy_ledger(&conn)?;
        let stats = Arc::new(WriterStats::default());
        let (queue, receiver) = mpsc::channel(QUEUE_MAX);
        let (actions_tx, actions) = mpsc::channel(ACTIONS_MAX);
        let replica_seed = u64::from_le_bytes(origin.0[..8].try_into().expect("8 bytes"));
        let replica = caravan_replication::Replica::new(options.replication.clone(), replica_seed);
        let (replication, unchecked) = mpsc::channel(verifier::INPUT_MAX);
        let (checked_tx, checked) = mpsc::channel(writer::REPLICATION_QUEUE_MAX);
        tokio::spawn(verifier::run(replica.checker(), options.clock, verifier::workers(), unchecked, checked_tx));
        let writer = writer::Writer {
            replica,
            actions: actions_tx,
            conn,
            records: records.clone(),
            key: key.signing_key().clone(),
            stats: stats.clone(),
            clock: options.clock,
            catalog: catalog.clone(),
            catalog_file: Some(catalog_file),
        };
        let runtime = tokio::runtime::Handle::current();
        let (stopped_tx, writer_stopped) = tokio::sync::watch::channel(false);
        let writer_thread = std::thread::Builder::new().name("ledger-writer".into()).spawn(move || {
            // Dropped on return and on panic alike.
            let _stopped = StoppedOnDrop(stopped_tx);
            writer.run(receiver, checked, runtime)
        })?;
        let net_key = NodeKey::load_or_create_net_key(data_dir)?;
        let peer_id = caravan_net::peer_id(&caravan_net::keypair_from_seed(net_key.seed()));
        let member = caravan_group::Member { peer_id, addrs: Vec::new() };
        let log_path = data_dir.join(group::LOG_FILE);
        let effects = group::WriterEffects::new(queue.clone(), stats.clone(), log_path, records.clone());
        let started = std::time::Instant::now();
        let calls = CallSlot::default();
        let cut_off = caravan_group::CutOff::default();
        let transport = group::NetTransport::new(calls.clone(), cut_off.clone());
        let timers = options.group_timers;
        let setup = caravan_group::MemberSetup { member, timers, clock: options.clock, effects, transport, cut_off };
        let group = group::OwnerGroup::open(data_dir, setup, || Ok(legacy)).await?;
        let group = Arc::new(group);
        tracing::info!(%origin, status = ?group.status(), start_ms = started.elapsed().as_millis() as u64, "replica group running");
        let group_tasks = Mutex::new(Some(tokio::spawn(group.run(options.publish_interval_ms as i64))));
        let ledger = group.ledger();
        let db = NodeDb::new(queue.clone(), caravan_store::open_reader(&db_path)?);
        let shelf = shelf::StoreShelf::new(records.clone(), options.clock);
        let booking = Arc::new(BookingService::new(BookingSetup {
            key: key.signing_key().clone(),
            group: group.clone(),
            ledger: ledger.clone(),
            catalog: catalog.clone(),
            calls: calls.clone(),
            hold_ms_default: options.hold_ms_default,
            quotas: options.quotas,
            clock: options.clock,
        }));
        // Ends once the service is dropped.
        drop(tokio::spawn(booking.run_calls()));
        let spawn_saga: caravan_services::agency::Spawn = |saga| drop(tokio::spawn(saga));
        let agency = Agency::open(db.clone(), booking.clone(), options.clock, spawn_saga).await?;
        // Ends at `Agency::stop`.
        drop(tokio::spawn(agency.conduct()));
        let accounts = Arc::new(Accounts::new(AccountsSetup {
            db: db.clone(),
            group: group.clone(),
            people: group.people(),
            mailer,
            public_url: options.public_url.clone(),
            clock: options.clock,
        }));
        take_in_local_accounts(&accounts, group.is_sole_voter()).await;
        let writer_thread = Mutex::new(Some(writer_thread));
        let actions = Mutex::new(Some(actions));
        let inner = Inner {
            origin,
            db_path,
            records,
            ledger,
            group,
            group_tasks,
            replication,
            actions,
            db,
            stats,
            clock: options.clock,
            writer_thread,
            writer_stopped,
            network: Mutex::new(None),
            traffic: Arc::default(),
            links: Arc::default(),
            catalog,
            shelf,
            stay_searches: Default::default(),
            fault_hooks: options.group_fault_hooks,
            calls,
            contact: Mutex::default(),
            invitations: tokio::sync::Mutex::default(),
            hold_ms_default: options.hold_ms_default,
            booking,
            agency,
            accounts,
        };
        Ok(Node { inner: Arc::new(inner) })
    }

    /// Resolves when the writer thread has ended or the replica group has
    /// stopped on a fatal error. Outside a shutdown that means storage
    /// failed (or a bug): the node cannot take commands any more, and a
    /// restart re-applies the Raft log.
    pub async fn writer_stopped(&self) {
        let mut stopped = self.inner.writer_stopped.clone();
        tokio::select! {
            _ = stopped.wait_for(|stopped| *stopped) => {}
            () = self.inner.group.stopped() => {}
        }
    }

    /// Hands an event from the network to the replication core. Waits when
    /// the writer's queue is full; fails only when the node is stopping.
    pub async fn replicate(&self, event: ReplicationEvent) -> Result<(), NodeError> {
        let stopping = || NodeError::Setup("the node is stopping".into());
        self.inner.replication.send(event).await.map_err(|_| stopping())
    }

    /// The replication core's actions (gossip, send, verdicts), for the one
    /// network task; `None` once taken.
    pub fn take_replication_actions(&self) -> Option<mpsc::Receiver<caravan_replication::Action<Peer>>> {
        self.inner.actions.lock().expect("actions lock").take()
    }

    /// The writer's counters; clone the `Arc` to watch them beyond the
    /// node's life.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.inner.stats
    }

    /// Commits of the group's log so far: one fsync each.
    pub fn log_commits(&self) -> u64 {
        self.inner.group.log_commits()
    }

    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    /// The record store, for reading: only the writer thread writes it.
    pub fn records(&self) -> &caravan_store::Records {
        &self.inner.records
    }

    /// Runs `write` in the writer's next transaction (in a savepoint of its
    /// own, kept only if it returns `Ok`) and answers once it is durable.
    pub async fn write<R, E>(&self, write: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<caravan_store::StoreError> + Send + 'static,
    {
        caravan_services::Database::write(&self.inner.db, write).await
    }

    /// The agency's bookings.
    pub fn agency(&self) -> &Agency<NodeDb, group::OwnerGroup> {
        &self.inner.agency
    }

    /// The accounts of the people who use this node.
    pub fn accounts(&self) -> &Arc<NodeAccounts> {
        &self.inner.accounts
    }

    /// Both sides of the booking protocol at this node.
    pub fn booking(&self) -> &Arc<BookingService<group::OwnerGroup>> {
        &self.inner.booking
    }

    /// Reads the in-memory catalog.
    pub fn read_catalog<R>(&self, read: impl FnOnce(&Catalog) -> R) -> R {
        read(&self.inner.catalog.read().expect("catalog lock"))
    }

    /// Stops taking commands, lets the writer finish what is queued, and
    /// waits for it. Other clones of this handle can no longer submit.
    pub async fn shutdown(self) {
        // Saga tasks write through the writer: stop them at their next step.
        self.inner.agency.stop().await;
        // Raft applies through the writer: stop it (and its tasks) first.
        self.inner.group.shutdown().await;
        let tasks = self.inner.group_tasks.lock().expect("group tasks lock").take();
        if let Some(tasks) = tasks {
            let _ = tasks.await;
        }
        // The network's tasks hold senders to the writer: stop them first.
        let network = self.inner.network.lock().expect("network lock").take();
        if let Some(network) = network {
            network.stop().await;
        }
        let inner = self.inner;
        let thread = inner.writer_thread.lock().expect("writer thread lock").take();
        drop(inner);
        if let Some(thread) = thread {
            // The writer stops once every sender is gone; clones held
            // elsewhere (e.g. in a finished router) must have been dropped.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Node {
    /// Runs `query` on the record store on a blocking thread: a walk over
    /// many records must not hold up the runtime.
    pub(crate) async fn read_records<R: Send + 'static>(
        &self,
        query: impl FnOnce(&caravan_store::Records) -> Result<R, caravan_store::StoreError> + Send + 'static,
    ) -> Result<R, caravan_store::StoreError> {
        let records = self.inner.records.clone();
        match tokio::task::spawn_blocking(move || query(&records)).await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// Runs a command through the owner's replica group; resolves once it
    /// is durable.
    pub async fn submit(&self, command: Command) -> Result<Reply, SubmitError> {
        match self.inner.group.propose(command).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(rejection)) => Err(SubmitError::Rejected(rejection)),
            Err(why) => Err(SubmitError::Unavailable(why.to_string())),
        }
    }

    /// Reads the ledger's committed state.
    pub fn read_ledger<R>(&self, read: impl FnOnce(&Ledger) -> R) -> R {
        read(&self.inner.ledger.read().expect("ledger lock"))
    }

    /// This node's publishing identity.
    pub fn origin(&self) -> Origin {
        self.inner.origin
    }

    /// The node's data directory.
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self.inner.db_path.parent().expect("the database lives in the data directory").to_path_buf()
    }

    /// The node's clock: the wall clock except in tests.
    pub fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    /// The HTTP surface's services: the node's own views, and the services
    /// it opened.
    pub fn app_state(&self) -> AppState {
        let node = Arc::new(self.clone());
        AppState {
            ledger: node.clone(),
            catalog: node.clone(),
            agency: Arc::new(self.inner.agency.clone()),
            accounts: self.inner.accounts.clone(),
            admin: node,
            clock: self.inner.clock,
            random_u32: rand::random,
        }
    }
}

pub use mail::OUTBOX_DIR;

struct StoppedOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

fn wall_clock() -> Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(since_epoch.as_millis() as i64)
}

/// Runs a node on `listener` until `shutdown` resolves: [`start`], then
/// [`serve`].
pub async fn run(
    data_dir: &Path,
    config: &Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    serve(start(data_dir, config).await?, listener, shutdown).await
}

/// Opens the node in `data_dir`, starts its network as configured and
/// resumes its bookings.
pub async fn start(data_dir: &Path, config: &Config) -> Result<Node, NodeError> {
    let node = Node::open(data_dir, config.into()).await?;
    tracing::info!(origin = %node.origin(), "node running");
    let p2p = with_group_addresses(&config.p2p, &node.inner.group.status());
    if p2p.listen != config.p2p.listen {
        tracing::info!(listen = ?p2p.listen, "no p2p.listen configured: listening where the group dials this member");
    }
    if !p2p.listen.is_empty() || !p2p.bootstrap.is_empty() {
        let net = caravan_net::NetConfig {
            listen: p2p.listen,
            bootstrap: p2p.bootstrap,
            discovery: p2p.discovery,
            peers_target: p2p.peers_target,
            ..Default::default()
        };
        if let Some(address) = node.start_network(net).await? {
            tracing::info!(%address, "replicating with peers");
        }
    }
    match node.agency().resume().await {
        Ok(0) => {}
        Ok(resumed) => tracing::info!(resumed, "bookings resumed"),
        Err(error) => tracing::error!(%error, "bookings not resumed"),
    }
    Ok(node)
}

/// The network a member of a group of several needs, whatever its config
/// says: it listens where the group dials it (the addresses it joined
/// with) unless `p2p.listen` says otherwise, and dials the other members.
/// Without this, a member started without its flags would campaign alone
/// forever while the group ran short of it.
fn with_group_addresses(p2p: &config::P2pConfig, group: &caravan_group::GroupStatus) -> config::P2pConfig {
    let mut p2p = p2p.clone();
    let (mine, others): (Vec<_>, Vec<_>) = group.members.iter().partition(|m| m.id == group.member_id);
    if others.is_empty() {
        return p2p;
    }
    if p2p.listen.is_empty() {
        p2p.listen = mine.iter().flat_map(|m| m.addrs.iter().cloned()).collect();
    }
    p2p.dial_also(others.iter().flat_map(|m| &m.addrs));
    p2p
}

/// Serves a started node's API on `listener` until `shutdown` resolves,
/// then drains the writer before returning. Other clones of `node` must
/// be dropped by then, or the writer cannot stop.
pub async fn serve(
    node: Node,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    tracing::info!(http = %listener.local_addr()?, "serving the API");
    let (writer_died_tx, writer_died) = tokio::sync::oneshot::channel();
    let stop = {
        let node = node.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                () = node.writer_stopped() => {
                    tracing::error!("the ledger writer stopped unexpectedly; shutting down");
                    let _ = writer_died_tx.send(());
                }
            }
        }
    };
    caravan_api::serve(listener, caravan_api::router(node.app_state()), stop).await?;
    tracing::info!("shutting down: finishing queued ledger commands");
    node.shutdown().await;
    match writer_died.await {
        Ok(()) => Err(NodeError::Setup("the ledger writer stopped unexpectedly; the log replays on restart".into())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use caravan_group::{GroupStatus, MemberStatus, Timers};

    use super::*;

    fn group(members: &[(u64, &str)]) -> GroupStatus {
        GroupStatus {
            member_id: 1,
            peer_id: "me".into(),
            role: "follower",
            term: 3,
            leader: None,
            members: members
                .iter()
                .map(|&(id, address)| MemberStatus {
                    id,
                    peer_id: format!("peer-{id}"),
                    voter: true,
                    matched_index: None,
                    addrs: vec![address.to_owned()],
                })
                .collect(),
            last_log_index: None,
            applied_index: 0,
            snapshot_index: None,
            timers: Timers { heartbeat_ms: 100, election_timeout_ms: 1_000 },
            append_p99_ms: None,
        }
    }

    #[test]
    fn a_member_without_addresses_of_its_own_listens_where_its_group_dials_it() {
        let three =
            group(&[(1, "/ip4/10.0.0.1/tcp/7171"), (2, "/ip4/10.0.0.2/tcp/7171"), (3, "/ip4/10.0.0.3/tcp/7171")]);
        let p2p = with_group_addresses(&config::P2pConfig::default(), &three);
        assert_eq!(p2p.listen, ["/ip4/10.0.0.1/tcp/7171"]);
        assert_eq!(p2p.bootstrap, ["/ip4/10.0.0.2/tcp/7171", "/ip4/10.0.0.3/tcp/7171"]);

        // What the operator configured wins; the others are dialled once.
        let configured = config::P2pConfig {
            listen: vec!["/ip4/0.0.0.0/tcp/7171".into()],
            bootstrap: vec!["/ip4/10.0.0.2/tcp/7171".into()],
            ..config::P2pConfig::default()
        };
        let p2p = with_group_addresses(&configured, &three);
        assert_eq!(p2p.listen, configured.listen);
        assert_eq!(p2p.bootstrap, ["/ip4/10.0.0.2/tcp/7171", "/ip4/10.0.0.3/tcp/7171"]);

        // A group of one is configured as it is.
        let alone = with_group_addresses(&config::P2pConfig::default(), &group(&[(1, "/ip4/10.0.0.1/tcp/7171")]));
        assert_eq!(alone, config::P2pConfig::default());
    }
}
