//! The index on small hand-made catalogs: stays in two cities, and a
//! three-operator trip across time zones with an overnight leg.

// Prices are written as euros_cents.
#![allow(clippy::inconsistent_digit_grouping)]

use std::collections::BTreeMap;

use caravan_model::*;

use crate::*;

type Origin = u8;

fn d(day: i32) -> Date {
    Date::from_days(20_000 + day)
}

fn open(price: i64, available: u32) -> AriDay {
    AriDay { available, price_minor: price, ..AriDay::default() }
}

fn nights(from: i32, to: i32, day: AriDay) -> Vec<AriRun> {
    AriRun::encode((from..to).map(|n| (d(n), day)))
}

fn hotel(id: &str, city: &str, lat: f64, lon: f64, amenities: &[&str]) -> Listing {
    let mut listing = caravan_test_utils::stay(id, city, 10);
    if let ListingDetails::Stay(stay) = &mut listing.details {
        stay.location = GeoPoint::from_degrees(lat, lon).unwrap();
        stay.amenities = amenities.iter().map(|a| a.to_string()).collect();
    }
    listing
}

fn lyon_query() -> StayQuery {
    let lyon = Place::City { city: "lyon".into(), country: Some("FR".into()) };
    StayQuery { limit: 10, ..StayQuery::new(lyon, d(0), d(2), 2) }
}

/// An index with the shelf it reads stays from, fed alike.
#[derive(Default)]
struct Indexed {
    index: SearchIndex<Origin>,
    shelf: MemoryShelf<Origin>,
}

impl Indexed {
    fn put_listing(&mut self, origin: &Origin, key: &str, listing: Listing) {
        self.shelf.put_listing(origin, key, listing.clone());
        self.index.put_listing(origin, key, listing);
    }

    fn put_ari(&mut self, origin: &Origin, key: &str, runs: Vec<AriRun>) {
        self.index.put_ari(origin, key, &runs);
        self.shelf.put_ari(origin, key, runs);
    }

    fn remove(&mut self, origin: &Origin, key: &str) {
        self.index.remove(origin, key);
        self.shelf.remove(origin, key);
    }

    fn remove_origin(&mut self, origin: &Origin) {
        self.index.remove_origin(origin);
    }

    fn set_min_connection(&mut self, rules: BTreeMap<String, u16>, default: u16) {
        self.index.set_min_connection(rules, default);
    }

    fn search_stays(&self, query: &StayQuery) -> Vec<StayOffer<Origin>> {
        self.index.search_stays(query, &self.shelf)
    }

    fn search_trips(&self, query: &TripQuery) -> Vec<Itinerary<Origin>> {
        self.index.search_trips(query)
    }
}

fn stays_index() -> Indexed {
    let mut index = Indexed::default();
    index.put_listing(&1, "a", hotel("a", "Lyon", 45.76, 4.83, &["wifi", "pool"]));
    index.put_ari(&1, "a", nights(0, 10, open(120_00, 3)));
    index.put_listing(&2, "b", hotel("b", "Lyon", 45.75, 4.85, &["wifi"]));
    index.put_ari(&2, "b", nights(0, 10, open(90_00, 1)));
    index.put_listing(&2, "c", hotel("c", "Lyon", 45.70, 4.90, &["Pool"]));
    index.put_ari(&2, "c", nights(1, 10, open(50_00, 5))); // not open on night 0
    index.put_listing(&3, "p", hotel("p", "Paris", 48.85, 2.35, &["wifi"]));
    index.put_ari(&3, "p", nights(0, 10, open(200_00, 5)));
    index
}

fn ids<O>(offers: &[StayOffer<O>]) -> Vec<&str> {
    offers.iter().map(|o| o.listing.id.as_str()).collect()
}

#[test]
fn stays_by_city_sorted_by_price_with_totals() {
    let index = stays_index();
    let offers = index.search_stays(&lyon_query());
    assert_eq!(ids(&offers), vec!["b", "a"], "c is closed on the first night; p is in Paris");
    assert_eq!(offers[0].price.total.amount_minor, 180_00);
    assert_eq!(offers[1].price.total.amount_minor, 240_00);
    assert_eq!(offers[0].listing.cancellation.free_until_hours, 48);
}

#[test]
fn stays_filtered_by_amenities_price_and_units() {
    let index = stays_index();
    let pool = StayQuery { amenities: vec!["POOL".into()], ..lyon_query() };
    assert_eq!(ids(&index.search_stays(&pool)), vec!["a"]);
    let cheap = StayQuery { total_max_minor: Some(200_00), ..lyon_query() };
    assert_eq!(ids(&index.search_stays(&cheap)), vec!["b"]);
    let two_rooms = StayQuery { units: 2, guests: 4, ..lyon_query() };
    assert_eq!(ids(&index.search_stays(&two_rooms)), vec!["a"], "b has one room left");
    let crowd = StayQuery { guests: 3, ..lyon_query() };
    assert!(index.search_stays(&crowd).is_empty(), "two guests per room");
}

#[test]
fn stays_near_a_point_sorted_by_distance() {
    let index = stays_index();
    let point = GeoPoint::from_degrees(45.70, 4.90).unwrap();
    let near = StayQuery {
        place: Place::Near { point, radius_m: 20_000 },
        check_in: d(1),
        check_out: d(3),
        sort: StaySort::Distance,
        ..lyon_query()
    };
    let offers = index.search_stays(&near);
    assert_eq!(ids(&offers), vec!["c", "b", "a"]);
    assert_eq!(offers[0].distance_m, Some(0));
    assert!(offers.windows(2).all(|w| w[0].distance_m <= w[1].distance_m));
    let small = StayQuery { place: Place::Near { point, radius_m: 1_000 }, ..near };
    assert_eq!(ids(&index.search_stays(&small)), vec!["c"]);
}

#[test]
fn withdrawn_and_frozen_listings_leave_the_index() {
    let mut index = stays_index();
    index.remove(&2, "b");
    assert_eq!(ids(&index.search_stays(&lyon_query())), vec!["a"]);
    index.remove_origin(&1);
    assert!(index.search_stays(&lyon_query()).is_empty());
    // A slot reused by a new listing is found again.
    index.put_listing(&4, "z", hotel("z", "Lyon", 45.76, 4.83, &[]));
    index.put_ari(&4, "z", nights(0, 3, open(10_00, 1)));
    assert_eq!(ids(&index.search_stays(&lyon_query())), vec!["z"]);
}

fn at(day_offset: u8, hhmm: &str) -> Option<StopTime> {
    Some(StopTime { day_offset, time: TimeOfDay::parse(hhmm).unwrap() })
}

fn stop(code: &str, utc_offset_min: i16, arrival: Option<StopTime>, departure: Option<StopTime>) -> Stop {
    Stop { code: code.into(), name: code.into(), arrival, departure, zone: Zone::fixed(utc_offset_min).unwrap() }
}

fn trip(id: &str, mode: TripMode, operator: &str, stops: Vec<Stop>) -> Listing {
    let mut listing = caravan_test_utils::bus(id, &[]);
    listing.details = ListingDetails::Trip(Trip {
        mode,
        operator: operator.into(),
        service_number: id.to_uppercase(),
        stops,
        seats: 50,
        seat_map: Vec::new(),
    });
    listing
}

/// Vienna → Prague by bus (UTC+1), Prague → London by air (UTC+1 → UTC+0),
/// London → Edinburgh overnight by train; three owners.
fn trips_index() -> Indexed {
    let mut index = Indexed::default();
    let bus = trip(
        "bus",
        TripMode::Bus,
        "Danube Lines",
        vec![stop("VIE", 60, None, at(0, "08:00")), stop("PRG", 60, at(0, "12:30"), None)],
    );
    let flight = trip(
        "fl",
        TripMode::Flight,
        "Vltava Air",
        vec![stop("PRG", 60, None, at(0, "14:30")), stop("LHR", 0, at(0, "15:40"), None)],
    );
    let sleeper = trip(
        "night",
        TripMode::Train,
        "Caledonian",
        vec![
            stop("LHR", 0, None, at(0, "21:00")),
            stop("YRK", 0, at(0, "23:50"), at(0, "23:55")),
            stop("EDI", 0, at(1, "07:10"), None),
        ],
    );
    for (origin, listing, fare) in [(1, bus, 30_00), (2, flight, 80_00), (3, sleeper, 60_00)] {
        let key = listing.id.as_str().to_owned();
        index.put_listing(&origin, &key, listing);
        index.put_ari(&origin, &key, nights(0, 5, open(fare, 3)));
    }
    index
}

fn vie_edi() -> TripQuery {
    TripQuery {
        from: "VIE".into(),
        to: "EDI".into(),
        date: d(1),
        seats: 2,
        max_connections: 2,
        sort: TripSort::EarliestArrival,
        limit: 5,
    }
}

#[test]
fn three_operators_across_time_zones_and_midnight() {
    let index = trips_index();
    let found = index.search_trips(&vie_edi());
    assert_eq!(found.len(), 1, "{found:#?}");
    let itinerary = &found[0];
    let legs: Vec<(&str, u8, usize, usize)> =
        itinerary.legs.iter().map(|l| (l.listing.id.as_str(), l.origin, l.board_stop, l.alight_stop)).collect();
    assert_eq!(legs, vec![("bus", 1, 0, 1), ("fl", 2, 0, 1), ("night", 3, 0, 2)]);
    assert!(itinerary.legs.iter().all(|l| l.departure_date == d(1)));
    // 08:00 at UTC+1 is 07:00 UTC; 07:10 next morning in Edinburgh (UTC).
    assert_eq!(itinerary.departs, Timestamp(d(1).start().ms() + 7 * 3_600_000));
    assert_eq!(itinerary.arrives, Timestamp(d(2).start().ms() + (7 * 60 + 10) * 60_000));
    assert_eq!(itinerary.totals, vec![Money::new(2 * (30_00 + 80_00 + 60_00), Currency::parse("EUR").unwrap())]);
}

#[test]
fn trips_respect_connections_seats_and_transfer_times() {
    let index = trips_index();
    let one_change = TripQuery { max_connections: 1, ..vie_edi() };
    assert!(index.search_trips(&one_change).is_empty(), "three legs are needed");
    let four_seats = TripQuery { seats: 4, ..vie_edi() };
    assert!(index.search_trips(&four_seats).is_empty(), "three seats are left on each leg");
    // The partial ride York → Edinburgh alone.
    let york = TripQuery { from: "YRK".into(), date: d(1), ..vie_edi() };
    let ride = &index.search_trips(&york)[0];
    assert_eq!((ride.legs[0].board_stop, ride.legs[0].alight_stop), (1, 2));

    let mut strict = trips_index();
    strict.set_min_connection(BTreeMap::from([("PRG".to_owned(), 150)]), 30);
    // Two hours at Prague is below 150 minutes: the traveller waits for the next day's flight.
    let found = strict.search_trips(&vie_edi());
    let dates: Vec<Date> = found[0].legs.iter().map(|l| l.departure_date).collect();
    assert_eq!(dates, vec![d(1), d(2), d(2)]);
}

#[test]
fn trips_follow_availability_without_a_timetable_rebuild() {
    let mut index = trips_index();
    assert_eq!(index.search_trips(&vie_edi()).len(), 1);
    index.put_ari(&2, "fl", nights(0, 5, open(80_00, 0)));
    assert!(index.search_trips(&vie_edi()).is_empty(), "the flight sold out");
    index.put_ari(&2, "fl", nights(0, 5, open(95_00, 2)));
    let found = index.search_trips(&vie_edi());
    assert_eq!(found[0].legs[1].fare.amount_minor, 2 * 95_00);
    index.remove(&3, "night");
    assert!(index.search_trips(&vie_edi()).is_empty(), "the sleeper was withdrawn");
}

#[test]
fn trips_ranked_by_arrival_legs_or_price() {
    let mut index = trips_index();
    // A slow, cheap direct coach Vienna → Edinburgh leaving 06:00, arriving day 3.
    let coach = trip(
        "coach",
        TripMode::Bus,
        "Budget Coach",
        vec![stop("VIE", 60, None, at(0, "06:00")), stop("EDI", 0, at(2, "10:00"), None)],
    );
    index.put_listing(&4, "coach", coach);
    index.put_ari(&4, "coach", nights(0, 5, open(40_00, 10)));
    let route = |sort| -> Vec<usize> {
        index.search_trips(&TripQuery { sort, ..vie_edi() }).iter().map(|i| i.legs.len()).collect()
    };
    assert_eq!(route(TripSort::EarliestArrival), vec![3, 1]);
    assert_eq!(route(TripSort::FewestLegs), vec![1, 3]);
    assert_eq!(route(TripSort::LowestPrice), vec![1, 3]);
}

fn zoned(code: &str, zone: &str, arrival: Option<StopTime>, departure: Option<StopTime>) -> Stop {
    Stop { code: code.into(), name: code.into(), arrival, departure, zone: Zone::named(zone).unwrap() }
}

/// The offset of `text` (a date) from `d(0)`, in days.
fn day_of(text: &str) -> i32 {
    Date::parse(text).unwrap().days() - d(0).days()
}

fn instant(text: &str) -> Timestamp {
    let (date, time) = text.split_once('T').unwrap();
    let minutes = TimeOfDay::parse(&time[..5]).unwrap().minutes() as i64;
    Timestamp(Date::parse(date).unwrap().start().ms() + minutes * 60_000)
}

/// One daily trip listing with open seats from 2027-03-01 to 2027-11-30.
fn daily(listing: Listing) -> Indexed {
    let mut index = Indexed::default();
    let key = listing.id.as_str().to_owned();
    index.put_listing(&1, &key, listing);
    index.put_ari(&1, &key, nights(day_of("2027-03-01"), day_of("2027-11-30"), open(25_00, 10)));
    index
}

fn on(from: &str, to: &str, date: &str) -> TripQuery {
    TripQuery { from: from.into(), to: to.into(), date: Date::parse(date).unwrap(), ..vie_edi() }
}

#[test]
fn departures_keep_local_time_across_the_last_sundays_of_march_and_october() {
    let bus = trip(
        "paris-lyon",
        TripMode::Bus,
        "Rhône Lines",
        vec![zoned("PAR", "Europe/Paris", None, at(0, "08:00")), zoned("LYS", "Europe/Paris", at(0, "12:00"), None)],
    );
    let index = daily(bus);
    let departs = |date: &str| index.search_trips(&on("PAR", "LYS", date))[0].departs;
    // 08:00 in Paris is 07:00 UTC in winter, 06:00 UTC in summer.
    assert_eq!(departs("2027-03-27"), instant("2027-03-27T07:00"));
    assert_eq!(departs("2027-03-28"), instant("2027-03-28T06:00"), "the clocks went forward overnight");
    assert_eq!(departs("2027-10-30"), instant("2027-10-30T06:00"));
    assert_eq!(departs("2027-10-31"), instant("2027-10-31T07:00"), "the clocks went back overnight");
}

#[test]
fn an_overnight_bus_across_a_zone_boundary_keeps_both_local_times() {
    // Lisbon (UTC+0, summer +1) 22:00 → Madrid (UTC+1, summer +2) 01:30 the next day.
    let bus = trip(
        "lisbon-madrid",
        TripMode::Bus,
        "Iberia Coaches",
        vec![zoned("LIS", "Europe/Lisbon", None, at(0, "22:00")), zoned("MAD", "Europe/Madrid", at(1, "01:30"), None)],
    );
    let index = daily(bus);
    let winter = &index.search_trips(&on("LIS", "MAD", "2027-03-20"))[0];
    assert_eq!((winter.departs, winter.arrives), (instant("2027-03-20T22:00"), instant("2027-03-21T00:30")));
    let summer = &index.search_trips(&on("LIS", "MAD", "2027-07-10"))[0];
    assert_eq!((summer.departs, summer.arrives), (instant("2027-07-10T21:00"), instant("2027-07-10T23:30")));
    // The night the clocks go forward, both zones move together: still 2h30.
    let change = &index.search_trips(&on("LIS", "MAD", "2027-03-27"))[0];
    assert_eq!((change.departs, change.arrives), (instant("2027-03-27T22:00"), instant("2027-03-28T00:30")));
}

/// Stopping at the price floor finds exactly what pricing every
/// candidate finds: many listings of one city, prices and closures drawn
/// at random, each query's first offers equal to those of a search that
/// prices them all.
#[test]
fn searching_by_price_stops_early_and_finds_the_same_offers() {
    let mut rng = caravan_model::rng::SplitMix64::new(11);
    let mut index = Indexed::default();
    let days = |rng: &mut caravan_model::rng::SplitMix64| {
        let days: Vec<_> = (0..30)
            .map(|n| {
                let price = 5_000 + rng.below(20) as i64 * 1_000;
                let day = if rng.chance(0.1) { AriDay { stop_sell: true, ..open(price, 1) } } else { open(price, 3) };
                (d(n), day)
            })
            .collect();
        AriRun::encode(days)
    };
    for i in 0..400u32 {
        let id = format!("room-{i}");
        let origin = (i % 7) as Origin;
        index.put_listing(&origin, &id, hotel(&id, "Lyon", 45.76, 4.83, &[]));
        index.put_ari(&origin, &id, days(&mut rng));
    }
    let same_offers = |index: &Indexed| {
        for start in 0..25 {
            for nights in [1, 3] {
                let query = StayQuery { check_in: d(start), check_out: d(start + nights), limit: 7, ..lyon_query() };
                let everything = index.search_stays(&StayQuery { limit: crate::stays::OFFERS_MAX, ..query.clone() });
                assert!(everything.len() > 7);
                assert_eq!(index.search_stays(&query), everything[..7].to_vec(), "check-in {start}, {nights} nights");
            }
        }
    };
    same_offers(&index);
    // New prices move stays within their city's order; availability that
    // comes before its listing takes its place when the listing arrives.
    for i in (0..400u32).step_by(3) {
        index.put_ari(&((i % 7) as Origin), &format!("room-{i}"), days(&mut rng));
    }
    for i in 400..450u32 {
        let id = format!("room-{i}");
        index.put_ari(&0, &id, days(&mut rng));
        index.put_listing(&0, &id, hotel(&id, "Lyon", 45.76, 4.83, &[]));
    }
    same_offers(&index);
}

/// A stay is read from the shelf only if its bound over the query's nights
/// could beat the offers found: a city whose stays all share one cheap
/// night in another month costs about `limit` reads, not one per stay.
#[test]
fn searching_by_price_reads_only_stays_whose_bound_can_beat_the_offers() {
    struct Counting<'s> {
        shelf: &'s MemoryShelf<Origin>,
        reads: std::cell::Cell<usize>,
    }
    impl Shelf<Origin> for Counting<'_> {
        fn stay(&self, origin: &Origin, key: &str) -> Option<(Listing, Vec<AriRun>)> {
            self.reads.set(self.reads.get() + 1);
            self.shelf.stay(origin, key)
        }
    }
    let mut index = Indexed::default();
    for i in 0..1_000u32 {
        let id = format!("room-{i}");
        // One November night at 1,000 is every stay's floor; October's
        // nights cost 10,000 and up, in an order unrelated to the ids.
        let october = 10_000 + ((i * 7_919) % 1_000) as i64 * 100;
        let mut runs = nights(0, 10, open(october, 3));
        runs.extend(nights(40, 41, open(1_000, 3)));
        index.put_listing(&1, &id, hotel(&id, "Lyon", 45.76, 4.83, &[]));
        index.put_ari(&1, &id, runs);
    }
    let counting = Counting { shelf: &index.shelf, reads: std::cell::Cell::new(0) };
    let offers = index.index.search_stays(&lyon_query(), &counting);
    let totals: Vec<i64> = offers.iter().map(|o| o.price.total.amount_minor).collect();
    assert_eq!(totals, (0..10).map(|n| 2 * (10_000 + n * 100)).collect::<Vec<_>>());
    assert!(counting.reads.get() <= 12, "{} stays read for 10 offers", counting.reads.get());
}

/// Nearest first, the scan stops at the first stay farther than the last
/// offer kept: the same offers as pricing every stay in the circle.
#[test]
fn searching_by_distance_stops_early_and_finds_the_same_offers() {
    let mut rng = caravan_model::rng::SplitMix64::new(5);
    let mut index = Indexed::default();
    for i in 0..300u32 {
        let id = format!("flat-{i}");
        // Some share a spot, so that ties at the cut are priced too.
        let (lat, lon) = (45.70 + rng.below(40) as f64 * 0.002, 4.80 + rng.below(40) as f64 * 0.002);
        index.put_listing(&1, &id, hotel(&id, "Lyon", lat, lon, &[]));
        let days: Vec<_> = (0..10)
            .map(|n| {
                let terms = open(5_000 + rng.below(30) as i64 * 500, 1 + rng.below(2) as u32);
                (d(n), if rng.chance(0.2) { open(0, 0) } else { terms })
            })
            .collect();
        index.put_ari(&1, &id, AriRun::encode(days));
    }
    let point = GeoPoint::from_degrees(45.74, 4.84).unwrap();
    for start in 0..8 {
        let query = StayQuery {
            place: Place::Near { point, radius_m: 10_000 },
            check_in: d(start),
            check_out: d(start + 2),
            sort: StaySort::Distance,
            limit: 9,
            ..lyon_query()
        };
        let everything = index.search_stays(&StayQuery { limit: crate::stays::OFFERS_MAX, ..query.clone() });
        assert!(everything.len() > 9);
        assert_eq!(index.search_stays(&query), everything[..9].to_vec(), "check-in {start}");
    }
}

/// What `saved` spells out, `restore` puts back: the same entries spelled
/// out again, and the same answers.
#[test]
fn an_index_saved_and_restored_answers_alike() {
    let mut stays = stays_index();
    // Availability of a listing that has not arrived yet is kept too.
    stays.put_ari(&9, "later", nights(0, 3, open(70_00, 1)));
    let spelled = |index: &SearchIndex<Origin>| {
        let mut all: Vec<(Origin, SavedEntry)> = index.saved().map(|(_, origin, entry)| (*origin, entry)).collect();
        all.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
        all
    };
    for original in [stays, trips_index()] {
        let mut restored = Indexed { index: SearchIndex::new(), shelf: original.shelf.clone() };
        for (_, origin, saved) in original.index.saved() {
            restored.index.restore(origin, saved).unwrap();
        }
        assert_eq!(spelled(&restored.index), spelled(&original.index));
        assert_eq!(restored.search_stays(&lyon_query()), original.search_stays(&lyon_query()));
        assert_eq!(restored.search_trips(&vie_edi()), original.search_trips(&vie_edi()));
    }
}
