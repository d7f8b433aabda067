//! Calendar dates, times of day and timestamps, all integers.
//!
//! Dates are days since 1970-01-01 in the proleptic Gregorian calendar
//! (Howard Hinnant's `days_from_civil`), so date arithmetic is integer
//! arithmetic and a date encodes as one varint.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ParseError;

/// Milliseconds since the Unix epoch. Cores never read a clock: the shell
/// passes `now` in as a `Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MS_PER_SECOND: i64 = 1_000;
    pub const MS_PER_HOUR: i64 = 3_600_000;
    pub const MS_PER_DAY: i64 = 86_400_000;

    pub fn ms(self) -> i64 {
        self.0
    }

    pub fn saturating_add_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// The UTC calendar date this instant falls on.
    pub fn date(self) -> Date {
        Date(self.0.div_euclid(Self::MS_PER_DAY) as i32)
    }
}

/// A calendar date without a time zone (a night of stay, a departure day).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date(i32);

impl Date {
    /// Dates before this year are refused by `parse`; nothing books the past.
    pub const YEAR_MIN: i32 = 2000;
    /// Dates after this year are refused by `parse`.
    pub const YEAR_MAX: i32 = 2999;

    pub const fn from_days(days: i32) -> Date {
        Date(days)
    }

    /// Days since 1970-01-01.
    pub const fn days(self) -> i32 {
        self.0
    }

    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date(days_from_civil(year, month, day)))
    }

    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Date, ParseError> {
        let err = |reason: &str| ParseError::new("date", format!("{reason} in {text:?}, expected YYYY-MM-DD"));
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(err("bad shape"));
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let s = &text[r];
            s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten()
        };
        let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err(err("not digits"));
        };
        let year = y as i32;
        if !(Self::YEAR_MIN..=Self::YEAR_MAX).contains(&year) {
            return Err(err("year out of range"));
        }
        Date::from_ymd(year, m, d).ok_or_else(|| err("no such day"))
    }

    pub fn add_days(self, days: i32) -> Date {
        Date(self.0 + days)
    }

    /// Whole days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Date) -> i32 {
        later.0 - self.0
    }

    /// The instant this date starts, in UTC.
    pub fn start(self) -> Timestamp {
        Timestamp(self.0 as i64 * Timestamp::MS_PER_DAY)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400) as i32 + i32::from(month <= 2);
    (year, month, day)
}

/// A local wall-clock time, minutes since midnight (0..1440).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const MINUTES_PER_DAY: u16 = 1440;

    pub fn from_minutes(minutes: u32) -> Option<TimeOfDay> {
        (minutes < Self::MINUTES_PER_DAY as u32).then_some(TimeOfDay(minutes as u16))
    }

    pub fn minutes(self) -> u16 {
        self.0
    }

    /// Parses `HH:MM` (24-hour clock).
    pub fn parse(text: &str) -> Result<TimeOfDay, ParseError> {
        let err = || ParseError::new("time of day", format!("{text:?} is not HH:MM"));
        let (h, m) = text.split_once(':').ok_or_else(err)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(err());
        }
        let h: u32 = h.parse().map_err(|_| err())?;
        let m: u32 = m.parse().map_err(|_| err())?;
        if h > 23 || m > 59 {
            return Err(err());
        }
        Ok(TimeOfDay((h * 60 + m) as u16))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl fmt::Debug for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(Date::parse("1970-01-01").map(Date::days).ok(), None, "before YEAR_MIN");
        assert_eq!(Date::from_ymd(1970, 1, 1).unwrap().days(), 0);
        assert_eq!(Date::parse("2000-03-01").unwrap().days(), 11_017);
        assert_eq!(Date::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        assert!(Date::parse("2023-02-29").is_err());
        assert!(Date::parse("2024-13-01").is_err());
        assert!(Date::parse("2024-1-01").is_err());
        assert!(Date::parse("２０２４-01-01").is_err());
        assert_eq!(Timestamp(-1).date(), Date::from_days(-1));
    }

    #[test]
    fn times_of_day() {
        assert_eq!(TimeOfDay::parse("23:59").unwrap().minutes(), 1439);
        assert_eq!(TimeOfDay::parse("07:05").unwrap().to_string(), "07:05");
        for bad in ["24:00", "7:05", "07:60", "0705", "aa:bb", ""] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -1_000_000i32..1_000_000) {
            let (y, m, d) = Date::from_days(days).ymd();
            prop_assert_eq!(Date::from_ymd(y, m, d), Some(Date::from_days(days)));
        }
    }
}
