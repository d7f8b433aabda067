//! Browser sessions: the session cookie, the double-submit token of the
//! forms one fills in before logging in, and the extractors that check a
//! signed-in page's session and a form's CSRF token before its handler runs.

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use caravan_accounts::token::Secret;
use caravan_accounts::Principal;
use std::net::SocketAddr;

use super::{Nav, FORM_EXPIRED};
use crate::AppState;

pub(super) const SESSION_COOKIE: &str = "caravan_session";
/// The double-submit token of the forms one fills in before logging in.
pub(super) const FORM_CSRF_COOKIE: &str = "caravan_csrf";
/// A session cookie lives as long as the session token (7 days).
pub(super) const SESSION_COOKIE_AGE_S: i64 = 7 * 24 * 3600;

/// The value of cookie `name`, if the request carries it.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
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
pub(crate) async fn current(app: &AppState, headers: &HeaderMap) -> Option<(Principal, Secret)> {
    let session = Secret::parse(&cookie(headers, SESSION_COOKIE)?)?;
    let principal = app.accounts.session(&session).await.ok()??;
    Some((principal, session))
}

/// The signed-in account and its session; a request without one is
/// sent to the login page.
pub(crate) struct SignedIn {
    pub(super) principal: Principal,
    pub(super) session: Secret,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<SignedIn, Response> {
        match current(app, &parts.headers).await {
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
pub(crate) struct SignedInForm<T>(pub(super) SignedIn, pub(super) T);

impl<T: SessionForm + serde::de::DeserializeOwned + Send> FromRequest<AppState> for SignedInForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<SignedInForm<T>, Response> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, app).await?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(IntoResponse::into_response)?;
        if form.csrf() != signed_in.session.csrf() {
            return Err((StatusCode::FORBIDDEN, FORM_EXPIRED).into_response());
        }
        Ok(SignedInForm(signed_in, form))
    }
}

pub(super) async fn nav(app: &AppState, headers: &HeaderMap) -> Nav {
    match current(app, headers).await {
        Some((principal, session)) => Nav::of(&principal, &session),
        None => Nav::default(),
    }
}

pub(super) fn random_hex(app: &AppState) -> String {
    (0..4).map(|_| format!("{:08x}", (app.random_u32)())).collect()
}

pub(super) fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = value.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Renders a form page for someone not logged in: the form carries a
/// token that must come back equal to a cookie's (double submit), set
/// here when the browser has none yet.
pub(super) fn anonymous_form(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    page: impl FnOnce(String) -> Response,
) -> Response {
    let (form_csrf, fresh) = match cookie(headers, FORM_CSRF_COOKIE).filter(|v| v.len() == 32) {
        Some(token) => (token, false),
        None => (random_hex(app), true),
    };
    let mut response = page(form_csrf.clone());
    *response.status_mut() = status;
    if fresh {
        set_cookie(&mut response, format!("{FORM_CSRF_COOKIE}={form_csrf}; HttpOnly; SameSite=Strict; Path=/"));
    }
    response
}

/// Whether an anonymous form came back with its cookie's token.
pub(super) fn form_csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    cookie(headers, FORM_CSRF_COOKIE).is_some_and(|expected| expected == sent)
}

pub(super) fn to_login() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response()
}

/// The client's IP address, which password checks are throttled by
/// ("unknown" when the server runs without connection info, as in tests).
pub(crate) struct ClientAddress(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddress, Self::Rejection> {
        let connect = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientAddress(connect.map_or_else(|| "unknown".to_owned(), |ConnectInfo(address)| address.ip().to_string())))
    }
}
