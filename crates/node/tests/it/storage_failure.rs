//! The database fails under the writer: nothing acknowledged is lost, and
//! a writer that cannot recover stops the node instead of lingering.

use super::*;
use caravan_api::Backend;

/// A second connection to the node's database, as an operator's sqlite3
/// shell would be.
fn sabotage(t: &TestNode, sql: &str) {
    let conn = caravan_store::open_writer(&t.dir.path().join(caravan_store::DB_FILE)).unwrap();
    conn.execute_batch(sql).unwrap();
}

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
async fn a_failed_commit_loses_nothing_acknowledged_and_the_node_recovers() {
    let t = TestNode::start();
    let id = t.hotel(5).await;
    wait_for_records(&t, 2).await;

    // Every publishing point now fails, and with it any commit it shares.
    sabotage(&t, "CREATE TRIGGER disk_full BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'disk full'); END;");
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
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sabotage(&t, "DROP TRIGGER disk_full;");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    // What was acknowledged is there; what was refused left no trace; a
    // retry with the same key now goes through.
    for (_, night, hold_id) in &acknowledged {
        let (status, hold) = t.call("GET", &format!("/api/v1/holds/{hold_id}"), None).await;
        assert_eq!((status, hold["check_in"].as_str()), (StatusCode::OK, Some(day(*night).as_str())), "{hold}");
    }
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(1), day(6)), None).await;
    let held: u64 = ari["days"].as_array().unwrap().iter().map(|d| d["held"].as_u64().unwrap()).sum();
    assert_eq!(held, acknowledged.len() as u64, "{ari}");
    assert_eq!(acknowledged.len() + unavailable.len(), 5);
    let Some((key, night)) = unavailable.first() else {
        panic!("the trigger failed no commit; the test proves nothing")
    };
    let retry = stay_hold(&id, *night, night + 1, 1);
    let (status, body) = t.call_with("POST", "/api/v1/holds", Some(retry), &[("idempotency-key", key)]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_that_cannot_reload_stops_the_node() {
    let t = TestNode::start();
    t.hotel(5).await;
    sabotage(&t, "DROP TABLE ledger_log;");
    let (status, body) =
        t.call("POST", "/api/v1/holds", Some(json!({ "listing": "x", "check_in": day(1), "check_out": day(2) }))).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    tokio::time::timeout(std::time::Duration::from_secs(5), t.node.writer_stopped()).await.expect("the writer stops");
    // Reads refuse state that may never have been committed.
    let (status, body) = t.call("GET", "/api/v1/listings", None).await;
    assert_error(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "internal");
}
