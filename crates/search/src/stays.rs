//! Stay offers: whether a stay can be sold for given nights on its
//! published availability, and at what price — the same rules and the same
//! arithmetic as the owner's ledger (`check_stay`), so a quote found here
//! is the total the owner will ask.

use caravan_model::limits::STAY_NIGHTS_MAX;
use caravan_model::{AriRun, Date, GeoPoint, Listing, Money};

/// Where to look.
#[derive(Clone, PartialEq, Debug)]
pub enum Place {
    /// A city (compared without case), optionally in one country.
    City { city: String, country: Option<String> },
    /// Within `radius_m` metres of a point.
    Near { point: GeoPoint, radius_m: u32 },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum StaySort {
    /// Lowest total first.
    #[default]
    Price,
    /// Nearest first (needs a point: `Place::Near`).
    Distance,
}

#[derive(Clone, PartialEq, Debug)]
pub struct StayQuery {
    pub place: Place,
    pub check_in: Date,
    pub check_out: Date,
    pub guests: u32,
    /// Rooms or units wanted; guests are spread over them.
    pub units: u32,
    /// Bounds on the stay's total, in the listing's currency.
    pub total_min_minor: Option<i64>,
    pub total_max_minor: Option<i64>,
    /// Every one of these amenities (compared without case).
    pub amenities: Vec<String>,
    pub sort: StaySort,
    pub limit: usize,
}

impl StayQuery {
    /// One unit for `guests` in `place` from `check_in` to `check_out`,
    /// cheapest first, twenty offers, nothing else asked.
    pub fn new(place: Place, check_in: Date, check_out: Date, guests: u32) -> StayQuery {
        StayQuery {
            place,
            check_in,
            check_out,
            guests,
            units: 1,
            total_min_minor: None,
            total_max_minor: None,
            amenities: Vec::new(),
            sort: StaySort::Price,
            limit: 20,
        }
    }
}

/// The most offers one search returns.
pub const OFFERS_MAX: usize = 500;

/// A stay's price for some nights, if it can be sold.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StayPrice {
    /// Each night's price for all units, in order.
    pub nights: Vec<Money>,
    pub total: Money,
    /// The fewest units left on any of the nights.
    pub units_left: u32,
}

/// Prices `units` of a stay for `check_in..check_out` on its published
/// runs, or `None` when the owner would refuse it (closed, sold out,
/// restricted, too many guests).
pub fn price_stay(
    listing: &Listing,
    runs: &[AriRun],
    check_in: Date,
    check_out: Date,
    units: u32,
    guests: u32,
) -> Option<StayPrice> {
    let stay = listing.stay()?;
    let nights = check_in.days_until(check_out);
    if nights <= 0 || nights as u32 > STAY_NIGHTS_MAX || units == 0 {
        return None;
    }
    if guests == 0 || guests as u64 > stay.max_guests as u64 * units as u64 {
        return None;
    }
    let arrival = AriRun::find(runs, check_in)?;
    let too_short = arrival.min_stay != 0 && nights < arrival.min_stay as i32;
    let too_long = arrival.max_stay != 0 && nights > arrival.max_stay as i32;
    if arrival.closed_to_arrival || too_short || too_long {
        return None;
    }
    if AriRun::find(runs, check_out).is_some_and(|d| d.closed_to_departure) {
        return None;
    }
    let mut prices = Vec::with_capacity(nights as usize);
    let mut total = Money::zero(listing.currency);
    let mut units_left = u32::MAX;
    for offset in 0..nights {
        let day = AriRun::find(runs, check_in.add_days(offset)).filter(|d| !d.stop_sell && d.available >= units)?;
        let price = Money::new(day.price_minor, listing.currency).checked_mul(units as i64)?;
        total = total.checked_add(price)?;
        prices.push(price);
        units_left = units_left.min(day.available);
    }
    Some(StayPrice { nights: prices, total, units_left })
}

/// Great-circle distance in metres (haversine on a 6,371 km sphere).
pub fn distance_m(a: GeoPoint, b: GeoPoint) -> u32 {
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let rad = |e7: i32| (e7 as f64 / 1e7).to_radians();
    let (lat1, lat2) = (rad(a.lat_e7), rad(b.lat_e7));
    let dlat = lat2 - lat1;
    let dlon = rad(b.lon_e7) - rad(a.lon_e7);
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    (2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_model::AriDay;

    fn open(price: i64, available: u32) -> AriDay {
        AriDay { available, price_minor: price, ..AriDay::default() }
    }

    fn d(day: i32) -> Date {
        Date::from_days(20_000 + day)
    }

    #[test]
    fn prices_each_night_for_all_units() {
        let listing = caravan_test_utils::stay("room", "Lyon", 5);
        let runs = AriRun::encode([(d(0), open(100, 3)), (d(1), open(150, 2)), (d(2), open(150, 2))]);
        let price = price_stay(&listing, &runs, d(0), d(2), 2, 3).unwrap();
        assert_eq!(price.nights.iter().map(|m| m.amount_minor).collect::<Vec<_>>(), vec![200, 300]);
        assert_eq!(price.total.amount_minor, 500);
        assert_eq!(price.units_left, 2);
        // Three units exceed night 1; five guests exceed two double rooms.
        assert_eq!(price_stay(&listing, &runs, d(0), d(2), 3, 2), None);
        assert_eq!(price_stay(&listing, &runs, d(0), d(2), 2, 5), None);
        // A night without terms is not for sale.
        assert_eq!(price_stay(&listing, &runs, d(1), d(4), 1, 1), None);
    }

    #[test]
    fn restrictions_follow_the_ledger() {
        let listing = caravan_test_utils::stay("room", "Lyon", 5);
        let min2 = AriDay { min_stay: 2, ..open(100, 1) };
        let runs = AriRun::encode([(d(0), min2), (d(1), open(100, 1)), (d(2), open(100, 1))]);
        assert_eq!(price_stay(&listing, &runs, d(0), d(1), 1, 1), None, "minimum stay");
        assert!(price_stay(&listing, &runs, d(0), d(2), 1, 1).is_some());
        let ctd = AriDay { closed_to_departure: true, ..open(100, 1) };
        let runs = AriRun::encode([(d(0), open(100, 1)), (d(1), ctd)]);
        assert_eq!(price_stay(&listing, &runs, d(0), d(1), 1, 1), None, "closed to departure");
        let stopped = AriDay { stop_sell: true, ..open(100, 1) };
        let runs = AriRun::encode([(d(0), stopped)]);
        assert_eq!(price_stay(&listing, &runs, d(0), d(1), 1, 1), None, "stop sell");
    }

    #[test]
    fn distances_are_about_right() {
        let paris = GeoPoint::from_degrees(48.8566, 2.3522).unwrap();
        let lyon = GeoPoint::from_degrees(45.7640, 4.8357).unwrap();
        let km = distance_m(paris, lyon) / 1000;
        assert!((389..=394).contains(&km), "{km} km");
        assert_eq!(distance_m(paris, paris), 0);
    }
}
