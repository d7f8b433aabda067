//! A service's life: the form that creates and edits it (through the
//! API's own `ListingInput`, so the same checks and messages), taking it
//! off sale and back, and withdrawing it after the password is typed again.

use super::*;

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
            let (time_zone, utc_offset_min) = zone_field(offset);
            Ok(StopInput {
                code: code.to_owned(),
                name: name.to_owned(),
                arrival,
                arrival_day,
                departure,
                departure_day,
                time_zone,
                utc_offset_min,
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
            let (time_zone, utc_offset_min) = zone_field(&self.time_zone);
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
                time_zone,
                utc_offset_min,
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
        return service.not_done(crate::pages::refusal_status(&refusal), "Not withdrawn", &message);
    }
    match app.ledger.submit(Command::WithdrawListing(service.id.clone())).await {
        Ok(_) => {
            let location = format!("/provider?done={}", Done::Withdrawn.code());
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        Err(error) => service.refused("Not withdrawn", error),
    }
}

session_forms!(ServiceForm, SaleForm, WithdrawForm);

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
}
