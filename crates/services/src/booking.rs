//! `/caravan/book/1` at this node: the owner's service (answering agencies'
//! requests from the ledger) and the agency's client (asking owners).
//!
//! Both sides share one path: a request for an origin this node runs is
//! answered locally, without the network, by the very code that answers
//! peers, so a node that is agency and owner at once books its own
//! listings the same way.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use caravan_booking::owner::{self, LedgerStep};
use caravan_booking::{BookRequest, BookResponse, Outcome, Refusal, RefusalCode};
use caravan_catalog::Catalog;
use caravan_ledger::{Command, Ledger, Rejection, Reply};
use caravan_model::Timestamp;
use caravan_net::{Call, Inbound, Protocol};
use caravan_records::Origin;
use ed25519_dalek::SigningKey;
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
}

impl<T: caravan_group::Transport, E: caravan_group::Effects> Proposer for caravan_group::OwnerGroup<T, E> {
    async fn propose(&self, command: Command) -> Result<Result<Reply, Rejection>, caravan_group::ProposeError> {
        caravan_group::OwnerGroup::propose(self, command).await
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
    pub clock: fn() -> Timestamp,
}

/// Both sides of `/caravan/book/1` at this node.
#[derive(Debug)]
pub struct BookingService<P> {
    setup: BookingSetup<P>,
    origin: Origin,
    calls_in_flight: tokio::sync::Semaphore,
}

impl<P: Proposer> BookingService<P> {
    pub fn new(setup: BookingSetup<P>) -> BookingService<P> {
        let origin = Origin(setup.key.verifying_key().to_bytes());
        BookingService { setup, origin, calls_in_flight: tokio::sync::Semaphore::new(CALLS_IN_FLIGHT_MAX) }
    }

    fn now(&self) -> Timestamp {
        (self.setup.clock)()
    }

    fn read_catalog<R>(&self, read: impl FnOnce(&Catalog) -> R) -> R {
        read(&self.setup.catalog.read().expect("catalog lock"))
    }

    /// Answers one booking request from `peer`.
    pub async fn answer_booking(&self, peer: &str, request: &[u8]) -> BookResponse {
        let request = match BookRequest::decode(request) {
            Ok(request) => request,
            Err(refusal) => return BookResponse::Refusal(refusal),
        };
        self.answer_request(peer, &request).await
    }

    async fn answer_request(&self, peer: &str, request: &BookRequest) -> BookResponse {
        let key = &self.setup.key;
        let origin = self.origin;
        let step = match owner::plan(request, peer, key, self.setup.hold_ms_default) {
            Ok(step) => step,
            Err(refusal) => return BookResponse::Refusal(refusal),
        };
        match step {
            LedgerStep::Submit(command) => {
                // Straight to the replica group: a peer's request is not an
                // HTTP request, and its refusals keep the ledger's codes.
                let reply = match self.setup.group.propose(command).await {
                    Ok(reply) => reply,
                    Err(why) => return BookResponse::Refusal(Refusal::new(RefusalCode::Unavailable, why.to_string())),
                };
                owner::answer(origin, key, reply, peer, self.now())
            }
            read => {
                let now = self.now();
                let ledger = self.setup.ledger.read().expect("ledger lock");
                owner::read(origin, key, &ledger, &read, peer, now)
            }
        }
    }

    /// Sends `request` to the owner of `origin` and checks the answer:
    /// a receipt must verify under `origin`.
    pub async fn call_owner(&self, origin: Origin, request: &BookRequest) -> Outcome {
        if self.read_catalog(|catalog| catalog.is_frozen(&origin)) {
            return Outcome::Refused(Refusal::new(RefusalCode::OriginFrozen, format!("origin {origin} equivocated")));
        }
        let response = if origin == self.origin {
            self.answer_request(SELF_PEER, request).await
        } else {
            let Some(contact) = self.read_catalog(|catalog| catalog.contact(&origin).cloned()) else {
                let why = format!("no node of origin {origin} is known here (no contact record)");
                return Outcome::Refused(Refusal::new(RefusalCode::OwnerUnknown, why));
            };
            match self.call_remote(&contact, request).await {
                Ok(response) => response,
                Err(why) => return Outcome::Unreachable(why.to_string()),
            }
        };
        match response {
            BookResponse::Receipt(signed) => match signed.verify(origin) {
                Ok(receipt) => Outcome::Receipt(Box::new(receipt), signed),
                Err(error) => Outcome::Unreachable(format!("the owner's receipt did not verify: {error}")),
            },
            BookResponse::Refusal(refusal)
                if matches!(refusal.code, RefusalCode::BadResponse | RefusalCode::Unavailable) =>
            {
                Outcome::Unreachable(refusal.message)
            }
            BookResponse::Refusal(refusal) => Outcome::Refused(refusal),
            BookResponse::Quote(_) => Outcome::Unreachable("the owner answered a quote to another request".into()),
        }
    }

    async fn call_remote(
        &self,
        contact: &caravan_model::Contact,
        request: &BookRequest,
    ) -> Result<BookResponse, OwnerUnreachable> {
        let calls = self.setup.calls.lock().expect("calls lock").clone();
        let calls = calls.ok_or(OwnerUnreachable::Offline)?;
        let bytes = request.encode();
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
                    response => return Ok(response),
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
                let response = service.answer_booking(&call.from, &call.request).await;
                let _ = call.reply.send(response.encode());
            }
        })
        .await;
}
