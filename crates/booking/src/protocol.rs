//! The messages of `/caravan/book/1` in domain terms, and their protobuf
//! encoding (`proto/caravan/v1/booking.proto`). Decoding checks every
//! field: a hostile peer's frame becomes a [`Refusal`], never a panic.

use caravan_model::Traveller;
use caravan_records::{proto, Origin};
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

/// The most requests one frame carries (their answers fit a frame too).
pub const BOOK_BATCH_MAX: usize = 32;

/// What an owner receives: one request, or a batch answered in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Incoming {
    One(BookRequest),
    Batch(Vec<BookRequest>),
}

/// A frame as an owner decodes it: its requests and the agency the sender
/// says it speaks for (to be checked against the agency's contact record).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    pub incoming: Incoming,
    pub agency: Option<Origin>,
}

impl BookRequest {
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// The request as sent by a member of `agency`.
    pub fn encode_as(&self, agency: Origin) -> Vec<u8> {
        proto::BookRequest { agency: agency.0.to_vec(), ..self.to_proto() }.encode_to_vec()
    }

    fn to_proto(&self) -> proto::BookRequest {
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
        proto::BookRequest { idempotency_key: self.idempotency_key.clone(), op: Some(op), agency: Vec::new() }
    }

    /// Several requests in one frame.
    pub fn encode_batch(requests: &[BookRequest]) -> Vec<u8> {
        let batch = proto::BookBatch { requests: requests.iter().map(BookRequest::to_proto).collect() };
        proto::BookRequest { op: Some(proto::book_request::Op::Batch(batch)), ..Default::default() }.encode_to_vec()
    }

    /// Several requests in one frame, sent by a member of `agency`.
    pub fn encode_batch_as(requests: &[BookRequest], agency: Origin) -> Vec<u8> {
        let batch = proto::BookBatch { requests: requests.iter().map(BookRequest::to_proto).collect() };
        let op = Some(proto::book_request::Op::Batch(batch));
        proto::BookRequest { op, agency: agency.0.to_vec(), ..Default::default() }.encode_to_vec()
    }

    /// Decodes one request; a batch here is refused.
    pub fn decode(bytes: &[u8]) -> Result<BookRequest, Refusal> {
        match BookRequest::decode_incoming(bytes)? {
            Incoming::One(request) => Ok(request),
            Incoming::Batch(_) => Err(Refusal::bad_request("a batch where one request was expected")),
        }
    }

    /// Decodes a request or a batch of them (of at most [`BOOK_BATCH_MAX`],
    /// none itself a batch): a bad one refuses the whole frame.
    pub fn decode_incoming(bytes: &[u8]) -> Result<Incoming, Refusal> {
        BookRequest::decode_frame(bytes).map(|frame| frame.incoming)
    }

    /// Decodes a frame with the agency it claims to speak for.
    pub fn decode_frame(bytes: &[u8]) -> Result<Frame, Refusal> {
        if bytes.len() > FRAME_BYTES_MAX {
            return Err(Refusal::bad_request("request too large"));
        }
        let mut msg =
            proto::BookRequest::decode(bytes).map_err(|e| Refusal::bad_request(format!("undecodable: {e}")))?;
        let agency = match std::mem::take(&mut msg.agency) {
            bytes if bytes.is_empty() => None,
            bytes => Some(Origin(bytes.try_into().map_err(|_| Refusal::bad_request("agency: 32 bytes"))?)),
        };
        Ok(Frame { incoming: BookRequest::decode_requests(msg)?, agency })
    }

    fn decode_requests(msg: proto::BookRequest) -> Result<Incoming, Refusal> {
        match msg.op {
            Some(proto::book_request::Op::Batch(batch)) => {
                if batch.requests.is_empty() || batch.requests.len() > BOOK_BATCH_MAX {
                    return Err(Refusal::bad_request(format!("a batch carries 1 to {BOOK_BATCH_MAX} requests")));
                }
                let requests = batch.requests.into_iter().map(BookRequest::from_proto);
                Ok(Incoming::Batch(requests.collect::<Result<_, _>>()?))
            }
            _ => Ok(Incoming::One(BookRequest::from_proto(msg)?)),
        }
    }

    fn from_proto(msg: proto::BookRequest) -> Result<BookRequest, Refusal> {
        use proto::book_request::Op as P;
        let op = match msg.op {
            Some(P::Quote(spec)) => Op::Quote(spec_from_proto(spec)?),
            Some(P::Hold(spec)) => Op::Hold(spec_from_proto(spec)?),
            Some(P::Confirm(mut hold)) => {
                let traveller = hold.traveller.take().map(traveller_from_proto).transpose()?;
                Op::Confirm { hold: ref_from_proto(hold)?, traveller }
            }
            Some(P::Cancel(hold)) => Op::Cancel(ref_from_proto(hold)?),
            Some(P::Status(hold)) => Op::Status(ref_from_proto(hold)?),
            Some(P::Batch(_)) => return Err(Refusal::bad_request("a batch inside a batch")),
            None => return Err(Refusal::bad_request("no operation")),
        };
        Ok(BookRequest { idempotency_key: msg.idempotency_key, op })
    }
}

impl BookResponse {
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    fn to_proto(&self) -> proto::BookResponse {
        use proto::book_response::Outcome;
        let outcome = match self {
            BookResponse::Receipt(signed) => Outcome::Receipt(proto::SignedReceipt {
                receipt: signed.receipt.clone(),
                signature: signed.signature.to_vec(),
                proof: signed.proof.as_ref().map(|proof| proto::ReceiptProof {
                    index: proof.index,
                    count: proof.count,
                    path: proof.path.iter().map(|hash| hash.to_vec()).collect(),
                }),
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
        proto::BookResponse { outcome: Some(outcome) }
    }

    /// A batch's answers, in its order.
    pub fn encode_batch(responses: &[BookResponse]) -> Vec<u8> {
        let batch = proto::BookBatchResponse { responses: responses.iter().map(BookResponse::to_proto).collect() };
        proto::BookResponse { outcome: Some(proto::book_response::Outcome::Batch(batch)) }.encode_to_vec()
    }

    /// Decodes an owner's answer; a malformed one is a refusal `bad_response`.
    pub fn decode(bytes: &[u8]) -> BookResponse {
        match proto::BookResponse::decode(bytes) {
            Ok(msg) => BookResponse::from_proto(msg),
            Err(e) => bad_response(format!("undecodable answer: {e}")),
        }
    }

    /// Decodes the answers to a batch of `count` requests. An owner that
    /// answers one refusal instead refused the whole frame (an owner older
    /// than batches says there is no operation): that refusal comes back.
    pub fn decode_batch(bytes: &[u8], count: usize) -> Result<Vec<BookResponse>, Refusal> {
        use proto::book_response::Outcome;
        let bad = |why: String| Refusal::new(RefusalCode::BadResponse, why);
        let msg = proto::BookResponse::decode(bytes).map_err(|e| bad(format!("undecodable answer: {e}")))?;
        match msg.outcome {
            Some(Outcome::Batch(batch)) if batch.responses.len() == count => {
                Ok(batch.responses.into_iter().map(BookResponse::from_proto).collect())
            }
            Some(Outcome::Batch(batch)) => Err(bad(format!("{} answers to a batch of {count}", batch.responses.len()))),
            Some(Outcome::Refusal(r)) => Err(Refusal { code: RefusalCode::parse(&r.code), message: r.message }),
            _ => Err(bad("a single answer to a batch".into())),
        }
    }

    fn from_proto(msg: proto::BookResponse) -> BookResponse {
        use proto::book_response::Outcome;
        match msg.outcome {
            Some(Outcome::Receipt(signed)) => {
                let Ok(signature) = <[u8; 64]>::try_from(signed.signature) else {
                    return bad_response("a signature is 64 bytes".into());
                };
                let proof = match signed.proof.map(proof_from_proto).transpose() {
                    Ok(proof) => proof,
                    Err(why) => return bad_response(why),
                };
                BookResponse::Receipt(crate::receipt::SignedReceipt { receipt: signed.receipt, signature, proof })
            }
            Some(Outcome::Refusal(r)) => {
                BookResponse::Refusal(Refusal { code: RefusalCode::parse(&r.code), message: r.message })
            }
            Some(Outcome::Quote(q)) => BookResponse::Quote(Quote {
                currency: q.currency,
                total_minor: q.total_minor,
                day_prices_minor: q.day_prices_minor,
            }),
            Some(Outcome::Batch(_)) => bad_response("a batch of answers to one request".into()),
            None => bad_response("empty answer".into()),
        }
    }
}

fn bad_response(why: String) -> BookResponse {
    BookResponse::Refusal(Refusal::new(RefusalCode::BadResponse, why))
}

fn proof_from_proto(proof: proto::ReceiptProof) -> Result<crate::receipt::BatchProof, String> {
    // A tree of at most RECEIPT_BATCH_MAX leaves is at most 8 levels deep.
    if proof.count > crate::receipt::RECEIPT_BATCH_MAX || proof.path.len() > 8 {
        return Err("a receipt's batch proof is too long".into());
    }
    let path = proof.path.into_iter().map(<[u8; 32]>::try_from).collect::<Result<_, _>>();
    let path = path.map_err(|_| "a batch proof's hashes are 32 bytes".to_string())?;
    Ok(crate::receipt::BatchProof { index: proof.index, count: proof.count, path })
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

    fn status(hold: u64) -> BookRequest {
        BookRequest {
            idempotency_key: format!("k{hold}"),
            op: Op::Status(HoldRef { hold: HoldId(hold), token: [7; 32] }),
        }
    }

    #[test]
    fn a_batch_round_trips_and_a_bad_one_is_refused_whole() {
        let requests: Vec<BookRequest> = (1..=3).map(status).collect();
        let frame = BookRequest::encode_batch(&requests);
        assert_eq!(BookRequest::decode_incoming(&frame), Ok(Incoming::Batch(requests.clone())));
        let agency = Origin([4; 32]);
        let claimed = BookRequest::decode_frame(&BookRequest::encode_batch_as(&requests, agency)).unwrap();
        assert_eq!((claimed.incoming, claimed.agency), (Incoming::Batch(requests.clone()), Some(agency)));
        let one = BookRequest::decode_frame(&status(1).encode_as(agency)).unwrap();
        assert_eq!((one.incoming, one.agency), (Incoming::One(status(1)), Some(agency)));
        let short = proto::BookRequest { agency: vec![1; 31], ..status(1).to_proto() };
        assert_eq!(BookRequest::decode_frame(&short.encode_to_vec()).unwrap_err().code, RefusalCode::BadRequest);
        assert_eq!(BookRequest::decode(&frame).unwrap_err().code, RefusalCode::BadRequest, "not where one is expected");
        assert_eq!(BookRequest::decode_incoming(&status(1).encode()), Ok(Incoming::One(status(1))));

        let refused = |frame: Vec<u8>| BookRequest::decode_incoming(&frame).unwrap_err().code;
        assert_eq!(refused(BookRequest::encode_batch(&[])), RefusalCode::BadRequest, "empty");
        let too_many: Vec<BookRequest> = (0..=BOOK_BATCH_MAX as u64).map(status).collect();
        assert_eq!(refused(BookRequest::encode_batch(&too_many)), RefusalCode::BadRequest, "too many");
        let mut nested = proto::BookRequest::decode(frame.as_slice()).unwrap();
        if let Some(proto::book_request::Op::Batch(batch)) = &mut nested.op {
            batch.requests.push(proto::BookRequest::decode(frame.as_slice()).unwrap());
        }
        assert_eq!(refused(nested.encode_to_vec()), RefusalCode::BadRequest, "a batch inside a batch");
    }

    #[test]
    fn a_batch_of_answers_comes_back_in_order_or_as_the_refusal_of_the_whole() {
        let answers = vec![
            BookResponse::Refusal(Refusal::new(RefusalCode::SoldOut, "sold out")),
            BookResponse::Quote(Quote { currency: "EUR".into(), total_minor: 100, day_prices_minor: vec![100] }),
        ];
        assert_eq!(BookResponse::decode_batch(&BookResponse::encode_batch(&answers), 2), Ok(answers.clone()));
        let short = BookResponse::decode_batch(&BookResponse::encode_batch(&answers[..1]), 2).unwrap_err();
        assert_eq!(short.code, RefusalCode::BadResponse);
        // An owner older than batches sees no operation, and says so.
        let old = BookResponse::Refusal(Refusal::bad_request("no operation")).encode();
        assert_eq!(BookResponse::decode_batch(&old, 2).unwrap_err().code, RefusalCode::BadRequest);
        let hostile = proto::BookResponse {
            outcome: Some(proto::book_response::Outcome::Receipt(proto::SignedReceipt {
                receipt: vec![1],
                signature: vec![0; 64],
                proof: Some(proto::ReceiptProof { index: 0, count: 2, path: vec![vec![0; 31]] }),
            })),
        };
        let decoded = BookResponse::decode(&hostile.encode_to_vec());
        assert!(matches!(decoded, BookResponse::Refusal(r) if r.code == RefusalCode::BadResponse));
    }
}
