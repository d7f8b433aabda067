//! The API's JSON shapes. Domain types never serialize themselves to
//! clients: these views decide names and formats (dates `YYYY-MM-DD`, times
//! `HH:MM`, money as integer minor units plus currency, coordinates in
//! degrees) and convert, checking every field on the way in.

use caravan_ledger::{DayState, Hold, HoldRequest, HoldState, ListingState};
use caravan_model::*;
use caravan_records::{Record, Verified};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

use crate::ApiError;

/// A stay or a trip, as written and as read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingInput {
    /// Chosen by the node when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "grand-hotel-double")]
    pub id: Option<String>,
    /// At most 200 bytes.
    pub title: String,
    /// At most 4,000 bytes.
    #[serde(default)]
    pub description: String,
    /// ISO 4217, upper case.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    pub cancellation: CancellationInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stay: Option<StayInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip: Option<TripInput>,
    /// Shown on reads. Accepted on writes so a client can PUT back what it
    /// GOT; withdrawing is `DELETE`, so `true` is refused on writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<bool>,
    /// Shown on reads (off sale for now). Read-only: accepted on writes so
    /// a client can PUT back what it GOT, and ignored there; pausing is
    /// `PUT /api/v1/listings/{id}/paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// Free until some hours before the start; then a penalty: a percent of
/// the total or some nights (exactly one of them).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationInput {
    pub free_until_hours: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 100)]
    pub penalty_percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalty_nights: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StayInput {
    #[serde(rename = "type")]
    #[schema(schema_with = stay_types)]
    pub stay_type: String,
    #[serde(default)]
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(pattern = "^[A-Z]{2}$", example = "FR")]
    pub country: String,
    /// Degrees, within ±90.
    pub lat: f64,
    /// Degrees, within ±180.
    pub lon: f64,
    #[serde(default)]
    pub amenities: Vec<String>,
    pub max_guests: u32,
    /// Local time at the property, `HH:MM`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "15:00")]
    pub check_in: String,
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "11:00")]
    pub check_out: String,
    /// The property's IANA time zone (`Europe/Paris`); UTC when neither
    /// it nor `utc_offset_min` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A fixed offset from UTC in minutes, for clients written before time
    /// zones had names; daylight saving then moves nothing. Not with
    /// `time_zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_min: Option<i16>,
    pub units: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TripInput {
    #[schema(schema_with = trip_modes)]
    pub mode: String,
    pub operator: String,
    pub service_number: String,
    #[schema(min_items = 2, max_items = 64)]
    pub stops: Vec<StopInput>,
    pub seats: u32,
    #[serde(default)]
    pub seat_map: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopInput {
    pub code: String,
    #[serde(default)]
    pub name: String,
    /// Local time at the stop, `HH:MM`; none at the first stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub arrival: Option<String>,
    /// Days after the departure date (1 for an overnight arrival).
    #[serde(default)]
    pub arrival_day: u8,
    /// Local time at the stop, `HH:MM`; none at the last stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub departure: Option<String>,
    #[serde(default)]
    pub departure_day: u8,
    /// The stop's IANA time zone; as for a stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A fixed offset from UTC in minutes; as for a stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_min: Option<i16>,
}

/// The zone a stay or stop names: `time_zone`, else the fixed
/// `utc_offset_min`, else UTC.
fn zone_of(field: &str, time_zone: Option<&str>, utc_offset_min: Option<i16>) -> Result<Zone, ApiError> {
    let zone = match (time_zone, utc_offset_min) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!("{field}: give time_zone or utc_offset_min, not both")));
        }
        (Some(name), None) => Zone::named(name),
        (None, Some(offset_min)) => Zone::fixed(offset_min),
        (None, None) => Zone::named("UTC"),
    };
    zone.map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

impl ListingInput {
    pub fn into_listing(self, id: ListingId) -> Result<Listing, ApiError> {
        if self.withdrawn == Some(true) {
            return Err(ApiError::invalid("withdraw a listing with DELETE /api/v1/listings/{id}"));
        }
        let penalty = match (self.cancellation.penalty_percent, self.cancellation.penalty_nights) {
            (Some(p), None) => Penalty::Percent(p),
            (None, Some(n)) => Penalty::Nights(n),
            _ => return Err(ApiError::invalid("cancellation: give exactly one of penalty_percent, penalty_nights")),
        };
        let details = match (self.stay, self.trip) {
            (Some(stay), None) => ListingDetails::Stay(stay.into_stay()?),
            (None, Some(trip)) => ListingDetails::Trip(trip.into_trip()?),
            _ => return Err(ApiError::invalid("give exactly one of stay, trip")),
        };
        let listing = Listing {
            id,
            title: self.title,
            description: self.description,
            currency: Currency::parse(&self.currency)?,
            cancellation: CancellationPolicy { free_until_hours: self.cancellation.free_until_hours, penalty },
            details,
        };
        listing.validate().map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(listing)
    }

    pub fn from_listing(listing: &Listing) -> ListingInput {
        let (penalty_percent, penalty_nights) = match listing.cancellation.penalty {
            Penalty::Percent(p) => (Some(p), None),
            Penalty::Nights(n) => (None, Some(n)),
        };
        let (stay, trip) = match &listing.details {
            ListingDetails::Stay(stay) => (Some(StayInput::from_stay(stay)), None),
            ListingDetails::Trip(trip) => (None, Some(TripInput::from_trip(trip))),
        };
        ListingInput {
            id: Some(listing.id.to_string()),
            title: listing.title.clone(),
            description: listing.description.clone(),
            currency: listing.currency.to_string(),
            cancellation: CancellationInput {
                free_until_hours: listing.cancellation.free_until_hours,
                penalty_percent,
                penalty_nights,
            },
            stay,
            trip,
            withdrawn: None,
            paused: None,
        }
    }
}

impl StayInput {
    fn into_stay(self) -> Result<Stay, ApiError> {
        Ok(Stay {
            stay_type: STAY_TYPES
                .iter()
                .find(|(name, _)| *name == self.stay_type)
                .map(|(_, stay_type)| *stay_type)
                .ok_or_else(|| {
                    ApiError::invalid(format!("stay.type {:?}: hotel_room or vacation_rental", self.stay_type))
                })?,
            address: self.address,
            city: self.city,
            country: CountryCode::parse(&self.country)?,
            location: GeoPoint::from_degrees(self.lat, self.lon)
                .ok_or_else(|| ApiError::invalid("lat within ±90, lon within ±180"))?,
            amenities: self.amenities,
            max_guests: self.max_guests,
            check_in: TimeOfDay::parse(&self.check_in)?,
            check_out: TimeOfDay::parse(&self.check_out)?,
            zone: zone_of("stay", self.time_zone.as_deref(), self.utc_offset_min)?,
            units: self.units,
        })
    }

    fn from_stay(stay: &Stay) -> StayInput {
        StayInput {
            stay_type: stay_type_name(stay.stay_type).into(),
            address: stay.address.clone(),
            city: stay.city.clone(),
            country: stay.country.as_str().into(),
            lat: stay.location.lat_e7 as f64 / 1e7,
            lon: stay.location.lon_e7 as f64 / 1e7,
            amenities: stay.amenities.clone(),
            max_guests: stay.max_guests,
            check_in: stay.check_in.to_string(),
            check_out: stay.check_out.to_string(),
            time_zone: stay.zone.name().map(str::to_owned),
            utc_offset_min: stay.zone.fixed_offset_min(),
            units: stay.units,
        }
    }
}

/// The API's names of stay types and trip modes: read, shown and listed in
/// the schemas from these tables.
const STAY_TYPES: [(&str, StayType); 2] =
    [("hotel_room", StayType::HotelRoom), ("vacation_rental", StayType::VacationRental)];

pub(crate) fn stay_type_name(stay_type: StayType) -> &'static str {
    STAY_TYPES.iter().find(|(_, t)| *t == stay_type).map(|(name, _)| *name).expect("all stay types named")
}

pub(crate) fn trip_mode_name(mode: TripMode) -> &'static str {
    TRIP_MODES.iter().find(|(_, m)| *m == mode).map(|(name, _)| *name).expect("all modes named")
}

const TRIP_MODES: [(&str, TripMode); 4] =
    [("bus", TripMode::Bus), ("train", TripMode::Train), ("ferry", TripMode::Ferry), ("flight", TripMode::Flight)];

impl TripInput {
    fn into_trip(self) -> Result<Trip, ApiError> {
        let mode = TRIP_MODES
            .iter()
            .find(|(name, _)| *name == self.mode)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| ApiError::invalid(format!("trip.mode {:?}: bus, train, ferry or flight", self.mode)))?;
        if self.stops.len() > limits::STOPS_MAX {
            return Err(ApiError::invalid(format!("at most {} stops", limits::STOPS_MAX)));
        }
        let stops = self
            .stops
            .into_iter()
            .map(|stop| {
                let at = |time: &Option<String>, day_offset: u8| -> Result<Option<StopTime>, ApiError> {
                    time.as_deref().map(|t| Ok(StopTime { day_offset, time: TimeOfDay::parse(t)? })).transpose()
                };
                Ok(Stop {
                    arrival: at(&stop.arrival, stop.arrival_day)?,
                    departure: at(&stop.departure, stop.departure_day)?,
                    zone: zone_of(&format!("stop {}", stop.code), stop.time_zone.as_deref(), stop.utc_offset_min)?,
                    code: stop.code,
                    name: stop.name,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Trip {
            mode,
            operator: self.operator,
            service_number: self.service_number,
            stops,
            seats: self.seats,
            seat_map: self.seat_map,
        })
    }

    fn from_trip(trip: &Trip) -> TripInput {
        let mode = trip_mode_name(trip.mode);
        TripInput {
            mode: mode.into(),
            operator: trip.operator.clone(),
            service_number: trip.service_number.clone(),
            stops: trip
                .stops
                .iter()
                .map(|stop| StopInput {
                    code: stop.code.clone(),
                    name: stop.name.clone(),
                    arrival: stop.arrival.map(|a| a.time.to_string()),
                    arrival_day: stop.arrival.map_or(0, |a| a.day_offset),
                    departure: stop.departure.map(|d| d.time.to_string()),
                    departure_day: stop.departure.map_or(0, |d| d.day_offset),
                    time_zone: stop.zone.name().map(str::to_owned),
                    utc_offset_min: stop.zone.fixed_offset_min(),
                })
                .collect(),
            seats: trip.seats,
            seat_map: trip.seat_map.clone(),
        }
    }
}

/// A listing as read: the input shape with `id` and `withdrawn` filled in.
pub type ListingView = ListingInput;

impl ListingInput {
    pub fn view(state: &ListingState) -> ListingView {
        ListingInput {
            withdrawn: Some(state.withdrawn),
            paused: Some(state.paused),
            ..ListingInput::from_listing(&state.listing)
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AriInput {
    /// Names the listing in `POST /api/v1/ari` batches; on
    /// `PUT /listings/{id}/ari` it may be left out and must match if given.
    #[serde(default)]
    pub listing: Option<String>,
    #[schema(format = Date, example = "2030-06-01")]
    pub from: String,
    /// The day after the last day changed.
    #[schema(format = Date, example = "2030-06-08")]
    pub to: String,
    pub available: Option<u32>,
    pub price_minor: Option<i64>,
    pub min_stay: Option<u16>,
    pub max_stay: Option<u16>,
    pub closed_to_arrival: Option<bool>,
    pub closed_to_departure: Option<bool>,
    pub stop_sell: Option<bool>,
}

impl AriInput {
    pub fn patch(&self) -> AriPatch {
        AriPatch {
            available: self.available,
            price_minor: self.price_minor,
            min_stay: self.min_stay,
            max_stay: self.max_stay,
            closed_to_arrival: self.closed_to_arrival,
            closed_to_departure: self.closed_to_departure,
            stop_sell: self.stop_sell,
        }
    }
}

/// `POST /api/v1/ari`: many changes in one request, as channel managers
/// send them. Each is its own ledger command: one refused change does not
/// stop the others.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AriBatchInput {
    #[schema(min_items = 1, max_items = 1000)]
    pub updates: Vec<AriInput>,
}

/// One change's outcome, in the order sent: `days_changed`, or `error`
/// and `message` as in an error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AriBatchResult {
    pub listing: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_changed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /api/v1/status`: what an operator checks first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeStatus {
    pub origin: String,
    /// Connected replication peers.
    pub peers: u64,
    /// Records held, of every origin (newest per slot).
    pub records_held: u64,
    /// Listings in the local catalog, of every origin.
    pub catalog_listings: u64,
    /// Records this node signed since it started.
    pub records_published: u64,
    /// Records received from peers that verified, duplicates included.
    pub records_received: u64,
    /// Received records that were new here.
    pub records_new: u64,
    /// Records found missing here and not fetched yet (while listing a
    /// peer far ahead, what that peer holds beyond this node): a new
    /// node's bootstrap still to do, as far as it knows.
    #[serde(default)]
    pub records_missing: u64,
    /// Replication payload bytes received: envelopes, reconciliation
    /// frames, fetched records.
    pub bytes_received: u64,
    /// Bytes read from peers' TCP connections: payload plus encryption,
    /// multiplexing, gossip control and duplicate deliveries.
    #[serde(default)]
    pub transport_bytes_received: u64,
    pub replication_lag: LagView,
    /// Hex BLAKE3 of the catalog; present with `?digest=true` (it reads
    /// the whole catalog). Equal digests mean equal catalogs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_digest: Option<String>,
}

/// The owner's replica group as this member sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct GroupView {
    pub member_id: u64,
    /// This member's libp2p peer id and where it listens for peers.
    pub peer_id: String,
    pub addrs: Vec<String>,
    /// "leader", "follower", "candidate", "learner" or "shutdown".
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub members: Vec<GroupMemberView>,
    pub last_log_index: Option<u64>,
    pub applied_index: u64,
    pub snapshot_index: Option<u64>,
    /// The timers this member runs with.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// The timers the group agreed on through its log, when they differ
    /// from the running ones: for a moment, while this member takes them.
    pub agreed_heartbeat_ms: Option<u64>,
    pub agreed_election_timeout_ms: Option<u64>,
    /// The Raft log's commit (fsync) time, 99th percentile of recent commits.
    pub append_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupMemberView {
    pub id: u64,
    pub peer_id: String,
    pub voter: bool,
    /// How far the leader knows this member's log to match its own.
    pub matched_index: Option<u64>,
    /// Where the member listens for peers (multiaddrs).
    #[serde(default)]
    pub addrs: Vec<String>,
}

/// The replica group members this one no longer talks to: a fault
/// injected for tests (`[group] fault_hooks = true` only). Empty heals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPartitionInput {
    /// Peer ids whose Raft messages are dropped, both ways.
    pub cut_off: Vec<String>,
}

/// A node to add to the owner's replica group (`caravan group join`
/// sends it): its member id, peer id and where it listens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMemberInput {
    pub member_id: u64,
    pub peer_id: String,
    pub addrs: Vec<String>,
}

/// Asks a member for an invitation to join its group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationInput {
    /// How long the invitation lasts (default an hour, at most a week).
    #[schema(minimum = 60, maximum = 604800)]
    pub ttl_seconds: Option<u32>,
}

/// A one-time invitation: give `token` to `caravan group join --invite`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationView {
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Sets the replica group's timers for every member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupTimersInput {
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
}

/// One connected peer, for operators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeerView {
    pub peer_id: String,
    /// The connection's remote address (empty if not known yet).
    pub address: String,
    /// Whether this node dialled it.
    pub dialled: bool,
    /// The last ping's round trip.
    pub rtt_ms: Option<u64>,
    pub connected_at: String,
    /// Records it sent that verified, and of those, new here.
    pub records_in: u64,
    pub records_new: u64,
    /// Records sent to it when it fetched what it missed.
    pub records_out: u64,
}

/// Records held of one origin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OriginView {
    pub origin: String,
    pub records: u64,
    /// When the newest of them was signed.
    pub newest: String,
}

/// An origin frozen because it signed two different records for one slot
/// and version: its records are dropped and refused from then on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EquivocationView {
    pub origin: String,
    pub detected_at: String,
}

/// From a record's signing at its origin to its storing here, over the
/// records new here since the node started. Quantiles are the upper bounds
/// of histogram buckets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LagView {
    pub samples: u64,
    pub last_ms: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    /// `[upper bound ms, samples at or below it]`, for merging across nodes.
    #[schema(value_type = Vec<Vec<u64>>)]
    pub buckets: Vec<(u64, u64)>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AriDayView {
    #[schema(format = Date)]
    pub date: String,
    /// What the owner opened for sale.
    pub allotment: u32,
    pub held: u32,
    pub booked: u32,
    /// What is left: allotment - held - booked.
    pub available: u32,
    pub price_minor: i64,
    pub min_stay: u16,
    pub max_stay: u16,
    pub closed_to_arrival: bool,
    pub closed_to_departure: bool,
    pub stop_sell: bool,
}

impl AriDayView {
    pub fn new(date: Date, day: &DayState) -> AriDayView {
        let t = &day.terms;
        AriDayView {
            date: date.to_string(),
            allotment: t.available,
            held: day.held,
            booked: day.booked,
            available: day.free(),
            price_minor: t.price_minor,
            min_stay: t.min_stay,
            max_stay: t.max_stay,
            closed_to_arrival: t.closed_to_arrival,
            closed_to_departure: t.closed_to_departure,
            stop_sell: t.stop_sell,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldInput {
    pub listing: String,
    /// A stay's first night.
    #[schema(format = Date)]
    pub check_in: Option<String>,
    /// The morning a stay ends.
    #[schema(format = Date)]
    pub check_out: Option<String>,
    pub units: Option<u32>,
    pub guests: Option<u32>,
    /// The day a trip leaves its first stop.
    #[schema(format = Date)]
    pub departure: Option<String>,
    pub seats: Option<u32>,
    #[serde(default)]
    pub seat_numbers: Vec<String>,
    /// How long to hold, in seconds (default 900).
    #[schema(minimum = 10, maximum = 3600)]
    pub hold_seconds: Option<u32>,
    /// The total the client was quoted; the hold is refused if it changed.
    pub expected_total_minor: Option<i64>,
}

impl HoldInput {
    pub fn request(&self) -> Result<HoldRequest, ApiError> {
        let listing = ListingId::parse(&self.listing)?;
        let date = |text: &Option<String>, field: &str| -> Result<Date, ApiError> {
            let text = text.as_deref().ok_or_else(|| ApiError::invalid(format!("{field} is required")))?;
            Ok(Date::parse(text)?)
        };
        match (&self.check_in, &self.departure) {
            (Some(_), None) => Ok(HoldRequest::Stay {
                listing,
                check_in: date(&self.check_in, "check_in")?,
                check_out: date(&self.check_out, "check_out")?,
                units: self.units.unwrap_or(1),
                guests: self.guests.unwrap_or(1),
            }),
            (None, Some(_)) => {
                if self.seat_numbers.len() > limits::SEATS_MAX as usize {
                    return Err(ApiError::invalid("too many seat numbers"));
                }
                let seats = self.seats.unwrap_or(self.seat_numbers.len().max(1) as u32);
                Ok(HoldRequest::Trip {
                    listing,
                    departure: date(&self.departure, "departure")?,
                    seats,
                    seat_numbers: self.seat_numbers.clone(),
                })
            }
            _ => Err(ApiError::invalid("a stay hold gives check_in and check_out; a trip hold gives departure")),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MoneyView {
    pub amount_minor: i64,
    pub currency: String,
    /// For people: `123.45 EUR`.
    pub display: String,
}

impl From<Money> for MoneyView {
    fn from(money: Money) -> MoneyView {
        MoneyView { amount_minor: money.amount_minor, currency: money.currency.to_string(), display: money.to_string() }
    }
}

/// What `POST /api/v1/holds` takes: one hold, or a batch of them (an
/// array), each with its own idempotency key and its own answer. Holds
/// sent together share the owner's log entries either way; a batch saves
/// the requests.
#[derive(Debug)]
pub enum HoldsInput {
    One(HoldInput),
    Batch(Vec<HoldBatchItem>),
}

/// By hand, so a single hold's errors stay serde's own (an untagged enum
/// would say only that nothing matched).
impl<'de> Deserialize<'de> for HoldsInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<HoldsInput, D::Error> {
        use serde::de::{value, MapAccess, SeqAccess, Visitor};
        struct OneOrBatch;
        impl<'de> Visitor<'de> for OneOrBatch {
            type Value = HoldsInput;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hold, or an array of holds")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<HoldsInput, A::Error> {
                HoldInput::deserialize(value::MapAccessDeserializer::new(map)).map(HoldsInput::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<HoldsInput, A::Error> {
                Vec::deserialize(value::SeqAccessDeserializer::new(seq)).map(HoldsInput::Batch)
            }
        }
        deserializer.deserialize_any(OneOrBatch)
    }
}

impl utoipa::PartialSchema for HoldsInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let batch = utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("HoldBatchItem"))
            .min_items(Some(1))
            .max_items(Some(caravan_ledger::BATCH_COMMANDS_MAX));
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("HoldInput"))
            .item(batch)
            .into()
    }
}

impl ToSchema for HoldsInput {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push(("HoldInput".into(), <HoldInput as utoipa::PartialSchema>::schema()));
        HoldInput::schemas(schemas);
        schemas.push(("HoldBatchItem".into(), <HoldBatchItem as utoipa::PartialSchema>::schema()));
    }
}

/// One hold of a batch: a hold as `POST /api/v1/holds` takes it, with its
/// own `idempotency_key` (the header's role for a single hold).
#[derive(Debug)]
pub struct HoldBatchItem {
    pub idempotency_key: Option<String>,
    pub hold: HoldInput,
}

/// By hand, because serde's `flatten` would let unknown fields through.
impl<'de> Deserialize<'de> for HoldBatchItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<HoldBatchItem, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let idempotency_key = match fields.remove("idempotency_key") {
            None | Some(serde_json::Value::Null) => None,
            Some(key) => Some(String::deserialize(key).map_err(D::Error::custom)?),
        };
        let hold = HoldInput::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(HoldBatchItem { idempotency_key, hold })
    }
}

impl utoipa::PartialSchema for HoldBatchItem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut schema = HoldInput::schema();
        if let utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object)) = &mut schema {
            let key = ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(caravan_ledger::IdempotencyKey::BYTES_MAX))
                .description(Some("This hold's idempotency key: a retry of the batch gets each first answer back."));
            object.properties.insert("idempotency_key".into(), key.into());
        }
        schema
    }
}

impl ToSchema for HoldBatchItem {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        HoldInput::schemas(schemas);
    }
}

/// The answers to a batch of holds, in its order.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldBatchView {
    pub results: Vec<HoldBatchResult>,
}

/// One hold's answer in a batch: the status a single request would have
/// had, and its hold or its error.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldBatchResult {
    #[schema(example = 201)]
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldView>,
    /// The error's stable code, as a single request's body has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldView {
    pub id: u64,
    pub listing: String,
    #[schema(schema_with = hold_states)]
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_out: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seat_numbers: Vec<String>,
    pub total: MoneyView,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_penalty: Option<MoneyView>,
    /// Who travels, when the agency said (owner's eyes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traveller: Option<TravellerView>,
}

impl HoldView {
    /// The view with the traveller the ledger keeps for this hold.
    pub fn from_ledger(ledger: &caravan_ledger::Ledger, hold: &Hold) -> HoldView {
        HoldView { traveller: ledger.traveller(hold.id).map(TravellerView::from), ..HoldView::new(hold) }
    }

    pub fn new(hold: &Hold) -> HoldView {
        let mut view = HoldView {
            id: hold.id.0,
            listing: hold.request.listing().to_string(),
            state: hold.state.name(),
            check_in: None,
            check_out: None,
            units: None,
            guests: None,
            departure: None,
            seats: None,
            seat_numbers: Vec::new(),
            total: hold.total.into(),
            created_at: rfc3339(hold.created_at),
            expires_at: rfc3339(hold.expires_at),
            resolved_at: None,
            cancellation_penalty: None,
            traveller: None,
        };
        match &hold.request {
            HoldRequest::Stay { check_in, check_out, units, guests, .. } => {
                view.check_in = Some(check_in.to_string());
                view.check_out = Some(check_out.to_string());
                view.units = Some(*units);
                view.guests = Some(*guests);
            }
            HoldRequest::Trip { departure, seats, seat_numbers, .. } => {
                view.departure = Some(departure.to_string());
                view.seats = Some(*seats);
                view.seat_numbers = seat_numbers.clone();
            }
        }
        match hold.state {
            HoldState::Held => {}
            HoldState::Expired { at } | HoldState::Cancelled { at } | HoldState::Confirmed { at } => {
                view.resolved_at = Some(rfc3339(at));
            }
            HoldState::BookingCancelled { at, penalty } => {
                view.resolved_at = Some(rfc3339(at));
                view.cancellation_penalty = Some(penalty.into());
            }
        }
        view
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    #[schema(schema_with = record_kinds)]
    pub kind: &'static str,
    pub key: String,
    pub version: u64,
    pub time: String,
    pub id: String,
    /// How the record is signed: alone, or as part of a bundle.
    #[schema(schema_with = proofs)]
    pub proof: &'static str,
    /// The encoded `caravan.v1.SignedRecord`, hex: what a peer verifies.
    pub signed_hex: String,
}

impl RecordView {
    pub fn new(record: &Verified<Record>) -> RecordView {
        RecordView {
            kind: record.kind.as_str(),
            key: record.key.clone(),
            version: record.version,
            time: rfc3339(record.time),
            id: hex::encode(record.id().0),
            proof: match record.proof() {
                caravan_records::Proof::Signature(_) => "signature",
                caravan_records::Proof::Bundle { .. } => "bundle",
            },
            signed_hex: hex::encode(record.encode()),
        }
    }
}

/// Who travels, as the agency tells the owner.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TravellerView {
    pub name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl From<TravellerView> for Traveller {
    fn from(view: TravellerView) -> Traveller {
        Traveller { name: view.name, email: view.email, phone: view.phone }
    }
}

impl From<&Traveller> for TravellerView {
    fn from(traveller: &Traveller) -> TravellerView {
        TravellerView { name: traveller.name.clone(), email: traveller.email.clone(), phone: traveller.phone.clone() }
    }
}

/// A string schema that takes one of `names`, for the fields whose values
/// are the names of a domain enum.
pub(crate) fn one_of(names: &[&str]) -> utoipa::openapi::Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names.iter().copied())).build()
}

pub(crate) fn stay_types() -> utoipa::openapi::Object {
    one_of(&STAY_TYPES.map(|(name, _)| name))
}

pub(crate) fn trip_modes() -> utoipa::openapi::Object {
    one_of(&TRIP_MODES.map(|(name, _)| name))
}

fn hold_states() -> utoipa::openapi::Object {
    one_of(&["held", "expired", "cancelled", "confirmed", "booking_cancelled"])
}

fn record_kinds() -> utoipa::openapi::Object {
    one_of(&["listing", "ari", "withdrawal", "contact"])
}

fn proofs() -> utoipa::openapi::Object {
    one_of(&["signature", "bundle"])
}

/// `2030-01-01T12:00:00.000Z`.
pub fn rfc3339(at: Timestamp) -> String {
    let ms_of_day = at.ms().rem_euclid(Timestamp::MS_PER_DAY);
    let (h, m, s, ms) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{}T{h:02}:{m:02}:{s:02}.{ms:03}Z", at.date())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339() {
        assert_eq!(rfc3339(Timestamp(1_893_456_000_000 + 45_296_789)), "2030-01-01T12:34:56.789Z");
    }
}
