//! The provider's back office: the services one manages (create, edit,
//! take off sale, withdraw), their calendar of availability, prices and
//! restrictions, their sales, and who else manages them.
//!
//! Every change goes through the same ledger commands and checks as the
//! REST API; the forms only turn fields into those commands.

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

/// The service form's fields, all as typed, so a mistake comes back on
/// the page with the rest of what was typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServiceForm {
    csrf: String,
    /// `stay` or `trip`.
    kind: String,
    id: String,
    title: String,
    description: String,
    currency: String,
    free_until_hours: String,
    /// `percent` or `nights`.
    penalty_kind: String,
    penalty: String,
    stay_type: String,
    address: String,
    city: String,
    country: String,
    lat: String,
    lon: String,
    /// Comma-separated.
    amenities: String,
    max_guests: String,
    check_in: String,
    check_out: String,
    /// An IANA time zone, or (for services made before names) minutes
    /// from UTC.
    time_zone: String,
    units: String,
    mode: String,
    operator: String,
    service_number: String,
    seats: String,
    /// Comma-separated seat names; empty for unnamed seats.
    seat_map: String,
    /// One stop per line: `CODE | Name | arrival | departure | time zone`,
    /// a time followed by `+1` on the next day.
    stops: String,
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

/// `HH:MM` or `HH:MM+N` (N days after the departure date).
fn stop_time(field: &str, text: &str) -> Result<(Option<String>, u8), FormError> {
    let text = text.trim();
    if text.is_empty() || text == "-" {
        return Ok((None, 0));
    }
    match text.split_once('+') {
        Some((time, days)) => Ok((Some(time.trim().to_owned()), number(field, days)?)),
        None => Ok((Some(text.to_owned()), 0)),
    }
}

fn format_stop_time(time: &Option<String>, day: u8) -> String {
    match (time, day) {
        (None, _) => String::new(),
        (Some(time), 0) => time.clone(),
        (Some(time), day) => format!("{time}+{day}"),
    }
}

/// Parses the stops box: one stop per line, `|`-separated fields.
fn parse_stops(text: &str) -> Result<Vec<StopInput>, FormError> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(index, line)| {
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            let [code, name, arrival, departure, offset] = fields[..] else {
                return Err(FormError(format!(
                    "stop {}: write CODE | Name | arrival | departure | time zone, got {line:?}",
                    index + 1
                )));
            };
            let (arrival, arrival_day) = stop_time("arrival", arrival)?;
            let (departure, departure_day) = stop_time("departure", departure)?;
            Ok(StopInput {
                code: code.to_owned(),
                name: name.to_owned(),
                arrival,
                arrival_day,
                departure,
                departure_day,
                time_zone: zone_field(offset).0,
                utc_offset_min: zone_field(offset).1,
            })
        })
        .collect()
}

fn format_stops(stops: &[StopInput]) -> String {
    stops
        .iter()
        .map(|stop| {
            format!(
                "{} | {} | {} | {} | {}",
                stop.code,
                stop.name,
                format_stop_time(&stop.arrival, stop.arrival_day),
                format_stop_time(&stop.departure, stop.departure_day),
                format_zone(&stop.time_zone, stop.utc_offset_min)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A time zone field: a whole number is a fixed offset in minutes (as
/// services made before zones had names show it), anything else a zone
/// name, which the API checks; empty is UTC.
fn zone_field(text: &str) -> (Option<String>, Option<i16>) {
    match text.trim() {
        "" => (None, None),
        text => match text.parse::<i16>() {
            Ok(offset_min) => (None, Some(offset_min)),
            Err(_) => (Some(text.to_owned()), None),
        },
    }
}

fn format_zone(time_zone: &Option<String>, utc_offset_min: Option<i16>) -> String {
    match (time_zone, utc_offset_min) {
        (Some(name), _) => name.clone(),
        (None, Some(offset_min)) => offset_min.to_string(),
        (None, None) => String::new(),
    }
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

impl ServiceForm {
    /// A blank form for a new stay or trip, with sensible defaults.
    fn blank(kind: &str) -> ServiceForm {
        ServiceForm {
            kind: if kind == "trip" { "trip" } else { "stay" }.to_owned(),
            currency: "EUR".into(),
            free_until_hours: "48".into(),
            penalty_kind: "nights".into(),
            penalty: "1".into(),
            stay_type: "hotel_room".into(),
            max_guests: "2".into(),
            check_in: "15:00".into(),
            check_out: "11:00".into(),
            time_zone: "Europe/Paris".into(),
            units: "1".into(),
            mode: "bus".into(),
            seats: "50".into(),
            ..ServiceForm::default()
        }
    }

    fn is_trip(&self) -> bool {
        self.kind == "trip"
    }

    /// The form as the API's listing input; a field that does not parse is
    /// named in the error. The ledger checks the rest.
    fn to_input(&self) -> Result<ListingInput, FormError> {
        let penalty = number::<u16>("penalty", &self.penalty)?;
        let (penalty_percent, penalty_nights) = match self.penalty_kind.as_str() {
            "percent" => (Some(u8::try_from(penalty).map_err(|_| "penalty: a percentage up to 100")?), None),
            _ => (None, Some(penalty)),
        };
        let (stay, trip) = if self.is_trip() {
            let trip = TripInput {
                mode: self.mode.trim().to_owned(),
                operator: self.operator.trim().to_owned(),
                service_number: self.service_number.trim().to_owned(),
                stops: parse_stops(&self.stops)?,
                seats: number("seats", &self.seats)?,
                seat_map: comma_list(&self.seat_map),
            };
            (None, Some(trip))
        } else {
            let stay = StayInput {
                stay_type: self.stay_type.clone(),
                address: self.address.trim().to_owned(),
                city: self.city.trim().to_owned(),
                country: self.country.trim().to_uppercase(),
                lat: number("latitude", &self.lat)?,
                lon: number("longitude", &self.lon)?,
                amenities: comma_list(&self.amenities),
                max_guests: number("guests per unit", &self.max_guests)?,
                check_in: self.check_in.trim().to_owned(),
                check_out: self.check_out.trim().to_owned(),
                time_zone: zone_field(&self.time_zone).0,
                utc_offset_min: zone_field(&self.time_zone).1,
                units: number("units", &self.units)?,
            };
            (Some(stay), None)
        };
        Ok(ListingInput {
            id: Some(self.id.trim().to_owned()).filter(|id| !id.is_empty()),
            title: self.title.trim().to_owned(),
            description: self.description.trim().to_owned(),
            currency: self.currency.trim().to_uppercase(),
            cancellation: CancellationInput {
                free_until_hours: number("free cancellation hours", &self.free_until_hours)?,
                penalty_percent,
                penalty_nights,
            },
            stay,
            trip,
            withdrawn: None,
            paused: None,
        })
    }

    /// The form filled in from a listing, for editing it.
    fn from_input(input: &ListingInput) -> ServiceForm {
        let (penalty_kind, penalty) = match (input.cancellation.penalty_percent, input.cancellation.penalty_nights) {
            (Some(percent), _) => ("percent", percent.to_string()),
            (None, nights) => ("nights", nights.unwrap_or(0).to_string()),
        };
        let mut form = ServiceForm {
            id: input.id.clone().unwrap_or_default(),
            title: input.title.clone(),
            description: input.description.clone(),
            currency: input.currency.clone(),
            free_until_hours: input.cancellation.free_until_hours.to_string(),
            penalty_kind: penalty_kind.to_owned(),
            penalty,
            ..ServiceForm::default()
        };
        if let Some(stay) = &input.stay {
            form.kind = "stay".into();
            form.stay_type = stay.stay_type.clone();
            form.address = stay.address.clone();
            form.city = stay.city.clone();
            form.country = stay.country.clone();
            form.lat = stay.lat.to_string();
            form.lon = stay.lon.to_string();
            form.amenities = stay.amenities.join(", ");
            form.max_guests = stay.max_guests.to_string();
            form.check_in = stay.check_in.clone();
            form.check_out = stay.check_out.clone();
            form.time_zone = format_zone(&stay.time_zone, stay.utc_offset_min);
            form.units = stay.units.to_string();
        }
        if let Some(trip) = &input.trip {
            form.kind = "trip".into();
            form.mode = trip.mode.clone();
            form.operator = trip.operator.clone();
            form.service_number = trip.service_number.clone();
            form.seats = trip.seats.to_string();
            form.seat_map = trip.seat_map.join(", ");
            form.stops = format_stops(&trip.stops);
        }
        form
    }
}

#[derive(Template)]
#[template(path = "service_form.html")]
struct ServiceFormPage {
    nav: Nav,
    /// Where the form posts.
    action: String,
    /// Editing an existing service (its id and kind are fixed).
    editing: bool,
    form: ServiceForm,
    error: Option<String>,
}

fn service_form_page(
    principal: &Principal,
    session: &caravan_accounts::token::Secret,
    action: String,
    editing: bool,
    form: ServiceForm,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (status, error) = error.map_or((StatusCode::OK, None), |(status, message)| (status, Some(message)));
    let mut response = render(&ServiceFormPage { nav: Nav::of(principal, session), action, editing, form, error });
    *response.status_mut() = status;
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct KindQuery {
    kind: Option<String>,
}

pub(crate) async fn new_service_form(
    SignedIn { principal, session }: SignedIn,
    Query(query): Query<KindQuery>,
) -> Response {
    if !principal.role.allows(Role::Provider) {
        return providers_only();
    }
    let form = ServiceForm::blank(query.kind.as_deref().unwrap_or("stay"));
    service_form_page(&principal, &session, "/provider/new".into(), false, form, None)
}

pub(crate) async fn create_service(
    State(app): State<AppState>,
    SignedInForm(SignedIn { principal, session }, form): SignedInForm<ServiceForm>,
) -> Response {
    if !principal.role.allows(Role::Provider) {
        return providers_only();
    }
    let refused = |form, status, message| {
        service_form_page(&principal, &session, "/provider/new".into(), false, form, Some((status, message)))
    };
    let input = match form.to_input() {
        Ok(input) => input,
        Err(FormError(message)) => return refused(form, StatusCode::UNPROCESSABLE_ENTITY, message),
    };
    match crate::owner::create_listing_as(&app, &principal, input).await {
        Ok(id) => Service { id }.done(Done::Created),
        Err(error) => refused(form, error.status, error.message),
    }
}

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

pub(crate) async fn edit_service_form(
    State(app): State<AppState>,
    OnService { signed_in: SignedIn { principal, session }, service }: OnService,
) -> Response {
    let id = &service.id;
    let Some(input) = app.read_ledger(|ledger| ledger.listing(id).map(ListingInput::view)) else {
        return notice(StatusCode::NOT_FOUND, "No such service", "That service does not exist.", None);
    };
    let form = ServiceForm::from_input(&input);
    service_form_page(&principal, &session, format!("/provider/services/{id}/edit"), true, form, None)
}

pub(crate) async fn edit_service(
    State(app): State<AppState>,
    ServiceAction { signed_in: SignedIn { principal, session }, service, mut form }: ServiceAction<ServiceForm>,
) -> Response {
    let id = service.id.clone();
    // The id and kind are the listing's own, whatever the form says.
    form.id = id.to_string();
    let kind = app.read_ledger(|ledger| ledger.listing(&id).map(|s| s.listing.trip().is_some()));
    form.kind = if kind == Some(true) { "trip" } else { "stay" }.into();
    let action = format!("/provider/services/{id}/edit");
    let outcome = match form.to_input() {
        Ok(input) => match input.into_listing(id.clone()) {
            Ok(listing) => app.ledger.submit(Command::UpdateListing(listing)).await.map_err(ApiError::from),
            Err(error) => Err(error),
        },
        Err(FormError(message)) => Err(ApiError::invalid(message)),
    };
    match outcome {
        Ok(_) => service.done(Done::Described),
        Err(error) => service_form_page(&principal, &session, action, true, form, Some((error.status, error.message))),
    }
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

#[derive(Debug, Deserialize)]
pub(crate) struct AriForm {
    csrf: String,
    listing: String,
    from: String,
    to: String,
    /// Each field below left empty (or "keep") leaves the days' value as is.
    #[serde(default)]
    available: String,
    /// In major units ("120.50").
    #[serde(default)]
    price: String,
    #[serde(default)]
    min_stay: String,
    #[serde(default)]
    max_stay: String,
    /// `keep`, `yes` or `no`.
    #[serde(default)]
    closed_to_arrival: String,
    #[serde(default)]
    closed_to_departure: String,
    #[serde(default)]
    stop_sell: String,
}

/// A price in major units as minor units, for a currency with two decimals.
fn minor_units(price: &str) -> Option<i64> {
    let (whole, cents) = price.trim().split_once('.').unwrap_or((price.trim(), "0"));
    let cents = format!("{cents:0<2}");
    if cents.len() > 2 || whole.starts_with('-') {
        return None;
    }
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents.parse::<i64>().ok()?)
}

fn optional<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>, FormError> {
    match text.trim() {
        "" => Ok(None),
        text => number(field, text).map(Some),
    }
}

fn switch(field: &str, text: &str) -> Result<Option<bool>, FormError> {
    match text {
        "" | "keep" => Ok(None),
        "yes" => Ok(Some(true)),
        "no" => Ok(Some(false)),
        other => Err(FormError(format!("{field}: keep, yes or no (not {other:?})"))),
    }
}

impl AriForm {
    /// The change the form asks for, or what is wrong with it.
    fn change(&self) -> Result<(Date, Date, AriPatch), FormError> {
        let from = Date::parse(&self.from).map_err(|_| "give the first day")?;
        let to = Date::parse(&self.to).map_err(|_| "give the day after the last")?;
        let price_minor = match self.price.trim() {
            "" => None,
            price => Some(minor_units(price).ok_or("a price such as 120 or 120.50")?),
        };
        let patch = AriPatch {
            available: optional("available", &self.available)?,
            price_minor,
            min_stay: optional("minimum stay", &self.min_stay)?,
            max_stay: optional("maximum stay", &self.max_stay)?,
            closed_to_arrival: switch("closed to arrival", &self.closed_to_arrival)?,
            closed_to_departure: switch("closed to departure", &self.closed_to_departure)?,
            stop_sell: switch("stop sell", &self.stop_sell)?,
        };
        if patch == AriPatch::default() {
            return Err("nothing to change: fill in at least one field".into());
        }
        Ok((from, to, patch))
    }
}

pub(crate) async fn provider_ari(
    State(app): State<AppState>,
    SignedInForm(SignedIn { principal, .. }, form): SignedInForm<AriForm>,
) -> Response {
    let service = match Service::of(&app, &principal, &form.listing).await {
        Ok(service) => service,
        Err(response) => return response,
    };
    let listing = service.id.clone();
    let (from, to, patch) = match form.change() {
        Ok(change) => change,
        Err(FormError(message)) => return service.not_done(StatusCode::UNPROCESSABLE_ENTITY, "Not saved", &message),
    };
    match app.ledger.submit(Command::SetAri { listing, from, to, patch }).await {
        Ok(_) => service.done(Done::Ari),
        Err(error) => service.refused("Not saved", error),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SaleForm {
    csrf: String,
    /// `true` takes the service off sale; `false` puts it back.
    paused: bool,
}

pub(crate) async fn set_sale(
    State(app): State<AppState>,
    ServiceAction { service, form, .. }: ServiceAction<SaleForm>,
) -> Response {
    match app.ledger.submit(Command::SetPaused { listing: service.id.clone(), paused: form.paused }).await {
        Ok(_) if form.paused => service.done(Done::Paused),
        Ok(_) => service.done(Done::Resumed),
        Err(error) => service.refused("Not changed", error),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WithdrawForm {
    csrf: String,
    password: String,
}

/// Withdraws a service for good, once its manager has typed their
/// password again.
pub(crate) async fn withdraw(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    ServiceAction { signed_in: SignedIn { principal, .. }, service, form }: ServiceAction<WithdrawForm>,
) -> Response {
    if let Err(refusal) = app.accounts.confirm_password(&principal.email, &form.password, &client).await {
        let message = format!("{refusal}; the service is unchanged.");
        return service.not_done(super::refusal_status(&refusal), "Not withdrawn", &message);
    }
    match app.ledger.submit(Command::WithdrawListing(service.id.clone())).await {
        Ok(_) => {
            let location = format!("/provider?done={}", Done::Withdrawn.code());
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        Err(error) => service.refused("Not withdrawn", error),
    }
}

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

#[derive(Template)]
#[template(path = "sales.html")]
struct SalesPage {
    nav: Nav,
    sales: Vec<HoldView>,
}

/// Sales the page lists, newest first.
const SALES_SHOWN: usize = 200;

/// Bookings of the services one manages, newest first, with who travels.
pub(crate) async fn sales_page(State(app): State<AppState>, SignedIn { principal, session }: SignedIn) -> Response {
    let managed = match managed(&app, &principal).await {
        Ok(managed) => managed,
        Err(response) => return response,
    };
    let sales = app.read_ledger(|ledger| {
        let mut sales: Vec<HoldView> = ledger
            .holds()
            .filter(|hold| hold.state.is_booking() || hold.state == caravan_ledger::HoldState::Held)
            .filter(|hold| managed.as_ref().is_none_or(|m| m.contains(hold.request.listing().as_str())))
            .map(|hold| HoldView::from_ledger(ledger, hold))
            .collect();
        sales.reverse();
        sales.truncate(SALES_SHOWN);
        sales
    });
    render(&SalesPage { nav: Nav::of(&principal, &session), sales })
}

session_forms!(AriForm, ServiceForm, SaleForm, WithdrawForm, ManagerForm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_read_back_as_written() {
        let text = "GVA | Geneva |  | 08:00 | Europe/Zurich\nCDG | Paris | 07:10+1 | - | 60\n";
        let stops = parse_stops(text).unwrap();
        assert_eq!(stops.len(), 2);
        assert_eq!((stops[0].departure.as_deref(), stops[0].arrival.as_deref()), (Some("08:00"), None));
        assert_eq!((stops[1].arrival.as_deref(), stops[1].arrival_day), (Some("07:10"), 1));
        assert_eq!(parse_stops(&format_stops(&stops)).unwrap().len(), 2);
        assert_eq!(format_stops(&stops), "GVA | Geneva |  | 08:00 | Europe/Zurich\nCDG | Paris | 07:10+1 |  | 60");
        assert!(parse_stops("GVA Geneva 08:00").unwrap_err().0.contains("stop 1"));
        assert!(parse_stops("GVA | Geneva | | 08:00 | 60 | spare").unwrap_err().0.contains("stop 1"));
    }

    #[test]
    fn a_blank_stay_form_needs_its_place_and_then_makes_a_listing() {
        let mut form = ServiceForm::blank("stay");
        form.title = "Sea view".into();
        assert!(form.to_input().unwrap_err().0.contains("latitude"));
        (form.city, form.country, form.lat, form.lon) = ("Nice".into(), "fr".into(), "43.7".into(), "7.26".into());
        let input = form.to_input().unwrap();
        let listing = input.clone().into_listing(ListingId::parse("sea-view").unwrap()).unwrap();
        assert_eq!(listing.stay().unwrap().country.as_str(), "FR");
        let again = ServiceForm::from_input(&ListingInput::from_listing(&listing));
        assert_eq!((again.kind.as_str(), again.city.as_str(), again.penalty.as_str()), ("stay", "Nice", "1"));
    }

    #[test]
    fn the_ari_form_changes_only_what_is_filled_in() {
        let form = |price: &str, stop_sell: &str| AriForm {
            csrf: String::new(),
            listing: "x".into(),
            from: "2030-01-01".into(),
            to: "2030-01-08".into(),
            available: String::new(),
            price: price.into(),
            min_stay: "2".into(),
            max_stay: String::new(),
            closed_to_arrival: "keep".into(),
            closed_to_departure: String::new(),
            stop_sell: stop_sell.into(),
        };
        let (_, _, patch) = form("99.5", "no").change().unwrap();
        assert_eq!(
            patch,
            AriPatch { price_minor: Some(9_950), min_stay: Some(2), stop_sell: Some(false), ..AriPatch::default() }
        );
        assert!(form("-1", "").change().is_err(), "no negative prices");
        assert!(form("", "maybe").change().unwrap_err().0.contains("stop sell"));
    }

    #[test]
    fn prices_in_major_units() {
        assert_eq!(minor_units("120"), Some(12_000));
        assert_eq!(minor_units("120.5"), Some(12_050));
        assert_eq!(minor_units("0.05"), Some(5));
        assert_eq!(minor_units("1.234"), None);
        assert_eq!(minor_units("abc"), None);
    }
}
