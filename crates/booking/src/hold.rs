//! What an agency asks an owner to hold, and the reference to a hold the
//! owner issued, with their protobuf encoding. Both the booking messages
//! and the owner's signed receipts carry them.

use caravan_ledger::{HoldId, HoldRequest};
use caravan_model::{Date, ListingId, Traveller};
use caravan_records::proto;
use serde::{Deserialize, Serialize};

use crate::refusal::Refusal;

/// Seat numbers one trip hold may name.
pub const SEAT_NUMBERS_MAX: usize = 64;

/// What to hold, for how long, at what price.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HoldSpec {
    pub request: HoldRequest,
    /// 0: the owner's default.
    pub hold_seconds: u32,
    pub expected_total_minor: Option<i64>,
    /// Who travels; the owner keeps it with the hold.
    pub traveller: Option<Traveller>,
}

/// A hold the owner issued, with the token binding it to its requester.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HoldRef {
    pub hold: HoldId,
    pub token: [u8; 32],
}

pub(crate) fn spec_to_proto(spec: &HoldSpec) -> proto::HoldSpec {
    let what = match &spec.request {
        HoldRequest::Stay { listing, check_in, check_out, units, guests } => {
            proto::hold_spec::What::Stay(proto::StayHold {
                listing: listing.to_string(),
                check_in_day: check_in.days(),
                check_out_day: check_out.days(),
                units: *units,
                guests: *guests,
            })
        }
        HoldRequest::Trip { listing, departure, seats, seat_numbers } => {
            proto::hold_spec::What::Trip(proto::TripHold {
                listing: listing.to_string(),
                departure_day: departure.days(),
                seats: *seats,
                seat_numbers: seat_numbers.clone(),
            })
        }
    };
    proto::HoldSpec {
        what: Some(what),
        hold_seconds: spec.hold_seconds,
        expected_total_minor: spec.expected_total_minor,
        traveller: spec.traveller.as_ref().map(traveller_to_proto),
    }
}

pub(crate) fn day(days: i32) -> Result<Date, Refusal> {
    let first = Date::from_ymd(Date::YEAR_MIN, 1, 1).expect("a valid date");
    let last = Date::from_ymd(Date::YEAR_MAX, 12, 31).expect("a valid date");
    let date = Date::from_days(days);
    if !(first..=last).contains(&date) {
        return Err(Refusal::bad_request(format!("day {days} is out of range")));
    }
    Ok(date)
}

pub(crate) fn spec_from_proto(spec: proto::HoldSpec) -> Result<HoldSpec, Refusal> {
    let listing = |text: &str| ListingId::parse(text).map_err(|e| Refusal::bad_request(e.to_string()));
    let request = match spec.what {
        Some(proto::hold_spec::What::Stay(stay)) => HoldRequest::Stay {
            listing: listing(&stay.listing)?,
            check_in: day(stay.check_in_day)?,
            check_out: day(stay.check_out_day)?,
            units: stay.units,
            guests: stay.guests,
        },
        Some(proto::hold_spec::What::Trip(trip)) => {
            if trip.seat_numbers.len() > SEAT_NUMBERS_MAX {
                return Err(Refusal::bad_request(format!("at most {SEAT_NUMBERS_MAX} seat numbers")));
            }
            HoldRequest::Trip {
                listing: listing(&trip.listing)?,
                departure: day(trip.departure_day)?,
                seats: trip.seats,
                seat_numbers: trip.seat_numbers,
            }
        }
        None => return Err(Refusal::bad_request("a hold names a stay or a trip")),
    };
    let traveller = spec.traveller.map(traveller_from_proto).transpose()?;
    Ok(HoldSpec {
        request,
        hold_seconds: spec.hold_seconds,
        expected_total_minor: spec.expected_total_minor,
        traveller,
    })
}

pub(crate) fn ref_to_proto(hold: &HoldRef) -> proto::HoldRef {
    proto::HoldRef { hold_id: hold.hold.0, token: hold.token.to_vec(), traveller: None }
}

pub(crate) fn traveller_to_proto(t: &Traveller) -> proto::Traveller {
    proto::Traveller { name: t.name.clone(), email: t.email.clone(), phone: t.phone.clone() }
}

/// Who travels, checked as the ledger would.
pub(crate) fn traveller_from_proto(t: proto::Traveller) -> Result<Traveller, Refusal> {
    let traveller = Traveller { name: t.name, email: t.email, phone: t.phone };
    traveller.validate().map_err(Refusal::bad_request)?;
    Ok(traveller)
}

pub(crate) fn ref_from_proto(hold: proto::HoldRef) -> Result<HoldRef, Refusal> {
    let token = hold.token.try_into().map_err(|_| Refusal::bad_request("a hold token is 32 bytes"))?;
    Ok(HoldRef { hold: HoldId(hold.hold_id), token })
}
