//! What was acknowledged survives a restart, and replay signs nothing new.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_holds_and_bookings_survive_a_restart() {
    let t = TestNode::start().await;
    let id = t.hotel(4).await;
    let (_, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 3, 1))).await;
    let (_, booking) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 2, 4, 2))).await;
    let booking_id = booking["id"].as_u64().unwrap();
    assert_eq!(t.call("POST", &format!("/api/v1/holds/{booking_id}/confirm"), None).await.0, StatusCode::OK);
    let (_, ari_before) = t.call("GET", &format!("/api/v1/listings/{id}/ari"), None).await;

    // Shutting down publishes what was pending; the restart replays the log.
    let t = t.reopen().await;
    assert_eq!(t.call("GET", &format!("/api/v1/holds/{}", hold["id"]), None).await.1["state"], "held");
    assert_eq!(t.call("GET", &format!("/api/v1/sales/{booking_id}"), None).await.1["state"], "confirmed");
    assert_eq!(t.call("GET", &format!("/api/v1/listings/{id}/ari"), None).await.1, ari_before);
    let (_, records_before) = t.call("GET", "/api/v1/records", None).await;
    assert_eq!(records_before["records"].as_array().unwrap().len(), 2, "listing and ARI");

    let t = t.reopen().await;
    assert_eq!(t.call("GET", "/api/v1/records", None).await.1, records_before, "replay re-signs nothing");

    // The ledger goes on from where it was: new ids, no reuse.
    let (_, next) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 5, 6, 1))).await;
    assert_eq!(next["id"].as_u64(), Some(booking_id + 1));
}

/// How far the test clock runs ahead of the wall clock, ms.
static CLOCK_AHEAD_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn test_clock() -> caravan_model::Timestamp {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    caravan_model::Timestamp(wall + CLOCK_AHEAD_MS.load(std::sync::atomic::Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_node_expires_holds_and_republishes_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    crate::init_node(dir.path());
    let options =
        caravan_node::NodeOptions { publish_interval_ms: 5, clock: test_clock, ..caravan_node::NodeOptions::default() };
    let t = TestNode { node: Node::open(dir.path(), options).await.unwrap(), dir };
    let id = t.hotel(2).await;
    let mut hold = stay_hold(&id, 1, 2, 2);
    hold["hold_seconds"] = json!(60);
    let (_, hold) = t.call("POST", "/api/v1/holds", Some(hold)).await;
    let path = format!("/api/v1/holds/{}", hold["id"]);

    // Nothing else happens; only the clock moves past the expiry.
    CLOCK_AHEAD_MS.store(61_000, std::sync::atomic::Ordering::Relaxed);
    let mut state = Value::Null;
    for _ in 0..300 {
        state = t.call("GET", &path, None).await.1["state"].clone();
        if state == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(state, "expired");
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(1), day(2)), None).await;
    assert_eq!(ari["days"][0]["available"], 2, "{ari}");
}

/// The catalog comes back after a restart from its snapshot, or — when the
/// snapshot is damaged or out of step with the records — rebuilt from the
/// records; the same catalog either way.
#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_comes_back_from_its_snapshot_or_is_rebuilt_from_the_records() {
    use caravan_writer::catalog::{self, Opened, CATALOG_FILE};
    let t = TestNode::start().await;
    let id = t.hotel(4).await;
    assert_eq!(t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 3, 1))).await.0, StatusCode::CREATED);
    let t = t.reopen().await;
    let digest = t.node.read_catalog(|c| c.digest());
    assert_eq!(t.node.read_catalog(|c| c.listing_count()), 1);
    let TestNode { dir, node } = t;
    node.shutdown().await;

    let path = dir.path().join(CATALOG_FILE);
    let records = caravan_store::Records::open(&dir.path().join(caravan_store::RECORDS_DIR)).unwrap();
    let now = caravan_model::Timestamp(i64::MAX / 2);
    let (loaded, opened) = catalog::open(&records, &path, now).unwrap();
    assert_eq!(opened, Opened::Loaded);
    assert_eq!(loaded.digest(), digest);
    assert!(!path.exists(), "a loaded snapshot is taken away, so a crash cannot bring it back stale");

    catalog::save(&records, &loaded, &path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let (rebuilt, opened) = catalog::open(&records, &path, now).unwrap();
    assert!(matches!(&opened, Opened::Rebuilt { why } if why.contains("damaged")), "{opened:?}");
    assert_eq!(rebuilt.digest(), digest);

    catalog::save(&records, &rebuilt, &path).unwrap();
    let mut tx = records.write(caravan_store::Sync::Full);
    tx.bump_mark().unwrap();
    tx.commit().unwrap();
    let (rebuilt, opened) = catalog::open(&records, &path, now).unwrap();
    assert!(matches!(&opened, Opened::Rebuilt { why } if why.contains("mark")), "{opened:?}");
    assert_eq!(rebuilt.digest(), digest);
    drop(records);

    // And the node searches what it had.
    let node = Node::open(dir.path(), NodeOptions { publish_interval_ms: 5, ..NodeOptions::default() }).await.unwrap();
    assert_eq!(node.read_catalog(|c| c.digest()), digest);
    node.shutdown().await;
}
