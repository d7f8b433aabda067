//! A synthetic world, generated deterministically from a seed, one origin
//! at a time so that ten million listings never sit in memory at once.
//!
//! - **Cities** with Zipf-distributed sizes (the biggest holds about as
//!   many listings as the next two together), each in one of a dozen
//!   regions with its country, time zone, currency and a box of
//!   coordinates on land-ish latitudes.
//! - **Origins** from single hosts with one flat to chains with tens of
//!   thousands of room types: sizes from a bounded Pareto distribution
//!   (α = 1, up to [`CHAIN_LISTINGS_MAX`]), scaled to the listings asked.
//!   A chain's rooms spread over its cities; a host's flat is in one.
//! - **Availability**: 365 days from today per listing, the price changing
//!   every ~3 days on average, ~2 % of days closed, a minimum stay on some
//!   periods of a third of the listings.

use caravan_model::rng::SplitMix64;
use caravan_model::{
    AriDay, AriRun, CancellationPolicy, CountryCode, Currency, Date, GeoPoint, Listing, ListingDetails, ListingId,
    Penalty, Stay, StayType, TimeOfDay, Zone,
};

/// The largest origin: a chain with this many room types.
pub const CHAIN_LISTINGS_MAX: u64 = 50_000;
/// Days of availability each listing publishes, from today.
pub const HORIZON_DAYS: u32 = 365;
/// Mean days between price changes.
const RUN_DAYS_MEAN: f64 = 3.0;
/// Chance that a run is a closed day: closed runs last one day, open ones
/// [`RUN_DAYS_MEAN`] on average, so this closes ~2 % of days.
const CLOSED_RUN_CHANCE: f64 = 0.058;
/// Listings per city on average.
const LISTINGS_PER_CITY: u64 = 200;

/// Where cities may be: a country with its zone, currency and a box of
/// coordinates (degrees: latitude from, to; longitude from, to).
struct Region {
    country: &'static str,
    zone: &'static str,
    currency: &'static str,
    lat: (f64, f64),
    lon: (f64, f64),
}

const REGIONS: &[Region] = &[
    Region { country: "FR", zone: "Europe/Paris", currency: "EUR", lat: (43.0, 50.5), lon: (-1.5, 7.5) },
    Region { country: "ES", zone: "Europe/Madrid", currency: "EUR", lat: (36.5, 43.5), lon: (-8.5, 3.0) },
    Region { country: "IT", zone: "Europe/Rome", currency: "EUR", lat: (38.0, 46.5), lon: (7.5, 16.5) },
    Region { country: "DE", zone: "Europe/Berlin", currency: "EUR", lat: (47.5, 54.5), lon: (6.0, 14.5) },
    Region { country: "GB", zone: "Europe/London", currency: "GBP", lat: (50.5, 57.5), lon: (-5.0, 1.5) },
    Region { country: "CH", zone: "Europe/Zurich", currency: "CHF", lat: (45.9, 47.7), lon: (6.0, 10.4) },
    Region { country: "US", zone: "America/New_York", currency: "USD", lat: (30.0, 44.5), lon: (-84.0, -71.0) },
    Region { country: "US", zone: "America/Los_Angeles", currency: "USD", lat: (32.5, 47.5), lon: (-123.0, -117.0) },
    Region { country: "BR", zone: "America/Sao_Paulo", currency: "BRL", lat: (-25.0, -15.0), lon: (-50.0, -40.0) },
    Region { country: "JP", zone: "Asia/Tokyo", currency: "JPY", lat: (33.0, 43.0), lon: (130.0, 141.0) },
    Region { country: "TH", zone: "Asia/Bangkok", currency: "THB", lat: (7.0, 19.0), lon: (98.5, 104.5) },
    Region { country: "AU", zone: "Australia/Sydney", currency: "AUD", lat: (-37.5, -28.0), lon: (145.0, 153.5) },
];

const SYLLABLES: &[&str] = &[
    "ba", "ca", "da", "fe", "gi", "lo", "ma", "no", "pa", "ri", "sa", "te", "vo", "zu", "ber", "mon", "val", "lin",
    "sor", "tan", "mar", "del", "qui", "ros",
];

const AMENITIES: &[&str] = &["wifi", "parking", "pool", "breakfast", "gym", "air conditioning", "kitchen", "pets"];

#[derive(Clone, Debug)]
pub struct City {
    pub name: String,
    region: usize,
    center: (f64, f64),
    /// The share of listings it holds, as a Zipf weight (1 / rank).
    pub weight: f64,
}

/// The world's cities and origins' sizes: everything needed to generate
/// any origin's listings on their own.
#[derive(Clone, Debug)]
pub struct World {
    pub seed: u64,
    pub cities: Vec<City>,
    /// Cumulative city weights, for picking a city by its size.
    cumulative: Vec<f64>,
    /// Listings of each origin.
    pub origin_sizes: Vec<u64>,
    pub today: Date,
}

impl World {
    /// A world of `listings` listings over `origins` origins (default: one
    /// origin per 10 listings).
    pub fn new(listings: u64, origins: Option<u64>, seed: u64, today: Date) -> World {
        assert!(listings > 0);
        let mut rng = SplitMix64::new(seed);
        let city_count = (listings / LISTINGS_PER_CITY).max(10) as usize;
        let cities: Vec<City> = (0..city_count)
            .map(|rank| {
                let region = rng.below(REGIONS.len() as u64) as usize;
                let r = &REGIONS[region];
                let center = (uniform(&mut rng, r.lat.0, r.lat.1), uniform(&mut rng, r.lon.0, r.lon.1));
                City { name: city_name(rank), region, center, weight: 1.0 / (rank + 1) as f64 }
            })
            .collect();
        let mut total = 0.0;
        let cumulative = cities
            .iter()
            .map(|c| {
                total += c.weight;
                total
            })
            .collect();
        let origins = origins.unwrap_or(listings / 10).clamp(1, listings);
        let origin_sizes = origin_sizes(listings, origins, &mut rng);
        World { seed, cities, cumulative, origin_sizes, today }
    }

    pub fn listings(&self) -> u64 {
        self.origin_sizes.iter().sum()
    }

    /// A city picked in proportion to its size, as travellers search them.
    pub fn pick_city(&self, rng: &mut SplitMix64) -> &City {
        &self.cities[self.pick_city_index(rng)]
    }

    fn pick_city_index(&self, rng: &mut SplitMix64) -> usize {
        let total = *self.cumulative.last().expect("at least one city");
        let x = uniform(rng, 0.0, total);
        self.cumulative.partition_point(|&c| c < x).min(self.cities.len() - 1)
    }

    /// Origin `origin`'s listings with their availability, the same on
    /// every call.
    pub fn origin(&self, origin: usize) -> Vec<(Listing, Vec<AriRun>)> {
        let mut rng = SplitMix64::new(self.seed ^ (origin as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let size = self.origin_sizes[origin];
        let chain = size > 1;
        // A chain's hotels: one per ~50 room types, each in its own city.
        let hotels = size.div_ceil(50).max(1);
        let hotel_cities: Vec<usize> = (0..hotels).map(|_| self.pick_city_index(&mut rng)).collect();
        (0..size)
            .map(|i| {
                let city = &self.cities[hotel_cities[(i % hotels) as usize]];
                let listing = listing(origin, i, chain, city, &mut rng);
                let units = listing.capacity();
                (listing, availability(self.today, units, &mut rng))
            })
            .collect()
    }
}

/// Sizes from a bounded Pareto distribution, scaled so they sum to
/// `listings`, each at least one.
fn origin_sizes(listings: u64, origins: u64, rng: &mut SplitMix64) -> Vec<u64> {
    let cap = CHAIN_LISTINGS_MAX.min(listings) as f64;
    let raw: Vec<f64> = (0..origins)
        .map(|_| {
            // Inverse transform of P(X > x) = 1/x, truncated at the cap.
            let u = uniform(rng, 1.0 / cap, 1.0);
            (1.0 / u).min(cap)
        })
        .collect();
    let spare = (listings - origins) as f64;
    let extra_total: f64 = raw.iter().map(|x| x - 1.0).sum();
    let mut sizes: Vec<u64> = raw
        .iter()
        .map(|x| 1 + if extra_total > 0.0 { ((x - 1.0) / extra_total * spare).floor() as u64 } else { 0 })
        .collect();
    // Rounding down left fewer listings over than there are origins: the
    // first origins take one more each.
    let left = listings - sizes.iter().sum::<u64>();
    for size in sizes.iter_mut().take(left as usize) {
        *size += 1;
    }
    sizes
}

fn uniform(rng: &mut SplitMix64, from: f64, to: f64) -> f64 {
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    from + unit * (to - from)
}

/// A unique, pronounceable name for the city of this rank.
fn city_name(rank: usize) -> String {
    let mut name = String::new();
    let mut n = rank;
    loop {
        name.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
        if n == 0 {
            break;
        }
    }
    let mut chars = name.chars();
    let first = chars.next().expect("a syllable").to_ascii_uppercase();
    std::iter::once(first).chain(chars).collect()
}

pub fn listing_id(origin: usize, idx: u64) -> String {
    format!("w{origin}-{idx}")
}

fn listing(origin: usize, idx: u64, chain: bool, city: &City, rng: &mut SplitMix64) -> Listing {
    let region = &REGIONS[city.region];
    // Within ~5 km of the centre.
    let jitter = |rng: &mut SplitMix64| uniform(rng, -0.045, 0.045);
    let location = GeoPoint::from_degrees(city.center.0 + jitter(rng), city.center.1 + jitter(rng))
        .expect("regions lie on the globe");
    let amenities = AMENITIES.iter().filter(|_| rng.chance(0.4)).map(|a| a.to_string()).collect();
    let (stay_type, title, units, guests) = if chain {
        let kinds = ["Single room", "Double room", "Twin room", "Family room", "Suite"];
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        (StayType::HotelRoom, format!("{kind} {idx}"), 1 + rng.below(40) as u32, 1 + rng.below(4) as u32)
    } else {
        (StayType::VacationRental, format!("Flat in {}", city.name), 1, 2 + rng.below(5) as u32)
    };
    let free_until_hours = [0, 24, 48, 72][rng.below(4) as usize];
    Listing {
        id: ListingId::parse(&listing_id(origin, idx)).expect("a valid id"),
        title,
        description: format!(
            "A quiet {} close to the centre of {}, with {} guests at most. Linen and towels included.",
            if chain { "room" } else { "flat" },
            city.name,
            guests
        ),
        currency: Currency::parse(region.currency).expect("a valid currency"),
        cancellation: CancellationPolicy { free_until_hours, penalty: Penalty::Nights(1) },
        details: ListingDetails::Stay(Stay {
            stay_type,
            address: format!("{} Rue {}", 1 + rng.below(200), city_name(rng.below(500) as usize)),
            city: city.name.clone(),
            country: CountryCode::parse(region.country).expect("a valid country"),
            location,
            amenities,
            max_guests: guests,
            check_in: TimeOfDay::from_minutes(if rng.chance(0.5) { 14 * 60 } else { 15 * 60 }).expect("a time"),
            check_out: TimeOfDay::from_minutes(if rng.chance(0.5) { 10 * 60 } else { 11 * 60 }).expect("a time"),
            zone: Zone::named(region.zone).expect("a zone of the compiled-in database"),
            units,
        }),
    }
}

/// A year of availability: runs of ~3 days at a price near the listing's
/// base, closed days, and minimum stays on some periods of some listings.
fn availability(today: Date, units: u32, rng: &mut SplitMix64) -> Vec<AriRun> {
    let base = 4_000 + rng.below(26_000) as i64;
    let min_stays = rng.chance(1.0 / 3.0);
    let mut runs: Vec<AriRun> = Vec::new();
    let mut day = 0u32;
    while day < HORIZON_DAYS {
        let closed = rng.chance(CLOSED_RUN_CHANCE);
        let days = if closed { 1 } else { geometric(rng, RUN_DAYS_MEAN) }.min(HORIZON_DAYS - day);
        let terms = if closed {
            AriDay { available: 0, price_minor: base, stop_sell: true, ..AriDay::default() }
        } else {
            AriDay {
                available: 1 + rng.below(units as u64) as u32,
                // Within -20 % .. +40 % of the base, in whole units.
                price_minor: (base * (80 + rng.below(61) as i64) / 100) / 100 * 100,
                min_stay: if min_stays && rng.chance(0.25) { 2 + rng.below(2) as u16 } else { 0 },
                ..AriDay::default()
            }
        };
        // Neighbours may draw equal terms: one run, as the ledger keeps them.
        match runs.last_mut() {
            Some(last) if last.day == terms => last.days += days,
            _ => runs.push(AriRun { start: today.add_days(day as i32), days, day: terms }),
        }
        day += days;
    }
    runs
}

/// At least one, `mean` on average.
fn geometric(rng: &mut SplitMix64, mean: f64) -> u32 {
    let mut days = 1;
    while days < 60 && rng.chance(1.0 - 1.0 / mean) {
        days += 1;
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(listings: u64) -> World {
        World::new(listings, None, 7, Date::from_days(20_600))
    }

    #[test]
    fn origins_hold_every_listing_from_single_hosts_to_chains() {
        let world = world(200_000);
        assert_eq!(world.listings(), 200_000);
        assert_eq!(world.origin_sizes.len(), 20_000);
        let singles = world.origin_sizes.iter().filter(|&&s| s == 1).count();
        let largest = *world.origin_sizes.iter().max().expect("origins");
        assert!(singles > world.origin_sizes.len() / 3, "{singles} single hosts");
        assert!(largest >= 1_000, "the largest chain has {largest} listings");
    }

    #[test]
    fn a_year_of_availability_changes_price_every_few_days() {
        let world = world(10_000);
        let mut runs = 0;
        let mut days = 0;
        let mut closed = 0;
        let mut listings = 0;
        for origin in 0..200 {
            for (listing, ari) in world.origin(origin) {
                listing.validate().expect("a valid listing");
                assert_eq!(ari.iter().map(|r| r.days).sum::<u32>(), HORIZON_DAYS);
                assert!(ari.iter().all(|r| r.day.available <= listing.capacity()));
                runs += ari.len();
                days += HORIZON_DAYS;
                closed += ari.iter().filter(|r| r.day.stop_sell).map(|r| r.days).sum::<u32>();
                listings += 1;
            }
        }
        let days_per_run = days as f64 / runs as f64;
        let closed_share = closed as f64 / days as f64;
        assert!((2.5..3.5).contains(&days_per_run), "{days_per_run} days per run over {listings} listings");
        assert!((0.01..0.03).contains(&closed_share), "{closed_share} of days closed");
    }

    #[test]
    fn an_origin_is_the_same_on_every_call_and_cities_follow_zipf() {
        let world = world(50_000);
        let a = world.origin(3);
        let b = world.origin(3);
        assert_eq!(a, b);
        let mut rng = SplitMix64::new(1);
        let picks = 20_000;
        let top = (0..picks).filter(|_| world.pick_city(&mut rng).name == world.cities[0].name).count();
        let second = (0..picks).filter(|_| world.pick_city(&mut rng).name == world.cities[1].name).count();
        assert!(top > second, "the biggest city is picked most ({top} vs {second})");
        assert!(world.cities.iter().map(|c| &c.name).collect::<std::collections::BTreeSet<_>>().len() == 250);
    }
}
