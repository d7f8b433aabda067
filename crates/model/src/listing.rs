//! Listings: what an owner sells. A *stay* is a hotel room type or a
//! vacation-rental unit sold by the night; a *trip* is a bus, train, ferry
//! or flight service sold by the seat on each departure day.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

use crate::limits::*;
use crate::{CountryCode, Currency, Date, Money, ParseError, TimeOfDay, Zone};

/// An owner's name for one of its listings; unique per origin.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListingId(String);

impl ListingId {
    pub fn parse(text: &str) -> Result<ListingId, ParseError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        // A letter or digit first: `.`, `..` or `.x` would name a path, not
        // a listing, in the URLs the id goes into.
        let starts_well = text.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !starts_well || text.len() > LISTING_ID_BYTES_MAX || !text.chars().all(ok_char) {
            return Err(ParseError::new(
                "listing id",
                format!(
                    "{text:?} must be 1-{LISTING_ID_BYTES_MAX} letters, digits, '-', '_' or '.', starting with a \
                     letter or digit"
                ),
            ));
        }
        Ok(ListingId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ListingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Listing {
    pub id: ListingId,
    pub title: String,
    pub description: String,
    /// Every price of this listing is in this currency.
    pub currency: Currency,
    pub cancellation: CancellationPolicy,
    pub details: ListingDetails,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ListingDetails {
    Stay(Stay),
    Trip(Trip),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum StayType {
    HotelRoom,
    VacationRental,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Stay {
    pub stay_type: StayType,
    pub address: String,
    pub city: String,
    pub country: CountryCode,
    pub location: GeoPoint,
    pub amenities: Vec<String>,
    /// Guests per unit.
    pub max_guests: u32,
    /// Local times at the property.
    pub check_in: TimeOfDay,
    pub check_out: TimeOfDay,
    /// The property's time zone, so deadlines such as "free cancellation
    /// until 48 hours before check-in" fall at the right instant on every
    /// date, daylight saving included.
    pub zone: Zone,
    /// Physical units of this type; nightly allotments never exceed it.
    pub units: u32,
}

/// WGS 84 coordinates in units of 10^-7 degree (about 1 cm), integers so
/// that signed records encode them exactly.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat_e7: i32,
    pub lon_e7: i32,
}

impl GeoPoint {
    pub const LAT_E7_MAX: i32 = 900_000_000;
    pub const LON_E7_MAX: i32 = 1_800_000_000;

    /// From degrees, rounded to 10^-7; `None` outside the globe or not finite.
    pub fn from_degrees(lat: f64, lon: f64) -> Option<GeoPoint> {
        if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0) {
            return None;
        }
        Some(GeoPoint { lat_e7: (lat * 1e7).round() as i32, lon_e7: (lon * 1e7).round() as i32 })
    }

    pub fn is_valid(self) -> bool {
        self.lat_e7.abs() <= Self::LAT_E7_MAX && self.lon_e7.abs() <= Self::LON_E7_MAX
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum TripMode {
    Bus,
    Train,
    Ferry,
    Flight,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Trip {
    pub mode: TripMode,
    pub operator: String,
    /// The service or flight number, e.g. "FX 1234".
    pub service_number: String,
    /// In travel order; at least an origin and a destination.
    pub stops: Vec<Stop>,
    pub seats: u32,
    /// Seat labels ("12A"), one per seat; empty when seats are not assigned.
    pub seat_map: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Stop {
    /// Station code or IATA airport code.
    pub code: String,
    pub name: String,
    pub arrival: Option<StopTime>,
    pub departure: Option<StopTime>,
    /// The stop's time zone, so local times across zones and daylight
    /// saving changes can be compared.
    pub zone: Zone,
}

/// A local time at a stop, `day_offset` days after the departure date
/// (an overnight leg arrives with day_offset 1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StopTime {
    pub day_offset: u8,
    pub time: TimeOfDay,
}

impl Stop {
    /// The instant of a local time here, for a departure on `date`.
    pub fn instant(&self, date: Date, at: StopTime) -> crate::Timestamp {
        self.zone.instant(date, at.day_offset as i64 * 1440 + at.time.minutes() as i64)
    }
}

/// Departure dates on which a trip's times are checked: a winter and a
/// summer date, so a timetable is in order on either side of daylight
/// saving changes in both hemispheres.
fn check_dates() -> [Date; 2] {
    [Date::from_ymd(2000, 1, 15).expect("a date"), Date::from_ymd(2000, 7, 15).expect("a date")]
}

/// Free cancellation until `free_until_hours` before arrival (stays) or
/// departure (trips); later, the penalty applies.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CancellationPolicy {
    pub free_until_hours: u32,
    pub penalty: Penalty,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Penalty {
    /// A share of the total, 0..=100.
    Percent(u8),
    /// The price of the first N nights (a trip is charged its full fare).
    Nights(u16),
}

impl CancellationPolicy {
    /// The penalty for cancelling `hours_before` the start. `night_prices`
    /// lists the booked price of each night in order (all units); a trip
    /// passes its fare as one element.
    pub fn penalty(&self, total: Money, night_prices: &[Money], ms_before_start: i64) -> Money {
        if ms_before_start >= self.free_until_hours as i64 * crate::Timestamp::MS_PER_HOUR {
            return Money::zero(total.currency);
        }
        match self.penalty {
            Penalty::Percent(p) => total.percent(p),
            Penalty::Nights(n) => {
                let nights = night_prices.iter().take(n as usize);
                let sum = nights.fold(0i64, |acc, m| acc.saturating_add(m.amount_minor));
                Money::new(sum.min(total.amount_minor), total.currency)
            }
        }
    }
}

/// Why a listing was refused: the field and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidListing {
    pub field: &'static str,
    /// True when the field broke a size limit (bytes or count), so callers
    /// can report "too long" apart from "wrong".
    pub too_long: bool,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidListing {
    InvalidListing { field, too_long: false, reason: reason.into() }
}

fn too_long(field: &'static str, reason: impl Into<String>) -> InvalidListing {
    InvalidListing { field, too_long: true, reason: reason.into() }
}

fn check_text(field: &'static str, text: &str, min: usize, max: usize) -> Result<(), InvalidListing> {
    if text.len() > max {
        return Err(too_long(field, format!("must be at most {max} bytes, is {}", text.len())));
    }
    if text.len() < min {
        return Err(invalid(field, format!("must be at least {min} bytes")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

impl Listing {
    /// Checks every limit and cross-field rule. Run on every listing an
    /// owner creates and every listing a peer sends.
    pub fn validate(&self) -> Result<(), InvalidListing> {
        // Ids are not checked when they deserialize (kept data must read),
        // so a listing made from a request is checked here.
        ListingId::parse(self.id.as_str()).map_err(|e| invalid("id", e.to_string()))?;
        check_text("title", &self.title, 1, TITLE_BYTES_MAX)?;
        check_text("description", &self.description, 0, DESCRIPTION_BYTES_MAX)?;
        let policy = &self.cancellation;
        if policy.free_until_hours > FREE_CANCELLATION_HOURS_MAX {
            return Err(invalid("cancellation.free_until_hours", format!("at most {FREE_CANCELLATION_HOURS_MAX}")));
        }
        match policy.penalty {
            Penalty::Percent(p) if p > 100 => return Err(invalid("cancellation.penalty", "percent above 100")),
            Penalty::Nights(n) if n > PENALTY_NIGHTS_MAX => {
                return Err(invalid("cancellation.penalty", format!("at most {PENALTY_NIGHTS_MAX} nights")))
            }
            _ => {}
        }
        match &self.details {
            ListingDetails::Stay(stay) => stay.validate(),
            ListingDetails::Trip(trip) => trip.validate(),
        }
    }

    pub fn stay(&self) -> Option<&Stay> {
        match &self.details {
            ListingDetails::Stay(stay) => Some(stay),
            ListingDetails::Trip(_) => None,
        }
    }

    pub fn trip(&self) -> Option<&Trip> {
        match &self.details {
            ListingDetails::Trip(trip) => Some(trip),
            ListingDetails::Stay(_) => None,
        }
    }

    /// Units (stays) or seats (trips): the ceiling of every daily allotment.
    pub fn capacity(&self) -> u32 {
        match &self.details {
            ListingDetails::Stay(stay) => stay.units,
            ListingDetails::Trip(trip) => trip.seats,
        }
    }

    /// When the service starts on `date`: check-in time, or the first departure.
    pub fn start_on(&self, date: Date) -> crate::Timestamp {
        match &self.details {
            ListingDetails::Stay(stay) => stay.zone.instant(date, stay.check_in.minutes() as i64),
            ListingDetails::Trip(trip) => {
                let first = &trip.stops[0];
                first.instant(date, first.departure.expect("validated: first stop departs"))
            }
        }
    }
}

impl Stay {
    fn validate(&self) -> Result<(), InvalidListing> {
        check_text("address", &self.address, 0, ADDRESS_BYTES_MAX)?;
        check_text("city", &self.city, 1, CITY_BYTES_MAX)?;
        if !self.location.is_valid() {
            return Err(invalid("location", "latitude within ±90°, longitude within ±180°"));
        }
        if self.amenities.len() > AMENITIES_MAX {
            return Err(too_long("amenities", format!("at most {AMENITIES_MAX}")));
        }
        for amenity in &self.amenities {
            check_text("amenities", amenity, 1, AMENITY_BYTES_MAX)?;
        }
        if !(1..=GUESTS_MAX).contains(&self.max_guests) {
            return Err(invalid("max_guests", format!("must be 1-{GUESTS_MAX}")));
        }
        if self.zone.fixed_offset_min().is_some_and(|offset| offset.abs() > UTC_OFFSET_MIN_MAX) {
            return Err(invalid("utc_offset_min", "within ±14 hours"));
        }
        if !(1..=UNITS_MAX).contains(&self.units) {
            return Err(invalid("units", format!("must be 1-{UNITS_MAX}")));
        }
        Ok(())
    }
}

impl Trip {
    fn validate(&self) -> Result<(), InvalidListing> {
        check_text("operator", &self.operator, 1, OPERATOR_BYTES_MAX)?;
        check_text("service_number", &self.service_number, 1, SERVICE_NUMBER_BYTES_MAX)?;
        if !(1..=SEATS_MAX).contains(&self.seats) {
            return Err(invalid("seats", format!("must be 1-{SEATS_MAX}")));
        }
        if !self.seat_map.is_empty() {
            if self.seat_map.len() != self.seats as usize {
                return Err(invalid("seat_map", "needs exactly one label per seat"));
            }
            let mut seen = BTreeSet::new();
            for label in &self.seat_map {
                check_text("seat_map", label, 1, SEAT_LABEL_BYTES_MAX)?;
                if !seen.insert(label) {
                    return Err(invalid("seat_map", format!("seat {label:?} appears twice")));
                }
            }
        }
        if self.stops.len() > STOPS_MAX {
            return Err(too_long("stops", format!("at most {STOPS_MAX} stops")));
        }
        if self.stops.len() < 2 {
            return Err(invalid("stops", "needs an origin and a destination"));
        }
        let last_idx = self.stops.len() - 1;
        let mut previous_ms: Option<[i64; 2]> = None;
        for (idx, stop) in self.stops.iter().enumerate() {
            check_text("stops.code", &stop.code, 1, STOP_CODE_BYTES_MAX)?;
            if !stop.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                return Err(invalid("stops.code", format!("{:?}: upper-case letters and digits", stop.code)));
            }
            check_text("stops.name", &stop.name, 0, STOP_NAME_BYTES_MAX)?;
            if stop.zone.fixed_offset_min().is_some_and(|offset| offset.abs() > UTC_OFFSET_MIN_MAX) {
                return Err(invalid("stops.utc_offset_min", "within ±14 hours"));
            }
            let needs_arrival = idx > 0;
            let needs_departure = idx < last_idx;
            if stop.arrival.is_some() != needs_arrival || stop.departure.is_some() != needs_departure {
                return Err(invalid(
                    "stops",
                    format!(
                        "stop {idx} ({}): every stop but the first has an arrival, every stop but the last a departure",
                        stop.code
                    ),
                ));
            }
            for at in [stop.arrival, stop.departure].into_iter().flatten() {
                if at.day_offset > STOP_DAY_OFFSET_MAX {
                    return Err(invalid("stops.day_offset", format!("at most {STOP_DAY_OFFSET_MAX}")));
                }
                let instants = check_dates().map(|date| stop.instant(date, at).ms());
                if previous_ms.is_some_and(|p| instants[0] < p[0] || instants[1] < p[1]) {
                    return Err(invalid("stops", format!("stop {idx} ({}): times go backwards", stop.code)));
                }
                previous_ms = Some(instants);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn stay_listing(id: &str, units: u32) -> Listing {
        Listing {
            id: ListingId::parse(id).unwrap(),
            title: "Double room".into(),
            description: "Quiet, courtyard side".into(),
            currency: Currency::parse("EUR").unwrap(),
            cancellation: CancellationPolicy { free_until_hours: 48, penalty: Penalty::Nights(1) },
            details: ListingDetails::Stay(Stay {
                stay_type: StayType::HotelRoom,
                address: "1 Rue de Rivoli".into(),
                city: "Paris".into(),
                country: CountryCode::parse("FR").unwrap(),
                location: GeoPoint::from_degrees(48.8566, 2.3522).unwrap(),
                amenities: vec!["wifi".into()],
                max_guests: 2,
                check_in: TimeOfDay::parse("15:00").unwrap(),
                check_out: TimeOfDay::parse("11:00").unwrap(),
                zone: Zone::named("Europe/Paris").unwrap(),
                units,
            }),
        }
    }

    fn at(day_offset: u8, hhmm: &str) -> Option<StopTime> {
        Some(StopTime { day_offset, time: TimeOfDay::parse(hhmm).unwrap() })
    }

    #[test]
    fn overnight_trip_across_time_zones_is_valid() {
        let mut listing = stay_listing("night-bus", 1);
        listing.details = ListingDetails::Trip(Trip {
            mode: TripMode::Bus,
            operator: "Nightline".into(),
            service_number: "N7".into(),
            stops: vec![
                Stop {
                    code: "LIS".into(),
                    name: "Lisbon".into(),
                    arrival: None,
                    departure: at(0, "22:00"),
                    zone: Zone::named("Europe/Lisbon").unwrap(),
                },
                // 01:30 next day in Madrid (UTC+1 in winter, +2 in summer) is
                // 00:30 or 23:30 UTC: after 22:00 in Lisbon (UTC+0 or +1) either way.
                Stop {
                    code: "MAD".into(),
                    name: "Madrid".into(),
                    arrival: at(1, "01:30"),
                    departure: None,
                    zone: Zone::named("Europe/Madrid").unwrap(),
                },
            ],
            seats: 2,
            seat_map: vec!["1A".into(), "1B".into()],
        });
        assert_eq!(listing.validate(), Ok(()));

        let ListingDetails::Trip(trip) = &mut listing.details else { unreachable!() };
        trip.stops[1].arrival = at(0, "21:00");
        assert_eq!(listing.validate().unwrap_err().field, "stops");
    }

    #[test]
    fn limits_are_enforced() {
        let mut listing = stay_listing("room", 3);
        assert_eq!(listing.validate(), Ok(()));
        listing.title = "x".repeat(TITLE_BYTES_MAX + 1);
        assert_eq!(listing.validate().unwrap_err().field, "title");
        listing.title = "ok".into();
        listing.cancellation.penalty = Penalty::Percent(101);
        assert_eq!(listing.validate().unwrap_err().field, "cancellation.penalty");
        assert!(ListingId::parse("has space").is_err());
        assert!(ListingId::parse(&"a".repeat(65)).is_err());
        for path_like in ["", ".", "..", ".hidden", "-x", "_x"] {
            assert!(ListingId::parse(path_like).is_err(), "{path_like:?}");
        }
        assert!(ListingId::parse("lumiere-double.2").is_ok());
    }

    #[test]
    fn a_stay_starts_at_local_check_in_time() {
        let mut tokyo = stay_listing("tokyo", 1);
        let ListingDetails::Stay(stay) = &mut tokyo.details else { unreachable!() };
        stay.zone = Zone::named("Asia/Tokyo").unwrap();
        let day = Date::parse("2030-04-01").unwrap();
        // 15:00 in Tokyo is 06:00 UTC.
        assert_eq!(tokyo.start_on(day).ms() - day.start().ms(), 6 * 3_600_000);
        let ListingDetails::Stay(stay) = &mut tokyo.details else { unreachable!() };
        stay.zone = Zone::Fixed(15 * 60);
        assert_eq!(tokyo.validate().unwrap_err().field, "utc_offset_min");
    }

    #[test]
    fn penalties() {
        let eur = Currency::parse("EUR").unwrap();
        let policy = CancellationPolicy { free_until_hours: 24, penalty: Penalty::Nights(1) };
        let nights = [Money::new(100, eur), Money::new(120, eur)];
        let total = Money::new(220, eur);
        assert_eq!(policy.penalty(total, &nights, 25 * 3_600_000).amount_minor, 0);
        assert_eq!(policy.penalty(total, &nights, 3_600_000).amount_minor, 100);
        let pct = CancellationPolicy { free_until_hours: 24, penalty: Penalty::Percent(50) };
        assert_eq!(pct.penalty(total, &nights, 0).amount_minor, 110);
    }
}
