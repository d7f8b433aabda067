//! Journey planning over a timetable: the Connection Scan Algorithm
//! (Dibbelt, Pajor, Strasser, Wagner 2013) with one label per number of
//! legs, so one scan finds, for every leg count up to the limit, the
//! earliest arrival — the Pareto set of (arrival, legs).
//!
//! A *connection* is one hop of one *run* (a vehicle on one departure
//! date) between consecutive stops. Times are absolute UTC minutes, so
//! overnight legs and time zones need nothing special here: the caller
//! turned local times and day offsets into instants.
//!
//! ```text
//! for c in connections (by departure):
//!   for legs in 1..=max_legs:
//!     on board c.run with `legs` legs   if already, or if we can reach c.from
//!                                        with legs-1 legs, min connection time before c.departs
//!     then arrival[legs][c.to] = min(.., c.arrives)
//! ```
//!
//! Pure: no clock, no IO; stops and runs are plain indices.

/// An instant in minutes since the Unix epoch, UTC.
pub type Minute = i64;

/// A stop, as an index into the caller's stop table.
pub type StopIdx = u32;

/// A run (one vehicle on one date), as an index into the caller's run table.
pub type RunIdx = u32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Connection {
    pub run: RunIdx,
    pub from: StopIdx,
    pub to: StopIdx,
    pub departs: Minute,
    pub arrives: Minute,
}

/// Where from, where to, when, and how much changing is allowed.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub from: StopIdx,
    pub to: StopIdx,
    /// The first leg departs in `earliest_departure..=latest_departure`.
    pub earliest_departure: Minute,
    pub latest_departure: Minute,
    /// Legs at most (connections + 1), 1..=[`LEGS_MAX`].
    pub max_legs: usize,
    /// Minimum connection time at each stop, indexed by `StopIdx`.
    pub min_connection: &'a [u16],
}

/// The most legs a journey may have.
pub const LEGS_MAX: usize = 6;

/// One ride: board `run` at connection `board`, leave it after connection
/// `alight` (indices into the scanned connection slice).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Leg {
    pub run: RunIdx,
    pub board: usize,
    pub alight: usize,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Journey {
    pub legs: Vec<Leg>,
    pub departs: Minute,
    pub arrives: Minute,
}

const UNREACHED: Minute = Minute::MAX;
const NONE: u32 = u32::MAX;

/// The Pareto-optimal journeys for `query` over `connections` (sorted by
/// departure): for each leg count, the earliest arrival if it beats every
/// journey with fewer legs. Fewest legs first.
///
/// `runs` is the number of runs (every `Connection::run` is below it) and
/// `query.min_connection` has one entry per stop.
pub fn pareto_journeys(connections: &[Connection], runs: usize, query: &Query) -> Vec<Journey> {
    let stops = query.min_connection.len();
    let legs_max = query.max_legs.clamp(1, LEGS_MAX);
    debug_assert!(connections.windows(2).all(|w| w[0].departs <= w[1].departs), "connections sorted by departure");
    if query.from as usize >= stops || query.to as usize >= stops {
        return Vec::new();
    }
    // Row `legs` of each table, for legs 0..=legs_max (row 0: the origin).
    let mut arrival = vec![UNREACHED; (legs_max + 1) * stops];
    let mut arrived_by = vec![NONE; (legs_max + 1) * stops];
    let mut boarded = vec![NONE; (legs_max + 1) * runs];
    arrival[query.from as usize] = query.earliest_departure;

    let start = connections.partition_point(|c| c.departs < query.earliest_departure);
    for (idx, c) in connections.iter().enumerate().skip(start) {
        // Nothing departing after the best arrival can improve it.
        let best_at_target = (1..=legs_max).map(|l| arrival[l * stops + query.to as usize]).min().unwrap_or(UNREACHED);
        if c.departs >= best_at_target {
            break;
        }
        debug_assert!((c.run as usize) < runs && (c.from as usize) < stops && (c.to as usize) < stops);
        for legs in 1..=legs_max {
            let on_board = &mut boarded[legs * runs + c.run as usize];
            if *on_board == NONE {
                let can_board = if legs == 1 {
                    c.from == query.from && c.departs <= query.latest_departure
                } else {
                    let there = arrival[(legs - 1) * stops + c.from as usize];
                    there != UNREACHED
                        && there.saturating_add(query.min_connection[c.from as usize] as Minute) <= c.departs
                };
                if !can_board {
                    continue;
                }
                *on_board = idx as u32;
            }
            let slot = legs * stops + c.to as usize;
            if c.arrives < arrival[slot] {
                arrival[slot] = c.arrives;
                arrived_by[slot] = idx as u32;
            }
        }
    }

    let mut journeys: Vec<Journey> = Vec::new();
    for legs in 1..=legs_max {
        let at_target = arrival[legs * stops + query.to as usize];
        if at_target == UNREACHED || journeys.last().is_some_and(|j| j.arrives <= at_target) {
            continue;
        }
        journeys.push(walk_back(connections, runs, stops, &arrived_by, &boarded, query.to, legs));
    }
    journeys
}

/// Follows the labels from `to` back to the origin.
fn walk_back(
    connections: &[Connection],
    runs: usize,
    stops: usize,
    arrived_by: &[u32],
    boarded: &[u32],
    to: StopIdx,
    legs: usize,
) -> Journey {
    let mut path = Vec::with_capacity(legs);
    let mut at = to;
    for row in (1..=legs).rev() {
        let alight = arrived_by[row * stops + at as usize] as usize;
        let run = connections[alight].run;
        let board = boarded[row * runs + run as usize] as usize;
        path.push(Leg { run, board, alight });
        at = connections[board].from;
    }
    path.reverse();
    Journey {
        departs: connections[path[0].board].departs,
        arrives: connections[path[path.len() - 1].alight].arrives,
        legs: path,
    }
}

/// Journeys departing across the whole window, not only the earliest:
/// after each scan, the next starts one minute after the earliest first
/// departure found. Stops after `limit` journeys or when nothing is left.
pub fn journeys_in_window(connections: &[Connection], runs: usize, query: &Query, limit: usize) -> Vec<Journey> {
    let mut found: Vec<Journey> = Vec::new();
    let mut next = query.clone();
    while found.len() < limit && next.earliest_departure <= next.latest_departure {
        let journeys = pareto_journeys(connections, runs, &next);
        let Some(first_departure) = journeys.iter().map(|j| j.departs).min() else { break };
        for journey in journeys {
            if found.len() < limit && !found.contains(&journey) {
                found.push(journey);
            }
        }
        next.earliest_departure = first_departure + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stops: 0 A, 1 B, 2 C, 3 D.
    fn hop(run: RunIdx, from: StopIdx, to: StopIdx, departs: Minute, arrives: Minute) -> Connection {
        Connection { run, from, to, departs, arrives }
    }

    fn sorted(mut connections: Vec<Connection>) -> Vec<Connection> {
        connections.sort_by_key(|c| c.departs);
        connections
    }

    fn query(from: StopIdx, to: StopIdx, mct: &[u16], max_legs: usize) -> Query<'_> {
        Query { from, to, earliest_departure: 0, latest_departure: 24 * 60, max_legs, min_connection: mct }
    }

    fn runs_of(journey: &Journey) -> Vec<RunIdx> {
        journey.legs.iter().map(|l| l.run).collect()
    }

    #[test]
    fn direct_and_faster_with_a_change() {
        // Run 0: A 8:00 → D 14:00 direct. Run 1: A 8:10 → B 9:00; run 2: B 9:30 → D 11:00.
        let connections = sorted(vec![hop(0, 0, 3, 480, 840), hop(1, 0, 1, 490, 540), hop(2, 1, 3, 570, 660)]);
        let mct = [10, 10, 10, 10];
        let journeys = pareto_journeys(&connections, 3, &query(0, 3, &mct, 3));
        assert_eq!(journeys.len(), 2, "{journeys:?}");
        assert_eq!((runs_of(&journeys[0]), journeys[0].arrives), (vec![0], 840));
        assert_eq!((runs_of(&journeys[1]), journeys[1].arrives), (vec![1, 2], 660));
        // With one leg only, the direct run is all there is.
        let direct = pareto_journeys(&connections, 3, &query(0, 3, &mct, 1));
        assert_eq!(direct.len(), 1);
    }

    #[test]
    fn minimum_connection_time_is_respected() {
        // Arrive B 9:00, next departure B 9:20: fine with 15 minutes, missed with 30.
        let connections = sorted(vec![hop(0, 0, 1, 480, 540), hop(1, 1, 2, 560, 600), hop(2, 1, 2, 700, 760)]);
        let fast = pareto_journeys(&connections, 3, &query(0, 2, &[0, 15, 0], 2));
        assert_eq!((runs_of(&fast[0]), fast[0].arrives), (vec![0, 1], 600));
        let slow = pareto_journeys(&connections, 3, &query(0, 2, &[0, 30, 0], 2));
        assert_eq!((runs_of(&slow[0]), slow[0].arrives), (vec![0, 2], 760));
    }

    #[test]
    fn staying_on_board_needs_no_connection_time() {
        // One run A → B → C with a 2-minute stop at B and a 60-minute MCT at B.
        let connections = sorted(vec![hop(0, 0, 1, 480, 540), hop(0, 1, 2, 542, 600)]);
        let journeys = pareto_journeys(&connections, 1, &query(0, 2, &[0, 60, 0], 2));
        assert_eq!(journeys.len(), 1);
        assert_eq!(journeys[0].legs, vec![Leg { run: 0, board: 0, alight: 1 }]);
    }

    #[test]
    fn overnight_legs_and_time_zones_are_just_instants() {
        // An overnight bus A 22:00 → B 06:00 next day (UTC minutes), then B 07:00 → C 08:00.
        let day = 1440;
        let connections = sorted(vec![hop(0, 0, 1, 22 * 60, day + 6 * 60), hop(1, 1, 2, day + 7 * 60, day + 8 * 60)]);
        let journeys = pareto_journeys(&connections, 2, &query(0, 2, &[0, 30, 0], 2));
        assert_eq!(journeys[0].arrives, day + 8 * 60);
        // A flight arriving "before" it left in local time is fine in UTC.
        let eastward = sorted(vec![hop(0, 0, 1, 600, 1000)]);
        assert_eq!(pareto_journeys(&eastward, 1, &query(0, 1, &[0, 0], 1))[0].arrives, 1000);
    }

    #[test]
    fn leg_limit_is_enforced() {
        // A → B → C → D only by three runs.
        let connections = sorted(vec![hop(0, 0, 1, 480, 500), hop(1, 1, 2, 520, 540), hop(2, 2, 3, 560, 580)]);
        let mct = [5, 5, 5, 5];
        assert!(pareto_journeys(&connections, 3, &query(0, 3, &mct, 2)).is_empty());
        let three = pareto_journeys(&connections, 3, &query(0, 3, &mct, 3));
        assert_eq!(runs_of(&three[0]), vec![0, 1, 2]);
    }

    #[test]
    fn first_leg_departs_inside_the_window() {
        let connections = sorted(vec![hop(0, 0, 1, 300, 400), hop(1, 0, 1, 2000, 2100)]);
        let mct = [0, 0];
        let mut q = query(0, 1, &mct, 1);
        q.earliest_departure = 360;
        assert!(pareto_journeys(&connections, 2, &q).is_empty(), "300 is too early and 2000 too late");
        q.latest_departure = 2000;
        assert_eq!(runs_of(&pareto_journeys(&connections, 2, &q)[0]), vec![1]);
    }

    #[test]
    fn window_lists_later_departures_too() {
        // Three direct runs in the day, and a two-leg one.
        let connections = sorted(vec![
            hop(0, 0, 2, 480, 600),
            hop(1, 0, 2, 720, 840),
            hop(2, 0, 1, 900, 960),
            hop(3, 1, 2, 1000, 1030),
            hop(4, 0, 2, 1100, 1200),
        ]);
        let mct = [0, 10, 0];
        let all = journeys_in_window(&connections, 5, &query(0, 2, &mct, 2), 10);
        let mut found: Vec<Vec<RunIdx>> = all.iter().map(runs_of).collect();
        found.sort();
        assert_eq!(found, vec![vec![0], vec![1], vec![2, 3], vec![4]]);
        assert_eq!(journeys_in_window(&connections, 5, &query(0, 2, &mct, 2), 2).len(), 2);
    }

    #[test]
    fn unreachable_and_out_of_range_stops_give_nothing() {
        let connections = sorted(vec![hop(0, 1, 0, 480, 500)]);
        assert!(pareto_journeys(&connections, 1, &query(0, 1, &[0, 0], 3)).is_empty());
        assert!(pareto_journeys(&connections, 1, &query(0, 7, &[0, 0], 3)).is_empty());
    }

    proptest::proptest! {
        /// Every journey found is physically possible: legs chain in time
        /// with the connection time, each leg is one run's consecutive
        /// hops, and it starts and ends where asked.
        #[test]
        fn journeys_are_feasible(seed in 0u64..10_000) {
            let mut rng = caravan_model::rng::SplitMix64::new(seed);
            let stops = 6u32;
            let mut connections = Vec::new();
            for run in 0..20u32 {
                let mut at = rng.below(6) as StopIdx;
                let mut time = rng.below(600) as Minute;
                for _ in 0..1 + rng.below(3) {
                    let next = (at + 1 + rng.below(stops as u64 - 1) as u32) % stops;
                    let arrives = time + 10 + rng.below(120) as Minute;
                    connections.push(hop(run, at, next, time, arrives));
                    at = next;
                    time = arrives + rng.below(10) as Minute;
                }
            }
            let connections = sorted(connections);
            let mct = [5u16; 6];
            let q = query(0, 5, &mct, 3);
            for journey in pareto_journeys(&connections, 20, &q) {
                let first = &connections[journey.legs[0].board];
                proptest::prop_assert_eq!(first.from, 0);
                proptest::prop_assert!(first.departs >= q.earliest_departure);
                proptest::prop_assert_eq!(connections[journey.legs.last().unwrap().alight].to, 5);
                for pair in journey.legs.windows(2) {
                    let (a, b) = (&connections[pair[0].alight], &connections[pair[1].board]);
                    proptest::prop_assert_eq!(a.to, b.from);
                    proptest::prop_assert!(a.arrives + 5 <= b.departs);
                }
                for leg in &journey.legs {
                    proptest::prop_assert!(leg.board <= leg.alight);
                    let hops: Vec<_> = connections[leg.board..=leg.alight].iter().filter(|c| c.run == leg.run).collect();
                    for pair in hops.windows(2) {
                        proptest::prop_assert_eq!(pair[0].to, pair[1].from);
                    }
                    proptest::prop_assert_eq!(hops[0], &connections[leg.board]);
                }
            }
        }
    }
}
