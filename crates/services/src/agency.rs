//! The agency's bookings: one [`Saga`] per booking, driven by its own task
//! and written through the writer (group commit, fsync) after every step,
//! so an agency that crashes mid-saga resumes it on restart
//! ([`Agency::resume`]) and still ends all-or-nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caravan_api::{async_trait, AgencyService};
use caravan_booking::agency::{Booking, BookingError, Decision, NewBooking, Traveller};
use caravan_booking::{Part, Phase, Saga};
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
    db: D,
    /// How the sagas reach owners.
    owners: Arc<BookingService<P>>,
    clock: fn() -> Timestamp,
    /// Starts a saga's task; the node owns every task.
    spawn: Spawn,
    next_id: AtomicU64,
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

fn encode(saga: &Saga, holder: &Holder) -> BookingRow {
    let traveller = &holder.traveller;
    BookingRow {
        id: saga.id,
        client_key: holder.client_key.clone(),
        user_id: holder.user,
        phase: saga.phase.name().to_owned(),
        created_ms: saga.created_at.ms(),
        updated_ms: saga.updated_at.ms(),
        traveller: postcard::to_stdvec(traveller).expect("travellers serialize"),
        saga: postcard::to_stdvec(saga).expect("sagas serialize"),
    }
}

fn decode(row: &BookingRow) -> Result<(Saga, Holder), BookingError> {
    let corrupt = |e: postcard::Error| BookingError::Unavailable(format!("booking {} unreadable: {e}", row.id));
    let holder = Holder {
        traveller: postcard::from_bytes(&row.traveller).map_err(corrupt)?,
        client_key: row.client_key.clone(),
        user: row.user_id,
    };
    Ok((postcard::from_bytes(&row.saga).map_err(corrupt)?, holder))
}

fn booking(saga: Saga, holder: Holder) -> Booking {
    Booking { saga, traveller: holder.traveller, user: holder.user }
}

fn decode_booking(row: &BookingRow) -> Result<Booking, BookingError> {
    decode(row).map(|(saga, holder)| booking(saga, holder))
}

const TERMINAL: [&str; 3] = ["confirmed", "failed", "cancelled"];

impl<D: Database, P: Proposer + 'static> Agency<D, P> {
    /// The agency over `db`, numbering new bookings after the last one stored.
    pub async fn open(
        db: D,
        owners: Arc<BookingService<P>>,
        clock: fn() -> Timestamp,
        spawn: Spawn,
    ) -> Result<Agency<D, P>, caravan_store::StoreError> {
        let last_id = db.read(caravan_store::agency::last_id).await?;
        let shared = Shared {
            db,
            owners,
            clock,
            spawn,
            next_id: AtomicU64::new(last_id + 1),
            running: Mutex::default(),
            deciders: Mutex::default(),
            stop: watch::channel(false).0,
        };
        Ok(Agency { shared: Arc::new(shared) })
    }

    fn now(&self) -> Timestamp {
        (self.shared.clock)()
    }

    /// Starts a booking and waits (up to [`BOOKING_WAIT_MS`]) for it to end.
    pub async fn create_booking(&self, mut new: NewBooking) -> Result<Booking, BookingError> {
        new.traveller.validate().map_err(BookingError::Invalid)?;
        // Every owner learns who travels, with the hold.
        for (_, spec) in &mut new.parts {
            spec.traveller = Some(new.traveller.clone());
        }
        if let Some(key) = &new.client_key {
            if let Some(existing) = self.read_booking_row(BookingKey::Client(key.clone())).await? {
                let existing = decode_booking(&existing)?;
                let same_parts = existing.saga.parts.len() == new.parts.len()
                    && existing.saga.parts.iter().zip(&new.parts).all(|(p, (o, s))| p.owner() == *o && p.spec == *s);
                if !same_parts || existing.traveller != new.traveller {
                    return Err(BookingError::Conflict("idempotency key was used for a different booking".into()));
                }
                return Ok(existing);
            }
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let parts = new.parts.into_iter().map(|(origin, spec)| Part::new(origin, spec)).collect();
        let saga = match new.wait_to_confirm {
            true => Saga::waiting(id, rand::random(), parts, self.now()),
            false => Saga::new(id, rand::random(), parts, self.now()),
        }
        .map_err(|e| BookingError::Invalid(e.to_string()))?;
        let holder = Holder { traveller: new.traveller, client_key: new.client_key, user: new.user };
        if let Err(error) = self.save_booking(encode(&saga, &holder)).await {
            // The same key sent twice at once: the first one made it.
            if let Some(key) = &holder.client_key {
                if let Some(existing) = self.read_booking_row(BookingKey::Client(key.clone())).await? {
                    return decode_booking(&existing);
                }
            }
            return Err(error);
        }
        let (done, finished) = oneshot::channel();
        self.shared.running.lock().expect("running lock").insert(id);
        (self.shared.spawn)(Box::pin(drive(self.clone(), saga, holder, Some(done))));
        self.wait_for(id, finished).await
    }

    /// Hands the traveller's decision to a held booking's task and waits
    /// (up to [`BOOKING_WAIT_MS`]) for the booking to end.
    pub async fn decide_booking(&self, id: u64, decision: Decision) -> Result<Booking, BookingError> {
        if let Decision::Confirm(Some(traveller)) = &decision {
            traveller.validate().map_err(BookingError::Invalid)?;
        }
        let decider = self.shared.deciders.lock().expect("deciders lock").get(&id).cloned();
        let Some(decider) = decider else {
            let booking = self.booking(id).await?.ok_or(BookingError::NotFound(id))?;
            return Err(BookingError::Conflict(format!("booking {id} is {}, not held", booking.saga.phase.name())));
        };
        let (reply, finished) = oneshot::channel();
        let stopping = || BookingError::Unavailable("the booking's task is stopping".into());
        decider.send(DecisionCall { decision, reply }).await.map_err(|_| stopping())?;
        self.wait_for(id, finished).await
    }

    /// Cancels a confirmed booking at every owner, with each owner's penalty.
    pub async fn cancel_booking(&self, id: u64) -> Result<Booking, BookingError> {
        if self.shared.running.lock().expect("running lock").contains(&id) {
            return Err(BookingError::Conflict(format!("booking {id} is still in progress")));
        }
        let row = self.read_booking_row(BookingKey::Id(id)).await?.ok_or(BookingError::NotFound(id))?;
        let (mut saga, holder) = decode(&row)?;
        if saga.phase == Phase::Cancelled {
            return Ok(booking(saga, holder));
        }
        if !saga.request_cancel(self.now()) {
            return Err(BookingError::Conflict(format!("booking {id} is {}, not confirmed", saga.phase.name())));
        }
        if !self.shared.running.lock().expect("running lock").insert(id) {
            return Err(BookingError::Conflict(format!("booking {id} is still in progress")));
        }
        self.save_booking(encode(&saga, &holder)).await?;
        let (done, finished) = oneshot::channel();
        (self.shared.spawn)(Box::pin(drive(self.clone(), saga, holder, Some(done))));
        self.wait_for(id, finished).await
    }

    async fn wait_for(&self, id: u64, finished: oneshot::Receiver<Booking>) -> Result<Booking, BookingError> {
        match tokio::time::timeout(Duration::from_millis(BOOKING_WAIT_MS), finished).await {
            Ok(Ok(booking)) => Ok(booking),
            // Still going: the caller sees where it stands and may poll.
            _ => self.booking(id).await?.ok_or(BookingError::NotFound(id)),
        }
    }

    pub async fn booking(&self, id: u64) -> Result<Option<Booking>, BookingError> {
        self.read_booking_row(BookingKey::Id(id)).await?.as_ref().map(decode_booking).transpose()
    }

    /// Bookings newest first, with ids below `before_id`; only `user`'s when given.
    pub async fn bookings(
        &self,
        user: Option<u64>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Booking>, BookingError> {
        let read = move |conn: &_| caravan_store::agency::list(conn, user, before_id, limit);
        let rows = self.shared.db.read(read).await.map_err(storage_unavailable)?;
        rows.iter().map(decode_booking).collect()
    }

    /// Picks up every saga that had not ended when the node stopped.
    pub async fn resume(&self) -> Result<usize, BookingError> {
        let rows = self.shared.db.read(|conn| caravan_store::agency::unfinished(conn, &TERMINAL)).await;
        let rows = rows.map_err(storage_unavailable)?;
        let mut resumed = 0;
        for row in rows {
            let (saga, holder) = decode(&row)?;
            if !self.shared.running.lock().expect("running lock").insert(saga.id) {
                continue;
            }
            tracing::info!(booking = saga.id, phase = saga.phase.name(), "resuming a booking");
            (self.shared.spawn)(Box::pin(drive(self.clone(), saga, holder, None)));
            resumed += 1;
        }
        Ok(resumed)
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

    async fn save_booking(&self, row: BookingRow) -> Result<(), BookingError> {
        self.shared
            .db
            .write(move |conn| caravan_store::agency::put(conn, &row).map_err(SaveError::from))
            .await
            .map_err(|e| e.0)
    }

    async fn read_booking_row(&self, key: BookingKey) -> Result<Option<BookingRow>, BookingError> {
        let read = move |conn: &_| match key {
            BookingKey::Id(id) => caravan_store::agency::get(conn, id),
            BookingKey::Client(key) => caravan_store::agency::by_client_key(conn, &key),
        };
        self.shared.db.read(read).await.map_err(storage_unavailable)
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
/// applied, the new state made durable before the next steps go out.
async fn drive<D: Database, P: Proposer + 'static>(
    node: Agency<D, P>,
    mut saga: Saga,
    mut holder: Holder,
    mut done: Option<oneshot::Sender<Booking>>,
) {
    let id = saga.id;
    // While `Held`, the traveller's decisions arrive here.
    let mut decisions: Option<mpsc::Receiver<DecisionCall>> = None;
    let mut stop = node.shared.stop.subscribe();
    // Whether the saga changed since it was last made durable.
    let mut dirty = false;
    loop {
        // No request goes out before the state it follows from is durable.
        if dirty {
            match persist(&node, &saga, &holder).await {
                Ok(()) => dirty = false,
                Err(error) => tracing::warn!(booking = id, %error, "booking state not saved; retrying"),
            }
        }
        if !dirty && saga.phase.is_terminal() {
            break;
        }
        if *stop.borrow() {
            // Durable as of the last step (or retried from the one before
            // at the next start, with the same idempotency keys).
            tracing::info!(booking = id, phase = saga.phase.name(), "booking paused for shutdown");
            node.shared.running.lock().expect("running lock").remove(&id);
            node.shared.deciders.lock().expect("deciders lock").remove(&id);
            return;
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
    tracing::debug!(booking = id, phase = saga.phase.name(), "booking ended");
    if let Some(done) = done {
        let _ = done.send(booking(saga, holder));
    }
}

async fn persist<D: Database, P: Proposer + 'static>(
    node: &Agency<D, P>,
    saga: &Saga,
    holder: &Holder,
) -> Result<(), BookingError> {
    let mut saga = saga.clone();
    saga.updated_at = Timestamp(saga.updated_at.ms().max(node.now().ms()));
    node.save_booking(encode(&saga, holder)).await
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
