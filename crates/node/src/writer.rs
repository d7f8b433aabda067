//! The single writer: the one thread that changes the ledger and writes the
//! database.
//!
//! Group commit: the writer takes every command queued while it was busy
//! (up to [`BATCH_MAX`]), applies them in order, appends them to the ledger
//! log together with the records they produced, and commits once — one
//! fsync for the whole batch. Only then are the replies sent, so an
//! acknowledged hold is durable. Under load, batches grow by themselves:
//! the commands that arrive during one fsync make up the next batch.
//!
//! Expected cost per hold: ~1 µs to apply, ~2 µs to encode and insert its
//! log row; a batch pays one WAL fsync (~1-5 ms here). At 512 queued
//! clients that is ~50-100 k holds/s on one core.
//!
//! The writer also runs two timers as ledger commands, so they are in the
//! log like everything else: `ExpireHolds` when a hold's time is up and
//! nothing else is happening, and `Publish` every publish interval when
//! something changed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use caravan_ledger::{Applied, Command, Ledger, Rejection, Reply};
use caravan_model::Timestamp;
use caravan_records::{Record, Verified};
use caravan_replication::{Action, Replica};
use caravan_store::rusqlite::Connection;
use caravan_store::{ledger_log, records, StoreError};

use crate::replica_store::SqliteRecords;
use crate::search::{Catalog, IndexChange};
use tokio::sync::{mpsc, oneshot};

use crate::identity::NodeKey;

/// Commands waiting for the writer. Senders wait when it is full, which
/// pushes back on HTTP clients instead of queueing without bound.
pub const QUEUE_MAX: usize = 16_384;
/// Commands in one transaction.
pub const BATCH_MAX: usize = 4_096;
/// Commits slower than this are logged at debug level.
const SLOW_COMMIT_MS: u64 = 20;
/// The longest the writer sleeps without looking at its timers.
const IDLE_WAKE_MS: u64 = 1_000;

pub type ReplyTx = oneshot::Sender<Result<Result<Reply, Rejection>, String>>;

pub struct Request {
    pub command: Command,
    pub reply: ReplyTx,
}

/// The id of a replication peer: libp2p's `PeerId` in text.
pub type Peer = String;

/// Something for the replication core, which lives here because it writes
/// the database through the one writer.
pub type ReplicationEvent = caravan_replication::Event<Peer>;

/// What the writer's queue carries.
pub enum Job {
    Ledger(Request),
    Replication(ReplicationEvent),
    /// Any other write (an agency booking's state, an account, a token),
    /// done in the next transaction; see [`Write`].
    Write(Write),
}

/// A write to run inside the writer's transaction, in a savepoint of its
/// own: `run` returns whether to keep its changes; `deliver` is called
/// with the transaction's outcome, so its caller hears back only after
/// the commit (or the failure), never before.
pub struct Write {
    pub run: Box<dyn FnOnce(&Connection) -> bool + Send>,
    pub deliver: Box<dyn FnOnce(Result<(), String>) + Send>,
}

/// Replication actions waiting for the network task. When it lags, actions
/// are dropped and counted: gossip may lose messages, reconciliation
/// recovers them.
pub const ACTIONS_MAX: usize = 4_096;

/// Counters the benchmarks and metrics read.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commands: AtomicU64,
    /// Committed transactions; each is one fsync of the WAL.
    pub commits: AtomicU64,
    /// Publishing points committed; at most one per commit.
    pub publishing_points: AtomicU64,
    /// Records this node signed.
    pub records_published: AtomicU64,
    /// Replication actions dropped because the network task lagged.
    pub actions_dropped: AtomicU64,
    /// Connected replication peers.
    pub peers: AtomicU64,
    /// The replication core's counters, as of its last step.
    pub replication: std::sync::Mutex<caravan_replication::Counters>,
    /// What each connected peer exchanged, as of the core's last step.
    pub peer_stats: std::sync::Mutex<Vec<(String, caravan_replication::PeerStats)>>,
}

pub struct Writer {
    pub conn: Connection,
    pub ledger: Arc<RwLock<Ledger>>,
    pub key: NodeKey,
    /// The index the next command gets in the ledger log.
    pub next_index: u64,
    pub publish_interval_ms: i64,
    pub stats: Arc<WriterStats>,
    pub clock: fn() -> Timestamp,
    pub replica: Replica<Peer>,
    pub actions: mpsc::Sender<Action<Peer>>,
    pub search: Arc<RwLock<Catalog>>,
}

impl Writer {
    /// Runs until every sender is gone, then returns.
    pub fn run(mut self, mut queue: mpsc::Receiver<Job>, runtime: tokio::runtime::Handle) {
        let mut last_publish = Timestamp(0);
        let mut jobs: Vec<Job> = Vec::with_capacity(BATCH_MAX);
        loop {
            let wait_ms = self.next_timer_ms(last_publish);
            let first =
                runtime.block_on(async { tokio::time::timeout(Duration::from_millis(wait_ms), queue.recv()).await });
            match first {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) => break,
                Err(_elapsed) => {}
            }
            while jobs.len() < BATCH_MAX {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let mut batch = Vec::new();
            let mut events = Vec::new();
            let mut writes = Vec::new();
            for job in jobs.drain(..) {
                match job {
                    Job::Ledger(request) => batch.push(request),
                    Job::Replication(event) => events.push(event),
                    Job::Write(write) => writes.push(write),
                }
            }
            let now = self.now();
            self.replicate(events, now);
            self.run_writes(writes);
            let expire_due =
                batch.is_empty() && self.ledger.read().expect("ledger lock").next_expiry().is_some_and(|at| at <= now);
            let publish_due = now.ms() - last_publish.ms() >= self.publish_interval_ms;
            if batch.is_empty() && !expire_due && !(publish_due && self.has_unpublished()) {
                continue;
            }
            // A point that left changes behind (it is bounded) is followed
            // by the next one at once, so a busy node publishes every change
            // instead of falling behind at one point per interval.
            if self.commit(batch, expire_due, publish_due, now) && !self.has_unpublished() {
                last_publish = now;
            }
        }
        // Publish what the last commands changed before stopping.
        if self.has_unpublished() {
            let now = self.now();
            self.commit(Vec::new(), false, true, now);
        }
    }

    /// Hands replication events (and due replication timers) to the core,
    /// in one transaction; on a storage error the transaction rolls back and
    /// reconciliation will bring what was lost.
    fn replicate(&mut self, events: Vec<ReplicationEvent>, now: Timestamp) {
        let timer_due = self.replica.poll_timeout().is_some_and(|at| at <= now);
        if events.is_empty() && !timer_due {
            return;
        }
        let result = (|| -> Result<Vec<IndexChange>, StoreError> {
            let tx = self.conn.transaction()?;
            let mut store = SqliteRecords::new(&tx);
            for event in events {
                self.replica.handle_event(event, now, &mut store)?;
            }
            if timer_due {
                self.replica.handle_timeout(now, &mut store)?;
            }
            let changes = std::mem::take(&mut store.changes);
            tx.commit()?;
            Ok(changes)
        })();
        match result {
            Ok(changes) => self.update_index(changes),
            Err(error) => {
                tracing::warn!(%error, "replication events not stored; reconciliation will bring them again")
            }
        }
        self.send_actions();
        self.stats.peers.store(self.replica.peer_count() as u64, Ordering::Relaxed);
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
        let outcome = result.map_err(|e| e.to_string());
        for deliver in delivers {
            deliver(outcome.clone());
        }
    }

    fn update_index(&self, changes: Vec<IndexChange>) {
        if changes.is_empty() {
            return;
        }
        let mut index = self.search.write().expect("search index lock");
        for change in changes {
            crate::search::apply(&mut index, change);
        }
    }

    fn send_actions(&mut self) {
        while let Some(action) = self.replica.poll_action() {
            if self.actions.try_send(action).is_err() {
                self.stats.actions_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn has_unpublished(&self) -> bool {
        self.ledger.read().expect("ledger lock").has_unpublished()
    }

    fn now(&self) -> Timestamp {
        // Stamped times never go backwards, whatever the wall clock does.
        (self.clock)().max(self.ledger.read().expect("ledger lock").last_now())
    }

    fn next_timer_ms(&self, last_publish: Timestamp) -> u64 {
        let now = self.now();
        let ledger = self.ledger.read().expect("ledger lock");
        let mut wait = IDLE_WAKE_MS as i64;
        if let Some(at) = ledger.next_expiry() {
            wait = wait.min(at.ms() - now.ms());
        }
        if ledger.has_unpublished() {
            wait = wait.min(last_publish.ms() + self.publish_interval_ms - now.ms());
        }
        if let Some(at) = self.replica.poll_timeout() {
            wait = wait.min(at.ms() - now.ms());
        }
        wait.max(0) as u64
    }

    /// In one transaction: applies `batch`, then `ExpireHolds` if
    /// `expire`, then one publishing point if `publish_due` and anything
    /// changed; answers the batch once it is durable. Returns whether it
    /// published.
    ///
    /// If the database fails, the batch is answered "unavailable" and the
    /// ledger reloaded from the log. If that fails too, the writer panics
    /// while holding the ledger's lock: fail-stop. The poisoned lock keeps
    /// readers from state that was never committed, the node sees the
    /// writer gone and shuts down, and a restart replays the log.
    fn commit(&mut self, batch: Vec<Request>, expire: bool, publish_due: bool, now: Timestamp) -> bool {
        let started = std::time::Instant::now();
        let mut ledger = self.ledger.write().expect("ledger lock");
        let mut step = Step { index: self.next_index, now, published: Vec::new() };
        let result = (|| -> Result<(Vec<Result<Reply, Rejection>>, bool), StoreError> {
            let tx = self.conn.transaction()?;
            let key = self.key.signing_key();
            let mut replies = Vec::with_capacity(batch.len());
            for request in &batch {
                replies.push(step.apply(&mut ledger, &tx, key, &request.command)?);
            }
            if expire {
                step.apply(&mut ledger, &tx, key, &Command::ExpireHolds)?.expect("timers are never refused");
            }
            // One publishing point per commit: a point is bounded
            // (PUBLISHED_LISTINGS_MAX), and so is the wait behind it.
            let publish = publish_due && ledger.has_unpublished();
            if publish {
                step.apply(&mut ledger, &tx, key, &Command::Publish)?.expect("timers are never refused");
            }
            tx.commit()?;
            Ok((replies, publish))
        })();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if elapsed_ms >= SLOW_COMMIT_MS {
            tracing::debug!(elapsed_ms, commands = batch.len(), records = step.published.len(), "slow commit");
        }
        match result {
            Ok((replies, published)) => {
                drop(ledger);
                self.next_index = step.index;
                self.stats.commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.publishing_points.fetch_add(published as u64, Ordering::Relaxed);
                self.stats.records_published.fetch_add(step.published.len() as u64, Ordering::Relaxed);
                for (request, reply) in batch.into_iter().zip(replies) {
                    // The client may have gone away; the command stands.
                    let _ = request.reply.send(Ok(reply));
                }
                // Durable now: our peers may have them.
                let records = std::mem::take(&mut step.published);
                self.update_index(records.iter().map(|r| IndexChange::Put(Box::new((**r).clone()))).collect());
                self.replica.handle_published(records, now);
                self.send_actions();
                published
            }
            Err(error) => {
                // The transaction rolled back but memory moved on: reload the
                // ledger from the log so both agree again. The batch's
                // clients hear "unavailable" and may retry with their keys.
                tracing::error!(%error, commands = batch.len(), "ledger commit failed; reloading from the log");
                for request in batch {
                    let _ = request.reply.send(Err(format!("storage failure: {error}")));
                }
                match replay(&self.conn) {
                    Ok((reloaded, next_index)) => {
                        *ledger = reloaded;
                        self.next_index = next_index;
                        false
                    }
                    Err(reload_error) => panic!("ledger commit failed ({error}) and reloading failed ({reload_error})"),
                }
            }
        }
    }
}

/// The position of the next command within a commit.
struct Step {
    index: u64,
    now: Timestamp,
    /// Our own records stored by this commit, for the replication core.
    published: Vec<Verified<Record>>,
}

impl Step {
    /// Applies one command, logs it, and stores the records it publishes.
    fn apply(
        &mut self,
        ledger: &mut Ledger,
        tx: &Connection,
        key: &ed25519_dalek::SigningKey,
        command: &Command,
    ) -> Result<Result<Reply, Rejection>, StoreError> {
        let (index, now) = (self.index, self.now);
        self.index += 1;
        let applied = ledger.apply(command, now);
        append(tx, index, now, command, &applied)?;
        if applied.publications.is_empty() {
            return Ok(applied.reply);
        }
        let signed = caravan_publish::sign(key, applied.publications, index, now);
        for record in caravan_records::verify_batch(signed, now) {
            let record = record.expect("our own records verify");
            let outcome = records::put(tx, &record, now)?;
            if !outcome.is_new() {
                // Only if someone else signed with our key: the operator
                // must rotate it. Bookings go on.
                tracing::error!(key = %record.key, version = record.version, ?outcome, "own record not stored");
            }
            caravan_catalog::db::on_put(tx, &record, &outcome)?;
            if outcome.is_new() {
                self.published.push(record);
            }
        }
        Ok(applied.reply)
    }
}

fn append(
    conn: &Connection,
    index: u64,
    now: Timestamp,
    command: &Command,
    applied: &Applied,
) -> Result<(), StoreError> {
    let entry = ledger_log::Entry {
        index,
        now_ms: now.ms(),
        command: postcard::to_stdvec(command).expect("commands serialize"),
        reply: postcard::to_stdvec(&applied.reply).expect("replies serialize"),
    };
    ledger_log::append(conn, &entry)
}

/// Rebuilds the ledger from the log, checking that every command gives the
/// reply it gave the first time. Returns the ledger and the next index.
pub fn replay(conn: &Connection) -> Result<(Ledger, u64), StoreError> {
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
    Ok((ledger, next_index))
}
