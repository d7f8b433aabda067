//! The admin console: the node's status and the accounts and their roles.

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::{SessionForm, SignedIn, SignedInForm};
use super::{notice, render, MessageQuery, Nav};
use crate::{ApiError, AppState};

/// The page anyone but an admin gets instead of the console.
fn admins_only() -> Response {
    notice(StatusCode::FORBIDDEN, "Admins only", "Only an administrator may use the console.", None)
}

fn is_admin(signed_in: &SignedIn) -> bool {
    signed_in.principal.role == caravan_accounts::Role::Admin
}

/// A signed-in admin on the console; anyone else is answered, before the
/// handler runs, with the page that says it is for admins.
pub(crate) struct SignedInAdmin(SignedIn);

impl FromRequestParts<AppState> for SignedInAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<SignedInAdmin, Response> {
        let signed_in = SignedIn::from_request_parts(parts, app).await?;
        if !is_admin(&signed_in) {
            return Err(admins_only());
        }
        Ok(SignedInAdmin(signed_in))
    }
}

/// A form posted on the console: its CSRF token checked, then the role.
pub(crate) struct AdminForm<T>(SignedIn, T);

impl<T: SessionForm + serde::de::DeserializeOwned + Send> FromRequest<AppState> for AdminForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<AdminForm<T>, Response> {
        let SignedInForm(signed_in, form) = SignedInForm::from_request(request, app).await?;
        if !is_admin(&signed_in) {
            return Err(admins_only());
        }
        Ok(AdminForm(signed_in, form))
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
    peers: Vec<crate::dto::PeerView>,
    origins: Vec<crate::dto::OriginView>,
    frozen: Vec<crate::dto::EquivocationView>,
    group: crate::dto::GroupView,
    accounts: Vec<AccountRow>,
    message: Option<String>,
}

/// Origins the admin page lists, those with the most records first.
const ORIGINS_SHOWN: u32 = 50;

/// Accounts the admin page lists.
const ACCOUNTS_SHOWN: u32 = 500;

pub(crate) async fn admin_page(
    State(app): State<AppState>,
    SignedInAdmin(SignedIn { principal, session }): SignedInAdmin,
    Query(query): Query<MessageQuery>,
) -> Response {
    let accounts: Vec<AccountRow> = match app.accounts.accounts(0, ACCOUNTS_SHOWN).await {
        Ok(rows) => rows
            .into_iter()
            .map(|a| AccountRow { id: a.id, email: a.email, role: a.role.as_str(), verified: a.verified })
            .collect(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    // Only a number comes back in the query, so a crafted link cannot put
    // its own words on the page.
    let changed = query.done.as_deref().and_then(|user| user.parse::<u64>().ok());
    let message = changed.and_then(|user| accounts.iter().find(|a| a.id == user).map(|a| a.email.clone()));
    let message = message.map(|email| format!("Saved: {email} has a new role."));
    let message = match query.done.as_deref() {
        Some("timers") => Some("Saved: every member of the group takes the new timers within moments.".into()),
        _ => message,
    };
    let status = app.admin.status(false).await.ok();
    let (origins, frozen) = match app.admin.origins(ORIGINS_SHOWN).await {
        Ok(found) => found,
        Err(error) => return ApiError::internal(error).into_response(),
    };
    let peers = app.admin.peers();
    let group = app.admin.group();
    let nav = Nav::of(&principal, &session);
    render(&AdminPage { nav, status, peers, origins, frozen, group, accounts, message })
}

#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    csrf: String,
    user: u64,
    role: String,
}

pub(crate) async fn admin_role(
    State(app): State<AppState>,
    AdminForm(SignedIn { principal, .. }, form): AdminForm<RoleForm>,
) -> Response {
    let back = Some(("/admin", "Back to the accounts"));
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
    match app.accounts.set_role(form.user, role).await {
        Ok(true) => (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/admin?done={}", form.user))]).into_response(),
        Ok(false) => notice(StatusCode::NOT_FOUND, "Not saved", "There is no such account.", back),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TimersForm {
    csrf: String,
    heartbeat_ms: String,
    election_timeout_ms: String,
}

/// Sets the replica group's heartbeat and election timeout.
pub(crate) async fn admin_group_timers(
    State(app): State<AppState>,
    AdminForm(_, form): AdminForm<TimersForm>,
) -> Response {
    let back = Some(("/admin", "Back to the console"));
    let parse = |field: &str, text: &str| {
        text.trim().parse::<u64>().map_err(|_| format!("{field} must be a whole number of milliseconds, not {text:?}."))
    };
    let parsed = parse("The heartbeat interval", &form.heartbeat_ms)
        .and_then(|heartbeat| Ok((heartbeat, parse("The election timeout", &form.election_timeout_ms)?)));
    let (heartbeat_ms, election_timeout_ms) = match parsed {
        Ok(timers) => timers,
        Err(why) => return notice(StatusCode::UNPROCESSABLE_ENTITY, "Not saved", &why, back),
    };
    match app.admin.set_group_timers(heartbeat_ms, election_timeout_ms).await {
        Ok(()) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/admin?done=timers")]).into_response(),
        Err(crate::SubmitError::Rejected(rejection)) => {
            notice(StatusCode::UNPROCESSABLE_ENTITY, "Not saved", &rejection.to_string(), back)
        }
        Err(crate::SubmitError::Unavailable(why)) => notice(StatusCode::SERVICE_UNAVAILABLE, "Not saved", &why, back),
    }
}

session_forms!(RoleForm, TimersForm);
