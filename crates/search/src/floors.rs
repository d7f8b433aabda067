//! Lower bounds on what a stay can cost, kept in the index so a search
//! reads from the store only the stays that may beat what it has found.
//!
//! The year's floor (the lowest price of any open night) orders a city's
//! stays; on a given week most stays cost well above it, so each stay also
//! keeps how far above that floor each calendar month starts, in twelve
//! bytes.

use caravan_model::{AriRun, Date};
use serde::{Deserialize, Serialize};

/// Month steps are counted in this fraction of the year's floor.
const STEP_DIVISOR: i64 = 16;

/// The lowest nightly price of an open night, if any night is open.
pub fn price_floor(runs: &[AriRun]) -> Option<i64> {
    runs.iter().filter(|r| is_open(r)).map(|r| r.day.price_minor).min()
}

fn is_open(run: &AriRun) -> bool {
    !run.day.stop_sell && run.day.available > 0
}

/// For each calendar month, how far its cheapest open night lies above
/// the year's floor, in sixteenths of the floor rounded down (255 at most,
/// and for a month with nothing open). A month of two years (the runs
/// cover a year from any day) keeps the lower of the two: still a bound.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct MonthSteps([u8; 12]);

impl MonthSteps {
    pub fn of(runs: &[AriRun], floor: Option<i64>) -> MonthSteps {
        let Some(floor) = floor.filter(|&f| f > 0) else { return MonthSteps::default() };
        let mut lowest = [i64::MAX; 12];
        for run in runs.iter().filter(|r| is_open(r)) {
            let mut date = run.start;
            let mut left = run.days as i32;
            while left > 0 {
                let (year, month, _) = date.ymd();
                let next = first_of_next_month(year, month);
                let span = date.days_until(next).min(left);
                let slot = &mut lowest[month as usize - 1];
                *slot = (*slot).min(run.day.price_minor);
                date = next;
                left -= span;
            }
        }
        MonthSteps(lowest.map(|low| {
            if low == i64::MAX {
                return u8::MAX;
            }
            let step = (low - floor).max(0).saturating_mul(STEP_DIVISOR) / floor;
            step.min(u8::MAX as i64) as u8
        }))
    }

    /// No total for the nights counted in `nights_by_month` (by calendar
    /// month, January first) is lower than this, per unit.
    pub fn bound(&self, floor: i64, nights_by_month: &[i64; 12]) -> i64 {
        let mut total: i64 = 0;
        for (steps, &nights) in self.0.iter().zip(nights_by_month) {
            if nights > 0 {
                let nightly = floor.saturating_mul(STEP_DIVISOR + *steps as i64) / STEP_DIVISOR;
                total = total.saturating_add(nightly.saturating_mul(nights));
            }
        }
        total
    }
}

/// The nights of `check_in..check_out` in each calendar month.
pub fn nights_by_month(check_in: Date, check_out: Date) -> [i64; 12] {
    let mut nights = [0; 12];
    let mut date = check_in;
    while date < check_out {
        let (year, month, _) = date.ymd();
        let next = first_of_next_month(year, month).min(check_out);
        nights[month as usize - 1] += date.days_until(next) as i64;
        date = next;
    }
    nights
}

fn first_of_next_month(year: i32, month: u32) -> Date {
    let (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    Date::from_ymd(year, month, 1).expect("the first of a month is a date")
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_model::AriDay;
    use proptest::prelude::*;

    fn run(start: Date, days: u32, price: i64, available: u32) -> AriRun {
        AriRun { start, days, day: AriDay { available, price_minor: price, ..AriDay::default() } }
    }

    #[test]
    fn nights_are_counted_in_the_months_they_fall_in() {
        let d = |m, day| Date::from_ymd(2027, m, day).unwrap();
        let counted = nights_by_month(d(1, 30), d(2, 3));
        assert_eq!((counted[0], counted[1], counted.iter().sum::<i64>()), (2, 2, 4));
        let over_new_year = nights_by_month(Date::from_ymd(2026, 12, 31).unwrap(), d(1, 1));
        assert_eq!((over_new_year[11], over_new_year.iter().sum::<i64>()), (1, 1));
    }

    #[test]
    fn a_dear_month_raises_the_bound_and_a_closed_one_the_most() {
        let start = Date::from_ymd(2027, 1, 1).unwrap();
        let runs = [run(start, 31, 100, 1), run(start.add_days(31), 28, 300, 1), run(start.add_days(59), 31, 50, 0)];
        let floor = price_floor(&runs);
        assert_eq!(floor, Some(100));
        let steps = MonthSteps::of(&runs, floor);
        let mut february = [0; 12];
        february[1] = 2;
        assert_eq!(steps.bound(100, &february), 600, "two nights at 300");
        let mut march = [0; 12];
        march[2] = 1;
        assert!(steps.bound(100, &march) > 1_000, "nothing open in March");
    }

    proptest! {
        /// Whatever the runs, no night of an open stay costs less than the
        /// bound says.
        #[test]
        fn the_bound_is_never_above_the_price(
            prices in proptest::collection::vec((1u32..40, 1i64..100_000, 0u32..3), 1..30),
            arrival in 0i32..400,
            nights in 1i32..30,
        ) {
            let start = Date::from_ymd(2026, 12, 6).unwrap();
            let mut runs = Vec::new();
            let mut at = start;
            for (days, price, available) in prices {
                runs.push(run(at, days, price, available));
                at = at.add_days(days as i32);
            }
            let floor = price_floor(&runs);
            let steps = MonthSteps::of(&runs, floor);
            let check_in = start.add_days(arrival);
            let check_out = check_in.add_days(nights);
            let priced: Option<i64> = (0..nights)
                .map(|n| AriRun::find(&runs, check_in.add_days(n)).filter(|d| d.available > 0).map(|d| d.price_minor))
                .sum();
            if let (Some(total), Some(floor)) = (priced, floor) {
                prop_assert!(steps.bound(floor, &nights_by_month(check_in, check_out)) <= total);
            }
        }
    }
}
