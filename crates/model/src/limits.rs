//! Named limits on domain values. Every string, list and date range that
//! crosses a trust boundary (an API client, a peer) is bounded here, and the
//! checks in `listing` and `ari` refer to these constants by name.

/// Listing ids: ASCII letters, digits, `-`, `_`, `.`.
pub const LISTING_ID_BYTES_MAX: usize = 64;
pub const TITLE_BYTES_MAX: usize = 200;
pub const DESCRIPTION_BYTES_MAX: usize = 4_000;
pub const ADDRESS_BYTES_MAX: usize = 300;
pub const CITY_BYTES_MAX: usize = 100;
pub const AMENITIES_MAX: usize = 50;
pub const AMENITY_BYTES_MAX: usize = 50;
pub const GUESTS_MAX: u32 = 100;
/// Units of one room type or rental; a hotel with more splits its room types.
pub const UNITS_MAX: u32 = 10_000;
pub const OPERATOR_BYTES_MAX: usize = 100;
pub const SERVICE_NUMBER_BYTES_MAX: usize = 20;
/// UTC offsets in use run from -12:00 to +14:00.
pub const UTC_OFFSET_MIN_MAX: i16 = 14 * 60;
/// Stops of one trip, origin and destination included.
pub const STOPS_MAX: usize = 64;
pub const STOP_CODE_BYTES_MAX: usize = 10;
pub const STOP_NAME_BYTES_MAX: usize = 100;
/// Overnight legs may run into later days, but no service lasts a week.
pub const STOP_DAY_OFFSET_MAX: u8 = 6;
pub const SEATS_MAX: u32 = 1_000;
pub const SEAT_LABEL_BYTES_MAX: usize = 8;
/// Hours before arrival/departure a free cancellation may extend to (one year).
pub const FREE_CANCELLATION_HOURS_MAX: u32 = 24 * 366;
/// Nights of penalty a policy may charge.
pub const PENALTY_NIGHTS_MAX: u16 = 366;
/// ARI is kept from yesterday (time zones) to this many days ahead.
pub const HORIZON_DAYS_MAX: i32 = 731;
/// Nights of one stay.
pub const STAY_NIGHTS_MAX: u32 = 90;
/// A nightly price or fare; 10^12 minor units is more than any room costs.
pub const PRICE_MINOR_MAX: i64 = 1_000_000_000_000;
