//! The agency's endpoints: search the local catalog for stays and trips,
//! and book any mix of parts at their owners as one booking.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use caravan_accounts::{Principal, Role};
use caravan_booking::agency::{Booking, BookingError, Decision, NewBooking};
use caravan_booking::{HoldSpec, PartStatus, Phase};
use caravan_model::{Date, GeoPoint, ListingDetails, Money, Timestamp, Zone};
use caravan_records::Origin;
use caravan_search::stays::OFFERS_MAX;
use caravan_search::trips::ITINERARIES_MAX;
use caravan_search::{Itinerary, Place, StayOffer, StayQuery, StaySort, TripQuery, TripSort};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::dto::{one_of, rfc3339, stay_types, trip_modes, HoldInput, MoneyView, TravellerView};
use crate::request::{IdempotencyKeyHeader, NumberIdPath};
use crate::{ApiError, AppState};

type Result<T> = std::result::Result<T, ApiError>;

/// Offers one stay search returns when the client does not say.
const OFFERS_DEFAULT: usize = 20;
const ITINERARIES_DEFAULT: usize = 10;
/// The widest circle a stay search may ask for.
const RADIUS_KM_MAX: f64 = 500.0;
/// Connections a trip search may allow (legs - 1).
const CONNECTIONS_MAX: usize = 4;

/// Where (a city, or a point and a radius), when, for how many.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StaySearchParams {
    /// A city, or give `lat` and `lon` instead.
    pub(crate) city: Option<String>,
    /// ISO 3166-1 alpha-2, to tell cities of one name apart.
    pub(crate) country: Option<String>,
    pub(crate) lat: Option<f64>,
    pub(crate) lon: Option<f64>,
    /// Around `lat` and `lon` (default 10, at most 500).
    pub(crate) radius_km: Option<f64>,
    /// The first night (required).
    #[param(format = Date)]
    pub(crate) check_in: Option<String>,
    /// The morning the stay ends (required).
    #[param(format = Date)]
    pub(crate) check_out: Option<String>,
    pub(crate) guests: Option<u32>,
    pub(crate) rooms: Option<u32>,
    pub(crate) price_min_minor: Option<i64>,
    pub(crate) price_max_minor: Option<i64>,
    /// Comma-separated; every one is required.
    pub(crate) amenities: Option<String>,
    /// `price` (default) or `distance`.
    #[param(schema_with = stay_sorts)]
    pub(crate) sort: Option<String>,
    pub(crate) limit: Option<usize>,
}

fn stay_sorts() -> Object {
    one_of(&["price", "distance"])
}

impl StaySearchParams {
    pub(crate) fn query(self) -> Result<StayQuery> {
        let place = match (self.city, self.lat, self.lon) {
            (Some(city), None, None) if !city.trim().is_empty() => Place::City { city, country: self.country },
            (None, Some(lat), Some(lon)) => {
                let point =
                    GeoPoint::from_degrees(lat, lon).ok_or_else(|| ApiError::invalid("lat/lon off the globe"))?;
                let radius_km = self.radius_km.unwrap_or(10.0);
                if !(radius_km > 0.0 && radius_km <= RADIUS_KM_MAX) {
                    return Err(ApiError::invalid(format!("radius_km: above 0, at most {RADIUS_KM_MAX}")));
                }
                Place::Near { point, radius_m: (radius_km * 1000.0) as u32 }
            }
            _ => return Err(ApiError::invalid("give a city, or lat and lon (with radius_km)")),
        };
        let sort = match self.sort.as_deref() {
            None | Some("price") => StaySort::Price,
            Some("distance") if matches!(place, Place::Near { .. }) => StaySort::Distance,
            Some("distance") => return Err(ApiError::invalid("sort=distance needs lat and lon")),
            Some(other) => return Err(ApiError::invalid(format!("sort {other:?}: price or distance"))),
        };
        let required =
            |field: Option<String>, name: &str| field.ok_or_else(|| ApiError::invalid(format!("{name} is required")));
        let check_in = Date::parse(&required(self.check_in, "check_in")?)?;
        let check_out = Date::parse(&required(self.check_out, "check_out")?)?;
        if check_out <= check_in {
            return Err(ApiError::invalid("check_out must be after check_in"));
        }
        let amenities: Vec<String> = self
            .amenities
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if amenities.len() > caravan_model::limits::AMENITIES_MAX {
            return Err(ApiError::invalid("too many amenities"));
        }
        // Out of range is an error, not an empty or clamped answer.
        use caravan_model::limits::{GUESTS_MAX, STAY_NIGHTS_MAX, UNITS_MAX};
        let nights = check_in.days_until(check_out);
        if nights > STAY_NIGHTS_MAX as i32 {
            return Err(ApiError::invalid(format!("a stay is at most {STAY_NIGHTS_MAX} nights")));
        }
        let in_range = |value: Option<u32>, name: &str, max: u32| match value {
            None => Ok(1),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::invalid(format!("{name} must be 1-{max}, not {n}"))),
        };
        let guests = in_range(self.guests, "guests", GUESTS_MAX)?;
        let units = in_range(self.rooms, "rooms", UNITS_MAX)?;
        let limit = match self.limit {
            None => OFFERS_DEFAULT,
            Some(n) if (1..=OFFERS_MAX).contains(&n) => n,
            Some(n) => return Err(ApiError::invalid(format!("limit must be 1-{OFFERS_MAX}, not {n}"))),
        };
        let (total_min_minor, total_max_minor) = (self.price_min_minor, self.price_max_minor);
        if total_min_minor.is_some_and(|min| min < 0) || total_max_minor.is_some_and(|max| max < 0) {
            return Err(ApiError::invalid("prices are not negative"));
        }
        if let (Some(min), Some(max)) = (total_min_minor, total_max_minor) {
            if min > max {
                return Err(ApiError::invalid(format!("price_min_minor {min} is above price_max_minor {max}")));
            }
        }
        Ok(StayQuery {
            place,
            check_in,
            check_out,
            guests,
            units,
            total_min_minor,
            total_max_minor,
            amenities,
            sort,
            limit,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StayOfferView {
    /// The owner's ed25519 public key, hex: where to book.
    pub(crate) origin: String,
    pub(crate) listing: String,
    pub(crate) title: String,
    #[schema(schema_with = stay_types)]
    pub(crate) kind: &'static str,
    pub(crate) city: String,
    pub(crate) country: String,
    pub(crate) address: String,
    pub(crate) amenities: Vec<String>,
    pub(crate) check_in: String,
    pub(crate) check_out: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) distance_m: Option<u32>,
    pub(crate) total: MoneyView,
    pub(crate) nights: Vec<MoneyView>,
    pub(crate) units_left: u32,
    pub(crate) cancellation: CancellationView,
    /// The parts to book this offer, as the pages' booking form carries them.
    #[serde(skip)]
    pub(crate) book_parts: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancellationView {
    /// Free until this instant; later, the penalty applies.
    pub(crate) free_until: String,
    /// The same in the place's own time, `YYYY-MM-DD HH:MM`.
    pub(crate) free_until_local: String,
    pub(crate) penalty: String,
}

/// A cancellation penalty in words.
pub(crate) fn penalty_text(penalty: caravan_model::Penalty) -> String {
    match penalty {
        caravan_model::Penalty::Percent(p) => format!("{p}% of the total"),
        caravan_model::Penalty::Nights(n) => format!("the first {n} night(s)"),
    }
}

/// The listing's cancellation terms for a stay or trip starting at `start`,
/// in a place `utc_offset_min` from UTC.
fn cancellation_view(listing: &caravan_model::Listing, start: Timestamp, zone: &Zone) -> CancellationView {
    let policy = listing.cancellation;
    let free_until = start.saturating_add_ms(-(policy.free_until_hours as i64) * Timestamp::MS_PER_HOUR);
    CancellationView {
        free_until: rfc3339(free_until),
        free_until_local: local_time(free_until, zone),
        penalty: penalty_text(policy.penalty),
    }
}

pub(crate) fn offer_view(offer: &StayOffer<Origin>, query: &StayQuery) -> Option<StayOfferView> {
    let stay = offer.listing.stay()?;
    Some(StayOfferView {
        origin: offer.origin.to_hex(),
        listing: offer.listing.id.to_string(),
        title: offer.listing.title.clone(),
        kind: crate::dto::stay_type_name(stay.stay_type),
        city: stay.city.clone(),
        country: stay.country.as_str().to_owned(),
        address: stay.address.clone(),
        amenities: stay.amenities.clone(),
        check_in: query.check_in.to_string(),
        check_out: query.check_out.to_string(),
        distance_m: offer.distance_m,
        total: offer.price.total.into(),
        nights: offer.price.nights.iter().map(|m| (*m).into()).collect(),
        units_left: offer.price.units_left,
        cancellation: cancellation_view(&offer.listing, offer.listing.start_on(query.check_in), &stay.zone),
        book_parts: crate::book_link::BookPart::Stay {
            origin: offer.origin,
            listing: offer.listing.id.to_string(),
            check_in: query.check_in,
            check_out: query.check_out,
            units: query.units.max(1),
            guests: query.guests,
        }
        .encode(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StayOffers {
    offers: Vec<StayOfferView>,
}

/// Stays with rooms free for the nights asked, from the local catalog.
#[utoipa::path(get, path = "/api/v1/search/stays", tag = "agency", params(StaySearchParams), responses((status = 200, body = StayOffers)))]
pub async fn search_stays(
    State(app): State<AppState>,
    params: std::result::Result<Query<StaySearchParams>, QueryRejection>,
) -> Result<Json<StayOffers>> {
    let Query(params) = params?;
    let query = params.query()?;
    let offers = app.catalog.search_stays(&query);
    let views: Vec<StayOfferView> = offers.iter().filter_map(|o| offer_view(o, &query)).collect();
    Ok(Json(StayOffers { offers: views }))
}

/// From which stop to which, on which day, for how many.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TripSearchParams {
    /// A stop code (required).
    pub(crate) from: Option<String>,
    /// A stop code (required).
    pub(crate) to: Option<String>,
    /// The day of departure (required).
    #[param(format = Date)]
    pub(crate) date: Option<String>,
    pub(crate) seats: Option<u32>,
    /// Changes allowed (default 2, at most 4).
    pub(crate) max_connections: Option<usize>,
    /// `arrival` (default), `legs` or `price`.
    #[param(schema_with = trip_sorts)]
    pub(crate) sort: Option<String>,
    pub(crate) limit: Option<usize>,
}

fn trip_sorts() -> Object {
    one_of(&["arrival", "legs", "price"])
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItineraryView {
    pub(crate) departs: String,
    pub(crate) arrives: String,
    pub(crate) duration_minutes: i64,
    pub(crate) totals: Vec<MoneyView>,
    pub(crate) legs: Vec<TripLegView>,
    /// The parts to book this itinerary, as the pages' booking form carries them.
    #[serde(skip)]
    pub(crate) book_parts: String,
    /// Where and on which local day it arrives, to offer a stay there.
    #[serde(skip)]
    pub(crate) arrival_place: String,
    #[serde(skip)]
    pub(crate) arrival_date: String,
    #[serde(skip)]
    pub(crate) arrival_next_date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TripLegView {
    pub(crate) origin: String,
    pub(crate) listing: String,
    #[schema(schema_with = trip_modes)]
    pub(crate) mode: &'static str,
    pub(crate) operator: String,
    pub(crate) service_number: String,
    /// The day the trip leaves its first stop: the day to hold seats on.
    pub(crate) departure: String,
    pub(crate) from: String,
    pub(crate) from_name: String,
    pub(crate) to: String,
    pub(crate) to_name: String,
    pub(crate) departs: String,
    pub(crate) arrives: String,
    /// The same in each stop's local time, `YYYY-MM-DD HH:MM`, as timetables show them.
    pub(crate) departs_local: String,
    pub(crate) arrives_local: String,
    pub(crate) fare: MoneyView,
    pub(crate) seats_left: u32,
    pub(crate) cancellation: CancellationView,
}

/// An instant in a place's local time, `YYYY-MM-DD HH:MM`.
/// `YYYY-MM-DD HH:MM` on the clocks of `zone` at `at`.
fn local_time(at: Timestamp, zone: &Zone) -> String {
    let local = rfc3339(local_clock(at, zone));
    match (local.get(..10), local.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => local,
    }
}

/// The instant whose UTC reading is what clocks in `zone` show at `at`.
fn local_clock(at: Timestamp, zone: &Zone) -> Timestamp {
    Timestamp(at.ms() + i64::from(zone.offset_min_at(at)) * 60_000)
}

pub(crate) fn itinerary_view(itinerary: &Itinerary<Origin>, seats: u32) -> ItineraryView {
    let legs = itinerary
        .legs
        .iter()
        .filter_map(|leg| {
            let ListingDetails::Trip(trip) = &leg.listing.details else { return None };
            let (board, alight) = (&trip.stops[leg.board_stop], &trip.stops[leg.alight_stop]);
            Some(TripLegView {
                origin: leg.origin.to_hex(),
                listing: leg.listing.id.to_string(),
                mode: crate::dto::trip_mode_name(trip.mode),
                operator: trip.operator.clone(),
                service_number: trip.service_number.clone(),
                departure: leg.departure_date.to_string(),
                from: board.code.clone(),
                from_name: board.name.clone(),
                to: alight.code.clone(),
                to_name: alight.name.clone(),
                departs: rfc3339(leg.departs),
                arrives: rfc3339(leg.arrives),
                departs_local: local_time(leg.departs, &board.zone),
                arrives_local: local_time(leg.arrives, &alight.zone),
                fare: leg.fare.into(),
                seats_left: leg.seats_left,
                cancellation: cancellation_view(&leg.listing, leg.listing.start_on(leg.departure_date), &board.zone),
            })
        })
        .collect();
    let arrival = itinerary.legs.last().and_then(|leg| match &leg.listing.details {
        ListingDetails::Trip(trip) => {
            let stop = &trip.stops[leg.alight_stop];
            Some((stop.name.clone(), local_clock(leg.arrives, &stop.zone).date()))
        }
        ListingDetails::Stay(_) => None,
    });
    let (arrival_place, arrival_date) = arrival.unwrap_or((String::new(), itinerary.arrives.date()));
    ItineraryView {
        arrival_place,
        arrival_date: arrival_date.to_string(),
        arrival_next_date: arrival_date.add_days(1).to_string(),
        departs: rfc3339(itinerary.departs),
        arrives: rfc3339(itinerary.arrives),
        duration_minutes: (itinerary.arrives.ms() - itinerary.departs.ms()) / 60_000,
        totals: itinerary.totals.iter().map(|m| (*m).into()).collect(),
        legs,
        book_parts: crate::book_link::BookPart::encode_all(itinerary.legs.iter().map(|leg| {
            crate::book_link::BookPart::Trip {
                origin: leg.origin,
                listing: leg.listing.id.to_string(),
                departure: leg.departure_date,
                seats,
            }
        })),
    }
}

impl TripSearchParams {
    pub(crate) fn query(self) -> Result<TripQuery> {
        let sort = match self.sort.as_deref() {
            None | Some("arrival") => TripSort::EarliestArrival,
            Some("legs") => TripSort::FewestLegs,
            Some("price") => TripSort::LowestPrice,
            Some(other) => return Err(ApiError::invalid(format!("sort {other:?}: arrival, legs or price"))),
        };
        let max_connections = self.max_connections.unwrap_or(2);
        if max_connections > CONNECTIONS_MAX {
            return Err(ApiError::invalid(format!("max_connections: at most {CONNECTIONS_MAX}")));
        }
        let seats = self.seats.unwrap_or(1);
        let seats_max = caravan_model::limits::SEATS_MAX;
        if !(1..=seats_max).contains(&seats) {
            return Err(ApiError::invalid(format!("seats must be 1-{seats_max}, not {seats}")));
        }
        let limit = match self.limit {
            None => ITINERARIES_DEFAULT,
            Some(n) if (1..=ITINERARIES_MAX).contains(&n) => n,
            Some(n) => return Err(ApiError::invalid(format!("limit must be 1-{ITINERARIES_MAX}, not {n}"))),
        };
        let required =
            |field: Option<String>, name: &str| field.ok_or_else(|| ApiError::invalid(format!("{name} is required")));
        Ok(TripQuery {
            from: required(self.from, "from")?.trim().to_uppercase(),
            to: required(self.to, "to")?.trim().to_uppercase(),
            date: Date::parse(&required(self.date, "date")?)?,
            seats,
            max_connections,
            sort,
            limit,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Itineraries {
    itineraries: Vec<ItineraryView>,
}

/// Itineraries from one stop to another, with changes, from the local catalog.
#[utoipa::path(get, path = "/api/v1/search/trips", tag = "agency", params(TripSearchParams), responses((status = 200, body = Itineraries)))]
pub async fn search_trips(
    State(app): State<AppState>,
    params: std::result::Result<Query<TripSearchParams>, QueryRejection>,
) -> Result<Json<Itineraries>> {
    let Query(params) = params?;
    let query = params.query()?;
    let views: Vec<ItineraryView> =
        app.catalog.search_trips(&query).iter().map(|i| itinerary_view(i, query.seats)).collect();
    Ok(Json(Itineraries { itineraries: views }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingInput {
    traveller: TravellerView,
    #[schema(min_items = 1, max_items = 8)]
    parts: Vec<BookingPartInput>,
    /// Hold every part and wait for `POST …/confirm` (before the holds
    /// expire) instead of confirming at once.
    #[serde(default)]
    hold_only: bool,
}

/// One part: the owner's origin (hex) and a hold as `POST /api/v1/holds`
/// takes it, in one object.
#[derive(Debug)]
pub struct BookingPartInput {
    origin: String,
    hold: HoldInput,
}

/// By hand, because serde's `flatten` would let unknown fields through:
/// `origin` is taken out, and the rest must be exactly a `HoldInput`.
impl<'de> Deserialize<'de> for BookingPartInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<BookingPartInput, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let origin = fields.remove("origin").ok_or_else(|| D::Error::missing_field("origin"))?;
        let origin = String::deserialize(origin).map_err(D::Error::custom)?;
        let hold = HoldInput::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(BookingPartInput { origin, hold })
    }
}

/// A hold's schema with the owner's `origin` beside its fields.
impl PartialSchema for BookingPartInput {
    fn schema() -> RefOr<Schema> {
        let mut schema = HoldInput::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let origin = utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .pattern(Some("^[0-9a-f]{64}$"))
                .description(Some("The owner's ed25519 public key, hex."));
            object.properties.insert("origin".into(), origin.into());
            object.required.push("origin".into());
        }
        schema
    }
}

impl ToSchema for BookingPartInput {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        HoldInput::schemas(schemas);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingView {
    pub(crate) id: u64,
    /// `held` waits for a confirm; `confirmed`, `failed` and `cancelled` are final.
    #[schema(schema_with = booking_states)]
    pub(crate) state: &'static str,
    pub(crate) traveller: TravellerView,
    pub(crate) parts: Vec<BookingPartView>,
    pub(crate) totals: Vec<MoneyView>,
    /// Penalties charged by cancellations, per currency.
    pub(crate) penalties: Vec<MoneyView>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    /// While held: when the first hold expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) held_until: Option<String>,
}

fn booking_states() -> Object {
    one_of(&["holding", "held", "confirming", "releasing", "confirmed", "failed", "cancelling", "cancelled"])
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingPartView {
    pub(crate) origin: String,
    pub(crate) listing: String,
    /// The listing's title, from the local catalog (on one booking's view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    /// The first night or the departure day.
    pub(crate) starts_on: String,
    #[schema(schema_with = part_statuses)]
    pub(crate) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hold_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) total: Option<MoneyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) penalty: Option<MoneyView>,
    /// For a confirmed part: what cancelling now would cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) penalty_if_cancelled_now: Option<MoneyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refusal: Option<RefusalView>,
    /// The owner's signed receipt (hex of the encoded `SignedReceipt` parts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) receipt: Option<ReceiptView>,
}

fn part_statuses() -> Object {
    one_of(&["new", "held", "confirmed", "released", "refused", "abandoned", "cancelled"])
}

/// Why an owner refused a part: a stable code and a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusalView {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// The signature covers `caravan/receipt/1` followed by the receipt, or,
/// for receipts the owner signed in a batch, `caravan/receipt-batch/1`
/// followed by the Merkle root that `proof` leads to from this receipt.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptView {
    pub(crate) receipt: String,
    pub(crate) signature: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) proof: Option<ReceiptProofView>,
}

/// Where a receipt sits in its batch: its index, the batch's size, and the
/// sibling hashes (hex) from its leaf up to the root.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptProofView {
    pub(crate) index: u32,
    pub(crate) count: u32,
    pub(crate) path: Vec<String>,
}

fn money(currency: &Option<String>, amount: i64) -> Option<MoneyView> {
    let currency = caravan_model::Currency::parse(currency.as_deref()?).ok()?;
    Some(Money::new(amount, currency).into())
}

/// The booking's view with what cancelling each confirmed part now would
/// cost, from the listings in the local catalog.
pub(crate) fn booking_view_now(app: &AppState, booking: &Booking) -> BookingView {
    let mut view = booking_view(booking);
    let now = app.now();
    for (part, shown) in booking.saga.parts.iter().zip(view.parts.iter_mut()) {
        let listing = app.catalog.listing(&part.owner(), part.spec.request.listing().as_str());
        shown.title = listing.as_ref().map(|l| l.title.clone());
        shown.penalty_if_cancelled_now =
            listing.and_then(|l| caravan_booking::agency::cancellation_penalty(part, &l, now)).map(Into::into);
    }
    view
}

pub(crate) fn booking_view(booking: &Booking) -> BookingView {
    let saga = &booking.saga;
    let parts = saga
        .parts
        .iter()
        .map(|part| BookingPartView {
            origin: part.owner().to_hex(),
            listing: part.spec.request.listing().to_string(),
            title: None,
            starts_on: part.spec.request.start().to_string(),
            status: part.status.name(),
            hold_id: part.hold.map(|h| h.hold.0),
            total: part.total_minor.and_then(|t| money(&part.currency, t)),
            penalty: (part.penalty_minor != 0).then(|| money(&part.currency, part.penalty_minor)).flatten(),
            penalty_if_cancelled_now: None,
            expires_at: (part.status == PartStatus::Held).then(|| part.expires_at.map(rfc3339)).flatten(),
            refusal: part
                .refusal
                .as_ref()
                .map(|r| RefusalView { code: r.code.to_string(), message: r.message.clone() }),
            receipt: part.receipt.as_ref().map(|r| ReceiptView {
                receipt: hex::encode(&r.receipt),
                signature: hex::encode(r.signature),
                proof: r.proof.as_ref().map(|proof| ReceiptProofView {
                    index: proof.index,
                    count: proof.count,
                    path: proof.path.iter().map(hex::encode).collect(),
                }),
            }),
        })
        .collect();
    let mut penalties: Vec<(String, i64)> = Vec::new();
    for part in saga.parts.iter().filter(|p| p.penalty_minor != 0) {
        let Some(currency) = &part.currency else { continue };
        match penalties.iter_mut().find(|(c, _)| c == currency) {
            Some((_, sum)) => *sum = sum.saturating_add(part.penalty_minor),
            None => penalties.push((currency.clone(), part.penalty_minor)),
        }
    }
    let views = |sums: Vec<(String, i64)>| sums.into_iter().filter_map(|(c, a)| money(&Some(c), a)).collect();
    BookingView {
        id: saga.id,
        state: saga.phase.name(),
        traveller: TravellerView::from(&booking.traveller),
        parts,
        totals: views(saga.totals()),
        penalties: views(penalties),
        created_at: rfc3339(saga.created_at),
        updated_at: rfc3339(saga.updated_at),
        held_until: (saga.phase == Phase::Held).then(|| saga.held_until().map(rfc3339)).flatten(),
    }
}

impl From<BookingError> for ApiError {
    fn from(error: BookingError) -> ApiError {
        match error {
            BookingError::Invalid(message) => ApiError::invalid(message),
            BookingError::NotFound(_) => ApiError::not_found(error.to_string()),
            BookingError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            BookingError::Unavailable(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
        }
    }
}

/// 201 when the booking ended confirmed, 200 when it ended otherwise (the
/// parts say why), 202 while it is still going.
fn booking_response(booking: &Booking) -> Response {
    let status = match booking.saga.phase {
        Phase::Confirmed => StatusCode::CREATED,
        phase if phase.is_terminal() => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    (status, Json(booking_view(booking))).into_response()
}

/// Books parts at several owners as one: all confirmed or none. 201 when
/// confirmed, 200 when it failed (the parts say why), 202 while it is
/// still going or, with `hold_only`, held.
#[utoipa::path(post, path = "/api/v1/bookings", tag = "agency", params(IdempotencyKeyHeader), request_body = BookingInput, responses(
    (status = 201, body = BookingView), (status = 200, body = BookingView), (status = 202, body = BookingView)))]
pub async fn create_booking(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: std::result::Result<Json<BookingInput>, JsonRejection>,
) -> Result<Response> {
    let client_key = crate::request::idempotency_key(&headers)?.map(|k| k.as_str().to_owned());
    let Json(input) = body?;
    let mut parts = Vec::with_capacity(input.parts.len());
    for part in &input.parts {
        let origin = Origin::from_hex(&part.origin).ok_or_else(|| ApiError::invalid("origin: 64 hex characters"))?;
        let spec = HoldSpec {
            request: part.hold.request()?,
            hold_seconds: part.hold.hold_seconds.unwrap_or(0),
            expected_total_minor: part.hold.expected_total_minor,
            // The agency's node adds the traveller to every part.
            traveller: None,
        };
        parts.push((origin, spec));
    }
    let new = NewBooking {
        client_key,
        user: Some(caller.user),
        traveller: input.traveller.into(),
        parts,
        wait_to_confirm: input.hold_only,
    };
    let booking = app.agency.create_booking(new).await?;
    Ok(booking_response(&booking))
}

/// Booking `id` if `caller` made it or is an admin; otherwise, as if it
/// did not exist.
pub(crate) async fn own_booking(app: &AppState, caller: &Principal, id: u64) -> Result<Booking> {
    let booking = app.agency.booking(id).await?.filter(|b| caller.role == Role::Admin || b.user == Some(caller.user));
    booking.ok_or_else(|| ApiError::not_found(format!("no booking {id}")))
}

/// One booking, with each part's status and receipt.
#[utoipa::path(get, path = "/api/v1/bookings/{id}", tag = "agency", params(NumberIdPath), responses((status = 200, body = BookingView)))]
pub async fn get_booking(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Json<BookingView>> {
    let Path(id) = path?;
    Ok(Json(booking_view_now(&app, &own_booking(&app, &caller, id).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingsQuery {
    /// Bookings older than this one.
    before_id: Option<u64>,
    /// Bookings in the page (default 100, at most 5,000).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingList {
    bookings: Vec<BookingView>,
    /// The `before_id` of the next page; null on the last.
    next_before_id: Option<u64>,
}

/// The caller's bookings (an admin's: everyone's), newest first.
#[utoipa::path(get, path = "/api/v1/bookings", tag = "agency", params(BookingsQuery), responses((status = 200, body = BookingList)))]
pub async fn list_bookings(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    query: std::result::Result<Query<BookingsQuery>, QueryRejection>,
) -> Result<Json<BookingList>> {
    let Query(page) = query?;
    let limit = page.limit.unwrap_or(crate::request::PAGE_DEFAULT).clamp(1, crate::request::PAGE_MAX);
    // A traveller sees their own bookings; an admin sees all.
    let user = (caller.role != Role::Admin).then_some(caller.user);
    let bookings = app.agency.bookings(user, page.before_id, limit).await?;
    let next_before_id = (bookings.len() == limit as usize).then(|| bookings.last().map(|b| b.saga.id)).flatten();
    let bookings = bookings.iter().map(booking_view).collect();
    Ok(Json(BookingList { bookings, next_before_id }))
}

/// Cancels a confirmed booking at every owner (the penalties are in the
/// answer), or lets a held one go.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/cancel", tag = "agency", params(NumberIdPath), responses((status = 200, body = BookingView)))]
pub async fn cancel_booking(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Response> {
    let Path(id) = path?;
    // A booking still held is let go; a confirmed one is cancelled at every owner.
    if own_booking(&app, &caller, id).await?.saga.phase == Phase::Held {
        let booking = app.agency.decide_booking(id, Decision::Release).await?;
        return Ok((StatusCode::OK, Json(booking_view(&booking))).into_response());
    }
    let booking = app.agency.cancel_booking(id).await?;
    Ok((StatusCode::OK, Json(booking_view(&booking))).into_response())
}

/// `POST /api/v1/bookings/{id}/confirm`'s optional body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmInput {
    /// Who travels, when the booking was held before they were known (or
    /// they changed); every owner gets it with the confirmation.
    traveller: Option<TravellerView>,
}

/// Confirms a booking made with `hold_only`, before its holds expire.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/confirm", tag = "agency", params(NumberIdPath), request_body = Option<ConfirmInput>, responses(
    (status = 201, body = BookingView), (status = 200, body = BookingView), (status = 202, body = BookingView)))]
pub async fn confirm_booking(
    State(app): State<AppState>,
    Extension(caller): Extension<Principal>,
    path: std::result::Result<Path<u64>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let Path(id) = path?;
    let input: ConfirmInput = match body.iter().all(u8::is_ascii_whitespace) {
        true => ConfirmInput { traveller: None },
        false => serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body: {e}")))?,
    };
    let traveller = input.traveller.map(caravan_model::Traveller::from);
    if let Some(traveller) = &traveller {
        traveller.validate().map_err(ApiError::invalid)?;
    }
    own_booking(&app, &caller, id).await?;
    let booking = app.agency.decide_booking(id, Decision::Confirm(traveller)).await?;
    Ok(booking_response(&booking))
}
