//! Record payloads: conversion between the domain model and the protobuf
//! messages, with every limit checked on the way in.

use caravan_model::{
    AriDay, AriRun, CancellationPolicy, Contact, CountryCode, Currency, Date, GeoPoint, Listing, ListingDetails,
    ListingId, PackedRuns, PeerContact, Penalty, Stay, StayType, Stop, StopTime, TimeOfDay, Timestamp, Trip, TripMode,
};
use prost::Message;

use crate::limits::*;
use crate::{proto, Kind, Rejection};

/// What a record says, decoded and validated.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    Listing(Listing),
    /// Sorted, non-overlapping runs over the listing's horizon.
    Ari(Vec<AriRun>),
    Withdrawal,
    Contact(Contact),
}

/// The key of an origin's contact record.
pub const CONTACT_KEY: &str = "node";

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Listing(_) => Kind::Listing,
            Payload::Ari(_) => Kind::Ari,
            Payload::Withdrawal => Kind::Withdrawal,
            Payload::Contact(_) => Kind::Contact,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Payload::Listing(listing) => listing_to_proto(listing).encode_to_vec(),
            Payload::Ari(runs) => {
                proto::AriPayload { runs: Vec::new(), packed_runs: PackedRuns::pack(runs).bytes().to_vec() }
                    .encode_to_vec()
            }
            Payload::Withdrawal => proto::WithdrawalPayload {}.encode_to_vec(),
            Payload::Contact(contact) => proto::ContactPayload {
                peers: contact
                    .peers
                    .iter()
                    .map(|p| proto::PeerContact { peer_id: p.peer_id.clone(), addrs: p.addrs.clone() })
                    .collect(),
            }
            .encode_to_vec(),
        }
    }

    /// Decodes and validates the payload of a `kind` record with `key`,
    /// made at `time`.
    pub(crate) fn decode(kind: Kind, key: &ListingId, time: Timestamp, bytes: &[u8]) -> Result<Payload, Rejection> {
        let malformed = |e: prost::DecodeError| Rejection::Malformed(format!("{} payload: {e}", kind.as_str()));
        match kind {
            Kind::Listing => {
                let listing = listing_from_proto(key, proto::ListingPayload::decode(bytes).map_err(malformed)?)?;
                listing.validate().map_err(|e| match e.too_long {
                    true => Rejection::FieldTooLong { field: e.field, reason: e.reason },
                    false => Rejection::InvalidPayload(e.to_string()),
                })?;
                Ok(Payload::Listing(listing))
            }
            Kind::Ari => {
                let ari = proto::AriPayload::decode(bytes).map_err(malformed)?;
                if ari.packed_runs.is_empty() {
                    return Ok(Payload::Ari(runs_from_proto(&ari.runs, time.date())?));
                }
                if !ari.runs.is_empty() {
                    return Err(bad("runs are given packed or one by one, not both"));
                }
                let runs =
                    PackedRuns::unpack_bytes(&ari.packed_runs).ok_or_else(|| bad("packed runs do not decode"))?;
                Ok(Payload::Ari(check_runs(runs, time.date())?))
            }
            Kind::Withdrawal => {
                proto::WithdrawalPayload::decode(bytes).map_err(malformed)?;
                Ok(Payload::Withdrawal)
            }
            Kind::Contact => {
                let msg = proto::ContactPayload::decode(bytes).map_err(malformed)?;
                if key.as_str() != CONTACT_KEY {
                    return Err(bad(format!("a contact record's key is {CONTACT_KEY:?}")));
                }
                if msg.peers.len() > caravan_model::contact::CONTACT_PEERS_MAX {
                    return Err(Rejection::FieldTooLong { field: "peers", reason: "too many peers".into() });
                }
                let peers = msg.peers.into_iter().map(|p| PeerContact { peer_id: p.peer_id, addrs: p.addrs }).collect();
                let contact = Contact { peers };
                contact.validate().map_err(bad)?;
                Ok(Payload::Contact(contact))
            }
        }
    }
}

fn bad(reason: impl Into<String>) -> Rejection {
    Rejection::InvalidPayload(reason.into())
}

/// A stay's or stop's zone: the named one, or, in a record published
/// before zones had names, its fixed offset.
fn zone_from_proto(name: &str, utc_offset_min: i32) -> Result<caravan_model::Zone, Rejection> {
    if !name.is_empty() {
        return caravan_model::Zone::named(name).map_err(|e| bad(e.to_string()));
    }
    let offset_min = i16::try_from(utc_offset_min).map_err(|_| bad("utc_offset_min out of range"))?;
    caravan_model::Zone::fixed(offset_min).map_err(|e| bad(e.to_string()))
}

fn runs_from_proto(runs: &[proto::AriRun], today: Date) -> Result<Vec<AriRun>, Rejection> {
    check_run_count(runs.len())?;
    let small = |v: u32, what: &str| u16::try_from(v).map_err(|_| bad(format!("{what} {v} is too large")));
    let runs = runs
        .iter()
        .map(|run| {
            let day = AriDay {
                available: run.available,
                price_minor: run.price_minor,
                min_stay: small(run.min_stay, "min_stay")?,
                max_stay: small(run.max_stay, "max_stay")?,
                closed_to_arrival: run.closed_to_arrival,
                closed_to_departure: run.closed_to_departure,
                stop_sell: run.stop_sell,
            };
            Ok(AriRun { start: Date::from_days(run.start_day), days: run.days, day })
        })
        .collect::<Result<Vec<_>, Rejection>>()?;
    check_runs(runs, today)
}

fn check_run_count(count: usize) -> Result<(), Rejection> {
    if count > ARI_RUNS_MAX {
        return Err(Rejection::FieldTooLong { field: "runs", reason: format!("{count} runs, at most {ARI_RUNS_MAX}") });
    }
    Ok(())
}

/// Every limit on a record's runs, whether they came packed or one by one.
fn check_runs(runs: Vec<AriRun>, today: Date) -> Result<Vec<AriRun>, Rejection> {
    check_run_count(runs.len())?;
    let first_allowed = today.add_days(-ARI_DAYS_BEFORE_MAX);
    let end_allowed = today.add_days(caravan_model::limits::HORIZON_DAYS_MAX + 1);
    let out_of_horizon = |date| Rejection::OutOfHorizon { date, first: first_allowed, last: end_allowed.add_days(-1) };
    let mut previous_end = None;
    for run in &runs {
        let day = &run.day;
        if day.available > AVAILABLE_MAX {
            return Err(bad(format!("available {} above {AVAILABLE_MAX}", day.available)));
        }
        if !(0..=caravan_model::limits::PRICE_MINOR_MAX).contains(&day.price_minor) {
            return Err(bad(format!("price {} out of range", day.price_minor)));
        }
        if run.days == 0 || run.days > (caravan_model::limits::HORIZON_DAYS_MAX + ARI_DAYS_BEFORE_MAX + 1) as u32 {
            return Err(bad("a run covers 1 day or more, within the horizon"));
        }
        // Check the start before computing the end: a hostile start_day
        // near i32::MAX would overflow `start + days`.
        if run.start < first_allowed || run.start >= end_allowed {
            return Err(out_of_horizon(run.start));
        }
        if run.end() > end_allowed {
            return Err(out_of_horizon(run.end().add_days(-1)));
        }
        if previous_end.is_some_and(|end| run.start < end) {
            return Err(bad("runs must be sorted and must not overlap"));
        }
        previous_end = Some(run.end());
    }
    Ok(runs)
}

fn listing_to_proto(listing: &Listing) -> proto::ListingPayload {
    let penalty = match listing.cancellation.penalty {
        Penalty::Percent(p) => proto::cancellation_policy::Penalty::Percent(p.into()),
        Penalty::Nights(n) => proto::cancellation_policy::Penalty::Nights(n.into()),
    };
    let details = match &listing.details {
        ListingDetails::Stay(stay) => proto::listing_payload::Details::Stay(proto::Stay {
            stay_type: match stay.stay_type {
                StayType::HotelRoom => proto::StayType::HotelRoom,
                StayType::VacationRental => proto::StayType::VacationRental,
            } as i32,
            address: stay.address.clone(),
            city: stay.city.clone(),
            country: stay.country.as_str().to_owned(),
            lat_e7: stay.location.lat_e7,
            lon_e7: stay.location.lon_e7,
            amenities: stay.amenities.clone(),
            max_guests: stay.max_guests,
            check_in_min: stay.check_in.minutes().into(),
            check_out_min: stay.check_out.minutes().into(),
            utc_offset_min: stay.zone.fixed_offset_min().unwrap_or_default().into(),
            time_zone: stay.zone.name().unwrap_or_default().to_owned(),
            units: stay.units,
        }),
        ListingDetails::Trip(trip) => proto::listing_payload::Details::Trip(proto::Trip {
            mode: match trip.mode {
                TripMode::Bus => proto::TripMode::Bus,
                TripMode::Train => proto::TripMode::Train,
                TripMode::Ferry => proto::TripMode::Ferry,
                TripMode::Flight => proto::TripMode::Flight,
            } as i32,
            operator: trip.operator.clone(),
            service_number: trip.service_number.clone(),
            stops: trip
                .stops
                .iter()
                .map(|stop| proto::Stop {
                    code: stop.code.clone(),
                    name: stop.name.clone(),
                    arrival: stop.arrival.map(stop_time_to_proto),
                    departure: stop.departure.map(stop_time_to_proto),
                    utc_offset_min: stop.zone.fixed_offset_min().unwrap_or_default().into(),
                    time_zone: stop.zone.name().unwrap_or_default().to_owned(),
                })
                .collect(),
            seats: trip.seats,
            seat_map: trip.seat_map.clone(),
        }),
    };
    proto::ListingPayload {
        title: listing.title.clone(),
        description: listing.description.clone(),
        currency: listing.currency.as_str().to_owned(),
        cancellation: Some(proto::CancellationPolicy {
            free_until_hours: listing.cancellation.free_until_hours,
            penalty: Some(penalty),
        }),
        details: Some(details),
    }
}

fn stop_time_to_proto(at: StopTime) -> proto::StopTime {
    proto::StopTime { day_offset: at.day_offset.into(), minute_of_day: at.time.minutes().into() }
}

fn stop_time_from_proto(at: proto::StopTime) -> Result<StopTime, Rejection> {
    Ok(StopTime {
        day_offset: u8::try_from(at.day_offset).map_err(|_| bad("stop day_offset too large"))?,
        time: TimeOfDay::from_minutes(at.minute_of_day).ok_or_else(|| bad("stop minute_of_day >= 1440"))?,
    })
}

fn listing_from_proto(key: &ListingId, msg: proto::ListingPayload) -> Result<Listing, Rejection> {
    let policy = msg.cancellation.ok_or_else(|| bad("listing without cancellation policy"))?;
    let penalty = match policy.penalty {
        Some(proto::cancellation_policy::Penalty::Percent(p)) => {
            Penalty::Percent(u8::try_from(p).map_err(|_| bad("penalty percent above 100"))?)
        }
        Some(proto::cancellation_policy::Penalty::Nights(n)) => {
            Penalty::Nights(u16::try_from(n).map_err(|_| bad("penalty nights too large"))?)
        }
        None => return Err(bad("cancellation policy without penalty")),
    };
    let details = match msg.details.ok_or_else(|| bad("listing is neither stay nor trip"))? {
        proto::listing_payload::Details::Stay(stay) => {
            let minutes = |m: u32, what: &str| TimeOfDay::from_minutes(m).ok_or_else(|| bad(format!("{what} >= 1440")));
            ListingDetails::Stay(Stay {
                stay_type: match proto::StayType::try_from(stay.stay_type) {
                    Ok(proto::StayType::HotelRoom) => StayType::HotelRoom,
                    Ok(proto::StayType::VacationRental) => StayType::VacationRental,
                    _ => return Err(bad(format!("unknown stay type {}", stay.stay_type))),
                },
                address: stay.address,
                city: stay.city,
                country: CountryCode::parse(&stay.country).map_err(|e| bad(e.to_string()))?,
                location: GeoPoint { lat_e7: stay.lat_e7, lon_e7: stay.lon_e7 },
                amenities: stay.amenities,
                max_guests: stay.max_guests,
                check_in: minutes(stay.check_in_min, "check_in_min")?,
                check_out: minutes(stay.check_out_min, "check_out_min")?,
                zone: zone_from_proto(&stay.time_zone, stay.utc_offset_min)?,
                units: stay.units,
            })
        }
        proto::listing_payload::Details::Trip(trip) => ListingDetails::Trip(Trip {
            mode: match proto::TripMode::try_from(trip.mode) {
                Ok(proto::TripMode::Bus) => TripMode::Bus,
                Ok(proto::TripMode::Train) => TripMode::Train,
                Ok(proto::TripMode::Ferry) => TripMode::Ferry,
                Ok(proto::TripMode::Flight) => TripMode::Flight,
                _ => return Err(bad(format!("unknown trip mode {}", trip.mode))),
            },
            operator: trip.operator,
            service_number: trip.service_number,
            stops: trip
                .stops
                .into_iter()
                .map(|stop| {
                    Ok(Stop {
                        code: stop.code,
                        name: stop.name,
                        arrival: stop.arrival.map(stop_time_from_proto).transpose()?,
                        departure: stop.departure.map(stop_time_from_proto).transpose()?,
                        zone: zone_from_proto(&stop.time_zone, stop.utc_offset_min)?,
                    })
                })
                .collect::<Result<_, Rejection>>()?,
            seats: trip.seats,
            seat_map: trip.seat_map,
        }),
    };
    Ok(Listing {
        id: key.clone(),
        title: msg.title,
        description: msg.description,
        currency: Currency::parse(&msg.currency).map_err(|e| bad(e.to_string()))?,
        cancellation: CancellationPolicy { free_until_hours: policy.free_until_hours, penalty },
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stay_proto(time_zone: &str, utc_offset_min: i32) -> proto::ListingPayload {
        let listing = caravan_test_utils::stay("room", "Paris", 2);
        let mut msg = listing_to_proto(&listing);
        let Some(proto::listing_payload::Details::Stay(stay)) = &mut msg.details else { panic!("a stay") };
        (stay.time_zone, stay.utc_offset_min) = (time_zone.to_owned(), utc_offset_min);
        msg
    }

    fn zone_of(msg: proto::ListingPayload) -> Result<caravan_model::Zone, Rejection> {
        let key = ListingId::parse("room").unwrap();
        listing_from_proto(&key, msg).map(|listing| listing.stay().unwrap().zone.clone())
    }

    #[test]
    fn a_record_with_only_an_offset_keeps_it_and_a_named_zone_wins() {
        assert_eq!(zone_of(stay_proto("", 60)).unwrap(), caravan_model::Zone::Fixed(60));
        assert_eq!(zone_of(stay_proto("Europe/Paris", 0)).unwrap().name(), Some("Europe/Paris"));
        assert!(zone_of(stay_proto("Mars/Olympus", 0)).is_err(), "an unknown zone is refused");
        assert!(zone_of(stay_proto("", 15 * 60)).is_err(), "an offset beyond ±14 hours is refused");
    }
}
