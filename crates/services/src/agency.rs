//! The agency's bookings: one [`Saga`] per booking, driven by its own task
//! and written through the replica group's log after every step
//! (`Command::PutBooking`, compare-and-set on the booking's revision), so
//! the sagas live on every member of the agency's group. The member that
//! leads drives them all; a booking asked for at a follower is written
//! there and driven by the leader, and when the leader is lost (or the
//! node restarts) the next leader picks every unfinished saga up where
//! the log left it ([`Agency::conduct`]) and still ends it all-or-nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use caravan_api::{async_trait, AgencyService};
use caravan_booking::agency::{Booking, BookingError, Decision, NewBooking, Traveller};
use caravan_booking::{Part, Phase, Saga};
use caravan_ledger::agency::{AgencyBooking, PutBooking};
use caravan_ledger::{Command, Ledger, Rejection, Reply};
use caravan_model::Timestamp;
use caravan_store::agency::BookingRow;
use tokio::sync::{mpsc, oneshot, watch};

use crate::booking::{BookingService, Proposer};
use crate::Database;

/// How long `create_booking` and `cancel_booking` wait for the saga to end
/// before answering with its state so far.
pub const BOOKING_WAIT_MS: u64 = 15_000;
/// The longest a waiting saga sleeps before looking again.
const IDLE_MS: u64 = 1_000;
/// How long [`Agency::stop`] waits for saga tasks to stop (a call to an
/// owner in flight may take its timeout).
const STOP_WAIT_MS: u64 = 10_000;
/// How often the leader looks for sagas nobody drives (written at a
/// follower, or left by the leader before it).
const CONDUCT_MS: u64 = 200;
/// How often a member that does not drive a booking looks whether it ended.
const POLL_MS: u64 = 25;

/// How the agency has a saga's task started: each saga runs on its own,
/// beyond the request that began it.
pub type Spawn = fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

/// This node's bookings as an agency; cheap to clone.
#[derive(Debug)]
pub struct Agency<D, P> {
    shared: Arc<Shared<D, P>>,
}

impl<D, P> Clone for Agency<D, P> {
    fn clone(&self) -> Self {
        Agency { shared: self.shared.clone() }
    }
}

#[derive(Debug)]
struct Shared<D, P> {
    /// This member's own database: bookings from before they lived in the
    /// group, handed to it once.
    db: D,
    /// How the sagas reach owners.
    owners: Arc<BookingService<P>>,
    /// Where bookings are written: the agency's replica group.
    group: Arc<P>,
    /// The group's ledger as applied here, which holds the bookings.
    ledger: Arc<RwLock<Ledger>>,
    clock: fn() -> Timestamp,
    /// Starts a saga's task; the node owns every task.
    spawn: Spawn,
    /// Whether this member's own database may still hold bookings.
    legacy: std::sync::atomic::AtomicBool,
    /// The next booking id this member hands out, so bookings made here at
    /// once never race each other for one.
    next_id: std::sync::atomic::AtomicU64,
    /// Bookings whose saga task is running.
    running: Mutex<HashSet<u64>>,
    /// Held bookings waiting for their traveller: how to reach their task.
    deciders: Mutex<HashMap<u64, mpsc::Sender<DecisionCall>>>,
    /// Becomes true at shutdown: saga tasks stop at their next step (their
    /// state is durable) and resume at the next start.
    stop: watch::Sender<bool>,
}

/// Who made a booking and how: everything of a booking row but its saga.
#[derive(Clone, Debug)]
struct Holder {
    traveller: Traveller,
    client_key: Option<String>,
    user: Option<u64>,
}

fn encode(saga: &Saga, holder: &Holder) -> AgencyBooking {
    AgencyBooking {
        id: saga.id,
        client_key: holder.client_key.clone(),
        user: holder.user,
        phase: saga.phase.name().to_owned(),
        terminal: saga.phase.is_terminal(),
        created: saga.created_at,
        updated: saga.updated_at,
        traveller: postcard::to_stdvec(&holder.traveller).expect("travellers serialize"),
        saga: postcard::to_stdvec(saga).expect("sagas serialize"),
    }
}

fn decode(stored: &AgencyBooking) -> Result<(Saga, Holder), BookingError> {
    let corrupt = |e: postcard::Error| BookingError::Unavailable(format!("booking {} unreadable: {e}", stored.id));
    let holder = Holder {
        traveller: postcard::from_bytes(&stored.traveller).map_err(corrupt)?,
        client_key: stored.client_key.clone(),
        user: stored.user,
    };
    Ok((postcard::from_bytes(&stored.saga).map_err(corrupt)?, holder))
}

/// A booking of this member's own database (from before bookings lived in
/// the group), as the group keeps it.
fn from_row(row: BookingRow) -> Result<AgencyBooking, BookingError> {
    let stored = AgencyBooking {
        id: row.id,
        client_key: row.client_key,
        user: row.user_id,
        phase: row.phase,
        terminal: false,
        created: Timestamp(row.created_ms),
        updated: Timestamp(row.updated_ms),
        traveller: row.traveller,
        saga: row.saga,
    };
    let (saga, _) = decode(&stored)?;
    Ok(AgencyBooking { terminal: saga.phase.is_terminal(), ..stored })
}

fn booking(saga: Saga, holder: Holder) -> Booking {
    Booking { saga, traveller: holder.traveller, user: holder.user }
}

fn decode_booking(stored: &AgencyBooking) -> Result<Booking, BookingError> {
    decode(stored).map(|(saga, holder)| booking(saga, holder))
}

/// Why a booking was not written.
#[derive(Debug)]
enum PutError {
    /// It changed since the revision the write followed from (or, new, its
    /// id is taken): reload it.
    Changed,
    /// Its client key names another booking.
    KeyTaken,
    Failed(BookingError),
}

impl<D: Database, P: Proposer + 'static> Agency<D, P> {
    /// The agency over the group's bookings; `db` may still hold bookings
    /// from before they lived in the group.
    pub async fn open(
        db: D,
        owners: Arc<BookingService<P>>,
        clock: fn() -> Timestamp,
        spawn: Spawn,
    ) -> Result<Agency<D, P>, caravan_store::StoreError> {
        let (group, ledger) = (owners.group().clone(), owners.ledger().clone());
        let legacy = db.read(caravan_store::agency::last_id).await? > 0;
        let shared = Shared {
            db,
            owners,
            group,
            ledger,
            clock,
            spawn,
            legacy: std::sync::atomic::AtomicBool::new(legacy),
            next_id: std::sync::atomic::AtomicU64::new(1),
            running: Mutex::default(),
            deciders: Mutex::default(),
            stop: watch::channel(false).0,
        };
        Ok(Agency { shared: Arc::new(shared) })
    }

    fn now(&self) -> Timestamp {
        (self.shared.clock)()
    }

    fn leads(&self) -> bool {
        self.shared.group.leads()
    }

    /// A booking as applied here, with its revision.
    fn stored(&self, key: BookingKey) -> Option<(u64, AgencyBooking)> {
        let ledger = self.shared.ledger.read().expect("ledger lock");
        let found = match &key {
            BookingKey::Id(id) => ledger.agency().get(*id),
            BookingKey::Client(key) => ledger.agency().by_client_key(key),
        };
        found.map(|(revision, stored)| (revision, stored.clone()))
    }

    /// The revision a booking stands at here, without copying it.
    fn revision_of(&self, id: u64) -> Option<u64> {
        self.shared.ledger.read().expect("ledger lock").agency().get(id).map(|(revision, _)| revision)
    }

    /// Writes a booking through the group if it stands at `revision`: its
    /// new revision.
    async fn put(&self, stored: AgencyBooking, revision: Option<u64>) -> Result<u64, PutError> {
        let command = Command::PutBooking(PutBooking { booking: stored, revision });
        match self.shared.group.propose(command).await {
            Ok(Ok(Reply::Booking { revision })) => Ok(revision),
            Ok(Err(Rejection::BookingChanged { .. })) => Err(PutError::Changed),
            Ok(Err(Rejection::IdempotencyKeyReused)) => Err(PutError::KeyTaken),
            Ok(other) => Err(PutError::Failed(BookingError::Unavailable(format!("writing a booking: {other:?}")))),
            Err(error) => Err(PutError::Failed(BookingError::Unavailable(format!("writing a booking: {error}")))),
        }
    }

    /// Starts a booking and waits (up to [`BOOKING_WAIT_MS`]) for it to end.
    pub async fn create_booking(&self, mut new: NewBooking) -> Result<Booking, BookingError> {
        new.traveller.validate().map_err(BookingError::Invalid)?;
        // Every owner learns who travels, with the hold.
        for (_, spec) in &mut new.parts {
            spec.traveller = Some(new.traveller.clone());
        }
        let parts: Vec<Part> = new.parts.into_iter().map(|(origin, spec)| Part::new(origin, spec)).collect();
        let holder = Holder { traveller: new.traveller, client_key: new.client_key, user: new.user };
        let same = |existing: &Booking| {
            existing.saga.parts.len() == parts.len()
                && existing.saga.parts.iter().zip(&parts).all(|(p, o)| p.owner() == o.owner() && p.spec == o.spec)
                && existing.traveller == holder.traveller
        };
        let existing = |key: &str| -> Result<Booking, BookingError> {
            let (_, stored) = self.stored(BookingKey::Client(key.to_owned())).ok_or(BookingError::NotFound(0))?;
            let existing = decode_booking(&stored)?;
            match same(&existing) {
                true => Ok(existing),
                false => Err(BookingError::Conflict("idempotency key was used for a different booking".into())),
            }
        };
        if let Some(key) = &holder.client_key {
            if self.stored(BookingKey::Client(key.clone())).is_some() {
                return existing(key);
            }
        }
        // A new id after the last one the group holds and the last one this
        // member handed out; another member taking it first makes the write
        // fail, and the next one is tried.
        let (saga, revision) = loop {
            let after_last = self.shared.ledger.read().expect("ledger lock").agency().last_id() + 1;
            self.shared.next_id.fetch_max(after_last, std::sync::atomic::Ordering::AcqRel);
            let id = self.shared.next_id.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            let saga = match new.wait_to_confirm {
                true => Saga::waiting(id, rand::random(), parts.clone(), self.now()),
                false => Saga::new(id, rand::random(), parts.clone(), self.now()),
            }
            .map_err(|e| BookingError::Invalid(e.to_string()))?;
            self.shared.running.lock().expect("running lock").insert(id);
            let written = self.put(encode(&saga, &holder), None).await;
            if written.is_err() {
                self.shared.running.lock().expect("running lock").remove(&id);
            }
            match written {
                Ok(revision) => break (saga, revision),
                Err(PutError::Changed) => continue,
                // The same key sent twice at once: the first one made it.
                Err(PutError::KeyTaken) => return existing(holder.client_key.as_deref().unwrap_or_default()),
                Err(PutError::Failed(error)) => return Err(error),
            }
        };
        self.go(saga, holder, revision).await
    }

    /// Drives a booking just written from here if this member leads; else
    /// the leader does, and this member waits for it.
    async fn go(&self, saga: Saga, holder: Holder, revision: u64) -> Result<Booking, BookingError> {
        let id = saga.id;
        if !self.leads() {
            self.shared.running.lock().expect("running lock").remove(&id);
            return self.wait_elsewhere(id, revision).await;
        }
        let (done, finished) = oneshot::channel();
        (self.shared.spawn)(Box::pin(drive(self.clone(), saga, holder, revision, Some(done))));
        self.wait_for(id, finished).await
    }

    /// Hands the traveller's decision to a held booking's task and waits
    /// (up to [`BOOKING_WAIT_MS`]) for the booking to end. Where no task
    /// of this member drives it, the decision is written into the booking
    /// and the leader's task takes it from there.
    pub async fn decide_booking(&self, id: u64, decision: Decision) -> Result<Booking, BookingError> {
        if let Decision::Confirm(Some(traveller)) = &decision {
            traveller.validate().map_err(BookingError::Invalid)?;
        }
        let decider = self.shared.deciders.lock().expect("deciders lock").get(&id).cloned();
        let Some(decider) = decider else { return self.decide_here(id, decision).await };
        let (reply, finished) = oneshot::channel();
        let stopping = || BookingError::Unavailable("the booking's task is stopping".into());
        decider.send(DecisionCall { decision, reply }).await.map_err(|_| stopping())?;
        self.wait_for(id, finished).await
    }

    /// Takes a decision on a held booking no task of this member drives.
    async fn decide_here(&self, id: u64, decision: Decision) -> Result<Booking, BookingError> {
        loop {
            let (revision, stored) = self.stored(BookingKey::Id(id)).ok_or(BookingError::NotFound(id))?;
            let (mut saga, mut holder) = decode(&stored)?;
            let now = self.now();
            let taken = match &decision {
                Decision::Confirm(traveller) => {
                    if let Some(traveller) = traveller {
                        if saga.name_traveller(traveller, now) {
                            holder.traveller = traveller.clone();
                        }
                    }
                    saga.confirm(now)
                }
                Decision::Release => saga.release(now),
            };
            if !taken {
                return Err(BookingError::Conflict(format!("booking {id} is {}, not held", saga.phase.name())));
            }
            match self.put(encode(&saga, &holder), Some(revision)).await {
                Ok(revision) => return self.wait_elsewhere(id, revision).await,
                Err(PutError::Changed) => continue,
                Err(PutError::KeyTaken) => return Err(BookingError::Unavailable("booking key clash".into())),
                Err(PutError::Failed(error)) => return Err(error),
            }
        }
    }

    /// Cancels a confirmed booking at every owner, with each owner's penalty.
    pub async fn cancel_booking(&self, id: u64) -> Result<Booking, BookingError> {
        if self.shared.running.lock().expect("running lock").contains(&id) {
            return Err(BookingError::Conflict(format!("booking {id} is still in progress")));
        }
        let (revision, stored) = self.stored(BookingKey::Id(id)).ok_or(BookingError::NotFound(id))?;
        let (mut saga, holder) = decode(&stored)?;
        if saga.phase == Phase::Cancelled {
            return Ok(booking(saga, holder));
        }
        if !saga.request_cancel(self.now()) {
            return Err(BookingError::Conflict(format!("booking {id} is {}, not confirmed", saga.phase.name())));
        }
        if !self.shared.running.lock().expect("running lock").insert(id) {
            return Err(BookingError::Conflict(format!("booking {id} is still in progress")));
        }
        match self.put(encode(&saga, &holder), Some(revision)).await {
            Ok(revision) => self.go(saga, holder, revision).await,
            Err(error) => {
                self.shared.running.lock().expect("running lock").remove(&id);
                Err(match error {
                    PutError::Changed => BookingError::Conflict(format!("booking {id} changed meanwhile; try again")),
                    PutError::KeyTaken => BookingError::Unavailable("booking key clash".into()),
                    PutError::Failed(error) => error,
                })
            }
        }
    }

    async fn wait_for(&self, id: u64, finished: oneshot::Receiver<Booking>) -> Result<Booking, BookingError> {
        match tokio::time::timeout(Duration::from_millis(BOOKING_WAIT_MS), finished).await {
            Ok(Ok(booking)) => Ok(booking),
            // Still going: the caller sees where it stands and may poll.
            _ => self.booking(id).await?.ok_or(BookingError::NotFound(id)),
        }
    }

    /// Waits (up to [`BOOKING_WAIT_MS`]) for a booking another member
    /// drives to end, or to be held for the traveller, after `revision`.
    async fn wait_elsewhere(&self, id: u64, revision: u64) -> Result<Booking, BookingError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(BOOKING_WAIT_MS);
        while tokio::time::Instant::now() < deadline {
            let settled = self.stored(BookingKey::Id(id)).is_some_and(|(now_at, stored)| {
                now_at > revision && (stored.terminal || stored.phase == Phase::Held.name())
            });
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        self.booking(id).await?.ok_or(BookingError::NotFound(id))
    }

    pub async fn booking(&self, id: u64) -> Result<Option<Booking>, BookingError> {
        self.stored(BookingKey::Id(id)).map(|(_, stored)| decode_booking(&stored)).transpose()
    }

    /// Bookings newest first, with ids below `before_id`; only `user`'s when given.
    pub async fn bookings(
        &self,
        user: Option<u64>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Booking>, BookingError> {
        let ledger = self.shared.ledger.read().expect("ledger lock");
        ledger.agency().list(user, before_id, limit as usize).into_iter().map(decode_booking).collect()
    }

    /// Picks up every saga that has not ended and no task of this member
    /// drives; on the leader only.
    pub async fn resume(&self) -> Result<usize, BookingError> {
        if !self.leads() {
            return Ok(0);
        }
        self.take_in_legacy().await?;
        // Only the bookings no task drives are copied out: this runs every
        // round while hundreds may be in flight.
        let unfinished: Vec<(u64, AgencyBooking)> = {
            let ledger = self.shared.ledger.read().expect("ledger lock");
            let mut running = self.shared.running.lock().expect("running lock");
            let idle = ledger.agency().unfinished().filter(|(_, stored)| running.insert(stored.id));
            idle.map(|(revision, stored)| (revision, stored.clone())).collect()
        };
        let mut resumed = 0;
        for (revision, stored) in unfinished {
            let (saga, holder) = match decode(&stored) {
                Ok(decoded) => decoded,
                Err(error) => {
                    // Kept as running, so it is reported once, not every round.
                    tracing::error!(booking = stored.id, %error, "booking unreadable; not resumed");
                    continue;
                }
            };
            tracing::info!(booking = saga.id, phase = saga.phase.name(), "resuming a booking");
            (self.shared.spawn)(Box::pin(drive(self.clone(), saga, holder, revision, None)));
            resumed += 1;
        }
        Ok(resumed)
    }

    /// While the agency runs: on the leader, drives every saga nobody
    /// drives (written at a follower, left by a leader before, or
    /// paused by a restart). Ends at [`Agency::stop`].
    pub fn conduct(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let agency = self.clone();
        async move {
            let mut stop = agency.shared.stop.subscribe();
            while !*stop.borrow() {
                if let Err(error) = agency.resume().await {
                    tracing::warn!(%error, "bookings not resumed");
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(CONDUCT_MS)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Hands the group the bookings this member's own database kept from
    /// before they lived in the group, then forgets them there.
    async fn take_in_legacy(&self) -> Result<(), BookingError> {
        if !self.shared.legacy.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let rows = self.shared.db.read(|conn| caravan_store::agency::list(conn, None, None, u32::MAX)).await;
        for row in rows.map_err(storage_unavailable)? {
            let id = row.id;
            if self.stored(BookingKey::Id(id)).is_none() {
                match self.put(from_row(row)?, None).await {
                    Ok(_) | Err(PutError::Changed) => {}
                    Err(PutError::KeyTaken) => tracing::warn!(booking = id, "an old booking's client key is taken"),
                    Err(PutError::Failed(error)) => return Err(error),
                }
            }
            let forget = move |conn: &_| caravan_store::agency::delete(conn, id).map_err(SaveError::from);
            self.shared.db.write(forget).await.map_err(|e| e.0)?;
        }
        self.shared.legacy.store(false, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Stops the saga tasks at their next step and waits (a while) for them.
    pub async fn stop(&self) {
        self.shared.stop.send_replace(true);
        for _ in 0..STOP_WAIT_MS / 20 {
            if self.shared.running.lock().expect("running lock").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait]
impl<D: Database, P: Proposer + 'static> AgencyService for Agency<D, P> {
    async fn create_booking(&self, new: NewBooking) -> Result<Booking, BookingError> {
        Agency::create_booking(self, new).await
    }

    async fn booking(&self, id: u64) -> Result<Option<Booking>, BookingError> {
        Agency::booking(self, id).await
    }

    async fn bookings(
        &self,
        user: Option<u64>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Booking>, BookingError> {
        Agency::bookings(self, user, before_id, limit).await
    }

    async fn decide_booking(&self, id: u64, decision: Decision) -> Result<Booking, BookingError> {
        Agency::decide_booking(self, id, decision).await
    }

    async fn cancel_booking(&self, id: u64) -> Result<Booking, BookingError> {
        Agency::cancel_booking(self, id).await
    }
}

/// A traveller's decision on its way to a held booking's task.
#[derive(Debug)]
struct DecisionCall {
    decision: Decision,
    /// Gets the booking once it has ended (or at once, if it could not be decided).
    reply: oneshot::Sender<Booking>,
}

/// Waiting bookings that may be decided at once.
const DECISIONS_MAX: usize = 4;

enum BookingKey {
    Id(u64),
    Client(String),
}

/// Runs a saga to its end: the steps due now in parallel, their outcomes
/// applied, the new state written through the group before the next steps
/// go out. It stops when this member no longer leads (the next leader
/// goes on from the log), and reloads the booking when it changed
/// elsewhere (a decision taken at another member).
async fn drive<D: Database, P: Proposer + 'static>(
    node: Agency<D, P>,
    mut saga: Saga,
    mut holder: Holder,
    mut revision: u64,
    mut done: Option<oneshot::Sender<Booking>>,
) {
    let id = saga.id;
    // While `Held`, the traveller's decisions arrive here.
    let mut decisions: Option<mpsc::Receiver<DecisionCall>> = None;
    let mut stop = node.shared.stop.subscribe();
    // Whether the saga changed since it was last written.
    let mut dirty = false;
    loop {
        // No request goes out before the state it follows from is written.
        if dirty {
            let mut written = saga.clone();
            written.updated_at = Timestamp(saga.updated_at.ms().max(node.now().ms()));
            match node.put(encode(&written, &holder), Some(revision)).await {
                Ok(now_at) => (revision, dirty) = (now_at, false),
                Err(PutError::Changed) => dirty = false,
                Err(error) => tracing::warn!(booking = id, ?error, "booking state not saved; retrying"),
            }
        }
        // Changed elsewhere (or a write of ours refused): the log's copy
        // wins. Only a moved revision is worth copying the booking out.
        if !dirty && node.revision_of(id) != Some(revision) {
            match node.stored(BookingKey::Id(id)) {
                Some((now_at, stored)) if now_at != revision => match decode(&stored) {
                    Ok((stored_saga, stored_holder)) => (saga, holder, revision) = (stored_saga, stored_holder, now_at),
                    Err(error) => {
                        tracing::error!(booking = id, %error, "booking unreadable; left to the next leader");
                        break;
                    }
                },
                _ => {}
            }
        }
        if !dirty && saga.phase.is_terminal() {
            break;
        }
        if *stop.borrow() || !node.leads() {
            // Written as of the last step (or retried from the one before
            // by the next leader, with the same idempotency keys).
            tracing::info!(booking = id, phase = saga.phase.name(), "booking left to the group's next leader");
            break;
        }
        if dirty {
            tokio::time::sleep(Duration::from_millis(IDLE_MS)).await;
            continue;
        }
        let before = saga.clone();
        let now = node.now();
        saga.advance(now);
        if saga.phase == Phase::Held {
            // The traveller sees the hold now; their decision comes later.
            if let Some(waiter) = done.take() {
                let _ = waiter.send(booking(saga.clone(), holder.clone()));
            }
            if decisions.is_none() {
                let (sender, receiver) = mpsc::channel(DECISIONS_MAX);
                node.shared.deciders.lock().expect("deciders lock").insert(id, sender);
                decisions = Some(receiver);
            }
        } else if decisions.take().is_some() {
            node.shared.deciders.lock().expect("deciders lock").remove(&id);
        }
        let steps = saga.next_steps(now);
        if steps.is_empty() && !saga.phase.is_terminal() && saga == before {
            let wait = saga.next_wakeup().map_or(IDLE_MS as i64, |at| at.ms() - now.ms()).clamp(1, IDLE_MS as i64);
            let decided = async {
                match decisions.as_mut() {
                    Some(receiver) => receiver.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = stop.changed() => {}
                Some(call) = decided => {
                    let now = node.now();
                    let taken = match call.decision {
                        Decision::Confirm(traveller) => {
                            // The details first: they go with every confirmation.
                            if let Some(traveller) = traveller {
                                if saga.name_traveller(&traveller, now) {
                                    holder.traveller = traveller;
                                }
                            }
                            saga.confirm(now)
                        }
                        Decision::Release => saga.release(now),
                    };
                    if taken {
                        done = Some(call.reply);
                    } else {
                        let _ = call.reply.send(booking(saga.clone(), holder.clone()));
                    }
                }
            }
        }
        // The steps due now go out together, polled by this saga's task.
        let calls = steps.into_iter().map(|step| {
            let owner = saga.parts[step.part].owner();
            let owners = &node.shared.owners;
            async move {
                let outcome = owners.call_owner(owner, &step.request).await;
                (step, outcome)
            }
        });
        for (step, outcome) in futures_util::future::join_all(calls).await {
            saga.apply(step.part, &step.request.op, outcome, node.now());
        }
        dirty = saga != before;
    }
    node.shared.running.lock().expect("running lock").remove(&id);
    node.shared.deciders.lock().expect("deciders lock").remove(&id);
    tracing::debug!(booking = id, phase = saga.phase.name(), "booking task ended");
    if let Some(done) = done {
        let _ = done.send(booking(saga, holder));
    }
}

/// A failed booking write, as [`Database::write`] wants its errors.
struct SaveError(BookingError);

impl From<caravan_store::StoreError> for SaveError {
    fn from(error: caravan_store::StoreError) -> SaveError {
        SaveError(BookingError::Unavailable(error.to_string()))
    }
}

/// A storage failure while reading bookings: the agency answers
/// "unavailable, try again", and nothing changed.
fn storage_unavailable(error: caravan_store::StoreError) -> BookingError {
    tracing::error!(%error, "reading bookings failed");
    BookingError::Unavailable("bookings cannot be read now; try again".into())
}
