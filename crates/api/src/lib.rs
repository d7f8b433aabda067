//! Caravan's HTTP interface: REST/JSON under `/api/v1`, `/healthz` and the
//! OpenAPI document. The only crate that knows HTTP and JSON.
//!
//! Handlers are thin: parse and check the request into domain values, hand
//! the work to one of the node's [`services`], render the answer as the
//! API's own view types (`dto`), never the domain types themselves. Bad input of any
//! kind is a 4xx with `{"error": code, "message": text}`; only our own bugs
//! and storage failures are 5xx, and those are logged once.

mod agency;
mod auth;
mod book_link;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod dto;
mod error;
mod metrics;
pub mod openapi;
mod operator;
mod owner;
mod pages;
mod request;
mod routes;
pub mod services;

/// Implementors of the services use the same macro as their traits.
pub use async_trait::async_trait;
pub use error::ApiError;
pub use metrics::{Metric, Sample};
pub use routes::router;
pub use services::{
    AccountService, AccountSummary, AccountsError, AdminService, AgencyService, ApiTokenSummary, AppState,
    CatalogService, FaultHooksOff, GroupChangeError, Internal, LedgerService, SubmitError,
};

use std::future::Future;

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}
