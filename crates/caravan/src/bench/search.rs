//! Search latency over a large synthetic catalog, in the node's own index
//! (`caravan_search::SearchIndex`), without HTTP or a record store: what
//! an agency pays per query in the index itself. The stays it prices come
//! from a shelf that generates each listing again from its number, at
//! about the cost of decoding a stored record; `bench world` measures the
//! node with its real store.
//!
//! Stays: `listings` hotel room types over `cities` cities, each with a
//! year of availability in monthly runs (prices vary by listing and month,
//! some days closed or sold out). Queries ask for 1-7 nights in a random
//! city (80 %) or within 5 km of a random point (20 %).
//!
//! Trips: `departures` trip listings running daily between `stations`
//! stations in three time zones, 2-4 stops each. Queries ask for a random
//! station pair on a random day with up to two connections.

use std::time::Instant;

use serde_json::{json, Map, Value};

use caravan_model::*;
use caravan_records::Origin;
use caravan_search::{Place, SearchIndex, Shelf, StayQuery, StaySort, TripQuery, TripSort};

use super::proc_stats;
use super::{quantile, XorShift};
use crate::cli::SearchBench;

const ORIGINS: u32 = 1_000;
const HORIZON_DAYS: i32 = 365;
const TRIP_DAYS: i32 = 30;

fn origin(idx: u32) -> Origin {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&idx.to_le_bytes());
    Origin(bytes)
}

fn city_center(city: u32) -> (f64, f64) {
    // Cities on a grid over Europe-sized latitudes.
    (35.0 + (city % 50) as f64 * 0.5, -10.0 + (city / 50) as f64 * 0.75)
}

fn stay(idx: u32, city: u32, rng: &mut XorShift) -> Listing {
    let (lat, lon) = city_center(city);
    let jitter = |rng: &mut XorShift| (rng.below(2_000) as f64 - 1_000.0) / 20_000.0;
    let amenities = ["wifi", "parking", "pool", "breakfast", "gym"];
    Listing {
        id: ListingId::parse(&format!("room-{idx}")).expect("valid"),
        title: format!("Room type {idx}"),
        description: String::new(),
        currency: Currency::parse("EUR").expect("valid"),
        cancellation: CancellationPolicy { free_until_hours: 48, penalty: Penalty::Nights(1) },
        details: ListingDetails::Stay(Stay {
            stay_type: StayType::HotelRoom,
            address: String::new(),
            city: format!("City {city}"),
            country: CountryCode::parse("FR").expect("valid"),
            location: GeoPoint::from_degrees(lat + jitter(rng), lon + jitter(rng)).expect("on the globe"),
            amenities: amenities.iter().filter(|_| rng.below(2) == 0).map(|a| a.to_string()).collect(),
            max_guests: 2,
            check_in: TimeOfDay::from_minutes(15 * 60).expect("valid"),
            check_out: TimeOfDay::from_minutes(11 * 60).expect("valid"),
            zone: caravan_model::Zone::named("Europe/Paris").expect("a zone"),
            units: 20,
        }),
    }
}

/// Stay `idx` of a catalog of `cities` cities: its origin, key, listing
/// and runs, the same every time.
fn generated_stay(idx: u32, cities: u32, today: Date) -> (Origin, String, Listing, Vec<AriRun>) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (idx as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let city = rng.below(cities as u64) as u32;
    let listing = stay(idx, city, &mut rng);
    (origin(idx % ORIGINS), format!("room-{idx}"), listing, stay_runs(today, &mut rng))
}

/// The bench's record store: each stay generated again from its key.
struct GeneratedShelf {
    cities: u32,
    today: Date,
}

impl Shelf<Origin> for GeneratedShelf {
    fn stay(&self, _origin: &Origin, key: &str) -> Option<(Listing, Vec<AriRun>)> {
        let idx = key.strip_prefix("room-")?.parse().ok()?;
        let (_, _, listing, runs) = generated_stay(idx, self.cities, self.today);
        Some((listing, runs))
    }
}

fn stay_runs(today: Date, rng: &mut XorShift) -> Vec<AriRun> {
    let base = 5_000 + rng.below(25_000) as i64;
    let days = (0..HORIZON_DAYS).map(|d| {
        let month = d / 30;
        let closed = rng.below(50) == 0;
        let day = AriDay {
            available: if closed { 0 } else { 1 + (month as u32 % 5) },
            price_minor: base + month as i64 * 500,
            ..AriDay::default()
        };
        (today.add_days(d), day)
    });
    AriRun::encode(days)
}

fn trip(idx: u32, stations: u32, rng: &mut XorShift) -> Listing {
    let stop_count = 2 + rng.below(3) as usize;
    let mut codes: Vec<u32> = Vec::new();
    while codes.len() < stop_count {
        let code = rng.below(stations as u64) as u32;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let offset = |code: u32| (code % 3) as i16 * 60;
    let mut minutes = 5 * 60 + rng.below(18 * 60) as u32;
    let mut stops = Vec::new();
    for (i, &code) in codes.iter().enumerate() {
        let local = |m: u32, code: u32| {
            let local = m as i64 + offset(code) as i64;
            StopTime {
                day_offset: (local / 1440) as u8,
                time: TimeOfDay::from_minutes((local % 1440) as u32).expect("within a day"),
            }
        };
        let arrival = (i > 0).then(|| local(minutes, code));
        if i > 0 {
            minutes += 5;
        }
        let departure = (i + 1 < codes.len()).then(|| local(minutes, code));
        stops.push(Stop {
            code: format!("S{code}"),
            name: String::new(),
            arrival,
            departure,
            zone: caravan_model::Zone::fixed(offset(code)).expect("within ±14 hours"),
        });
        minutes += 30 + rng.below(210) as u32;
    }
    Listing {
        id: ListingId::parse(&format!("trip-{idx}")).expect("valid"),
        title: format!("Service {idx}"),
        description: String::new(),
        currency: Currency::parse("EUR").expect("valid"),
        cancellation: CancellationPolicy { free_until_hours: 24, penalty: Penalty::Percent(50) },
        details: ListingDetails::Trip(Trip {
            mode: TripMode::Bus,
            operator: format!("Operator {}", idx % 100),
            service_number: format!("S{idx}"),
            stops,
            seats: 50,
            seat_map: Vec::new(),
        }),
    }
}

fn millis(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

pub fn run(args: &SearchBench) -> anyhow::Result<Map<String, Value>> {
    anyhow::ensure!(
        args.cities > 0 && args.stations > 1 && args.queries > 0,
        "cities, stations and queries must be positive"
    );
    let today = crate::now().date();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let rss_before = proc_stats::peak_rss_mb(std::process::id()).unwrap_or(0.0);
    let started = Instant::now();
    let mut index: SearchIndex<Origin> = SearchIndex::new();
    for idx in 0..args.listings {
        let (owner, key, listing, runs) = generated_stay(idx, args.cities, today);
        index.put_listing(&owner, &key, listing);
        index.put_ari(&owner, &key, &runs);
    }
    let shelf = GeneratedShelf { cities: args.cities, today };
    for idx in 0..args.departures {
        let owner = origin(idx % ORIGINS);
        let key = format!("trip-{idx}");
        index.put_listing(&owner, &key, trip(idx, args.stations, &mut rng));
        let day = AriDay {
            available: 1 + rng.below(50) as u32,
            price_minor: 1_000 + rng.below(9_000) as i64,
            ..AriDay::default()
        };
        index.put_ari(&owner, &key, &[AriRun { start: today, days: TRIP_DAYS as u32, day }]);
    }
    let load_s = started.elapsed().as_secs_f64();
    let rss_after = proc_stats::peak_rss_mb(std::process::id()).unwrap_or(0.0);
    eprintln!("{} stays and {} trips indexed in {load_s:.1} s", args.listings, args.departures);

    let mut stay_ms = Vec::with_capacity(args.queries as usize);
    let mut offers_found = 0usize;
    for q in 0..args.queries {
        let check_in = today.add_days(1 + rng.below(300) as i32);
        let place = if q % 5 == 4 {
            let (lat, lon) = city_center(rng.below(args.cities as u64) as u32);
            Place::Near { point: GeoPoint::from_degrees(lat, lon).expect("on the globe"), radius_m: 5_000 }
        } else {
            Place::City { city: format!("City {}", rng.below(args.cities as u64)), country: None }
        };
        let sort = if matches!(place, Place::Near { .. }) { StaySort::Distance } else { StaySort::Price };
        let query = StayQuery {
            place,
            check_in,
            check_out: check_in.add_days(1 + rng.below(7) as i32),
            guests: 1 + rng.below(2) as u32,
            units: 1,
            total_min_minor: None,
            total_max_minor: None,
            amenities: if q % 3 == 0 { vec!["wifi".into()] } else { Vec::new() },
            sort,
            limit: 20,
        };
        let started = Instant::now();
        offers_found += index.search_stays(&query, &shelf).len();
        stay_ms.push(millis(started));
    }

    let trip_query = |rng: &mut XorShift| {
        let from = rng.below(args.stations as u64);
        let to = (from + 1 + rng.below(args.stations as u64 - 1)) % args.stations as u64;
        TripQuery {
            from: format!("S{from}"),
            to: format!("S{to}"),
            date: today.add_days(1 + rng.below(TRIP_DAYS as u64 - 5) as i32),
            seats: 1,
            max_connections: 2,
            sort: TripSort::EarliestArrival,
            limit: 10,
        }
    };
    // The first trip search builds the timetable; measured on its own.
    let started = Instant::now();
    index.search_trips(&trip_query(&mut rng));
    let timetable_build_ms = millis(started);
    let mut trip_ms = Vec::with_capacity(args.queries as usize);
    let mut itineraries_found = 0usize;
    for _ in 0..args.queries {
        let query = trip_query(&mut rng);
        let started = Instant::now();
        itineraries_found += index.search_trips(&query).len();
        trip_ms.push(millis(started));
    }

    stay_ms.sort_by(f64::total_cmp);
    trip_ms.sort_by(f64::total_cmp);
    let mut out = Map::new();
    out.insert("listings".into(), json!(args.listings));
    out.insert("cities".into(), json!(args.cities));
    out.insert("departures".into(), json!(args.departures));
    out.insert("stations".into(), json!(args.stations));
    out.insert("queries".into(), json!(args.queries));
    out.insert("stay_search_p50_ms".into(), json!(quantile(&stay_ms, 0.5)));
    out.insert("stay_search_p99_ms".into(), json!(quantile(&stay_ms, 0.99)));
    out.insert("stay_offers_per_query".into(), json!(offers_found as f64 / args.queries as f64));
    out.insert("trip_search_p50_ms".into(), json!(quantile(&trip_ms, 0.5)));
    out.insert("trip_search_p99_ms".into(), json!(quantile(&trip_ms, 0.99)));
    out.insert("itineraries_per_query".into(), json!(itineraries_found as f64 / args.queries as f64));
    out.insert("timetable_build_ms".into(), json!(timetable_build_ms));
    out.insert("index_load_s".into(), json!(load_s));
    out.insert("index_peak_rss_mib".into(), json!(rss_after - rss_before));
    Ok(out)
}
