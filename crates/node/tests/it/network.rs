//! Two real nodes over libp2p on loopback: an owner's changes reach an
//! agency's catalog by gossip and reconciliation.

use super::*;

pub async fn node_with_fast_rounds() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    crate::init_node(dir.path());
    open_with_fast_rounds(dir).await
}

/// Opens an initialized data directory with reconciliation every second.
pub async fn open_with_fast_rounds(dir: tempfile::TempDir) -> TestNode {
    let replication = caravan_replication::Config { reconcile_interval_ms: 1_000, ..Default::default() };
    let options = NodeOptions { publish_interval_ms: 5, replication, ..NodeOptions::default() };
    TestNode { node: Node::open(dir.path(), options).await.unwrap(), dir }
}

/// Polls `condition` every 20 ms for up to 10 s; whether it came true.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    condition()
}

pub fn loopback(bootstrap: Vec<String>) -> caravan_net::NetConfig {
    caravan_net::NetConfig { listen: vec!["/ip4/127.0.0.1/tcp/0".into()], bootstrap, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owners_changes_reach_an_agency_over_libp2p() {
    let (owner, agency) = (node_with_fast_rounds().await, node_with_fast_rounds().await);
    let address = owner.node.start_network(loopback(vec![])).await.unwrap().expect("listening");
    agency.node.start_network(loopback(vec![address])).await.unwrap();

    let id = owner.hotel(3).await;
    let (status, _) = owner.call("POST", "/api/v1/holds", Some(stay_hold(&id, 2, 4, 2))).await;
    assert_eq!(status, StatusCode::CREATED);

    let night = caravan_model::Date::parse(&day(2)).unwrap();
    let mut left = None;
    for _ in 0..500 {
        left = crate::available_on(&agency.node, night);
        if left == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, Some(1), "the agency's catalog shows 3 rooms less the 2 held");

    let metrics = |t: &TestNode| {
        let t = t.node.clone();
        async move {
            let response = caravan_api::router(t.app_state())
                .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
                .await
                .unwrap();
            String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
        }
    };
    let sample = |text: &str, name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (owner_text, agency_text) = (metrics(&owner).await, metrics(&agency).await);
    assert_eq!(sample(&agency_text, "caravan_peers"), 1.0);
    assert!(sample(&agency_text, "caravan_records_new_total") >= 2.0, "{agency_text}");
    assert!(sample(&owner_text, "caravan_ledger_commands_total") >= 3.0, "{owner_text}");
    assert!(sample(&agency_text, "caravan_transport_bytes_received_total") > 0.0, "{agency_text}");
    assert!(sample(&agency_text, "caravan_replication_lag_seconds_count") >= 2.0, "{agency_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_find_each_other_through_kademlia() {
    let (hub, b, c) = (node_with_fast_rounds().await, node_with_fast_rounds().await, node_with_fast_rounds().await);
    let address = hub.node.start_network(loopback(vec![])).await.unwrap().expect("listening");
    b.node.start_network(loopback(vec![address.clone()])).await.unwrap();
    c.node.start_network(loopback(vec![address])).await.unwrap();
    let peers = |t: &TestNode| t.node.stats().peers.load(std::sync::atomic::Ordering::Relaxed);
    assert!(eventually(|| peers(&b) == 2 && peers(&c) == 2).await, "b has {} peers, c {}", peers(&b), peers(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_discovery_a_node_keeps_to_its_bootstrap_peers() {
    let (hub, b, c) = (node_with_fast_rounds().await, node_with_fast_rounds().await, node_with_fast_rounds().await);
    let alone = |bootstrap| caravan_net::NetConfig { discovery: false, ..loopback(bootstrap) };
    let address = hub.node.start_network(alone(vec![])).await.unwrap().expect("listening");
    b.node.start_network(alone(vec![address.clone()])).await.unwrap();
    c.node.start_network(alone(vec![address])).await.unwrap();
    let peers = |t: &TestNode| t.node.stats().peers.load(std::sync::atomic::Ordering::Relaxed);
    assert!(eventually(|| peers(&hub) == 2).await);
    // Past the first random walk (2 s after start), nothing more connects.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!((peers(&b), peers(&c)), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_network_identity_survives_a_restart() {
    let t = node_with_fast_rounds().await;
    t.node.start_network(loopback(vec![])).await.unwrap();
    let key_file = t.dir.path().join(caravan_node::identity::NET_KEY_FILE);
    let first = std::fs::read(&key_file).unwrap();
    let t = t.reopen().await;
    t.node.start_network(loopback(vec![])).await.unwrap();
    assert_eq!(std::fs::read(&key_file).unwrap(), first, "the same PeerId after a restart");
    let origin = std::fs::read(t.dir.path().join(caravan_node::identity::KEY_FILE)).unwrap();
    assert_ne!(origin, first, "the network key is not the origin key");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_its_network_running_shuts_down() {
    let TestNode { node, dir } = node_with_fast_rounds().await;
    node.start_network(loopback(vec![])).await.unwrap();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), node.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown hung");
    drop(dir);
}

/// How many listings a node's catalog holds.
fn catalog_listings(t: &TestNode) -> u64 {
    t.node.read_catalog(|catalog| catalog.listing_count() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_was_offline_catches_up() {
    let (owner, agency) = (node_with_fast_rounds().await, node_with_fast_rounds().await);
    let address = owner.node.start_network(loopback(vec![])).await.unwrap().expect("listening");
    agency.node.start_network(loopback(vec![address.clone()])).await.unwrap();
    owner.hotel(2).await;
    eventually(|| catalog_listings(&agency) == 1).await;
    assert_eq!(catalog_listings(&agency), 1);

    // The agency goes away; the owner keeps publishing.
    let TestNode { node, dir } = agency;
    node.shutdown().await;
    for _ in 0..5 {
        owner.hotel(2).await;
    }

    // Back with the same identity and data: reconciliation on connect
    // brings what it missed, gossip or not.
    let options = NodeOptions {
        publish_interval_ms: 5,
        replication: caravan_replication::Config { reconcile_interval_ms: 1_000, ..Default::default() },
        ..NodeOptions::default()
    };
    let agency = TestNode { node: Node::open(dir.path(), options).await.unwrap(), dir };
    agency.node.start_network(loopback(vec![address])).await.unwrap();
    eventually(|| catalog_listings(&agency) == 6).await;
    assert_eq!(catalog_listings(&agency), 6);
    let digest = |t: &TestNode| t.node.read_catalog(|catalog| catalog.digest());
    eventually(|| digest(&owner) == digest(&agency)).await;
    assert_eq!(digest(&owner), digest(&agency));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bootstrap_peer_that_restarts_is_redialled() {
    let (owner, agency) = (node_with_fast_rounds().await, node_with_fast_rounds().await);
    let address = owner.node.start_network(loopback(vec![])).await.unwrap().expect("listening");
    agency.node.start_network(loopback(vec![address.clone()])).await.unwrap();
    owner.hotel(2).await;

    // The owner restarts on the same address; the agency must notice the
    // lost link and dial again.
    let owner = owner.reopen().await;
    let listen = caravan_net::NetConfig { listen: vec![address], ..Default::default() };
    owner.node.start_network(listen).await.unwrap();
    owner.hotel(2).await;
    eventually(|| catalog_listings(&agency) == 2).await;
    assert_eq!(catalog_listings(&agency), 2, "the listing published after the restart arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_works_over_quic() {
    let (owner, agency) = (node_with_fast_rounds().await, node_with_fast_rounds().await);
    let quic = |bootstrap| caravan_net::NetConfig {
        listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".into()],
        bootstrap,
        ..Default::default()
    };
    let address = owner.node.start_network(quic(vec![])).await.unwrap().expect("listening");
    assert!(address.contains("quic-v1"), "{address}");
    agency.node.start_network(quic(vec![address])).await.unwrap();
    owner.hotel(2).await;
    eventually(|| catalog_listings(&agency) == 1).await;
    assert_eq!(catalog_listings(&agency), 1);
}
