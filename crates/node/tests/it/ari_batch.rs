//! `POST /api/v1/ari` (many changes at once) and `GET /api/v1/status`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::{assert_error, day, hotel_json, TestNode};

#[tokio::test]
async fn a_batch_applies_each_change_in_order_and_reports_each_outcome() {
    let node = TestNode::start().await;
    let (status, listing) = node.call("POST", "/api/v1/listings", Some(hotel_json(4))).await;
    assert_eq!(status, StatusCode::CREATED, "{listing}");
    let id = listing["id"].as_str().unwrap();
    let batch = json!({ "updates": [
        // Opening the days must come first: the second change needs terms.
        { "listing": id, "from": day(1), "to": day(11), "available": 4, "price_minor": 9_000 },
        { "listing": id, "from": day(2), "to": day(3), "price_minor": 12_000 },
        { "listing": "no-such-listing", "from": day(1), "to": day(2), "price_minor": 1 },
        { "listing": "Not An Id!", "from": day(1), "to": day(2), "price_minor": 1 },
        { "from": day(1), "to": day(2), "price_minor": 1 },
    ]});
    let (status, body) = node.call("POST", "/api/v1/ari", Some(batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0], json!({ "listing": id, "days_changed": 10 }));
    assert_eq!(results[1], json!({ "listing": id, "days_changed": 1 }));
    assert_eq!(results[2]["error"], "unknown_listing", "{body}");
    assert_eq!(results[3]["error"], "invalid_request", "{body}");
    assert_eq!(results[4]["error"], "invalid_request", "{body}");

    let (_, ari) = node.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(1), day(3)), None).await;
    let prices: Vec<_> = ari["days"].as_array().unwrap().iter().map(|d| d["price_minor"].clone()).collect();
    assert_eq!(prices, [json!(9_000), json!(12_000)]);
}

#[tokio::test]
async fn a_batch_must_hold_one_to_a_thousand_changes() {
    let node = TestNode::start().await;
    let (status, body) = node.call("POST", "/api/v1/ari", Some(json!({ "updates": [] }))).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let update = json!({ "listing": "x", "from": day(1), "to": day(2), "price_minor": 1 });
    let too_many = json!({ "updates": vec![update; 1_001] });
    let (status, body) = node.call("POST", "/api/v1/ari", Some(too_many)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn the_path_and_the_body_must_name_the_same_listing() {
    let node = TestNode::start().await;
    let id = node.hotel(2).await;
    let change = json!({ "listing": "another", "from": day(1), "to": day(2), "price_minor": 5 });
    let (status, body) = node.call("PUT", &format!("/api/v1/listings/{id}/ari"), Some(change)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn status_counts_records_and_gives_the_digest_on_request() {
    let node = TestNode::start().await;
    node.hotel(2).await;
    // Wait for the publishing point (every 5 ms in tests); the counter is
    // bumped just after the commit that readers already see. A point that
    // falls between creating the listing and opening its days publishes
    // the availability twice: two records held, two or three published.
    let mut status = json!(null);
    let published = |status: &Value| status["records_published"].as_u64().unwrap_or(0);
    for _ in 0..1_000 {
        status = node.call("GET", "/api/v1/status", None).await.1;
        if status["records_held"] == 2 && published(&status) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status["records_held"], 2, "{status}");
    assert_eq!(status["catalog_listings"], 1);
    assert!((2..=3).contains(&published(&status)), "{status}");
    assert_eq!(status["peers"], 0);
    assert!(status.get("catalog_digest").is_none());
    let (code, with_digest) = node.call("GET", "/api/v1/status?digest=true", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(with_digest["catalog_digest"].as_str().unwrap().len(), 64, "{with_digest}");
}
