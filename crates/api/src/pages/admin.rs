//! The admin console: the node's status and the accounts and their roles.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::{SignedIn, SignedInForm};
use super::{notice, render, MessageQuery, Nav};
use crate::{ApiError, Backend};

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
    accounts: Vec<AccountRow>,
    message: Option<String>,
}

/// Origins the admin page lists, those with the most records first.
const ORIGINS_SHOWN: u32 = 50;

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
    let accounts: Vec<AccountRow> = match backend.accounts(0, ACCOUNTS_SHOWN).await {
        Ok(rows) => rows
            .into_iter()
            .map(|(id, email, role, verified)| AccountRow { id, email, role: role.as_str(), verified })
            .collect(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    // Only a number comes back in the query, so a crafted link cannot put
    // its own words on the page.
    let changed = query.done.as_deref().and_then(|user| user.parse::<u64>().ok());
    let message = changed.and_then(|user| accounts.iter().find(|a| a.id == user).map(|a| a.email.clone()));
    let message = message.map(|email| format!("Saved: {email} has a new role."));
    let status = backend.status(false).await.ok();
    let (origins, frozen) = match backend.origins(ORIGINS_SHOWN).await {
        Ok(found) => found,
        Err(error) => return ApiError::internal(error).into_response(),
    };
    let peers = backend.peers();
    render(&AdminPage { nav: Nav::of(&principal, &session), status, peers, origins, frozen, accounts, message })
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

session_forms!(RoleForm);
