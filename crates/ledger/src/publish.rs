//! What a [`Command::Publish`](crate::Command::Publish) hands to the signer:
//! the current public state of every listing changed since the last one.

use caravan_model::{AriDay, AriRun, Contact, Listing, ListingId, Timestamp};
use std::ops::Bound::{Excluded, Unbounded};

use crate::{Ledger, DAYS_BEFORE_TODAY_MAX};

/// Listings one publishing point covers. A point signs, verifies and
/// stores inside the writer's transaction, so its size bounds how long the
/// holds behind it wait; the rest go at the next point, round-robin.
pub const PUBLISHED_LISTINGS_MAX: usize = 256;

/// Runs one availability record carries. Worst case about 20 bytes a run,
/// so 512 runs stay well inside the 16 KiB record limit; days beyond the
/// 512th run are not published (FIXME: split by month, ARCHITECTURE.md).
pub const PUBLISHED_RUNS_MAX: usize = 512;

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Publication {
    Listing(Listing),
    /// What is left for sale from yesterday on, range-encoded.
    Availability {
        listing: ListingId,
        runs: Vec<AriRun>,
    },
    Withdrawal(ListingId),
    Contact(Contact),
}

impl Ledger {
    pub(crate) fn take_publications(&mut self, now: Timestamp) -> Vec<Publication> {
        let first_day = now.date().add_days(-DAYS_BEFORE_TODAY_MAX);
        // Round-robin from after the last listing published, so under
        // constant churn every listing still gets its turn.
        let after_cursor: Vec<ListingId> = match &self.publish_cursor {
            Some(cursor) => self
                .unpublished
                .range::<ListingId, _>((Excluded(cursor), Unbounded))
                .map(|(id, _)| id.clone())
                .collect(),
            None => Vec::new(),
        };
        let ids: Vec<ListingId> = after_cursor
            .into_iter()
            .chain(self.unpublished.keys().cloned())
            .take(PUBLISHED_LISTINGS_MAX.min(self.unpublished.len()))
            .collect();
        let mut out = Vec::new();
        if std::mem::take(&mut self.contact_unpublished) {
            out.extend(self.contact.clone().map(Publication::Contact));
        }
        for id in ids {
            let what = self.unpublished.remove(&id).expect("listed from the map");
            self.publish_cursor = Some(id.clone());
            let state = &self.listings[&id];
            if state.withdrawn {
                out.push(Publication::Withdrawal(id));
                continue;
            }
            if what.listing {
                out.push(Publication::Listing(state.listing.clone()));
            }
            if what.ari {
                // A paused listing publishes every day closed: agencies
                // stop offering it without forgetting its terms.
                let days = state.days.range(first_day..).map(|(date, day)| {
                    let terms = day.public_terms();
                    (*date, if state.paused { AriDay { stop_sell: true, ..terms } } else { terms })
                });
                let mut runs = AriRun::encode(days);
                runs.truncate(PUBLISHED_RUNS_MAX);
                out.push(Publication::Availability { listing: id, runs });
            }
        }
        out
    }
}
