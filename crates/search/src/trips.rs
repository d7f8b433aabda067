//! Trip search: a timetable of every trip listing's hops, turned into
//! dated connections for a query's window and searched with
//! [`crate::routing`]; each journey becomes a priced itinerary.

use std::collections::{BTreeMap, HashMap};

use caravan_model::limits::STOP_DAY_OFFSET_MAX;
use caravan_model::{AriRun, Date, Listing, Money, Timestamp};

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
/// UTC midnight.
#[derive(Clone, Copy, Debug)]
struct Hop {
    trip: u32,
    from: StopIdx,
    to: StopIdx,
    from_pos: u16,
    to_pos: u16,
    departs: Minute,
    arrives: Minute,
}

/// Every trip listing's hops, sorted by relative departure: built once per
/// change of the set of trip listings, not per query and not per ARI change.
#[derive(Debug, Default)]
pub struct Timetable<O> {
    trips: Vec<TimetableTrip<O>>,
    stops: HashMap<String, StopIdx>,
    /// Each stop's UTC offset (from the first trip that named it).
    stop_offsets: Vec<i16>,
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
        let mut stop_offsets = Vec::new();
        let mut hops = Vec::new();
        for (trip_idx, entry) in trips.iter().enumerate() {
            let Some(trip) = entry.listing.trip() else { continue };
            let mut intern = |code: &str, offset: i16| {
                let next = stops.len() as StopIdx;
                *stops.entry(code.to_owned()).or_insert_with(|| {
                    stop_offsets.push(offset);
                    next
                })
            };
            for (pos, pair) in trip.stops.windows(2).enumerate() {
                let (a, b) = (&pair[0], &pair[1]);
                let (Some(dep), Some(arr)) = (a.departure, b.arrival) else { continue };
                hops.push(Hop {
                    trip: trip_idx as u32,
                    from: intern(&a.code, a.utc_offset_min),
                    to: intern(&b.code, b.utc_offset_min),
                    from_pos: pos as u16,
                    to_pos: pos as u16 + 1,
                    departs: utc_minutes(dep.day_offset, dep.time.minutes(), a.utc_offset_min),
                    arrives: utc_minutes(arr.day_offset, arr.time.minutes(), b.utc_offset_min),
                });
            }
        }
        hops.sort_by_key(|h| (h.departs, h.trip, h.from_pos));
        Timetable { trips, stops, stop_offsets, hops }
    }

    /// The itineraries for `query`, ranked by its sort, at most `query.limit`.
    /// `runs_of` gives a trip's *current* availability by its handle: ARI
    /// changes (every booking) do not rebuild the timetable.
    pub fn search<'a>(
        &self,
        query: &TripQuery,
        min_connection: &BTreeMap<String, u16>,
        min_connection_default: u16,
        runs_of: impl Fn(u32) -> Option<&'a [AriRun]>,
    ) -> Vec<Itinerary<O>> {
        let (Some(&from), Some(&to)) = (self.stops.get(&query.from), self.stops.get(&query.to)) else {
            return Vec::new();
        };
        let seats = query.seats.max(1);
        let origin_offset = self.stop_offsets[from as usize] as Minute;
        let window_start = query.date.days() as Minute * 1440 - origin_offset;
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
            let lo = self.hops.partition_point(|h| base + h.departs < window_start);
            for (hop_idx, hop) in self.hops.iter().enumerate().skip(lo) {
                if base + hop.departs > window_end {
                    break;
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
                        let runs = runs_of(trip.handle).unwrap_or_default();
                        let open = AriRun::find(runs, date).filter(|d| !d.stop_sell && d.available >= seats);
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
                let connection = Connection {
                    run,
                    from: hop.from,
                    to: hop.to,
                    departs: base + hop.departs,
                    arrives: base + hop.arrives,
                };
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

/// Minutes after a departure date's UTC midnight of a local time `day_offset` days later.
fn utc_minutes(day_offset: u8, local_minutes: u16, utc_offset_min: i16) -> Minute {
    day_offset as Minute * 1440 + local_minutes as Minute - utc_offset_min as Minute
}
