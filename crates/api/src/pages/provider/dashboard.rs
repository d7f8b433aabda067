//! The provider's dashboard: the services one manages with a week at a
//! glance, and each service's page with its calendar and managers.

use super::*;

/// One service in the provider's list.
#[derive(Debug)]
struct ServiceRow {
    id: String,
    title: String,
    kind: &'static str,
    status: &'static str,
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

/// Days of terms summarized per service in the list.
const SUMMARY_DAYS: i32 = 7;
/// Days the service page's calendar shows.
const CALENDAR_DAYS: i32 = 30;

fn status(state: &ListingState) -> &'static str {
    match (state.withdrawn, state.paused) {
        (true, _) => "withdrawn",
        (false, true) => "off sale",
        (false, false) => "on sale",
    }
}

fn kind(state: &ListingState) -> &'static str {
    match &state.listing.details {
        caravan_model::ListingDetails::Stay(stay) => match stay.stay_type {
            caravan_model::StayType::HotelRoom => "hotel room",
            caravan_model::StayType::VacationRental => "vacation rental",
        },
        caravan_model::ListingDetails::Trip(trip) => match trip.mode {
            caravan_model::TripMode::Bus => "bus",
            caravan_model::TripMode::Train => "train",
            caravan_model::TripMode::Ferry => "ferry",
            caravan_model::TripMode::Flight => "flight",
        },
    }
}

pub(crate) async fn provider_page(
    State(app): State<AppState>,
    SignedIn { principal, session }: SignedIn,
    Query(query): Query<MessageQuery>,
) -> Response {
    let managed = match managed(&app, &principal).await {
        Ok(managed) => managed,
        Err(response) => return response,
    };
    let today = app.now().date();
    let services = app.read_ledger(|ledger| {
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
                                Money::new(day.terms.price_minor, state.listing.currency)
                            )
                        }
                        _ => "closed".to_owned(),
                    })
                    .collect();
                ServiceRow {
                    id: state.listing.id.to_string(),
                    title: state.listing.title.clone(),
                    kind: kind(state),
                    status: status(state),
                    week: week.join(", "),
                }
            })
            .collect()
    });
    let message = Done::message(&query);
    render(&ProviderPage { nav: Nav::of(&principal, &session), services, message })
}

/// One day of a service's calendar, as its provider sees it.
#[derive(Debug)]
struct ProviderDay {
    date: String,
    open: bool,
    allotment: u32,
    held: u32,
    booked: u32,
    left: u32,
    price: String,
    /// Restrictions in short ("min 2 nights, no arrival").
    rules: String,
}

#[derive(Debug)]
struct ManagerRow {
    id: u64,
    email: String,
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    nav: Nav,
    id: String,
    title: String,
    kind: &'static str,
    status: &'static str,
    paused: bool,
    withdrawn: bool,
    is_stay: bool,
    currency: String,
    days: Vec<ProviderDay>,
    managers: Vec<ManagerRow>,
    me: u64,
    message: Option<String>,
    /// The ARI form's range, prefilled with the next week.
    from: String,
    to: String,
}

fn rules(day: &caravan_model::AriDay, is_stay: bool) -> String {
    let mut rules = Vec::new();
    if is_stay && day.min_stay > 1 {
        rules.push(format!("min {} nights", day.min_stay));
    }
    if is_stay && day.max_stay > 0 {
        rules.push(format!("max {} nights", day.max_stay));
    }
    if day.closed_to_arrival {
        rules.push("no arrival".to_owned());
    }
    if day.closed_to_departure {
        rules.push("no departure".to_owned());
    }
    rules.join(", ")
}

pub(crate) async fn service_page(
    State(app): State<AppState>,
    OnService { signed_in: SignedIn { principal, session }, service }: OnService,
    Query(query): Query<MessageQuery>,
) -> Response {
    let id = service.id;
    let managers = match app.accounts.manager_accounts(&id).await {
        Ok(rows) => rows.into_iter().map(|(id, email)| ManagerRow { id, email }).collect(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    let today = app.now().date();
    let page = app.read_ledger(|ledger| {
        let state = ledger.listing(&id)?;
        let is_stay = state.listing.stay().is_some();
        let days = (0..CALENDAR_DAYS)
            .map(|offset| {
                let date = today.add_days(offset);
                let day = state.days.get(&date);
                let terms = day.map(|d| d.terms).unwrap_or_default();
                ProviderDay {
                    date: date.to_string(),
                    open: day.is_some_and(|d| !d.terms.stop_sell),
                    allotment: terms.available,
                    held: day.map_or(0, |d| d.held),
                    booked: day.map_or(0, |d| d.booked),
                    left: day.map_or(0, |d| d.free()),
                    price: Money::new(terms.price_minor, state.listing.currency).to_string(),
                    rules: rules(&terms, is_stay),
                }
            })
            .collect();
        Some(ServicePage {
            nav: Nav::of(&principal, &session),
            id: id.to_string(),
            title: state.listing.title.clone(),
            kind: kind(state),
            status: status(state),
            paused: state.paused,
            withdrawn: state.withdrawn,
            is_stay,
            currency: state.listing.currency.as_str().to_owned(),
            days,
            managers,
            me: principal.user,
            message: Done::message(&query),
            from: today.add_days(1).to_string(),
            to: today.add_days(8).to_string(),
        })
    });
    match page {
        Some(page) => render(&page),
        None => notice(StatusCode::NOT_FOUND, "No such service", "That service does not exist.", None),
    }
}
