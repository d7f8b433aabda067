//! Accounts in the browser: log in and out, register, confirm the address,
//! recover a password, and the API tokens one makes for scripts.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use caravan_accounts::token::Secret;
use caravan_accounts::Principal;
use serde::Deserialize;

use super::session::{
    anonymous_form, current, form_csrf_ok, set_cookie, ClientAddress, SignedIn, SignedInForm, SESSION_COOKIE,
    SESSION_COOKIE_AGE_S,
};
use super::{account_refusal, notice, refusal_status, render, CsrfOnly, Nav, FORM_EXPIRED};
use crate::{ApiError, AppState};

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
#[template(path = "login.html")]
struct Login {
    nav: Nav,
    /// The login form's CSRF token (double-submitted: also in a cookie).
    form_csrf: String,
    email: String,
    error: Option<String>,
}

fn login_page(
    app: &AppState,
    headers: &HeaderMap,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    anonymous_form(app, headers, status, |form_csrf| render(&Login { nav: Nav::default(), form_csrf, email, error }))
}

pub(crate) async fn login_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    login_page(&app, &headers, String::new(), None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginInput {
    email: String,
    password: String,
    csrf: String,
}

pub(crate) async fn login(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(input): Form<LoginInput>,
) -> Response {
    if !form_csrf_ok(&headers, &input.csrf) {
        let error = Some(FORM_EXPIRED.to_owned());
        return login_page(&app, &headers, input.email, error, StatusCode::FORBIDDEN);
    }
    match app.accounts.login(&input.email, &input.password, &client).await {
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
        Err(refusal) => login_page(&app, &headers, input.email, Some(refusal.to_string()), refusal_status(&refusal)),
    }
}

pub(crate) async fn logout(State(app): State<AppState>, headers: HeaderMap, Form(input): Form<CsrfOnly>) -> Response {
    let Some((_, session)) = current(&app, &headers).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    if input.csrf != session.csrf() {
        return (StatusCode::FORBIDDEN, "the form expired; reload the page").into_response();
    }
    if let Err(error) = app.accounts.logout(&session).await {
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

pub(crate) async fn register_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    anonymous_form(&app, &headers, StatusCode::OK, |form_csrf| {
        render(&Register { nav: Nav::default(), form_csrf, email: String::new(), error: None })
    })
}

pub(crate) async fn register(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(input): Form<AccountInput>,
) -> Response {
    let refused = |status, error: String, email: String| {
        anonymous_form(&app, &headers, status, |form_csrf| {
            render(&Register { nav: Nav::default(), form_csrf, email, error: Some(error) })
        })
    };
    if !form_csrf_ok(&headers, &input.csrf) {
        return refused(StatusCode::FORBIDDEN, FORM_EXPIRED.into(), input.email);
    }
    match app.accounts.register(&input.email, &input.password).await {
        Ok(()) => notice(
            StatusCode::OK,
            "Check your mail",
            &format!("We sent a link to {} to confirm the address. Follow it, then log in.", input.email.trim()),
            None,
        ),
        Err(error) => {
            let (status, message) = account_refusal(error);
            refused(status, message, input.email)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

pub(crate) async fn verify(State(app): State<AppState>, Query(query): Query<TokenQuery>) -> Response {
    let Some(token) = query.token.as_deref().and_then(Secret::parse) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "This link is incomplete; copy it whole from the mail.",
            None,
        );
    };
    match app.accounts.verify_email(&token).await {
        Ok(()) => {
            notice(StatusCode::OK, "Address confirmed", "Thank you. You can log in now.", Some(("/login", "Log in")))
        }
        Err(error) => {
            let (status, message) = account_refusal(error);
            notice(status, "Link not valid", &message, None)
        }
    }
}

pub(crate) async fn forgot_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    anonymous_form(&app, &headers, StatusCode::OK, |form_csrf| {
        render(&Forgot { nav: Nav::default(), form_csrf, email: String::new(), error: None })
    })
}

pub(crate) async fn forgot(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(input): Form<AccountInput>,
) -> Response {
    if !form_csrf_ok(&headers, &input.csrf) {
        return anonymous_form(&app, &headers, StatusCode::FORBIDDEN, |form_csrf| {
            render(&Forgot { nav: Nav::default(), form_csrf, email: input.email, error: Some(FORM_EXPIRED.into()) })
        });
    }
    match app.accounts.request_reset(&input.email).await {
        // The same answer whether or not the address has an account.
        Ok(()) => notice(
            StatusCode::OK,
            "Check your mail",
            "If that address has an account, a reset link is on its way; it works once, within the hour.",
            None,
        ),
        Err(error) => {
            let (status, message) = account_refusal(error);
            notice(status, "Not sent", &message, None)
        }
    }
}

pub(crate) async fn reset_form(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    anonymous_form(&app, &headers, StatusCode::OK, |form_csrf| {
        render(&Reset { nav: Nav::default(), form_csrf, token, error: None })
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResetInput {
    token: String,
    password: String,
    csrf: String,
}

pub(crate) async fn reset(State(app): State<AppState>, headers: HeaderMap, Form(input): Form<ResetInput>) -> Response {
    let refused = |status, error: String, token: String| {
        anonymous_form(&app, &headers, status, |form_csrf| {
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
    match app.accounts.reset_password(&token, &input.password).await {
        Ok(()) => notice(
            StatusCode::OK,
            "Password changed",
            "Your other sessions have ended. Log in with the new password.",
            Some(("/login", "Log in")),
        ),
        Err(error) => {
            let (status, message) = account_refusal(error);
            refused(status, message, input.token)
        }
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

async fn tokens_page(
    app: &AppState,
    principal: &Principal,
    session: &Secret,
    new_secret: Option<String>,
    error: Option<String>,
) -> Response {
    let tokens = match app.accounts.api_tokens(principal.user).await {
        Ok(rows) => rows
            .into_iter()
            .map(|token| TokenRow { hash: token.hash, name: token.name, created: crate::dto::rfc3339(token.created) })
            .collect(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    render(&TokensPage { nav: Nav::of(principal, session), tokens, new_secret, error })
}

pub(crate) async fn tokens(State(app): State<AppState>, SignedIn { principal, session }: SignedIn) -> Response {
    tokens_page(&app, &principal, &session, None, None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewToken {
    csrf: String,
    name: String,
}

pub(crate) async fn create_token(
    State(app): State<AppState>,
    SignedInForm(SignedIn { principal, session }, form): SignedInForm<NewToken>,
) -> Response {
    match app.accounts.issue_api_token(principal.user, &form.name).await {
        Ok(secret) => tokens_page(&app, &principal, &session, Some(secret.reveal()), None).await,
        Err(error) => {
            let (_, message) = account_refusal(error);
            tokens_page(&app, &principal, &session, None, Some(message)).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RevokeToken {
    csrf: String,
    hash: String,
}

pub(crate) async fn revoke_token(
    State(app): State<AppState>,
    SignedInForm(SignedIn { principal, session }, form): SignedInForm<RevokeToken>,
) -> Response {
    let hash = hex::decode(&form.hash).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    let outcome = match hash {
        Some(hash) => app.accounts.revoke_api_token(principal.user, hash).await,
        None => Ok(false),
    };
    match outcome {
        Ok(true) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/tokens")]).into_response(),
        Ok(false) => tokens_page(&app, &principal, &session, None, Some("no such token of yours".into())).await,
        Err(error) => ApiError::internal(error).into_response(),
    }
}

session_forms!(NewToken, RevokeToken);
