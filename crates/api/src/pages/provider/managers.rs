//! Who manages a service: providers add and remove each other; a service
//! keeps at least one.

use super::*;

#[derive(Debug, Deserialize)]
pub(crate) struct ManagerForm {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    user: Option<u64>,
}

/// Adds a co-manager by email.
pub(crate) async fn add_manager(
    State(app): State<AppState>,
    ServiceAction { service, form, .. }: ServiceAction<ManagerForm>,
) -> Response {
    let (user, role) = match app.accounts.account_by_email(&form.email).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            return service.not_done(
                StatusCode::NOT_FOUND,
                "Not added",
                "There is no account with that email on this node; ask them to register first.",
            )
        }
        Err(error) => return ApiError::internal(error).into_response(),
    };
    if !role.allows(Role::Provider) {
        return service.not_done(
            StatusCode::CONFLICT,
            "Not added",
            "That account is a traveller's; an administrator must make it a provider first.",
        );
    }
    match app.accounts.add_manager(&service.id, user).await {
        Ok(()) => service.done(Done::ManagerAdded),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

pub(crate) async fn remove_manager(
    State(app): State<AppState>,
    ServiceAction { service, form, .. }: ServiceAction<ManagerForm>,
) -> Response {
    let id = &service.id;
    let Some(user) = form.user else {
        return service.not_done(StatusCode::UNPROCESSABLE_ENTITY, "Not removed", "Say whom to remove.");
    };
    // A service keeps at least one manager, or nobody but an admin could
    // reach it again.
    match app.accounts.managers(id).await {
        Ok(managers) if managers == [user] => {
            return service.not_done(StatusCode::CONFLICT, "Not removed", "A service keeps at least one manager.")
        }
        Ok(_) => {}
        Err(error) => return ApiError::internal(error).into_response(),
    }
    match app.accounts.remove_manager(id, user).await {
        Ok(true) => service.done(Done::ManagerRemoved),
        Ok(false) => {
            service.not_done(StatusCode::NOT_FOUND, "Not removed", "That account does not manage this service.")
        }
        Err(error) => ApiError::internal(error).into_response(),
    }
}

session_forms!(ManagerForm);
