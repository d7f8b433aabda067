//! A hotel's whole day through the API.

use super::*;
use caravan_records::{decode_signed, verify, Kind};

#[tokio::test(flavor = "multi_thread")]
async fn create_price_hold_confirm_cancel_and_export() {
    let t = TestNode::start().await;
    let id = t.hotel(5).await;

    let (status, listings) = t.call("GET", "/api/v1/listings", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listings["listings"][0]["stay"]["city"], "Annecy");

    let mut update = hotel_json(5);
    update["title"] = json!("Hôtel du Lac — Double Deluxe");
    let (status, updated) = t.call("PUT", &format!("/api/v1/listings/{id}"), Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["title"], "Hôtel du Lac — Double Deluxe");

    let weekend = json!({ "from": day(5), "to": day(7), "price_minor": 15_000, "min_stay": 2 });
    assert_eq!(t.call("PUT", &format!("/api/v1/listings/{id}/ari"), Some(weekend)).await.0, StatusCode::OK);

    let (status, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 4, 7, 2))).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["state"], "held");
    assert_eq!(hold["total"]["amount_minor"], 2 * (10_000 + 15_000 + 15_000));
    assert_eq!(hold["total"]["display"], "800.00 EUR");
    let hold_id = hold["id"].as_u64().unwrap();

    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(4), day(8)), None).await;
    let available: Vec<u64> =
        ari["days"].as_array().unwrap().iter().map(|d| d["available"].as_u64().unwrap()).collect();
    assert_eq!(available, vec![3, 3, 3, 5]);

    let (status, booking) = t.call("POST", &format!("/api/v1/holds/{hold_id}/confirm"), None).await;
    assert_eq!(status, StatusCode::OK, "{booking}");
    assert_eq!(booking["state"], "confirmed");
    let (_, bookings) = t.call("GET", "/api/v1/sales?state=confirmed", None).await;
    assert_eq!(bookings["bookings"].as_array().unwrap().len(), 1);
    assert_eq!(t.call("GET", &format!("/api/v1/sales/{hold_id}"), None).await.0, StatusCode::OK);

    // Four days ahead with 48 hours free: free of charge.
    let (status, cancelled) = t.call("POST", &format!("/api/v1/sales/{hold_id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "booking_cancelled");
    assert_eq!(cancelled["cancellation_penalty"]["amount_minor"], 0);
    let (status, again) = t.call("POST", &format!("/api/v1/sales/{hold_id}/cancel"), None).await;
    assert_error(status, &again, StatusCode::CONFLICT, "hold_not_live");

    let (status, withdrawn) = t.call("DELETE", &format!("/api/v1/listings/{id}"), None).await;
    assert_eq!((status, withdrawn["withdrawn"].as_bool()), (StatusCode::OK, Some(true)));

    // The node publishes on its interval; wait for the withdrawal record.
    let mut records = Value::Null;
    for _ in 0..200 {
        records = t.call("GET", "/api/v1/records?limit=100", None).await.1;
        if records["records"].as_array().unwrap().iter().any(|r| r["kind"] == "withdrawal") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "a withdrawal replaces the listing's records: {records:?}");
    let signed = hex::decode(records[0]["signed_hex"].as_str().unwrap()).unwrap();
    let record = verify(decode_signed(&signed).unwrap(), caravan_model::Timestamp(i64::MAX / 2)).unwrap();
    assert_eq!((record.kind, record.key.as_str()), (Kind::Withdrawal, id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn availability_records_follow_holds() {
    let t = TestNode::start().await;
    let id = t.hotel(3).await;
    t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 2, 3, 2))).await;
    let mut left_on_day_2 = None;
    for _ in 0..200 {
        let (_, page) = t.call("GET", "/api/v1/records", None).await;
        for r in page["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "ari") {
            let bytes = hex::decode(r["signed_hex"].as_str().unwrap()).unwrap();
            let record = verify(decode_signed(&bytes).unwrap(), caravan_model::Timestamp(i64::MAX / 2)).unwrap();
            if let caravan_records::Payload::Ari(runs) = &record.payload {
                let date = caravan_model::Date::parse(&day(2)).unwrap();
                left_on_day_2 = caravan_model::AriRun::find(runs, date).map(|d| d.available);
            }
        }
        if left_on_day_2 == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(left_on_day_2, Some(1), "the published ARI shows 3 - 2 held");
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_over_http() {
    let t = TestNode::start().await;
    let id = t.hotel(5).await;
    let key = [("idempotency-key", "agency-7/booking-42")];
    let (s1, first) = t.call_with("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 2, 1)), &key).await;
    let (s2, retry) = t.call_with("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 2, 1)), &key).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, retry);
    let (status, body) = t.call_with("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 2, 2)), &key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(1), day(2)), None).await;
    assert_eq!(ari["days"][0]["held"], 1, "one hold, however many retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn trips_sell_named_seats_once() {
    let t = TestNode::start().await;
    let trip = json!({
        "title": "Lyon → Turin night bus", "currency": "EUR",
        "cancellation": { "free_until_hours": 24, "penalty_percent": 50 },
        "trip": {
            "mode": "bus", "operator": "Alpine Lines", "service_number": "AL 12", "seats": 3,
            "seat_map": ["1A", "1B", "2A"],
            "stops": [
                { "code": "LYS", "name": "Lyon Perrache", "departure": "22:30", "utc_offset_min": 60 },
                { "code": "TRN", "name": "Torino Porta Nuova", "arrival": "05:10", "arrival_day": 1, "utc_offset_min": 60 }
            ]
        }
    });
    let (status, listing) = t.call("POST", "/api/v1/listings", Some(trip)).await;
    assert_eq!(status, StatusCode::CREATED, "{listing}");
    let id = listing["id"].as_str().unwrap();
    let ari = json!({ "from": day(3), "to": day(4), "available": 3, "price_minor": 3_900 });
    assert_eq!(t.call("PUT", &format!("/api/v1/listings/{id}/ari"), Some(ari)).await.0, StatusCode::OK);
    let seats = |names: &[&str]| json!({ "listing": id, "departure": day(3), "seat_numbers": names });
    let (status, hold) = t.call("POST", "/api/v1/holds", Some(seats(&["1A", "1B"]))).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["total"]["amount_minor"], 7_800);
    let (status, body) = t.call("POST", "/api/v1/holds", Some(seats(&["1B"]))).await;
    assert_error(status, &body, StatusCode::CONFLICT, "seat_taken");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_is_routed() {
    let t = TestNode::start().await;
    let (status, doc) = t.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in
            item.as_object().unwrap().keys().filter(|key| ["get", "put", "post", "delete"].contains(&key.as_str()))
        {
            let concrete = path.replace("{id}", "999");
            let (status, body) = t.call(&method.to_uppercase(), &concrete, None).await;
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || body["message"].as_str().is_some_and(|m| m.starts_with("no such endpoint"));
            assert!(!unrouted, "{method} {path} is documented but not routed: {status} {body}");
            operations += 1;
        }
    }
    assert!(operations >= 35, "only {operations} operations documented");
    let required = |path: &str| doc["paths"][path]["post"]["requestBody"]["required"].as_bool();
    assert_eq!(required("/api/v1/bookings"), Some(true));
    // Not required is OpenAPI's default: the field may be left out.
    assert_ne!(required("/api/v1/bookings/{id}/confirm"), Some(true), "who travels may be left out");
    assert!(doc["paths"]["/api/v1/bookings/{id}/confirm"]["post"]["requestBody"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn publishing_points_are_bounded() {
    let t = TestNode::start().await;
    let n = caravan_ledger::PUBLISHED_LISTINGS_MAX + 44;
    let mut creates = tokio::task::JoinSet::new();
    for idx in 0..n {
        let node = t.node.clone();
        creates.spawn(async move { node.submit(caravan_ledger::Command::CreateListing(room(idx))).await });
    }
    while let Some(created) = creates.join_next().await {
        created.unwrap().unwrap();
    }
    let mut versions = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let records = caravan_api::LedgerService::own_records(&t.node, 0, 5_000).await.unwrap();
        versions = records.iter().map(|r| r.version).collect();
        if records.len() == 2 * n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(versions.len() >= 2, "{n} listings published at {} point(s)", versions.len());
    let stats = t.node.stats();
    let points = stats.publishing_points.load(std::sync::atomic::Ordering::Relaxed);
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    assert!(points <= commits, "{points} publishing points in {commits} commits");
}

fn room(idx: usize) -> caravan_model::Listing {
    caravan_test_utils::stay(&format!("room-{idx:04}"), "Annecy", 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_read_can_be_written_back_and_listings_page() {
    let t = TestNode::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(t.hotel(2).await);
    }
    ids.sort();
    let (_, mut listing) = t.call("GET", &format!("/api/v1/listings/{}", ids[0]), None).await;
    listing["description"] = json!("Renovated in 2026");
    let (status, updated) = t.call("PUT", &format!("/api/v1/listings/{}", ids[0]), Some(listing.clone())).await;
    assert_eq!((status, updated["description"].as_str()), (StatusCode::OK, Some("Renovated in 2026")), "{updated}");
    listing["withdrawn"] = json!(true);
    let (status, body) = t.call("PUT", &format!("/api/v1/listings/{}", ids[0]), Some(listing)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    let (_, page) = t.call("GET", "/api/v1/listings?limit=2", None).await;
    let first: Vec<&str> = page["listings"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(first, [ids[0].as_str(), ids[1].as_str()]);
    let after = page["next_after_id"].as_str().unwrap();
    let (_, rest) = t.call("GET", &format!("/api/v1/listings?limit=2&after_id={after}"), None).await;
    assert_eq!(rest["listings"][0]["id"], ids[2]);
    assert_eq!(rest["next_after_id"], Value::Null);

    let (_, doc) = t.call("GET", "/api/v1/openapi.json", None).await;
    assert!(doc["components"]["schemas"]["ListingInput"]["properties"]["withdrawn"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_names_its_time_zone_and_an_older_client_its_offset() {
    let t = TestNode::start().await;
    let mut named = hotel_json(1);
    (named["id"], named["stay"]["time_zone"]) = (json!("named-zone"), json!("europe/paris"));
    let (status, view) = t.call("POST", "/api/v1/listings", Some(named)).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["stay"]["time_zone"], "Europe/Paris", "as the time zone database spells it");
    assert!(view["stay"].get("utc_offset_min").is_none(), "{view}");

    let mut fixed = hotel_json(1);
    (fixed["id"], fixed["stay"]["utc_offset_min"]) = (json!("fixed-offset"), json!(-300));
    let (status, view) = t.call("POST", "/api/v1/listings", Some(fixed)).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["stay"]["utc_offset_min"], -300);
    assert!(view["stay"].get("time_zone").is_none(), "{view}");

    // What a client reads, it can send back unchanged.
    let (_, read) = t.call("GET", "/api/v1/listings/named-zone", None).await;
    let (status, again) = t.call("PUT", "/api/v1/listings/named-zone", Some(read)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
}
