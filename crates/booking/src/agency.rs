//! The agency's side of a booking, as the API sees it: who travels, what
//! to book, and the booking with its saga.

pub use caravan_model::Traveller;
use caravan_records::Origin;

use crate::{HoldSpec, Saga};

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewBooking {
    /// The client's Idempotency-Key: the same key gives the same booking.
    pub client_key: Option<String>,
    /// The account booking, when one is logged in.
    pub user: Option<u64>,
    pub traveller: Traveller,
    pub parts: Vec<(Origin, HoldSpec)>,
    /// Hold every part, then wait for [`Decision::Confirm`] (a traveller
    /// watching a countdown) instead of confirming at once.
    pub wait_to_confirm: bool,
}

/// What a traveller decides about a held booking.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Book it; with who travels, when they give their details now.
    Confirm(Option<Traveller>),
    Release,
}

/// A booking as the API shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Booking {
    pub saga: Saga,
    pub traveller: Traveller,
    pub user: Option<u64>,
}

/// What cancelling a confirmed part now would cost, by the listing's
/// policy and the prices the owner booked (the owner computes the same
/// when it cancels). `None` unless the part is confirmed.
pub fn cancellation_penalty(
    part: &crate::Part,
    listing: &caravan_model::Listing,
    now: caravan_model::Timestamp,
) -> Option<caravan_model::Money> {
    if part.status != crate::PartStatus::Confirmed {
        return None;
    }
    let currency = caravan_model::Currency::parse(part.currency.as_deref()?).ok()?;
    let total = caravan_model::Money::new(part.total_minor?, currency);
    let nights: Vec<caravan_model::Money> =
        part.day_prices_minor.iter().map(|&m| caravan_model::Money::new(m, currency)).collect();
    let start = listing.start_on(part.spec.request.start());
    Some(listing.cancellation.penalty(total, &nights, start.ms() - now.ms()))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    #[error("{0}")]
    Invalid(String),
    #[error("no booking {0}")]
    NotFound(u64),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Part, PartStatus};
    use caravan_ledger::HoldRequest;
    use caravan_model::{Date, ListingId, Money, Timestamp};

    #[test]
    fn the_penalty_follows_the_policy_and_the_booked_nights() {
        // Free until 48 hours before a 15:00 (Paris) check-in, then the first night.
        let check_in = Date::from_days(20_500);
        let (mut part, listing) = booked(check_in);
        let start = listing.start_on(check_in);
        let early = Timestamp(start.ms() - 49 * Timestamp::MS_PER_HOUR);
        let late = Timestamp(start.ms() - 47 * Timestamp::MS_PER_HOUR);
        let eur = caravan_model::Currency::parse("EUR").unwrap();
        assert_eq!(cancellation_penalty(&part, &listing, early), Some(Money::new(0, eur)));
        assert_eq!(cancellation_penalty(&part, &listing, late), Some(Money::new(100, eur)));
        part.status = PartStatus::Held;
        assert_eq!(cancellation_penalty(&part, &listing, late), None, "only bookings have a penalty");
    }

    /// A confirmed two-night stay (100 then 150) at the fixture's room, in
    /// Paris's time zone, from `check_in`.
    fn booked(check_in: Date) -> (Part, caravan_model::Listing) {
        let listing = caravan_test_utils::stay("room", "Paris", 3);
        let request = HoldRequest::Stay {
            listing: ListingId::parse("room").unwrap(),
            check_in,
            check_out: check_in.add_days(2),
            units: 1,
            guests: 1,
        };
        let spec = HoldSpec { request, hold_seconds: 0, expected_total_minor: None, traveller: None };
        let mut part = Part::new(Origin([1; 32]), spec);
        (part.status, part.currency, part.total_minor) = (PartStatus::Confirmed, Some("EUR".into()), Some(250));
        part.day_prices_minor = vec![100, 150];
        (part, listing)
    }

    fn utc(date: &str, hour: i64, minute: i64) -> Timestamp {
        Timestamp(Date::parse(date).unwrap().start().ms() + (hour * 60 + minute) * 60_000)
    }

    #[test]
    fn free_cancellation_ends_by_paris_clocks_across_daylight_saving_changes() {
        let eur = caravan_model::Currency::parse("EUR").unwrap();
        let (free, first_night) = (Some(Money::new(0, eur)), Some(Money::new(100, eur)));
        // Check-in 15:00 on Tuesday 30 March 2027, summer time (13:00 UTC):
        // free until 48 hours before, Sunday 28 March 13:00 UTC, the day the
        // clocks went forward. A fixed UTC+1 would have said 14:00 UTC.
        let (part, listing) = booked(Date::parse("2027-03-30").unwrap());
        assert_eq!(cancellation_penalty(&part, &listing, utc("2027-03-28", 12, 59)), free);
        assert_eq!(cancellation_penalty(&part, &listing, utc("2027-03-28", 13, 30)), first_night);
        // Check-in 15:00 on Monday 1 November 2027, winter time (14:00 UTC):
        // free until Saturday 30 October 14:00 UTC, the day before the
        // clocks went back, when Paris was still at UTC+2 (16:00 there).
        let (part, listing) = booked(Date::parse("2027-11-01").unwrap());
        assert_eq!(cancellation_penalty(&part, &listing, utc("2027-10-30", 13, 59)), free);
        assert_eq!(cancellation_penalty(&part, &listing, utc("2027-10-30", 14, 1)), first_night);
        // Check-in 15:00 on Saturday 30 October, still summer time (13:00
        // UTC): free until Thursday 28 October 13:00 UTC.
        let (part, listing) = booked(Date::parse("2027-10-30").unwrap());
        assert_eq!(cancellation_penalty(&part, &listing, utc("2027-10-28", 12, 59)), free);
        assert_eq!(cancellation_penalty(&part, &listing, utc("2027-10-28", 13, 30)), first_night);
    }
}
