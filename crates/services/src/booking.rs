//! `/caravan/book/1` at this node: the owner's service (answering agencies'
//! requests from the ledger) and the agency's client (asking owners).
//!
//! Both sides share one path: a request for an origin this node runs is
//! answered locally, without the network, by the very code that answers
//! peers, so a node that is agency and owner at once books its own
//! listings the same way.
//!
//! Calls to one owner that wait together go as one batch (a frame of up
//! to `BOOK_BATCH_MAX` requests): the owner writes their commands as one
//! log entry and signs their receipts with one signature, and the agency
//! checks it once. The agency's batcher ([`BookingService::run_calls`])
//! keeps at most two batches in flight per owner, and an owner that
//! refuses batches (older than them) is called one request at a time.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use std::collections::{HashMap, HashSet};

use caravan_booking::owner::{self, LedgerStep, Unsigned};
use caravan_booking::quota::{Meters, Quota};
use caravan_booking::{BookRequest, BookResponse, Incoming, Outcome, Quotas, Refusal, RefusalCode, BOOK_BATCH_MAX};
use caravan_catalog::Catalog;
use caravan_ledger::{Command, Ledger, Rejection, Reply};
use caravan_model::Timestamp;
use caravan_net::{Call, Inbound, Protocol};
use caravan_records::Origin;
use ed25519_dalek::SigningKey;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

/// Booking requests from peers waiting for the node.
pub const INBOUND_MAX: usize = 4_096;
/// Calls to owners waiting for the network task.
pub const CALLS_MAX: usize = 4_096;
/// Calls to owners in flight at once; more wait their turn here rather
/// than fail for want of streams (`caravan_net::BOOK_STREAMS_MAX` per peer).
pub const CALLS_IN_FLIGHT_MAX: usize = 256;
/// How long the agency waits for an owner's answer (the network task gives
/// up a little earlier and reports why).
const CALL_TIMEOUT_MS: u64 = 8_000;
/// Batches in flight to one owner; calls that come meanwhile go next, together.
const BATCHES_IN_FLIGHT_PER_OWNER: usize = 2;
/// Calls to owners waiting for the agency's batcher.
const OWNER_CALLS_QUEUED_MAX: usize = 4_096;

/// The peer name used for requests this node makes to itself.
const SELF_PEER: &str = "local";

/// Where calls to peers go once the network runs (bookings, and the
/// replica group's Raft messages); empty before and after.
pub type CallSlot = Arc<Mutex<Option<mpsc::Sender<Call>>>>;

/// The owner's replica group, as the booking service proposes to it.
pub trait Proposer: Send + Sync + std::fmt::Debug {
    /// Runs `command` through the group; resolves once it is durable (or
    /// refused), or fails when the group cannot take it now.
    fn propose(
        &self,
        command: Command,
    ) -> impl std::future::Future<Output = Result<Result<Reply, Rejection>, caravan_group::ProposeError>> + Send;

    /// Whether this member leads its group now (the one that drives the
    /// agency's sagas).
    fn leads(&self) -> bool;
}

impl<T: caravan_group::Transport, E: caravan_group::Effects> Proposer for caravan_group::OwnerGroup<T, E> {
    async fn propose(&self, command: Command) -> Result<Result<Reply, Rejection>, caravan_group::ProposeError> {
        caravan_group::OwnerGroup::propose(self, command).await
    }

    fn leads(&self) -> bool {
        caravan_group::OwnerGroup::leads(self)
    }
}

/// What the booking service reads and signs with, handed over by the node.
#[derive(Debug)]
pub struct BookingSetup<P> {
    /// The origin key, for signing receipts.
    pub key: SigningKey,
    pub group: Arc<P>,
    /// The committed ledger, for quotes and status reads.
    pub ledger: Arc<RwLock<Ledger>>,
    /// The catalog in memory: owners' contacts and frozen origins.
    pub catalog: Arc<RwLock<Catalog>>,
    pub calls: CallSlot,
    /// How long a hold lasts when the request does not say.
    pub hold_ms_default: i64,
    /// What each agency may do here.
    pub quotas: Quotas,
    pub clock: fn() -> Timestamp,
}

/// Both sides of `/caravan/book/1` at this node.
#[derive(Debug)]
pub struct BookingService<P> {
    setup: BookingSetup<P>,
    origin: Origin,
    calls_in_flight: tokio::sync::Semaphore,
    /// Calls for the agency's batcher, while it runs.
    owner_calls: mpsc::Sender<OwnerCall>,
    owner_calls_rx: Mutex<Option<mpsc::Receiver<OwnerCall>>>,
    batching: std::sync::atomic::AtomicBool,
    /// Owners that refused a batch: called one request at a time.
    no_batches: Mutex<HashSet<Origin>>,
    /// The rates agencies used here, and the quota refusals so far.
    meters: Mutex<Meters>,
}

/// A call to a remote owner waiting for the agency's batcher.
#[derive(Debug)]
struct OwnerCall {
    origin: Origin,
    contact: caravan_model::Contact,
    request: BookRequest,
    outcome: oneshot::Sender<Outcome>,
}

impl<P: Proposer> BookingService<P> {
    /// The group this service proposes to.
    pub fn group(&self) -> &Arc<P> {
        &self.setup.group
    }

    /// The group's ledger as applied here.
    pub fn ledger(&self) -> &Arc<RwLock<Ledger>> {
        &self.setup.ledger
    }

    pub fn new(setup: BookingSetup<P>) -> BookingService<P> {
        let origin = Origin(setup.key.verifying_key().to_bytes());
        let meters = Mutex::new(Meters::new(setup.quotas));
        let (owner_calls, owner_calls_rx) = mpsc::channel(OWNER_CALLS_QUEUED_MAX);
        BookingService {
            setup,
            origin,
            calls_in_flight: tokio::sync::Semaphore::new(CALLS_IN_FLIGHT_MAX),
            owner_calls,
            owner_calls_rx: Mutex::new(Some(owner_calls_rx)),
            batching: Default::default(),
            no_batches: Mutex::default(),
            meters,
        }
    }

    /// Requests refused for a quota so far, by quota.
    pub fn quota_refusals(&self) -> Vec<(Quota, u64)> {
        self.meters.lock().expect("meters lock").refused().collect()
    }

    fn now(&self) -> Timestamp {
        (self.setup.clock)()
    }

    fn read_catalog<R>(&self, read: impl FnOnce(&Catalog) -> R) -> R {
        read(&self.setup.catalog.read().expect("catalog lock"))
    }

    /// Answers one frame from `peer`: a request, or a batch of them.
    pub async fn answer_booking(&self, peer: &str, request: &[u8]) -> Vec<u8> {
        let frame = match BookRequest::decode_frame(request) {
            Ok(frame) => frame,
            Err(refusal) => return BookResponse::Refusal(refusal).encode(),
        };
        let client = self.client(peer, frame.agency);
        if let Err(refusal) = self.meters.lock().expect("meters lock").call(&client, self.now()) {
            return BookResponse::Refusal(refusal).encode();
        }
        match frame.incoming {
            Incoming::One(request) => self.answer_request(&client, &request).await.encode(),
            Incoming::Batch(requests) => BookResponse::encode_batch(&self.answer_batch(&client, &requests).await),
        }
    }

    /// Whom an owner keeps a request's holds and idempotency keys for: the
    /// agency the sending peer speaks for, when the agency's signed contact
    /// record lists that peer (so every member of an agency's replica
    /// group is one client, and one member goes on with another's
    /// bookings); else the peer alone. A claim the contact does not back
    /// (a stranger, or a member the owner has not heard of yet) changes
    /// nothing.
    fn client(&self, peer: &str, agency: Option<Origin>) -> String {
        let catalog = self.setup.catalog.read().expect("catalog lock");
        let listed = agency.filter(|agency| {
            catalog.contact(agency).is_some_and(|contact| contact.peers.iter().any(|p| p.peer_id == peer))
        });
        match listed {
            Some(agency) => format!("agency:{}", agency.to_hex()),
            None => peer.to_owned(),
        }
    }

    /// Answers a batch in its order: its writes as one log entry (straight
    /// to the replica group: a peer's request is not an HTTP request, and
    /// its refusals keep the ledger's codes), its reads after them, its
    /// receipts under one signature.
    async fn answer_batch(&self, peer: &str, requests: &[BookRequest]) -> Vec<BookResponse> {
        let (key, origin) = (&self.setup.key, self.origin);
        let steps: Vec<Result<LedgerStep, Refusal>> = requests
            .iter()
            .map(|request| {
                let step = owner::plan(request, peer, key, self.setup.hold_ms_default)?;
                if peer == SELF_PEER {
                    return Ok(step);
                }
                // A peer's holds are metered, and counted by the ledger.
                let mut meters = self.meters.lock().expect("meters lock");
                Ok(match step {
                    LedgerStep::Submit(command @ (Command::Hold { .. } | Command::HoldFor { .. })) => {
                        meters.hold(peer, self.now())?;
                        LedgerStep::Submit(meters.quotas().within(peer, command))
                    }
                    step => step,
                })
            })
            .collect();
        let mut commands: Vec<Command> = steps
            .iter()
            .filter_map(|step| match step {
                Ok(LedgerStep::Submit(command)) => Some(command.clone()),
                _ => None,
            })
            .collect();
        let count = commands.len();
        let replies = match count {
            0 => Ok(Vec::new()),
            1 => self.setup.group.propose(commands.pop().expect("one")).await.map(|reply| vec![reply]),
            _ => match self.setup.group.propose(Command::Batch(commands)).await {
                Ok(Ok(Reply::Batch(replies))) if replies.len() == count => Ok(replies),
                Ok(other) => Ok(vec![Err(Rejection::InvalidRequest(format!("the ledger answered {other:?}"))); count]),
                Err(why) => Err(why),
            },
        };
        let now = self.now();
        let mut replies = replies.map(Vec::into_iter);
        let answers = steps
            .into_iter()
            .map(|step| match (step, &mut replies) {
                (Err(refusal), _) => Unsigned::Refusal(refusal),
                (Ok(LedgerStep::Submit(_)), Ok(replies)) => {
                    let reply = replies.next().expect("a reply per write");
                    if matches!(reply, Err(Rejection::QuotaExceeded(_))) {
                        self.meters.lock().expect("meters lock").count_refusal(Quota::HoldsInFlight);
                    }
                    owner::answer(origin, key, reply, peer, now)
                }
                (Ok(LedgerStep::Submit(_)), Err(why)) => {
                    Unsigned::Refusal(Refusal::new(RefusalCode::Unavailable, why.to_string()))
                }
                (Ok(read), _) => {
                    let ledger = self.setup.ledger.read().expect("ledger lock");
                    owner::read(origin, key, &ledger, &read, peer, now)
                }
            })
            .collect();
        owner::sign(key, answers)
    }

    /// Answers one request: a batch of one.
    async fn answer_request(&self, peer: &str, request: &BookRequest) -> BookResponse {
        self.answer_batch(peer, std::slice::from_ref(request)).await.pop().expect("an answer per request")
    }

    /// Sends `request` to the owner of `origin` and checks the answer:
    /// a receipt must verify under `origin`.
    pub async fn call_owner(&self, origin: Origin, request: &BookRequest) -> Outcome {
        if self.read_catalog(|catalog| catalog.is_frozen(&origin)) {
            return Outcome::Refused(Refusal::new(RefusalCode::OriginFrozen, format!("origin {origin} equivocated")));
        }
        if origin == self.origin {
            let response = self.answer_request(SELF_PEER, request).await;
            let verified = verify_receipts(std::slice::from_ref(&response), origin).pop().flatten();
            return outcome_of(response, verified);
        }
        let Some(contact) = self.read_catalog(|catalog| catalog.contact(&origin).cloned()) else {
            let why = format!("no node of origin {origin} is known here (no contact record)");
            return Outcome::Refused(Refusal::new(RefusalCode::OwnerUnknown, why));
        };
        if self.batching.load(std::sync::atomic::Ordering::Acquire) {
            let (outcome, answered) = oneshot::channel();
            let call = OwnerCall { origin, contact: contact.clone(), request: request.clone(), outcome };
            if self.owner_calls.send(call).await.is_ok() {
                return answered.await.unwrap_or_else(|_| Outcome::Unreachable("the node is stopping".into()));
            }
        }
        self.call_one(origin, &contact, request).await
    }

    /// Calls an owner with one request, without the batcher.
    async fn call_one(&self, origin: Origin, contact: &caravan_model::Contact, request: &BookRequest) -> Outcome {
        match self.call_remote(contact, request.encode_as(self.origin)).await {
            Ok(bytes) => {
                let response = BookResponse::decode(&bytes);
                let verified = verify_receipts(std::slice::from_ref(&response), origin).pop().flatten();
                outcome_of(response, verified)
            }
            Err(why) => Outcome::Unreachable(why.to_string()),
        }
    }

    /// Calls an owner with a batch of requests; one outcome per request.
    async fn call_batch(
        &self,
        origin: Origin,
        contact: &caravan_model::Contact,
        requests: &[BookRequest],
    ) -> Vec<Outcome> {
        let bytes = match self.call_remote(contact, BookRequest::encode_batch_as(requests, self.origin)).await {
            Ok(bytes) => bytes,
            Err(why) => return requests.iter().map(|_| Outcome::Unreachable(why.to_string())).collect(),
        };
        match BookResponse::decode_batch(&bytes, requests.len()) {
            Ok(responses) => {
                let verified = verify_receipts(&responses, origin);
                responses.into_iter().zip(verified).map(|(response, verified)| outcome_of(response, verified)).collect()
            }
            // An owner older than batches finds no operation in one.
            Err(refusal) if refusal.code == RefusalCode::BadRequest => {
                tracing::info!(%origin, why = %refusal.message, "owner refuses batches; calling it one request at a time");
                self.no_batches.lock().expect("no-batches lock").insert(origin);
                let one_by_one = requests.iter().map(|request| self.call_one(origin, contact, request));
                futures_util::future::join_all(one_by_one).await
            }
            Err(refusal) => requests.iter().map(|_| outcome_of(BookResponse::Refusal(refusal.clone()), None)).collect(),
        }
    }

    /// The agency's batcher: takes the calls to remote owners and sends
    /// those to one owner that wait together as one batch, at most
    /// [`BATCHES_IN_FLIGHT_PER_OWNER`] at once per owner; ends when the
    /// service is dropped (it holds the service only while sending). The
    /// node runs the returned future as a task.
    pub fn run_calls(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        P: 'static,
    {
        let weak = Arc::downgrade(self);
        let queue = self.owner_calls_rx.lock().expect("owner calls lock").take();
        self.batching.store(queue.is_some(), std::sync::atomic::Ordering::Release);
        async move {
            let Some(mut queue) = queue else { return tracing::error!("the agency's batcher runs already") };
            let mut waiting: HashMap<Origin, Vec<OwnerCall>> = HashMap::new();
            let mut in_flight: HashMap<Origin, usize> = HashMap::new();
            let mut sending = FuturesUnordered::new();
            loop {
                tokio::select! {
                    call = queue.recv() => match call {
                        Some(call) => waiting.entry(call.origin).or_default().push(call),
                        None => break,
                    },
                    Some(origin) = sending.next(), if !sending.is_empty() => {
                        *in_flight.entry(origin).or_default() -= 1;
                    }
                }
                while let Ok(call) = queue.try_recv() {
                    waiting.entry(call.origin).or_default().push(call);
                }
                let Some(service) = weak.upgrade() else { break };
                for (origin, calls) in waiting.iter_mut().filter(|(_, calls)| !calls.is_empty()) {
                    let alone = service.no_batches.lock().expect("no-batches lock").contains(origin);
                    let (size, limit) =
                        if alone { (1, CALLS_IN_FLIGHT_MAX) } else { (BOOK_BATCH_MAX, BATCHES_IN_FLIGHT_PER_OWNER) };
                    let flying = in_flight.entry(*origin).or_default();
                    while *flying < limit && !calls.is_empty() {
                        let batch: Vec<OwnerCall> = calls.drain(..calls.len().min(size)).collect();
                        *flying += 1;
                        let (service, origin) = (service.clone(), *origin);
                        sending.push(async move { service.send(origin, batch).await });
                    }
                }
                waiting.retain(|_, calls| !calls.is_empty());
            }
            if let Some(service) = weak.upgrade() {
                service.batching.store(false, std::sync::atomic::Ordering::Release);
            }
            while sending.next().await.is_some() {}
        }
    }

    /// Sends calls to one owner (a batch, or one alone) and answers each.
    async fn send(&self, origin: Origin, calls: Vec<OwnerCall>) -> Origin {
        let contact = calls[0].contact.clone();
        let outcomes = match calls.as_slice() {
            [one] => vec![self.call_one(origin, &contact, &one.request).await],
            calls => {
                let requests: Vec<BookRequest> = calls.iter().map(|call| call.request.clone()).collect();
                self.call_batch(origin, &contact, &requests).await
            }
        };
        for (call, outcome) in calls.into_iter().zip(outcomes) {
            let _ = call.outcome.send(outcome);
        }
        origin
    }

    async fn call_remote(&self, contact: &caravan_model::Contact, bytes: Vec<u8>) -> Result<Vec<u8>, OwnerUnreachable> {
        let calls = self.setup.calls.lock().expect("calls lock").clone();
        let calls = calls.ok_or(OwnerUnreachable::Offline)?;
        let _turn = self.calls_in_flight.acquire().await.map_err(|_| OwnerUnreachable::Stopping)?;
        let mut last_error = OwnerUnreachable::NoNode;
        // A replica group lists several members: any of them may answer.
        for peer in &contact.peers {
            let (reply, answer) = oneshot::channel();
            let (peer_id, addrs, request) = (peer.peer_id.clone(), peer.addrs.clone(), bytes.clone());
            let call = Call { protocol: Protocol::Book, peer: peer_id, addrs, request, reply };
            calls.send(call).await.map_err(|_| OwnerUnreachable::Stopping)?;
            match tokio::time::timeout(Duration::from_millis(CALL_TIMEOUT_MS), answer).await {
                Ok(Ok(Ok(bytes))) => match BookResponse::decode(&bytes) {
                    // This member cannot reach its group's leader; another may.
                    BookResponse::Refusal(refusal) if refusal.code == RefusalCode::Unavailable => {
                        last_error = OwnerUnreachable::Member { peer: peer.peer_id.clone(), why: refusal.message }
                    }
                    _ => return Ok(bytes),
                },
                Ok(Ok(Err(why))) => {
                    last_error = OwnerUnreachable::Member { peer: peer.peer_id.clone(), why: why.to_string() }
                }
                Ok(Err(_)) => last_error = OwnerUnreachable::Stopping,
                Err(_) => last_error = OwnerUnreachable::Silent { peer: peer.peer_id.clone() },
            }
        }
        Err(last_error)
    }
}

/// Checks the receipts among `responses` (a batch's share one signature,
/// checked once); `None` for an answer that is not a receipt.
fn verify_receipts(
    responses: &[BookResponse],
    origin: Origin,
) -> Vec<Option<Result<caravan_booking::Receipt, caravan_booking::ReceiptError>>> {
    let signed = responses.iter().filter_map(|response| match response {
        BookResponse::Receipt(signed) => Some(signed),
        _ => None,
    });
    let mut verified = caravan_booking::verify_all(signed, origin).into_iter();
    responses
        .iter()
        .map(|response| matches!(response, BookResponse::Receipt(_)).then(|| verified.next().expect("one each")))
        .collect()
}

/// What an owner's answer means to the agency.
fn outcome_of(
    response: BookResponse,
    verified: Option<Result<caravan_booking::Receipt, caravan_booking::ReceiptError>>,
) -> Outcome {
    match (response, verified) {
        (BookResponse::Receipt(signed), Some(Ok(receipt))) => Outcome::Receipt(Box::new(receipt), signed),
        (BookResponse::Receipt(_), Some(Err(error))) => {
            Outcome::Unreachable(format!("the owner's receipt did not verify: {error}"))
        }
        (BookResponse::Receipt(_), None) => Outcome::Unreachable("the owner's receipt was not checked".into()),
        (BookResponse::Refusal(refusal), _)
            if matches!(refusal.code, RefusalCode::BadResponse | RefusalCode::Unavailable) =>
        {
            Outcome::Unreachable(refusal.message)
        }
        (BookResponse::Refusal(refusal), _) => Outcome::Refused(refusal),
        (BookResponse::Quote(_), _) => Outcome::Unreachable("the owner answered a quote to another request".into()),
    }
}

/// Why no node of an owner answered a booking call; the saga tries again.
#[derive(Debug, thiserror::Error)]
enum OwnerUnreachable {
    #[error("this node is not on the network")]
    Offline,
    #[error("the node is stopping")]
    Stopping,
    #[error("the owner lists no node")]
    NoNode,
    #[error("owner node {peer}: {why}")]
    Member { peer: String, why: String },
    #[error("owner node {peer} did not answer in time")]
    Silent { peer: String },
}

/// Answers peers' booking requests, up to [`INBOUND_MAX`] at once, until
/// the network task drops its sender. One task (the caller's) polls them
/// all: answering is mostly waiting for the replica group.
pub async fn serve<P: Proposer>(service: Arc<BookingService<P>>, inbound: mpsc::Receiver<Inbound>) {
    let calls =
        futures_util::stream::unfold(
            inbound,
            |mut inbound| async move { inbound.recv().await.map(|call| (call, inbound)) },
        );
    calls
        .for_each_concurrent(INBOUND_MAX, |call| {
            let service = &service;
            async move {
                let _ = call.reply.send(service.answer_booking(&call.from, &call.request).await);
            }
        })
        .await;
}
