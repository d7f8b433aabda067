//! Who may do what over `/api/v1`: writes need an API token, services are
//! changed only by those who manage them, bookings are seen only by those
//! who made them.

use super::*;
use caravan_accounts::Role;

/// A new account with `role` and an API token; its `authorization` value.
async fn account(t: &TestNode, email: &str, role: Role) -> String {
    let email = email.to_owned();
    let token = t
        .node
        .write(move |conn| -> Result<_, caravan_services::accounts::rules::AccountsError> {
            let now = caravan_model::Timestamp(0);
            caravan_services::accounts::rules::add_user(conn, &email, "a long enough phrase", role, true, now)?;
            caravan_services::accounts::rules::issue_api_token(conn, &email, "tests", now)
        })
        .await
        .unwrap();
    format!("Bearer {}", token.reveal())
}

#[tokio::test]
async fn writes_need_a_live_token() {
    let t = TestNode::start().await;
    let anonymous = [("authorization", "anonymous")];
    let (status, body) = t.call_with("POST", "/api/v1/listings", Some(hotel_json(2)), &anonymous).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = format!("Bearer {}", "ab".repeat(32));
    let (status, body) =
        t.call_with("POST", "/api/v1/listings", Some(hotel_json(2)), &[("authorization", &forged)]).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) =
        t.call_with("POST", "/api/v1/listings", Some(hotel_json(2)), &[("authorization", "Basic x")]).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    // Public reads need nothing.
    assert_eq!(t.call_with("GET", "/api/v1/listings", None, &anonymous).await.0, StatusCode::OK);
    assert_eq!(t.call_with("GET", "/api/v1/status", None, &anonymous).await.0, StatusCode::OK);
    // Personal data does.
    let (status, body) = t.call_with("GET", "/api/v1/sales", None, &anonymous).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = t.call_with("GET", "/api/v1/bookings", None, &anonymous).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn providers_touch_only_the_services_they_manage() {
    let t = TestNode::start().await;
    let traveller = account(&t, "tom@example.org", Role::Traveller).await;
    let (alice, bob) =
        (account(&t, "alice@example.org", Role::Provider).await, account(&t, "bob@example.org", Role::Provider).await);
    let call = |method: &'static str, path: String, body: Option<Value>, who: String| {
        let t = &t;
        async move { t.call_with(method, &path, body, &[("authorization", who.as_str())]).await }
    };

    let (status, body) = call("POST", "/api/v1/listings".into(), Some(hotel_json(2)), traveller.clone()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, listing) = call("POST", "/api/v1/listings".into(), Some(hotel_json(2)), alice.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{listing}");
    let id = listing["id"].as_str().unwrap().to_owned();
    let ari = json!({ "from": day(1), "to": day(5), "available": 2, "price_minor": 10_000 });
    let path = format!("/api/v1/listings/{id}/ari");
    assert_eq!(call("PUT", path.clone(), Some(ari.clone()), alice.clone()).await.0, StatusCode::OK);
    let (status, body) = call("PUT", path.clone(), Some(ari.clone()), bob.clone()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = call("DELETE", format!("/api/v1/listings/{id}"), None, bob.clone()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    // In a batch, Bob's change to Alice's room is refused on its own line.
    let batch = json!({ "updates": [{ "listing": id, "from": day(1), "to": day(2), "price_minor": 1 }] });
    let (status, results) = call("POST", "/api/v1/ari".into(), Some(batch), bob.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results["results"][0]["error"], "forbidden", "{results}");

    // Alice's front desk holds and sells; Bob sees none of it.
    let (status, hold) = call("POST", "/api/v1/holds".into(), Some(stay_hold(&id, 1, 2, 1)), alice.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let hold_id = hold["id"].as_u64().unwrap();
    let (status, body) = call("POST", format!("/api/v1/holds/{hold_id}/confirm"), None, bob.clone()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(call("POST", format!("/api/v1/holds/{hold_id}/confirm"), None, alice.clone()).await.0, StatusCode::OK);
    let (_, sales) = call("GET", "/api/v1/sales".into(), None, alice.clone()).await;
    assert_eq!(sales["bookings"].as_array().unwrap().len(), 1);
    let (_, sales) = call("GET", "/api/v1/sales".into(), None, bob.clone()).await;
    assert!(sales["bookings"].as_array().unwrap().is_empty(), "{sales}");
    let (status, body) = call("GET", "/api/v1/sales".into(), None, traveller).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    // The admin may do all of it.
    assert_eq!(t.call("PUT", &path, Some(ari)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn travellers_see_only_their_own_bookings() {
    let t = TestNode::start().await;
    let id = t.hotel(4).await;
    let origin = t.node.origin().to_hex();
    let (ann, ben) =
        (account(&t, "ann@example.org", Role::Traveller).await, account(&t, "ben@example.org", Role::Traveller).await);
    let booking = json!({
        "traveller": { "name": "Ann", "email": "ann@example.org" },
        "parts": [{ "origin": origin, "listing": id, "check_in": day(2), "check_out": day(3) }]
    });
    let (status, booked) = t.call_with("POST", "/api/v1/bookings", Some(booking), &[("authorization", &ann)]).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let path = format!("/api/v1/bookings/{}", booked["id"]);
    assert_eq!(t.call_with("GET", &path, None, &[("authorization", &ann)]).await.0, StatusCode::OK);
    let (status, body) = t.call_with("GET", &path, None, &[("authorization", &ben)]).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = t.call_with("POST", &format!("{path}/cancel"), None, &[("authorization", &ben)]).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = t.call_with("GET", "/api/v1/bookings", None, &[("authorization", &ben)]).await;
    assert!(list["bookings"].as_array().unwrap().is_empty(), "{list}");
    let (_, list) = t.call("GET", "/api/v1/bookings", None).await;
    assert_eq!(list["bookings"].as_array().unwrap().len(), 1, "the admin sees every booking");
}
