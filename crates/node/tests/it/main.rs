//! A node behind its HTTP API, with a real writer and database in a
//! temporary directory. Requests go through `router(node).oneshot(...)`:
//! no socket needed.

mod ari_batch;
mod bad_input;
mod booking;
mod concurrency;
mod durability;
mod flow;
mod network;
mod replication;
mod storage_failure;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use caravan_node::{Node, NodeOptions};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Debug)]
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub node: Node,
}

impl TestNode {
    pub fn start() -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        caravan_node::init(dir.path()).unwrap();
        let node = Node::open(dir.path(), NodeOptions { publish_interval_ms: 5, ..NodeOptions::default() }).unwrap();
        TestNode { dir, node }
    }

    pub async fn reopen(self) -> TestNode {
        let TestNode { dir, node } = self;
        node.shutdown().await;
        let node = Node::open(dir.path(), NodeOptions { publish_interval_ms: 5, ..NodeOptions::default() }).unwrap();
        TestNode { dir, node }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = caravan_api::router(self.node.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(format!("{bytes:?}")))
        };
        (status, json)
    }

    /// Creates a hotel room type with `units` units, open from tomorrow for
    /// 30 nights at 100.00 EUR; returns its id.
    pub async fn hotel(&self, units: u32) -> String {
        let (status, listing) = self.call("POST", "/api/v1/listings", Some(hotel_json(units))).await;
        assert_eq!(status, StatusCode::CREATED, "{listing}");
        let id = listing["id"].as_str().unwrap().to_owned();
        let ari = json!({ "from": day(1), "to": day(31), "available": units, "price_minor": 10_000 });
        let (status, body) = self.call("PUT", &format!("/api/v1/listings/{id}/ari"), Some(ari)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }
}

pub fn hotel_json(units: u32) -> Value {
    json!({
        "title": "Hôtel du Lac — Double",
        "description": "Lake view",
        "currency": "EUR",
        "cancellation": { "free_until_hours": 48, "penalty_nights": 1 },
        "stay": {
            "type": "hotel_room", "address": "1 Quai du Lac", "city": "Annecy", "country": "FR",
            "lat": 45.899, "lon": 6.129, "amenities": ["wifi", "breakfast"], "max_guests": 2,
            "check_in": "15:00", "check_out": "11:00", "units": units
        }
    })
}

/// The date `offset` days from today, as the API writes it.
pub fn day(offset: i32) -> String {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    caravan_model::Timestamp(now_ms).date().add_days(offset).to_string()
}

pub fn stay_hold(listing: &str, from: i32, to: i32, units: u32) -> Value {
    json!({ "listing": listing, "check_in": day(from), "check_out": day(to), "units": units, "guests": 1 })
}

/// Every error body has exactly a code and a message.
pub fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, expected_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"], expected_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}
