//! What goes into the ledger (commands) and what comes out (replies,
//! rejections). Commands and replies are the ledger log's contents, so they
//! are plain serializable values.

use caravan_model::{AriPatch, Contact, Date, Listing, ListingId, Money, Traveller};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::hold::{Hold, HoldId, HoldRequest};

/// A client's name for one attempt at a write. A retry with the same key
/// gets the first answer back; the same key with a different command is a
/// client bug and is refused.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const BYTES_MAX: usize = 128;

    pub fn parse(text: &str) -> Result<IdempotencyKey, Rejection> {
        if text.is_empty() || text.len() > Self::BYTES_MAX || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Rejection::InvalidRequest(format!(
                "idempotency key must be 1-{} printable ASCII characters",
                Self::BYTES_MAX
            )));
        }
        Ok(IdempotencyKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A request to change the ledger. The shell stamps `now` beside it; the
/// command itself carries everything else `apply` needs.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Command {
    CreateListing(Listing),
    /// Replaces a listing's description; its kind and currency stay.
    UpdateListing(Listing),
    /// Stops selling a listing for good. Bookings already made stay valid,
    /// and a live hold may still be confirmed until it expires: a granted
    /// hold is a promise, as a pending transfer is.
    WithdrawListing(ListingId),
    /// Changes the terms of the days `from..to` (end exclusive).
    SetAri {
        listing: ListingId,
        from: Date,
        to: Date,
        patch: AriPatch,
    },
    Hold {
        idempotency_key: Option<IdempotencyKey>,
        request: HoldRequest,
        ttl_ms: i64,
        /// The total the client was quoted; a different total is refused.
        expected_total_minor: Option<i64>,
    },
    /// Turns a live hold into a booking.
    Confirm {
        idempotency_key: Option<IdempotencyKey>,
        hold: HoldId,
    },
    /// Releases a live hold, or cancels a booking (with the policy's penalty).
    Cancel {
        idempotency_key: Option<IdempotencyKey>,
        hold: HoldId,
    },
    /// Releases holds whose time is up. `apply` does this before every
    /// command; this command exists so a timer can do it when nothing else
    /// happens.
    ExpireHolds,
    /// Sets how agencies reach this owner's nodes (published as its
    /// contact record). The same contact again changes nothing.
    SetContact(Contact),
    /// Emits the next records for everything changed since the last one.
    /// Publishing points are log entries, so replaying the log reproduces
    /// the very same records.
    Publish,
    /// A hold with the traveller's details, which the owner keeps beside
    /// the hold and never publishes. (A variant of its own, last, so logs
    /// written before it still decode.)
    HoldFor {
        idempotency_key: Option<IdempotencyKey>,
        request: HoldRequest,
        ttl_ms: i64,
        expected_total_minor: Option<i64>,
        traveller: Traveller,
    },
    /// Takes a listing off sale for now (`paused`), or puts it back. While
    /// paused, nothing of it is for sale and its published availability
    /// says so; bookings already made stay valid.
    SetPaused {
        listing: ListingId,
        paused: bool,
    },
    /// Confirms a hold with who travels (given after the hold, or changed
    /// since); kept beside the booking as [`Command::HoldFor`]'s are.
    ConfirmFor {
        idempotency_key: Option<IdempotencyKey>,
        hold: HoldId,
        traveller: Traveller,
    },
    /// Sets the replica group's heartbeat and election timeout for every
    /// member. The node checks the full rules (including its disk's append
    /// latency) before proposing; the ledger keeps the ratio.
    SetGroupTimers(GroupTimers),
    /// Several commands in one log entry, applied in order at one time,
    /// each with its own answer ([`Reply::Batch`]). Only commands that
    /// neither publish nor configure the group may share an entry
    /// ([`Command::batchable`]): a publishing point takes its records'
    /// version from its entry's index, which must be its own.
    Batch(Vec<Command>),
    /// A change to the group's people (accounts, tokens, managers): the
    /// group's directory applies it, beside the ledger, in log order.
    People(caravan_accounts::directory::Change),
    /// Writes an agency's booking (its saga after a step) if it still
    /// stands at the revision the write follows from.
    PutBooking(crate::agency::PutBooking),
    /// A hold (`Hold` or `HoldFor`) placed for `holder` (an agency, as
    /// the owner knows it), refused with `QuotaExceeded` while `holder`
    /// keeps `holds_max` live holds here: one agency cannot lock a
    /// hotel's inventory. A retry of a hold already answered gets its
    /// first answer, quota or not.
    HoldWithin {
        holder: String,
        holds_max: u32,
        hold: Box<Command>,
    },
}

/// The most commands one [`Command::Batch`] carries.
pub const BATCH_COMMANDS_MAX: usize = 256;

/// The replica group's timers as the group agreed on them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct GroupTimers {
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
}

impl Command {
    /// Whether two commands sent under one idempotency key ask for the same
    /// thing. Confirming a hold is one decision whether or not it names the
    /// traveller: an agency that retries a `Confirm` as a `ConfirmFor` (say,
    /// across an upgrade) gets the first answer, not a refusal.
    pub fn same_request(&self, other: &Command) -> bool {
        match (self, other) {
            (
                Command::Confirm { hold: a, .. } | Command::ConfirmFor { hold: a, .. },
                Command::Confirm { hold: b, .. } | Command::ConfirmFor { hold: b, .. },
            ) => a == b,
            _ => self == other,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateListing(_) => "create_listing",
            Command::UpdateListing(_) => "update_listing",
            Command::WithdrawListing(_) => "withdraw_listing",
            Command::SetAri { .. } => "set_ari",
            Command::Hold { .. } => "hold",
            Command::Confirm { .. } => "confirm",
            Command::Cancel { .. } => "cancel",
            Command::ExpireHolds => "expire_holds",
            Command::SetContact(_) => "set_contact",
            Command::Publish => "publish",
            Command::HoldFor { .. } => "hold",
            Command::SetPaused { .. } => "set_paused",
            Command::ConfirmFor { .. } => "confirm",
            Command::SetGroupTimers(_) => "set_group_timers",
            Command::Batch(_) => "batch",
            Command::People(_) => "people",
            Command::PutBooking(_) => "put_booking",
            Command::HoldWithin { .. } => "hold",
        }
    }

    /// How many commands this is: a batch's, or one.
    pub fn count(&self) -> usize {
        match self {
            Command::Batch(commands) => commands.len(),
            _ => 1,
        }
    }

    /// Whether the command may share a log entry with others: the booking
    /// commands that arrive by the thousand, small and independent.
    pub fn batchable(&self) -> bool {
        matches!(
            self,
            Command::Hold { .. }
                | Command::HoldFor { .. }
                | Command::Confirm { .. }
                | Command::ConfirmFor { .. }
                | Command::Cancel { .. }
                | Command::PutBooking(_)
                | Command::HoldWithin { .. }
        )
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Reply {
    Listing(ListingId),
    Ari {
        listing: ListingId,
        days: u32,
    },
    /// The hold as it stands after the command.
    Hold(Box<Hold>),
    Done,
    /// Each command's answer of a [`Command::Batch`], in its order.
    Batch(Vec<Result<Reply, Rejection>>),
    /// What a [`Command::People`] change did, or why it was refused.
    People(Result<caravan_accounts::directory::Answer, caravan_accounts::directory::Refusal>),
    /// A booking written, at its new revision.
    Booking {
        revision: u64,
    },
}

/// Why the ledger refused a command. Refusals change nothing.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("no listing {0}")]
    UnknownListing(ListingId),
    #[error("listing {0} already exists")]
    ListingExists(ListingId),
    #[error("listing {0} was withdrawn")]
    ListingWithdrawn(ListingId),
    #[error("listing {0} is off sale for now")]
    ListingPaused(ListingId),
    #[error("invalid listing: {0}")]
    InvalidListing(String),
    #[error("listing {listing} is not a {expected}")]
    WrongKind { listing: ListingId, expected: String },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("not for sale on {date}")]
    NotForSale { date: Date },
    #[error("sold out on {date}: {requested} requested, {available} available")]
    SoldOut { date: Date, requested: u32, available: u32 },
    #[error("restriction: {0}")]
    Restriction(String),
    #[error("no seat {0} on this service")]
    SeatUnknown(String),
    #[error("seat {0} is taken")]
    SeatTaken(String),
    #[error("price changed: quoted {expected_minor}, now {actual}")]
    PriceChanged { expected_minor: i64, actual: Money },
    #[error("no hold {0}")]
    UnknownHold(HoldId),
    #[error("hold {0} has expired")]
    HoldExpired(HoldId),
    #[error("hold {hold} is {state}")]
    HoldNotLive { hold: HoldId, state: String },
    #[error("{date} has {committed} held or booked, more than the new allotment")]
    BelowCommitted { date: Date, committed: u32 },
    #[error("idempotency key was used for a different request")]
    IdempotencyKeyReused,
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// A booking changed since the revision a write followed from
    /// (`None`: a new booking's id is taken).
    #[error("booking {booking} changed meanwhile (now at revision {revision:?})")]
    BookingChanged { booking: u64, revision: Option<u64> },
    /// An agency's quota at this owner is used up; says which and how much.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
}

impl Rejection {
    /// A stable machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownListing(_) => "unknown_listing",
            Rejection::ListingExists(_) => "listing_exists",
            Rejection::ListingWithdrawn(_) => "listing_withdrawn",
            Rejection::ListingPaused(_) => "listing_paused",
            Rejection::InvalidListing(_) => "invalid_listing",
            Rejection::WrongKind { .. } => "wrong_kind",
            Rejection::InvalidRequest(_) => "invalid_request",
            Rejection::NotForSale { .. } => "not_for_sale",
            Rejection::SoldOut { .. } => "sold_out",
            Rejection::Restriction(_) => "restriction",
            Rejection::SeatUnknown(_) => "seat_unknown",
            Rejection::SeatTaken(_) => "seat_taken",
            Rejection::PriceChanged { .. } => "price_changed",
            Rejection::UnknownHold(_) => "unknown_hold",
            Rejection::HoldExpired(_) => "hold_expired",
            Rejection::HoldNotLive { .. } => "hold_not_live",
            Rejection::BelowCommitted { .. } => "below_committed",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::LimitReached(_) => "limit_reached",
            Rejection::BookingChanged { .. } => "booking_changed",
            Rejection::QuotaExceeded(_) => "quota_exceeded",
        }
    }
}
