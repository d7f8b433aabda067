//! The owner's replica group as an operator sees it: a node is a group of
//! one that leads itself, its ledger survives restarts through the Raft
//! log and snapshot, and the heartbeat and election timeout are set for
//! the whole group (validated) and taken at the next start.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_node_is_a_group_of_one_that_leads_and_keeps_its_ledger_across_restarts() {
    let t = TestNode::start().await;
    let id = t.hotel(5).await;
    let (status, group) = t.call("GET", "/api/v1/group", None).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["role"], "leader", "{group}");
    assert_eq!(group["leader"], group["member_id"], "{group}");
    assert_eq!(group["members"].as_array().map(Vec::len), Some(1), "{group}");
    let applied = group["applied_index"].as_u64().unwrap();
    assert!(applied >= 3, "membership, listing and its days are in the log: {group}");
    let (status, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 3, 2))).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");

    let t = t.reopen().await;
    let (_, again) = t.call("GET", "/api/v1/group", None).await;
    assert_eq!(again["member_id"], group["member_id"], "a member keeps its id");
    assert_eq!(again["role"], "leader", "{again}");
    let (status, kept) = t.call("GET", &format!("/api/v1/holds/{}", hold["id"]), None).await;
    assert_eq!((status, &kept["state"]), (StatusCode::OK, &hold["state"]), "{kept}");
}

#[tokio::test(flavor = "multi_thread")]
async fn group_timers_are_validated_agreed_through_the_log_and_taken_at_the_next_start() {
    let t = TestNode::start().await;
    let hasty = json!({ "heartbeat_ms": 200, "election_timeout_ms": 1_000 });
    let (status, body) = t.call("PUT", "/api/v1/group/timers", Some(hasty)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(body["message"].as_str().unwrap().contains("10× the heartbeat"), "{body}");
    let typo = json!({ "heartbeat": 50 });
    let (status, _) = t.call("PUT", "/api/v1/group/timers", Some(typo)).await;
    assert!(status.is_client_error());

    let sane = json!({ "heartbeat_ms": 50, "election_timeout_ms": 800 });
    let (status, group) = t.call("PUT", "/api/v1/group/timers", Some(sane)).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!((group["agreed_heartbeat_ms"].as_u64(), group["heartbeat_ms"].as_u64()), (Some(50), Some(100)));
    let traveller = json!({ "heartbeat_ms": 50, "election_timeout_ms": 800 });
    let (status, _) =
        t.call_with("PUT", "/api/v1/group/timers", Some(traveller), &[("authorization", "anonymous")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let t = t.reopen().await;
    let (_, group) = t.call("GET", "/api/v1/group", None).await;
    assert_eq!((group["heartbeat_ms"].as_u64(), group["election_timeout_ms"].as_u64()), (Some(50), Some(800)));
    assert_eq!(group["agreed_heartbeat_ms"], Value::Null, "nothing left to take: {group}");
}
