//! What was acknowledged survives a restart, and replay signs nothing new.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_holds_and_bookings_survive_a_restart() {
    let t = TestNode::start();
    let id = t.hotel(4).await;
    let (_, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 3, 1))).await;
    let (_, booking) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 2, 4, 2))).await;
    let booking_id = booking["id"].as_u64().unwrap();
    assert_eq!(t.call("POST", &format!("/api/v1/holds/{booking_id}/confirm"), None).await.0, StatusCode::OK);
    let (_, ari_before) = t.call("GET", &format!("/api/v1/listings/{id}/ari"), None).await;

    // Shutting down publishes what was pending; the restart replays the log.
    let t = t.reopen().await;
    assert_eq!(t.call("GET", &format!("/api/v1/holds/{}", hold["id"]), None).await.1["state"], "held");
    assert_eq!(t.call("GET", &format!("/api/v1/bookings/{booking_id}"), None).await.1["state"], "confirmed");
    assert_eq!(t.call("GET", &format!("/api/v1/listings/{id}/ari"), None).await.1, ari_before);
    let (_, records_before) = t.call("GET", "/api/v1/records", None).await;
    assert_eq!(records_before["records"].as_array().unwrap().len(), 2, "listing and ARI");

    let t = t.reopen().await;
    assert_eq!(t.call("GET", "/api/v1/records", None).await.1, records_before, "replay re-signs nothing");

    // The ledger goes on from where it was: new ids, no reuse.
    let (_, next) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 5, 6, 1))).await;
    assert_eq!(next["id"].as_u64(), Some(booking_id + 1));
}
