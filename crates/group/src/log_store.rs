//! The Raft log and vote: in memory for reads, in SQLite for durability.
//!
//! Every entry since the last purge is kept in memory, so replication and
//! catch-up read without touching the disk (a snapshot every
//! `SNAPSHOT_EVERY_ENTRIES` bounds it). Writes go to SQLite (`raft.db`,
//! WAL, `synchronous=FULL`) on a thread of their own, off openraft's core
//! task: the thread takes every write queued while it was busy and commits
//! them together, one fsync per batch, then tells openraft the entries are
//! flushed (a batch of nothing but a committed index costs no fsync). A vote, a truncation and a purge are waited for before they
//! return; appends are acknowledged through openraft's callback.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::{io_error, Entry, GroupConfig, LogId, StorageError, Vote};

/// Writes waiting for the log thread.
const WRITES_QUEUED_MAX: usize = 1_024;
/// Commit times kept for the latency figure.
const LATENCIES_KEPT: usize = 1_024;

/// The log's state as readers see it (including appends not yet synced).
#[derive(Debug, Default, Clone)]
pub struct LogContents {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// A member's durable state kept in memory, shared with whoever made it:
/// a simulated crash drops the member but keeps this, as a disk would.
pub type MemoryDisk = Arc<Mutex<LogContents>>;

enum Write {
    Append(Vec<Entry>, LogFlushed<GroupConfig>),
    Vote(Vote, oneshot::Sender<Result<(), String>>),
    Committed(Option<LogId>),
    /// Deletes entries from this index on.
    Truncate(u64, oneshot::Sender<Result<(), String>>),
    /// Deletes entries up to this log id, inclusive.
    Purge(LogId, oneshot::Sender<Result<(), String>>),
}

/// The log store. Clones share one log.
#[derive(Clone)]
pub struct GroupLog {
    contents: Arc<Mutex<LogContents>>,
    /// `None` in memory; the SQLite thread's queue otherwise.
    writes: Option<mpsc::Sender<Write>>,
    latencies: Arc<Mutex<VecDeque<f64>>>,
    /// Commits so far: one fsync each.
    commits: Arc<AtomicU64>,
}

impl Debug for GroupLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLog").field("durable", &self.writes.is_some()).finish()
    }
}

impl GroupLog {
    /// A log that lives in `disk` (simulations and tests).
    pub fn memory(disk: MemoryDisk) -> GroupLog {
        GroupLog { contents: disk, writes: None, latencies: Arc::default(), commits: Arc::default() }
    }

    /// Opens (or creates) the SQLite log at `path` and starts its thread.
    pub fn open(path: &Path) -> Result<GroupLog, String> {
        let conn = open_db(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let contents = load(&conn).map_err(|e| format!("{}: {e}", path.display()))?;
        let (writes, queue) = mpsc::channel(WRITES_QUEUED_MAX);
        let latencies: Arc<Mutex<VecDeque<f64>>> = Arc::default();
        let commits: Arc<AtomicU64> = Arc::default();
        let (thread_latencies, thread_commits) = (latencies.clone(), commits.clone());
        std::thread::Builder::new()
            .name("raft-log".into())
            .spawn(move || write_loop(conn, queue, thread_latencies, thread_commits))
            .map_err(|e| format!("starting the log thread: {e}"))?;
        Ok(GroupLog { contents: Arc::new(Mutex::new(contents)), writes: Some(writes), latencies, commits })
    }

    /// Commits of the log so far, each one fsync (none in memory).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The 99th percentile of recent commit times (each one fsync), in ms.
    pub fn append_p99_ms(&self) -> Option<f64> {
        let latencies = self.latencies.lock().expect("latency lock");
        let mut sorted: Vec<f64> = latencies.iter().copied().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)])
    }

    /// The last log id present, or purged if none is.
    pub fn last_log_id(&self) -> Option<LogId> {
        let contents = self.contents.lock().expect("log lock");
        contents.entries.values().next_back().map(|e| e.log_id).or(contents.last_purged)
    }

    async fn write_and_wait(
        &self,
        write: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Write,
    ) -> Result<(), String> {
        let Some(writes) = &self.writes else { return Ok(()) };
        let (done, wait) = oneshot::channel();
        writes.send(write(done)).await.map_err(|_| "the log thread has stopped".to_string())?;
        wait.await.map_err(|_| "the log thread has stopped".to_string())?
    }
}

impl RaftLogReader<GroupConfig> for GroupLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let contents = self.contents.lock().expect("log lock");
        Ok(contents.entries.range(range).map(|(_, entry)| entry.clone()).collect())
    }
}

impl RaftLogStorage<GroupConfig> for GroupLog {
    type LogReader = GroupLog;

    async fn get_log_state(&mut self) -> Result<LogState<GroupConfig>, StorageError> {
        let contents = self.contents.lock().expect("log lock");
        let last_log_id = contents.entries.values().next_back().map(|e| e.log_id).or(contents.last_purged);
        Ok(LogState { last_purged_log_id: contents.last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> GroupLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.contents.lock().expect("log lock").vote = Some(*vote);
        let vote = *vote;
        self.write_and_wait(|done| Write::Vote(vote, done))
            .await
            .map_err(|e| io_error(ErrorVerb::Write, ErrorSubject::Vote, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.contents.lock().expect("log lock").vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.contents.lock().expect("log lock").committed = committed;
        // Not waited for: a committed index lost in a crash is learnt again
        // from the leader; it only saves re-applying at start.
        if let Some(writes) = &self.writes {
            let _ = writes.send(Write::Committed(committed)).await;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.contents.lock().expect("log lock").committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<GroupConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        {
            let mut contents = self.contents.lock().expect("log lock");
            contents.entries.extend(entries.iter().map(|e| (e.log_id.index, e.clone())));
        }
        match &self.writes {
            None => callback.log_io_completed(Ok(())),
            Some(writes) => {
                let stopped = |_| io_error(ErrorVerb::Write, ErrorSubject::Logs, "the log thread has stopped");
                writes.send(Write::Append(entries, callback)).await.map_err(stopped)?;
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.contents.lock().expect("log lock").entries.split_off(&log_id.index);
        self.write_and_wait(|done| Write::Truncate(log_id.index, done))
            .await
            .map_err(|e| io_error(ErrorVerb::Delete, ErrorSubject::Logs, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut contents = self.contents.lock().expect("log lock");
            contents.entries = contents.entries.split_off(&(log_id.index + 1));
            contents.last_purged = Some(log_id);
        }
        self.write_and_wait(|done| Write::Purge(log_id, done))
            .await
            .map_err(|e| io_error(ErrorVerb::Delete, ErrorSubject::Logs, e))
    }
}

fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // The log is what must never be lost: every commit reaches the disk.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
    )?;
    Ok(conn)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> rusqlite::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, format!("{what}: {e}").into())
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("log values serialize")
}

fn meta<T: serde::de::DeserializeOwned>(conn: &Connection, key: &str) -> rusqlite::Result<Option<T>> {
    let bytes: Option<Vec<u8>> =
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0)).optional()?;
    bytes.map(|bytes| decode(key, &bytes)).transpose()
}

fn set_meta<T: serde::Serialize>(conn: &Connection, key: &str, value: &T) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, encode(value)])?;
    Ok(())
}

fn load(conn: &Connection) -> rusqlite::Result<LogContents> {
    let mut contents = LogContents {
        last_purged: meta(conn, "purged")?,
        vote: meta(conn, "vote")?,
        committed: meta(conn, "committed")?.flatten(),
        ..LogContents::default()
    };
    let mut statement = conn.prepare("SELECT entry FROM log ORDER BY idx")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let entry: Entry = decode("log entry", &row.get::<_, Vec<u8>>(0)?)?;
        contents.entries.insert(entry.get_log_id().index, entry);
    }
    Ok(contents)
}

/// The log thread: takes every queued write, commits them together, then
/// acknowledges each. Ends when the store is dropped.
fn write_loop(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Write>,
    latencies: Arc<Mutex<VecDeque<f64>>>,
    commits: Arc<AtomicU64>,
) {
    let mut batch = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while let Ok(write) = queue.try_recv() {
            batch.push(write);
        }
        let started = Instant::now();
        // A committed index alone need not be durable (a lost one is learnt
        // again from the leader): it rides without an fsync, and the next
        // durable commit syncs it with the rest of the WAL.
        let durable = batch.iter().any(|write| !matches!(write, Write::Committed(_)));
        let result = commit(&mut conn, &batch, durable).map_err(|e| e.to_string());
        if durable {
            commits.fetch_add(1, Ordering::Relaxed);
            let mut latencies = latencies.lock().expect("latency lock");
            if latencies.len() == LATENCIES_KEPT {
                latencies.pop_front();
            }
            latencies.push_back(started.elapsed().as_secs_f64() * 1000.0);
        }
        if let Err(error) = &result {
            tracing::error!(%error, "raft log write failed");
        }
        for write in batch.drain(..) {
            let outcome = result.clone();
            match write {
                Write::Append(_, callback) => {
                    callback.log_io_completed(outcome.map_err(std::io::Error::other));
                }
                Write::Vote(_, done) | Write::Truncate(_, done) | Write::Purge(_, done) => {
                    let _ = done.send(outcome);
                }
                Write::Committed(_) => {}
            }
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Write], durable: bool) -> rusqlite::Result<()> {
    if !durable {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    let result = write_batch(conn, batch);
    if !durable {
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    result
}

fn write_batch(conn: &mut Connection, batch: &[Write]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for write in batch {
        match write {
            Write::Append(entries, _) => {
                let mut insert = tx.prepare_cached("INSERT OR REPLACE INTO log (idx, entry) VALUES (?1, ?2)")?;
                for entry in entries {
                    insert.execute(params![entry.log_id.index as i64, encode(entry)])?;
                }
            }
            Write::Vote(vote, _) => set_meta(&tx, "vote", vote)?,
            Write::Committed(committed) => set_meta(&tx, "committed", committed)?,
            Write::Truncate(from, _) => {
                tx.execute("DELETE FROM log WHERE idx >= ?1", [*from as i64])?;
            }
            Write::Purge(upto, _) => {
                tx.execute("DELETE FROM log WHERE idx <= ?1", [upto.index as i64])?;
                set_meta(&tx, "purged", upto)?;
            }
        }
    }
    tx.commit()
}

/// Reads a value this member keeps beside its log (its own id, say).
pub fn read_local<T: serde::de::DeserializeOwned>(path: &Path, key: &str) -> Result<Option<T>, String> {
    let conn = open_db(path).map_err(|e| format!("{}: {e}", path.display()))?;
    meta(&conn, &format!("local.{key}")).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a value this member keeps beside its log, durably.
pub fn write_local<T: serde::Serialize>(path: &Path, key: &str, value: &T) -> Result<(), String> {
    let conn = open_db(path).map_err(|e| format!("{}: {e}", path.display()))?;
    set_meta(&conn, &format!("local.{key}"), value).map_err(|e| format!("{}: {e}", path.display()))
}
