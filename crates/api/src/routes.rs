//! The router: every route of the HTTP surface, in one list, and the
//! layers around them (authentication, body limit, timeout, panics).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    let (api, _) = api().split_for_parts();
    pages()
        .merge(api)
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

/// The web app's pages, for people: HTML, not in the OpenAPI document.
fn pages() -> Router<AppState> {
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
}

/// The API for programs: each route registered with its documentation,
/// so the OpenAPI document lists exactly what is routed.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::serve))
        .routes(routes!(owner::list_listings, owner::create_listing))
        .routes(routes!(owner::get_listing, owner::update_listing, owner::withdraw_listing))
        .routes(routes!(owner::set_paused))
        .routes(routes!(owner::get_ari, owner::set_ari))
        .routes(routes!(owner::set_ari_batch))
        .routes(routes!(operator::status))
        .routes(routes!(operator::peers))
        .routes(routes!(operator::origins))
        .routes(routes!(operator::group))
        .routes(routes!(operator::group_timers))
        .routes(routes!(operator::add_group_member))
        .routes(routes!(operator::remove_group_member))
        .routes(routes!(operator::invite))
        .routes(routes!(operator::group_partition))
        .routes(routes!(owner::create_hold))
        .routes(routes!(owner::get_hold))
        .routes(routes!(owner::confirm_hold))
        .routes(routes!(owner::cancel_hold))
        .routes(routes!(owner::list_sales))
        .routes(routes!(owner::get_sale))
        .routes(routes!(owner::cancel_sale))
        .routes(routes!(agency::search_stays))
        .routes(routes!(agency::search_trips))
        .routes(routes!(agency::list_bookings, agency::create_booking))
        .routes(routes!(agency::get_booking))
        .routes(routes!(agency::confirm_booking))
        .routes(routes!(agency::cancel_booking))
        .routes(routes!(owner::export_records))
}

/// Prometheus metrics, in its text format.
#[utoipa::path(get, path = "/metrics", tag = "node", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(app): State<AppState>) -> Response {
    let text = crate::metrics::render(&app.admin.metrics());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

#[derive(Debug, Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Answers while the node runs.
#[utoipa::path(get, path = "/healthz", tag = "node", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}
