//! Many clients at once against the last units.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_holds_on_five_units_grant_exactly_five() {
    let t = TestNode::start().await;
    let id = t.hotel(5).await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..50 {
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/holds")
            .header("content-type", "application/json")
            .header("idempotency-key", format!("client-{client}"))
            .header("authorization", crate::admin_bearer())
            .body(Body::from(stay_hold(&id, 3, 5, 1).to_string()))
            .unwrap();
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
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/holds")
            .header("content-type", "application/json")
            .header("idempotency-key", format!("client-{client}"))
            .header("authorization", crate::admin_bearer())
            .body(Body::from(stay_hold(&id, 2, 3, 1).to_string()))
            .unwrap();
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
