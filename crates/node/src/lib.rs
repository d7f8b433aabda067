//! A running Caravan node: composes the ledger, the store, the catalog and
//! the HTTP API, owns every thread and task, and shuts them down cleanly.
//!
//! ```text
//! HTTP ─► api ─► Node::submit ─► [queue] ─► writer thread: ledger.apply ─► publish ─► records + catalog
//!                                                         └─ ledger log ─┘   (one transaction, one fsync per batch)
//! ```

pub mod accounts;
mod booking;
pub mod config;
mod group;
pub mod identity;
pub mod mail;
pub mod replica_store;
mod sagas;
pub mod search;
mod writer;

pub use caravan_booking::agency;
pub use caravan_net::NetConfig;
pub use config::Config;
pub use group::prepare_join;
pub use identity::NodeKey;
pub use writer::{Peer, ReplicationEvent, WriterStats, ACTIONS_MAX, BATCH_MAX, QUEUE_MAX};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use caravan_api::{Backend, GroupChangeError, SubmitError};
use caravan_ledger::{Command, Ledger, Reply};
use caravan_model::Timestamp;
use caravan_records::{Origin, Record, Verified};
use caravan_store::rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

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
        let key = NodeKey::load(data_dir).map_err(NodeError::Setup)?;
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
    let key = NodeKey::load(data_dir).map_err(NodeError::Setup)?;
    let net_key = NodeKey::load_or_create_net_key(data_dir).map_err(NodeError::Setup)?;
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
    ledger: Arc<RwLock<Ledger>>,
    /// This node's member of its owner's replica group.
    group: Arc<group::OwnerGroup>,
    group_timers: Mutex<Option<tokio::task::JoinHandle<()>>>,
    queue: mpsc::Sender<writer::Job>,
    /// The replication core's actions, for the network task to take.
    actions: Mutex<Option<mpsc::Receiver<caravan_replication::Action<Peer>>>>,
    /// One read-only connection for exports; reads are rare next to writes.
    reader: Mutex<Connection>,
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
    search: Arc<RwLock<search::Catalog>>,
    /// The origin key, for signing booking receipts.
    key: NodeKey,
    /// Whether admins may cut this member off from others (fault tests).
    fault_hooks: bool,
    /// Booking calls to owners, once the network runs.
    /// Calls to peers (bookings, and the group's Raft messages), once the
    /// network runs.
    calls: group::CallSlot,
    /// How peers reach this node, once it listens.
    contact: Mutex<Option<caravan_model::PeerContact>>,
    calls_in_flight: tokio::sync::Semaphore,
    next_booking_id: std::sync::atomic::AtomicU64,
    /// Bookings whose saga task is running.
    running_bookings: Mutex<std::collections::HashSet<u64>>,
    /// Held bookings waiting for their traveller: how to reach their task.
    deciders: Mutex<std::collections::HashMap<u64, mpsc::Sender<sagas::DecisionCall>>>,
    hold_ms_default: i64,
    public_url: String,
    mailer: mail::Mailer,
    /// Becomes true at shutdown: saga tasks stop at their next step (their
    /// state is durable) and resume at the next start.
    saga_stop: tokio::sync::watch::Sender<bool>,
}

/// The running network task and the task feeding its events to the writer.
#[derive(Debug)]
struct Network {
    stop: oneshot::Sender<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How long shutdown waits for saga tasks to stop (a call to an owner in
/// flight may take its timeout).
const SAGA_STOP_WAIT_MS: u64 = 10_000;

/// How long the network start waits for more listen addresses after the first.
const CONTACT_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// Network events waiting to be queued for the writer.
const NET_EVENTS_MAX: usize = 4_096;

impl Node {
    /// Opens an initialized data directory, replays the ledger log and
    /// starts the writer. Call from within a tokio runtime.
    pub async fn open(data_dir: &Path, options: NodeOptions) -> Result<Node, NodeError> {
        let key = NodeKey::load(data_dir).map_err(NodeError::Setup)?;
        let origin = key.origin();
        let db_path = data_dir.join(caravan_store::DB_FILE);
        let mailer = mail::Mailer::new(&options.mail, data_dir.join(mail::OUTBOX_DIR)).map_err(NodeError::Setup)?;
        options.group_timers.validate(None).map_err(NodeError::Setup)?;
        let conn = caravan_store::open_writer(&db_path)?;
        let started = std::time::Instant::now();
        let mut catalog = search::load(&conn, (options.clock)())?;
        let rules = &options.search;
        catalog.index.set_min_connection(rules.min_connection_minutes.clone(), rules.min_connection_minutes_default);
        let listings = catalog.index.listing_count();
        let search = Arc::new(RwLock::new(catalog));
        tracing::info!(listings, load_ms = started.elapsed().as_millis() as u64, "search index loaded");
        let next_booking_id = caravan_store::agency::last_id(&conn)? + 1;
        let booking_key = NodeKey::load(data_dir).map_err(NodeError::Setup)?;
        let legacy = writer::legacy_ledger(&conn)?;
        let stats = Arc::new(WriterStats::default());
        let (queue, receiver) = mpsc::channel(QUEUE_MAX);
        let (actions_tx, actions) = mpsc::channel(ACTIONS_MAX);
        let replica_seed = u64::from_le_bytes(origin.0[..8].try_into().expect("8 bytes"));
        let writer = writer::Writer {
            replica: caravan_replication::Replica::new(options.replication.clone(), replica_seed),
            actions: actions_tx,
            conn,
            key,
            stats: stats.clone(),
            clock: options.clock,
            search: search.clone(),
        };
        let runtime = tokio::runtime::Handle::current();
        let (stopped_tx, writer_stopped) = tokio::sync::watch::channel(false);
        let writer_thread = std::thread::Builder::new().name("ledger-writer".into()).spawn(move || {
            // Dropped on return and on panic alike.
            let _stopped = StoppedOnDrop(stopped_tx);
            writer.run(receiver, runtime)
        })?;
        let net_key = NodeKey::load_or_create_net_key(data_dir).map_err(NodeError::Setup)?;
        let peer_id = caravan_net::peer_id(&caravan_net::keypair_from_seed(net_key.seed()));
        let member = caravan_group::Member { peer_id, addrs: Vec::new() };
        let log_path = data_dir.join(group::LOG_FILE);
        let effects = group::WriterEffects { queue: queue.clone(), log_path };
        let started = std::time::Instant::now();
        let calls = group::CallSlot::default();
        let transport = group::NetTransport { calls: calls.clone(), cut_off: group::CutOff::default() };
        let timers = options.group_timers;
        let group =
            group::OwnerGroup::open(data_dir, member, timers, options.clock, effects, transport, || Ok(legacy)).await?;
        let group = Arc::new(group);
        tracing::info!(%origin, status = ?group.status(), start_ms = started.elapsed().as_millis() as u64, "replica group running");
        let group_timers = Mutex::new(Some(group.run_timers(options.publish_interval_ms as i64)));
        let ledger = group.ledger();
        let reader = Mutex::new(caravan_store::open_reader(&db_path)?);
        let writer_thread = Mutex::new(Some(writer_thread));
        let actions = Mutex::new(Some(actions));
        let inner = Inner {
            origin,
            db_path,
            ledger,
            group,
            group_timers,
            queue,
            actions,
            reader,
            stats,
            clock: options.clock,
            writer_thread,
            writer_stopped,
            network: Mutex::new(None),
            traffic: Arc::default(),
            links: Arc::default(),
            search,
            key: booking_key,
            fault_hooks: options.group_fault_hooks,
            calls,
            contact: Mutex::default(),
            calls_in_flight: tokio::sync::Semaphore::new(booking::CALLS_IN_FLIGHT_MAX),
            next_booking_id: next_booking_id.into(),
            running_bookings: Mutex::default(),
            deciders: Mutex::default(),
            hold_ms_default: options.hold_ms_default,
            public_url: options.public_url.clone(),
            mailer,
            saga_stop: tokio::sync::watch::channel(false).0,
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
        self.inner.queue.send(writer::Job::Replication(event)).await.map_err(|_| stopping())
    }

    /// The replication core's actions (gossip, send, verdicts), for the one
    /// network task; `None` once taken.
    pub fn take_replication_actions(&self) -> Option<mpsc::Receiver<caravan_replication::Action<Peer>>> {
        self.inner.actions.lock().expect("actions lock").take()
    }

    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        self.inner.key.signing_key()
    }

    /// Runs `write` in the writer's next transaction (in a savepoint of its
    /// own, kept only if it returns `Ok`) and answers once it is durable.
    pub async fn write<R, E>(&self, write: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<caravan_store::StoreError> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<Result<R, E>>>> = Arc::default();
        let (reply, answer) = oneshot::channel::<Result<R, E>>();
        let filled = slot.clone();
        let run = Box::new(move |conn: &Connection| {
            let result = write(conn);
            let keep = result.is_ok();
            *filled.lock().expect("write slot lock") = Some(result);
            keep
        });
        let deliver = Box::new(move |outcome: Result<(), String>| {
            let result = match (outcome, slot.lock().expect("write slot lock").take()) {
                (Ok(()), Some(result)) => result,
                (Err(why), _) => Err(E::from(caravan_store::StoreError::Unavailable(why))),
                (Ok(()), None) => Err(E::from(caravan_store::StoreError::Unavailable("the write did not run".into()))),
            };
            let _ = reply.send(result);
        });
        let stopping = || E::from(caravan_store::StoreError::Unavailable("the node is stopping".into()));
        self.inner.queue.send(writer::Job::Write(writer::Write { run, deliver })).await.map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }

    /// Reads the in-memory catalog.
    pub fn read_search<R>(&self, read: impl FnOnce(&search::Catalog) -> R) -> R {
        read(&self.inner.search.read().expect("search lock"))
    }

    /// Starts replicating with peers over libp2p. Returns the first address
    /// the node listens on, if it listens at all.
    pub async fn start_network(&self, mut config: caravan_net::NetConfig) -> Result<Option<String>, NodeError> {
        config.traffic = self.inner.traffic.clone();
        config.links = self.inner.links.clone();
        let actions =
            self.take_replication_actions().ok_or_else(|| NodeError::Setup("the network is already running".into()))?;
        let listens = !config.listen.is_empty();
        let (events_tx, mut events_rx) = mpsc::channel(NET_EVENTS_MAX);
        let (listening_tx, mut listening_rx) = mpsc::channel(8);
        let (stop, stopped) = oneshot::channel::<()>();
        let data_dir = self.inner.db_path.parent().expect("the database lives in the data directory");
        let net_key = NodeKey::load_or_create_net_key(data_dir).map_err(NodeError::Setup)?;
        let keypair = caravan_net::keypair_from_seed(net_key.seed());
        let peer_id = caravan_net::peer_id(&keypair);
        tracing::info!(%peer_id, "starting the network");
        let (calls_tx, calls) = mpsc::channel(booking::CALLS_MAX);
        let (book, book_rx) = mpsc::channel(booking::INBOUND_MAX);
        let (raft, raft_rx) = mpsc::channel(RAFT_INBOUND_MAX);
        *self.inner.calls.lock().expect("calls lock") = Some(calls_tx);
        let channels = caravan_net::CallChannels { calls, book, raft };
        let net = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(error) =
                caravan_net::run(keypair, config, events_tx, actions, listening_tx, channels, stopped).await
            {
                tracing::error!(%error, "the network stopped");
            }
        });
        let serve_bookings = tokio::spawn(booking::serve(self.clone(), book_rx));
        let serve_group = tokio::spawn(serve_group(self.inner.group.clone(), raft_rx));
        let queue = self.inner.queue.clone();
        let forward = tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                if queue.send(writer::Job::Replication(event)).await.is_err() {
                    return;
                }
            }
        });
        *self.inner.network.lock().expect("network lock") =
            Some(Network { stop, tasks: vec![net, forward, serve_bookings, serve_group] });
        if !listens {
            return Ok(None);
        }
        let first = listening_rx.recv().await;
        // Other listeners (QUIC, more interfaces) report within moments.
        let mut addrs: Vec<String> = first.iter().cloned().collect();
        while let Ok(Some(address)) = tokio::time::timeout(CONTACT_SETTLE, listening_rx.recv()).await {
            addrs.push(address);
        }
        addrs.truncate(caravan_model::contact::CONTACT_ADDRS_MAX);
        if let Err(error) = self.inner.group.announce(addrs.clone()).await {
            tracing::warn!(%error, "this member's addresses are not in its group's membership");
        }
        self.publish_contact(caravan_model::PeerContact { peer_id, addrs }).await;
        Ok(first)
    }

    /// Changes the group's membership, then tells agencies the new members.
    async fn change_group(&self, change: caravan_group::MembershipChange) -> Result<(), GroupChangeError> {
        use caravan_group::ChangeError;
        match self.inner.group.change_members(change).await {
            Ok(()) => {}
            Err(ChangeError::Refused(why)) => return Err(GroupChangeError::Refused(why)),
            Err(error) => return Err(GroupChangeError::Unavailable(error.to_string())),
        }
        let this = self.inner.contact.lock().expect("contact lock").clone();
        if let Some(this) = this {
            self.publish_contact(this).await;
        }
        Ok(())
    }

    /// Publishes how agencies reach this owner: every member of its
    /// replica group (this one first, as it listens now), so an agency
    /// that cannot reach one asks the next with the same idempotency key.
    async fn publish_contact(&self, this: caravan_model::PeerContact) {
        *self.inner.contact.lock().expect("contact lock") = Some(this.clone());
        if self.inner.group.members().is_empty() {
            return; // Joining: the group publishes it once it has added this member.
        }
        let mut peers = vec![this];
        for member in self.inner.group.members() {
            if peers.iter().all(|p| p.peer_id != member.peer_id) && !member.addrs.is_empty() {
                peers.push(caravan_model::PeerContact { peer_id: member.peer_id, addrs: member.addrs });
            }
        }
        peers.truncate(caravan_model::contact::CONTACT_PEERS_MAX);
        let contact = caravan_model::Contact { peers };
        if self.read_ledger(|ledger| ledger.contact() != Some(&contact)) {
            if let Err(error) = self.submit(Command::SetContact(contact)).await {
                tracing::warn!(?error, "contact not published; agencies cannot book here");
            }
        }
    }

    /// Stops taking commands, lets the writer finish what is queued, and
    /// waits for it. Other clones of this handle can no longer submit.
    pub async fn shutdown(self) {
        // Saga tasks hold the node: stop them at their next step.
        self.inner.saga_stop.send_replace(true);
        for _ in 0..SAGA_STOP_WAIT_MS / 20 {
            if self.inner.running_bookings.lock().expect("running lock").is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Raft applies through the writer: stop it (and its timers) first.
        self.inner.group.shutdown().await;
        let timers = self.inner.group_timers.lock().expect("timers lock").take();
        if let Some(timers) = timers {
            let _ = timers.await;
        }
        // The network's tasks hold senders to the writer: stop them first.
        let network = self.inner.network.lock().expect("network lock").take();
        if let Some(network) = network {
            let _ = network.stop.send(());
            for task in network.tasks {
                let _ = task.await;
            }
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

/// Raft messages from peers waiting for the group.
const RAFT_INBOUND_MAX: usize = 1_024;

/// Answers the group's Raft messages, each in its own task (a member's
/// append and a vote must not wait for each other), until the network
/// task drops its sender.
async fn serve_group(group: Arc<group::OwnerGroup>, mut inbound: mpsc::Receiver<caravan_net::Inbound>) {
    while let Some(call) = inbound.recv().await {
        let group = group.clone();
        tokio::spawn(async move {
            let reply = group.serve(&call.from, &call.request).await;
            let _ = call.reply.send(reply.encode());
        });
    }
}

/// What a person may read of an account error; storage failures are
/// logged, not shown.
fn user_message(error: accounts::AccountsError) -> String {
    match error {
        accounts::AccountsError::Store(error) => {
            tracing::error!(%error, "account storage failed");
            "the service is unavailable; try again".into()
        }
        other => other.to_string(),
    }
}

impl Node {
    /// Runs `query` on the node's reader connection on a blocking thread;
    /// its error (or a panicked task's) comes back as text.
    pub(crate) async fn read<R, E>(
        &self,
        query: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, String>
    where
        R: Send + 'static,
        E: std::fmt::Display,
    {
        let inner = self.inner.clone();
        let run = move || query(&inner.reader.lock().expect("reader lock")).map_err(|e| e.to_string());
        tokio::task::spawn_blocking(run).await.map_err(|e| e.to_string())?
    }

    /// Sends an account mail (see [`mail::Mailer`]).
    async fn deliver(&self, mail: Result<Option<accounts::Mail>, accounts::AccountsError>) -> Result<(), String> {
        let Some(mail) = mail.map_err(user_message)? else { return Ok(()) };
        self.inner.mailer.send(&mail, self.now().ms()).await
    }
}

pub use mail::OUTBOX_DIR;

/// The account a live token of `kind` stands for.
fn principal_of(
    conn: &Connection,
    token: &caravan_accounts::token::Secret,
    kind: caravan_accounts::token::TokenKind,
    now: Timestamp,
) -> Result<Option<caravan_accounts::Principal>, String> {
    let Some(user) = accounts::authenticate(conn, token, kind, now).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let role = caravan_accounts::Role::parse(&user.role).map_err(|e| e.to_string())?;
    Ok(Some(caravan_accounts::Principal { user: user.id, email: user.email, role }))
}

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

impl Backend for Node {
    async fn submit(&self, command: Command) -> Result<Reply, SubmitError> {
        match self.inner.group.propose(command).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(rejection)) => Err(SubmitError::Rejected(rejection)),
            Err(why) => Err(SubmitError::Unavailable(why)),
        }
    }

    fn read_ledger<R>(&self, read: impl FnOnce(&Ledger) -> R) -> R {
        read(&self.inner.ledger.read().expect("ledger lock"))
    }

    fn origin(&self) -> Origin {
        self.inner.origin
    }

    fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    fn hold_ms_default(&self) -> i64 {
        self.inner.hold_ms_default
    }

    fn random_u32(&self) -> u32 {
        rand::random()
    }

    fn metrics(&self) -> Vec<caravan_api::Metric> {
        use caravan_api::Metric;
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.inner.stats;
        let replication = stats.replication.lock().expect("stats lock").clone();
        let mut metrics = vec![
            Metric::gauge("caravan_peers", "Connected replication peers.", stats.peers.load(Relaxed) as f64),
            Metric::counter("caravan_envelopes_received_total", "Gossip envelopes received.", replication.envelopes_in),
            Metric::counter("caravan_envelopes_sent_total", "Gossip envelopes published.", replication.envelopes_out),
            Metric::counter(
                "caravan_records_received_total",
                "Records received that verified.",
                replication.records_in,
            ),
            Metric::counter(
                "caravan_records_new_total",
                "Received records that were newest in their slot.",
                replication.records_new,
            ),
            Metric::counter(
                "caravan_records_fetched_total",
                "Records received by reconciliation fetches.",
                replication.fetched,
            ),
            Metric::counter(
                "caravan_reconcile_rounds_total",
                "Reconciliation sessions started.",
                replication.reconcile_rounds,
            ),
            Metric::counter(
                "caravan_reconcile_bytes_total",
                "Reconciliation frame bytes in and out.",
                replication.reconcile_bytes,
            ),
            Metric::counter(
                "caravan_replication_bytes_received_total",
                "Replication payload bytes received: envelopes, reconciliation frames, fetched records.",
                replication.bytes_in,
            ),
            Metric::counter(
                "caravan_transport_bytes_received_total",
                "Bytes read from peers' TCP connections (encryption, multiplexing and gossip overhead included).",
                self.inner.traffic.bytes_in(),
            ),
            Metric::counter(
                "caravan_transport_bytes_sent_total",
                "Bytes written to peers' TCP connections.",
                self.inner.traffic.bytes_out(),
            ),
            Metric::histogram(
                "caravan_replication_lag_seconds",
                "From a record's signing at its origin to its storing here, for records new here.",
                replication.lag.cumulative().map(|(bound_ms, total)| (bound_ms as f64 / 1000.0, total)).collect(),
                replication.lag.sum_ms() as f64 / 1000.0,
                replication.lag.count(),
            ),
            Metric::gauge(
                "caravan_replication_lag_last_seconds",
                "The replication lag of the last record new here.",
                replication.lag.last_ms() as f64 / 1000.0,
            ),
            Metric::counter(
                "caravan_replication_actions_dropped_total",
                "Replication actions dropped because the network lagged.",
                stats.actions_dropped.load(Relaxed),
            ),
            Metric::counter(
                "caravan_ledger_commands_total",
                "Ledger commands committed.",
                stats.commands.load(Relaxed),
            ),
            Metric::counter(
                "caravan_ledger_commits_total",
                "Ledger transactions (one fsync each).",
                stats.commits.load(Relaxed),
            ),
            Metric::counter(
                "caravan_publishing_points_total",
                "Publishing points committed.",
                stats.publishing_points.load(Relaxed),
            ),
        ];
        for (reason, count) in replication.rejected {
            metrics.push(
                Metric::counter("caravan_rejected_total", "Records, envelopes and frames refused, by reason.", count)
                    .with_label("reason", reason),
            );
        }
        metrics
    }

    async fn status(&self, with_digest: bool) -> Result<caravan_api::dto::NodeStatus, String> {
        use std::sync::atomic::Ordering::Relaxed;
        let (records_held, catalog_listings, catalog_digest) = self
            .read(move |conn| -> Result<_, caravan_store::StoreError> {
                let records_held = caravan_store::records::count(conn)?;
                let catalog_listings = caravan_catalog::db::listing_count(conn)?;
                let digest = if with_digest { Some(hex::encode(caravan_catalog::db::digest(conn)?)) } else { None };
                Ok((records_held, catalog_listings, digest))
            })
            .await?;
        let stats = &self.inner.stats;
        let replication = stats.replication.lock().expect("stats lock").clone();
        let lag = &replication.lag;
        Ok(caravan_api::dto::NodeStatus {
            origin: self.inner.origin.to_hex(),
            peers: stats.peers.load(Relaxed),
            records_held,
            catalog_listings,
            records_published: stats.records_published.load(Relaxed),
            records_received: replication.records_in,
            records_new: replication.records_new,
            bytes_received: replication.bytes_in,
            transport_bytes_received: self.inner.traffic.bytes_in(),
            replication_lag: caravan_api::dto::LagView {
                samples: lag.count(),
                last_ms: lag.last_ms(),
                p50_ms: lag.quantile_ms(0.5),
                p99_ms: lag.quantile_ms(0.99),
                max_ms: lag.max_ms(),
                buckets: lag.cumulative().collect(),
            },
            catalog_digest,
        })
    }

    fn search_stays(&self, query: &caravan_search::StayQuery) -> Vec<caravan_search::StayOffer<Origin>> {
        self.read_search(|catalog| catalog.index.search_stays(query))
    }

    fn catalog_listing(&self, origin: &Origin, id: &str) -> Option<Arc<caravan_model::Listing>> {
        self.read_search(|catalog| catalog.index.listing(origin, id))
    }

    fn catalog_runs(&self, origin: &Origin, id: &str) -> Option<Arc<Vec<caravan_model::AriRun>>> {
        self.read_search(|catalog| catalog.index.runs(origin, id))
    }

    fn search_trips(&self, query: &caravan_search::TripQuery) -> Vec<caravan_search::Itinerary<Origin>> {
        self.read_search(|catalog| catalog.index.search_trips(query))
    }

    async fn create_booking(&self, new: agency::NewBooking) -> Result<agency::Booking, agency::BookingError> {
        Node::create_booking(self, new).await
    }

    async fn booking(&self, id: u64) -> Result<Option<agency::Booking>, agency::BookingError> {
        self.agency_booking(id).await
    }

    async fn bookings(
        &self,
        user: Option<u64>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<agency::Booking>, agency::BookingError> {
        self.agency_bookings(user, before_id, limit).await
    }

    async fn principal(
        &self,
        token: &caravan_accounts::token::Secret,
    ) -> Result<Option<caravan_accounts::Principal>, String> {
        let (token, now) = (token.clone(), self.now());
        self.read(move |conn| principal_of(conn, &token, caravan_accounts::token::TokenKind::Api, now)).await
    }

    async fn managers(&self, listing: &caravan_model::ListingId) -> Result<Vec<u64>, String> {
        let listing = listing.to_string();
        self.read(move |conn| caravan_store::users::managers(conn, &listing)).await
    }

    async fn add_manager(&self, listing: &caravan_model::ListingId, user: u64) -> Result<(), String> {
        let listing = listing.to_string();
        let added = self.write(move |conn| caravan_store::users::add_manager(conn, &listing, user)).await;
        added.map_err(|e: caravan_store::StoreError| e.to_string())
    }

    fn peers(&self) -> Vec<caravan_api::dto::PeerView> {
        let links = self.inner.links.snapshot();
        let stats = self.inner.stats.peer_stats.lock().expect("stats lock").clone();
        stats
            .into_iter()
            .map(|(peer, stats)| {
                let link = links.get(&peer);
                caravan_api::dto::PeerView {
                    address: link.map(|l| l.address.clone()).unwrap_or_default(),
                    dialled: link.is_some_and(|l| l.dialled),
                    rtt_ms: link.and_then(|l| l.rtt_ms),
                    connected_at: caravan_api::dto::rfc3339(stats.connected_at),
                    records_in: stats.records_in,
                    records_new: stats.records_new,
                    records_out: stats.records_out,
                    peer_id: peer,
                }
            })
            .collect()
    }

    fn group(&self) -> caravan_api::dto::GroupView {
        let mut view = self.inner.group.status();
        if let Some(this) = self.inner.contact.lock().expect("contact lock").as_ref() {
            view.addrs = this.addrs.clone();
        }
        let agreed = self.read_ledger(|ledger| ledger.group_timers());
        let running = (view.heartbeat_ms, view.election_timeout_ms);
        let pending = agreed.filter(|a| (a.heartbeat_ms, a.election_timeout_ms) != running);
        view.agreed_heartbeat_ms = pending.map(|t| t.heartbeat_ms);
        view.agreed_election_timeout_ms = pending.map(|t| t.election_timeout_ms);
        view
    }

    async fn set_group_timers(&self, heartbeat_ms: u64, election_timeout_ms: u64) -> Result<(), SubmitError> {
        let timers = caravan_group::Timers { heartbeat_ms, election_timeout_ms };
        timers
            .validate(self.inner.group.append_p99_ms())
            .map_err(|why| SubmitError::Rejected(caravan_ledger::Rejection::InvalidRequest(why)))?;
        let agreed = caravan_ledger::GroupTimers { heartbeat_ms, election_timeout_ms };
        self.submit(Command::SetGroupTimers(agreed)).await.map(|_| ())
    }

    async fn add_group_member(&self, input: caravan_api::dto::GroupMemberInput) -> Result<(), GroupChangeError> {
        if input.member_id == 0 {
            return Err(GroupChangeError::Refused("member id 0 is not a member id".into()));
        }
        let peer = caravan_model::PeerContact { peer_id: input.peer_id, addrs: input.addrs };
        peer.validate().map_err(GroupChangeError::Refused)?;
        let member = caravan_group::Member { peer_id: peer.peer_id, addrs: peer.addrs };
        self.change_group(caravan_group::MembershipChange::Add(input.member_id, member)).await
    }

    async fn remove_group_member(&self, member_id: u64) -> Result<(), GroupChangeError> {
        self.change_group(caravan_group::MembershipChange::Remove(member_id)).await
    }

    fn cut_off_group_peers(&self, peers: Vec<String>) -> Result<(), String> {
        if !self.inner.fault_hooks {
            return Err("fault hooks are off on this node ([group] fault_hooks in caravan.toml)".into());
        }
        tracing::warn!(?peers, "fault hook: Raft messages to and from these peers are dropped");
        self.inner.group.cut_off(peers.into_iter().collect());
        Ok(())
    }

    async fn origins(
        &self,
        limit: u32,
    ) -> Result<(Vec<caravan_api::dto::OriginView>, Vec<caravan_api::dto::EquivocationView>), String> {
        use caravan_api::dto::{rfc3339, EquivocationView, OriginView};
        let read = move |conn: &Connection| -> Result<_, caravan_store::StoreError> {
            let origins = caravan_store::records::per_origin(conn, limit)?;
            let frozen = caravan_store::records::frozen_origins(conn)?;
            Ok((
                origins
                    .into_iter()
                    .map(|(origin, records, newest)| OriginView {
                        origin: origin.to_hex(),
                        records,
                        newest: rfc3339(newest),
                    })
                    .collect(),
                frozen
                    .into_iter()
                    .map(|(origin, at)| EquivocationView { origin: origin.to_hex(), detected_at: rfc3339(at) })
                    .collect(),
            ))
        };
        self.read(read).await
    }

    async fn manager_accounts(&self, listing: &caravan_model::ListingId) -> Result<Vec<(u64, String)>, String> {
        let listing = listing.to_string();
        self.read(move |conn| caravan_store::users::manager_accounts(conn, &listing)).await
    }

    async fn remove_manager(&self, listing: &caravan_model::ListingId, user: u64) -> Result<bool, String> {
        let listing = listing.to_string();
        let removed = self.write(move |conn| caravan_store::users::remove_manager(conn, &listing, user)).await;
        removed.map_err(|e: caravan_store::StoreError| e.to_string())
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<(u64, caravan_accounts::Role)>, String> {
        let Ok(email) = caravan_accounts::Email::parse(email) else { return Ok(None) };
        let user = self.read(move |conn| caravan_store::users::by_email(conn, email.as_str())).await?;
        user.map(|u| Ok((u.id, caravan_accounts::Role::parse(&u.role).map_err(|e| e.to_string())?))).transpose()
    }

    async fn confirm_password(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<(), caravan_accounts::LoginRefusal> {
        use caravan_accounts::LoginRefusal;
        let (email, password, client, now) = (email.to_owned(), password.to_owned(), client.to_owned(), self.now());
        // As at login, a refusal's throttle writes are kept.
        let result = self
            .write(move |conn| match accounts::check_password(conn, &email, &password, &client, now) {
                Err(accounts::AccountsError::Store(error)) => Err(error),
                outcome => Ok(outcome),
            })
            .await
            .unwrap_or_else(|error: caravan_store::StoreError| Err(error.into()));
        match result {
            Ok(_) => Ok(()),
            Err(accounts::AccountsError::Refused(refusal)) => Err(refusal),
            Err(other) => Err(LoginRefusal::Unavailable(other.to_string())),
        }
    }

    async fn login(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<(caravan_accounts::Principal, caravan_accounts::token::Secret), caravan_accounts::LoginRefusal> {
        use caravan_accounts::LoginRefusal;
        let (email, password, client, now) = (email.to_owned(), password.to_owned(), client.to_owned(), self.now());
        // A refused login still counts against the throttle: keep its
        // writes; only a storage error rolls them back.
        let result = self
            .write(move |conn| match accounts::login(conn, &email, &password, &client, now) {
                Err(accounts::AccountsError::Store(error)) => Err(error),
                outcome => Ok(outcome),
            })
            .await
            .unwrap_or_else(|error: caravan_store::StoreError| Err(error.into()));
        match result {
            Ok((user, session)) => {
                let role =
                    caravan_accounts::Role::parse(&user.role).map_err(|e| LoginRefusal::Unavailable(e.to_string()))?;
                Ok((caravan_accounts::Principal { user: user.id, email: user.email, role }, session))
            }
            Err(accounts::AccountsError::Refused(refusal)) => Err(refusal),
            Err(other) => Err(LoginRefusal::Unavailable(other.to_string())),
        }
    }

    async fn session(
        &self,
        session: &caravan_accounts::token::Secret,
    ) -> Result<Option<caravan_accounts::Principal>, String> {
        let (session, now) = (session.clone(), self.now());
        self.read(move |conn| principal_of(conn, &session, caravan_accounts::token::TokenKind::Session, now)).await
    }

    async fn register(&self, email: &str, password: &str) -> Result<(), String> {
        let (email, password, url, now) =
            (email.to_owned(), password.to_owned(), self.inner.public_url.clone(), self.now());
        let mail = self.write(move |conn| accounts::register(conn, &email, &password, &url, now)).await;
        self.deliver(mail.map(Some)).await
    }

    async fn verify_email(&self, token: &caravan_accounts::token::Secret) -> Result<(), String> {
        let (token, now) = (token.clone(), self.now());
        let verified = self.write(move |conn| accounts::verify_email(conn, &token, now)).await;
        verified.map(|_| ()).map_err(user_message)
    }

    async fn request_reset(&self, email: &str) -> Result<(), String> {
        let (email, url, now) = (email.to_owned(), self.inner.public_url.clone(), self.now());
        let mail = self.write(move |conn| accounts::request_reset(conn, &email, &url, now)).await;
        self.deliver(mail).await
    }

    async fn reset_password(&self, token: &caravan_accounts::token::Secret, password: &str) -> Result<(), String> {
        let (token, password, now) = (token.clone(), password.to_owned(), self.now());
        let reset = self.write(move |conn| accounts::reset_password(conn, &token, &password, now)).await;
        reset.map(|_| ()).map_err(user_message)
    }

    async fn accounts(
        &self,
        after_id: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String, caravan_accounts::Role, bool)>, String> {
        let rows = self.read(move |conn| caravan_store::users::list(conn, after_id, limit)).await?;
        rows.into_iter()
            .map(|u| {
                Ok((u.id, u.email, caravan_accounts::Role::parse(&u.role).map_err(|e| e.to_string())?, u.verified))
            })
            .collect()
    }

    async fn set_role(&self, user: u64, role: caravan_accounts::Role) -> Result<bool, String> {
        let changed = self.write(move |conn| caravan_store::users::set_role(conn, user, role.as_str())).await;
        changed.map_err(|e: caravan_store::StoreError| e.to_string())
    }

    async fn api_tokens(&self, user: u64) -> Result<Vec<(String, String, Timestamp)>, String> {
        let kind = caravan_accounts::token::TokenKind::Api.as_str();
        let rows = self.read(move |conn| caravan_store::users::tokens_of(conn, user, kind)).await?;
        Ok(rows
            .into_iter()
            .map(|t| (hex::encode(t.hash), t.name.unwrap_or_default(), Timestamp(t.created_ms)))
            .collect())
    }

    async fn issue_api_token(&self, user: u64, name: &str) -> Result<caravan_accounts::token::Secret, String> {
        let (name, now) = (name.to_owned(), self.now());
        let issued = self.write(move |conn| accounts::issue_api_token_for(conn, user, &name, now)).await;
        issued.map_err(user_message)
    }

    async fn revoke_api_token(&self, user: u64, hash: [u8; 32]) -> Result<bool, String> {
        let revoked = self.write(move |conn| caravan_store::users::delete_token_of(conn, user, &hash)).await;
        revoked.map_err(|e: caravan_store::StoreError| e.to_string())
    }

    async fn logout(&self, session: &caravan_accounts::token::Secret) -> Result<(), String> {
        let hash = session.stored_hash(caravan_accounts::token::TokenKind::Session);
        let ended = self.write(move |conn| caravan_store::users::take_token(conn, &hash).map(|_| ())).await;
        ended.map_err(|e: caravan_store::StoreError| e.to_string())
    }

    async fn managed_listings(&self, user: u64) -> Result<Vec<String>, String> {
        self.read(move |conn| caravan_store::users::managed_by(conn, user)).await
    }

    async fn decide_booking(
        &self,
        id: u64,
        decision: agency::Decision,
    ) -> Result<agency::Booking, agency::BookingError> {
        self.decide_agency_booking(id, decision).await
    }

    async fn cancel_booking(&self, id: u64) -> Result<agency::Booking, agency::BookingError> {
        self.cancel_agency_booking(id).await
    }

    async fn own_records(&self, after_version: u64, limit: u32) -> Result<Vec<Verified<Record>>, String> {
        let (origin, now) = (self.inner.origin, self.now());
        self.read(move |conn| {
            let stored = caravan_store::records::by_origin(conn, origin, after_version, limit)?;
            stored.iter().map(|s| caravan_store::records::read_back(&s.signed, now)).collect::<Result<Vec<_>, _>>()
        })
        .await
    }
}

/// Runs a node on `listener` until `shutdown` resolves: serves the API,
/// then drains the writer before returning.
pub async fn run(
    data_dir: &Path,
    config: &Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let node = Node::open(data_dir, config.into()).await?;
    tracing::info!(origin = %node.origin(), http = %listener.local_addr()?, "node running");
    if !config.p2p.listen.is_empty() || !config.p2p.bootstrap.is_empty() {
        let net = caravan_net::NetConfig {
            listen: config.p2p.listen.clone(),
            bootstrap: config.p2p.bootstrap.clone(),
            discovery: config.p2p.discovery,
            peers_target: config.p2p.peers_target,
            ..Default::default()
        };
        if let Some(address) = node.start_network(net).await? {
            tracing::info!(%address, "replicating with peers");
        }
    }
    match node.resume_bookings().await {
        Ok(0) => {}
        Ok(resumed) => tracing::info!(resumed, "bookings resumed"),
        Err(error) => tracing::error!(%error, "bookings not resumed"),
    }
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
    caravan_api::serve(listener, caravan_api::router(node.clone()), stop).await?;
    tracing::info!("shutting down: finishing queued ledger commands");
    node.shutdown().await;
    match writer_died.await {
        Ok(()) => Err(NodeError::Setup("the ledger writer stopped unexpectedly; the log replays on restart".into())),
        Err(_) => Ok(()),
    }
}
