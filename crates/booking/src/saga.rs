//! The agency's saga for a booking of several parts at several owners:
//! hold every part, confirm all only when all are held, otherwise release
//! every hold; if a confirmation fails after others succeeded, cancel the
//! confirmed parts. Pure: the shell asks [`Saga::next_steps`], performs
//! them over the network, feeds the outcomes to [`Saga::apply`], and
//! persists the saga after every change.
//!
//! ```text
//!   Holding ──all held──► Confirming ──all confirmed──► Confirmed ──traveller cancels──► Cancelling ──► Cancelled
//!      │ a part refused        │ a confirmation failed
//!      └──────────────► Releasing ◄───┘  (cancel every held or confirmed part) ──► Failed
//!
//! A saga made to wait (`Saga::waiting`) stops in `Held` once every part
//! is held, until the traveller confirms (→ `Confirming`) or lets go, or
//! a hold expires (→ `Releasing`).
//! ```
//!
//! Every request carries an idempotency key derived from the saga id, the
//! part and the operation, so a step repeated after a crash, a timeout or
//! a lost answer gets the owner's first answer: an agency that restarts
//! mid-saga resumes it and still ends all-or-nothing. Holds expire at the
//! owner, so an owner that never answers again cannot keep anything locked.

use caravan_model::Timestamp;
use caravan_records::Origin;
use serde::{Deserialize, Serialize};

use crate::protocol::{BookRequest, HoldRef, HoldSpec, Op};
use crate::receipt::ReceiptState;
use crate::receipt::{Receipt, SignedReceipt};
use crate::refusal::Refusal;

/// Parts one booking may have.
pub const PARTS_MAX: usize = 8;

/// A booking of no parts, or of more than [`PARTS_MAX`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("a booking has 1-{PARTS_MAX} parts, not {0}")]
pub struct PartsOutOfRange(pub usize);
/// Hold requests an unreachable owner gets before the part is given up.
pub const HOLD_ATTEMPTS_MAX: u32 = 4;
/// First retry delay; doubles per attempt up to the max.
const RETRY_MS_MIN: i64 = 250;
const RETRY_MS_MAX: i64 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Phase {
    Holding,
    /// Every part held; waiting for the traveller to confirm.
    Held,
    Confirming,
    Releasing,
    Confirmed,
    Failed,
    Cancelling,
    Cancelled,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Holding => "holding",
            Phase::Held => "held",
            Phase::Confirming => "confirming",
            Phase::Releasing => "releasing",
            Phase::Confirmed => "confirmed",
            Phase::Failed => "failed",
            Phase::Cancelling => "cancelling",
            Phase::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Confirmed | Phase::Failed | Phase::Cancelled)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum PartStatus {
    /// No hold known yet.
    New,
    Held,
    Confirmed,
    /// The hold was cancelled or expired: nothing is held.
    Released,
    /// The owner refused the hold.
    Refused,
    /// The owner never answered; any hold it made expires by itself.
    Abandoned,
    /// The booking was cancelled (perhaps with a penalty).
    Cancelled,
}

impl PartStatus {
    pub fn name(self) -> &'static str {
        match self {
            PartStatus::New => "new",
            PartStatus::Held => "held",
            PartStatus::Confirmed => "confirmed",
            PartStatus::Released => "released",
            PartStatus::Refused => "refused",
            PartStatus::Abandoned => "abandoned",
            PartStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the owner may hold something for this part.
    fn holds_something(self) -> bool {
        matches!(self, PartStatus::Held | PartStatus::Confirmed)
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Part {
    pub owner: [u8; 32],
    pub spec: HoldSpec,
    pub status: PartStatus,
    pub hold: Option<HoldRef>,
    /// The owner's last signed word on this part.
    pub receipt: Option<SignedReceipt>,
    pub currency: Option<String>,
    pub total_minor: Option<i64>,
    pub penalty_minor: i64,
    /// Each day's price, from the owner's receipt.
    pub day_prices_minor: Vec<i64>,
    pub expires_at: Option<Timestamp>,
    /// Why the part failed, when it did.
    pub refusal: Option<Refusal>,
    pub attempts: u32,
    pub next_attempt: Timestamp,
}

impl Part {
    pub fn new(owner: Origin, spec: HoldSpec) -> Part {
        Part {
            owner: owner.0,
            spec,
            status: PartStatus::New,
            hold: None,
            receipt: None,
            currency: None,
            total_minor: None,
            penalty_minor: 0,
            day_prices_minor: Vec::new(),
            expires_at: None,
            refusal: None,
            attempts: 0,
            next_attempt: Timestamp(0),
        }
    }

    pub fn owner(&self) -> Origin {
        Origin(self.owner)
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Saga {
    pub id: u64,
    /// Random, so idempotency keys never repeat even if an agency's
    /// database (and its ids) start over.
    pub nonce: u64,
    pub phase: Phase,
    pub parts: Vec<Part>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Stop in `Held` and wait for the traveller instead of confirming at once.
    pub wait_to_confirm: bool,
}

/// One request to send: to the owner of `part`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Step {
    pub part: usize,
    pub request: BookRequest,
}

/// What came back for a step.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// A receipt that verified under the part's owner.
    Receipt(Box<Receipt>, SignedReceipt),
    Refused(Refusal),
    /// No answer (unreachable, timed out, or an answer that did not verify).
    Unreachable(String),
}

impl Saga {
    /// A saga over 1 to [`PARTS_MAX`] parts; any other number is refused.
    pub fn new(id: u64, nonce: u64, parts: Vec<Part>, now: Timestamp) -> Result<Saga, PartsOutOfRange> {
        if parts.is_empty() || parts.len() > PARTS_MAX {
            return Err(PartsOutOfRange(parts.len()));
        }
        Ok(Saga { id, nonce, phase: Phase::Holding, parts, created_at: now, updated_at: now, wait_to_confirm: false })
    }

    /// A saga that holds every part, then waits in `Held` for
    /// [`Saga::confirm`] (a traveller watching a countdown).
    pub fn waiting(id: u64, nonce: u64, parts: Vec<Part>, now: Timestamp) -> Result<Saga, PartsOutOfRange> {
        Ok(Saga { wait_to_confirm: true, ..Saga::new(id, nonce, parts, now)? })
    }

    /// The traveller confirms a held booking. False unless it is `Held`.
    pub fn confirm(&mut self, now: Timestamp) -> bool {
        self.advance(now);
        if self.phase != Phase::Held {
            return false;
        }
        self.phase = Phase::Confirming;
        self.updated_at = now;
        true
    }

    /// Who travels, given while the booking is held: every owner gets it
    /// with the confirmation. False unless it is `Held` (a hold still
    /// being placed must be sent again exactly as it was).
    pub fn name_traveller(&mut self, traveller: &crate::agency::Traveller, now: Timestamp) -> bool {
        if self.phase != Phase::Held {
            return false;
        }
        for part in &mut self.parts {
            part.spec.traveller = Some(traveller.clone());
        }
        self.updated_at = now;
        true
    }

    /// The traveller lets a held booking go. False unless it is `Held`.
    pub fn release(&mut self, now: Timestamp) -> bool {
        if self.phase != Phase::Held {
            return false;
        }
        self.phase = Phase::Releasing;
        self.updated_at = now;
        true
    }

    /// When the first hold of a held booking expires.
    pub fn held_until(&self) -> Option<Timestamp> {
        self.parts.iter().filter(|p| p.status == PartStatus::Held).filter_map(|p| p.expires_at).min()
    }

    fn key(&self, part: usize, op: &str) -> String {
        format!("saga-{:016x}-{part}-{op}", self.nonce)
    }

    /// The requests due at `now`.
    pub fn next_steps(&self, now: Timestamp) -> Vec<Step> {
        let mut steps = Vec::new();
        for (idx, part) in self.parts.iter().enumerate() {
            if part.next_attempt > now {
                continue;
            }
            let op = match (self.phase, part.status, part.hold) {
                (Phase::Holding, PartStatus::New, _) => Op::Hold(part.spec.clone()),
                (Phase::Confirming, PartStatus::Held, Some(hold)) => {
                    Op::Confirm { hold, traveller: part.spec.traveller.clone() }
                }
                (Phase::Releasing | Phase::Cancelling, PartStatus::Held | PartStatus::Confirmed, Some(hold)) => {
                    Op::Cancel(hold)
                }
                _ => continue,
            };
            let key = self.key(idx, op.name());
            steps.push(Step { part: idx, request: BookRequest { idempotency_key: key, op } });
        }
        steps
    }

    /// When the saga next has something to do by itself (a retry, a hold
    /// that expires), if it is waiting.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        if self.phase.is_terminal() {
            return None;
        }
        let retries = self.parts.iter().filter(|p| p.attempts > 0).map(|p| p.next_attempt);
        let expiries = self.parts.iter().filter(|p| p.status == PartStatus::Held).filter_map(|p| p.expires_at);
        retries.chain(expiries).min()
    }

    /// Takes the outcome of a step for `part`, then moves the saga on.
    pub fn apply(&mut self, part_idx: usize, op: &Op, outcome: Outcome, now: Timestamp) {
        self.updated_at = now;
        let phase = self.phase;
        let part = &mut self.parts[part_idx];
        match outcome {
            Outcome::Receipt(receipt, signed) => {
                part.attempts = 0;
                part.next_attempt = Timestamp(0);
                part.hold = Some(receipt.hold);
                part.currency = Some(receipt.currency.clone());
                part.total_minor = Some(receipt.total_minor);
                part.penalty_minor = receipt.penalty_minor;
                part.day_prices_minor = receipt.day_prices_minor.clone();
                part.expires_at = Some(receipt.expires_at);
                part.receipt = Some(signed);
                part.status = match receipt.state {
                    ReceiptState::Held => PartStatus::Held,
                    ReceiptState::Confirmed => PartStatus::Confirmed,
                    ReceiptState::BookingCancelled => PartStatus::Cancelled,
                    ReceiptState::Cancelled | ReceiptState::Expired => PartStatus::Released,
                };
            }
            Outcome::Refused(refusal) => {
                part.attempts = 0;
                part.next_attempt = Timestamp(0);
                match op {
                    Op::Hold(_) => part.status = PartStatus::Refused,
                    Op::Confirm { .. } => part.status = PartStatus::Released,
                    Op::Cancel(_) if refusal.code.hold_is_gone() => {
                        part.status = if part.status == PartStatus::Confirmed && phase == Phase::Cancelling {
                            PartStatus::Cancelled
                        } else {
                            PartStatus::Released
                        }
                    }
                    // Anything else on a cancel: try again later.
                    _ => part.retry_later(now),
                }
                part.refusal = Some(refusal);
            }
            Outcome::Unreachable(why) => {
                part.retry_later(now);
                if matches!(op, Op::Hold(_)) && part.attempts >= HOLD_ATTEMPTS_MAX {
                    part.status = PartStatus::Abandoned;
                    part.refusal = Some(Refusal::unreachable(why));
                }
            }
        }
        self.advance(now);
    }

    /// The traveller cancels a confirmed booking: every part is cancelled.
    /// Returns false when the saga is not confirmed.
    pub fn request_cancel(&mut self, now: Timestamp) -> bool {
        if self.phase != Phase::Confirmed {
            return false;
        }
        self.phase = Phase::Cancelling;
        self.updated_at = now;
        true
    }

    /// Moves to the next phase when the current one is done. Also lets go
    /// of held parts whose hold has expired: the owner can no longer
    /// confirm them, whether or not it is reachable.
    pub fn advance(&mut self, now: Timestamp) {
        for part in &mut self.parts {
            if part.status == PartStatus::Held && part.expires_at.is_some_and(|at| at <= now) {
                let confirming = self.phase == Phase::Confirming;
                // While confirming, a confirmation may be in flight: only
                // the owner's answer (with the same key) can tell.
                if !confirming {
                    part.status = PartStatus::Released;
                }
            }
        }
        let all = |want: PartStatus| self.parts.iter().all(|p| p.status == want);
        let any_failed = self
            .parts
            .iter()
            .any(|p| matches!(p.status, PartStatus::Refused | PartStatus::Abandoned | PartStatus::Released));
        let none_pending = self.parts.iter().all(|p| p.status != PartStatus::New);
        let none_holding = self.parts.iter().all(|p| !p.status.holds_something());
        self.phase = match self.phase {
            Phase::Holding if all(PartStatus::Held) && self.wait_to_confirm => Phase::Held,
            Phase::Holding if all(PartStatus::Held) => Phase::Confirming,
            // A hold ran out while the traveller was deciding.
            Phase::Held if any_failed => Phase::Releasing,
            Phase::Holding if any_failed && none_pending => Phase::Releasing,
            Phase::Confirming if all(PartStatus::Confirmed) => Phase::Confirmed,
            Phase::Confirming if any_failed && !self.parts.iter().any(|p| p.status == PartStatus::Held) => {
                Phase::Releasing
            }
            Phase::Releasing if none_holding => Phase::Failed,
            Phase::Cancelling if none_holding => Phase::Cancelled,
            phase => phase,
        };
        // Entering `Releasing` with nothing held anywhere ends at once.
        if self.phase == Phase::Releasing && none_holding {
            self.phase = Phase::Failed;
        }
    }

    /// The total per currency of the parts' prices.
    pub fn totals(&self) -> Vec<(String, i64)> {
        let mut totals: Vec<(String, i64)> = Vec::new();
        for part in &self.parts {
            let (Some(currency), Some(total)) = (&part.currency, part.total_minor) else { continue };
            match totals.iter_mut().find(|(c, _)| c == currency) {
                Some((_, sum)) => *sum = sum.saturating_add(total),
                None => totals.push((currency.clone(), total)),
            }
        }
        totals
    }
}

impl Part {
    fn retry_later(&mut self, now: Timestamp) {
        self.attempts += 1;
        let delay = (RETRY_MS_MIN << self.attempts.min(16)).min(RETRY_MS_MAX);
        self.next_attempt = now.saturating_add_ms(delay);
    }
}

#[cfg(test)]
mod tests;
