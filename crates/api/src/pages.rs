//! Pages for people, server-rendered with askama and made lively with htmx
//! (a search form replaces only its results). Assets are embedded in the
//! binary; no JavaScript build step. This first slice is the traveller's
//! search; booking, accounts, the provider back office and the admin
//! console follow (issue 5).

use askama::Template;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
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
    /// Whether to link the provider's pages.
    provider: bool,
    /// Whether to link the admin's pages.
    admin: bool,
}

impl Nav {
    fn of(principal: &Principal, session: &Secret) -> Nav {
        Nav {
            user: Some(principal.email.clone()),
            csrf: session.csrf(),
            provider: principal.role.allows(caravan_accounts::Role::Provider),
            admin: principal.role == caravan_accounts::Role::Admin,
        }
    }
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

/// A search page's parameters, or empty ones and why the query did not parse.
fn query_or_default<T: Default>(params: Result<Query<T>, QueryRejection>) -> (T, Option<String>) {
    match params {
        Ok(Query(params)) => (params, None),
        Err(rejection) => (T::default(), Some(rejection.body_text())),
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
    let (params, bad_query) = query_or_default(params);
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
    let (params, bad_query) = query_or_default(params);
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
            Ok(query) => {
                page.itineraries = backend.search_trips(&query).iter().map(|i| itinerary_view(i, query.seats)).collect()
            }
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

/// The signed-in account and its session; a request without one is
/// sent to the login page.
pub(crate) struct SignedIn {
    principal: Principal,
    session: Secret,
}

impl<B: Backend> FromRequestParts<B> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, backend: &B) -> Result<SignedIn, Response> {
        match current(backend, &parts.headers).await {
            Some((principal, session)) => Ok(SignedIn { principal, session }),
            None => Err(to_login()),
        }
    }
}

/// A form posted by a signed-in account, with the CSRF token of its session.
pub(crate) trait SessionForm {
    fn csrf(&self) -> &str;
}

/// A signed-in account's form whose CSRF token matched; anything else is
/// refused before the handler runs.
pub(crate) struct SignedInForm<T>(SignedIn, T);

impl<B: Backend, T: SessionForm + serde::de::DeserializeOwned + Send> FromRequest<B> for SignedInForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, backend: &B) -> Result<SignedInForm<T>, Response> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, backend).await?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), backend)
            .await
            .map_err(IntoResponse::into_response)?;
        if form.csrf() != signed_in.session.csrf() {
            return Err((StatusCode::FORBIDDEN, FORM_EXPIRED).into_response());
        }
        Ok(SignedInForm(signed_in, form))
    }
}

macro_rules! session_forms {
    ($($form:ty),*) => {
        $(impl SessionForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}

session_forms!(BookInput, CsrfOnly, AriForm, RoleForm, NewToken, RevokeToken);

async fn nav<B: Backend>(backend: &B, headers: &HeaderMap) -> Nav {
    match current(backend, headers).await {
        Some((principal, session)) => Nav::of(&principal, &session),
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

/// One part of a booking as the pages carry it from a search result to the
/// booking form: `stay~origin~listing~check_in~check_out~units~guests` or
/// `trip~origin~listing~departure~seats`, parts joined by `!` (characters
/// no listing id, date or hex origin contains, and that need no escaping
/// in a URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BookPart {
    Stay {
        origin: caravan_records::Origin,
        listing: String,
        check_in: caravan_model::Date,
        check_out: caravan_model::Date,
        units: u32,
        guests: u32,
    },
    Trip {
        origin: caravan_records::Origin,
        listing: String,
        departure: caravan_model::Date,
        seats: u32,
    },
}

impl BookPart {
    pub(crate) fn encode(&self) -> String {
        match self {
            BookPart::Stay { origin, listing, check_in, check_out, units, guests } => {
                format!("stay~{}~{listing}~{check_in}~{check_out}~{units}~{guests}", origin.to_hex())
            }
            BookPart::Trip { origin, listing, departure, seats } => {
                format!("trip~{}~{listing}~{departure}~{seats}", origin.to_hex())
            }
        }
    }

    pub(crate) fn encode_all(parts: impl Iterator<Item = BookPart>) -> String {
        parts.map(|p| p.encode()).collect::<Vec<_>>().join("!")
    }

    fn decode_all(text: &str) -> Option<Vec<BookPart>> {
        let parts: Option<Vec<BookPart>> = text.split('!').map(BookPart::decode).collect();
        parts.filter(|p| !p.is_empty() && p.len() <= caravan_booking::saga::PARTS_MAX)
    }

    fn decode(text: &str) -> Option<BookPart> {
        let fields: Vec<&str> = text.split('~').collect();
        let origin = caravan_records::Origin::from_hex(fields.get(1)?)?;
        let date = |i: usize| caravan_model::Date::parse(fields.get(i)?).ok();
        let number = |i: usize| fields.get(i)?.parse::<u32>().ok();
        let listing = caravan_model::ListingId::parse(fields.get(2)?).ok()?.to_string();
        match (fields[0], fields.len()) {
            ("stay", 7) => Some(BookPart::Stay {
                origin,
                listing,
                check_in: date(3)?,
                check_out: date(4)?,
                units: number(5)?,
                guests: number(6)?,
            }),
            ("trip", 5) => Some(BookPart::Trip { origin, listing, departure: date(3)?, seats: number(4)? }),
            _ => None,
        }
    }

    fn spec(&self) -> (caravan_records::Origin, caravan_booking::HoldSpec) {
        let listing = caravan_model::ListingId::parse(match self {
            BookPart::Stay { listing, .. } | BookPart::Trip { listing, .. } => listing,
        })
        .expect("checked when decoded");
        let (origin, request) = match self {
            BookPart::Stay { origin, check_in, check_out, units, guests, .. } => (
                *origin,
                caravan_ledger::HoldRequest::Stay {
                    listing,
                    check_in: *check_in,
                    check_out: *check_out,
                    units: *units,
                    guests: *guests,
                },
            ),
            BookPart::Trip { origin, departure, seats, .. } => (
                *origin,
                caravan_ledger::HoldRequest::Trip {
                    listing,
                    departure: *departure,
                    seats: *seats,
                    seat_numbers: Vec::new(),
                },
            ),
        };
        (origin, caravan_booking::HoldSpec { request, hold_seconds: 0, expected_total_minor: None, traveller: None })
    }

    fn describe(&self) -> String {
        match self {
            BookPart::Stay { listing, check_in, check_out, units, guests, .. } => {
                format!("{listing}: {units} room(s) for {guests} guest(s), {check_in} to {check_out}")
            }
            BookPart::Trip { listing, departure, seats, .. } => format!("{listing}: {seats} seat(s) on {departure}"),
        }
    }
}

#[derive(Template)]
#[template(path = "book.html")]
struct Book {
    nav: Nav,
    summary: String,
    parts: String,
    name: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage {
    nav: Nav,
    booking: crate::agency::BookingView,
    minutes_left: i64,
}

#[derive(Template)]
#[template(path = "bookings.html")]
struct BookingsPage {
    nav: Nav,
    bookings: Vec<crate::agency::BookingView>,
}

fn to_login() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response()
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
    let summary = parts.iter().map(BookPart::describe).collect::<Vec<_>>().join("; ");
    let nav = Nav::of(&principal, &session);
    render(&Book { nav, summary, parts: query.parts, name: String::new(), email: principal.email, error: None })
}

#[derive(Debug, Deserialize)]
pub(crate) struct BookInput {
    csrf: String,
    parts: String,
    name: String,
    email: String,
    #[serde(default)]
    phone: String,
}

pub(crate) async fn book<B: Backend>(
    State(backend): State<B>,
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
    let phone = Some(input.phone.trim().to_owned()).filter(|p| !p.is_empty());
    let traveller =
        caravan_model::Traveller { name: input.name.trim().to_owned(), email: input.email.trim().to_owned(), phone };
    let new = caravan_booking::agency::NewBooking {
        client_key: None,
        user: Some(principal.user),
        traveller,
        parts: parts.iter().map(BookPart::spec).collect(),
        wait_to_confirm: true,
    };
    match backend.create_booking(new).await {
        Ok(booking) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/bookings/{}", booking.saga.id))]).into_response()
        }
        Err(error) => {
            let summary = parts.iter().map(BookPart::describe).collect::<Vec<_>>().join("; ");
            let nav = Nav::of(&principal, &session);
            let page = Book {
                nav,
                summary,
                parts: input.parts,
                name: input.name,
                email: input.email,
                error: Some(error.to_string()),
            };
            let mut response = render(&page);
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
    }
}

/// The signed-in traveller's booking `id` (another's is "not found").
async fn own<B: Backend>(backend: &B, principal: &Principal, id: u64) -> Option<caravan_booking::agency::Booking> {
    crate::agency::own_booking(backend, principal, id).await.ok()
}

pub(crate) async fn booking_page<B: Backend>(
    State(backend): State<B>,
    SignedIn { principal, session }: SignedIn,
    Path(id): Path<u64>,
) -> Response {
    let Some(booking) = own(&backend, &principal, id).await else {
        return notice(
            StatusCode::NOT_FOUND,
            "No such booking",
            "There is no booking of yours with that number.",
            Some(("/bookings", "My bookings")),
        );
    };
    let minutes_left = booking.saga.held_until().map_or(0, |at| ((at.ms() - backend.now().ms()) / 60_000).max(0));
    let nav = Nav::of(&principal, &session);
    render(&BookingPage { nav, booking: crate::agency::booking_view_now(&backend, &booking), minutes_left })
}

pub(crate) async fn bookings_page<B: Backend>(
    State(backend): State<B>,
    SignedIn { principal, session }: SignedIn,
) -> Response {
    let bookings = match backend.bookings(Some(principal.user), None, crate::routes::PAGE_DEFAULT).await {
        Ok(bookings) => bookings.iter().map(crate::agency::booking_view).collect(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    render(&BookingsPage { nav: Nav::of(&principal, &session), bookings })
}

/// Confirm (or let go of, or cancel) a booking from its page.
pub(crate) async fn booking_action<B: Backend>(
    State(backend): State<B>,
    Path((id, action)): Path<(u64, String)>,
    SignedInForm(SignedIn { principal, .. }, _): SignedInForm<CsrfOnly>,
) -> Response {
    let Some(booking) = own(&backend, &principal, id).await else {
        return notice(
            StatusCode::NOT_FOUND,
            "No such booking",
            "There is no booking of yours with that number.",
            None,
        );
    };
    use caravan_booking::agency::Decision;
    let outcome = match (action.as_str(), booking.saga.phase) {
        ("confirm", _) => backend.decide_booking(id, Decision::Confirm).await,
        ("cancel", caravan_booking::Phase::Held) => backend.decide_booking(id, Decision::Release).await,
        ("cancel", _) => backend.cancel_booking(id).await,
        _ => return notice(StatusCode::NOT_FOUND, "Not found", "No such action.", None),
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

pub(crate) async fn listing_page<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
    Path((origin, id)): Path<(String, String)>,
) -> Response {
    let not_found = || {
        notice(StatusCode::NOT_FOUND, "No such listing", "This listing is not in the catalog.", Some(("/", "Search")))
    };
    let Some(origin) = caravan_records::Origin::from_hex(&origin) else { return not_found() };
    let Some(listing) = backend.catalog_listing(&origin, &id) else { return not_found() };
    let runs = backend.catalog_runs(&origin, &id).unwrap_or_default();
    let today = backend.now().date();
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
        nav: nav(&backend, &headers).await,
        title: listing.title.clone(),
        place,
        description: listing.description.clone(),
        policy: format!("Free cancellation until {} hours before; later, {penalty}.", policy.free_until_hours),
        currency: listing.currency.as_str().to_owned(),
        days,
    };
    render(&page)
}

/// One service in the provider's list.
#[derive(Debug)]
struct ServiceRow {
    id: String,
    title: String,
    kind: &'static str,
    currency: String,
    withdrawn: bool,
    /// What is left and at what price over the next days, in short.
    week: String,
}

#[derive(Template)]
#[template(path = "provider.html")]
struct ProviderPage {
    nav: Nav,
    services: Vec<ServiceRow>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageQuery {
    done: Option<String>,
}

/// Days of terms summarized per service.
const SUMMARY_DAYS: i32 = 7;

pub(crate) async fn provider_page<B: Backend>(
    State(backend): State<B>,
    SignedIn { principal, session }: SignedIn,
    Query(query): Query<MessageQuery>,
) -> Response {
    if !principal.role.allows(caravan_accounts::Role::Provider) {
        return notice(
            StatusCode::FORBIDDEN,
            "Providers only",
            "This page is for accounts that manage services.",
            None,
        );
    }
    let managed: Option<std::collections::BTreeSet<String>> = match principal.role {
        caravan_accounts::Role::Admin => None,
        _ => match backend.managed_listings(principal.user).await {
            Ok(ids) => Some(ids.into_iter().collect()),
            Err(error) => return ApiError::internal(error).into_response(),
        },
    };
    let today = backend.now().date();
    let services = backend.read_ledger(|ledger| {
        ledger
            .listings()
            .filter(|state| managed.as_ref().is_none_or(|m| m.contains(state.listing.id.as_str())))
            .map(|state| {
                let week: Vec<String> = (0..SUMMARY_DAYS)
                    .map(|offset| match state.days.get(&today.add_days(offset)) {
                        Some(day) if !day.terms.stop_sell => {
                            format!(
                                "{} left at {}",
                                day.free(),
                                caravan_model::Money::new(day.terms.price_minor, state.listing.currency)
                            )
                        }
                        _ => "closed".to_owned(),
                    })
                    .collect();
                ServiceRow {
                    id: state.listing.id.to_string(),
                    title: state.listing.title.clone(),
                    kind: if state.listing.stay().is_some() { "stay" } else { "trip" },
                    currency: state.listing.currency.as_str().to_owned(),
                    withdrawn: state.withdrawn,
                    week: week.join(", "),
                }
            })
            .collect()
    });
    let message = query.done.map(|id| format!("Saved: {id} has its new prices and availability."));
    render(&ProviderPage { nav: Nav::of(&principal, &session), services, message })
}

#[derive(Debug, Deserialize)]
pub(crate) struct AriForm {
    csrf: String,
    listing: String,
    from: String,
    to: String,
    available: u32,
    /// In major units ("120.50").
    price: String,
}

/// A price in major units as minor units, for a currency with two decimals.
fn minor_units(price: &str) -> Option<i64> {
    let (whole, cents) = price.trim().split_once('.').unwrap_or((price.trim(), "0"));
    let cents = format!("{cents:0<2}");
    if cents.len() > 2 {
        return None;
    }
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents.parse::<i64>().ok()?)
}

pub(crate) async fn provider_ari<B: Backend>(
    State(backend): State<B>,
    SignedInForm(SignedIn { principal, .. }, form): SignedInForm<AriForm>,
) -> Response {
    let back = Some(("/provider", "Back to my services"));
    let Ok(listing) = caravan_model::ListingId::parse(&form.listing) else {
        return notice(StatusCode::NOT_FOUND, "No such service", "That service does not exist.", back);
    };
    if let Err(refused) = crate::auth::need_manager(&backend, &principal, &listing).await {
        return notice(refused.status, "Not yours", &refused.message, back);
    }
    let dates =
        caravan_model::Date::parse(&form.from).and_then(|from| Ok((from, caravan_model::Date::parse(&form.to)?)));
    let (Ok((from, to)), Some(price_minor)) = (dates, minor_units(&form.price)) else {
        return notice(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not saved",
            "Give both dates and a price such as 120 or 120.50.",
            back,
        );
    };
    let patch = caravan_model::AriPatch {
        available: Some(form.available),
        price_minor: Some(price_minor),
        ..Default::default()
    };
    match backend.submit(caravan_ledger::Command::SetAri { listing: listing.clone(), from, to, patch }).await {
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/provider?done={listing}"))]).into_response(),
        Err(error) => {
            let error = ApiError::from(error);
            notice(error.status, "Not saved", &error.message, back)
        }
    }
}

#[derive(Debug)]
struct AccountRow {
    id: u64,
    email: String,
    role: &'static str,
    verified: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    nav: Nav,
    status: Option<crate::dto::NodeStatus>,
    accounts: Vec<AccountRow>,
    message: Option<String>,
}

/// Accounts the admin page lists.
const ACCOUNTS_SHOWN: u32 = 500;

pub(crate) async fn admin_page<B: Backend>(
    State(backend): State<B>,
    SignedIn { principal, session }: SignedIn,
    Query(query): Query<MessageQuery>,
) -> Response {
    if principal.role != caravan_accounts::Role::Admin {
        return notice(StatusCode::FORBIDDEN, "Admins only", "This page is for the node's administrators.", None);
    }
    let accounts = match backend.accounts(0, ACCOUNTS_SHOWN).await {
        Ok(rows) => rows
            .into_iter()
            .map(|(id, email, role, verified)| AccountRow { id, email, role: role.as_str(), verified })
            .collect(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    let message = query.done.map(|who| format!("Saved: {who} has a new role."));
    let status = backend.status(false).await.ok();
    render(&AdminPage { nav: Nav::of(&principal, &session), status, accounts, message })
}

#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    csrf: String,
    user: u64,
    role: String,
}

pub(crate) async fn admin_role<B: Backend>(
    State(backend): State<B>,
    SignedInForm(SignedIn { principal, .. }, form): SignedInForm<RoleForm>,
) -> Response {
    let back = Some(("/admin", "Back to the accounts"));
    if principal.role != caravan_accounts::Role::Admin {
        return notice(StatusCode::FORBIDDEN, "Admins only", "Only an administrator changes roles.", None);
    }
    let Ok(role) = caravan_accounts::Role::parse(&form.role) else {
        return notice(StatusCode::UNPROCESSABLE_ENTITY, "Not saved", "A role is traveller, provider or admin.", back);
    };
    if form.user == principal.user && role != caravan_accounts::Role::Admin {
        return notice(
            StatusCode::CONFLICT,
            "Not saved",
            "You cannot take your own admin role away; ask another admin.",
            back,
        );
    }
    match backend.set_role(form.user, role).await {
        Ok(true) => (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/admin?done={}", form.user))]).into_response(),
        Ok(false) => notice(StatusCode::NOT_FOUND, "Not saved", "There is no such account.", back),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

#[derive(Debug)]
struct TokenRow {
    hash: String,
    name: String,
    created: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    nav: Nav,
    tokens: Vec<TokenRow>,
    new_secret: Option<String>,
    error: Option<String>,
}

async fn tokens_page<B: Backend>(
    backend: &B,
    principal: &Principal,
    session: &Secret,
    new_secret: Option<String>,
    error: Option<String>,
) -> Response {
    let tokens = match backend.api_tokens(principal.user).await {
        Ok(rows) => rows
            .into_iter()
            .map(|(hash, name, created)| TokenRow { hash, name, created: crate::dto::rfc3339(created) })
            .collect(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    render(&TokensPage { nav: Nav::of(principal, session), tokens, new_secret, error })
}

pub(crate) async fn tokens<B: Backend>(
    State(backend): State<B>,
    SignedIn { principal, session }: SignedIn,
) -> Response {
    tokens_page(&backend, &principal, &session, None, None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewToken {
    csrf: String,
    name: String,
}

pub(crate) async fn create_token<B: Backend>(
    State(backend): State<B>,
    SignedInForm(SignedIn { principal, session }, form): SignedInForm<NewToken>,
) -> Response {
    match backend.issue_api_token(principal.user, &form.name).await {
        Ok(secret) => tokens_page(&backend, &principal, &session, Some(secret.reveal()), None).await,
        Err(message) => tokens_page(&backend, &principal, &session, None, Some(message)).await,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RevokeToken {
    csrf: String,
    hash: String,
}

pub(crate) async fn revoke_token<B: Backend>(
    State(backend): State<B>,
    SignedInForm(SignedIn { principal, session }, form): SignedInForm<RevokeToken>,
) -> Response {
    let hash = hex::decode(&form.hash).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    let outcome = match hash {
        Some(hash) => backend.revoke_api_token(principal.user, hash).await,
        None => Ok(false),
    };
    match outcome {
        Ok(true) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/tokens")]).into_response(),
        Ok(false) => tokens_page(&backend, &principal, &session, None, Some("no such token of yours".into())).await,
        Err(error) => ApiError::internal(error).into_response(),
    }
}
