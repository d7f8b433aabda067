//! The database fails under the writer: the member stops instead of
//! going on without its records, and a restart re-applies the Raft log,
//! losing nothing acknowledged and publishing what was not stored.

use super::*;
use caravan_api::LedgerService;

async fn wait_for_records(t: &TestNode, at_least: usize) {
    for _ in 0..500 {
        if t.node.own_records(0, 100).await.unwrap().len() >= at_least {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {at_least} records published");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_failure_stops_the_member_and_a_restart_loses_nothing_acknowledged() {
    let t = TestNode::start().await;
    let id = t.hotel(5).await;
    wait_for_records(&t, 2).await;

    // Every publishing point now fails: the writer tries again, then the
    // member stops rather than go on without its records. Holds may be
    // answered until then: the Raft log alone makes them durable.
    t.node.records().fail_writes(true);
    let mut acknowledged = Vec::new();
    let mut unavailable = Vec::new();
    for night in 1..6 {
        let key = format!("traveller-{night}");
        let (status, body) = t
            .call_with("POST", "/api/v1/holds", Some(stay_hold(&id, night, night + 1, 1)), &[("idempotency-key", &key)])
            .await;
        match status {
            StatusCode::CREATED => acknowledged.push((key, night, body["id"].as_u64().unwrap())),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
                unavailable.push((key, night));
            }
            other => panic!("{other}: {body}"),
        }
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), t.node.writer_stopped()).await.expect("the member stops");
    let late = stay_hold(&id, 1, 2, 1);
    let (status, body) = t.call_with("POST", "/api/v1/holds", Some(late), &[("idempotency-key", "late")]).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    unavailable.push(("late".to_string(), 1));
    t.node.records().fail_writes(false);

    // A restart re-applies the Raft log: what was acknowledged is there,
    // and a retry of what was refused gets its one answer.
    let t = t.reopen().await;
    for (_, night, hold_id) in &acknowledged {
        let (status, hold) = t.call("GET", &format!("/api/v1/holds/{hold_id}"), None).await;
        assert_eq!((status, hold["check_in"].as_str()), (StatusCode::OK, Some(day(*night).as_str())), "{hold}");
    }
    for (key, night) in &unavailable {
        let retry = stay_hold(&id, *night, night + 1, 1);
        let (status, body) = t.call_with("POST", "/api/v1/holds", Some(retry), &[("idempotency-key", key)]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(1), day(6)), None).await;
    let held: u64 = ari["days"].as_array().unwrap().iter().map(|d| d["held"].as_u64().unwrap()).sum();
    assert_eq!(held, 6, "each hold once: {ari}");
    // And the availability those holds left is published at last.
    wait_for_records(&t, 2).await;
}
