//! Availability, rates and inventory (ARI): what is open for sale on one
//! day (a night of stay, or a departure date of a trip) and at what price.

mod packed;

use serde::{Deserialize, Serialize};

use crate::Date;

pub use packed::PackedRuns;

/// The sale terms of one day. For trips, `min_stay`, `max_stay`,
/// `closed_to_arrival` and `closed_to_departure` are unused (zero/false).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct AriDay {
    /// Units (stays) or seats (trips) open for sale. In an owner's ledger
    /// this is the allotment; in a published record it is what is left
    /// after holds and bookings.
    pub available: u32,
    /// Price per night per unit, or fare per seat, in the listing's currency.
    pub price_minor: i64,
    /// Minimum nights for a stay arriving this day (0 = none).
    pub min_stay: u16,
    /// Maximum nights for a stay arriving this day (0 = none).
    pub max_stay: u16,
    pub closed_to_arrival: bool,
    pub closed_to_departure: bool,
    pub stop_sell: bool,
}

/// A change to the sale terms over a date range; `None` keeps the value.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct AriPatch {
    pub available: Option<u32>,
    pub price_minor: Option<i64>,
    pub min_stay: Option<u16>,
    pub max_stay: Option<u16>,
    pub closed_to_arrival: Option<bool>,
    pub closed_to_departure: Option<bool>,
    pub stop_sell: Option<bool>,
}

impl AriPatch {
    pub fn apply(&self, day: &mut AriDay) {
        let AriPatch { available, price_minor, min_stay, max_stay, closed_to_arrival, closed_to_departure, stop_sell } =
            *self;
        day.available = available.unwrap_or(day.available);
        day.price_minor = price_minor.unwrap_or(day.price_minor);
        day.min_stay = min_stay.unwrap_or(day.min_stay);
        day.max_stay = max_stay.unwrap_or(day.max_stay);
        day.closed_to_arrival = closed_to_arrival.unwrap_or(day.closed_to_arrival);
        day.closed_to_departure = closed_to_departure.unwrap_or(day.closed_to_departure);
        day.stop_sell = stop_sell.unwrap_or(day.stop_sell);
    }

    /// A day that has never been for sale needs both an allotment and a price.
    pub fn opens_new_day(&self) -> bool {
        self.available.is_some() && self.price_minor.is_some()
    }
}

/// `days` consecutive days starting at `start` with identical terms: the
/// range encoding that keeps a whole horizon in a few hundred bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AriRun {
    pub start: Date,
    pub days: u32,
    pub day: AriDay,
}

impl AriRun {
    pub fn end(&self) -> Date {
        self.start.add_days(self.days as i32)
    }

    /// Range-encodes `(date, terms)` pairs given in increasing date order;
    /// gaps between dates start a new run.
    pub fn encode(days: impl IntoIterator<Item = (Date, AriDay)>) -> Vec<AriRun> {
        let mut runs: Vec<AriRun> = Vec::new();
        for (date, day) in days {
            match runs.last_mut() {
                Some(run) if run.end() == date && run.day == day => run.days += 1,
                Some(run) => {
                    assert!(run.end() <= date, "dates must increase");
                    runs.push(AriRun { start: date, days: 1, day });
                }
                None => runs.push(AriRun { start: date, days: 1, day }),
            }
        }
        runs
    }

    /// The terms on `date`, if any run covers it. `runs` are sorted.
    pub fn find(runs: &[AriRun], date: Date) -> Option<&AriDay> {
        let idx = runs.partition_point(|run| run.end() <= date);
        runs.get(idx).filter(|run| run.start <= date).map(|run| &run.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_equal_consecutive_days() {
        let d = Date::from_days(20_000);
        let open = AriDay { available: 3, price_minor: 9_900, ..AriDay::default() };
        let sold = AriDay { available: 0, ..open };
        let days = [(d, open), (d.add_days(1), open), (d.add_days(2), sold), (d.add_days(4), sold)];
        let runs = AriRun::encode(days);
        assert_eq!(runs.len(), 3);
        assert_eq!((runs[0].days, runs[1].days, runs[2].days), (2, 1, 1));
        assert_eq!(AriRun::find(&runs, d.add_days(1)), Some(&open));
        assert_eq!(AriRun::find(&runs, d.add_days(3)), None);
        assert_eq!(AriRun::find(&runs, d.add_days(4)), Some(&sold));
    }
}
