//! Pages for people, server-rendered with askama and made lively with htmx
//! (a search form replaces only its results). Assets are embedded in the
//! binary; no JavaScript build step. This first slice is the traveller's
//! search; booking, accounts, the provider back office and the admin
//! console follow (issue 5).

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::agency::{itinerary_view, offer_view, ItineraryView, StayOfferView, StaySearchParams, TripSearchParams};
use crate::{ApiError, Backend};

/// What the stay form shows back.
#[derive(Debug, Default)]
pub(crate) struct StayForm {
    city: String,
    check_in: String,
    check_out: String,
    guests: String,
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
    stay: StayForm,
    trip: TripForm,
}

#[derive(Template)]
#[template(path = "stays.html")]
struct Stays {
    stay: StayForm,
    searched: bool,
    error: Option<String>,
    offers: Vec<StayOfferView>,
}

#[derive(Template)]
#[template(path = "trips.html")]
struct Trips {
    trip: TripForm,
    searched: bool,
    error: Option<String>,
    itineraries: Vec<ItineraryView>,
}

fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => ApiError::internal(format!("rendering a page: {error}")).into_response(),
    }
}

pub(crate) async fn home() -> Response {
    let stay = StayForm { guests: "2".into(), ..StayForm::default() };
    let trip = TripForm { seats: "1".into(), sort: "arrival".into(), ..TripForm::default() };
    render(&Home { stay, trip })
}

pub(crate) async fn stays<B: Backend>(
    State(backend): State<B>,
    params: Result<Query<StaySearchParams>, QueryRejection>,
) -> Response {
    let (params, bad_query) = match params {
        Ok(Query(params)) => (params, None),
        Err(rejection) => (StaySearchParams::default(), Some(rejection.body_text())),
    };
    let stay = StayForm {
        city: params.city.clone().unwrap_or_default(),
        check_in: params.check_in.clone().unwrap_or_default(),
        check_out: params.check_out.clone().unwrap_or_default(),
        guests: params.guests.unwrap_or(2).to_string(),
    };
    let searched = params.check_in.is_some() || params.city.is_some();
    let mut page = Stays { stay, searched, error: bad_query, offers: Vec::new() };
    if searched {
        match params.query() {
            Ok(query) => {
                page.offers = backend.search_stays(&query).iter().filter_map(|o| offer_view(o, &query)).collect();
            }
            Err(error) => (page.error, page.searched) = (Some(error.message), false),
        }
    }
    render(&page)
}

pub(crate) async fn trips<B: Backend>(
    State(backend): State<B>,
    params: Result<Query<TripSearchParams>, QueryRejection>,
) -> Response {
    let (params, bad_query) = match params {
        Ok(Query(params)) => (params, None),
        Err(rejection) => (TripSearchParams::default(), Some(rejection.body_text())),
    };
    let trip = TripForm {
        from: params.from.clone().unwrap_or_default(),
        to: params.to.clone().unwrap_or_default(),
        date: params.date.clone().unwrap_or_default(),
        seats: params.seats.unwrap_or(1).to_string(),
        sort: params.sort.clone().unwrap_or_else(|| "arrival".into()),
    };
    let searched = params.from.is_some();
    let mut page = Trips { trip, searched, error: bad_query, itineraries: Vec::new() };
    if searched {
        match params.query() {
            Ok(query) => page.itineraries = backend.search_trips(&query).iter().map(itinerary_view).collect(),
            Err(error) => (page.error, page.searched) = (Some(error.message), false),
        }
    }
    render(&page)
}

/// The embedded assets, by name.
const ASSETS: [(&str, &str, &[u8]); 2] = [
    ("app.css", "text/css; charset=utf-8", include_bytes!("../assets/app.css")),
    ("htmx-2.0.4.min.js", "text/javascript; charset=utf-8", include_bytes!("../assets/htmx-2.0.4.min.js")),
];

pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        Some((_, content_type, bytes)) => {
            // Names carry versions, so browsers may keep them for a day.
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=86400")], *bytes)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
