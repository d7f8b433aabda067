//! The router: every route of the HTTP surface, in one list, and the
//! layers around them (authentication, body limit, timeout, panics).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::pages::{account, admin, booking, provider, search};
use crate::{agency, auth, openapi, operator, owner, pages, ApiError, AppState};

/// Request bodies larger than this are refused with 413: a listing with
/// every field at its limit is well under 64 KiB.
pub const BODY_BYTES_MAX: usize = 256 * 1024;
/// A request that takes longer than this is answered 408; a ledger command
/// already queued still runs, and an idempotent retry gets its answer.
pub const REQUEST_TIMEOUT_S: u64 = 30;

/// The whole HTTP surface over the node's services. A function, so tests
/// can drive it without a socket.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/", get(search::home))
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", post(account::logout))
        .route("/register", get(account::register_form).post(account::register))
        .route("/book", get(booking::book_form).post(booking::book))
        .route("/listings/{origin}/{id}", get(search::listing_page))
        .route("/provider", get(provider::provider_page))
        .route("/admin", get(admin::admin_page))
        .route("/tokens", get(account::tokens).post(account::create_token))
        .route("/tokens/revoke", post(account::revoke_token))
        .route("/admin/role", post(admin::admin_role))
        .route("/admin/group-timers", post(admin::admin_group_timers))
        .route("/provider/ari", post(provider::provider_ari))
        .route("/provider/new", get(provider::new_service_form).post(provider::create_service))
        .route("/provider/sales", get(provider::sales_page))
        .route("/provider/services/{id}", get(provider::service_page))
        .route("/provider/services/{id}/edit", get(provider::edit_service_form).post(provider::edit_service))
        .route("/provider/services/{id}/sale", post(provider::set_sale))
        .route("/provider/services/{id}/withdraw", post(provider::withdraw))
        .route("/provider/services/{id}/managers", post(provider::add_manager))
        .route("/provider/services/{id}/managers/remove", post(provider::remove_manager))
        .route("/bookings", get(booking::bookings_page))
        .route("/bookings/{id}", get(booking::booking_page))
        .route("/bookings/{id}/confirm", post(booking::confirm))
        .route("/bookings/{id}/cancel", post(booking::cancel))
        .route("/verify", get(account::verify))
        .route("/forgot", get(account::forgot_form).post(account::forgot))
        .route("/reset", get(account::reset_form).post(account::reset))
        .route("/stays", get(search::stays))
        .route("/trips", get(search::trips))
        .route("/assets/{name}", get(pages::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/api/v1/listings", get(owner::list_listings).post(owner::create_listing))
        .route(
            "/api/v1/listings/{id}",
            get(owner::get_listing).put(owner::update_listing).delete(owner::withdraw_listing),
        )
        .route("/api/v1/listings/{id}/paused", put(owner::set_paused))
        .route("/api/v1/listings/{id}/ari", get(owner::get_ari).put(owner::set_ari))
        .route("/api/v1/ari", post(owner::set_ari_batch))
        .route("/api/v1/status", get(operator::status))
        .route("/api/v1/peers", get(operator::peers))
        .route("/api/v1/origins", get(operator::origins))
        .route("/api/v1/group", get(operator::group))
        .route("/api/v1/group/timers", put(operator::group_timers))
        .route("/api/v1/group/members", post(operator::add_group_member))
        .route("/api/v1/group/members/{id}", delete(operator::remove_group_member))
        .route("/api/v1/group/partition", put(operator::group_partition))
        .route("/api/v1/holds", post(owner::create_hold))
        .route("/api/v1/holds/{id}", get(owner::get_hold))
        .route("/api/v1/holds/{id}/confirm", post(owner::confirm_hold))
        .route("/api/v1/holds/{id}/cancel", post(owner::cancel_hold))
        .route("/api/v1/sales", get(owner::list_sales))
        .route("/api/v1/sales/{id}", get(owner::get_sale))
        .route("/api/v1/sales/{id}/cancel", post(owner::cancel_sale))
        .route("/api/v1/search/stays", get(agency::search_stays))
        .route("/api/v1/search/trips", get(agency::search_trips))
        .route("/api/v1/bookings", get(agency::list_bookings).post(agency::create_booking))
        .route("/api/v1/bookings/{id}", get(agency::get_booking))
        .route("/api/v1/bookings/{id}/confirm", post(agency::confirm_booking))
        .route("/api/v1/bookings/{id}/cancel", post(agency::cancel_booking))
        .route("/api/v1/records", get(owner::export_records))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
        })
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::require))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "timeout",
                        "the request took too long; retry with the same Idempotency-Key",
                    )
                }))
                .timeout(std::time::Duration::from_secs(REQUEST_TIMEOUT_S)),
        )
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

async fn metrics(State(app): State<AppState>) -> Response {
    let text = crate::metrics::render(&app.admin.metrics());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}
