//! Bad input of every kind gets a 4xx JSON error and changes nothing.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_request_gets_a_clear_4xx() {
    let t = TestNode::start().await;
    let id = t.hotel(2).await;
    let listing = |patch: &dyn Fn(&mut Value)| {
        let mut body = hotel_json(1);
        patch(&mut body);
        Some(body)
    };
    let stays =
        |extra: &str| format!("/api/v1/search/stays?city=annecy&check_in={}&check_out={}{extra}", day(1), day(3));
    let mut cases: Vec<(&str, String, Option<Value>, StatusCode, &str)> = Vec::new();
    // Ids that would be paths, and searches out of any sense.
    for id in ["..", ".", ".hidden", "-x"] {
        let invalid = (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        cases.push(("POST", "/api/v1/listings".into(), listing(&|b| b["id"] = json!(id)), invalid.0, invalid.1));
    }
    for extra in ["&guests=0", "&rooms=0", "&limit=0", "&limit=100000", "&price_min_minor=500&price_max_minor=100"] {
        cases.push(("GET", stays(extra), None, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"));
    }
    for extra in ["&seats=0", "&limit=0", "&limit=5000"] {
        let trips = format!("/api/v1/search/trips?from=GVA&to=LYS&date={}{extra}", day(1));
        cases.push(("GET", trips, None, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"));
    }
    cases.extend(vec![
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["currency"] = json!("euro")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["stay"]["country"] = json!("France")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["stay"]["lat"] = json!(123.0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["stay"]["check_in"] = json!("3pm")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["stay"]["time_zone"] = json!("Europe/Atlantis")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| (b["stay"]["time_zone"], b["stay"]["utc_offset_min"]) = (json!("Europe/Paris"), json!(60))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["title"] = json!("x".repeat(201))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["stay"]["units"] = json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["stay"]["units"] = json!(99_999_999_999u64)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["colour"] = json!("blue")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| {
                b["trip"] = json!({ "mode": "bus", "operator": "x", "service_number": "1", "stops": [], "seats": 1 })
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| {
                b["stay"].take();
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        ("POST", "/api/v1/listings".into(), listing(&|b| b["id"] = json!(id)), StatusCode::CONFLICT, "listing_exists"),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["id"] = json!("has spaces")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/listings".into(),
            listing(&|b| b["cancellation"]["penalty_percent"] = json!(10)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        ("GET", "/api/v1/listings/nope".into(), None, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/api/v1/listings/a%20b".into(), None, StatusCode::NOT_FOUND, "not_found"),
        (
            "PUT",
            format!("/api/v1/listings/{id}"),
            listing(&|b| b["id"] = json!("other")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            format!("/api/v1/listings/{id}"),
            listing(&|b| b["currency"] = json!("USD")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            format!("/api/v1/listings/{id}/ari"),
            Some(json!({ "from": day(3), "to": day(1), "available": 1 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            format!("/api/v1/listings/{id}/ari"),
            Some(json!({ "from": "2030-02-30", "to": day(1) })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            format!("/api/v1/listings/{id}/ari"),
            Some(json!({ "from": day(1), "to": day(2), "available": 3 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            format!("/api/v1/listings/{id}/ari"),
            Some(json!({ "from": day(1), "to": day(2), "price_minor": -5 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            format!("/api/v1/listings/{id}/ari"),
            Some(json!({ "from": day(1), "to": day(900), "price_minor": 5 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            format!("/api/v1/listings/{id}/ari"),
            Some(json!({ "from": day(40), "to": day(41), "price_minor": 5 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "PUT",
            "/api/v1/listings/ghost/ari".into(),
            Some(json!({ "from": day(1), "to": day(2), "available": 1, "price_minor": 1 })),
            StatusCode::NOT_FOUND,
            "unknown_listing",
        ),
        (
            "GET",
            format!("/api/v1/listings/{id}/ari?from=yesterday"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        ("POST", "/api/v1/holds".into(), Some(stay_hold(&id, 1, 2, 3)), StatusCode::CONFLICT, "sold_out"),
        ("POST", "/api/v1/holds".into(), Some(stay_hold(&id, 1, 40, 1)), StatusCode::CONFLICT, "not_for_sale"),
        (
            "POST",
            "/api/v1/holds".into(),
            Some(stay_hold(&id, 2, 1, 1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        ("POST", "/api/v1/holds".into(), Some(stay_hold("ghost", 1, 2, 1)), StatusCode::NOT_FOUND, "unknown_listing"),
        (
            "POST",
            "/api/v1/holds".into(),
            Some(json!({ "listing": id, "check_in": day(1), "check_out": day(2), "guests": 5 })),
            StatusCode::CONFLICT,
            "restriction",
        ),
        (
            "POST",
            "/api/v1/holds".into(),
            Some(json!({ "listing": id, "departure": day(1) })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_kind",
        ),
        (
            "POST",
            "/api/v1/holds".into(),
            Some(json!({ "listing": id })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/holds".into(),
            Some(json!({ "listing": id, "check_in": day(1), "check_out": day(2), "hold_seconds": 5 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/holds".into(),
            Some(json!({ "listing": id, "check_in": day(1), "check_out": day(2), "expected_total_minor": 1 })),
            StatusCode::CONFLICT,
            "price_changed",
        ),
        ("POST", "/api/v1/holds".into(), Some(json!([1, 2, 3])), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("GET", "/api/v1/holds/abc".into(), None, StatusCode::BAD_REQUEST, "invalid_path"),
        ("GET", "/api/v1/holds/999".into(), None, StatusCode::NOT_FOUND, "not_found"),
        ("POST", "/api/v1/holds/999/confirm".into(), None, StatusCode::NOT_FOUND, "unknown_hold"),
        ("POST", "/api/v1/holds/18446744073709551616/cancel".into(), None, StatusCode::BAD_REQUEST, "invalid_path"),
        ("GET", "/api/v1/sales/1".into(), None, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/api/v1/sales?state=maybe".into(), None, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("GET", "/api/v1/sales?limit=-1".into(), None, StatusCode::BAD_REQUEST, "invalid_query"),
        ("GET", "/api/v1/records?format=xml".into(), None, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("DELETE", "/api/v1/holds".into(), None, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("GET", "/api/v2/anything".into(), None, StatusCode::NOT_FOUND, "not_found"),
    ]);
    for (method, path, body, status, code) in cases {
        let (got_status, got) = t.call(method, &path, body.clone()).await;
        assert_eq!((got_status, got["error"].as_str()), (status, Some(code)), "{method} {path} {body:?} → {got}");
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: {got}");
    }
    // Nothing above changed the ledger: both units are still free.
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari"), None).await;
    assert!(ari["days"].as_array().unwrap().iter().all(|d| d["available"] == 2), "{ari}");
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_bodies_and_headers() {
    let t = TestNode::start().await;
    let raw = |body: &'static str, content_type: Option<&str>| {
        let mut request = Request::builder().method("POST").uri("/api/v1/listings");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.body(Body::from(body)).unwrap()
    };
    let (status, body) = t.send(raw("{\"title\": ", Some("application/json"))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");
    let (status, body) = t.send(raw("{}", None)).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let (status, body) = t.send(raw("\u{0}\u{1}", Some("application/json"))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");

    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(caravan_api_body_limit() + 1));
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/listings")
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    let (status, body) = t.send(request).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let id = t.hotel(1).await;
    for key in ["", "has space", &"k".repeat(200)] {
        let (status, body) =
            t.call_with("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 2, 1)), &[("idempotency-key", key)]).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
}

fn caravan_api_body_limit() -> usize {
    256 * 1024
}
