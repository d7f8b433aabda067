//! Who is to blame decides the status: the client's mistakes are 4xx with
//! their code, our failures a generic 5xx whose cause stays in the log.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::fakes;

/// Sends `request` and checks the answer against the OpenAPI document.
async fn send(state: caravan_api::AppState, request: Request<Body>) -> (StatusCode, String) {
    let (method, path) = (request.method().clone(), request.uri().to_string());
    let response = caravan_api::router(state).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if let Err(departure) = caravan_api::conformance::check(&method, &path, status, content_type.as_deref(), &json) {
        panic!("{departure}");
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn registration() -> Request<Body> {
    let csrf = "0123456789abcdef0123456789abcdef";
    Request::post("/register")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("caravan_csrf={csrf}"))
        .body(Body::from(format!("email=ada%40example.org&password=a+long+enough+phrase&csrf={csrf}")))
        .unwrap()
}

#[tokio::test]
async fn a_storage_failure_during_registration_is_a_5xx_not_a_4xx() {
    let (status, page) = send(fakes::broken_accounts(), registration()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{page}");
    assert!(page.contains("try again later"), "the person is told it is not their fault: {page}");
    assert!(!page.contains("disk I/O"), "the cause stays in the operator's log: {page}");
}

#[tokio::test]
async fn the_same_registration_on_working_storage_succeeds() {
    let (status, page) = send(fakes::empty(), registration()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Check your mail"), "{page}");
}

#[tokio::test]
async fn a_storage_failure_while_checking_a_token_is_a_500_with_a_generic_message() {
    let request = Request::post("/api/v1/listings")
        .header(header::AUTHORIZATION, format!("Bearer {}", "ab".repeat(32)))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, body) = send(fakes::broken_accounts(), request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "internal");
    assert!(!body["message"].as_str().unwrap().contains("disk"), "{body}");
}

#[tokio::test]
async fn an_unknown_token_is_a_401_and_an_unknown_listing_a_404() {
    let request = Request::post("/api/v1/listings")
        .header(header::AUTHORIZATION, format!("Bearer {}", "ab".repeat(32)))
        .body(Body::from("{}"))
        .unwrap();
    let (status, _) = send(fakes::empty(), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) =
        send(fakes::empty(), Request::get("/api/v1/listings/nowhere").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

fn bearer(path: &str) -> Request<Body> {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {}", "ab".repeat(32))).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn operator_endpoints_are_for_admins_only() {
    use caravan_accounts::Role;
    for path in ["/api/v1/peers", "/api/v1/group", "/api/v1/origins"] {
        let (status, body) = send(fakes::called_by(Role::Provider), bearer(path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body.contains("forbidden"), "{body}");
        let (status, body) = send(fakes::called_by(Role::Admin), bearer(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_fault_hook_is_not_found_when_switched_off() {
    let request = Request::put("/api/v1/group/partition")
        .header(header::AUTHORIZATION, format!("Bearer {}", "ab".repeat(32)))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"cut_off": []}"#))
        .unwrap();
    let (status, body) = send(fakes::called_by(caravan_accounts::Role::Admin), request).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("fault hooks are off"), "{body}");
}

#[tokio::test]
async fn a_booking_with_an_unknown_field_is_refused_like_a_hold() {
    let post = |body: serde_json::Value| {
        Request::post("/api/v1/bookings")
            .header(header::AUTHORIZATION, format!("Bearer {}", "ab".repeat(32)))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let part = serde_json::json!({
        "origin": "07".repeat(32), "listing": "room", "check_in": "2027-03-10", "check_out": "2027-03-12"
    });
    let traveller = serde_json::json!({ "name": "Ada Lovelace", "email": "ada@example.org" });
    let mut in_body = serde_json::json!({ "traveller": traveller, "parts": [part.clone()], "coupon": "FREE" });
    let (status, body) = send(fakes::called_by(caravan_accounts::Role::Traveller), post(in_body.take())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("coupon"), "the unknown field is named: {body}");
    let mut odd_part = part;
    odd_part["nights"] = serde_json::json!(2);
    let in_part = serde_json::json!({ "traveller": traveller, "parts": [odd_part] });
    let (status, body) = send(fakes::called_by(caravan_accounts::Role::Traveller), post(in_part)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("nights"), "the unknown field is named: {body}");
}

#[tokio::test]
async fn the_document_states_what_the_handlers_read() {
    let (status, body) = send(fakes::empty(), Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id_type = |path: &str, method: &str| doc["paths"][path][method]["parameters"][0]["schema"]["type"].clone();
    assert_eq!(id_type("/api/v1/holds/{id}", "get"), "integer", "hold ids are numbers");
    assert_eq!(id_type("/api/v1/listings/{id}", "get"), "string", "listing ids are names");
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object());
    let stays = doc["paths"]["/api/v1/search/stays"]["get"]["parameters"].as_array().unwrap();
    assert!(stays.iter().any(|p| p["name"] == "check_in" && p["in"] == "query"), "{stays:?}");
    let states = doc["components"]["schemas"]["BookingView"]["properties"]["state"]["enum"].as_array().cloned();
    assert!(states.unwrap_or_default().contains(&serde_json::json!("held")), "a hold-only booking waits in held");
}
