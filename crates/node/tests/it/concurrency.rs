//! Many clients at once against the last units.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_holds_on_five_units_grant_exactly_five() {
    let t = TestNode::start().await;
    let id = t.hotel(5).await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..50 {
        let request = crate::admin_post("/api/v1/holds", &format!("client-{client}"), &stay_hold(&id, 3, 5, 1));
        let app = caravan_api::router(t.node.app_state());
        clients.spawn(async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body: Value =
                serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
            (status, body)
        });
    }
    let (mut granted, mut sold_out) = (0, 0);
    while let Some(result) = clients.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            StatusCode::CREATED => granted += 1,
            StatusCode::CONFLICT => {
                assert_error(status, &body, StatusCode::CONFLICT, "sold_out");
                assert!(body["message"].as_str().unwrap().contains("sold out"), "{body}");
                sold_out += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((granted, sold_out), (5, 45));
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(3), day(5)), None).await;
    for night in ari["days"].as_array().unwrap() {
        assert_eq!((night["held"].as_u64(), night["available"].as_u64()), (Some(5), Some(0)), "{night}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_confirms_and_cancels_resolve_each_hold_once() {
    let t = TestNode::start().await;
    let id = t.hotel(10).await;
    let mut holds = Vec::new();
    for _ in 0..10 {
        let (_, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 2, 1))).await;
        holds.push(hold["id"].as_u64().unwrap());
    }
    let mut racers = tokio::task::JoinSet::new();
    for &hold in &holds {
        for action in ["confirm", "cancel", "confirm", "cancel"] {
            let app = caravan_api::router(t.node.app_state());
            let request = Request::builder()
                .method("POST")
                .uri(format!("/api/v1/holds/{hold}/{action}"))
                .header("authorization", crate::admin_bearer())
                .body(Body::empty())
                .unwrap();
            racers.spawn(async move { (hold, app.oneshot(request).await.unwrap().status()) });
        }
    }
    let mut winners = std::collections::BTreeMap::new();
    while let Some(result) = racers.join_next().await {
        let (hold, status) = result.unwrap();
        if status == StatusCode::OK {
            *winners.entry(hold).or_insert(0) += 1;
        } else {
            assert_eq!(status, StatusCode::CONFLICT);
        }
    }
    // A confirm may be followed by a cancel of the booking; never two confirms.
    for &hold in &holds {
        let (_, view) = t.call("GET", &format!("/api/v1/holds/{hold}"), None).await;
        let expected = if view["state"] == "booking_cancelled" { 2 } else { 1 };
        assert_eq!(winners.get(&hold), Some(&expected), "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_that_arrive_together_share_log_entries_and_each_gets_its_own_answer() {
    let t = TestNode::start().await;
    let id = t.hotel(150).await;
    let commits_before = t.node.log_commits();
    let app = caravan_api::router(t.node.app_state());
    // Built first and let go at once: they arrive together.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..200 {
        let (app, start) = (app.clone(), start.clone());
        let request = crate::admin_post("/api/v1/holds", &format!("client-{client}"), &stay_hold(&id, 2, 3, 1));
        clients.spawn(async move {
            start.wait().await;
            app.oneshot(request).await.unwrap().status()
        });
    }
    let (mut granted, mut sold_out) = (0, 0);
    while let Some(status) = clients.join_next().await {
        match status.unwrap() {
            StatusCode::CREATED => granted += 1,
            StatusCode::CONFLICT => sold_out += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((granted, sold_out), (150, 50));
    let commits = t.node.log_commits() - commits_before;
    assert!(commits * 4 <= 200, "200 holds took {commits} log commits: they were not batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_holds_answers_each_hold_in_its_order_and_a_retry_gets_the_same_answers() {
    let t = TestNode::start().await;
    let id = t.hotel(2).await;
    let item = |key: &str, night: i32| {
        let mut hold = stay_hold(&id, night, night + 1, 1);
        hold["idempotency_key"] = json!(key);
        hold
    };
    let mut unknown = item("d", 1);
    unknown["listing"] = json!("no-such-room");
    let batch = json!([item("a", 1), item("b", 1), item("c", 1), unknown, item("e", 2)]);
    let commits_before = t.node.log_commits();
    let (status, body) = t.call("POST", "/api/v1/holds", Some(batch.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<u64> =
        body["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 409, 404, 201], "{body}");
    assert_eq!(body["results"][2]["error"], "sold_out");
    assert_eq!(body["results"][4]["hold"]["check_in"], day(2));
    assert!(t.node.log_commits() - commits_before <= 2, "one batch, one entry (and perhaps a publishing point)");

    let (status, again) = t.call("POST", "/api/v1/holds", Some(batch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["results"], body["results"], "each hold's first answer, held once");
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(1), day(3)), None).await;
    assert_eq!(ari["days"][0]["held"], 2, "{ari}");
}

#[tokio::test]
async fn a_batch_of_holds_is_refused_whole_when_its_shape_is_wrong() {
    let t = TestNode::start().await;
    let id = t.hotel(2).await;
    let (status, body) = t.call("POST", "/api/v1/holds", Some(json!([]))).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let too_many = json!(vec![stay_hold(&id, 1, 2, 1); caravan_ledger::BATCH_COMMANDS_MAX + 1]);
    let (status, body) = t.call("POST", "/api/v1/holds", Some(too_many)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (status, body) =
        t.call_with("POST", "/api/v1/holds", Some(json!([stay_hold(&id, 1, 2, 1)])), &[("idempotency-key", "k")]).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(body["message"].as_str().unwrap().contains("idempotency_key"), "{body}");
    let mut stray = stay_hold(&id, 1, 2, 1);
    stray["colour"] = json!("blue");
    let (status, body) = t.call("POST", "/api/v1/holds", Some(json!([stray]))).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(body["message"].as_str().unwrap().contains("colour"), "{body}");
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(1), day(2)), None).await;
    assert_eq!(ari["days"][0]["held"], 0, "nothing held: {ari}");
}
