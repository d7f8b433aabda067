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

/// A peer that gossips forged envelopes sinks below the graylist threshold
/// and is cut off (nothing it sends reaches the node any more), while an
/// honest peer gossiping beside it keeps full delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_gossips_forgeries_is_cut_off_and_an_honest_one_is_not() {
    use caravan_replication::Verdict;
    use std::sync::Mutex;

    let node = peer(1, 1_024, vec![]).await;
    let honest = peer(2, 1_024, vec![node.address.clone()]).await;
    let hostile = peer(3, 1_024, vec![node.address.clone()]).await;
    // The node judges as its core would: forgeries rejected, the rest taken.
    let received: Arc<Mutex<Vec<(String, tokio::time::Instant)>>> = Arc::default();
    let (mut events, actions, log) = (node.events, node.actions.clone(), received.clone());
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Gossip { from, envelope } = event else { continue };
            let verdict = if envelope.starts_with(b"forged") { Verdict::Reject } else { Verdict::Accept };
            log.lock().unwrap().push((from.clone(), tokio::time::Instant::now()));
            let envelope_id = *blake3::hash(&envelope).as_bytes();
            let _ = actions.send(Action::Validated { from, envelope_id, verdict }).await;
        }
    });

    let started = tokio::time::Instant::now();
    for n in 0..160u32 {
        honest.actions.send(Action::Gossip(format!("honest {n}").into_bytes())).await.unwrap();
        hostile.actions.send(Action::Gossip(format!("forged {n}").into_bytes())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = received.lock().unwrap().clone();
    let count =
        |who: &str, since: tokio::time::Instant| received.iter().filter(|(f, at)| f == who && *at >= since).count();
    let last_three_seconds = started + Duration::from_secs(5);
    assert!(count(&hostile.id, started) >= 1, "a forgery reached the node at first");
    let (forged_late, honest_late) = (count(&hostile.id, last_three_seconds), count(&honest.id, last_three_seconds));
    assert_eq!(forged_late, 0, "then nothing of the forger's in the last three seconds");
    assert!(honest_late >= 50, "the honest peer kept delivering: {honest_late} in the last three seconds");
    drop(node.book);
}
