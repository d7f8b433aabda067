//! A node behind its HTTP API, with a real writer and database in a
//! temporary directory. Requests go through `router(node).oneshot(...)`:
//! no socket needed.

mod ari_batch;
mod bad_input;
mod booking;
mod concurrency;
mod durability;
mod flow;
mod group;
mod mail;
mod network;
mod pages;
mod replication;
mod security;
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
    pub async fn start() -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        crate::init_node(dir.path());
        let node =
            Node::open(dir.path(), NodeOptions { publish_interval_ms: 5, ..NodeOptions::default() }).await.unwrap();
        TestNode { dir, node }
    }

    pub async fn reopen(self) -> TestNode {
        let TestNode { dir, node } = self;
        node.shutdown().await;
        let node =
            Node::open(dir.path(), NodeOptions { publish_interval_ms: 5, ..NodeOptions::default() }).await.unwrap();
        TestNode { dir, node }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, path, body, &[]).await
    }

    /// The node's metrics, as Prometheus reads them.
    pub async fn metrics(&self) -> String {
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = caravan_api::router(self.node.app_state()).oneshot(request).await.unwrap();
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    /// Sends a request as the node's admin, unless `headers` name another
    /// `authorization`.
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

    /// Sends `request`, as the node's admin unless it carries its own
    /// `authorization` (`anonymous` for none at all).
    pub async fn send(&self, mut request: Request<Body>) -> (StatusCode, Value) {
        let headers = request.headers_mut();
        match headers.get("authorization").map(|v| v.as_bytes()) {
            None => {
                headers.insert("authorization", admin_bearer().parse().unwrap());
            }
            Some(b"anonymous") => {
                headers.remove("authorization");
            }
            Some(_) => {}
        }
        let (method, path) = (request.method().clone(), request.uri().to_string());
        let response = caravan_api::router(self.node.app_state()).oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(format!("{bytes:?}")))
        };
        // Every answer a test sees must be one the OpenAPI document states.
        if let Err(departure) = caravan_api::conformance::check(&method, &path, status, content_type.as_deref(), &json)
        {
            panic!("{departure}");
        }
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

/// The API token of every test node's admin (`admin@example.org`).
pub fn admin_token() -> caravan_accounts::token::Secret {
    caravan_accounts::token::Secret::from_bytes([7; 32])
}

/// The `authorization` header value of the admin.
/// A POST of `body` as the admin, with an Idempotency-Key: for tests that
/// send many requests at once through a router of their own.
pub fn admin_post(uri: &str, key: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .header("authorization", admin_bearer())
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn admin_bearer() -> String {
    format!("Bearer {}", admin_token().reveal())
}

/// Initializes a node's data directory with an admin holding [`admin_token`].
pub fn init_node(dir: &std::path::Path) {
    caravan_node::init(dir).unwrap();
    let conn = caravan_store::open_writer(&dir.join(caravan_store::DB_FILE)).unwrap();
    let now = caravan_model::Timestamp(0);
    caravan_services::accounts::rules::install_admin_token(&conn, "admin@example.org", &admin_token(), "tests", now)
        .unwrap();
}

/// Rooms left on `night` in the first availability a node's catalog holds.
pub fn available_on(node: &Node, night: caravan_model::Date) -> Option<u32> {
    use caravan_api::CatalogService;
    let keys: Vec<_> = node.read_catalog(|catalog| catalog.index.saved().map(|(_, o, e)| (*o, e.key)).collect());
    let runs = keys.iter().find_map(|(origin, key)| node.runs(origin, key))?;
    caravan_model::AriRun::find(&runs, night).map(|day| day.available)
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
