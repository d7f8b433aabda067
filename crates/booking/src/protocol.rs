//! The messages of `/caravan/book/1` in domain terms, and their protobuf
//! encoding (`proto/caravan/v1/booking.proto`). Decoding checks every
//! field: a hostile peer's frame becomes a [`Refusal`], never a panic.

use caravan_model::Traveller;
use caravan_records::proto;
use prost::Message;

use crate::hold::{
    ref_from_proto, ref_to_proto, spec_from_proto, spec_to_proto, traveller_from_proto, traveller_to_proto,
};
pub use crate::hold::{HoldRef, HoldSpec, SEAT_NUMBERS_MAX};
pub use crate::refusal::{Refusal, RefusalCode};

/// The largest frame either side accepts.
pub const FRAME_BYTES_MAX: usize = 64 * 1024;
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
                Outcome::Refusal(proto::Refusal { code: refusal.code.to_string(), message: refusal.message.clone() })
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
        let bad = |why: String| BookResponse::Refusal(Refusal::new(RefusalCode::BadResponse, why));
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
            Some(Outcome::Refusal(r)) => {
                BookResponse::Refusal(Refusal { code: RefusalCode::parse(&r.code), message: r.message })
            }
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
    use caravan_ledger::{HoldId, HoldRequest};
    use caravan_model::{Date, ListingId};

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
        assert_eq!(BookRequest::decode(b"\xff\xff\xff").unwrap_err().code, RefusalCode::BadRequest);
        assert_eq!(BookRequest::decode(&[]).unwrap_err().code, RefusalCode::BadRequest);
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
            RefusalCode::BadRequest,
            "a traveller needs a name"
        );
        if let Some(proto::book_request::Op::Status(hold)) = &mut wrong_token.op {
            hold.token.truncate(5);
        }
        assert_eq!(BookRequest::decode(&wrong_token.encode_to_vec()).unwrap_err().code, RefusalCode::BadRequest);
        let mut far = spec_to_proto(&spec());
        if let Some(proto::hold_spec::What::Trip(trip)) = &mut far.what {
            trip.departure_day = i32::MAX;
        }
        assert!(spec_from_proto(far).is_err());
        assert!(
            matches!(BookResponse::decode(b"\x0a\xff"), BookResponse::Refusal(r) if r.code == RefusalCode::BadResponse)
        );
    }
}
