//! Pages for people, server-rendered with askama and made lively with htmx
//! (a search form replaces only its results). Assets are embedded in the
//! binary; no JavaScript build step. This first slice is the traveller's
//! search; booking, accounts, the provider back office and the admin
//! console follow (issue 5).

use askama::Template;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use caravan_accounts::token::Secret;
use caravan_accounts::{LoginRefusal, Principal};
use serde::Deserialize;
use std::net::SocketAddr;

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

/// The account part of every page's header.
#[derive(Debug, Default)]
pub(crate) struct Nav {
    /// The signed-in account's email.
    user: Option<String>,
    /// The session's CSRF token, for the log-out form.
    csrf: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    nav: Nav,
    stay: StayForm,
    trip: TripForm,
}

const FORM_EXPIRED: &str = "the form expired; please try again";

#[derive(Template)]
#[template(path = "register.html")]
struct Register {
    nav: Nav,
    form_csrf: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct Forgot {
    nav: Nav,
    form_csrf: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct Reset {
    nav: Nav,
    form_csrf: String,
    token: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "notice.html")]
struct Notice {
    nav: Nav,
    heading: String,
    message: String,
    next: Option<(String, String)>,
}

fn notice(status: StatusCode, heading: &str, message: &str, next: Option<(&str, &str)>) -> Response {
    let next = next.map(|(href, label)| (href.to_owned(), label.to_owned()));
    let page = Notice { nav: Nav::default(), heading: heading.to_owned(), message: message.to_owned(), next };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login {
    nav: Nav,
    /// The login form's CSRF token (double-submitted: also in a cookie).
    form_csrf: String,
    email: String,
    error: Option<String>,
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

fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => ApiError::internal(format!("rendering a page: {error}")).into_response(),
    }
}

pub(crate) async fn home<B: Backend>(State(backend): State<B>, headers: HeaderMap) -> Response {
    let nav = nav(&backend, &headers).await;
    let stay = StayForm { guests: "2".into(), ..StayForm::default() };
    let trip = TripForm { seats: "1".into(), sort: "arrival".into(), ..TripForm::default() };
    render(&Home { nav, stay, trip })
}

pub(crate) async fn stays<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
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
    let nav = nav(&backend, &headers).await;
    let mut page = Stays { nav, stay, searched, error: bad_query, offers: Vec::new() };
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
    headers: HeaderMap,
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
    let nav = nav(&backend, &headers).await;
    let mut page = Trips { nav, trip, searched, error: bad_query, itineraries: Vec::new() };
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

const SESSION_COOKIE: &str = "caravan_session";
/// The double-submit token of the forms one fills in before logging in.
const FORM_CSRF_COOKIE: &str = "caravan_csrf";
/// A session cookie lives as long as the session token (7 days).
const SESSION_COOKIE_AGE_S: i64 = 7 * 24 * 3600;

/// The value of cookie `name`, if the request carries it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The signed-in account and its session, if the session cookie is live.
pub(crate) async fn current<B: Backend>(backend: &B, headers: &HeaderMap) -> Option<(Principal, Secret)> {
    let session = Secret::parse(&cookie(headers, SESSION_COOKIE)?)?;
    let principal = backend.session(&session).await.ok()??;
    Some((principal, session))
}

async fn nav<B: Backend>(backend: &B, headers: &HeaderMap) -> Nav {
    match current(backend, headers).await {
        Some((principal, session)) => Nav { user: Some(principal.email), csrf: session.csrf() },
        None => Nav::default(),
    }
}

fn random_hex<B: Backend>(backend: &B) -> String {
    (0..4).map(|_| format!("{:08x}", backend.random_u32())).collect()
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = value.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Renders a form page for someone not logged in: the form carries a
/// token that must come back equal to a cookie's (double submit), set
/// here when the browser has none yet.
fn anonymous_form<B: Backend>(
    backend: &B,
    headers: &HeaderMap,
    status: StatusCode,
    page: impl FnOnce(String) -> Response,
) -> Response {
    let (form_csrf, fresh) = match cookie(headers, FORM_CSRF_COOKIE).filter(|v| v.len() == 32) {
        Some(token) => (token, false),
        None => (random_hex(backend), true),
    };
    let mut response = page(form_csrf.clone());
    *response.status_mut() = status;
    if fresh {
        set_cookie(&mut response, format!("{FORM_CSRF_COOKIE}={form_csrf}; HttpOnly; SameSite=Strict; Path=/"));
    }
    response
}

/// Whether an anonymous form came back with its cookie's token.
fn form_csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    cookie(headers, FORM_CSRF_COOKIE).is_some_and(|expected| expected == sent)
}

fn login_page<B: Backend>(
    backend: &B,
    headers: &HeaderMap,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    anonymous_form(backend, headers, status, |form_csrf| {
        render(&Login { nav: Nav::default(), form_csrf, email, error })
    })
}

pub(crate) async fn login_form<B: Backend>(State(backend): State<B>, headers: HeaderMap) -> Response {
    login_page(&backend, &headers, String::new(), None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginInput {
    email: String,
    password: String,
    csrf: String,
}

pub(crate) async fn login<B: Backend>(
    State(backend): State<B>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(input): Form<LoginInput>,
) -> Response {
    if !form_csrf_ok(&headers, &input.csrf) {
        let error = Some(FORM_EXPIRED.to_owned());
        return login_page(&backend, &headers, input.email, error, StatusCode::FORBIDDEN);
    }
    let client =
        connect.map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(address))| address.ip().to_string());
    match backend.login(&input.email, &input.password, &client).await {
        Ok((_, session)) => {
            // A new session id at every login: a fixated cookie is worthless.
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={SESSION_COOKIE_AGE_S}",
                session.reveal()
            );
            set_cookie(&mut response, cookie);
            response
        }
        Err(refusal) => {
            let status = match refusal {
                LoginRefusal::WrongCredentials | LoginRefusal::Unverified => StatusCode::UNAUTHORIZED,
                LoginRefusal::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                LoginRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            login_page(&backend, &headers, input.email, Some(refusal.to_string()), status)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: String,
}

pub(crate) async fn logout<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
    Form(input): Form<CsrfOnly>,
) -> Response {
    let Some((_, session)) = current(&backend, &headers).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    if input.csrf != session.csrf() {
        return (StatusCode::FORBIDDEN, "the form expired; reload the page").into_response();
    }
    if let Err(error) = backend.logout(&session).await {
        return ApiError::internal(error).into_response();
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    set_cookie(&mut response, format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"));
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct AccountInput {
    email: String,
    #[serde(default)]
    password: String,
    csrf: String,
}

pub(crate) async fn register_form<B: Backend>(State(backend): State<B>, headers: HeaderMap) -> Response {
    anonymous_form(&backend, &headers, StatusCode::OK, |form_csrf| {
        render(&Register { nav: Nav::default(), form_csrf, email: String::new(), error: None })
    })
}

pub(crate) async fn register<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
    Form(input): Form<AccountInput>,
) -> Response {
    let refused = |status, error: String, email: String| {
        anonymous_form(&backend, &headers, status, |form_csrf| {
            render(&Register { nav: Nav::default(), form_csrf, email, error: Some(error) })
        })
    };
    if !form_csrf_ok(&headers, &input.csrf) {
        return refused(StatusCode::FORBIDDEN, FORM_EXPIRED.into(), input.email);
    }
    match backend.register(&input.email, &input.password).await {
        Ok(()) => notice(
            StatusCode::OK,
            "Check your mail",
            &format!("We sent a link to {} to confirm the address. Follow it, then log in.", input.email.trim()),
            None,
        ),
        Err(message) => refused(StatusCode::UNPROCESSABLE_ENTITY, message, input.email),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

pub(crate) async fn verify<B: Backend>(State(backend): State<B>, Query(query): Query<TokenQuery>) -> Response {
    let Some(token) = query.token.as_deref().and_then(Secret::parse) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "This link is incomplete; copy it whole from the mail.",
            None,
        );
    };
    match backend.verify_email(&token).await {
        Ok(()) => {
            notice(StatusCode::OK, "Address confirmed", "Thank you. You can log in now.", Some(("/login", "Log in")))
        }
        Err(message) => notice(StatusCode::BAD_REQUEST, "Link not valid", &message, None),
    }
}

pub(crate) async fn forgot_form<B: Backend>(State(backend): State<B>, headers: HeaderMap) -> Response {
    anonymous_form(&backend, &headers, StatusCode::OK, |form_csrf| {
        render(&Forgot { nav: Nav::default(), form_csrf, email: String::new(), error: None })
    })
}

pub(crate) async fn forgot<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
    Form(input): Form<AccountInput>,
) -> Response {
    if !form_csrf_ok(&headers, &input.csrf) {
        return anonymous_form(&backend, &headers, StatusCode::FORBIDDEN, |form_csrf| {
            render(&Forgot { nav: Nav::default(), form_csrf, email: input.email, error: Some(FORM_EXPIRED.into()) })
        });
    }
    match backend.request_reset(&input.email).await {
        // The same answer whether or not the address has an account.
        Ok(()) => notice(
            StatusCode::OK,
            "Check your mail",
            "If that address has an account, a reset link is on its way; it works once, within the hour.",
            None,
        ),
        Err(message) => notice(StatusCode::SERVICE_UNAVAILABLE, "Not sent", &message, None),
    }
}

pub(crate) async fn reset_form<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    anonymous_form(&backend, &headers, StatusCode::OK, |form_csrf| {
        render(&Reset { nav: Nav::default(), form_csrf, token, error: None })
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResetInput {
    token: String,
    password: String,
    csrf: String,
}

pub(crate) async fn reset<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
    Form(input): Form<ResetInput>,
) -> Response {
    let refused = |status, error: String, token: String| {
        anonymous_form(&backend, &headers, status, |form_csrf| {
            render(&Reset { nav: Nav::default(), form_csrf, token, error: Some(error) })
        })
    };
    if !form_csrf_ok(&headers, &input.csrf) {
        return refused(StatusCode::FORBIDDEN, FORM_EXPIRED.into(), input.token);
    }
    let Some(token) = Secret::parse(&input.token) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "This link is incomplete; ask for a new one.",
            Some(("/forgot", "New link")),
        );
    };
    match backend.reset_password(&token, &input.password).await {
        Ok(()) => notice(
            StatusCode::OK,
            "Password changed",
            "Your other sessions have ended. Log in with the new password.",
            Some(("/login", "Log in")),
        ),
        Err(message) => refused(StatusCode::UNPROCESSABLE_ENTITY, message, input.token),
    }
}
