//! Who is asking, and may they. Every `/api/v1` request needs an API token
//! (`Authorization: Bearer <64 hex>`, from `caravan user token`) except
//! the public reads: the OpenAPI document, listings and their
//! availability, search, status and the signed records. The middleware
//! puts the caller's [`Principal`] into the request; handlers check roles
//! and, for a service, that the caller manages it.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use caravan_accounts::token::Secret;
use caravan_accounts::{may_manage, Principal, Role};
use caravan_model::ListingId;

use crate::{ApiError, AppState};

/// Reads that anyone may make.
pub(crate) fn is_public(method: &Method, path: &str) -> bool {
    const PUBLIC_READS: [&str; 5] =
        ["/api/v1/openapi.json", "/api/v1/listings", "/api/v1/search/", "/api/v1/status", "/api/v1/records"];
    let reading = method == Method::GET || method == Method::HEAD;
    !path.starts_with("/api/v1/") || (reading && PUBLIC_READS.iter().any(|p| path.starts_with(p)))
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// The middleware: resolves the bearer token, or refuses the request.
pub async fn require(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    if is_public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return unauthorized("send 'Authorization: Bearer <token>' (caravan user token makes one)");
    };
    let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).and_then(Secret::parse);
    let Some(token) = token else { return unauthorized("the Authorization header is not 'Bearer <64 hex>'") };
    match app.accounts.principal(&token).await {
        Ok(Some(principal)) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Ok(None) => unauthorized("unknown or revoked token"),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// Proof that an admin asks: anyone else is refused (403) before the
/// handler runs, and a request without a caller (401).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Admin, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "this needs an API token"))?;
        need_role(&principal, Role::Admin)?;
        Ok(Admin)
    }
}

/// At least `role`.
pub fn need_role(principal: &Principal, role: Role) -> Result<(), ApiError> {
    if principal.role.allows(role) {
        Ok(())
    } else {
        Err(forbidden(format!("this needs a {} account", role.as_str())))
    }
}

/// An admin, or a provider who manages `listing`.
/// The listings a provider manages, for filtering what they see; `None`
/// for an admin, who sees all. Anyone else is refused.
pub async fn managed_by(
    app: &AppState,
    principal: &Principal,
) -> Result<Option<std::collections::BTreeSet<String>>, ApiError> {
    need_role(principal, Role::Provider)?;
    if principal.role == Role::Admin {
        return Ok(None);
    }
    Ok(Some(app.accounts.managed_listings(principal.user).await?.into_iter().collect()))
}

pub async fn need_manager(app: &AppState, principal: &Principal, listing: &ListingId) -> Result<(), ApiError> {
    if principal.role == Role::Admin {
        return Ok(());
    }
    let managers = app.accounts.managers(listing).await?;
    if may_manage(principal.user, principal.role, &managers) {
        Ok(())
    } else {
        Err(forbidden(format!("you do not manage {listing}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_reads_are_few() {
        assert!(is_public(&Method::GET, "/api/v1/listings/room-1/ari"));
        assert!(is_public(&Method::GET, "/api/v1/search/stays"));
        assert!(is_public(&Method::GET, "/healthz"));
        assert!(!is_public(&Method::POST, "/api/v1/listings"));
        assert!(!is_public(&Method::GET, "/api/v1/bookings"));
        assert!(!is_public(&Method::GET, "/api/v1/sales"));
        assert!(!is_public(&Method::GET, "/api/v1/holds/1"));
    }
}
