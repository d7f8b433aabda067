//! Two swarms on loopback, driven through the channels a node uses.

use std::sync::Arc;
use std::time::Duration;

use caravan_net::{Action, CallChannels, Event, Inbound, NetConfig, Protocol, Traffic};
use tokio::sync::{mpsc, oneshot};

struct Peer {
    id: String,
    address: String,
    traffic: Arc<Traffic>,
    events: mpsc::Receiver<Event>,
    actions: mpsc::Sender<Action>,
    calls: mpsc::Sender<caravan_net::Call>,
    book: mpsc::Receiver<Inbound>,
    _stop: oneshot::Sender<()>,
}

/// A swarm whose node takes at most `queue` events before it falls behind.
async fn peer(seed: u8, queue: usize, bootstrap: Vec<String>) -> Peer {
    let keypair = caravan_net::keypair_from_seed([seed; 32]);
    let id = caravan_net::peer_id(&keypair);
    let traffic = Arc::new(Traffic::default());
    let config = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        traffic: traffic.clone(),
        discovery: false,
        ..NetConfig::default()
    };
    let (events_tx, events) = mpsc::channel(queue);
    let (actions, actions_rx) = mpsc::channel(64);
    let (listening_tx, mut listening) = mpsc::channel(8);
    let (calls, calls_rx) = mpsc::channel(8);
    let (book_tx, book) = mpsc::channel(8);
    let (raft_tx, _raft) = mpsc::channel(8);
    let (forward_tx, _forward) = mpsc::channel(8);
    let (join_tx, _join) = mpsc::channel(8);
    let (stop, stopped) = oneshot::channel::<()>();
    let channels = CallChannels { calls: calls_rx, book: book_tx, raft: raft_tx, forward: forward_tx, join: join_tx };
    tokio::spawn(caravan_net::run(keypair, config, events_tx, actions_rx, listening_tx, channels, async {
        let _ = stopped.await;
    }));
    let address = format!("{}/p2p/{id}", listening.recv().await.unwrap());
    Peer { id, address, traffic, events, actions, calls, book, _stop: stop }
}

/// A node that falls behind on gossip drops envelopes instead of pausing
/// its swarm: its booking requests are still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_on_gossip_drops_envelopes_and_still_answers_bookings() {
    let mut agency = peer(1, 1_024, vec![]).await;
    // The owner's node takes one event and then nothing more.
    let mut owner = peer(2, 1, vec![agency.address.clone()]).await;
    let connected = tokio::time::timeout(Duration::from_secs(10), agency.events.recv()).await.unwrap();
    assert!(matches!(connected, Some(Event::Connected(_))), "{connected:?}");

    // Gossip until the owner has dropped some (the mesh forms after a
    // heartbeat or two; until then publishing reaches nobody).
    for round in 0..200u32 {
        if owner.traffic.envelopes_dropped() >= 5 {
            break;
        }
        agency.actions.send(Action::Gossip(round.to_le_bytes().repeat(64))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(owner.traffic.envelopes_dropped() >= 5, "the owner's full queue dropped gossip");

    // Its swarm goes on: a booking request is answered.
    tokio::spawn(async move {
        while let Some(inbound) = owner.book.recv().await {
            let _ = inbound.reply.send(b"held".to_vec());
        }
    });
    let (reply, answer) = oneshot::channel();
    let call = caravan_net::Call {
        protocol: Protocol::Book,
        peer: owner.id.clone(),
        addrs: vec![owner.address.clone()],
        request: b"hold".to_vec(),
        reply,
    };
    agency.calls.send(call).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), answer).await.expect("answered in time");
    assert_eq!(answer.unwrap().unwrap(), b"held");
    drop(owner.events);
}
