//! The traveller's search: the home page's two forms, stay and trip
//! results, and a listing's page with its calendar.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::session::nav;
use super::{notice, render, Nav};
use crate::agency::{itinerary_view, offer_view, ItineraryView, StayOfferView, StaySearchParams, TripSearchParams};
use crate::book_link::BookPart;
use crate::AppState;

/// What the stay form shows back.
#[derive(Debug, Default)]
pub(crate) struct StayForm {
    city: String,
    check_in: String,
    check_out: String,
    guests: String,
    /// Parts of a trip this stay is added to, encoded as [`BookPart`]s.
    with: String,
    /// Those parts, described.
    with_summary: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct TripForm {
    from: String,
    to: String,
    date: String,
    seats: String,
    sort: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    nav: Nav,
    stay: StayForm,
    trip: TripForm,
}

#[derive(Template)]
#[template(path = "stays.html")]
struct Stays {
    nav: Nav,
    stay: StayForm,
    searched: bool,
    error: Option<String>,
    offers: Vec<StayOfferView>,
}

#[derive(Template)]
#[template(path = "trips.html")]
struct Trips {
    nav: Nav,
    trip: TripForm,
    searched: bool,
    error: Option<String>,
    itineraries: Vec<ItineraryView>,
}

/// A search page's parameters, or empty ones and why the query did not parse.
fn query_or_default<T: Default>(params: Result<Query<T>, QueryRejection>) -> (T, Option<String>) {
    match params {
        Ok(Query(params)) => (params, None),
        Err(rejection) => (T::default(), Some(rejection.body_text())),
    }
}

pub(crate) async fn home(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let nav = nav(&app, &headers).await;
    let stay = StayForm { guests: "2".into(), ..StayForm::default() };
    let trip = TripForm { seats: "1".into(), sort: "arrival".into(), ..TripForm::default() };
    render(&Home { nav, stay, trip })
}

/// Parts already chosen (a trip) that a stay is being added to.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WithParts {
    #[serde(default)]
    with: String,
}

pub(crate) async fn stays(
    State(app): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<StaySearchParams>, QueryRejection>,
    with: Result<Query<WithParts>, QueryRejection>,
) -> Response {
    let (params, bad_query) = query_or_default(params);
    // Only parts that decode are carried on; anything else is dropped.
    let with = query_or_default(with).0.with;
    let with_parts = BookPart::decode_all(&with).filter(|parts| parts.len() < caravan_booking::saga::PARTS_MAX);
    let stay = StayForm {
        city: params.city.clone().unwrap_or_default(),
        check_in: params.check_in.clone().unwrap_or_default(),
        check_out: params.check_out.clone().unwrap_or_default(),
        guests: params.guests.unwrap_or(2).to_string(),
        with: if with_parts.is_some() { with } else { String::new() },
        with_summary: with_parts.map(|parts| BookPart::describe_all(&parts)),
    };
    let searched = params.check_in.is_some() || params.city.is_some();
    let nav = nav(&app, &headers).await;
    let mut page = Stays { nav, stay, searched, error: bad_query, offers: Vec::new() };
    if searched {
        match params.query() {
            Ok(query) => {
                page.offers = app.catalog.search_stays(&query).iter().filter_map(|o| offer_view(o, &query)).collect();
            }
            Err(error) => (page.error, page.searched) = (Some(error.message), false),
        }
    }
    render(&page)
}

pub(crate) async fn trips(
    State(app): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<TripSearchParams>, QueryRejection>,
) -> Response {
    let (params, bad_query) = query_or_default(params);
    let trip = TripForm {
        from: params.from.clone().unwrap_or_default(),
        to: params.to.clone().unwrap_or_default(),
        date: params.date.clone().unwrap_or_default(),
        seats: params.seats.unwrap_or(1).to_string(),
        sort: params.sort.clone().unwrap_or_else(|| "arrival".into()),
    };
    let searched = params.from.is_some();
    let nav = nav(&app, &headers).await;
    let mut page = Trips { nav, trip, searched, error: bad_query, itineraries: Vec::new() };
    if searched {
        match params.query() {
            Ok(query) => {
                page.itineraries =
                    app.catalog.search_trips(&query).iter().map(|i| itinerary_view(i, query.seats)).collect()
            }
            Err(error) => (page.error, page.searched) = (Some(error.message), false),
        }
    }
    render(&page)
}

/// One row of a listing's calendar.
#[derive(Debug)]
struct CalendarDay {
    date: String,
    open: bool,
    price: String,
    left: u32,
}

#[derive(Template)]
#[template(path = "listing.html")]
struct ListingPage {
    nav: Nav,
    title: String,
    place: String,
    description: String,
    policy: String,
    currency: String,
    days: Vec<CalendarDay>,
}

/// Days a listing's page shows.
const CALENDAR_DAYS: i32 = 30;

pub(crate) async fn listing_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((origin, id)): Path<(String, String)>,
) -> Response {
    let not_found = || {
        notice(StatusCode::NOT_FOUND, "No such listing", "This listing is not in the catalog.", Some(("/", "Search")))
    };
    let Some(origin) = caravan_records::Origin::from_hex(&origin) else { return not_found() };
    let Some(listing) = app.catalog.listing(&origin, &id) else { return not_found() };
    let runs = app.catalog.runs(&origin, &id).unwrap_or_default();
    let today = app.now().date();
    let days = (0..CALENDAR_DAYS)
        .map(|offset| {
            let date = today.add_days(offset);
            let day = caravan_model::AriRun::find(&runs, date).filter(|d| !d.stop_sell && d.available > 0);
            CalendarDay {
                date: date.to_string(),
                open: day.is_some(),
                price: day
                    .map(|d| caravan_model::Money::new(d.price_minor, listing.currency).to_string())
                    .unwrap_or_default(),
                left: day.map_or(0, |d| d.available),
            }
        })
        .collect();
    let place = match &listing.details {
        caravan_model::ListingDetails::Stay(stay) => {
            format!("{}, {} · up to {} guests", stay.city, stay.country.as_str(), stay.max_guests)
        }
        caravan_model::ListingDetails::Trip(trip) => {
            let codes: Vec<&str> = trip.stops.iter().map(|s| s.code.as_str()).collect();
            format!("{} {}: {}", trip.operator, trip.service_number, codes.join(" → "))
        }
    };
    let policy = listing.cancellation;
    let penalty = crate::agency::penalty_text(policy.penalty);
    let page = ListingPage {
        nav: nav(&app, &headers).await,
        title: listing.title.clone(),
        place,
        description: listing.description.clone(),
        policy: format!("Free cancellation until {} hours before; later, {penalty}.", policy.free_until_hours),
        currency: listing.currency.as_str().to_owned(),
        days,
    };
    render(&page)
}
