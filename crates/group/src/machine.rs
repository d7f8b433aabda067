//! The ledger and the group's people as Raft's state machine.
//!
//! `apply` runs each committed command through [`Ledger::apply`] (or, for
//! a change to accounts, [`Directory::apply`]) at the
//! time the leader stamped (never earlier than the last command's, so a
//! new leader whose clock is behind cannot move time backwards), hands the
//! outcomes to the node's [`Effects`], and answers. Neither the ledger nor
//! its effects are made durable on every apply, and the effects need not
//! even be stored before the answer: the Raft log is the ledger's log (its
//! fsync is the one a batch of commands costs), and a restart re-applies
//! it from the last snapshot, deriving the same effects again. So a
//! snapshot is taken only once the effects of what it holds are durable
//! ([`Effects::settle`]).
//!
//! Clones are handles on one machine: a member keeps one while a Raft core
//! runs on another, and hands it to the next core it starts. A stopped
//! core's worker may still apply what it had queued, so applying takes the
//! machine's position for the whole of the call (effects included) and
//! passes over entries already applied.

use std::future::Future;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use caravan_accounts::directory::Directory;
use caravan_ledger::{Applied, Command, Ledger, Reply};
use caravan_model::Timestamp;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, SnapshotMeta};

use crate::snapshot::{SnapshotImage, SnapshotStore};
use crate::{io_error, Entry, GroupConfig, LogId, Member, MemberId, Outcome, Proposal, StorageError, StoredMembership};

/// One command as applied at `index`, for the node's effects.
#[derive(Clone, Debug)]
pub struct AppliedCommand {
    pub index: u64,
    pub now: Timestamp,
    pub command: Command,
    pub applied: Applied,
}

/// What applying commands means outside the ledger.
pub trait Effects: Send + Sync + 'static {
    /// Takes what `applied` produced (the records its publishing points
    /// sign) to be stored, in order; it need be neither stored nor durable
    /// when this returns, as the log derives it again. An error (this
    /// time's or an earlier store's) stops this member (fail-stop); a
    /// restart re-applies the log.
    fn persist(&self, applied: Vec<AppliedCommand>) -> impl Future<Output = Result<(), EffectsError>> + Send;

    /// Stores everything handed over so far and makes it durable: called
    /// before a snapshot, beyond which the log is no longer re-applied.
    fn settle(&self) -> impl Future<Output = Result<(), EffectsError>> + Send {
        async { Ok(()) }
    }

    /// Resolves if storing something handed over failed after `persist`
    /// returned: the member stops then. Never, by default.
    fn failure(&self) -> impl Future<Output = EffectsError> + Send {
        std::future::pending()
    }
}

/// Why effects could not be made durable: the cause, for the log.
pub type EffectsError = Box<dyn std::error::Error + Send + Sync>;

/// Effects for a ledger with nothing beside it (tests, simulations).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEffects;

impl Effects for NoEffects {
    async fn persist(&self, _applied: Vec<AppliedCommand>) -> Result<(), EffectsError> {
        Ok(())
    }
}

#[derive(Debug)]
pub struct LedgerMachine<E> {
    ledger: Arc<RwLock<Ledger>>,
    /// Accounts, tokens and managers, changed by `Command::People` only.
    people: Arc<RwLock<Directory>>,
    /// The index of the last entry in `ledger`, changed only under its
    /// write lock: a reader holding the read lock sees the two agree.
    applied_index: Arc<AtomicU64>,
    position: Arc<tokio::sync::Mutex<Position>>,
    snapshots: SnapshotStore,
    effects: Arc<E>,
}

impl<E> Clone for LedgerMachine<E> {
    fn clone(&self) -> Self {
        LedgerMachine {
            ledger: self.ledger.clone(),
            people: self.people.clone(),
            applied_index: self.applied_index.clone(),
            position: self.position.clone(),
            snapshots: self.snapshots.clone(),
            effects: self.effects.clone(),
        }
    }
}

/// The last entry applied and the membership as of it.
#[derive(Debug, Default)]
struct Position {
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl<E: Effects> LedgerMachine<E> {
    /// Opens the machine at its last snapshot, if it has one.
    pub fn open(snapshots: SnapshotStore, effects: Arc<E>) -> Result<LedgerMachine<E>, String> {
        let image = match snapshots.load()? {
            Some(bytes) => SnapshotImage::decode(&bytes)?,
            None => SnapshotImage::default(),
        };
        Ok(LedgerMachine {
            ledger: Arc::new(RwLock::new(image.ledger)),
            people: Arc::new(RwLock::new(image.people)),
            applied_index: Arc::new(AtomicU64::new(image.applied.map_or(0, |id| id.index))),
            position: Arc::new(tokio::sync::Mutex::new(Position {
                applied: image.applied,
                membership: image.membership,
            })),
            snapshots,
            effects,
        })
    }

    /// Seeds an empty machine with a ledger rebuilt from outside Raft (a
    /// data directory from before replica groups): it becomes a snapshot at
    /// `applied` whose only member is `member`, so the log goes on from
    /// there.
    pub fn adopt(&mut self, ledger: Ledger, applied: LogId, member: (MemberId, Member)) -> Result<(), String> {
        let mut position = self.position.try_lock().map_err(|_| "the state machine is in use".to_string())?;
        if position.applied.is_some() {
            return Err("the state machine already has a snapshot".into());
        }
        let members = std::collections::BTreeMap::from([member]);
        let voters = std::collections::BTreeSet::from_iter(members.keys().copied());
        let membership = openraft::Membership::new(vec![voters], members);
        let image = SnapshotImage {
            applied: Some(applied),
            membership: StoredMembership::new(Some(applied), membership),
            ledger,
            people: Directory::default(),
        };
        self.snapshots.save(&image.encode())?;
        *self.ledger.write().expect("ledger lock") = image.ledger;
        self.applied_index.store(applied.index, Ordering::Release);
        *position = Position { applied: image.applied, membership: image.membership };
        Ok(())
    }

    /// The ledger as applied so far, for readers.
    pub fn ledger(&self) -> Arc<RwLock<Ledger>> {
        self.ledger.clone()
    }

    /// The group's people as applied so far, for readers.
    pub fn people(&self) -> Arc<RwLock<Directory>> {
        self.people.clone()
    }

    /// The log index the ledger stands at; read it under the ledger's lock.
    pub fn applied_index(&self) -> Arc<AtomicU64> {
        self.applied_index.clone()
    }

    fn apply_entries(
        &self,
        position: &mut Position,
        entries: impl IntoIterator<Item = Entry>,
    ) -> (Vec<Outcome>, Vec<AppliedCommand>) {
        let mut ledger = self.ledger.write().expect("ledger lock");
        let mut outcomes = Vec::new();
        let mut applied_commands = Vec::new();
        for entry in entries {
            if position.applied.is_some_and(|applied| applied.index >= entry.log_id.index) {
                // Applied by the worker of a core that stopped since.
                outcomes.push(Ok(Reply::Done));
                continue;
            }
            position.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => outcomes.push(Ok(Reply::Done)),
                EntryPayload::Membership(membership) => {
                    position.membership = StoredMembership::new(Some(entry.log_id), membership);
                    outcomes.push(Ok(Reply::Done));
                }
                EntryPayload::Normal(Proposal { now, command: Command::People(change) }) => {
                    let now = now.max(ledger.last_now());
                    let answer = self.people.write().expect("people lock").apply(&change, now);
                    outcomes.push(Ok(Reply::People(answer)));
                }
                EntryPayload::Normal(proposal) => {
                    let now = proposal.now.max(ledger.last_now());
                    let applied = ledger.apply(&proposal.command, now);
                    outcomes.push(applied.reply.clone());
                    applied_commands.push(AppliedCommand {
                        index: entry.log_id.index,
                        now,
                        command: proposal.command,
                        applied,
                    });
                }
            }
        }
        if let Some(applied) = position.applied {
            self.applied_index.store(applied.index, Ordering::Release);
        }
        (outcomes, applied_commands)
    }

    fn image(&self, position: &Position) -> SnapshotImage {
        SnapshotImage {
            applied: position.applied,
            membership: position.membership.clone(),
            ledger: self.ledger.read().expect("ledger lock").clone(),
            people: self.people.read().expect("people lock").clone(),
        }
    }
}

fn snapshot_of(image: &SnapshotImage, bytes: Vec<u8>) -> Snapshot<GroupConfig> {
    Snapshot {
        meta: SnapshotMeta {
            last_log_id: image.applied,
            last_membership: image.membership.clone(),
            snapshot_id: SnapshotImage::id(image.applied, &bytes),
        },
        snapshot: Box::new(Cursor::new(bytes)),
    }
}

/// Builds a snapshot from a copy of the ledger taken on the machine's task.
#[derive(Debug)]
pub struct SnapshotBuilder<E> {
    image: SnapshotImage,
    snapshots: SnapshotStore,
    effects: Arc<E>,
}

impl<E: Effects> RaftSnapshotBuilder<GroupConfig> for SnapshotBuilder<E> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<GroupConfig>, StorageError> {
        let subject = ErrorSubject::Snapshot(None);
        // Everything the image holds was persisted before it was taken.
        self.effects.settle().await.map_err(|e| io_error(ErrorVerb::Write, subject.clone(), e))?;
        let bytes = self.image.encode();
        self.snapshots.save(&bytes).map_err(|e| io_error(ErrorVerb::Write, subject, e))?;
        Ok(snapshot_of(&self.image, bytes))
    }
}

impl<E: Effects> RaftStateMachine<GroupConfig> for LedgerMachine<E> {
    type SnapshotBuilder = SnapshotBuilder<E>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let position = self.position.lock().await;
        Ok((position.applied, position.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut position = self.position.lock().await;
        let (outcomes, applied) = self.apply_entries(&mut position, entries);
        if !applied.is_empty() {
            let subject = ErrorSubject::StateMachine;
            self.effects.persist(applied).await.map_err(|e| io_error(ErrorVerb::Write, subject, e))?;
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder<E> {
        let image = self.image(&*self.position.lock().await);
        SnapshotBuilder { image, snapshots: self.snapshots.clone(), effects: self.effects.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let image = SnapshotImage::decode(&bytes).map_err(|e| io_error(ErrorVerb::Read, subject.clone(), e))?;
        if image.applied != meta.last_log_id {
            let why = format!("snapshot holds {:?}, its metadata says {:?}", image.applied, meta.last_log_id);
            return Err(io_error(ErrorVerb::Read, subject, why));
        }
        let mut position = self.position.lock().await;
        self.snapshots.save(&bytes).map_err(|e| io_error(ErrorVerb::Write, subject, e))?;
        let mut ledger = self.ledger.write().expect("ledger lock");
        *ledger = image.ledger;
        *self.people.write().expect("people lock") = image.people;
        self.applied_index.store(image.applied.map_or(0, |id| id.index), Ordering::Release);
        *position = Position { applied: image.applied, membership: image.membership };
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<GroupConfig>>, StorageError> {
        let subject = ErrorSubject::Snapshot(None);
        let Some(bytes) = self.snapshots.load().map_err(|e| io_error(ErrorVerb::Read, subject.clone(), e))? else {
            return Ok(None);
        };
        let image = SnapshotImage::decode(&bytes).map_err(|e| io_error(ErrorVerb::Read, subject, e))?;
        Ok(Some(snapshot_of(&image, bytes)))
    }
}
