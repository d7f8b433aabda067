//! The owner's endpoints: listings and their availability, holds and
//! sales, and the node's own signed records. Each change is a ledger
//! command; reads come from the committed ledger.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use caravan_accounts::{Principal, Role};
use caravan_ledger::{Command, HoldId, HoldState, Rejection, Reply};
use caravan_model::{limits::HORIZON_DAYS_MAX, Date, ListingId};
use prost::Message;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::*;
use crate::request::{idempotency_key, IdempotencyKeyHeader, ListingIdPath, NumberIdPath, PAGE_DEFAULT, PAGE_MAX};
use crate::{auth, ApiError, AppState, SubmitError};

/// Random suffixes tried for a generated listing id before giving up.
const GENERATED_ID_ATTEMPTS: usize = 4;
/// Days of ARI shown when the client gives no range.
const ARI_DAYS_DEFAULT: i32 = 31;

type Result<T> = std::result::Result<T, ApiError>;

fn listing_id(path: std::result::Result<Path<String>, PathRejection>) -> Result<ListingId> {
    let Path(id) = path?;
    ListingId::parse(&id).map_err(|e| ApiError::not_found(e.to_string()))
}

fn hold_id(path: std::result::Result<Path<u64>, PathRejection>) -> Result<HoldId> {
    Ok(HoldId(path?.0))
}

fn listing_view(app: &AppState, id: &ListingId) -> Result<ListingView> {
    app.read_ledger(|ledger| ledger.listing(id).map(ListingInput::view))
        .ok_or_else(|| ApiError::not_found(format!("no listing {id}")))
}

/// A readable id from the title plus a random suffix: `grand-hotel-double-3f9a1c`.
fn new_listing_id(title: &str, suffix: u32) -> ListingId {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let text = if slug.is_empty() { format!("listing-{suffix:06x}") } else { format!("{slug}-{suffix:06x}") };
    ListingId::parse(&text).expect("slug characters are valid")
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListingsQuery {
    /// Listings with ids after this one (ids sort as strings).
    after_id: Option<String>,
    /// Listings in the page (default 100, at most 5,000).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListingsPage {
    listings: Vec<ListingView>,
    /// The `after_id` of the next page; null on the last.
    next_after_id: Option<String>,
}

/// This owner's listings, in id order, a page at a time.
#[utoipa::path(get, path = "/api/v1/listings", tag = "owner", params(ListingsQuery), responses((status = 200, body = ListingsPage)))]
pub(crate) async fn list_listings(
    State(app): State<AppState>,
    query: std::result::Result<Query<ListingsQuery>, QueryRejection>,
) -> Result<Json<ListingsPage>> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX) as usize;
    let after = query.after_id.unwrap_or_default();
    let listings: Vec<ListingView> = app.read_ledger(|ledger| {
        ledger
            .listings()
            .filter(|state| state.listing.id.as_str() > after.as_str())
            .take(limit)
            .map(ListingInput::view)
            .collect()
    });
    let next_after_id = (listings.len() == limit).then(|| listings.last().and_then(|l| l.id.clone())).flatten();
    Ok(Json(ListingsPage { listings, next_after_id }))
}

/// Creates a stay or trip listing; its creator manages it.
#[utoipa::path(post, path = "/api/v1/listings", tag = "owner", request_body = ListingInput, responses((status = 201, body = ListingView)))]
pub(crate) async fn create_listing(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    body: std::result::Result<Json<ListingInput>, JsonRejection>,
) -> Result<Response> {
    let Json(input) = body?;
    let id = create_listing_as(&app, &caller, input).await?;
    Ok((StatusCode::CREATED, Json(listing_view(&app, &id)?)).into_response())
}

/// Creates a listing for a provider, who then manages it. Without an id
/// in the input, one is made from the title.
pub(crate) async fn create_listing_as(app: &AppState, caller: &Principal, input: ListingInput) -> Result<ListingId> {
    auth::need_role(caller, Role::Provider)?;
    if let Some(text) = input.id.clone() {
        let id = ListingId::parse(&text)?;
        app.ledger.submit(Command::CreateListing(input.into_listing(id.clone())?)).await?;
        app.accounts.add_manager(&id, caller.user).await?;
        return Ok(id);
    }
    // A generated id may, rarely, be taken: draw another suffix.
    for _ in 0..GENERATED_ID_ATTEMPTS {
        let id = new_listing_id(&input.title, (app.random_u32)() & 0xFF_FFFF);
        let listing = input.clone().into_listing(id.clone())?;
        match app.ledger.submit(Command::CreateListing(listing)).await {
            Err(SubmitError::Rejected(Rejection::ListingExists(_))) => continue,
            result => result?,
        };
        app.accounts.add_manager(&id, caller.user).await?;
        return Ok(id);
    }
    Err(ApiError::internal("no free listing id after several random draws"))
}

/// One listing.
#[utoipa::path(get, path = "/api/v1/listings/{id}", tag = "owner", params(ListingIdPath), responses((status = 200, body = ListingView)))]
pub(crate) async fn get_listing(
    State(app): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<ListingView>> {
    Ok(Json(listing_view(&app, &listing_id(path)?)?))
}

/// Replaces a listing's description (its kind and currency stay).
#[utoipa::path(put, path = "/api/v1/listings/{id}", tag = "owner", params(ListingIdPath), request_body = ListingInput, responses((status = 200, body = ListingView)))]
pub(crate) async fn update_listing(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<ListingInput>, JsonRejection>,
) -> Result<Json<ListingView>> {
    let id = listing_id(path)?;
    auth::need_manager(&app, &caller, &id).await?;
    let Json(input) = body?;
    if input.id.as_deref().is_some_and(|body_id| body_id != id.as_str()) {
        return Err(ApiError::invalid("the body's id differs from the path's"));
    }
    let listing = input.into_listing(id.clone())?;
    app.ledger.submit(Command::UpdateListing(listing)).await?;
    Ok(Json(listing_view(&app, &id)?))
}

/// Withdraws a listing for good; its bookings stay valid.
#[utoipa::path(delete, path = "/api/v1/listings/{id}", tag = "owner", params(ListingIdPath), responses((status = 200, body = ListingView)))]
pub(crate) async fn withdraw_listing(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<ListingView>> {
    let id = listing_id(path)?;
    auth::need_manager(&app, &caller, &id).await?;
    app.ledger.submit(Command::WithdrawListing(id.clone())).await?;
    Ok(Json(listing_view(&app, &id)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PausedInput {
    paused: bool,
}

/// Takes a listing off sale for now, or puts it back on sale; its bookings
/// stay valid.
#[utoipa::path(put, path = "/api/v1/listings/{id}/paused", tag = "owner", params(ListingIdPath), request_body = PausedInput, responses((status = 200, body = ListingView)))]
pub(crate) async fn set_paused(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<PausedInput>, JsonRejection>,
) -> Result<Json<ListingView>> {
    let id = listing_id(path)?;
    auth::need_manager(&app, &caller, &id).await?;
    let Json(input) = body?;
    app.ledger.submit(Command::SetPaused { listing: id.clone(), paused: input.paused }).await?;
    Ok(Json(listing_view(&app, &id)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AriQuery {
    /// The first day shown (default today).
    #[param(format = Date)]
    from: Option<String>,
    /// The day after the last day shown (default 31 days after `from`).
    #[param(format = Date)]
    to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AriView {
    listing: String,
    currency: String,
    /// The days the listing was ever opened for sale, in the range asked.
    days: Vec<AriDayView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AriChanged {
    listing: String,
    days_changed: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AriBatchResults {
    results: Vec<AriBatchResult>,
}

/// Availability, prices and restrictions per day, with what is held and booked.
#[utoipa::path(get, path = "/api/v1/listings/{id}/ari", tag = "owner", params(ListingIdPath, AriQuery), responses((status = 200, body = AriView)))]
pub(crate) async fn get_ari(
    State(app): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
    query: std::result::Result<Query<AriQuery>, QueryRejection>,
) -> Result<Json<AriView>> {
    let id = listing_id(path)?;
    let Query(query) = query?;
    let from = match &query.from {
        Some(text) => Date::parse(text)?,
        None => app.now().date(),
    };
    let to = match &query.to {
        Some(text) => Date::parse(text)?,
        None => from.add_days(ARI_DAYS_DEFAULT),
    };
    if from >= to || from.days_until(to) > HORIZON_DAYS_MAX + 1 {
        return Err(ApiError::invalid(format!("'from' must be before 'to', at most {HORIZON_DAYS_MAX} days apart")));
    }
    let view = app.read_ledger(|ledger| {
        let state = ledger.listing(&id)?;
        let days: Vec<AriDayView> = state.days.range(from..to).map(|(date, day)| AriDayView::new(*date, day)).collect();
        Some(AriView { listing: id.to_string(), currency: state.listing.currency.to_string(), days })
    });
    view.map(Json).ok_or_else(|| ApiError::not_found(format!("no listing {id}")))
}

/// Changes availability, prices and restrictions over a range of days.
#[utoipa::path(put, path = "/api/v1/listings/{id}/ari", tag = "owner", params(ListingIdPath), request_body = AriInput, responses((status = 200, body = AriChanged)))]
pub(crate) async fn set_ari(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<AriInput>, JsonRejection>,
) -> Result<Json<AriChanged>> {
    let id = listing_id(path)?;
    auth::need_manager(&app, &caller, &id).await?;
    let Json(input) = body?;
    if input.listing.as_deref().is_some_and(|named| named != id.as_str()) {
        return Err(ApiError::invalid("the body's listing differs from the path's"));
    }
    let days = submit_ari(&app, id.clone(), &input).await?;
    Ok(Json(AriChanged { listing: id.to_string(), days_changed: days }))
}

pub(crate) async fn submit_ari(app: &AppState, listing: ListingId, input: &AriInput) -> Result<u32> {
    let command =
        Command::SetAri { listing, from: Date::parse(&input.from)?, to: Date::parse(&input.to)?, patch: input.patch() };
    match app.ledger.submit(command).await? {
        Reply::Ari { days, .. } => Ok(days),
        other => Err(ApiError::internal(format!("set_ari answered {other:?}"))),
    }
}

/// The most changes one `POST /api/v1/ari` may carry.
pub const ARI_BATCH_MAX: usize = 1_000;

/// Many ARI changes at once, each applied on its own; the results in the order sent.
#[utoipa::path(post, path = "/api/v1/ari", tag = "owner", request_body = AriBatchInput, responses((status = 200, body = AriBatchResults)))]
pub(crate) async fn set_ari_batch(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    body: std::result::Result<Json<AriBatchInput>, JsonRejection>,
) -> Result<Json<AriBatchResults>> {
    let Json(batch) = body?;
    if batch.updates.is_empty() || batch.updates.len() > ARI_BATCH_MAX {
        return Err(ApiError::invalid(format!("a batch holds 1-{ARI_BATCH_MAX} updates")));
    }
    // Changes to different listings are submitted together and share the
    // writer's group commits; changes to one listing apply in the order sent.
    let mut by_listing: std::collections::BTreeMap<Option<String>, Vec<(usize, AriInput)>> = Default::default();
    for (position, input) in batch.updates.into_iter().enumerate() {
        by_listing.entry(input.listing.clone()).or_default().push((position, input));
    }
    // Polled together in this request's task: nothing is spawned, so a
    // client that goes away takes its unsent changes with it.
    let per_listing = by_listing.into_values().map(|updates| {
        let (app, caller) = (&app, &caller);
        async move {
            let mut results = Vec::with_capacity(updates.len());
            for (position, input) in updates {
                results.push((position, apply_batched_ari(app, caller, input).await));
            }
            results
        }
    });
    let mut results: Vec<_> = futures_util::future::join_all(per_listing).await.into_iter().flatten().collect();
    results.sort_by_key(|(position, _)| *position);
    let results: Vec<AriBatchResult> = results.into_iter().map(|(_, result)| result).collect();
    Ok(Json(AriBatchResults { results }))
}

pub(crate) async fn apply_batched_ari(app: &AppState, caller: &Principal, input: AriInput) -> AriBatchResult {
    let named = input.listing.clone().unwrap_or_default();
    let outcome = match input.listing.as_deref().map(ListingId::parse) {
        None => Err(ApiError::invalid("each update names its listing")),
        Some(Err(e)) => Err(ApiError::invalid(e.to_string())),
        Some(Ok(id)) => match auth::need_manager(app, caller, &id).await {
            Ok(()) => submit_ari(app, id, &input).await,
            Err(refused) => Err(refused),
        },
    };
    match outcome {
        Ok(days) => AriBatchResult { listing: named, days_changed: Some(days), error: None, message: None },
        Err(e) => AriBatchResult {
            listing: named,
            days_changed: None,
            error: Some(e.code.to_owned()),
            message: Some(e.message),
        },
    }
}

fn hold_reply(reply: Reply) -> Result<HoldView> {
    match reply {
        Reply::Hold(hold) => Ok(HoldView::new(&hold)),
        other => Err(ApiError::internal(format!("expected a hold, got {other:?}"))),
    }
}

/// Holds units of a stay or seats of a trip until the hold expires. An
/// array holds a batch: each item with its own `idempotency_key`, each
/// answered in `results` with the status it would have had alone.
#[utoipa::path(
    post, path = "/api/v1/holds", tag = "owner", params(IdempotencyKeyHeader), request_body = HoldsInput,
    responses((status = 201, body = HoldView), (status = 200, description = "A batch's answers", body = HoldBatchView))
)]
pub(crate) async fn create_hold(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: std::result::Result<Json<HoldsInput>, JsonRejection>,
) -> Result<Response> {
    let key = idempotency_key(&headers)?;
    match body? {
        Json(HoldsInput::One(input)) => {
            let view = place_hold(&app, &caller, key, input).await?;
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
        Json(HoldsInput::Batch(items)) => {
            if key.is_some() {
                return Err(ApiError::invalid(
                    "a batch takes each hold's idempotency_key, not the Idempotency-Key header",
                ));
            }
            if items.is_empty() || items.len() > caravan_ledger::BATCH_COMMANDS_MAX {
                let max = caravan_ledger::BATCH_COMMANDS_MAX;
                return Err(ApiError::invalid(format!("a batch holds 1 to {max} holds")));
            }
            let mut results: Vec<Option<Result<HoldView>>> = Vec::with_capacity(items.len());
            let mut commands = Vec::new();
            for item in items {
                let key = item.idempotency_key.as_deref().map(caravan_ledger::IdempotencyKey::parse).transpose();
                match async { hold_command(&app, &caller, key?, item.hold).await }.await {
                    Ok(command) => {
                        commands.push((results.len(), command));
                        results.push(None);
                    }
                    Err(error) => results.push(Some(Err(error))),
                }
            }
            // One log entry for the whole batch, each hold answered alone.
            let (places, commands): (Vec<usize>, Vec<Command>) = commands.into_iter().unzip();
            let submitted = match commands.is_empty() {
                true => Ok(Reply::Batch(Vec::new())),
                false => app.ledger.submit(Command::Batch(commands)).await,
            };
            let answers: Vec<Result<HoldView>> = match submitted {
                Ok(Reply::Batch(outcomes)) => {
                    outcomes.into_iter().map(|outcome| hold_reply(outcome.map_err(SubmitError::Rejected)?)).collect()
                }
                Ok(other) => return Err(ApiError::internal(format!("expected a batch, got {other:?}"))),
                Err(error) => {
                    let error = ApiError::from(error);
                    places.iter().map(|_| Err(error.clone())).collect()
                }
            };
            for (place, answer) in places.into_iter().zip(answers) {
                results[place] = Some(answer);
            }
            let results = results.into_iter().flatten().map(|answer| match answer {
                Ok(view) => HoldBatchResult { status: 201, hold: Some(view), error: None, message: None },
                Err(error) => HoldBatchResult {
                    status: error.status.as_u16(),
                    hold: None,
                    error: Some(error.code),
                    message: Some(error.message),
                },
            });
            Ok(Json(HoldBatchView { results: results.collect() }).into_response())
        }
    }
}

/// One hold, checked, authorized and run through the ledger.
async fn place_hold(
    app: &AppState,
    caller: &Principal,
    key: Option<caravan_ledger::IdempotencyKey>,
    input: HoldInput,
) -> Result<HoldView> {
    let command = hold_command(app, caller, key, input).await?;
    hold_reply(app.ledger.submit(command).await?)
}

/// The ledger command for one hold, once checked and authorized.
async fn hold_command(
    app: &AppState,
    caller: &Principal,
    key: Option<caravan_ledger::IdempotencyKey>,
    input: HoldInput,
) -> Result<Command> {
    let request = input.request()?;
    auth::need_manager(app, caller, request.listing()).await?;
    let ttl_ms = input.hold_seconds.map_or(app.ledger.hold_ms_default(), |s| s as i64 * 1000);
    Ok(Command::Hold { idempotency_key: key, request, ttl_ms, expected_total_minor: input.expected_total_minor })
}

/// Refuses unless `caller` manages the listing of hold `id` (an unknown
/// hold passes: the ledger then answers "no hold").
pub(crate) async fn need_hold_manager(app: &AppState, caller: &Principal, id: HoldId) -> Result<()> {
    let listing = app.read_ledger(|ledger| ledger.hold(id).map(|hold| hold.request.listing().clone()));
    match listing {
        Some(listing) => auth::need_manager(app, caller, &listing).await,
        None => Ok(()),
    }
}

/// One hold.
#[utoipa::path(get, path = "/api/v1/holds/{id}", tag = "owner", params(NumberIdPath), responses((status = 200, body = HoldView)))]
pub(crate) async fn get_hold(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Json<HoldView>> {
    let id = hold_id(path)?;
    need_hold_manager(&app, &caller, id).await?;
    app.read_ledger(|ledger| ledger.hold(id).map(|hold| HoldView::from_ledger(ledger, hold)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no hold {id}")))
}

/// Turns a live hold into a booking.
#[utoipa::path(post, path = "/api/v1/holds/{id}/confirm", tag = "owner", params(NumberIdPath, IdempotencyKeyHeader), responses((status = 200, body = HoldView)))]
pub(crate) async fn confirm_hold(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    path: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Json<HoldView>> {
    let confirm = |idempotency_key, hold| Command::Confirm { idempotency_key, hold };
    resolve_hold(&app, &caller, &headers, path, confirm).await
}

/// Releases a live hold, or cancels a booking under its policy.
#[utoipa::path(post, path = "/api/v1/holds/{id}/cancel", tag = "owner", params(NumberIdPath, IdempotencyKeyHeader), responses((status = 200, body = HoldView)))]
pub(crate) async fn cancel_hold(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    path: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Json<HoldView>> {
    let cancel = |idempotency_key, hold| Command::Cancel { idempotency_key, hold };
    resolve_hold(&app, &caller, &headers, path, cancel).await
}

/// Confirms or cancels the hold in the path, for whoever manages its listing.
async fn resolve_hold(
    app: &AppState,
    caller: &Principal,
    headers: &HeaderMap,
    path: std::result::Result<Path<u64>, PathRejection>,
    command: impl FnOnce(Option<caravan_ledger::IdempotencyKey>, HoldId) -> Command,
) -> Result<Json<HoldView>> {
    let id = hold_id(path)?;
    need_hold_manager(app, caller, id).await?;
    let command = command(idempotency_key(headers)?, id);
    Ok(Json(hold_reply(app.ledger.submit(command).await?)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SalesQuery {
    /// Only the sales of this listing.
    listing: Option<String>,
    /// `confirmed`, `cancelled` or `all` (default).
    #[param(schema_with = sale_states)]
    state: Option<String>,
    /// Sales with ids after this one.
    after_id: Option<u64>,
    /// Sales in the page (default 100, at most 5,000).
    limit: Option<u32>,
}

fn sale_states() -> utoipa::openapi::Object {
    crate::dto::one_of(&["confirmed", "cancelled", "all"])
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SalesPage {
    bookings: Vec<HoldView>,
    /// The `after_id` of the next page; null on the last.
    next_after_id: Option<u64>,
}

/// What this owner sold (confirmed holds), in id order, a page at a time.
#[utoipa::path(get, path = "/api/v1/sales", tag = "owner", params(SalesQuery), responses((status = 200, body = SalesPage)))]
pub(crate) async fn list_sales(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    query: std::result::Result<Query<SalesQuery>, QueryRejection>,
) -> Result<Json<SalesPage>> {
    let Query(query) = query?;
    // A provider sees the sales of what they manage; an admin sees all.
    let managed = auth::managed_by(&app, &caller).await?;
    let listing = query.listing.as_deref().map(ListingId::parse).transpose()?;
    let wanted = |state: &HoldState| match query.state.as_deref() {
        None | Some("all") => state.is_booking(),
        Some("confirmed") => matches!(state, HoldState::Confirmed { .. }),
        Some("cancelled") => matches!(state, HoldState::BookingCancelled { .. }),
        Some(_) => false,
    };
    if !matches!(query.state.as_deref(), None | Some("all" | "confirmed" | "cancelled")) {
        return Err(ApiError::invalid("state: confirmed, cancelled or all"));
    }
    let limit = query.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX) as usize;
    let after = query.after_id.unwrap_or(0);
    let bookings: Vec<HoldView> = app.read_ledger(|ledger| {
        ledger
            .holds()
            .filter(|hold| hold.id.0 > after && wanted(&hold.state))
            .filter(|hold| listing.as_ref().is_none_or(|l| hold.request.listing() == l))
            .filter(|hold| managed.as_ref().is_none_or(|m| m.contains(hold.request.listing().as_str())))
            .take(limit)
            .map(|hold| HoldView::from_ledger(ledger, hold))
            .collect()
    });
    let next_after_id = (bookings.len() == limit).then(|| bookings.last().map(|b| b.id)).flatten();
    Ok(Json(SalesPage { bookings, next_after_id }))
}

fn booking_view(app: &AppState, id: HoldId) -> Result<HoldView> {
    app.read_ledger(|ledger| {
        ledger.hold(id).filter(|h| h.state.is_booking()).map(|hold| HoldView::from_ledger(ledger, hold))
    })
    .ok_or_else(|| ApiError::not_found(format!("no booking {id}")))
}

/// One sale.
#[utoipa::path(get, path = "/api/v1/sales/{id}", tag = "owner", params(NumberIdPath), responses((status = 200, body = HoldView)))]
pub(crate) async fn get_sale(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Json<HoldView>> {
    let id = hold_id(path)?;
    need_hold_manager(&app, &caller, id).await?;
    Ok(Json(booking_view(&app, id)?))
}

/// Cancels a sale; the policy's penalty is in the answer.
#[utoipa::path(post, path = "/api/v1/sales/{id}/cancel", tag = "owner", params(NumberIdPath, IdempotencyKeyHeader), responses((status = 200, body = HoldView)))]
pub(crate) async fn cancel_sale(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    path: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Json<HoldView>> {
    let id = hold_id(path)?;
    need_hold_manager(&app, &caller, id).await?;
    booking_view(&app, id)?;
    let command = Command::Cancel { idempotency_key: idempotency_key(&headers)?, hold: id };
    Ok(Json(hold_reply(app.ledger.submit(command).await?)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecordsQuery {
    /// Records with versions after this one.
    after_version: Option<u64>,
    /// Records in the page (default 100, at most 5,000).
    limit: Option<u32>,
    /// `json` (default) or `protobuf` (an encoded `caravan.v1.Envelope`).
    #[param(schema_with = record_formats)]
    format: Option<String>,
}

fn record_formats() -> utoipa::openapi::Object {
    crate::dto::one_of(&["json", "protobuf"])
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecordPage {
    /// The owner's ed25519 public key, hex.
    origin: String,
    records: Vec<RecordView>,
    /// The `after_version` of the next page; null on the last.
    next_after_version: Option<u64>,
}

/// This node's own signed records, in version order, a page at a time.
#[utoipa::path(get, path = "/api/v1/records", tag = "records", params(RecordsQuery), responses((status = 200, description = "A page of records: JSON, or with `format=protobuf` an encoded `caravan.v1.Envelope`", content(
    (RecordPage = "application/json"), (Vec<u8> = "application/x-protobuf")))))]
pub(crate) async fn export_records(
    State(app): State<AppState>,
    query: std::result::Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
    let after = query.after_version.unwrap_or(0);
    let records = app.ledger.own_records(after, limit).await?;
    match query.format.as_deref() {
        None | Some("json") => {
            let next_after_version =
                (records.len() == limit as usize).then(|| records.last().map(|r| r.version)).flatten();
            let views: Vec<RecordView> = records.iter().map(RecordView::new).collect();
            let page = RecordPage { origin: app.ledger.origin().to_hex(), records: views, next_after_version };
            Ok(Json(page).into_response())
        }
        Some("protobuf") => {
            let records = records.iter().map(|r| r.to_proto()).collect();
            let envelope = caravan_records::proto::Envelope { records, proofs: Vec::new(), runs: Vec::new() };
            Ok(([("content-type", "application/x-protobuf")], envelope.encode_to_vec()).into_response())
        }
        Some(other) => Err(ApiError::invalid(format!("format {other:?}: json or protobuf"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_readable_and_valid() {
        assert_eq!(new_listing_id("Grand Hôtel — Double room!", 0x3f9a1c).as_str(), "grand-h-tel-double-room-3f9a1c");
        assert_eq!(new_listing_id("???", 1).as_str(), "listing-000001");
        assert!(new_listing_id(&"x".repeat(500), 0xffffff).as_str().len() <= 64);
    }
}
