//! Runs packed into bytes: ~6 bytes a run instead of the 32 of an
//! [`AriRun`] in memory or ~15 one by one in protobuf. The catalog holds
//! every listing's year of availability this way, and ARI records carry
//! their runs this way on the wire and on disk, so the format is part of
//! the protocol (`AriPayload.packed_runs`) and never changes.
//!
//! The first run's start (zigzag varint), then per run a flags byte and
//! varints: its length in days, its available units (unless unchanged
//! from the run before), its price as the difference from the run before
//! (zigzag), and only where the flags say so, the gap since the run
//! before ended (zigzag, so runs in any order pack), the minimum and the
//! maximum stay. Packing is canonical: equal runs give equal bytes.

use std::sync::Arc;

use super::{AriDay, AriRun};
use crate::Date;

const GAP: u8 = 1;
const SAME_AVAILABLE: u8 = 1 << 1;
const MIN_STAY: u8 = 1 << 2;
const MAX_STAY: u8 = 1 << 3;
const CLOSED_TO_ARRIVAL: u8 = 1 << 4;
const CLOSED_TO_DEPARTURE: u8 = 1 << 5;
const STOP_SELL: u8 = 1 << 6;

/// A listing's runs, packed; cloning shares the bytes.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct PackedRuns(Option<Arc<[u8]>>);

impl PackedRuns {
    pub fn pack(runs: &[AriRun]) -> PackedRuns {
        let Some(first) = runs.first() else { return PackedRuns(None) };
        let mut out = Vec::with_capacity(runs.len() * 6 + 4);
        put_varint(&mut out, zigzag(first.start.days() as i64));
        let mut previous = Previous { end: first.start.days() as i64, ..Previous::default() };
        for run in runs {
            let gap = run.start.days() as i64 - previous.end;
            let day = &run.day;
            let flags = [
                (gap != 0, GAP),
                (day.available == previous.available, SAME_AVAILABLE),
                (day.min_stay != 0, MIN_STAY),
                (day.max_stay != 0, MAX_STAY),
                (day.closed_to_arrival, CLOSED_TO_ARRIVAL),
                (day.closed_to_departure, CLOSED_TO_DEPARTURE),
                (day.stop_sell, STOP_SELL),
            ]
            .iter()
            .filter(|(set, _)| *set)
            .fold(0, |flags, (_, bit)| flags | bit);
            out.push(flags);
            put_varint(&mut out, run.days as u64);
            if flags & SAME_AVAILABLE == 0 {
                put_varint(&mut out, day.available as u64);
            }
            put_varint(&mut out, zigzag(day.price_minor.wrapping_sub(previous.price_minor)));
            if flags & GAP != 0 {
                put_varint(&mut out, zigzag(gap));
            }
            if flags & MIN_STAY != 0 {
                put_varint(&mut out, day.min_stay as u64);
            }
            if flags & MAX_STAY != 0 {
                put_varint(&mut out, day.max_stay as u64);
            }
            previous = Previous::after(run);
        }
        PackedRuns(Some(out.into()))
    }

    /// Bytes from [`PackedRuns::bytes`], checked: `None` if they do not
    /// unpack whole.
    pub fn from_bytes(bytes: &[u8]) -> Option<PackedRuns> {
        if bytes.is_empty() {
            return Some(PackedRuns(None));
        }
        let mut runs = Runs::new(bytes)?;
        for _ in runs.by_ref() {}
        (!runs.failed).then(|| PackedRuns(Some(bytes.into())))
    }

    /// The runs packed in `bytes`, or `None` if they do not unpack whole.
    pub fn unpack_bytes(bytes: &[u8]) -> Option<Vec<AriRun>> {
        if bytes.is_empty() {
            return Some(Vec::new());
        }
        let mut runs = Runs::new(bytes)?;
        let unpacked = runs.by_ref().collect();
        (!runs.failed).then_some(unpacked)
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn iter(&self) -> impl Iterator<Item = AriRun> + '_ {
        self.0.as_deref().and_then(Runs::new).into_iter().flatten()
    }

    pub fn unpack(&self) -> Vec<AriRun> {
        self.iter().collect()
    }

    /// Unpacks into `out` (cleared first) the runs up to the one holding
    /// `last`: all that pricing a stay whose last day is `last` reads.
    pub fn unpack_until(&self, last: Date, out: &mut Vec<AriRun>) {
        out.clear();
        for run in self.iter() {
            let start = run.start;
            out.push(run);
            if start > last {
                break;
            }
        }
    }

    /// The terms on `date`, if a run covers it.
    pub fn find(&self, date: Date) -> Option<AriDay> {
        let ends_after = |run: &AriRun| (date.days() as i64) < run.start.days() as i64 + run.days as i64;
        self.iter().take_while(|run| run.start <= date).find(ends_after).map(|run| run.day)
    }
}

/// What the next run is packed against. Its end is wide: a hostile
/// run may end past the last `Date`, and the record checks refuse it.
#[derive(Default)]
struct Previous {
    end: i64,
    available: u32,
    price_minor: i64,
}

impl Previous {
    fn after(run: &AriRun) -> Previous {
        let end = run.start.days() as i64 + run.days as i64;
        Previous { end, available: run.day.available, price_minor: run.day.price_minor }
    }
}

/// Unpacks run by run; stops, and says so, at bytes that do not decode.
struct Runs<'a> {
    bytes: &'a [u8],
    previous: Previous,
    failed: bool,
}

impl<'a> Runs<'a> {
    fn new(mut bytes: &'a [u8]) -> Option<Runs<'a>> {
        let first = i32::try_from(unzigzag(take_varint(&mut bytes)?)).ok()?;
        Some(Runs { bytes, previous: Previous { end: first as i64, ..Previous::default() }, failed: false })
    }

    fn next_run(&mut self) -> Option<AriRun> {
        let bytes = &mut self.bytes;
        let (&flags, rest) = bytes.split_first()?;
        *bytes = rest;
        let days = u32::try_from(take_varint(bytes)?).ok()?;
        let available = match flags & SAME_AVAILABLE {
            0 => u32::try_from(take_varint(bytes)?).ok()?,
            _ => self.previous.available,
        };
        let price_minor = self.previous.price_minor.wrapping_add(unzigzag(take_varint(bytes)?));
        let gap = if flags & GAP != 0 { unzigzag(take_varint(bytes)?) } else { 0 };
        let min_stay = if flags & MIN_STAY != 0 { u16::try_from(take_varint(bytes)?).ok()? } else { 0 };
        let max_stay = if flags & MAX_STAY != 0 { u16::try_from(take_varint(bytes)?).ok()? } else { 0 };
        let start = i32::try_from(self.previous.end.checked_add(gap)?).ok()?;
        let run = AriRun {
            start: Date::from_days(start),
            days,
            day: AriDay {
                available,
                price_minor,
                min_stay,
                max_stay,
                closed_to_arrival: flags & CLOSED_TO_ARRIVAL != 0,
                closed_to_departure: flags & CLOSED_TO_DEPARTURE != 0,
                stop_sell: flags & STOP_SELL != 0,
            },
        };
        self.previous = Previous::after(&run);
        Some(run)
    }
}

impl Iterator for Runs<'_> {
    type Item = AriRun;

    fn next(&mut self) -> Option<AriRun> {
        if self.bytes.is_empty() || self.failed {
            return None;
        }
        let run = self.next_run();
        self.failed = run.is_none();
        run
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        n |= ((byte & 0x7f) as u64).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day() -> impl Strategy<Value = AriDay> {
        (0u32..20, -5i64..2_000_000, 0u16..4, 0u16..4, any::<[bool; 3]>()).prop_map(
            |(available, price_minor, min_stay, max_stay, [cta, ctd, stop])| AriDay {
                available,
                price_minor,
                min_stay,
                max_stay,
                closed_to_arrival: cta,
                closed_to_departure: ctd,
                stop_sell: stop,
            },
        )
    }

    fn runs() -> impl Strategy<Value = Vec<AriRun>> {
        proptest::collection::vec((0i32..3, 1u32..40, day()), 0..60).prop_map(|parts| {
            let mut start = 20_000;
            parts
                .into_iter()
                .map(|(gap, days, day)| {
                    let run = AriRun { start: Date::from_days(start + gap), days, day };
                    start = run.end().days();
                    run
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn runs_unpack_as_they_were_packed(runs in runs(), probe in 19_990i32..21_000) {
            let packed = PackedRuns::pack(&runs);
            prop_assert_eq!(packed.unpack(), runs.clone());
            let date = Date::from_days(probe);
            prop_assert_eq!(packed.find(date), AriRun::find(&runs, date).copied());
            let mut until = Vec::new();
            packed.unpack_until(date, &mut until);
            for offset in 0..3 {
                let day = date.add_days(-offset);
                prop_assert_eq!(AriRun::find(&until, day), AriRun::find(&runs, day));
            }
            prop_assert_eq!(PackedRuns::unpack_bytes(packed.bytes()), Some(runs.clone()));
            prop_assert_eq!(PackedRuns::from_bytes(packed.bytes()), Some(packed));
        }

        #[test]
        fn any_bytes_unpack_or_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(packed) = PackedRuns::from_bytes(&bytes) {
                prop_assert_eq!(Some(packed.unpack()), PackedRuns::unpack_bytes(&bytes));
            }
        }
    }

    #[test]
    fn a_year_changing_every_few_days_packs_in_a_few_bytes_a_run() {
        let runs: Vec<AriRun> = (0..120)
            .map(|i| AriRun {
                start: Date::from_days(20_000 + 3 * i),
                days: 3,
                day: AriDay { available: 4, price_minor: 12_000 + (i as i64 % 7) * 500, ..AriDay::default() },
            })
            .collect();
        let packed = PackedRuns::pack(&runs);
        assert!(packed.bytes().len() <= 120 * 5, "{} bytes", packed.bytes().len());
        assert_eq!(std::mem::size_of::<AriRun>(), 32);
    }
}
