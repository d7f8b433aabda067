//! Where the index finds what it does not keep in memory: a stay's listing
//! and availability, as stored. The node reads them from its record store;
//! tests and benchmarks keep them in a [`MemoryShelf`].

use std::collections::HashMap;
use std::hash::Hash;

use caravan_model::{AriRun, Listing};

/// The stored listings and availability of the index's stays.
pub trait Shelf<O> {
    /// The listing `(origin, key)` and its availability as last stored, or
    /// `None` if either is missing (withdrawn since, or not arrived yet).
    fn stay(&self, origin: &O, key: &str) -> Option<(Listing, Vec<AriRun>)>;
}

/// A shelf in memory, fed alongside the index.
#[derive(Clone, Debug)]
pub struct MemoryShelf<O> {
    held: HashMap<(O, String), (Option<Listing>, Vec<AriRun>)>,
}

impl<O> Default for MemoryShelf<O> {
    fn default() -> Self {
        MemoryShelf { held: HashMap::new() }
    }
}

impl<O: Clone + Eq + Hash> MemoryShelf<O> {
    pub fn put_listing(&mut self, origin: &O, key: &str, listing: Listing) {
        self.held.entry((origin.clone(), key.to_owned())).or_default().0 = Some(listing);
    }

    pub fn put_ari(&mut self, origin: &O, key: &str, runs: Vec<AriRun>) {
        self.held.entry((origin.clone(), key.to_owned())).or_default().1 = runs;
    }

    pub fn remove(&mut self, origin: &O, key: &str) {
        self.held.remove(&(origin.clone(), key.to_owned()));
    }
}

impl<O: Clone + Eq + Hash> Shelf<O> for MemoryShelf<O> {
    fn stay(&self, origin: &O, key: &str) -> Option<(Listing, Vec<AriRun>)> {
        let (listing, runs) = self.held.get(&(origin.clone(), key.to_owned()))?;
        Some((listing.clone()?, runs.clone()))
    }
}
