//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Nothing in it
//! is written twice: each handler states its path, parameters and answers
//! in `#[utoipa::path]`, the types it reads and answers derive their
//! schemas, and `routes::api` registers each route with its documentation
//! in one step. Here: the title, and what every operation shares.

use std::sync::OnceLock;

use axum::http::Method;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::ToSchema;

use crate::auth;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Caravan node API",
        version = "1",
        description = "An owner's listings, availability, holds and sales; an agency's searches and bookings; \
                       the node's signed records and its operator's views. Every error is \
                       `{\"error\": code, \"message\": text}`; unknown fields in a body are refused."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "owner", description = "Listings, availability, holds and sales of this node's owner"),
        (name = "agency", description = "Search the local catalog and book at owners across the network"),
        (name = "records", description = "This node's own signed records"),
        (name = "operator", description = "Status, peers, origins and the owner's replica group"),
        (name = "node", description = "Liveness, metrics and this document"),
    )
)]
struct Base;

/// An error answer, whatever the status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_request`, `not_found`, `sold_out`, `unauthorized`, …
    #[schema(example = "sold_out")]
    pub error: &'static str,
    /// For people.
    pub message: String,
}

/// The document the routes add their operations to.
pub(crate) fn base() -> OpenApi {
    <Base as utoipa::OpenApi>::openapi()
}

/// Adds what every operation shares: the error answers, and the bearer
/// token unless anyone may call it.
pub(crate) fn finish(mut doc: OpenApi) -> OpenApi {
    let bearer =
        Http::builder().scheme(HttpAuthScheme::Bearer).description(Some("an API token from `caravan user token`"));
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", SecurityScheme::Http(bearer.build()));
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                add_shared(operation, auth::is_public(&method, path));
            }
        }
    }
    doc
}

fn add_shared(operation: &mut Operation, public: bool) {
    let error = |description: &str| {
        let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        ResponseBuilder::new().description(description).content("application/json", body).build()
    };
    let responses = &mut operation.responses.responses;
    responses.entry("4XX".into()).or_insert_with(|| {
        error(
            "Bad input (422), an unknown id (404), refused by the ledger (409: sold out, hold expired, …), \
               not allowed (401, 403), too large (413) or too slow (408)",
        )
        .into()
    });
    responses.entry("5XX".into()).or_insert_with(|| {
        error(
            "Our failure (500, details in the operator's log), or the ledger cannot answer now (503): \
               retry with the same Idempotency-Key",
        )
        .into()
    });
    if !public {
        operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// The document as served, built once.
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (_, doc) = crate::routes::api().split_for_parts();
        serde_json::to_value(finish(doc)).expect("the document serializes")
    })
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "node", responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
pub(crate) async fn serve() -> Json<&'static serde_json::Value> {
    Json(document())
}
