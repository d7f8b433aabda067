//! The libp2p shell around the replication core: the only crate that names
//! libp2p types.
//!
//! Connections are TCP (noise-encrypted, yamux-multiplexed) or QUIC, as
//! the multiaddrs say (`/tcp/7171`, `/udp/7171/quic-v1`). Envelopes
//! travel by gossipsub on [`TOPIC`], with libp2p's own message signing off
//! (our records carry their own signatures), the message id the BLAKE3 hash
//! of the envelope, and manual validation: the core's verdict decides
//! whether gossipsub forwards an envelope or penalizes its sender.
//! Reconciliation and fetches use the request-response protocol
//! [`RECONCILE_PROTOCOL`]: each `Message` is a request (a big-endian u32
//! length, then `caravan.v1.ReconcileMessage`) answered by an empty
//! acknowledgement. identify and ping keep peers described and alive.
//!
//! Bookings use the request-response protocol [`BOOK_PROTOCOL`], and the
//! members of an owner's replica group talk Raft over [`RAFT_PROTOCOL`]
//! (the leader's appends and heartbeats, votes, snapshots) and forward
//! clients' writes to their leader over [`FORWARD_PROTOCOL`], whose streams
//! are counted apart so that no burst of writes can starve heartbeats:
//! each request and each answer is one length-prefixed frame whose content
//! the node encodes (`caravan.v1.BookRequest` / `BookResponse`, the group's
//! `Rpc` / `RpcReply`). Outbound calls arrive as [`Call`]s with the peer's
//! addresses; inbound requests leave as [`Inbound`]s, one queue per
//! protocol so bookings never hold up heartbeats, and their answers come
//! back on a oneshot.
//!
//! [`run`] only translates: swarm events become [`Event`]s for the node,
//! the core's [`Action`]s become swarm operations.
//!
//! Bootstrap peers are redialled with exponential backoff whenever their
//! connection fails or drops, and connections are capped at [`PEERS_MAX`].
//!
//! Discovery (on unless `NetConfig::discovery` is off): Kademlia on
//! [`KAD_PROTOCOL`] learns peers' addresses from identify, and every
//! [`DISCOVERY_INTERVAL_S`] a random walk (closest peers to a random id)
//! finds more; they are dialled while the node has fewer than
//! `peers_target` peers. Local clusters turn it off to keep the graph they
//! were given.

mod links;
pub mod scoring;
mod traffic;

pub use links::{PeerLink, PeerLinks};
pub use traffic::Traffic;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use libp2p::futures::stream::FuturesUnordered;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    connection_limits, gossipsub, identify, identity, kad, noise, ping, request_response, tcp, yamux, Multiaddr,
    PeerId, StreamProtocol,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub type Event = caravan_replication::Event<String>;
pub type Action = caravan_replication::Action<String>;

pub const TOPIC: &str = "caravan/records/1";
pub const RECONCILE_PROTOCOL: &str = "/caravan/reconcile/1";
pub const KAD_PROTOCOL: &str = "/caravan/kad/1";
pub const BOOK_PROTOCOL: &str = "/caravan/book/1";
pub const RAFT_PROTOCOL: &str = "/caravan/raft/1";
pub const FORWARD_PROTOCOL: &str = "/caravan/raft-forward/1";
pub const JOIN_PROTOCOL: &str = "/caravan/group-join/1";
/// The largest booking frame (a receipt is well under 4 KiB).
pub const BOOK_FRAME_BYTES_MAX: usize = 64 * 1024;
/// The largest Raft frame: a batch of log entries or a snapshot chunk.
pub const RAFT_FRAME_BYTES_MAX: usize = 8 * 1024 * 1024;
/// A booking request unanswered for this long fails as unreachable.
const BOOK_TIMEOUT_S: u64 = 5;
/// Raft gives up on a call much earlier (its own timeouts); this bounds
/// the slowest message, a snapshot chunk.
const RAFT_TIMEOUT_S: u64 = 10;
/// Booking requests in flight on one connection, both ways (request-response
/// allows 100 by default); below yamux's 512 streams, which the other
/// protocols share.
pub const BOOK_STREAMS_MAX: usize = 384;
/// Raft requests in flight on one connection (appends are pipelined).
const RAFT_STREAMS_MAX: usize = 64;
/// Forwarded writes in flight on one connection, both ways; a member sends
/// at most [`FORWARDS_IN_FLIGHT_MAX`] at once and queues the rest.
const FORWARD_STREAMS_MAX: usize = 128;
/// What a member forwards at once to its leader: below the streams a
/// connection carries, so a burst waits its turn instead of failing.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 64;
/// Invitations being redeemed on one connection: a machine joins once.
const JOIN_STREAMS_MAX: usize = 4;
/// The largest invitation request or answer (a key and the members).
const JOIN_FRAME_BYTES_MAX: usize = 64 * 1024;
/// How often a random walk looks for more peers.
const DISCOVERY_INTERVAL_S: u64 = 30;
const FIRST_WALK_S: u64 = 2;
/// Peers a node dials discovered peers up to, by default.
pub const PEERS_TARGET_DEFAULT: u32 = 8;
/// Gossipsub's message cap; envelopes are flushed at half of it.
pub const GOSSIP_BYTES_MAX: usize = 64 * 1024;
/// The largest request-response frame: a fetch answer is capped at 256 KiB
/// of records by the core, plus framing.
pub const FRAME_BYTES_MAX: usize = 1024 * 1024;
/// A request unanswered for this long fails; the core retries next round.
const REQUEST_TIMEOUT_S: u64 = 10;
/// Connections with no stream open stay this long.
const IDLE_CONNECTION_S: u64 = 120;
/// Established connections at most (one per peer).
pub const PEERS_MAX: u32 = 64;
/// First wait before redialling a bootstrap peer; doubles up to the max.
const REDIAL_MS_MIN: u64 = 1_000;
const REDIAL_MS_MAX: u64 = 60_000;
/// How often due redials are looked at.
const REDIAL_TICK_MS: u64 = 250;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bad address {0:?}: {1}")]
    Address(String, String),
    #[error("starting the network: {0}")]
    Setup(String),
}

/// Where to listen and whom to dial first, as multiaddr strings
/// (`/ip4/127.0.0.1/tcp/7171`).
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    /// Where TCP connections count their bytes.
    pub traffic: Arc<Traffic>,
    /// Where the swarm notes each connected peer's address and ping.
    pub links: Arc<PeerLinks>,
    /// Kademlia discovery; off, the node talks only to bootstrap peers and
    /// to those that dial it.
    pub discovery: bool,
    /// Discovered peers are dialled while the node has fewer peers than this.
    pub peers_target: u32,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            traffic: Arc::default(),
            links: Arc::default(),
            discovery: true,
            peers_target: PEERS_TARGET_DEFAULT,
        }
    }
}

/// The request-response protocols whose content the node encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// [`BOOK_PROTOCOL`]: agencies asking owners.
    Book,
    /// [`RAFT_PROTOCOL`]: members of a replica group.
    Raft,
    /// [`FORWARD_PROTOCOL`]: a member's clients' writes, to its leader.
    Forward,
    /// [`JOIN_PROTOCOL`]: a machine with an invitation, to the member
    /// that issued it.
    Join,
}

/// A request to send to a peer.
#[derive(Debug)]
pub struct Call {
    pub protocol: Protocol,
    pub peer: String,
    /// Where the peer listens (a contact record, a group's membership).
    pub addrs: Vec<String>,
    pub request: Vec<u8>,
    /// The answer's bytes, or why there is none.
    pub reply: oneshot::Sender<Result<Vec<u8>, CallFailed>>,
}

/// Why a call to a peer got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailed {
    /// The call named a peer id that does not parse.
    #[error("bad peer id {peer}: {why}")]
    BadPeer { peer: String, why: String },
    /// The request or its answer was lost: no connection, a timeout, a
    /// stream closed (libp2p's outbound failure).
    #[error("{0}")]
    Lost(String),
    /// The peer does not speak the protocol (an older version): the
    /// request was not sent.
    #[error("the peer does not speak this protocol")]
    Unsupported,
}

/// A request from a peer, for the node to answer.
#[derive(Debug)]
pub struct Inbound {
    pub from: String,
    pub request: Vec<u8>,
    pub reply: oneshot::Sender<Vec<u8>>,
}

/// The node's side of the request-response protocols: calls out, and one
/// queue of peers' requests per protocol.
#[derive(Debug)]
pub struct CallChannels {
    pub calls: mpsc::Receiver<Call>,
    pub book: mpsc::Sender<Inbound>,
    pub raft: mpsc::Sender<Inbound>,
    pub forward: mpsc::Sender<Inbound>,
    pub join: mpsc::Sender<Inbound>,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    reconcile: request_response::Behaviour<ReconcileCodec>,
    book: request_response::Behaviour<FrameCodec>,
    raft: request_response::Behaviour<FrameCodec>,
    forward: request_response::Behaviour<FrameCodec>,
    join: request_response::Behaviour<FrameCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kademlia: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
}

/// Runs the network until `shutdown` resolves. Reports each address it
/// listens on through `listening` as it learns them.
pub async fn run(
    keypair: identity::Keypair,
    config: NetConfig,
    events: mpsc::Sender<Event>,
    mut actions: mpsc::Receiver<Action>,
    listening: mpsc::Sender<String>,
    channels: CallChannels,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NetError> {
    let CallChannels {
        mut calls,
        book: book_inbound,
        raft: raft_inbound,
        forward: forward_inbound,
        join: join_inbound,
    } = channels;
    let parse = |text: &String| text.parse::<Multiaddr>().map_err(|e| NetError::Address(text.clone(), e.to_string()));
    let listen: Vec<Multiaddr> = config.listen.iter().map(parse).collect::<Result<_, _>>()?;
    let bootstrap: Vec<Multiaddr> = config.bootstrap.iter().map(parse).collect::<Result<_, _>>()?;
    let topic = gossipsub::IdentTopic::new(TOPIC);

    let traffic = config.traffic.clone();
    let topic_hash = topic.hash();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        .with_other_transport(|key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            use libp2p::Transport as _;
            Ok(tcp::tokio::Transport::new(tcp::Config::default())
                .map(move |stream, _| traffic::Counted::new(stream, traffic))
                .upgrade(libp2p::core::upgrade::Version::V1)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default()))
        })
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(|message: &gossipsub::Message| {
                    gossipsub::MessageId::new(blake3::hash(&message.data).as_bytes())
                })
                .max_transmit_size(GOSSIP_BYTES_MAX)
                .build()?;
            let mut gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)?;
            gossipsub.with_peer_score(scoring::params(topic_hash), scoring::thresholds())?;
            let reconcile = request_response::Behaviour::with_codec(
                ReconcileCodec,
                [(StreamProtocol::new(RECONCILE_PROTOCOL), request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(REQUEST_TIMEOUT_S)),
            );
            let frames = |protocol: &'static str, max_bytes: usize, timeout_s: u64, streams: usize| {
                request_response::Behaviour::with_codec(
                    FrameCodec { max_bytes },
                    [(StreamProtocol::new(protocol), request_response::ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(timeout_s))
                        .with_max_concurrent_streams(streams),
                )
            };
            let book = frames(BOOK_PROTOCOL, BOOK_FRAME_BYTES_MAX, BOOK_TIMEOUT_S, BOOK_STREAMS_MAX);
            let raft = frames(RAFT_PROTOCOL, RAFT_FRAME_BYTES_MAX, RAFT_TIMEOUT_S, RAFT_STREAMS_MAX);
            let forward = frames(FORWARD_PROTOCOL, RAFT_FRAME_BYTES_MAX, RAFT_TIMEOUT_S, FORWARD_STREAMS_MAX);
            let join = frames(JOIN_PROTOCOL, JOIN_FRAME_BYTES_MAX, RAFT_TIMEOUT_S, JOIN_STREAMS_MAX);
            let identify = identify::Behaviour::new(identify::Config::new("/caravan/1".into(), key.public()));
            let limits = connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(PEERS_MAX))
                    .with_max_established_per_peer(Some(1)),
            );
            let kademlia = config.discovery.then(|| {
                let id = key.public().to_peer_id();
                let mut kademlia = kad::Behaviour::with_config(
                    id,
                    kad::store::MemoryStore::new(id),
                    kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
                );
                // Answer queries even without a confirmed public address
                // (loopback clusters, private networks).
                kademlia.set_mode(Some(kad::Mode::Server));
                kademlia
            });
            Ok(Behaviour {
                limits,
                gossipsub,
                reconcile,
                book,
                raft,
                forward,
                join,
                identify,
                ping: ping::Behaviour::default(),
                kademlia: kademlia.into(),
            })
        })
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(IDLE_CONNECTION_S)))
        .build();
    swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| NetError::Setup(e.to_string()))?;
    for address in listen {
        swarm.listen_on(address).map_err(|e| NetError::Setup(e.to_string()))?;
    }
    let mut bootstrap: Vec<Bootstrap> = bootstrap
        .into_iter()
        .map(|address| Bootstrap {
            address,
            dialing: None,
            peer: None,
            next_dial: Instant::now(),
            backoff_ms: REDIAL_MS_MIN,
        })
        .collect();
    let mut redial_tick = tokio::time::interval(Duration::from_millis(REDIAL_TICK_MS));
    // The first walk waits for the bootstrap dials to connect.
    let first_walk = Instant::now() + Duration::from_secs(FIRST_WALK_S);
    let mut discovery_tick = tokio::time::interval_at(first_walk, Duration::from_secs(DISCOVERY_INTERVAL_S));
    let peers_target = config.peers_target;
    let mut calls_in_flight = CallsInFlight::new();
    let mut answers = FuturesUnordered::new();

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            Some(call) = calls.recv() => {
                match call.peer.parse::<PeerId>() {
                    Ok(peer) => {
                        for address in call.addrs.iter().filter_map(|a| a.parse::<Multiaddr>().ok()) {
                            swarm.add_peer_address(peer, address);
                        }
                        let behaviour = swarm.behaviour_mut().frames(call.protocol);
                        let id = behaviour.send_request(&peer, call.request);
                        calls_in_flight.insert((call.protocol, id), call.reply);
                    }
                    Err(error) => {
                        let failed = CallFailed::BadPeer { peer: call.peer.clone(), why: error.to_string() };
                        let _ = call.reply.send(Err(failed));
                    }
                }
            }
            Some((protocol, answer, channel)) = answers.next(), if !answers.is_empty() => {
                let answer: Result<Vec<u8>, _> = answer;
                // No answer (the node is stopping): an empty frame, which
                // the caller reads as unreachable and retries.
                let _ = swarm.behaviour_mut().frames(protocol).send_response(channel, answer.unwrap_or_default());
            }
            _ = redial_tick.tick() => {
                for peer in bootstrap.iter_mut().filter(|b| b.dialing.is_none() && b.peer.is_none() && b.next_dial <= Instant::now()) {
                    let options = DialOpts::unknown_peer_id().address(peer.address.clone()).build();
                    peer.dialing = Some(options.connection_id());
                    if let Err(error) = swarm.dial(options) {
                        tracing::debug!(address = %peer.address, %error, "dial failed");
                        peer.dialing = None;
                        peer.schedule_redial();
                    }
                }
            }
            _ = discovery_tick.tick() => {
                if let Some(kademlia) = swarm.behaviour_mut().kademlia.as_mut() {
                    kademlia.get_closest_peers(PeerId::random());
                }
            }
            action = actions.recv() => match action {
                Some(action) => perform(&mut swarm, &topic, action),
                None => return Ok(()),
            },
            event = swarm.select_next_some() => {
                track_bootstrap(&mut bootstrap, &event);
                track_links(&config.links, &event);
                let framed = match event {
                    SwarmEvent::Behaviour(BehaviourEvent::Book(frames)) => Ok((Protocol::Book, frames)),
                    SwarmEvent::Behaviour(BehaviourEvent::Raft(frames)) => Ok((Protocol::Raft, frames)),
                    SwarmEvent::Behaviour(BehaviourEvent::Forward(frames)) => Ok((Protocol::Forward, frames)),
                    SwarmEvent::Behaviour(BehaviourEvent::Join(frames)) => Ok((Protocol::Join, frames)),
                    event => Err(event),
                };
                let event = match framed {
                    Ok((protocol, frames)) => {
                        let inbound = match protocol {
                            Protocol::Book => &book_inbound,
                            Protocol::Raft => &raft_inbound,
                            Protocol::Forward => &forward_inbound,
                            Protocol::Join => &join_inbound,
                        };
                        on_frames_event(protocol, frames, &mut calls_in_flight, &mut answers, inbound);
                        continue;
                    }
                    Err(event) => event,
                };
                let Some(event) = translate(&mut swarm, event, &listening, peers_target) else { continue };
                if !matches!(event, Event::Gossip { .. }) {
                    // Small, and no faster than the node asks (fetched
                    // pages) or peers connect: a full queue pauses the
                    // swarm until the node takes it.
                    if events.send(event).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                // Gossip may be lost: when the node is behind, an envelope
                // is dropped (and ignored, so not forwarded) rather than
                // pausing the swarm, whose Raft and booking messages must
                // go on. Reconciliation brings its records.
                match events.try_send(event) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(dropped)) => {
                        config.traffic.envelope_dropped();
                        if let Event::Gossip { from, envelope } = dropped {
                            ignore(&mut swarm, &from, &envelope);
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                }
            }
        }
    }
}

impl Behaviour {
    fn frames(&mut self, protocol: Protocol) -> &mut request_response::Behaviour<FrameCodec> {
        match protocol {
            Protocol::Book => &mut self.book,
            Protocol::Raft => &mut self.raft,
            Protocol::Forward => &mut self.forward,
            Protocol::Join => &mut self.join,
        }
    }
}

/// Our calls waiting for their answers; request ids are per behaviour.
type CallsInFlight =
    HashMap<(Protocol, request_response::OutboundRequestId), oneshot::Sender<Result<Vec<u8>, CallFailed>>>;

type PendingAnswer = std::pin::Pin<
    Box<
        dyn Future<
                Output = (
                    Protocol,
                    Result<Vec<u8>, oneshot::error::RecvError>,
                    request_response::ResponseChannel<Vec<u8>>,
                ),
            > + Send,
    >,
>;

/// Routes one protocol's traffic: answers to our calls go to their
/// callers; peers' requests go to the node, and its answers are queued in
/// `answers`.
fn on_frames_event(
    protocol: Protocol,
    event: request_response::Event<Vec<u8>, Vec<u8>>,
    calls_in_flight: &mut CallsInFlight,
    answers: &mut FuturesUnordered<PendingAnswer>,
    inbound: &mpsc::Sender<Inbound>,
) {
    match event {
        request_response::Event::Message { peer, message, .. } => match message {
            request_response::Message::Request { request, channel, .. } => {
                let (reply, answer) = oneshot::channel();
                let call = Inbound { from: peer.to_string(), request, reply };
                if let Err(error) = inbound.try_send(call) {
                    // Too busy: no answer now (the peer retries: a booking
                    // with the same key, Raft at its next beat).
                    tracing::debug!(%peer, ?protocol, %error, "request dropped");
                    drop(error);
                }
                answers.push(Box::pin(async move { (protocol, answer.await, channel) }));
            }
            request_response::Message::Response { request_id, response } => {
                if let Some(reply) = calls_in_flight.remove(&(protocol, request_id)) {
                    let _ = reply.send(Ok(response));
                }
            }
        },
        request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
            tracing::debug!(%peer, ?protocol, %error, "request failed");
            if let Some(reply) = calls_in_flight.remove(&(protocol, request_id)) {
                let failed = match error {
                    request_response::OutboundFailure::UnsupportedProtocols => CallFailed::Unsupported,
                    error => CallFailed::Lost(error.to_string()),
                };
                let _ = reply.send(Err(failed));
            }
        }
        request_response::Event::InboundFailure { peer, error, .. } => {
            tracing::debug!(%peer, ?protocol, %error, "answer not delivered");
        }
        request_response::Event::ResponseSent { .. } => {}
    }
}

/// A bootstrap peer and the state of our link to it.
struct Bootstrap {
    address: Multiaddr,
    /// The dial in flight, if any.
    dialing: Option<ConnectionId>,
    /// Who answered at the address, while connected.
    peer: Option<PeerId>,
    next_dial: Instant,
    backoff_ms: u64,
}

impl Bootstrap {
    fn schedule_redial(&mut self) {
        self.next_dial = Instant::now() + Duration::from_millis(self.backoff_ms);
        self.backoff_ms = (self.backoff_ms * 2).min(REDIAL_MS_MAX);
    }
}

/// Notes each peer's address when it connects, its pings, and its leaving.
fn track_links(links: &PeerLinks, event: &SwarmEvent<BehaviourEvent>) {
    match event {
        SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
            let link = PeerLink {
                address: endpoint.get_remote_address().to_string(),
                dialled: endpoint.is_dialer(),
                rtt_ms: None,
            };
            links.connected(peer_id.to_string(), link);
        }
        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => links.disconnected(&peer_id.to_string()),
        SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
            links.pinged(&peer.to_string(), rtt.as_millis() as u64);
        }
        _ => {}
    }
}

/// Follows dials to bootstrap peers: connected, failed (redial later), or
/// lost (redial later).
fn track_bootstrap(bootstrap: &mut [Bootstrap], event: &SwarmEvent<BehaviourEvent>) {
    match event {
        SwarmEvent::ConnectionEstablished { peer_id, connection_id, .. } => {
            for peer in bootstrap.iter_mut().filter(|b| b.dialing == Some(*connection_id)) {
                peer.dialing = None;
                peer.peer = Some(*peer_id);
                peer.backoff_ms = REDIAL_MS_MIN;
            }
        }
        SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
            for peer in bootstrap.iter_mut().filter(|b| b.dialing == Some(*connection_id)) {
                tracing::debug!(address = %peer.address, %error, "bootstrap peer unreachable; redialling later");
                peer.dialing = None;
                peer.schedule_redial();
            }
        }
        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
            for peer in bootstrap.iter_mut().filter(|b| b.peer == Some(*peer_id)) {
                tracing::info!(address = %peer.address, "lost a bootstrap peer; redialling");
                peer.peer = None;
                peer.schedule_redial();
            }
        }
        _ => {}
    }
}

fn perform(swarm: &mut libp2p::Swarm<Behaviour>, topic: &gossipsub::IdentTopic, action: Action) {
    match action {
        Action::Gossip(envelope) => {
            // With no peer subscribed yet the envelope goes nowhere;
            // reconciliation delivers it later.
            if let Err(error) = swarm.behaviour_mut().gossipsub.publish(topic.clone(), envelope) {
                tracing::debug!(%error, "envelope not gossiped");
            }
        }
        Action::Send(peer, message) => match peer.parse::<PeerId>() {
            Ok(peer) => {
                swarm.behaviour_mut().reconcile.send_request(&peer, message.encode());
            }
            Err(error) => tracing::warn!(%peer, %error, "not a peer id"),
        },
        Action::Validated { from, envelope_id, verdict } => {
            let Ok(from) = from.parse::<PeerId>() else { return };
            let acceptance = match verdict {
                caravan_replication::Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                caravan_replication::Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                caravan_replication::Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
            };
            let id = gossipsub::MessageId::new(&envelope_id);
            swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &from, acceptance);
        }
    }
}

/// Tells gossipsub to drop an envelope the node did not take, without
/// forwarding it or penalizing the peer that sent it.
fn ignore(swarm: &mut libp2p::Swarm<Behaviour>, from: &str, envelope: &[u8]) {
    let Ok(from) = from.parse::<PeerId>() else { return };
    let id = gossipsub::MessageId::new(blake3::hash(envelope).as_bytes());
    swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &from, gossipsub::MessageAcceptance::Ignore);
}

fn translate(
    swarm: &mut libp2p::Swarm<Behaviour>,
    event: SwarmEvent<BehaviourEvent>,
    listening: &mpsc::Sender<String>,
    peers_target: u32,
) -> Option<Event> {
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
            let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL);
            if let Some(kademlia) = swarm.behaviour_mut().kademlia.as_mut().filter(|_| speaks_kad) {
                for address in info.listen_addrs {
                    kademlia.add_address(&peer_id, address);
                }
            }
            None
        }
        SwarmEvent::Behaviour(BehaviourEvent::Kademlia(kad::Event::OutboundQueryProgressed {
            result: kad::QueryResult::GetClosestPeers(Ok(found)),
            ..
        })) => {
            for peer in found.peers {
                let connected = swarm.connected_peers().count() as u32;
                if connected >= peers_target {
                    break;
                }
                if peer.peer_id != *swarm.local_peer_id() && !swarm.is_connected(&peer.peer_id) {
                    tracing::debug!(peer_id = %peer.peer_id, "dialling a discovered peer");
                    let _ = swarm.dial(DialOpts::peer_id(peer.peer_id).addresses(peer.addrs).build());
                }
            }
            None
        }
        SwarmEvent::NewListenAddr { address, .. } => {
            tracing::info!(%address, "p2p listening");
            let _ = listening.try_send(address.to_string());
            None
        }
        SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } if num_established.get() == 1 => {
            tracing::debug!(%peer_id, "peer connected");
            Some(Event::Connected(peer_id.to_string()))
        }
        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
            tracing::debug!(%peer_id, "peer disconnected");
            Some(Event::Disconnected(peer_id.to_string()))
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            propagation_source,
            message,
            ..
        })) => Some(Event::Gossip { from: propagation_source.to_string(), envelope: message.data }),
        SwarmEvent::Behaviour(BehaviourEvent::Reconcile(request_response::Event::Message {
            peer,
            message: request_response::Message::Request { request, channel, .. },
            ..
        })) => {
            let _ = swarm.behaviour_mut().reconcile.send_response(channel, ());
            match caravan_replication::Message::decode(&request) {
                Ok(message) => Some(Event::Message { from: peer.to_string(), message }),
                Err(reason) => {
                    tracing::debug!(%peer, %reason, "bad reconcile message");
                    None
                }
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Reconcile(request_response::Event::OutboundFailure {
            peer,
            error,
            ..
        })) => {
            tracing::debug!(%peer, %error, "reconcile request failed");
            None
        }
        _ => None,
    }
}

/// Length-prefixed frames; a request carries an encoded message, a response
/// is empty.
#[derive(Clone, Default)]
struct ReconcileCodec;

/// Reads one frame: a big-endian u32 length, then that many bytes (at most `max`).
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut frame = vec![0u8; length];
    io.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8], max: usize) -> std::io::Result<()> {
    if frame.len() > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"));
    }
    io.write_all(&(frame.len() as u32).to_be_bytes()).await?;
    io.write_all(frame).await?;
    io.close().await
}

impl request_response::Codec for ReconcileCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, FRAME_BYTES_MAX).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<()> {
        read_frame(io, FRAME_BYTES_MAX).await.map(|_| ())
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &request, FRAME_BYTES_MAX).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        (): (),
    ) -> std::io::Result<()> {
        write_frame(io, &[], FRAME_BYTES_MAX).await
    }
}

/// Frames the node encodes: length-prefixed bytes both ways, at most
/// `max_bytes` (bookings and Raft differ).
#[derive(Clone)]
struct FrameCodec {
    max_bytes: usize,
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, self.max_bytes).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, self.max_bytes).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &request, self.max_bytes).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &response, self.max_bytes).await
    }
}

/// The network identity from a stored ed25519 seed.
pub fn keypair_from_seed(mut seed: [u8; 32]) -> identity::Keypair {
    identity::Keypair::ed25519_from_bytes(&mut seed).expect("any 32 bytes are an ed25519 secret")
}

/// The peer id of `keypair`, as the node names peers.
pub fn peer_id(keypair: &identity::Keypair) -> String {
    keypair.public().to_peer_id().to_string()
}
