//! The provider's back office: the services one manages and their terms.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::{SignedIn, SignedInForm};
use super::{notice, render, MessageQuery, Nav};
use crate::{ApiError, Backend};

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

session_forms!(AriForm);
