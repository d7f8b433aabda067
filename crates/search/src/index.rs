//! The in-memory search index. For every stay it keeps what a search
//! decides on without reading the listing — its city, country, position,
//! guests, amenities and lowest open price, ~200 bytes — indexed by city
//! and by a grid of coordinates. The listing and its availability stay in
//! the record store (the [`Shelf`]), read only for the candidates a search
//! prices: a world of ten million stays fits in memory that their decoded
//! listings and runs (~1.7 KB each) would overflow.
//!
//! Trips are kept whole, as a timetable: a trip search scans every
//! departure at once. The index is fed from the records and can always be
//! rebuilt from them.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex};

use caravan_model::{AriRun, CountryCode, GeoPoint, Listing, ListingDetails, PackedRuns};
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use crate::floors::{nights_by_month, price_floor, MonthSteps};
use crate::shelf::Shelf;
use crate::stays::{distance_m, price_stay, Place, StayPrice, StayQuery, StaySort, OFFERS_MAX};
use crate::trips::{Itinerary, Timetable, TimetableTrip, TripQuery};

/// Grid cells are this many 10^-7 degrees on a side (0.5°, ~55 km).
const CELL_E7: i32 = 5_000_000;

/// An entry's name in the index: stable while the entry lives, reused
/// once it is removed.
pub type Handle = u32;

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
struct Entry {
    /// In `SearchIndex::origins`.
    origin: u32,
    /// Inline up to 24 bytes (most listing ids): no heap block of its
    /// own, which cost ~32 bytes a listing.
    key: compact_str::CompactString,
    /// The lowest nightly price of an open day: no stay costs less a
    /// night, so a search by price stops before the listings that cannot
    /// beat what it has found. [`NO_FLOOR`]: nothing is open (a bare
    /// number, 8 bytes less than an `Option` in each of millions).
    price_floor: i64,
    /// How far above that floor each month starts: a tighter bound for
    /// the query's nights, checked before a stay is read.
    month_steps: MonthSteps,
    held: Held,
}

impl Entry {
    fn floor(&self) -> Option<i64> {
        (self.price_floor != NO_FLOOR).then_some(self.price_floor)
    }
}

#[derive(Debug)]
enum Held {
    /// Availability whose listing has not arrived: kept until it does, as
    /// the index cannot yet tell a stay (whose runs stay on the shelf)
    /// from a trip (whose runs it keeps).
    Undescribed(PackedRuns),
    Stay(StayFacts),
    Trip {
        listing: Arc<Listing>,
        runs: PackedRuns,
    },
}

/// What a stay search filters on.
#[derive(Debug)]
struct StayFacts {
    /// In `SearchIndex::cities`.
    city: u32,
    country: CountryCode,
    location: GeoPoint,
    max_guests: u32,
    /// In `SearchIndex::amenity_sets`: most stays share a few sets, so
    /// each is held once.
    amenities: u32,
}

/// An entry spelled out, names and all: what a catalog snapshot keeps, and
/// what the catalog's digest covers.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SavedEntry {
    pub key: String,
    pub price_floor: Option<i64>,
    pub month_steps: MonthSteps,
    pub held: SavedHeld,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum SavedHeld {
    /// Packed runs ([`PackedRuns::bytes`]) of a listing not yet described.
    Undescribed {
        runs: Vec<u8>,
    },
    Stay {
        city: String,
        country: CountryCode,
        location: GeoPoint,
        max_guests: u32,
        amenities: Vec<String>,
    },
    Trip {
        listing: Listing,
        runs: Vec<u8>,
    },
}

/// Names stored once and referred to by number.
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let name: Arc<str> = name.into();
        let id = self.names.len() as u32;
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

#[derive(Debug)]
pub struct SearchIndex<O> {
    entries: Vec<Option<Entry>>,
    free: Vec<Handle>,
    origins: Vec<O>,
    origin_ids: HashMap<O, u32>,
    /// Handles by `(origin, key)`, hashed with `hasher`; the keys
    /// themselves are in the entries, not stored twice.
    by_key: HashTable<Handle>,
    hasher: RandomState,
    cities: Names,
    amenities: Names,
    amenity_sets: Sets,
    /// A city's stays by price floor (none: last), so that a search by
    /// price walks them cheapest first, without sorting the city.
    by_city: HashMap<u32, BTreeSet<(i64, Handle)>>,
    by_cell: HashMap<(i32, i32), BTreeSet<Handle>>,
    trips: BTreeSet<Handle>,
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
            origins: Vec::new(),
            origin_ids: HashMap::new(),
            by_key: HashTable::new(),
            hasher: RandomState::new(),
            cities: Names::default(),
            amenities: Names::default(),
            amenity_sets: Sets::default(),
            by_city: HashMap::new(),
            by_cell: HashMap::new(),
            trips: BTreeSet::new(),
            timetable: Mutex::new(None),
            min_connection: BTreeMap::new(),
            min_connection_default: crate::trips::MIN_CONNECTION_MINUTES_DEFAULT,
        }
    }
}

/// Sets of interned names, each held once and referred to by number.
#[derive(Debug, Default)]
struct Sets {
    ids: HashMap<Arc<[u32]>, u32>,
    sets: Vec<Arc<[u32]>>,
}

impl Sets {
    /// The number of the set of `members` (in any order, repeats and all).
    fn intern(&mut self, mut members: Vec<u32>) -> u32 {
        members.sort_unstable();
        members.dedup();
        if let Some(&id) = self.ids.get(members.as_slice()) {
            return id;
        }
        let set: Arc<[u32]> = members.into();
        let id = self.sets.len() as u32;
        self.sets.push(set.clone());
        self.ids.insert(set, id);
        id
    }

    /// The members of set `id`, sorted.
    fn get(&self, id: u32) -> &[u32] {
        &self.sets[id as usize]
    }
}

fn city_key(city: &str) -> String {
    city.trim().to_lowercase()
}

fn cell(point: GeoPoint) -> (i32, i32) {
    (point.lat_e7.div_euclid(CELL_E7), point.lon_e7.div_euclid(CELL_E7))
}

/// An entry's floor when nothing is open: after every price.
const NO_FLOOR: i64 = i64::MAX;

/// Where a stay sits in its city's set: by its floor, none last.
fn floor_key(floor: Option<i64>) -> i64 {
    floor.unwrap_or(NO_FLOOR)
}

/// What the index checks of a stay query by itself.
struct Filter<'q> {
    place: &'q Place,
    country: Option<&'q str>,
    nights: i64,
    units: u32,
    guests: u32,
    /// Interned, lower case.
    amenities: Vec<u32>,
    total_max_minor: Option<i64>,
    nights_by_month: [i64; 12],
}

/// A stay the index could rule on alone, waiting to be priced.
struct Candidate {
    handle: Handle,
    /// The year's floor price times the nights and units: what a city's
    /// stays are ordered by.
    floor_total: i64,
    /// The months' floors over the query's nights, times the units: no
    /// lower total exists.
    bound_total: i64,
    distance_m: Option<u32>,
}

/// Candidates that come by the year's floor (a city's stays), handed out
/// by their bound instead. A stay's bound is never below its floor total,
/// so once the next stay to come has a floor total above the lowest bound
/// waiting, no stay still to come can have a lower bound than it.
struct ByBound<I: Iterator<Item = Candidate>> {
    by_floor: std::iter::Peekable<I>,
    waiting: BinaryHeap<LowestBoundFirst>,
}

impl<I: Iterator<Item = Candidate>> ByBound<I> {
    fn new(by_floor: I) -> Self {
        ByBound { by_floor: by_floor.peekable(), waiting: BinaryHeap::new() }
    }
}

impl<I: Iterator<Item = Candidate>> Iterator for ByBound<I> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        loop {
            let lowest = self.waiting.peek().map(|waiting| waiting.0.bound_total);
            let next_floor = self.by_floor.peek().map(|c| c.floor_total);
            match (lowest, next_floor) {
                (Some(bound), Some(floor)) if bound > floor => {}
                (Some(_), _) => return self.waiting.pop().map(|waiting| waiting.0),
                (None, None) => return None,
                (None, Some(_)) => {}
            }
            self.waiting.extend(self.by_floor.next().map(LowestBoundFirst));
        }
    }
}

/// Orders a max-heap of candidates lowest bound first (ties by handle).
struct LowestBoundFirst(Candidate);

impl LowestBoundFirst {
    fn key(&self) -> (i64, Handle) {
        (self.0.bound_total, self.0.handle)
    }
}

impl PartialEq for LowestBoundFirst {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for LowestBoundFirst {}

impl PartialOrd for LowestBoundFirst {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LowestBoundFirst {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key().cmp(&self.key())
    }
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
        // Every described stay is in its city's set; counted by city, not
        // by entry, so a status poll costs little at millions of listings.
        self.trips.len() + self.by_city.values().map(BTreeSet::len).sum::<usize>()
    }

    /// Makes room for `additional` more entries at once (a restore knows
    /// how many come).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_key.reserve(additional, |&handle| {
            let entry = entries[handle as usize].as_ref().expect("keyed entries live");
            hasher.hash_one((entry.origin, &*entry.key))
        });
    }

    /// Entries held, described or not.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, handle: Handle) -> Option<&Entry> {
        self.entries.get(handle as usize)?.as_ref()
    }

    fn entry_mut(&mut self, handle: Handle) -> &mut Entry {
        self.entries[handle as usize].as_mut().expect("a live handle")
    }

    fn key_hash(&self, origin: u32, key: &str) -> u64 {
        self.hasher.hash_one((origin, key))
    }

    /// The entry `(origin, key)`, if the index holds it.
    pub fn handle(&self, origin: &O, key: &str) -> Option<Handle> {
        let origin = *self.origin_ids.get(origin)?;
        let entries = &self.entries;
        let is =
            |&handle: &Handle| entries[handle as usize].as_ref().is_some_and(|e| e.origin == origin && &*e.key == key);
        self.by_key.find(self.key_hash(origin, key), is).copied()
    }

    fn slot(&mut self, origin: &O, key: &str) -> Handle {
        if let Some(handle) = self.handle(origin, key) {
            return handle;
        }
        let origin_id = match self.origin_ids.get(origin) {
            Some(&id) => id,
            None => {
                let id = self.origins.len() as u32;
                self.origins.push(origin.clone());
                self.origin_ids.insert(origin.clone(), id);
                id
            }
        };
        let entry = Entry {
            origin: origin_id,
            key: key.into(),
            price_floor: NO_FLOOR,
            month_steps: MonthSteps::default(),
            held: Held::Undescribed(PackedRuns::default()),
        };
        let handle = match self.free.pop() {
            Some(handle) => {
                self.entries[handle as usize] = Some(entry);
                handle
            }
            None => {
                reserve_an_eighth(&mut self.entries);
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as Handle
            }
        };
        let hash = self.key_hash(origin_id, key);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_key.insert_unique(hash, handle, |&other| {
            let entry = entries[other as usize].as_ref().expect("keyed entries live");
            hasher.hash_one((entry.origin, &*entry.key))
        });
        handle
    }

    /// Takes the entry out of the city, grid and trip indexes, leaving it
    /// undescribed with the runs it kept (none for a stay: they are on the
    /// shelf).
    fn unindex(&mut self, handle: Handle) -> PackedRuns {
        let entry = self.entry_mut(handle);
        let floor = entry.price_floor;
        match std::mem::replace(&mut entry.held, Held::Undescribed(PackedRuns::default())) {
            Held::Undescribed(runs) => runs,
            Held::Stay(facts) => {
                remove_from(&mut self.by_city, &facts.city, &(floor, handle));
                remove_from(&mut self.by_cell, &cell(facts.location), &handle);
                PackedRuns::default()
            }
            Held::Trip { runs, .. } => {
                self.trips.remove(&handle);
                self.timetable_changed();
                runs
            }
        }
    }

    fn timetable_changed(&mut self) {
        *self.timetable.get_mut().expect("timetable lock") = None;
    }

    /// The listing record of `(origin, key)` is now `listing`.
    ///
    /// A stay's runs are not kept, so a key that turns from a stay into a
    /// trip has no runs here until its next availability record.
    pub fn put_listing(&mut self, origin: &O, key: &str, listing: Listing) -> Handle {
        let handle = self.slot(origin, key);
        let runs = self.unindex(handle);
        let held = match &listing.details {
            ListingDetails::Stay(stay) => {
                let city = self.cities.intern(&city_key(&stay.city));
                let amenities: Vec<u32> =
                    stay.amenities.iter().map(|a| self.amenities.intern(&a.to_lowercase())).collect();
                let amenities = self.amenity_sets.intern(amenities);
                let floor = self.entry_mut(handle).price_floor;
                self.by_city.entry(city).or_default().insert((floor, handle));
                self.by_cell.entry(cell(stay.location)).or_default().insert(handle);
                Held::Stay(StayFacts {
                    city,
                    country: stay.country,
                    location: stay.location,
                    max_guests: stay.max_guests,
                    amenities,
                })
            }
            ListingDetails::Trip(_) => {
                self.trips.insert(handle);
                self.timetable_changed();
                Held::Trip { listing: Arc::new(listing), runs }
            }
        };
        self.entry_mut(handle).held = held;
        handle
    }

    /// The availability record of `(origin, key)` is now `runs`.
    pub fn put_ari(&mut self, origin: &O, key: &str, runs: &[AriRun]) -> Handle {
        let handle = self.slot(origin, key);
        let entry = self.entries[handle as usize].as_mut().expect("a live handle");
        let before = entry.price_floor;
        let floor = price_floor(runs);
        entry.price_floor = floor_key(floor);
        entry.month_steps = MonthSteps::of(runs, floor);
        let after = entry.price_floor;
        match &mut entry.held {
            Held::Stay(facts) => {
                if before != after {
                    let set = self.by_city.get_mut(&facts.city).expect("an indexed stay's city");
                    set.remove(&(before, handle));
                    set.insert((after, handle));
                }
            }
            // The timetable reads a trip's runs through its handle at each
            // search: nothing cached depends on them.
            Held::Undescribed(kept) | Held::Trip { runs: kept, .. } => *kept = PackedRuns::pack(runs),
        }
        handle
    }

    /// `(origin, key)` was withdrawn; its handle is free again.
    pub fn remove(&mut self, origin: &O, key: &str) -> Option<Handle> {
        let handle = self.handle(origin, key)?;
        self.remove_handle(handle);
        Some(handle)
    }

    fn remove_handle(&mut self, handle: Handle) {
        self.unindex(handle);
        let entry = self.entries[handle as usize].take().expect("a live handle");
        let hash = self.key_hash(entry.origin, &entry.key);
        if let Ok(found) = self.by_key.find_entry(hash, |&other| other == handle) {
            found.remove();
        }
        self.free.push(handle);
    }

    /// Everything of a frozen origin goes; returns the handles freed.
    pub fn remove_origin(&mut self, origin: &O) -> Vec<Handle> {
        let handles = self.handles_of(origin);
        self.remove_handles(&handles);
        handles
    }

    /// The entries at `handles` go (live handles, as `handles_of` gives).
    pub fn remove_handles(&mut self, handles: &[Handle]) {
        for &handle in handles {
            self.remove_handle(handle);
        }
    }

    /// The handles of `origin`'s entries.
    pub fn handles_of(&self, origin: &O) -> Vec<Handle> {
        let Some(&id) = self.origin_ids.get(origin) else { return Vec::new() };
        (self.entries.iter().enumerate())
            .filter(|(_, entry)| entry.as_ref().is_some_and(|e| e.origin == id))
            .map(|(handle, _)| handle as Handle)
            .collect()
    }

    /// Every entry spelled out, with its handle and origin, in no set order.
    pub fn saved(&self) -> impl Iterator<Item = (Handle, &O, SavedEntry)> + '_ {
        (0..self.entries.len() as Handle)
            .filter_map(|handle| self.saved_entry(handle).map(|(origin, saved)| (handle, origin, saved)))
    }

    /// The entry at `handle` spelled out, with its origin.
    pub fn saved_entry(&self, handle: Handle) -> Option<(&O, SavedEntry)> {
        self.entries.get(handle as usize).and_then(|entry| {
            let entry = entry.as_ref()?;
            let held = match &entry.held {
                Held::Undescribed(runs) => SavedHeld::Undescribed { runs: runs.bytes().to_vec() },
                Held::Stay(facts) => {
                    // Ids follow the order names were first seen, which
                    // differs between nodes: names are sorted instead.
                    let mut amenities: Vec<String> = self
                        .amenity_sets
                        .get(facts.amenities)
                        .iter()
                        .map(|&id| self.amenities.name(id).to_owned())
                        .collect();
                    amenities.sort_unstable();
                    SavedHeld::Stay {
                        city: self.cities.name(facts.city).to_owned(),
                        country: facts.country,
                        location: facts.location,
                        max_guests: facts.max_guests,
                        amenities,
                    }
                }
                Held::Trip { listing, runs } => {
                    SavedHeld::Trip { listing: (**listing).clone(), runs: runs.bytes().to_vec() }
                }
            };
            let saved = SavedEntry {
                key: entry.key.to_string(),
                price_floor: entry.floor(),
                month_steps: entry.month_steps,
                held,
            };
            Some((&self.origins[entry.origin as usize], saved))
        })
    }

    /// Puts back an entry from [`SearchIndex::saved`]; refuses one whose
    /// runs do not unpack or whose trip listing is not valid.
    pub fn restore(&mut self, origin: &O, saved: SavedEntry) -> Result<Handle, String> {
        let packed = |bytes: &[u8]| PackedRuns::from_bytes(bytes).ok_or_else(|| format!("runs of {}", saved.key));
        let handle = self.slot(origin, &saved.key);
        self.unindex(handle);
        self.entry_mut(handle).price_floor = floor_key(saved.price_floor);
        self.entry_mut(handle).month_steps = saved.month_steps;
        match &saved.held {
            SavedHeld::Undescribed { runs } => self.entry_mut(handle).held = Held::Undescribed(packed(runs)?),
            SavedHeld::Stay { city, country, location, max_guests, amenities } => {
                let city = self.cities.intern(city);
                let amenities: Vec<u32> = amenities.iter().map(|a| self.amenities.intern(a)).collect();
                let amenities = self.amenity_sets.intern(amenities);
                self.by_city.entry(city).or_default().insert((floor_key(saved.price_floor), handle));
                self.by_cell.entry(cell(*location)).or_default().insert(handle);
                self.entry_mut(handle).held = Held::Stay(StayFacts {
                    city,
                    country: *country,
                    location: *location,
                    max_guests: *max_guests,
                    amenities,
                });
            }
            SavedHeld::Trip { listing, runs } => {
                listing.validate().map_err(|e| format!("listing {}: {e}", saved.key))?;
                let runs = packed(runs)?;
                self.put_listing(origin, &saved.key, listing.clone());
                if let Held::Trip { runs: kept, .. } = &mut self.entry_mut(handle).held {
                    *kept = runs;
                }
            }
        }
        Ok(handle)
    }

    /// Stays that can be sold for the query, ranked by its sort; their
    /// listings and runs come from `shelf`.
    ///
    /// The index rules out what it can alone (place, country, guests,
    /// amenities, nothing open, a floor above the budget) and takes the
    /// rest in an order that lets the scan stop early: by price, lowest
    /// bound first (the months' floors over the query's nights), stopping
    /// once `limit` offers are found and the next bound is above the
    /// dearest of them; by distance, nearest first, stopping at the first
    /// candidate farther than the `limit`-th offer. So a stay is read from
    /// the shelf only if its bound is below the last offer's total, which
    /// in a city of a million stays is a few dozen.
    pub fn search_stays(&self, query: &StayQuery, shelf: &(impl Shelf<O> + ?Sized)) -> Vec<StayOffer<O>> {
        let limit = query.limit.clamp(1, OFFERS_MAX);
        let Some(filter) = self.filter(query) else { return Vec::new() };
        let candidates: Box<dyn Iterator<Item = Candidate> + '_> = match &query.place {
            // No distances in a city: whatever the sort, by price.
            Place::City { city, .. } => {
                let set = self.cities.get(&city_key(city)).and_then(|id| self.by_city.get(&id));
                let by_floor =
                    set.into_iter().flatten().filter_map(move |&(_, handle)| self.candidate(handle, &filter));
                Box::new(ByBound::new(by_floor))
            }
            Place::Near { point, radius_m } => {
                let mut around: Vec<Candidate> = self
                    .cells_around(*point, *radius_m)
                    .into_iter()
                    .filter_map(|handle| self.candidate(handle, &filter))
                    .collect();
                match query.sort {
                    StaySort::Price => around.sort_unstable_by_key(|c| (c.bound_total, c.handle)),
                    StaySort::Distance => around.sort_unstable_by_key(|c| (c.distance_m, c.handle)),
                }
                Box::new(around.into_iter())
            }
        };
        let mut offers: Vec<StayOffer<O>> = Vec::new();
        // The `limit` lowest totals found, the dearest on top.
        let mut cheapest: BinaryHeap<i64> = BinaryHeap::new();
        let by_distance = matches!(query.place, Place::Near { .. }) && query.sort == StaySort::Distance;
        for candidate in candidates {
            let dearest = cheapest.peek().copied().filter(|_| cheapest.len() >= limit);
            let beaten = if by_distance {
                // Offers come nearest first: the `limit`-th is the farthest kept.
                offers.len() >= limit && offers[limit - 1].distance_m < candidate.distance_m
            } else {
                // Candidates come by bound: past the dearest kept, none
                // left can do better.
                dearest.is_some_and(|d| candidate.bound_total > d)
            };
            if beaten {
                break;
            }
            let Some(entry) = self.entry(candidate.handle) else { continue };
            let origin = &self.origins[entry.origin as usize];
            // Withdrawn since, or not stored yet: nothing to sell.
            let Some((listing, runs)) = shelf.stay(origin, &entry.key) else { continue };
            let Some(price) =
                price_stay(&listing, &runs, query.check_in, query.check_out, query.units.max(1), query.guests)
            else {
                continue;
            };
            let total = price.total.amount_minor;
            if query.total_min_minor.is_some_and(|min| total < min)
                || query.total_max_minor.is_some_and(|max| total > max)
            {
                continue;
            }
            cheapest.push(total);
            if cheapest.len() > limit {
                cheapest.pop();
            }
            offers.push(StayOffer {
                origin: origin.clone(),
                listing: Arc::new(listing),
                price,
                distance_m: candidate.distance_m,
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

    /// What of `query` the index checks by itself; `None` if it names an
    /// amenity no listing has.
    fn filter<'q>(&self, query: &'q StayQuery) -> Option<Filter<'q>> {
        let amenities =
            query.amenities.iter().map(|a| self.amenities.get(&a.trim().to_lowercase())).collect::<Option<_>>()?;
        let country = match &query.place {
            Place::City { country, .. } => country.as_deref(),
            Place::Near { .. } => None,
        };
        Some(Filter {
            place: &query.place,
            country,
            nights: query.check_in.days_until(query.check_out).max(0) as i64,
            units: query.units.max(1),
            guests: query.guests,
            amenities,
            total_max_minor: query.total_max_minor,
            nights_by_month: nights_by_month(query.check_in, query.check_out),
        })
    }

    /// The stay `handle`, unless its facts rule it out.
    fn candidate(&self, handle: Handle, filter: &Filter) -> Option<Candidate> {
        let entry = self.entry(handle)?;
        let Held::Stay(facts) = &entry.held else { return None };
        // Nothing open, nothing to sell.
        let floor = entry.floor()?;
        let units = filter.units as i64;
        let floor_total = floor.saturating_mul(filter.nights).saturating_mul(units);
        let bound_total = entry.month_steps.bound(floor, &filter.nights_by_month).saturating_mul(units);
        if filter.country.is_some_and(|c| !c.eq_ignore_ascii_case(facts.country.as_str()))
            || filter.guests as u64 > facts.max_guests as u64 * filter.units as u64
            || !filter.amenities.iter().all(|id| self.amenity_sets.get(facts.amenities).binary_search(id).is_ok())
            || filter.total_max_minor.is_some_and(|max| bound_total > max)
        {
            return None;
        }
        let distance_m = match filter.place {
            Place::City { .. } => None,
            Place::Near { point, radius_m } => {
                let distance = distance_m(*point, facts.location);
                if distance > *radius_m {
                    return None;
                }
                Some(distance)
            }
        };
        Some(Candidate { handle, floor_total, bound_total, distance_m })
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
            match &self.entry(handle)?.held {
                Held::Trip { runs, .. } => runs.find(date),
                _ => None,
            }
        })
    }

    fn timetable(&self) -> Arc<Timetable<O>> {
        let mut cached = self.timetable.lock().expect("timetable lock");
        cached
            .get_or_insert_with(|| {
                let trips = self
                    .trips
                    .iter()
                    .filter_map(|&handle| {
                        let entry = self.entry(handle)?;
                        let Held::Trip { listing, .. } = &entry.held else { return None };
                        Some(TimetableTrip {
                            handle,
                            origin: self.origins[entry.origin as usize].clone(),
                            listing: listing.clone(),
                        })
                    })
                    .collect();
                Arc::new(Timetable::build(trips))
            })
            .clone()
    }
}

/// Makes room for one more in `vec`, growing it by an eighth when full
/// rather than doubling it: at ten million entries, doubling can leave
/// hundreds of megabytes allocated and unused. (Large blocks are moved by
/// remapping pages, not copying.)
pub fn reserve_an_eighth<T>(vec: &mut Vec<T>) {
    if vec.len() == vec.capacity() {
        vec.reserve_exact(vec.capacity() / 8 + 1_024);
    }
}

fn remove_from<K: Eq + Hash, T: Ord>(map: &mut HashMap<K, BTreeSet<T>>, key: &K, item: &T) {
    if let Some(set) = map.get_mut(key) {
        set.remove(item);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
