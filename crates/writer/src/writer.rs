//! The single writer: the one thread that writes the node's database.
//!
//! The ledger itself lives under Raft (see `group`): a command is
//! committed in the Raft log and applied by the state machine, which
//! hands the writer what it produced (`Job::Apply`). The writer signs
//! the records of publishing points with the version of their log index,
//! stores them in one transaction, and only then updates the catalog. The
//! state machine answered already, and that commit is not fsynced: the
//! Raft log is, and a restart re-applies it, signing the very same records
//! again (the group makes the store durable before each snapshot). It also does
//! the node's own writes (login throttles, accounts the CLI wrote before
//! the group takes them), batching whatever
//! queued while it was busy, and stores what peers sent once a verifier
//! stage checked it: verification is not the writer's.
//!
//! Two lanes come in: jobs (applied commands and writes), which bookings
//! wait for, and checked replication events, which can come by the
//! hundred thousand. Jobs go first, and a replication transaction stops
//! taking events at [`REPLICATION_RECORDS_MAX`] records, so a booking
//! waits behind one such transaction at worst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use caravan_group::AppliedCommand;
use caravan_ledger::{Command, Ledger};
use caravan_model::Timestamp;
use caravan_records::{Record, Verified};
use caravan_replication::{Action, Replica};
use caravan_store::rusqlite::Connection;
use caravan_store::{ledger_log, records, Records, StoreError};

use crate::replica_store::TxRecords;
use caravan_catalog::{Catalog, Change};
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the writer. Senders wait when it is full, which
/// pushes back on HTTP clients instead of queueing without bound.
pub const QUEUE_MAX: usize = 16_384;
/// Commands in one transaction.
pub const BATCH_MAX: usize = 4_096;
/// Checked replication events waiting for the writer.
pub const REPLICATION_QUEUE_MAX: usize = 1_024;
/// A replication transaction takes no more events once it holds this many
/// records (one event may take it past): what a job waits behind at worst.
pub const REPLICATION_RECORDS_MAX: usize = 4_096;
/// Commits slower than this are logged at debug level.
const SLOW_COMMIT_MS: u64 = 20;
/// The longest the writer sleeps without looking at its timers.
const IDLE_WAKE_MS: u64 = 1_000;

/// The id of a replication peer: libp2p's `PeerId` in text.
pub type Peer = String;

/// Something for the replication core, which lives here because it writes
/// the database through the one writer.
pub type ReplicationEvent = caravan_replication::Event<Peer>;

/// A replication event a verifier checked, for the writer's second lane.
pub type CheckedEvent = caravan_replication::Checked<Peer>;

/// What the writer's queue carries.
pub enum Job {
    /// Commands the ledger applied: store what they published, then say so.
    Apply { applied: Vec<AppliedCommand>, done: Done },
    /// Any other write (an agency booking's state, an account, a token),
    /// done in the next transaction; see [`Write`].
    Write(Write),
}

/// Told whether what the state machine applied is stored.
pub type Done = oneshot::Sender<Result<(), WriteFailed>>;

/// A writer transaction that did not commit: every job in it hears the
/// same cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct WriteFailed(Arc<StoreError>);

/// A write to run inside the writer's transaction, in a savepoint of its
/// own: `run` returns whether to keep its changes; `deliver` is called
/// with the transaction's outcome, so its caller hears back only after
/// the commit (or the failure), never before.
pub struct Write {
    pub run: Box<dyn FnOnce(&Connection) -> bool + Send>,
    pub deliver: Box<dyn FnOnce(Result<(), WriteFailed>) + Send>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Apply { applied, .. } => f.debug_struct("Apply").field("commands", &applied.len()).finish(),
            Job::Write(_) => f.write_str("Write"),
        }
    }
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Write")
    }
}

/// What the writer woke up for.
enum Lane {
    Job(Job),
    JobsClosed,
    Replication(CheckedEvent),
    ReplicationClosed,
}

/// Replication actions waiting for the network task. When it lags, actions
/// are dropped and counted: gossip may lose messages, reconciliation
/// recovers them.
pub const ACTIONS_MAX: usize = 4_096;

/// How often a transaction of applied commands is tried before the
/// member is stopped.
const STORE_TRIES: u32 = 3;

/// Counters the benchmarks and metrics read.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Ledger commands applied (each of a batch counted), counted by the
    /// state machine's effects.
    pub commands: AtomicU64,
    /// Committed transactions of applied commands (not fsynced: the Raft
    /// log is the durable copy).
    pub commits: AtomicU64,
    /// Publishing points committed; at most one per commit.
    pub publishing_points: AtomicU64,
    /// Records this node signed.
    pub records_published: AtomicU64,
    /// Replication actions dropped because the network task lagged.
    pub actions_dropped: AtomicU64,
    /// Connected replication peers.
    pub peers: AtomicU64,
    /// Records found missing and not fetched yet (`Replica::missing`).
    pub records_missing: AtomicU64,
    /// Records stored, as the reconciliation set counts them (`None`
    /// until the set is first read): a count that costs nothing to read.
    pub records_held: std::sync::Mutex<Option<u64>>,
    /// The replication core's counters, as of its last step.
    pub replication: std::sync::Mutex<caravan_replication::Counters>,
    /// What each connected peer exchanged, as of the core's last step.
    pub peer_stats: std::sync::Mutex<Vec<(String, caravan_replication::PeerStats)>>,
}

/// How often a node that is fetching what it lacks says how far it is.
const CATCH_UP_LOG_MS: i64 = 10_000;

/// The operator's view of a catch-up (a new node's bootstrap, or a
/// return after time offline): a line every [`CATCH_UP_LOG_MS`] while
/// records are known missing, and one when none are left.
#[derive(Debug, Default)]
struct CatchingUp {
    /// When it started, and the records fetched before it.
    since: Option<(Timestamp, u64)>,
    last_log: Option<Timestamp>,
}

impl CatchingUp {
    fn note(&mut self, missing: u64, fetched: u64, now: Timestamp) {
        match (self.since, missing) {
            (None, 0) => {}
            (None, _) => {
                self.since = Some((now, fetched));
                self.last_log = Some(now);
                tracing::info!(missing, "catching up: fetching what peers hold and this node lacks");
            }
            (Some((since, fetched_before)), 0) => {
                let seconds = (now.ms() - since.ms()) as f64 / 1_000.0;
                tracing::info!(fetched = fetched - fetched_before, seconds, "caught up");
                *self = CatchingUp::default();
            }
            (Some((since, fetched_before)), _) => {
                if self.last_log.is_some_and(|last| now.ms() - last.ms() < CATCH_UP_LOG_MS) {
                    return;
                }
                self.last_log = Some(now);
                let fetched = fetched - fetched_before;
                let per_s = fetched as f64 * 1_000.0 / (now.ms() - since.ms()).max(1) as f64;
                tracing::info!(fetched, missing, per_s = per_s.round(), "catching up");
            }
        }
    }
}

/// The writer's state; [`Writer::run`] is the thread's body.
pub struct Writer {
    /// The node's SQLite database, for writes other than records.
    pub conn: Connection,
    /// The record store, which only this thread writes.
    pub records: Records,
    /// The origin's key, which signs the records of publishing points.
    pub key: ed25519_dalek::SigningKey,
    pub stats: Arc<WriterStats>,
    pub clock: fn() -> Timestamp,
    pub replica: Replica<Peer>,
    pub actions: mpsc::Sender<Action<Peer>>,
    /// The catalog in memory, which search and booking read.
    pub catalog: Arc<RwLock<Catalog>>,
    /// Where to save the catalog when the writer stops (see `catalog`).
    pub catalog_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("peers", &self.replica.peer_count()).finish_non_exhaustive()
    }
}

impl Writer {
    /// Runs until every sender of jobs is gone, then returns.
    pub fn run(
        mut self,
        mut jobs: mpsc::Receiver<Job>,
        mut replication: mpsc::Receiver<CheckedEvent>,
        runtime: tokio::runtime::Handle,
    ) {
        let mut batch: Vec<Job> = Vec::with_capacity(BATCH_MAX);
        let mut events: Vec<CheckedEvent> = Vec::new();
        let mut replication_open = true;
        let mut catching_up = CatchingUp::default();
        loop {
            let wait = Duration::from_millis(self.next_timer_ms());
            let first = runtime.block_on(async {
                tokio::time::timeout(wait, async {
                    tokio::select! {
                        biased;
                        job = jobs.recv() => job.map_or(Lane::JobsClosed, Lane::Job),
                        event = replication.recv(), if replication_open => {
                            event.map_or(Lane::ReplicationClosed, Lane::Replication)
                        }
                    }
                })
                .await
            });
            match first {
                Ok(Lane::Job(job)) => batch.push(job),
                Ok(Lane::Replication(event)) => events.push(event),
                Ok(Lane::ReplicationClosed) => replication_open = false,
                Ok(Lane::JobsClosed) => break,
                Err(_elapsed) => {}
            }
            while batch.len() < BATCH_MAX {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut records: usize = events.iter().map(CheckedEvent::records).sum();
            while records < REPLICATION_RECORDS_MAX && events.len() < BATCH_MAX {
                match replication.try_recv() {
                    Ok(event) => {
                        records += event.records();
                        events.push(event);
                    }
                    Err(_) => break,
                }
            }
            let mut applies = Vec::new();
            let mut writes = Vec::new();
            for job in batch.drain(..) {
                match job {
                    Job::Apply { applied, done } => applies.push((applied, done)),
                    Job::Write(write) => writes.push(write),
                }
            }
            let now = self.now();
            self.store_applied(applies, now);
            self.run_writes(writes);
            self.replicate(std::mem::take(&mut events), now);
            catching_up.note(self.replica.missing(), self.replica.counters().fetched, now);
        }
        self.save_catalog();
    }

    /// Saves the catalog for the next start, in step with what is stored.
    fn save_catalog(&self) {
        let Some(path) = &self.catalog_file else { return };
        let started = std::time::Instant::now();
        let catalog = self.catalog.read().expect("catalog lock");
        match crate::catalog::save(&self.records, &catalog, path) {
            Ok(()) => tracing::info!(ms = started.elapsed().as_millis() as u64, "catalog saved"),
            // The next start rebuilds it from the records.
            Err(error) => tracing::warn!(%error, "catalog not saved"),
        }
    }

    /// Hands replication events (and due replication timers) to the core,
    /// in one transaction; on a storage error the transaction rolls back and
    /// reconciliation will bring what was lost. Its commit is not fsynced
    /// (`Sync::Relaxed`) for the same reason: peers' records can be had
    /// again, and the next durable commit makes them durable too.
    fn replicate(&mut self, events: Vec<CheckedEvent>, now: Timestamp) {
        let timer_due = self.replica.poll_timeout().is_some_and(|at| at <= now);
        if events.is_empty() && !timer_due {
            return;
        }
        let result = (|| -> Result<Vec<Change>, StoreError> {
            let mut tx = self.records.write(caravan_store::Sync::Relaxed);
            let mut store = TxRecords::new(&mut tx);
            for event in events {
                self.replica.handle_checked(event, now, &mut store)?;
            }
            if timer_due {
                self.replica.handle_timeout(now, &mut store)?;
            }
            let changes = std::mem::take(&mut store.changes);
            if !changes.is_empty() {
                tx.bump_mark()?;
            }
            tx.commit()?;
            Ok(changes)
        })();

        match result {
            Ok(changes) => self.update_catalog(changes),
            Err(error) => {
                tracing::warn!(%error, "replication events not stored; reconciliation will bring them again")
            }
        }
        self.send_actions();
        self.stats.peers.store(self.replica.peer_count() as u64, Ordering::Relaxed);
        self.stats.records_missing.store(self.replica.missing(), Ordering::Relaxed);
        *self.stats.records_held.lock().expect("stats lock") = self.replica.held();
        *self.stats.replication.lock().expect("stats lock") = self.replica.counters().clone();
        *self.stats.peer_stats.lock().expect("stats lock") =
            self.replica.peer_stats().map(|(peer, stats)| (peer.clone(), *stats)).collect();
    }

    /// Runs writes in one transaction (one fsync), each in a savepoint so
    /// one refused write (say, a taken client key) rolls back alone, then
    /// tells each how the transaction ended.
    fn run_writes(&mut self, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        let (runs, delivers): (Vec<_>, Vec<_>) = writes.into_iter().map(|w| (w.run, w.deliver)).unzip();
        let result = (|| -> Result<(), StoreError> {
            let mut tx = self.conn.transaction()?;
            for run in runs {
                let savepoint = tx.savepoint()?;
                if run(&savepoint) {
                    savepoint.commit()?;
                }
                // A savepoint dropped uncommitted rolls back.
            }
            tx.commit()?;
            Ok(())
        })();
        let outcome = result.map_err(|e| WriteFailed(Arc::new(e)));
        for deliver in delivers {
            deliver(outcome.clone());
        }
    }

    fn update_catalog(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut catalog = self.catalog.write().expect("catalog lock");
        for change in changes {
            catalog.apply(change);
        }
    }

    fn send_actions(&mut self) {
        while let Some(action) = self.replica.poll_action() {
            if self.actions.try_send(action).is_err() {
                self.stats.actions_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn next_timer_ms(&self) -> u64 {
        let now = self.now();
        let mut wait = IDLE_WAKE_MS as i64;
        if let Some(at) = self.replica.poll_timeout() {
            wait = wait.min(at.ms() - now.ms());
        }
        wait.max(0) as u64
    }

    /// Signs and stores the records the applied commands published, in
    /// one transaction, then tells each batch's sender how it went. A
    /// failed transaction keeps nothing and is tried again; past the last
    /// try the state machine stops its member, and a restart re-applies
    /// the Raft log.
    fn store_applied(&mut self, applies: Vec<(Vec<AppliedCommand>, Done)>, now: Timestamp) {
        if applies.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let (mut published, mut gone) = (Vec::new(), Vec::new());
        let mut store = || -> Result<(), StoreError> {
            (published, gone) = (Vec::new(), Vec::new());
            let mut tx = self.records.write(caravan_store::Sync::Relaxed);
            let key = &self.key;
            for (applied, _) in &applies {
                for command in applied {
                    store_publications(&mut tx, key, command, now, &mut published, &mut gone)?;
                }
            }
            if !published.is_empty() {
                tx.bump_mark()?;
            }
            tx.commit()?;
            Ok(())
        };
        let mut result = store();
        for attempt in 1..STORE_TRIES {
            let Err(error) = &result else { break };
            tracing::error!(%error, attempt, "applied commands not stored; trying again");
            std::thread::sleep(std::time::Duration::from_millis(100 << attempt));
            result = store();
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if elapsed_ms >= SLOW_COMMIT_MS {
            tracing::debug!(elapsed_ms, records = published.len(), "slow commit");
        }
        let outcome = result.map_err(|e| WriteFailed(Arc::new(e)));
        if outcome.is_ok() {
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            let points = applies.iter().flat_map(|(a, _)| a).filter(|c| !c.applied.publications.is_empty()).count();
            self.stats.publishing_points.fetch_add(points as u64, Ordering::Relaxed);
            self.stats.records_published.fetch_add(published.len() as u64, Ordering::Relaxed);
        }
        for (_, done) in applies {
            let _ = done.send(outcome.clone());
        }
        if outcome.is_ok() && !published.is_empty() {
            // Durable now: our peers may have them.
            self.update_catalog(published.iter().map(|r| Change::Put(Box::new((**r).clone()))).collect());
            self.replica.handle_published(published, gone, now);
            self.send_actions();
        }
    }
}

/// Signs what one applied command published, versioned by its log index
/// (so every member of the group signs the same bytes), and stores it.
fn store_publications(
    tx: &mut records::Tx<'_>,
    key: &ed25519_dalek::SigningKey,
    command: &AppliedCommand,
    now: Timestamp,
    published: &mut Vec<Verified<Record>>,
    gone: &mut Vec<(u64, caravan_records::RecordId)>,
) -> Result<(), StoreError> {
    if command.applied.publications.is_empty() {
        return Ok(());
    }
    let signed = caravan_publish::sign(key, command.applied.publications.clone(), command.index, command.now);
    for record in caravan_records::verify_batch(signed, now) {
        let record = record.expect("our own records verify");
        let outcome = tx.put(&record, now)?;
        if let records::PutOutcome::Inserted { gone: displaced }
        | records::PutOutcome::Replaced { gone: displaced, .. } = outcome
        {
            gone.extend(displaced);
            published.push(record);
        } else if matches!(outcome, records::PutOutcome::Equivocation(_) | records::PutOutcome::Frozen) {
            // Only if someone else signed with our key: the operator must
            // rotate it. Bookings go on. (A re-applied log entry finds its
            // records already stored: a duplicate or stale, as it should.)
            tracing::error!(key = %record.key, version = record.version, ?outcome, "own record not stored");
        }
    }
    Ok(())
}

/// Rebuilds the ledger from the ledger log a node kept before replica
/// groups, checking that every command gives the reply it gave the first
/// time; `None` if there is no such log. The group adopts it as its first
/// snapshot.
pub fn legacy_ledger(conn: &Connection) -> Result<Option<(Ledger, u64)>, StoreError> {
    if caravan_store::ledger_log::last_index(conn)? == 0 {
        return Ok(None);
    }
    let mut ledger = Ledger::new();
    let mut next_index = 1;
    ledger_log::for_each(conn, 0, |entry| {
        let command: Command = postcard::from_bytes(&entry.command)
            .map_err(|e| StoreError::Corrupt(format!("ledger log entry {}: {e}", entry.index)))?;
        let applied = ledger.apply(&command, Timestamp(entry.now_ms));
        let reply = postcard::to_stdvec(&applied.reply).expect("replies serialize");
        if reply != entry.reply {
            return Err(StoreError::Corrupt(format!("ledger log entry {} replays to a different reply", entry.index)));
        }
        next_index = entry.index + 1;
        Ok(())
    })?;
    ledger.check_invariants();
    Ok(Some((ledger, next_index - 1)))
}
