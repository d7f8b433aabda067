//! The in-memory search index: every listing of every origin with its
//! newest availability, indexed by city, by a grid of coordinates, and as a
//! timetable of trips. It is the heart of the node's catalog, fed from
//! the records; it can always be rebuilt from them.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use caravan_model::{AriRun, GeoPoint, Listing, ListingDetails, PackedRuns};

use crate::stays::{distance_m, price_stay, Place, StayPrice, StayQuery, StaySort, OFFERS_MAX};
use crate::trips::{Itinerary, Timetable, TimetableTrip, TripQuery};

/// Grid cells are this many 10^-7 degrees on a side (0.5°, ~55 km).
const CELL_E7: i32 = 5_000_000;

/// One stay offer: a listing that can be sold for the query's nights.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StayOffer<O> {
    pub origin: O,
    pub listing: Arc<Listing>,
    pub price: StayPrice,
    /// From the query's point, for `Place::Near`.
    pub distance_m: Option<u32>,
}

#[derive(Debug)]
struct Entry<O> {
    origin: O,
    key: String,
    listing: Option<Arc<Listing>>,
    /// A year of availability is ~120 runs: packed, they take ~700 bytes
    /// instead of ~4 KB, and a search unpacks only its candidates'.
    runs: PackedRuns,
    /// The lowest nightly price of an open day: no stay costs less a
    /// night, so a search by price stops before the listings that cannot
    /// beat what it has found. `None`: nothing is open.
    price_floor: Option<i64>,
}

#[derive(Debug)]
pub struct SearchIndex<O> {
    entries: Vec<Option<Entry<O>>>,
    free: Vec<u32>,
    by_key: HashMap<(O, String), u32>,
    by_city: HashMap<String, BTreeSet<u32>>,
    by_cell: HashMap<(i32, i32), BTreeSet<u32>>,
    trips: BTreeSet<u32>,
    /// Rebuilt on the first trip search after the set of trips changed.
    timetable: Mutex<Option<Arc<Timetable<O>>>>,
    /// Minimum connection minutes by stop code, and for the rest.
    min_connection: BTreeMap<String, u16>,
    min_connection_default: u16,
}

impl<O> Default for SearchIndex<O> {
    fn default() -> Self {
        SearchIndex {
            entries: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            by_city: HashMap::new(),
            by_cell: HashMap::new(),
            trips: BTreeSet::new(),
            timetable: Mutex::new(None),
            min_connection: BTreeMap::new(),
            min_connection_default: crate::trips::MIN_CONNECTION_MINUTES_DEFAULT,
        }
    }
}

fn city_key(city: &str) -> String {
    city.trim().to_lowercase()
}

fn cell(point: GeoPoint) -> (i32, i32) {
    (point.lat_e7.div_euclid(CELL_E7), point.lon_e7.div_euclid(CELL_E7))
}

impl<O: Clone + Eq + Hash + Ord> SearchIndex<O> {
    pub fn new() -> SearchIndex<O> {
        SearchIndex::default()
    }

    /// Sets the minimum connection time at some stops, and at the rest.
    pub fn set_min_connection(&mut self, rules: BTreeMap<String, u16>, default: u16) {
        self.min_connection = rules;
        self.min_connection_default = default;
    }

    /// Listings known (with their description record).
    pub fn listing_count(&self) -> usize {
        self.entries.iter().flatten().filter(|e| e.listing.is_some()).count()
    }

    fn slot(&mut self, origin: &O, key: &str) -> u32 {
        if let Some(&idx) = self.by_key.get(&(origin.clone(), key.to_owned())) {
            return idx;
        }
        let entry = Entry {
            origin: origin.clone(),
            key: key.to_owned(),
            listing: None,
            runs: PackedRuns::default(),
            price_floor: None,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.entries[idx as usize] = Some(entry);
                idx
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.by_key.insert((origin.clone(), key.to_owned()), idx);
        idx
    }

    fn unindex(&mut self, idx: u32) {
        let Some(listing) = self.entries[idx as usize].as_mut().and_then(|e| e.listing.take()) else { return };
        match &listing.details {
            ListingDetails::Stay(stay) => {
                remove_from(&mut self.by_city, &city_key(&stay.city), idx);
                remove_from(&mut self.by_cell, &cell(stay.location), idx);
            }
            ListingDetails::Trip(_) => {
                self.trips.remove(&idx);
                self.timetable_changed();
            }
        }
    }

    fn timetable_changed(&mut self) {
        *self.timetable.get_mut().expect("timetable lock") = None;
    }

    /// The listing record of `(origin, key)` is now `listing`.
    pub fn put_listing(&mut self, origin: &O, key: &str, listing: Listing) {
        let idx = self.slot(origin, key);
        self.unindex(idx);
        match &listing.details {
            ListingDetails::Stay(stay) => {
                self.by_city.entry(city_key(&stay.city)).or_default().insert(idx);
                self.by_cell.entry(cell(stay.location)).or_default().insert(idx);
            }
            ListingDetails::Trip(_) => {
                self.trips.insert(idx);
                self.timetable_changed();
            }
        }
        self.entries[idx as usize].as_mut().expect("slot exists").listing = Some(Arc::new(listing));
    }

    /// The availability record of `(origin, key)` is now `runs`.
    pub fn put_ari(&mut self, origin: &O, key: &str, runs: Vec<AriRun>) {
        self.put_packed_ari(origin, key, PackedRuns::pack(&runs));
    }

    /// As [`SearchIndex::put_ari`], with the runs packed already.
    pub fn put_packed_ari(&mut self, origin: &O, key: &str, runs: PackedRuns) {
        let idx = self.slot(origin, key);
        let entry = self.entries[idx as usize].as_mut().expect("slot exists");
        entry.price_floor =
            runs.iter().filter(|r| !r.day.stop_sell && r.day.available > 0).map(|r| r.day.price_minor).min();
        entry.runs = runs;
    }

    /// `(origin, key)` was withdrawn.
    pub fn remove(&mut self, origin: &O, key: &str) {
        if let Some(idx) = self.by_key.remove(&(origin.clone(), key.to_owned())) {
            self.unindex(idx);
            self.entries[idx as usize] = None;
            self.free.push(idx);
        }
    }

    /// Everything of a frozen origin goes.
    pub fn remove_origin(&mut self, origin: &O) {
        let keys: Vec<String> =
            self.entries.iter().flatten().filter(|e| &e.origin == origin).map(|e| e.key.clone()).collect();
        for key in keys {
            self.remove(origin, &key);
        }
    }

    /// Every `(origin, key)` the index holds, with its listing (if its
    /// description record arrived) and availability, in no set order.
    pub fn entries(&self) -> impl Iterator<Item = (&O, &str, Option<&Arc<Listing>>, &PackedRuns)> {
        self.entries.iter().flatten().map(|e| (&e.origin, e.key.as_str(), e.listing.as_ref(), &e.runs))
    }

    /// The listing `(origin, key)` as last published, if known.
    pub fn listing(&self, origin: &O, key: &str) -> Option<Arc<Listing>> {
        let idx = *self.by_key.get(&(origin.clone(), key.to_owned()))?;
        self.entries[idx as usize].as_ref()?.listing.clone()
    }

    /// The availability `(origin, key)` last published, if known.
    pub fn runs(&self, origin: &O, key: &str) -> Option<Vec<AriRun>> {
        let idx = *self.by_key.get(&(origin.clone(), key.to_owned()))?;
        Some(self.entries[idx as usize].as_ref()?.runs.unpack())
    }

    /// Stays that can be sold for the query, ranked by its sort.
    ///
    /// By price, candidates are priced cheapest floor first, and the scan
    /// stops once `limit` offers are found and the next candidate's floor
    /// (its lowest nightly price times the nights and units) is above the
    /// dearest of them: what follows can only cost more. A big city's
    /// hundred thousand listings cost a sort, not a hundred thousand prices.
    pub fn search_stays(&self, query: &StayQuery) -> Vec<StayOffer<O>> {
        let limit = query.limit.clamp(1, OFFERS_MAX);
        let by_price = query.sort == StaySort::Price;
        let nights = query.check_in.days_until(query.check_out).max(0) as i64;
        let units = query.units.max(1) as i64;
        let floor_total = |idx: u32| {
            let floor = self.entries[idx as usize].as_ref()?.price_floor?;
            Some(floor.saturating_mul(nights).saturating_mul(units))
        };
        let mut candidates: Vec<u32> = match &query.place {
            Place::City { city, .. } => {
                self.by_city.get(&city_key(city)).map(|set| set.iter().copied().collect()).unwrap_or_default()
            }
            Place::Near { point, radius_m } => self.cells_around(*point, *radius_m),
        };
        if by_price {
            // Nothing open, nothing to sell.
            candidates.retain(|&idx| floor_total(idx).is_some());
            candidates.sort_by_cached_key(|&idx| floor_total(idx));
        }
        let amenities: Vec<String> = query.amenities.iter().map(|a| a.trim().to_lowercase()).collect();
        let mut offers: Vec<StayOffer<O>> = Vec::new();
        // The `limit` lowest totals found, the dearest on top.
        let mut cheapest: BinaryHeap<i64> = BinaryHeap::new();
        let mut runs = Vec::new();
        for idx in candidates {
            if by_price {
                let floor = floor_total(idx).unwrap_or(i64::MAX);
                let beaten = cheapest.len() >= limit && cheapest.peek().is_some_and(|&dearest| floor > dearest);
                if beaten || query.total_max_minor.is_some_and(|max| floor > max) {
                    break;
                }
            }
            let Some(entry) = self.entries[idx as usize].as_ref() else { continue };
            let Some(listing) = &entry.listing else { continue };
            let Some(stay) = listing.stay() else { continue };
            let distance = match &query.place {
                Place::City { country, .. } => {
                    if country.as_deref().is_some_and(|c| !c.eq_ignore_ascii_case(stay.country.as_str())) {
                        continue;
                    }
                    None
                }
                Place::Near { point, radius_m } => {
                    let distance = distance_m(*point, stay.location);
                    if distance > *radius_m {
                        continue;
                    }
                    Some(distance)
                }
            };
            if !amenities.iter().all(|wanted| stay.amenities.iter().any(|a| a.to_lowercase() == *wanted)) {
                continue;
            }
            entry.runs.unpack_until(query.check_out, &mut runs);
            let Some(price) =
                price_stay(listing, &runs, query.check_in, query.check_out, query.units.max(1), query.guests)
            else {
                continue;
            };
            let total = price.total.amount_minor;
            if query.total_min_minor.is_some_and(|min| total < min)
                || query.total_max_minor.is_some_and(|max| total > max)
            {
                continue;
            }
            if by_price {
                cheapest.push(total);
                if cheapest.len() > limit {
                    cheapest.pop();
                }
            }
            offers.push(StayOffer {
                origin: entry.origin.clone(),
                listing: listing.clone(),
                price,
                distance_m: distance,
            });
        }
        let tie = |o: &StayOffer<O>| (o.origin.clone(), o.listing.id.clone());
        match query.sort {
            StaySort::Price => offers.sort_by(|a, b| {
                (a.price.total.amount_minor, a.distance_m)
                    .cmp(&(b.price.total.amount_minor, b.distance_m))
                    .then_with(|| tie(a).cmp(&tie(b)))
            }),
            StaySort::Distance => offers.sort_by(|a, b| {
                (a.distance_m, a.price.total.amount_minor)
                    .cmp(&(b.distance_m, b.price.total.amount_minor))
                    .then_with(|| tie(a).cmp(&tie(b)))
            }),
        }
        offers.truncate(limit);
        offers
    }

    /// Entries in the grid cells a circle touches.
    fn cells_around(&self, point: GeoPoint, radius_m: u32) -> Vec<u32> {
        // A degree of latitude is ~111 km; longitude degrees shrink with
        // the cosine of the latitude (capped near the poles).
        let lat_span_e7 = (radius_m as f64 / 111_000.0 * 1e7) as i64;
        let cos = (point.lat_e7 as f64 / 1e7).to_radians().cos().max(0.01);
        let lon_span_e7 = ((radius_m as f64 / (111_000.0 * cos)) * 1e7).min(3.6e9) as i64;
        let cell_of = |e7: i64| (e7.clamp(i32::MIN as i64, i32::MAX as i64) as i32).div_euclid(CELL_E7);
        let (lat0, lat1) = (cell_of(point.lat_e7 as i64 - lat_span_e7), cell_of(point.lat_e7 as i64 + lat_span_e7));
        let (lon0, lon1) = (cell_of(point.lon_e7 as i64 - lon_span_e7), cell_of(point.lon_e7 as i64 + lon_span_e7));
        let mut found = BTreeSet::new();
        // Wide circles would walk many empty cells: walk the occupied ones.
        let cells = (lat1 - lat0 + 1) as i64 * (lon1 - lon0 + 1) as i64;
        if cells > self.by_cell.len() as i64 {
            for ((lat, lon), set) in &self.by_cell {
                if (lat0..=lat1).contains(lat) && (lon0..=lon1).contains(lon) {
                    found.extend(set.iter().copied());
                }
            }
        } else {
            for lat in lat0..=lat1 {
                for lon in lon0..=lon1 {
                    if let Some(set) = self.by_cell.get(&(lat, lon)) {
                        found.extend(set.iter().copied());
                    }
                }
            }
        }
        found.into_iter().collect()
    }

    /// Itineraries for the query over every trip listing.
    pub fn search_trips(&self, query: &TripQuery) -> Vec<Itinerary<O>> {
        let timetable = self.timetable();
        timetable.search(query, &self.min_connection, self.min_connection_default, |handle, date| {
            self.entries.get(handle as usize)?.as_ref()?.runs.find(date)
        })
    }

    fn timetable(&self) -> Arc<Timetable<O>> {
        let mut cached = self.timetable.lock().expect("timetable lock");
        cached
            .get_or_insert_with(|| {
                let trips = self
                    .trips
                    .iter()
                    .filter_map(|&idx| {
                        let entry = self.entries[idx as usize].as_ref()?;
                        Some(TimetableTrip {
                            handle: idx,
                            origin: entry.origin.clone(),
                            listing: entry.listing.clone()?,
                        })
                    })
                    .collect();
                Arc::new(Timetable::build(trips))
            })
            .clone()
    }
}

fn remove_from<K: Eq + Hash>(map: &mut HashMap<K, BTreeSet<u32>>, key: &K, idx: u32) {
    if let Some(set) = map.get_mut(key) {
        set.remove(&idx);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
