//! The messages of `/caravan/book/1` in domain terms, and their protobuf
//! encoding (`proto/caravan/v1/booking.proto`). Decoding checks every
//! field: a hostile peer's frame becomes a [`Refusal`], never a panic.

use caravan_ledger::{HoldId, HoldRequest, Rejection};
use caravan_model::{Date, ListingId, Traveller};
use caravan_records::proto;
use prost::Message;
use serde::{Deserialize, Serialize};

/// The largest frame either side accepts.
pub const FRAME_BYTES_MAX: usize = 64 * 1024;
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

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Op {
    Quote(HoldSpec),
    Hold(HoldSpec),
    /// Confirms a hold; `traveller`, when given, is who travels (given
    /// after the hold, or changed since).
    Confirm {
        hold: HoldRef,
        traveller: Option<Traveller>,
    },
    Cancel(HoldRef),
    Status(HoldRef),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Quote(_) => "quote",
            Op::Hold(_) => "hold",
            Op::Confirm { .. } => "confirm",
            Op::Cancel(_) => "cancel",
            Op::Status(_) => "status",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BookRequest {
    pub idempotency_key: String,
    pub op: Op,
}

/// Why the owner (or the agency's own node, for `owner_unreachable`)
/// said no. `code` is stable; `message` is for people.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &str, message: impl Into<String>) -> Refusal {
        Refusal { code: code.to_owned(), message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new("bad_request", message)
    }

    pub fn unreachable(message: impl Into<String>) -> Refusal {
        Refusal::new("owner_unreachable", message)
    }
}

impl From<&Rejection> for Refusal {
    fn from(rejection: &Rejection) -> Refusal {
        Refusal::new(rejection.code(), rejection.to_string())
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Quote {
    pub currency: String,
    pub total_minor: i64,
    pub day_prices_minor: Vec<i64>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BookResponse {
    /// An encoded, signed `Receipt`; see [`crate::receipt`].
    Receipt(crate::receipt::SignedReceipt),
    Refusal(Refusal),
    Quote(Quote),
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

fn day(days: i32) -> Result<Date, Refusal> {
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

fn ref_to_proto(hold: &HoldRef) -> proto::HoldRef {
    proto::HoldRef { hold_id: hold.hold.0, token: hold.token.to_vec(), traveller: None }
}

fn traveller_to_proto(t: &Traveller) -> proto::Traveller {
    proto::Traveller { name: t.name.clone(), email: t.email.clone(), phone: t.phone.clone() }
}

/// Who travels, checked as the ledger would.
fn traveller_from_proto(t: proto::Traveller) -> Result<Traveller, Refusal> {
    let traveller = Traveller { name: t.name, email: t.email, phone: t.phone };
    traveller.validate().map_err(Refusal::bad_request)?;
    Ok(traveller)
}

fn ref_from_proto(hold: proto::HoldRef) -> Result<HoldRef, Refusal> {
    let token = hold.token.try_into().map_err(|_| Refusal::bad_request("a hold token is 32 bytes"))?;
    Ok(HoldRef { hold: HoldId(hold.hold_id), token })
}

impl BookRequest {
    pub fn encode(&self) -> Vec<u8> {
        use proto::book_request::Op as P;
        let op = match &self.op {
            Op::Quote(spec) => P::Quote(spec_to_proto(spec)),
            Op::Hold(spec) => P::Hold(spec_to_proto(spec)),
            Op::Confirm { hold, traveller } => P::Confirm(proto::HoldRef {
                traveller: traveller.as_ref().map(traveller_to_proto),
                ..ref_to_proto(hold)
            }),
            Op::Cancel(hold) => P::Cancel(ref_to_proto(hold)),
            Op::Status(hold) => P::Status(ref_to_proto(hold)),
        };
        proto::BookRequest { idempotency_key: self.idempotency_key.clone(), op: Some(op) }.encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<BookRequest, Refusal> {
        use proto::book_request::Op as P;
        if bytes.len() > FRAME_BYTES_MAX {
            return Err(Refusal::bad_request("request too large"));
        }
        let msg = proto::BookRequest::decode(bytes).map_err(|e| Refusal::bad_request(format!("undecodable: {e}")))?;
        let op = match msg.op {
            Some(P::Quote(spec)) => Op::Quote(spec_from_proto(spec)?),
            Some(P::Hold(spec)) => Op::Hold(spec_from_proto(spec)?),
            Some(P::Confirm(mut hold)) => {
                let traveller = hold.traveller.take().map(traveller_from_proto).transpose()?;
                Op::Confirm { hold: ref_from_proto(hold)?, traveller }
            }
            Some(P::Cancel(hold)) => Op::Cancel(ref_from_proto(hold)?),
            Some(P::Status(hold)) => Op::Status(ref_from_proto(hold)?),
            None => return Err(Refusal::bad_request("no operation")),
        };
        Ok(BookRequest { idempotency_key: msg.idempotency_key, op })
    }
}

impl BookResponse {
    pub fn encode(&self) -> Vec<u8> {
        use proto::book_response::Outcome;
        let outcome = match self {
            BookResponse::Receipt(signed) => Outcome::Receipt(proto::SignedReceipt {
                receipt: signed.receipt.clone(),
                signature: signed.signature.to_vec(),
            }),
            BookResponse::Refusal(refusal) => {
                Outcome::Refusal(proto::Refusal { code: refusal.code.clone(), message: refusal.message.clone() })
            }
            BookResponse::Quote(quote) => Outcome::Quote(proto::Quote {
                currency: quote.currency.clone(),
                total_minor: quote.total_minor,
                day_prices_minor: quote.day_prices_minor.clone(),
            }),
        };
        proto::BookResponse { outcome: Some(outcome) }.encode_to_vec()
    }

    /// Decodes an owner's answer; a malformed one is a refusal `bad_response`.
    pub fn decode(bytes: &[u8]) -> BookResponse {
        use proto::book_response::Outcome;
        let bad = |why: String| BookResponse::Refusal(Refusal::new("bad_response", why));
        let msg = match proto::BookResponse::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => return bad(format!("undecodable answer: {e}")),
        };
        match msg.outcome {
            Some(Outcome::Receipt(signed)) => match <[u8; 64]>::try_from(signed.signature) {
                Ok(signature) => {
                    BookResponse::Receipt(crate::receipt::SignedReceipt { receipt: signed.receipt, signature })
                }
                Err(_) => bad("a signature is 64 bytes".into()),
            },
            Some(Outcome::Refusal(r)) => BookResponse::Refusal(Refusal { code: r.code, message: r.message }),
            Some(Outcome::Quote(q)) => BookResponse::Quote(Quote {
                currency: q.currency,
                total_minor: q.total_minor,
                day_prices_minor: q.day_prices_minor,
            }),
            None => bad("empty answer".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HoldSpec {
        HoldSpec {
            request: HoldRequest::Trip {
                listing: ListingId::parse("bus-1").unwrap(),
                departure: Date::from_days(20_500),
                seats: 2,
                seat_numbers: vec!["1A".into(), "1B".into()],
            },
            hold_seconds: 600,
            expected_total_minor: Some(4_000),
            traveller: Some(Traveller { name: "Ada".into(), email: "ada@example.org".into(), phone: None }),
        }
    }

    #[test]
    fn requests_round_trip() {
        let hold = HoldRef { hold: HoldId(7), token: [9; 32] };
        let named = Op::Confirm { hold, traveller: spec().traveller };
        let ops = [Op::Quote(spec()), Op::Hold(spec()), Op::Confirm { hold, traveller: None }, named];
        for op in ops.into_iter().chain([Op::Cancel(hold), Op::Status(hold)]) {
            let request = BookRequest { idempotency_key: "k-1".into(), op };
            assert_eq!(BookRequest::decode(&request.encode()), Ok(request));
        }
    }

    #[test]
    fn hostile_requests_are_refused_not_panics() {
        assert_eq!(BookRequest::decode(b"\xff\xff\xff").unwrap_err().code, "bad_request");
        assert_eq!(BookRequest::decode(&[]).unwrap_err().code, "bad_request");
        let mut wrong_token = proto::BookRequest::decode(
            BookRequest { idempotency_key: "k".into(), op: Op::Status(HoldRef { hold: HoldId(1), token: [0; 32] }) }
                .encode()
                .as_slice(),
        )
        .unwrap();
        let mut nameless = proto::BookRequest::decode(
            BookRequest {
                idempotency_key: "k".into(),
                op: Op::Confirm { hold: HoldRef { hold: HoldId(1), token: [0; 32] }, traveller: spec().traveller },
            }
            .encode()
            .as_slice(),
        )
        .unwrap();
        if let Some(proto::book_request::Op::Confirm(hold)) = &mut nameless.op {
            hold.traveller.as_mut().unwrap().name.clear();
        }
        assert_eq!(
            BookRequest::decode(&nameless.encode_to_vec()).unwrap_err().code,
            "bad_request",
            "a traveller needs a name"
        );
        if let Some(proto::book_request::Op::Status(hold)) = &mut wrong_token.op {
            hold.token.truncate(5);
        }
        assert_eq!(BookRequest::decode(&wrong_token.encode_to_vec()).unwrap_err().code, "bad_request");
        let mut far = spec_to_proto(&spec());
        if let Some(proto::hold_spec::What::Trip(trip)) = &mut far.what {
            trip.departure_day = i32::MAX;
        }
        assert!(spec_from_proto(far).is_err());
        assert!(matches!(BookResponse::decode(b"\x0a\xff"), BookResponse::Refusal(r) if r.code == "bad_response"));
    }
}
