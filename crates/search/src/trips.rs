//! Trip search: a timetable of every trip listing's hops, turned into
//! dated connections for a query's window and searched with
//! [`crate::routing`]; each journey becomes a priced itinerary.

use std::collections::{BTreeMap, HashMap};

use caravan_model::limits::STOP_DAY_OFFSET_MAX;
use caravan_model::{AriDay, Date, Listing, Money, Timestamp, Zone};

use crate::routing::{self, Connection, Minute, StopIdx};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum TripSort {
    #[default]
    EarliestArrival,
    FewestLegs,
    LowestPrice,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TripQuery {
    /// Stop codes.
    pub from: String,
    pub to: String,
    /// The first leg leaves `from` on this local date.
    pub date: Date,
    pub seats: u32,
    /// Connections at most (legs - 1).
    pub max_connections: usize,
    pub sort: TripSort,
    pub limit: usize,
}

/// Minimum connection time at stops with no rule of their own, unless the
/// node's configuration says otherwise.
pub const MIN_CONNECTION_MINUTES_DEFAULT: u16 = 30;
/// Itineraries must arrive within this many hours of the first departure day's start.
pub const JOURNEY_HOURS_MAX: i64 = 72;
/// The most itineraries one search returns.
pub const ITINERARIES_MAX: usize = 100;

/// One ride on one trip listing's departure.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TripLeg<O> {
    pub origin: O,
    pub listing: std::sync::Arc<Listing>,
    /// The trip's departure date (from its first stop), which is the day
    /// its seats are held on.
    pub departure_date: Date,
    /// Positions in the trip's stops.
    pub board_stop: usize,
    pub alight_stop: usize,
    pub departs: Timestamp,
    pub arrives: Timestamp,
    /// The fare for all seats.
    pub fare: Money,
    pub seats_left: u32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Itinerary<O> {
    pub legs: Vec<TripLeg<O>>,
    pub departs: Timestamp,
    pub arrives: Timestamp,
    /// The sum of fares per currency (one entry when all legs share one).
    pub totals: Vec<Money>,
}

impl<O> Itinerary<O> {
    /// The price to rank by: the total when there is one currency.
    fn single_total(&self) -> Option<i64> {
        match self.totals.as_slice() {
            [one] => Some(one.amount_minor),
            _ => None,
        }
    }
}

/// One hop of a trip listing, with times relative to its departure date's
/// UTC midnight as they are on [`NOMINAL_DATE`]. On other dates daylight
/// saving moves them by up to [`NOMINAL_SLACK_MIN`]: the nominal times
/// only narrow the search; each dated hop is timed exactly in its zones.
#[derive(Clone, Copy, Debug)]
struct Hop {
    trip: u32,
    from: StopIdx,
    to: StopIdx,
    from_pos: u16,
    to_pos: u16,
    departs: Minute,
}

/// The date whose offsets time the hops nominally: mid-January.
fn nominal_date() -> Date {
    Date::from_ymd(2000, 1, 15).expect("a date")
}

/// How far a hop's exact time may lie from its nominal one: daylight
/// saving moves clocks by an hour (two in a few zones), never three.
const NOMINAL_SLACK_MIN: Minute = 180;

/// Every trip listing's hops, sorted by relative departure: built once per
/// change of the set of trip listings, not per query and not per ARI change.
#[derive(Debug, Default)]
pub struct Timetable<O> {
    trips: Vec<TimetableTrip<O>>,
    stops: HashMap<String, StopIdx>,
    /// Each stop's time zone (from the first trip that named it).
    stop_zones: Vec<Zone>,
    hops: Vec<Hop>,
}

/// A trip listing as the timetable knows it; `handle` is the caller's name
/// for it, passed back to look up its current availability.
#[derive(Clone, Debug)]
pub struct TimetableTrip<O> {
    pub handle: u32,
    pub origin: O,
    pub listing: std::sync::Arc<Listing>,
}

impl<O: Clone> Timetable<O> {
    pub fn build(trips: Vec<TimetableTrip<O>>) -> Timetable<O> {
        let mut stops = HashMap::new();
        let mut stop_zones = Vec::new();
        let mut hops = Vec::new();
        let nominal = nominal_date();
        for (trip_idx, entry) in trips.iter().enumerate() {
            let Some(trip) = entry.listing.trip() else { continue };
            let mut intern = |code: &str, zone: &Zone| {
                let next = stops.len() as StopIdx;
                *stops.entry(code.to_owned()).or_insert_with(|| {
                    stop_zones.push(zone.clone());
                    next
                })
            };
            for (pos, pair) in trip.stops.windows(2).enumerate() {
                let (a, b) = (&pair[0], &pair[1]);
                let (Some(dep), Some(_)) = (a.departure, b.arrival) else { continue };
                hops.push(Hop {
                    trip: trip_idx as u32,
                    from: intern(&a.code, &a.zone),
                    to: intern(&b.code, &b.zone),
                    from_pos: pos as u16,
                    to_pos: pos as u16 + 1,
                    departs: minutes_after(nominal, a.instant(nominal, dep)),
                });
            }
        }
        hops.sort_by_key(|h| (h.departs, h.trip, h.from_pos));
        Timetable { trips, stops, stop_zones, hops }
    }

    /// The itineraries for `query`, ranked by its sort, at most `query.limit`.
    /// `day_of` gives a trip's *current* terms on a date by its handle:
    /// ARI changes (every booking) do not rebuild the timetable.
    pub fn search(
        &self,
        query: &TripQuery,
        min_connection: &BTreeMap<String, u16>,
        min_connection_default: u16,
        day_of: impl Fn(u32, Date) -> Option<AriDay>,
    ) -> Vec<Itinerary<O>> {
        let (Some(&from), Some(&to)) = (self.stops.get(&query.from), self.stops.get(&query.to)) else {
            return Vec::new();
        };
        let seats = query.seats.max(1);
        let origin_zone = &self.stop_zones[from as usize];
        let window_start = origin_zone.instant(query.date, 0).ms().div_euclid(60_000);
        let window_end = window_start + JOURNEY_HOURS_MAX * 60;
        // Runs that may pass through the window: departed up to the longest
        // day offset before it, or starting during it.
        let first_date = query.date.add_days(-(STOP_DAY_OFFSET_MAX as i32) - 1);
        let dates = (STOP_DAY_OFFSET_MAX as i32 + 2 + (JOURNEY_HOURS_MAX / 24) as i32) as usize;

        // Runs are (trip, date) pairs, numbered as they are first met.
        let mut run_ids: HashMap<(u32, i32), u32> = HashMap::new();
        let mut run_keys: Vec<(u32, Date, Money, u32)> = Vec::new();
        let mut closed: std::collections::HashSet<(u32, i32)> = Default::default();
        let mut connections: Vec<(Connection, u32)> = Vec::new();
        for day in 0..dates {
            let date = first_date.add_days(day as i32);
            let base = date.days() as Minute * 1440;
            let lo = self.hops.partition_point(|h| base + h.departs < window_start - NOMINAL_SLACK_MIN);
            for (hop_idx, hop) in self.hops.iter().enumerate().skip(lo) {
                if base + hop.departs > window_end + NOMINAL_SLACK_MIN {
                    break;
                }
                let (departs, arrives) = self.hop_times(hop, date);
                if departs < window_start || departs > window_end {
                    continue;
                }
                let key = (hop.trip, date.days());
                if closed.contains(&key) {
                    continue;
                }
                let run = match run_ids.get(&key) {
                    Some(&run) => run,
                    None => {
                        let trip = &self.trips[hop.trip as usize];
                        let listing = &trip.listing;
                        let open = day_of(trip.handle, date).filter(|d| !d.stop_sell && d.available >= seats);
                        let fare =
                            open.and_then(|d| Money::new(d.price_minor, listing.currency).checked_mul(seats as i64));
                        let (Some(day), Some(fare)) = (open, fare) else {
                            closed.insert(key);
                            continue;
                        };
                        let run = run_keys.len() as u32;
                        run_keys.push((hop.trip, date, fare, day.available));
                        run_ids.insert(key, run);
                        run
                    }
                };
                let connection = Connection { run, from: hop.from, to: hop.to, departs, arrives };
                connections.push((connection, hop_idx as u32));
            }
        }
        // `dates` sorted slices back to back: the stable sort merges runs.
        connections.sort_by_key(|(c, _)| c.departs);
        let (connections, hop_of): (Vec<Connection>, Vec<u32>) = connections.into_iter().unzip();

        let mut mct = vec![min_connection_default; self.stops.len()];
        for (code, minutes) in min_connection {
            if let Some(&idx) = self.stops.get(code) {
                mct[idx as usize] = *minutes;
            }
        }
        let routing_query = routing::Query {
            from,
            to,
            earliest_departure: window_start,
            latest_departure: window_start + 1439,
            max_legs: query.max_connections + 1,
            min_connection: &mct,
        };
        let wanted = query.limit.clamp(1, ITINERARIES_MAX);
        // Gather more than asked, then rank: the cheapest need not be the earliest.
        let journeys = routing::journeys_in_window(&connections, run_keys.len(), &routing_query, wanted * 3);
        let mut itineraries: Vec<Itinerary<O>> = journeys
            .iter()
            .map(|journey| {
                let legs: Vec<TripLeg<O>> = journey
                    .legs
                    .iter()
                    .map(|leg| {
                        let (trip, date, fare, seats_left) = run_keys[leg.run as usize];
                        let TimetableTrip { origin, listing, .. } = &self.trips[trip as usize];
                        let board = self.hops[hop_of[leg.board] as usize];
                        let alight = self.hops[hop_of[leg.alight] as usize];
                        TripLeg {
                            origin: origin.clone(),
                            listing: listing.clone(),
                            departure_date: date,
                            board_stop: board.from_pos as usize,
                            alight_stop: alight.to_pos as usize,
                            departs: Timestamp(connections[leg.board].departs * 60_000),
                            arrives: Timestamp(connections[leg.alight].arrives * 60_000),
                            fare,
                            seats_left,
                        }
                    })
                    .collect();
                let mut totals: Vec<Money> = Vec::new();
                for leg in &legs {
                    match totals.iter_mut().find(|t| t.currency == leg.fare.currency) {
                        Some(total) => *total = total.checked_add(leg.fare).unwrap_or(*total),
                        None => totals.push(leg.fare),
                    }
                }
                Itinerary {
                    departs: Timestamp(journey.departs * 60_000),
                    arrives: Timestamp(journey.arrives * 60_000),
                    legs,
                    totals,
                }
            })
            .collect();
        let by_arrival = |i: &Itinerary<O>| (i.arrives, i.legs.len(), i.departs);
        match query.sort {
            TripSort::EarliestArrival => itineraries.sort_by_key(by_arrival),
            TripSort::FewestLegs => itineraries.sort_by_key(|i| (i.legs.len(), i.arrives, i.departs)),
            TripSort::LowestPrice => {
                itineraries.sort_by_key(|i| (i.single_total().is_none(), i.single_total(), by_arrival(i)))
            }
        }
        itineraries.truncate(wanted);
        itineraries
    }
}

impl<O> Timetable<O> {
    /// A hop's exact departure and arrival, in minutes since the epoch,
    /// for a run that leaves its first stop on `date`: each local time
    /// converted in its own stop's zone, on that date.
    fn hop_times(&self, hop: &Hop, date: Date) -> (Minute, Minute) {
        let trip = self.trips[hop.trip as usize].listing.trip().expect("the timetable holds trips only");
        let (a, b) = (&trip.stops[hop.from_pos as usize], &trip.stops[hop.to_pos as usize]);
        let (Some(dep), Some(arr)) = (a.departure, b.arrival) else { unreachable!("hops are built from timed stops") };
        (a.instant(date, dep).ms().div_euclid(60_000), b.instant(date, arr).ms().div_euclid(60_000))
    }
}

/// Whole minutes from `date`'s UTC midnight to `instant`.
fn minutes_after(date: Date, instant: Timestamp) -> Minute {
    (instant.ms() - date.start().ms()).div_euclid(60_000)
}
