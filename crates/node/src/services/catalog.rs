//! The catalog service: searches of the in-memory catalog the writer keeps
//! in step with the stored records, and reads of the stored listings.

use std::sync::Arc;

use caravan_api::CatalogService;
use caravan_model::{AriRun, Listing};
use caravan_records::Origin;
use caravan_search::{Itinerary, StayOffer, StayQuery, TripQuery};

use crate::Node;

impl CatalogService for Node {
    fn search_stays(&self, query: &StayQuery) -> Vec<StayOffer<Origin>> {
        self.inner.stay_searches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.read_catalog(|catalog| catalog.index.search_stays(query, &self.inner.shelf))
    }

    fn search_trips(&self, query: &TripQuery) -> Vec<Itinerary<Origin>> {
        self.read_catalog(|catalog| catalog.index.search_trips(query))
    }

    fn listing(&self, origin: &Origin, id: &str) -> Option<Arc<Listing>> {
        self.inner.shelf.listing(origin, id).map(Arc::new)
    }

    fn runs(&self, origin: &Origin, id: &str) -> Option<Vec<AriRun>> {
        self.inner.shelf.runs(origin, id)
    }
}
