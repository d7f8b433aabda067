//! The provider's back office: the services one manages (create, edit,
//! take off sale, withdraw), their calendar of availability, prices and
//! restrictions, their sales, and who else manages them.
//!
//! Every change goes through the same ledger commands and checks as the
//! REST API; the forms only turn fields into those commands.
//!
//! One module per job: `dashboard` (the list of services and each
//! service's page), `service_form` (create, edit, take off sale,
//! withdraw), `calendar` (availability, prices, restrictions), `managers`
//! and `sales`. This file holds what they share: the service a page is
//! about, and form errors.

mod calendar;
mod dashboard;
mod managers;
mod sales;
mod service_form;

pub(crate) use calendar::provider_ari;
pub(crate) use dashboard::{provider_page, service_page};
pub(crate) use managers::{add_manager, remove_manager};
pub(crate) use sales::sales_page;
pub(crate) use service_form::{create_service, edit_service, edit_service_form, new_service_form, set_sale, withdraw};

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use caravan_accounts::{Principal, Role};
use caravan_ledger::{Command, ListingState};
use caravan_model::{AriPatch, Date, ListingId, Money};
use serde::Deserialize;

use super::session::{ClientAddress, SessionForm, SignedIn, SignedInForm};
use super::{notice, render, MessageQuery, Nav};
use crate::dto::{CancellationInput, HoldView, ListingInput, StayInput, StopInput, TripInput};
use crate::{ApiError, AppState};

/// A service the signed-in provider manages, and the way back to its page
/// for the notices of what was not done.
pub(crate) struct Service {
    id: ListingId,
}

/// A signed-in provider on the page of a service they manage (the path's
/// `{id}`); anyone else is answered, before the handler runs, with the page
/// that says why not.
pub(crate) struct OnService {
    signed_in: SignedIn,
    service: Service,
}

impl FromRequestParts<AppState> for OnService {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<OnService, Response> {
        let signed_in = SignedIn::from_request_parts(parts, app).await?;
        let Path(id) = Path::<String>::from_request_parts(parts, app).await.map_err(IntoResponse::into_response)?;
        let service = Service::of(app, &signed_in.principal, &id).await?;
        Ok(OnService { signed_in, service })
    }
}

/// A form posted on a service's page: CSRF checked, then the manager.
pub(crate) struct ServiceAction<T> {
    signed_in: SignedIn,
    service: Service,
    form: T,
}

impl<T: SessionForm + serde::de::DeserializeOwned + Send> FromRequest<AppState> for ServiceAction<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<ServiceAction<T>, Response> {
        let (mut parts, body) = request.into_parts();
        let Path(id) =
            Path::<String>::from_request_parts(&mut parts, app).await.map_err(IntoResponse::into_response)?;
        let SignedInForm(signed_in, form) = SignedInForm::from_request(Request::from_parts(parts, body), app).await?;
        let service = Service::of(app, &signed_in.principal, &id).await?;
        Ok(ServiceAction { signed_in, service, form })
    }
}

impl Service {
    /// The listing named `id`, if `principal` may manage it; otherwise the
    /// page that says why not.
    async fn of(app: &AppState, principal: &Principal, id: &str) -> Result<Service, Response> {
        let back = Some(("/provider", "Back to my services"));
        if !principal.role.allows(Role::Provider) {
            return Err(providers_only());
        }
        let missing = || notice(StatusCode::NOT_FOUND, "No such service", "That service does not exist.", back);
        let Ok(id) = ListingId::parse(id) else { return Err(missing()) };
        if !app.read_ledger(|ledger| ledger.listing(&id).is_some()) {
            return Err(missing());
        }
        match crate::auth::need_manager(app, principal, &id).await {
            Ok(()) => Ok(Service { id }),
            Err(refused) => Err(notice(refused.status, "Not yours", &refused.message, back)),
        }
    }

    /// A notice that something was not done, with a link back to the service.
    fn not_done(&self, status: StatusCode, heading: &str, message: &str) -> Response {
        let page = format!("/provider/services/{}", self.id);
        notice(status, heading, message, Some((&page, "Back to the service")))
    }

    /// The ledger's (or the store's) refusal, as a notice.
    fn refused(&self, heading: &str, error: impl Into<ApiError>) -> Response {
        let error = error.into();
        self.not_done(error.status, heading, &error.message)
    }

    /// Back to the service's page, saying what was done.
    fn done(&self, what: Done) -> Response {
        let location = format!("/provider/services/{}?done={}", self.id, what.code());
        (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
    }
}

/// What a change on a service's page did, named in the redirect's query by
/// a code, so a crafted link cannot put its own words on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    Created,
    Described,
    Ari,
    Paused,
    Resumed,
    ManagerAdded,
    ManagerRemoved,
    Withdrawn,
}

impl Done {
    const ALL: [Done; 8] = [
        Done::Created,
        Done::Described,
        Done::Ari,
        Done::Paused,
        Done::Resumed,
        Done::ManagerAdded,
        Done::ManagerRemoved,
        Done::Withdrawn,
    ];

    fn code(self) -> &'static str {
        match self {
            Done::Created => "created",
            Done::Described => "described",
            Done::Ari => "ari",
            Done::Paused => "paused",
            Done::Resumed => "resumed",
            Done::ManagerAdded => "manager-added",
            Done::ManagerRemoved => "manager-removed",
            Done::Withdrawn => "withdrawn",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Done::Created => "the service is created; now open some dates for sale",
            Done::Described => "the description is saved and will be published",
            Done::Ari => "the days are changed and will be published",
            Done::Paused => "taken off sale; bookings made stay valid",
            Done::Resumed => "on sale again",
            Done::ManagerAdded => "the manager is added",
            Done::ManagerRemoved => "the manager is removed",
            Done::Withdrawn => "the service is withdrawn; bookings made stay valid",
        }
    }

    /// The message for a `done` query, if it names something done.
    fn message(query: &MessageQuery) -> Option<String> {
        let code = query.done.as_deref()?;
        Done::ALL.iter().find(|done| done.code() == code).map(|done| format!("Saved: {}.", done.text()))
    }
}

/// A form field that does not parse; the message names the field, for
/// the person who filled it in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FormError(String);

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for FormError {
    fn from(message: &str) -> FormError {
        FormError(message.to_owned())
    }
}

impl From<String> for FormError {
    fn from(message: String) -> FormError {
        FormError(message)
    }
}

fn number<T: std::str::FromStr>(field: &str, text: &str) -> Result<T, FormError> {
    text.trim().parse().map_err(|_| FormError(format!("{field}: give a number (not {:?})", text.trim())))
}

fn providers_only() -> Response {
    notice(StatusCode::FORBIDDEN, "Providers only", "This page is for accounts that manage services.", None)
}

/// The listings `principal` manages (`None`: all, for an admin).
/// A non-provider gets the page that says so.
async fn managed(
    app: &AppState,
    principal: &Principal,
) -> Result<Option<std::collections::BTreeSet<String>>, Response> {
    crate::auth::managed_by(app, principal).await.map_err(|error| match error.status {
        StatusCode::FORBIDDEN => providers_only(),
        _ => error.into_response(),
    })
}
