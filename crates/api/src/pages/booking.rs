//! Booking from the browser: a search result's parts are held, the
//! traveller's details taken, and the booking confirmed, let go or
//! cancelled from its page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use caravan_accounts::Principal;
use serde::Deserialize;

use super::session::{SignedIn, SignedInForm};
use super::{notice, render, CsrfOnly, Nav};
use crate::book_link::BookPart;
use crate::{ApiError, AppState};

#[derive(Template)]
#[template(path = "book.html")]
struct Book {
    nav: Nav,
    summary: String,
    parts: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage {
    nav: Nav,
    booking: crate::agency::BookingView,
    minutes_left: i64,
    /// The details form while held: what was typed, and why it was refused.
    details: TravellerForm,
    error: Option<String>,
}

/// Who travels, as typed on a held booking's page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TravellerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
}

impl TravellerForm {
    /// The form prefilled from a booking: its traveller, unless that is
    /// still the booking account (then only the email).
    fn of(traveller: &caravan_model::Traveller) -> TravellerForm {
        let named = traveller.name != traveller.email;
        TravellerForm {
            csrf: String::new(),
            name: if named { traveller.name.clone() } else { String::new() },
            email: traveller.email.clone(),
            phone: traveller.phone.clone().unwrap_or_default(),
        }
    }

    fn traveller(&self) -> caravan_model::Traveller {
        let phone = Some(self.phone.trim().to_owned()).filter(|p| !p.is_empty());
        caravan_model::Traveller { name: self.name.trim().to_owned(), email: self.email.trim().to_owned(), phone }
    }
}

#[derive(Template)]
#[template(path = "bookings.html")]
struct BookingsPage {
    nav: Nav,
    /// Held or booked, starting today or later; soonest first.
    upcoming: Vec<crate::agency::BookingView>,
    /// Started already, or failed, let go or cancelled; newest first.
    past: Vec<crate::agency::BookingView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PartsQuery {
    parts: String,
}

pub(crate) async fn book_form(SignedIn { principal, session }: SignedIn, Query(query): Query<PartsQuery>) -> Response {
    let Some(parts) = BookPart::decode_all(&query.parts) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Nothing to book",
            "This link does not name what to book; search again.",
            Some(("/", "Search")),
        );
    };
    let summary = BookPart::describe_all(&parts);
    let nav = Nav::of(&principal, &session);
    render(&Book { nav, summary, parts: query.parts, error: None })
}

#[derive(Debug, Deserialize)]
pub(crate) struct BookInput {
    csrf: String,
    parts: String,
}

/// Holds every part at once; who travels is asked while the holds run.
pub(crate) async fn book(
    State(app): State<AppState>,
    SignedInForm(SignedIn { principal, session }, input): SignedInForm<BookInput>,
) -> Response {
    let Some(parts) = BookPart::decode_all(&input.parts) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Nothing to book",
            "The form does not name what to book; search again.",
            Some(("/", "Search")),
        );
    };
    // Until the traveller gives their details (with the confirmation),
    // owners know the hold by the account that placed it.
    let booker =
        caravan_model::Traveller { name: principal.email.clone(), email: principal.email.clone(), phone: None };
    let new = caravan_booking::agency::NewBooking {
        client_key: None,
        user: Some(principal.user),
        traveller: booker,
        parts: parts.iter().map(BookPart::spec).collect(),
        wait_to_confirm: true,
    };
    match app.agency.create_booking(new).await {
        Ok(booking) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/bookings/{}", booking.saga.id))]).into_response()
        }
        Err(error) => {
            let summary = BookPart::describe_all(&parts);
            let nav = Nav::of(&principal, &session);
            let page = Book { nav, summary, parts: input.parts, error: Some(error.to_string()) };
            let mut response = render(&page);
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
    }
}

/// The signed-in traveller's booking `id` (another's is "not found").
async fn own(app: &AppState, principal: &Principal, id: u64) -> Option<caravan_booking::agency::Booking> {
    crate::agency::own_booking(app, principal, id).await.ok()
}

fn no_such_booking() -> Response {
    notice(
        StatusCode::NOT_FOUND,
        "No such booking",
        "There is no booking of yours with that number.",
        Some(("/bookings", "My bookings")),
    )
}

async fn show_booking(
    app: &AppState,
    principal: &Principal,
    session: &caravan_accounts::token::Secret,
    booking: &caravan_booking::agency::Booking,
    refused: Option<(TravellerForm, String)>,
) -> Response {
    let minutes_left = booking.saga.held_until().map_or(0, |at| ((at.ms() - app.now().ms()) / 60_000).max(0));
    let (details, error) = match refused {
        Some((form, error)) => (form, Some(error)),
        None => (TravellerForm::of(&booking.traveller), None),
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = BookingPage {
        nav: Nav::of(principal, session),
        booking: crate::agency::booking_view_now(app, booking),
        minutes_left,
        details,
        error,
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

pub(crate) async fn booking_page(
    State(app): State<AppState>,
    SignedIn { principal, session }: SignedIn,
    Path(id): Path<u64>,
) -> Response {
    match own(&app, &principal, id).await {
        Some(booking) => show_booking(&app, &principal, &session, &booking, None).await,
        None => no_such_booking(),
    }
}

/// Confirms a held booking with who travels: every owner gets the details
/// with the confirmation.
pub(crate) async fn confirm(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    SignedInForm(SignedIn { principal, session }, form): SignedInForm<TravellerForm>,
) -> Response {
    let Some(booking) = own(&app, &principal, id).await else { return no_such_booking() };
    let traveller = form.traveller();
    if let Err(problem) = traveller.validate() {
        return show_booking(&app, &principal, &session, &booking, Some((form, problem))).await;
    }
    let decision = caravan_booking::agency::Decision::Confirm(Some(traveller));
    match app.agency.decide_booking(id, decision).await {
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/bookings/{id}"))]).into_response(),
        Err(error) => notice(
            StatusCode::CONFLICT,
            "Not booked",
            &error.to_string(),
            Some((&format!("/bookings/{id}"), "Back to the booking")),
        ),
    }
}

pub(crate) async fn bookings_page(State(app): State<AppState>, SignedIn { principal, session }: SignedIn) -> Response {
    let bookings: Vec<crate::agency::BookingView> =
        match app.agency.bookings(Some(principal.user), None, crate::request::PAGE_DEFAULT).await {
            Ok(bookings) => bookings.iter().map(crate::agency::booking_view).collect(),
            Err(error) => return ApiError::from(error).into_response(),
        };
    let today = app.now().date().to_string();
    // Dates are `YYYY-MM-DD`, so they compare as text.
    let starts = |b: &crate::agency::BookingView| b.parts.iter().map(|p| p.starts_on.clone()).min().unwrap_or_default();
    let live = |b: &crate::agency::BookingView| !matches!(b.state, "failed" | "cancelled");
    let (mut upcoming, past): (Vec<_>, Vec<_>) = bookings.into_iter().partition(|b| live(b) && starts(b) >= today);
    upcoming.sort_by_key(starts);
    render(&BookingsPage { nav: Nav::of(&principal, &session), upcoming, past })
}

/// Lets go of a held booking, or cancels a confirmed one, from its page.
pub(crate) async fn cancel(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    SignedInForm(SignedIn { principal, .. }, _): SignedInForm<CsrfOnly>,
) -> Response {
    let Some(booking) = own(&app, &principal, id).await else { return no_such_booking() };
    let outcome = match booking.saga.phase {
        caravan_booking::Phase::Held => app.agency.decide_booking(id, caravan_booking::agency::Decision::Release).await,
        _ => app.agency.cancel_booking(id).await,
    };
    match outcome {
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/bookings/{id}"))]).into_response(),
        Err(error) => notice(
            StatusCode::CONFLICT,
            "Not done",
            &error.to_string(),
            Some((&format!("/bookings/{id}"), "Back to the booking")),
        ),
    }
}

session_forms!(BookInput, TravellerForm);
