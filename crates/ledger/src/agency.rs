//! An agency's bookings as its replica group keeps them: each booking's
//! saga (bytes the agency encodes), who made it and under which client
//! key, rewritten after every step through the group's log. So the
//! member that leads the group drives every saga, and when it is lost the
//! next leader picks the sagas up where the log left them.
//!
//! Every write names the revision it follows from (compare-and-set): a
//! member that drove a saga on an old copy (a leader that has not yet
//! noticed it was replaced, a traveller's decision taken at another
//! member) is refused, reloads and goes on from what the log holds.

use std::collections::{BTreeMap, BTreeSet};

use caravan_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Rejection;

/// One booking as stored.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AgencyBooking {
    pub id: u64,
    /// The client's idempotency key, unique among bookings.
    pub client_key: Option<String>,
    /// The account that made it.
    pub user: Option<u64>,
    /// The saga's phase, by name, so unfinished sagas are found without
    /// decoding them.
    pub phase: String,
    pub terminal: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub traveller: Vec<u8>,
    pub saga: Vec<u8>,
}

/// A booking written after `revision` (`None`: a new booking).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PutBooking {
    pub booking: AgencyBooking,
    pub revision: Option<u64>,
}

/// Bookings by id, each with the revision it stands at.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct AgencyBook {
    bookings: BTreeMap<u64, (u64, AgencyBooking)>,
    by_client_key: BTreeMap<String, u64>,
    /// Bookings whose saga has not ended, so the leader finds them
    /// without reading the others.
    unfinished: BTreeSet<u64>,
    last_revision: u64,
}

impl AgencyBook {
    /// Writes a booking if it still stands at the revision the write
    /// follows from: the booking's new revision.
    pub fn put(&mut self, put: &PutBooking) -> Result<u64, Rejection> {
        let booking = &put.booking;
        let current = self.bookings.get(&booking.id).map(|(revision, _)| *revision);
        if current != put.revision {
            return Err(Rejection::BookingChanged { booking: booking.id, revision: current });
        }
        if let Some(key) = &booking.client_key {
            if self.by_client_key.get(key).is_some_and(|&id| id != booking.id) {
                return Err(Rejection::IdempotencyKeyReused);
            }
        }
        if let Some((_, old)) = self.bookings.get(&booking.id) {
            if old.client_key != booking.client_key {
                return Err(Rejection::InvalidRequest(format!("booking {} keeps its client key", booking.id)));
            }
        }
        if let Some(key) = &booking.client_key {
            self.by_client_key.insert(key.clone(), booking.id);
        }
        if booking.terminal {
            self.unfinished.remove(&booking.id);
        } else {
            self.unfinished.insert(booking.id);
        }
        self.last_revision += 1;
        self.bookings.insert(booking.id, (self.last_revision, booking.clone()));
        Ok(self.last_revision)
    }

    /// A booking and its revision.
    pub fn get(&self, id: u64) -> Option<(u64, &AgencyBooking)> {
        self.bookings.get(&id).map(|(revision, booking)| (*revision, booking))
    }

    pub fn by_client_key(&self, key: &str) -> Option<(u64, &AgencyBooking)> {
        self.by_client_key.get(key).and_then(|id| self.get(*id))
    }

    /// Bookings newest first, with ids below `before_id` if given; only
    /// `user`'s when given.
    pub fn list(&self, user: Option<u64>, before_id: Option<u64>, limit: usize) -> Vec<&AgencyBooking> {
        let below = before_id.unwrap_or(u64::MAX);
        self.bookings
            .range(..below)
            .rev()
            .map(|(_, (_, booking))| booking)
            .filter(|booking| user.is_none() || booking.user == user)
            .take(limit)
            .collect()
    }

    /// The bookings whose saga has not ended, by id.
    pub fn unfinished(&self) -> impl Iterator<Item = (u64, &AgencyBooking)> {
        self.unfinished.iter().filter_map(|id| self.get(*id))
    }

    /// The highest booking id; 0 when there is none.
    pub fn last_id(&self) -> u64 {
        self.bookings.keys().next_back().copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.bookings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bookings.is_empty()
    }

    /// Checks the client-key index; panics on a broken one (a bug, or a
    /// corrupt snapshot).
    pub fn check_invariants(&self) {
        for (key, id) in &self.by_client_key {
            let stored = self.bookings.get(id).and_then(|(_, booking)| booking.client_key.as_deref());
            assert_eq!(stored, Some(key.as_str()), "client key index");
        }
        assert!(self.bookings.values().all(|(revision, _)| *revision <= self.last_revision), "revisions");
        let unfinished = self.bookings.values().filter(|(_, booking)| !booking.terminal).map(|(_, b)| b.id);
        assert!(unfinished.eq(self.unfinished.iter().copied()), "unfinished index");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(id: u64, key: Option<&str>, phase: &str) -> AgencyBooking {
        AgencyBooking {
            id,
            client_key: key.map(str::to_owned),
            user: Some(7),
            phase: phase.into(),
            terminal: phase == "confirmed",
            created: Timestamp(1),
            updated: Timestamp(1),
            traveller: vec![1],
            saga: vec![id as u8],
        }
    }

    #[test]
    fn a_write_on_an_old_copy_is_refused() {
        let mut book = AgencyBook::default();
        let first = book.put(&PutBooking { booking: booking(1, Some("k"), "holding"), revision: None }).unwrap();
        let again = book.put(&PutBooking { booking: booking(1, None, "holding"), revision: None });
        assert_eq!(again, Err(Rejection::BookingChanged { booking: 1, revision: Some(first) }), "the id is taken");
        let next =
            book.put(&PutBooking { booking: booking(1, Some("k"), "confirmed"), revision: Some(first) }).unwrap();
        let stale = book.put(&PutBooking { booking: booking(1, Some("k"), "failed"), revision: Some(first) });
        assert_eq!(stale, Err(Rejection::BookingChanged { booking: 1, revision: Some(next) }));
        assert_eq!(book.get(1).map(|(_, b)| b.phase.as_str()), Some("confirmed"));
        assert_eq!(book.unfinished().count(), 0);
        book.check_invariants();
    }

    #[test]
    fn client_keys_name_one_booking() {
        let mut book = AgencyBook::default();
        book.put(&PutBooking { booking: booking(1, Some("k"), "holding"), revision: None }).unwrap();
        let taken = book.put(&PutBooking { booking: booking(2, Some("k"), "holding"), revision: None });
        assert_eq!(taken, Err(Rejection::IdempotencyKeyReused));
        let revision = book.put(&PutBooking { booking: booking(2, None, "holding"), revision: None }).unwrap();
        let rekeyed = book.put(&PutBooking { booking: booking(2, Some("x"), "holding"), revision: Some(revision) });
        assert!(matches!(rekeyed, Err(Rejection::InvalidRequest(_))));
        assert_eq!(book.by_client_key("k").map(|(_, b)| b.id), Some(1));
        let ids = |list: Vec<&AgencyBooking>| list.iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(ids(book.list(None, None, 10)), vec![2, 1]);
        assert_eq!(ids(book.list(Some(7), Some(2), 10)), vec![1]);
        assert_eq!(ids(book.list(Some(8), None, 10)), Vec::<u64>::new());
        assert_eq!((book.last_id(), book.unfinished().count()), (2, 2));
        book.check_invariants();
    }
}
