//! Pages for people, server-rendered with askama and made lively with htmx
//! (a search form replaces only its results, a held booking counts down).
//! Assets are embedded in the binary; no JavaScript build step.
//!
//! One module per audience: `search` and `booking` for travellers,
//! `account` for signing in and API tokens, `provider` for the back
//! office, `admin` for the console; `session` holds the cookies, CSRF
//! checks and the extractors every signed-in page takes.

use askama::Template;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use caravan_accounts::token::Secret;
use caravan_accounts::Principal;
use serde::Deserialize;

use crate::ApiError;

/// Implements [`session::SessionForm`] for forms whose CSRF field is `csrf`.
macro_rules! session_forms {
    ($($form:ty),*) => {
        $(impl crate::pages::session::SessionForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod booking;
pub(crate) mod provider;
pub(crate) mod search;
pub(crate) mod session;

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

const FORM_EXPIRED: &str = "the form expired; please try again";

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

fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => ApiError::internal(format!("rendering a page: {error}")).into_response(),
    }
}

/// An RFC 3339 instant as people read it: `2026-11-22 09:17 UTC` (anything
/// else as it is).
pub(crate) fn when(instant: &str) -> String {
    match (instant.get(..10), instant.get(10..11), instant.get(11..16)) {
        (Some(day), Some("T"), Some(time)) if instant.ends_with('Z') => format!("{day} {time} UTC"),
        _ => instant.to_owned(),
    }
}

/// The status a refused password check answers with.
fn refusal_status(refusal: &caravan_accounts::LoginRefusal) -> StatusCode {
    use caravan_accounts::LoginRefusal;
    match refusal {
        LoginRefusal::WrongCredentials | LoginRefusal::Unverified => StatusCode::UNAUTHORIZED,
        LoginRefusal::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        LoginRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The status and the words a person reads when an account step fails.
/// Our own failures are logged here, once, and shown without details.
fn account_refusal(error: crate::AccountsError) -> (StatusCode, String) {
    use crate::AccountsError;
    let message = error.to_string();
    match error {
        AccountsError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, message),
        AccountsError::BadLink => (StatusCode::BAD_REQUEST, message),
        AccountsError::MailNotSent => (StatusCode::SERVICE_UNAVAILABLE, message),
        AccountsError::Internal(cause) => {
            tracing::error!(%cause, "account step failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side; please try again later.".into())
        }
    }
}

/// The embedded assets, by name.
const ASSETS: [(&str, &str, &[u8]); 2] = [
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../assets/app.css")),
    ("htmx-2.0.4.min.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/htmx-2.0.4.min.js")),
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

#[derive(Debug, Deserialize)]
pub(crate) struct MessageQuery {
    done: Option<String>,
}

/// A form that carries nothing but its CSRF token (a button).
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: String,
}

session_forms!(CsrfOnly);

#[cfg(test)]
mod tests {
    #[test]
    fn instants_read_as_people_read_them() {
        assert_eq!(super::when("2026-11-22T09:17:49.677Z"), "2026-11-22 09:17 UTC");
        assert_eq!(super::when("soon"), "soon");
        assert_eq!(super::when("2026-11-22 09:17"), "2026-11-22 09:17");
    }
}
