//! The owner's side of `/caravan/book/1`, without IO: what a request asks
//! of the ledger, and the answer to send back. The node's shell runs the
//! [`LedgerStep`] (submit a command, or read), calls [`answer`] or
//! [`read`], and [`sign`]s the answers of a frame together.

use caravan_ledger::{Command, Hold, HoldId, IdempotencyKey, Ledger, Rejection, Reply};
use caravan_model::Timestamp;
use caravan_records::Origin;
use ed25519_dalek::SigningKey;

use crate::protocol::{BookRequest, BookResponse, HoldRef, HoldSpec, Op, Quote};
use crate::receipt::{hold_token, token_matches, Receipt};
use crate::refusal::{Refusal, RefusalCode};

/// What the ledger must do for one request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LedgerStep {
    /// A write: hold, confirm or cancel.
    Submit(Command),
    /// A read: price a hold without making it.
    Quote(caravan_ledger::HoldRequest),
    /// A read: a hold as it stands.
    Status(HoldId),
}

/// Scopes an agency's idempotency key to the peer that sent it, so two
/// agencies never share a key (and one cannot replay another's answers).
fn scoped_key(peer: &str, key: &str) -> Result<IdempotencyKey, Refusal> {
    let peer_tag = blake3::hash(peer.as_bytes()).to_hex();
    IdempotencyKey::parse(&format!("p{}:{key}", &peer_tag[..16])).map_err(|r| Refusal::bad_request(r.to_string()))
}

/// The ledger step for `request` from `peer`, or a refusal before any.
/// `hold_ms_default` is the owner's hold time for requests that do not say.
pub fn plan(
    request: &BookRequest,
    peer: &str,
    signing_key: &SigningKey,
    hold_ms_default: i64,
) -> Result<LedgerStep, Refusal> {
    let owned = |hold: &HoldRef| {
        if token_matches(signing_key, hold.hold, peer, &hold.token) {
            Ok(hold.hold)
        } else {
            // The same answer as a hold that does not exist: nothing leaks.
            Err(Refusal::new(RefusalCode::UnknownHold, format!("no hold {}", hold.hold)))
        }
    };
    let key = || scoped_key(peer, &request.idempotency_key).map(Some);
    Ok(match &request.op {
        Op::Quote(spec) => LedgerStep::Quote(spec.request.clone()),
        Op::Hold(spec) => {
            let ttl_ms = match spec.hold_seconds {
                0 => hold_ms_default,
                seconds => seconds as i64 * 1000,
            };
            let (idempotency_key, request) = (key()?, spec.request.clone());
            let expected_total_minor = spec.expected_total_minor;
            LedgerStep::Submit(match spec.traveller.clone() {
                Some(traveller) => {
                    Command::HoldFor { idempotency_key, request, ttl_ms, expected_total_minor, traveller }
                }
                None => Command::Hold { idempotency_key, request, ttl_ms, expected_total_minor },
            })
        }
        Op::Confirm { hold, traveller } => LedgerStep::Submit(match traveller.clone() {
            Some(traveller) => Command::ConfirmFor { idempotency_key: key()?, hold: owned(hold)?, traveller },
            None => Command::Confirm { idempotency_key: key()?, hold: owned(hold)? },
        }),
        Op::Cancel(hold) => LedgerStep::Submit(Command::Cancel { idempotency_key: key()?, hold: owned(hold)? }),
        Op::Status(hold) => LedgerStep::Status(owned(hold)?),
    })
}

/// An answer before its receipt is signed: the receipts of one batch of
/// requests are signed together ([`sign`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Unsigned {
    Receipt(Box<Receipt>),
    Refusal(Refusal),
    Quote(Quote),
}

/// The receipt for a hold, as `peer` may see it.
fn receipt_of(origin: Origin, signing_key: &SigningKey, hold: &Hold, peer: &str, now: Timestamp) -> Unsigned {
    let spec = HoldSpec {
        request: hold.request.clone(),
        hold_seconds: ((hold.expires_at.ms() - hold.created_at.ms()) / 1000).clamp(0, u32::MAX as i64) as u32,
        expected_total_minor: Some(hold.total.amount_minor),
        traveller: None,
    };
    let token = hold_token(signing_key, hold.id, peer);
    Unsigned::Receipt(Box::new(Receipt::for_hold(origin, hold, token, spec, now)))
}

/// Signs answers: every receipt among them under one signature (a lone
/// receipt alone, as before batches).
pub fn sign(signing_key: &SigningKey, answers: Vec<Unsigned>) -> Vec<BookResponse> {
    let receipts: Vec<Receipt> = answers
        .iter()
        .filter_map(|answer| match answer {
            Unsigned::Receipt(receipt) => Some((**receipt).clone()),
            _ => None,
        })
        .collect();
    let mut signed = crate::receipt::sign_batch(&receipts, signing_key).into_iter();
    answers
        .into_iter()
        .map(|answer| match answer {
            Unsigned::Receipt(_) => BookResponse::Receipt(signed.next().expect("one signed receipt each")),
            Unsigned::Refusal(refusal) => BookResponse::Refusal(refusal),
            Unsigned::Quote(quote) => BookResponse::Quote(quote),
        })
        .collect()
}

/// The answer to a write, once the ledger replied, before it is signed.
pub fn answer(
    origin: Origin,
    signing_key: &SigningKey,
    reply: Result<Reply, Rejection>,
    peer: &str,
    now: Timestamp,
) -> Unsigned {
    match reply {
        Ok(Reply::Hold(hold)) => receipt_of(origin, signing_key, &hold, peer, now),
        Ok(other) => {
            Unsigned::Refusal(Refusal::new(RefusalCode::Internal, format!("unexpected ledger reply {other:?}")))
        }
        Err(rejection) => Unsigned::Refusal(Refusal::from(&rejection)),
    }
}

/// The answer to a read, from the ledger's committed state, before it is
/// signed.
pub fn read(
    origin: Origin,
    signing_key: &SigningKey,
    ledger: &Ledger,
    step: &LedgerStep,
    peer: &str,
    now: Timestamp,
) -> Unsigned {
    match step {
        LedgerStep::Quote(request) => match ledger.quote(request, now) {
            Ok((days, total)) => Unsigned::Quote(Quote {
                currency: total.currency.as_str().to_owned(),
                total_minor: total.amount_minor,
                day_prices_minor: days.iter().map(|m| m.amount_minor).collect(),
            }),
            Err(rejection) => Unsigned::Refusal(Refusal::from(&rejection)),
        },
        LedgerStep::Status(id) => match ledger.hold(*id) {
            Some(hold) => receipt_of(origin, signing_key, hold, peer, now),
            None => Unsigned::Refusal(Refusal::new(RefusalCode::UnknownHold, format!("no hold {id}"))),
        },
        LedgerStep::Submit(_) => Unsigned::Refusal(Refusal::new(RefusalCode::Internal, "a write is not a read")),
    }
}
