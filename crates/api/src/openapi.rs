//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, written out
//! by hand from one table of operations so it stays readable; a test in
//! `caravan-node` checks every operation listed here is routed.

use serde_json::{json, Value};

/// One documented endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The request body's schema, if it takes one.
    pub body: Option<&'static str>,
    /// Whether a request may leave the body out.
    pub body_optional: bool,
    pub status: u16,
    /// The success response's schema.
    pub response: &'static str,
}

impl Operation {
    /// The same operation, its body optional.
    const fn body_optional(self) -> Operation {
        Operation { body_optional: true, ..self }
    }
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    status: u16,
    response: &'static str,
) -> Operation {
    Operation { method, path, summary, body, body_optional: false, status, response }
}

pub const OPERATIONS: &[Operation] = &[
    op("get", "/healthz", "Liveness check", None, 200, "Health"),
    op("get", "/metrics", "Prometheus metrics (text format)", None, 200, "Any"),
    op(
        "get",
        "/api/v1/status",
        "Peers, records held, replication lag (query: digest=true adds the catalog digest)",
        None,
        200,
        "NodeStatus",
    ),
    op(
        "post",
        "/api/v1/ari",
        "Many ARI changes at once (up to 1,000), each applied on its own; results in order",
        Some("AriBatchInput"),
        200,
        "AriBatchResults",
    ),
    op("get", "/api/v1/peers", "Connected peers: address, ping, records in and out (admins)", None, 200, "Any"),
    op("get", "/api/v1/group", "The owner's replica group: members, leader, term, indexes, timers (admins)", None, 200, "GroupView"),
    op(
        "put",
        "/api/v1/group/timers",
        "Set the group's heartbeat and election timeout for every member (admins; election ≥ 10 × heartbeat)",
        Some("GroupTimersInput"),
        200,
        "GroupView",
    ),
    op(
        "post",
        "/api/v1/group/members",
        "Add a node to the replica group: learner until caught up, then voter (admins; any member takes it)",
        Some("GroupMemberInput"),
        200,
        "GroupView",
    ),
    op("delete", "/api/v1/group/members/{id}", "Take a member out of the replica group (admins)", None, 200, "GroupView"),
    op(
        "put",
        "/api/v1/group/partition",
        "Fault tests: drop Raft messages to and from these peers; [] heals (admins; 404 unless [group] fault_hooks)",
        Some("GroupPartitionInput"),
        200,
        "GroupView",
    ),
    op(
        "get",
        "/api/v1/origins",
        "Records held per origin (the 1,000 largest) and equivocation alerts (admins)",
        None,
        200,
        "Any",
    ),
    op("get", "/api/v1/listings", "This owner's listings (query: after_id, limit)", None, 200, "ListingList"),
    op("post", "/api/v1/listings", "Create a stay or trip listing", Some("ListingInput"), 201, "Listing"),
    op("get", "/api/v1/listings/{id}", "One listing", None, 200, "Listing"),
    op(
        "put",
        "/api/v1/listings/{id}",
        "Replace a listing's description (kind and currency stay)",
        Some("ListingInput"),
        200,
        "Listing",
    ),
    op("delete", "/api/v1/listings/{id}", "Withdraw a listing for good; bookings stay valid", None, 200, "Listing"),
    op(
        "put",
        "/api/v1/listings/{id}/paused",
        "Take a listing off sale for now ({\"paused\": true}) or put it back; bookings stay valid",
        Some("PausedInput"),
        200,
        "Listing",
    ),
    op(
        "get",
        "/api/v1/listings/{id}/ari",
        "Availability, rates and inventory per day (query: from, to)",
        None,
        200,
        "Ari",
    ),
    op(
        "put",
        "/api/v1/listings/{id}/ari",
        "Change availability, prices and restrictions over a date range",
        Some("AriInput"),
        200,
        "AriChanged",
    ),
    op(
        "post",
        "/api/v1/holds",
        "Hold units or seats (header Idempotency-Key recommended)",
        Some("HoldInput"),
        201,
        "Hold",
    ),
    op("get", "/api/v1/holds/{id}", "One hold", None, 200, "Hold"),
    op("post", "/api/v1/holds/{id}/confirm", "Turn a live hold into a booking", None, 200, "Hold"),
    op("post", "/api/v1/holds/{id}/cancel", "Release a live hold, or cancel a booking", None, 200, "Hold"),
    op("get", "/api/v1/sales", "What this owner sold (query: listing, state, after_id, limit)", None, 200, "SaleList"),
    op("get", "/api/v1/sales/{id}", "One sale (a confirmed hold)", None, 200, "Hold"),
    op("post", "/api/v1/sales/{id}/cancel", "Cancel a sale; the policy's penalty is in the answer", None, 200, "Hold"),
    op(
        "get",
        "/api/v1/search/stays",
        "Stays for some nights (query: city [country] | lat lon [radius_km]; check_in, check_out, guests, rooms, price_min_minor, price_max_minor, amenities, sort=price|distance, limit)",
        None,
        200,
        "StayOffers",
    ),
    op(
        "get",
        "/api/v1/search/trips",
        "Itineraries from A to B (query: from, to, date, seats, max_connections, sort=arrival|legs|price, limit)",
        None,
        200,
        "Itineraries",
    ),
    op(
        "post",
        "/api/v1/bookings",
        "Book parts at several owners as one: all confirmed or none (201 confirmed, 200 failed, 202 still going)",
        Some("BookingInput"),
        201,
        "Booking",
    ),
    op("get", "/api/v1/bookings", "This agency's bookings, newest first (query: before_id, limit)", None, 200, "BookingList"),
    op("get", "/api/v1/bookings/{id}", "One booking with each part's status and receipt", None, 200, "Booking"),
    op(
        "post",
        "/api/v1/bookings/{id}/confirm",
        "Confirm a booking made with hold_only, before its holds expire; optionally with who travels",
        Some("ConfirmInput"),
        201,
        "Booking",
    )
    .body_optional(),
    op(
        "post",
        "/api/v1/bookings/{id}/cancel",
        "Cancel a confirmed booking at every owner (penalties in the answer), or let a held one go",
        None,
        200,
        "Booking",
    ),
    op(
        "get",
        "/api/v1/records",
        "This node's own signed records (query: after_version, limit, format=json|protobuf)",
        None,
        200,
        "RecordPage",
    ),
    op("get", "/api/v1/openapi.json", "This document", None, 200, "Any"),
];

pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for Operation { method, path, summary, body, body_optional, status, response } in OPERATIONS {
        // Prometheus reads text, not JSON.
        let success = if *path == "/metrics" {
            json!({ "description": "success", "content": { "text/plain": { "schema": { "type": "string" } } } })
        } else {
            json!({ "description": "success", "content": { "application/json": { "schema": schema_ref(response) } } })
        };
        let mut operation = json!({
            "summary": summary,
            "responses": {
                status.to_string(): success,
                "4XX": { "description": "bad input, unknown resource or refused by the ledger (sold out is 409)", "content": { "application/json": { "schema": schema_ref("Error") } } },
                "503": { "description": "the ledger is unavailable; retry with the same Idempotency-Key", "content": { "application/json": { "schema": schema_ref("Error") } } }
            }
        });
        if let Some(body) = body {
            operation["requestBody"] = json!({
                "required": !body_optional,
                "content": { "application/json": { "schema": schema_ref(body) } }
            });
        }
        let method_upper: axum::http::Method = method.to_uppercase().parse().expect("a valid method");
        if !crate::auth::is_public(&method_upper, path) {
            operation["security"] = json!([{ "bearer": [] }]);
        }
        let mut parameters = Vec::new();
        if path.contains("{id}") {
            // Listings are named; holds, sales, bookings and members are numbered.
            let id = if path.starts_with("/api/v1/listings/") {
                json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" })
            } else {
                json!({ "type": "integer", "minimum": 0 })
            };
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": id }));
        }
        parameters.extend(query_parameters(path, method));
        if matches!(*method, "post") && (path.starts_with("/api/v1/holds") || path.starts_with("/api/v1/bookings")) {
            parameters.push(json!({ "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 128 } }));
        }
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Caravan node API",
            "version": "1",
            "description": "An owner's listings, availability, holds and bookings, and its signed records. Errors are {\"error\": code, \"message\": text}."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "an API token from `caravan user token`" } }
        }
    })
}

/// The query parameters an operation reads, as `(name, schema)`.
fn query_parameters(path: &str, method: &str) -> Vec<Value> {
    let string = json!({ "type": "string" });
    let date = json!({ "type": "string", "format": "date" });
    let integer = json!({ "type": "integer", "minimum": 0 });
    let number = json!({ "type": "number" });
    let named: Vec<(&str, Value)> = match (method, path) {
        ("get", "/api/v1/search/stays") => vec![
            ("city", string.clone()),
            ("country", string.clone()),
            ("lat", number.clone()),
            ("lon", number.clone()),
            ("radius_km", number.clone()),
            ("check_in", date.clone()),
            ("check_out", date.clone()),
            ("guests", integer.clone()),
            ("rooms", integer.clone()),
            ("price_min_minor", integer.clone()),
            ("price_max_minor", integer.clone()),
            ("amenities", json!({ "type": "string", "description": "comma-separated; every one is required" })),
            ("sort", json!({ "enum": ["price", "distance"] })),
            ("limit", integer.clone()),
        ],
        ("get", "/api/v1/search/trips") => vec![
            ("from", string.clone()),
            ("to", string.clone()),
            ("date", date.clone()),
            ("seats", integer.clone()),
            ("max_connections", integer.clone()),
            ("sort", json!({ "enum": ["arrival", "legs", "price"] })),
            ("limit", integer.clone()),
        ],
        ("get", "/api/v1/listings") => vec![("after_id", string.clone()), ("limit", integer.clone())],
        ("get", "/api/v1/listings/{id}/ari") => vec![("from", date.clone()), ("to", date.clone())],
        ("get", "/api/v1/status") => vec![("digest", json!({ "type": "boolean" }))],
        _ => Vec::new(),
    };
    named
        .into_iter()
        .map(|(name, schema)| json!({ "name": name, "in": "query", "required": false, "schema": schema }))
        .collect()
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn schemas() -> Value {
    let date = json!({ "type": "string", "format": "date", "example": "2030-06-01" });
    let time = json!({ "type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "example": "15:00" });
    let money = json!({ "type": "object", "properties": {
        "amount_minor": { "type": "integer" }, "currency": { "type": "string" }, "display": { "type": "string" } } });
    json!({
        "Any": {},
        "Health": { "type": "object", "properties": { "status": { "const": "ok" } } },
        "Error": { "type": "object", "required": ["error", "message"], "properties": {
            "error": { "type": "string", "examples": ["sold_out", "invalid_request", "not_found", "hold_expired"] },
            "message": { "type": "string" } } },
        "ListingInput": { "type": "object", "required": ["title", "currency", "cancellation"], "properties": {
            "id": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" },
            "title": { "type": "string", "maxLength": 200 },
            "description": { "type": "string", "maxLength": 4000 },
            "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
            "cancellation": { "type": "object", "required": ["free_until_hours"], "properties": {
                "free_until_hours": { "type": "integer" }, "penalty_percent": { "type": "integer", "maximum": 100 },
                "penalty_nights": { "type": "integer" } } },
            "stay": { "type": "object", "required": ["type", "city", "country", "lat", "lon", "max_guests", "check_in", "check_out", "units"], "properties": {
                "type": { "enum": ["hotel_room", "vacation_rental"] }, "address": { "type": "string" },
                "city": { "type": "string" }, "country": { "type": "string", "pattern": "^[A-Z]{2}$" },
                "lat": { "type": "number" }, "lon": { "type": "number" },
                "amenities": { "type": "array", "items": { "type": "string" } },
                "max_guests": { "type": "integer" }, "check_in": time, "check_out": time,
                "time_zone": { "type": "string", "description": "the property's IANA time zone, e.g. Europe/Paris; UTC if neither it nor utc_offset_min is given" },
                "utc_offset_min": { "type": "integer", "description": "a fixed offset from UTC in minutes, for clients written before time zones; not with time_zone" },
                "units": { "type": "integer" } } },
            "trip": { "type": "object", "required": ["mode", "operator", "service_number", "stops", "seats"], "properties": {
                "mode": { "enum": ["bus", "train", "ferry", "flight"] }, "operator": { "type": "string" },
                "service_number": { "type": "string" }, "seats": { "type": "integer" },
                "seat_map": { "type": "array", "items": { "type": "string" } },
                "stops": { "type": "array", "minItems": 2, "items": { "type": "object", "required": ["code"], "properties": {
                    "code": { "type": "string" }, "name": { "type": "string" },
                    "arrival": time, "arrival_day": { "type": "integer" },
                    "departure": time, "departure_day": { "type": "integer" },
                    "time_zone": { "type": "string", "description": "the stop's IANA time zone" },
                    "utc_offset_min": { "type": "integer", "description": "a fixed offset from UTC; not with time_zone" } } } } } },
            "withdrawn": { "type": "boolean", "description": "on reads; withdraw with DELETE" },
            "paused": { "type": "boolean", "description": "on reads; change with PUT .../paused" } } },
        "PausedInput": { "type": "object", "required": ["paused"], "properties": { "paused": { "type": "boolean" } } },
        "Listing": schema_ref("ListingInput"),
        "ListingList": { "type": "object", "properties": { "listings": { "type": "array", "items": schema_ref("Listing") },
            "next_after_id": { "type": ["string", "null"] } } },
        "AriInput": { "type": "object", "required": ["from", "to"], "properties": {
            "listing": { "type": "string", "description": "required in POST /api/v1/ari batches" },
            "from": date, "to": date, "available": { "type": "integer" }, "price_minor": { "type": "integer" },
            "min_stay": { "type": "integer" }, "max_stay": { "type": "integer" },
            "closed_to_arrival": { "type": "boolean" }, "closed_to_departure": { "type": "boolean" }, "stop_sell": { "type": "boolean" } } },
        "AriChanged": { "type": "object", "properties": { "listing": { "type": "string" }, "days_changed": { "type": "integer" } } },
        "GroupTimersInput": { "type": "object", "required": ["heartbeat_ms", "election_timeout_ms"], "properties": {
            "heartbeat_ms": { "type": "integer" }, "election_timeout_ms": { "type": "integer" } } },
        "GroupPartitionInput": { "type": "object", "required": ["cut_off"], "properties": {
            "cut_off": { "type": "array", "items": { "type": "string" } } } },
        "GroupMemberInput": { "type": "object", "required": ["member_id", "peer_id", "addrs"], "properties": {
            "member_id": { "type": "integer" }, "peer_id": { "type": "string" },
            "addrs": { "type": "array", "items": { "type": "string" } } } },
        "GroupView": { "type": "object", "properties": {
            "member_id": { "type": "integer" }, "peer_id": { "type": "string" },
            "addrs": { "type": "array", "items": { "type": "string" } },
            "role": { "type": "string" }, "term": { "type": "integer" },
            "leader": { "type": ["integer", "null"] }, "members": { "type": "array", "items": { "type": "object", "properties": {
                "id": { "type": "integer" }, "peer_id": { "type": "string" }, "voter": { "type": "boolean" },
                "matched_index": { "type": ["integer", "null"] },
                "addrs": { "type": "array", "items": { "type": "string" } } } } },
            "last_log_index": { "type": ["integer", "null"] }, "applied_index": { "type": "integer" },
            "snapshot_index": { "type": ["integer", "null"] }, "heartbeat_ms": { "type": "integer" },
            "election_timeout_ms": { "type": "integer" }, "agreed_heartbeat_ms": { "type": ["integer", "null"] },
            "agreed_election_timeout_ms": { "type": ["integer", "null"] }, "append_p99_ms": { "type": ["number", "null"] } } },
        "AriBatchInput": { "type": "object", "required": ["updates"], "properties": {
            "updates": { "type": "array", "maxItems": 1000, "items": schema_ref("AriInput") } } },
        "AriBatchResults": { "type": "object", "properties": { "results": { "type": "array", "items": { "type": "object", "properties": {
            "listing": { "type": "string" }, "days_changed": { "type": "integer" },
            "error": { "type": "string" }, "message": { "type": "string" } } } } } },
        "NodeStatus": { "type": "object", "properties": {
            "origin": { "type": "string" }, "peers": { "type": "integer" }, "records_held": { "type": "integer" },
            "catalog_listings": { "type": "integer" }, "records_published": { "type": "integer" },
            "records_received": { "type": "integer" }, "records_new": { "type": "integer" },
            "bytes_received": { "type": "integer" }, "transport_bytes_received": { "type": "integer" },
            "replication_lag": { "type": "object", "properties": {
                "samples": { "type": "integer" }, "last_ms": { "type": "integer" }, "p50_ms": { "type": "integer" },
                "p99_ms": { "type": "integer" }, "max_ms": { "type": "integer" },
                "buckets": { "type": "array", "items": { "type": "array", "items": { "type": "integer" } } } } },
            "catalog_digest": { "type": "string", "description": "with ?digest=true" } } },
        "Ari": { "type": "object", "properties": { "listing": { "type": "string" }, "currency": { "type": "string" },
            "days": { "type": "array", "items": { "type": "object", "properties": {
                "date": date, "allotment": { "type": "integer" }, "held": { "type": "integer" }, "booked": { "type": "integer" },
                "available": { "type": "integer" }, "price_minor": { "type": "integer" } } } } } },
        "HoldInput": { "type": "object", "required": ["listing"], "properties": {
            "listing": { "type": "string" }, "check_in": date, "check_out": date, "units": { "type": "integer" },
            "guests": { "type": "integer" }, "departure": date, "seats": { "type": "integer" },
            "seat_numbers": { "type": "array", "items": { "type": "string" } },
            "hold_seconds": { "type": "integer", "minimum": 10, "maximum": 3600 },
            "expected_total_minor": { "type": "integer" } } },
        "Hold": { "type": "object", "properties": {
            "id": { "type": "integer" }, "listing": { "type": "string" },
            "state": { "enum": ["held", "expired", "cancelled", "confirmed", "booking_cancelled"] },
            "check_in": date, "check_out": date, "units": { "type": "integer" }, "guests": { "type": "integer" },
            "departure": date, "seats": { "type": "integer" }, "seat_numbers": { "type": "array", "items": { "type": "string" } },
            "total": money.clone(), "created_at": { "type": "string", "format": "date-time" },
            "expires_at": { "type": "string", "format": "date-time" }, "resolved_at": { "type": "string", "format": "date-time" },
            "cancellation_penalty": money } },
        "StayOffers": { "type": "object", "properties": { "offers": { "type": "array", "items": { "type": "object",
            "description": "origin, listing, title, kind, city, country, address, amenities, check_in, check_out, distance_m, total, nights, units_left, cancellation {free_until, penalty}" } } } },
        "Itineraries": { "type": "object", "properties": { "itineraries": { "type": "array", "items": { "type": "object",
            "description": "departs, arrives, duration_minutes, totals, legs [{origin, listing, mode, operator, service_number, departure, from, to, departs, arrives, departs_local, arrives_local (the stops' own time, YYYY-MM-DD HH:MM), fare, seats_left, cancellation}]" } } } },
        "ConfirmInput": { "type": "object", "properties": {
            "traveller": { "type": "object", "required": ["name", "email"], "properties": {
                "name": { "type": "string" }, "email": { "type": "string" }, "phone": { "type": "string" } } } } },
        "BookingInput": { "type": "object", "required": ["traveller", "parts"], "properties": {
            "traveller": { "type": "object", "required": ["name", "email"], "properties": {
                "name": { "type": "string" }, "email": { "type": "string" }, "phone": { "type": "string" } } },
            "parts": { "type": "array", "maxItems": 8, "items": { "type": "object",
                "description": "origin (hex) plus a hold as POST /api/v1/holds takes it: listing and check_in/check_out/units/guests, or departure/seats/seat_numbers; hold_seconds, expected_total_minor" } } } },
        "Booking": { "type": "object", "properties": {
            "id": { "type": "integer" },
            "state": { "enum": ["holding", "held", "confirming", "releasing", "confirmed", "failed", "cancelling", "cancelled"] },
            "traveller": { "type": "object" },
            "parts": { "type": "array", "items": { "type": "object", "description": "origin, listing, status (new, held, confirmed, released, refused, abandoned, cancelled), hold_id, total, penalty, expires_at, refusal {code, message}, receipt {receipt, signature}" } },
            "totals": { "type": "array" }, "penalties": { "type": "array" },
            "created_at": { "type": "string" }, "updated_at": { "type": "string" } } },
        "BookingList": { "type": "object", "properties": { "bookings": { "type": "array", "items": schema_ref("Booking") },
            "next_before_id": { "type": ["integer", "null"] } } },
        "SaleList": { "type": "object", "properties": { "bookings": { "type": "array", "items": schema_ref("Hold") },
            "next_after_id": { "type": ["integer", "null"] } } },
        "RecordPage": { "type": "object", "properties": {
            "origin": { "type": "string", "description": "the owner's ed25519 public key, hex" },
            "records": { "type": "array", "items": { "type": "object", "properties": {
                "kind": { "enum": ["listing", "ari", "withdrawal"] }, "key": { "type": "string" },
                "version": { "type": "integer" }, "time": { "type": "string", "format": "date-time" },
                "id": { "type": "string" }, "proof": { "enum": ["signature", "bundle"] },
                "signed_hex": { "type": "string", "description": "encoded caravan.v1.SignedRecord" } } } },
            "next_after_version": { "type": ["integer", "null"] } } }
    })
}
