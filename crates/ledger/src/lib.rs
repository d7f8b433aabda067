//! The owner's ledger: the single authority over its listings, their
//! allotments and every hold and booking on them.
//!
//! [`Ledger::apply`] is a deterministic state machine with the semantics of
//! TigerBeetle's pending transfers:
//!
//! - for every day of every listing, `held + booked <= allotment`;
//! - a hold resolves exactly once: confirmed, cancelled or expired;
//! - a hold is never released by time before `expires_at`, and never
//!   confirmed at or after it;
//! - a retried command with the same idempotency key gets the first answer,
//!   and the same key with a different command is refused.
//!
//! `apply` never reads a clock: the shell stamps `now` (non-decreasing) into
//! every call, so the same log of `(command, now)` gives the same state, the
//! same replies and the same publications on every replay and every replica.

pub mod agency;
mod command;
mod duty;
mod hold;
mod publish;

pub use command::{Command, GroupTimers, IdempotencyKey, Rejection, Reply, BATCH_COMMANDS_MAX};
pub use duty::{next_duty, Duty, DutyConfig};
pub use hold::{Hold, HoldId, HoldRequest, HoldState};
pub use publish::{Publication, PUBLISHED_LISTINGS_MAX, PUBLISHED_RUNS_MAX};

use caravan_model::limits::{HORIZON_DAYS_MAX, PRICE_MINOR_MAX, STAY_NIGHTS_MAX};
use caravan_model::{AriDay, AriPatch, Contact, Date, Listing, ListingDetails, ListingId, Money, Timestamp, Traveller};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Listings one owner may have; a chain beyond this runs several origins.
pub const LISTINGS_MAX: usize = 100_000;
/// Live (unresolved) holds at once.
pub const HOLDS_LIVE_MAX: usize = 1_000_000;
/// Shortest hold a client may ask for.
pub const HOLD_TTL_MS_MIN: i64 = 10_000;
/// Longest hold a client may ask for.
pub const HOLD_TTL_MS_MAX: i64 = 60 * 60 * 1000;
/// The hold time when the client does not say.
pub const HOLD_TTL_MS_DEFAULT: i64 = 15 * 60 * 1000;
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// How many idempotency keys are remembered at most; past it the oldest go
/// first, before their TTL. At ~300 bytes a key, 1 M keys is ~300 MB.
pub const IDEMPOTENCY_KEYS_MAX: usize = 1_000_000;
/// Days before today that may still be booked or changed (time zones).
pub const DAYS_BEFORE_TODAY_MAX: i32 = 1;

/// One day of one listing, as the owner sees it.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct DayState {
    /// The owner's terms; `terms.available` is the allotment.
    pub terms: AriDay,
    /// Units or seats in live holds.
    pub held: u32,
    /// Units or seats in confirmed bookings.
    pub booked: u32,
    /// Named seats taken (held or booked), with the hold that has each.
    pub seats_taken: BTreeMap<String, HoldId>,
}

impl DayState {
    /// What is left for sale.
    pub fn free(&self) -> u32 {
        self.terms.available - self.held - self.booked
    }

    /// The terms as published: what is left, not the allotment.
    pub fn public_terms(&self) -> AriDay {
        AriDay { available: self.free(), ..self.terms }
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ListingState {
    pub listing: Listing,
    pub withdrawn: bool,
    /// Taken off sale by its provider for now ([`Command::SetPaused`]).
    pub paused: bool,
    pub days: BTreeMap<Date, DayState>,
}

/// What one `apply` did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Applied {
    pub reply: Result<Reply, Rejection>,
    /// Holds released because their time was up, before the command ran.
    pub expired: Vec<HoldId>,
    /// What to sign and publish (only for [`Command::Publish`]).
    pub publications: Vec<Publication>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
struct Remembered {
    command: Command,
    reply: Result<Reply, Rejection>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
struct Unpublished {
    listing: bool,
    ari: bool,
}

#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    listings: BTreeMap<ListingId, ListingState>,
    holds: BTreeMap<HoldId, Hold>,
    /// Live holds by expiry, so expiring is O(expired).
    expiry: BTreeSet<(Timestamp, HoldId)>,
    idempotency: BTreeMap<IdempotencyKey, Remembered>,
    /// Keys in the order (and so the time) they were first seen.
    idempotency_order: VecDeque<(Timestamp, IdempotencyKey)>,
    unpublished: BTreeMap<ListingId, Unpublished>,
    /// The last listing published, where the next publishing point resumes.
    publish_cursor: Option<ListingId>,
    next_hold: u64,
    last_now: Timestamp,
    /// How agencies reach this owner, and whether that changed since the
    /// last publishing point.
    contact: Option<Contact>,
    contact_unpublished: bool,
    /// Who travels, for holds whose agency said (never published).
    travellers: BTreeMap<HoldId, Traveller>,
    /// The replica group's timers, once an admin set them.
    group_timers: Option<GroupTimers>,
    /// The agency's bookings. Snapshots carry them beside the ledger, so
    /// a snapshot from before they were replicated still reads.
    #[serde(skip)]
    agency: agency::AgencyBook,
    /// The holds placed for each agency under a quota; some may have
    /// resolved since (pruned when the agency holds again). Carried by
    /// snapshots beside the ledger, as the agency's bookings are.
    #[serde(skip)]
    holders: Holders,
}

/// Holds placed for each holder under a quota ([`Command::HoldWithin`]).
pub type Holders = BTreeMap<String, BTreeSet<HoldId>>;

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Applies one command at `now`. `now` never goes backwards.
    pub fn apply(&mut self, command: &Command, now: Timestamp) -> Applied {
        assert!(now >= self.last_now, "time went backwards: {now:?} < {:?}", self.last_now);
        self.last_now = now;
        let expired = self.expire_due(now);
        self.forget_old_keys(now);
        let mut publications = Vec::new();
        let reply = match command {
            Command::Batch(commands) => self.apply_batch(commands, now),
            command => self.execute(command, now, &mut publications),
        };
        Applied { reply, expired, publications }
    }

    /// Runs each command of a batch in turn, at one time; a batch with a
    /// command that may not share an entry changes nothing.
    fn apply_batch(&mut self, commands: &[Command], now: Timestamp) -> Result<Reply, Rejection> {
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(Rejection::InvalidRequest(format!("a batch carries at most {BATCH_COMMANDS_MAX} commands")));
        }
        if let Some(alone) = commands.iter().find(|c| !c.batchable()) {
            return Err(Rejection::InvalidRequest(format!("{} cannot be part of a batch", alone.name())));
        }
        let mut no_publications = Vec::new();
        Ok(Reply::Batch(commands.iter().map(|command| self.execute(command, now, &mut no_publications)).collect()))
    }

    /// Runs one command that is not a batch.
    fn execute(
        &mut self,
        command: &Command,
        now: Timestamp,
        publications: &mut Vec<Publication>,
    ) -> Result<Reply, Rejection> {
        match command {
            Command::CreateListing(listing) => self.create_listing(listing),
            Command::UpdateListing(listing) => self.update_listing(listing),
            Command::WithdrawListing(id) => self.withdraw_listing(id),
            Command::SetAri { listing, from, to, patch } => self.set_ari(listing, *from, *to, patch, now),
            Command::Hold { idempotency_key, request, ttl_ms, expected_total_minor } => {
                self.idempotent(idempotency_key, command, now, |ledger| {
                    ledger.place_hold(request, *ttl_ms, *expected_total_minor, now)
                })
            }
            Command::Confirm { idempotency_key, hold } => {
                self.idempotent(idempotency_key, command, now, |ledger| ledger.confirm(*hold, now))
            }
            Command::Cancel { idempotency_key, hold } => {
                self.idempotent(idempotency_key, command, now, |ledger| ledger.cancel(*hold, now))
            }
            Command::ExpireHolds => Ok(Reply::Done),
            Command::SetContact(contact) => self.set_contact(contact),
            Command::HoldFor { idempotency_key, request, ttl_ms, expected_total_minor, traveller } => {
                self.idempotent(idempotency_key, command, now, |ledger| {
                    traveller.validate().map_err(Rejection::InvalidRequest)?;
                    let reply = ledger.place_hold(request, *ttl_ms, *expected_total_minor, now)?;
                    if let Reply::Hold(hold) = &reply {
                        ledger.travellers.insert(hold.id, traveller.clone());
                    }
                    Ok(reply)
                })
            }
            Command::SetPaused { listing, paused } => self.set_paused(listing, *paused),
            Command::ConfirmFor { idempotency_key, hold, traveller } => {
                self.idempotent(idempotency_key, command, now, |ledger| {
                    traveller.validate().map_err(Rejection::InvalidRequest)?;
                    let reply = ledger.confirm(*hold, now)?;
                    ledger.travellers.insert(*hold, traveller.clone());
                    Ok(reply)
                })
            }
            Command::SetGroupTimers(timers) => self.set_group_timers(*timers),
            Command::Publish => {
                *publications = self.take_publications(now);
                Ok(Reply::Done)
            }
            Command::Batch(commands) => self.apply_batch(commands, now),
            Command::PutBooking(put) => self.agency.put(put).map(|revision| Reply::Booking { revision }),
            Command::People(_) => {
                Err(Rejection::InvalidRequest("people changes go to the group's directory, not the ledger".into()))
            }
            Command::HoldWithin { holder, holds_max, hold } => self.hold_within(holder, *holds_max, hold, now),
        }
    }

    /// A hold for `holder`, unless it keeps `holds_max` live ones already.
    fn hold_within(
        &mut self,
        holder: &str,
        holds_max: u32,
        hold: &Command,
        now: Timestamp,
    ) -> Result<Reply, Rejection> {
        let key = match hold {
            Command::Hold { idempotency_key, .. } | Command::HoldFor { idempotency_key, .. } => idempotency_key,
            other => return Err(Rejection::InvalidRequest(format!("{} is not a hold", other.name()))),
        };
        let answered = key.as_ref().is_some_and(|key| self.idempotency.contains_key(key));
        if !answered {
            let holds = &self.holds;
            let held = self.holders.entry(holder.to_owned()).or_default();
            held.retain(|id| holds.get(id).is_some_and(|h| h.state == HoldState::Held));
            if held.len() >= holds_max as usize {
                return Err(Rejection::QuotaExceeded(format!("{holds_max} holds in flight at once (holds_in_flight)")));
            }
        }
        let reply = self.execute(hold, now, &mut Vec::new())?;
        if let Reply::Hold(placed) = &reply {
            if !answered {
                self.holders.entry(holder.to_owned()).or_default().insert(placed.id);
            }
        }
        Ok(reply)
    }

    pub fn listing(&self, id: &ListingId) -> Option<&ListingState> {
        self.listings.get(id)
    }

    pub fn listings(&self) -> impl Iterator<Item = &ListingState> {
        self.listings.values()
    }

    pub fn hold(&self, id: HoldId) -> Option<&Hold> {
        self.holds.get(&id)
    }

    pub fn holds(&self) -> impl DoubleEndedIterator<Item = &Hold> {
        self.holds.values()
    }

    /// When the next live hold expires.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// Whether a [`Command::Publish`] would publish anything.
    pub fn has_unpublished(&self) -> bool {
        !self.unpublished.is_empty() || self.contact_unpublished
    }

    /// Who travels on `hold`, if the agency said.
    pub fn traveller(&self, hold: HoldId) -> Option<&Traveller> {
        self.travellers.get(&hold)
    }

    /// How agencies reach this owner, as last set.
    pub fn contact(&self) -> Option<&Contact> {
        self.contact.as_ref()
    }

    /// The replica group's timers, once set through the log.
    pub fn group_timers(&self) -> Option<GroupTimers> {
        self.group_timers
    }

    /// The clock of the last command.
    /// The agency's bookings.
    pub fn agency(&self) -> &agency::AgencyBook {
        &self.agency
    }

    /// Puts back the agency's bookings a snapshot carried beside the ledger.
    pub fn restore_agency(&mut self, book: agency::AgencyBook) {
        self.agency = book;
    }

    /// The holds placed for each agency under a quota.
    pub fn holders(&self) -> &Holders {
        &self.holders
    }

    /// Puts back the holders a snapshot carried beside the ledger.
    pub fn restore_holders(&mut self, holders: Holders) {
        self.holders = holders;
    }

    pub fn last_now(&self) -> Timestamp {
        self.last_now
    }

    /// Checks every invariant; panics with the broken one. For tests and
    /// for the shell's pair assertions after loading state.
    pub fn check_invariants(&self) {
        self.agency.check_invariants();
        for (holder, held) in &self.holders {
            assert!(held.iter().all(|id| self.holds.contains_key(id)), "{holder} holds a hold that never was");
        }
        let mut held: BTreeMap<(&ListingId, Date), u32> = BTreeMap::new();
        let mut booked: BTreeMap<(&ListingId, Date), u32> = BTreeMap::new();
        for hold in self.holds.values() {
            let counter = match hold.state {
                HoldState::Held => &mut held,
                HoldState::Confirmed { .. } => &mut booked,
                _ => continue,
            };
            for day in hold.request.days() {
                *counter.entry((hold.request.listing(), day)).or_default() += hold.request.quantity();
            }
            if hold.state == HoldState::Held {
                assert!(self.expiry.contains(&(hold.expires_at, hold.id)), "live hold {:?} not in expiry", hold.id);
                assert!(hold.expires_at > self.last_now, "live hold {:?} past its expiry", hold.id);
            }
        }
        let live = self.holds.values().filter(|h| h.state == HoldState::Held).count();
        assert_eq!(live, self.expiry.len(), "expiry queue out of step");
        for (id, state) in &self.listings {
            let capacity = state.listing.capacity();
            for (date, day) in &state.days {
                let total = day.held as u64 + day.booked as u64;
                assert!(total <= day.terms.available as u64, "{id} {date}: oversold {day:?}");
                assert!(day.terms.available <= capacity, "{id} {date}: allotment above capacity");
                assert_eq!(day.held, held.get(&(id, *date)).copied().unwrap_or(0), "{id} {date}: held");
                assert_eq!(day.booked, booked.get(&(id, *date)).copied().unwrap_or(0), "{id} {date}: booked");
                for hold_id in day.seats_taken.values() {
                    let state = self.holds[hold_id].state;
                    assert!(matches!(state, HoldState::Held | HoldState::Confirmed { .. }), "{id} {date}: stale seat");
                }
            }
        }
    }

    fn create_listing(&mut self, listing: &Listing) -> Result<Reply, Rejection> {
        listing.validate().map_err(|e| Rejection::InvalidListing(e.to_string()))?;
        if self.listings.contains_key(&listing.id) {
            return Err(Rejection::ListingExists(listing.id.clone()));
        }
        if self.listings.len() >= LISTINGS_MAX {
            return Err(Rejection::LimitReached(format!("at most {LISTINGS_MAX} listings per owner")));
        }
        let state = ListingState { listing: listing.clone(), withdrawn: false, paused: false, days: BTreeMap::new() };
        self.listings.insert(listing.id.clone(), state);
        self.mark_unpublished(&listing.id, Unpublished { listing: true, ari: true });
        Ok(Reply::Listing(listing.id.clone()))
    }

    fn update_listing(&mut self, listing: &Listing) -> Result<Reply, Rejection> {
        listing.validate().map_err(|e| Rejection::InvalidListing(e.to_string()))?;
        let state = self.live_listing(&listing.id)?;
        let old = &state.listing;
        let same_kind = matches!(
            (&old.details, &listing.details),
            (ListingDetails::Stay(_), ListingDetails::Stay(_)) | (ListingDetails::Trip(_), ListingDetails::Trip(_))
        );
        if !same_kind {
            return Err(Rejection::InvalidRequest("a stay cannot become a trip or back; create a new listing".into()));
        }
        if old.currency != listing.currency {
            return Err(Rejection::InvalidRequest("the currency cannot change; create a new listing".into()));
        }
        let capacity = listing.capacity();
        if let Some((date, day)) = state.days.iter().find(|(_, day)| day.terms.available > capacity) {
            return Err(Rejection::InvalidRequest(format!(
                "{date} has an allotment of {}, above the new capacity {capacity}; lower it first",
                day.terms.available
            )));
        }
        if let Some(trip) = listing.trip() {
            let taken = state.days.values().flat_map(|day| day.seats_taken.keys());
            if let Some(seat) = taken.into_iter().find(|seat| !trip.seat_map.contains(seat)) {
                return Err(Rejection::InvalidRequest(format!(
                    "seat {seat} is held or booked; keep it in the seat map"
                )));
            }
        }
        let id = listing.id.clone();
        self.listings.get_mut(&id).expect("checked live").listing = listing.clone();
        self.mark_unpublished(&id, Unpublished { listing: true, ari: false });
        Ok(Reply::Listing(id))
    }

    fn set_contact(&mut self, contact: &Contact) -> Result<Reply, Rejection> {
        contact.validate().map_err(Rejection::InvalidRequest)?;
        if self.contact.as_ref() != Some(contact) {
            self.contact = Some(contact.clone());
            self.contact_unpublished = true;
        }
        Ok(Reply::Done)
    }

    fn withdraw_listing(&mut self, id: &ListingId) -> Result<Reply, Rejection> {
        self.live_listing(id)?;
        self.listings.get_mut(id).expect("checked live").withdrawn = true;
        self.mark_unpublished(id, Unpublished { listing: true, ari: true });
        Ok(Reply::Listing(id.clone()))
    }

    fn set_group_timers(&mut self, timers: GroupTimers) -> Result<Reply, Rejection> {
        if timers.heartbeat_ms == 0 || timers.election_timeout_ms < timers.heartbeat_ms.saturating_mul(10) {
            return Err(Rejection::InvalidRequest(
                "the election timeout must be at least 10 × a non-zero heartbeat interval".into(),
            ));
        }
        self.group_timers = Some(timers);
        Ok(Reply::Done)
    }

    fn set_paused(&mut self, id: &ListingId, paused: bool) -> Result<Reply, Rejection> {
        let state = self.live_listing(id)?;
        if state.paused != paused {
            self.listings.get_mut(id).expect("checked live").paused = paused;
            self.mark_unpublished(id, Unpublished { listing: false, ari: true });
        }
        Ok(Reply::Listing(id.clone()))
    }

    fn set_ari(
        &mut self,
        id: &ListingId,
        from: Date,
        to: Date,
        patch: &AriPatch,
        now: Timestamp,
    ) -> Result<Reply, Rejection> {
        let state = self.live_listing(id)?;
        check_dates_bookable(from, to, now)?;
        let capacity = state.listing.capacity();
        if patch.available.is_some_and(|a| a > capacity) {
            return Err(Rejection::InvalidRequest(format!("available above the listing's capacity {capacity}")));
        }
        if patch.price_minor.is_some_and(|p| !(0..=PRICE_MINOR_MAX).contains(&p)) {
            return Err(Rejection::InvalidRequest(format!("price must be 0-{PRICE_MINOR_MAX} minor units")));
        }
        let stay_only = [
            patch.min_stay.is_some(),
            patch.max_stay.is_some(),
            patch.closed_to_arrival.is_some(),
            patch.closed_to_departure.is_some(),
        ];
        if state.listing.trip().is_some() && stay_only.iter().any(|&set| set) {
            return Err(Rejection::InvalidRequest(
                "min/max stay and closed to arrival/departure apply to stays only".into(),
            ));
        }
        // Check every day before changing any: a command changes all or nothing.
        let mut changed = Vec::new();
        let mut date = from;
        while date < to {
            let mut day = match state.days.get(&date) {
                Some(day) => day.clone(),
                None if patch.opens_new_day() => DayState::default(),
                None => {
                    return Err(Rejection::InvalidRequest(format!(
                        "{date} has no terms yet: set both available and price_minor"
                    )))
                }
            };
            patch.apply(&mut day.terms);
            let committed = day.held + day.booked;
            if committed > day.terms.available {
                return Err(Rejection::BelowCommitted { date, committed });
            }
            if day.terms.max_stay != 0 && day.terms.max_stay < day.terms.min_stay {
                return Err(Rejection::InvalidRequest(format!("{date}: max_stay below min_stay")));
            }
            changed.push((date, day));
            date = date.add_days(1);
        }
        let days = changed.len() as u32;
        let state = self.listings.get_mut(id).expect("checked live");
        state.days.extend(changed);
        self.mark_unpublished(id, Unpublished { listing: false, ari: true });
        Ok(Reply::Ari { listing: id.clone(), days })
    }

    /// What a hold for `request` would cost at `now` (each day's price and
    /// the total), or why it would be refused. Changes nothing.
    pub fn quote(&self, request: &HoldRequest, now: Timestamp) -> Result<(Vec<Money>, Money), Rejection> {
        let state = self.live_listing(request.listing())?;
        if state.paused {
            return Err(Rejection::ListingPaused(request.listing().clone()));
        }
        let day_prices = match request {
            HoldRequest::Stay { check_in, check_out, units, guests, .. } => {
                check_stay(state, *check_in, *check_out, *units, *guests, now)?
            }
            HoldRequest::Trip { departure, seats, seat_numbers, .. } => {
                check_trip(state, *departure, *seats, seat_numbers, now)?
            }
        };
        let total = day_prices
            .iter()
            .try_fold(Money::zero(state.listing.currency), |sum, price| sum.checked_add(*price))
            .ok_or_else(|| Rejection::InvalidRequest("total price overflows".into()))?;
        Ok((day_prices, total))
    }

    fn place_hold(
        &mut self,
        request: &HoldRequest,
        ttl_ms: i64,
        expected_total_minor: Option<i64>,
        now: Timestamp,
    ) -> Result<Reply, Rejection> {
        if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&ttl_ms) {
            return Err(Rejection::InvalidRequest(format!("hold time must be {HOLD_TTL_MS_MIN}-{HOLD_TTL_MS_MAX} ms")));
        }
        if self.expiry.len() >= HOLDS_LIVE_MAX {
            return Err(Rejection::LimitReached(format!("{HOLDS_LIVE_MAX} live holds")));
        }
        let (day_prices, total) = self.quote(request, now)?;
        if let Some(expected) = expected_total_minor {
            if expected != total.amount_minor {
                return Err(Rejection::PriceChanged { expected_minor: expected, actual: total });
            }
        }

        self.next_hold += 1;
        let id = HoldId(self.next_hold);
        let state = self.listings.get_mut(request.listing()).expect("checked live");
        for date in request.days() {
            let day = state.days.get_mut(&date).expect("checked for sale");
            day.held += request.quantity();
            if let HoldRequest::Trip { seat_numbers, .. } = request {
                day.seats_taken.extend(seat_numbers.iter().map(|seat| (seat.clone(), id)));
            }
        }
        let hold = Hold {
            id,
            request: request.clone(),
            day_prices,
            total,
            created_at: now,
            expires_at: now.saturating_add_ms(ttl_ms),
            state: HoldState::Held,
        };
        self.expiry.insert((hold.expires_at, id));
        self.mark_unpublished(request.listing(), Unpublished { listing: false, ari: true });
        self.holds.insert(id, hold.clone());
        Ok(Reply::Hold(Box::new(hold)))
    }

    fn confirm(&mut self, id: HoldId, now: Timestamp) -> Result<Reply, Rejection> {
        let hold = self.holds.get(&id).ok_or(Rejection::UnknownHold(id))?;
        match hold.state {
            HoldState::Held => {}
            HoldState::Expired { .. } => return Err(Rejection::HoldExpired(id)),
            state => return Err(Rejection::HoldNotLive { hold: id, state: state.name().into() }),
        }
        // `expire_due` ran first, so a live hold is before its expiry.
        assert!(now < hold.expires_at);
        let request = hold.request.clone();
        self.move_quantity(&request, |day, n| {
            day.held -= n;
            day.booked += n;
        });
        let hold = self.holds.get_mut(&id).expect("present");
        self.expiry.remove(&(hold.expires_at, id));
        hold.state = HoldState::Confirmed { at: now };
        Ok(Reply::Hold(Box::new(hold.clone())))
    }

    fn cancel(&mut self, id: HoldId, now: Timestamp) -> Result<Reply, Rejection> {
        let hold = self.holds.get(&id).ok_or(Rejection::UnknownHold(id))?;
        let new_state = match hold.state {
            HoldState::Held => HoldState::Cancelled { at: now },
            HoldState::Confirmed { .. } => {
                let listing = &self.listings[hold.request.listing()].listing;
                let ms_before_start = listing.start_on(hold.request.start()).ms() - now.ms();
                let penalty = listing.cancellation.penalty(hold.total, &hold.day_prices, ms_before_start);
                HoldState::BookingCancelled { at: now, penalty }
            }
            HoldState::Expired { .. } => return Err(Rejection::HoldExpired(id)),
            state => return Err(Rejection::HoldNotLive { hold: id, state: state.name().into() }),
        };
        self.release(id, new_state);
        Ok(Reply::Hold(Box::new(self.holds[&id].clone())))
    }

    /// Releases what a live hold or a booking occupies and moves it to `new_state`.
    fn release(&mut self, id: HoldId, new_state: HoldState) {
        let hold = &self.holds[&id];
        let was_booking = match hold.state {
            HoldState::Held => false,
            HoldState::Confirmed { .. } => true,
            other => unreachable!("release of a resolved hold {id:?} in {other:?}"),
        };
        let request = hold.request.clone();
        let expires_at = hold.expires_at;
        self.move_quantity(&request, |day, n| {
            if was_booking {
                day.booked -= n;
            } else {
                day.held -= n;
            }
            day.seats_taken.retain(|_, holder| *holder != id);
        });
        if !was_booking {
            self.expiry.remove(&(expires_at, id));
        }
        self.holds.get_mut(&id).expect("present").state = new_state;
        self.mark_unpublished(request.listing(), Unpublished { listing: false, ari: true });
    }

    fn move_quantity(&mut self, request: &HoldRequest, mut change: impl FnMut(&mut DayState, u32)) {
        let state = self.listings.get_mut(request.listing()).expect("holds refer to listings");
        for date in request.days() {
            change(state.days.get_mut(&date).expect("held days exist"), request.quantity());
        }
    }

    fn expire_due(&mut self, now: Timestamp) -> Vec<HoldId> {
        let mut expired = Vec::new();
        while let Some(&(at, id)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.release(id, HoldState::Expired { at });
            expired.push(id);
        }
        expired
    }

    fn idempotent(
        &mut self,
        key: &Option<IdempotencyKey>,
        command: &Command,
        now: Timestamp,
        run: impl FnOnce(&mut Ledger) -> Result<Reply, Rejection>,
    ) -> Result<Reply, Rejection> {
        let Some(key) = key else { return run(self) };
        if let Some(remembered) = self.idempotency.get(key) {
            return match remembered.command.same_request(command) {
                true => remembered.reply.clone(),
                false => Err(Rejection::IdempotencyKeyReused),
            };
        }
        let reply = run(self);
        self.idempotency.insert(key.clone(), Remembered { command: command.clone(), reply: reply.clone() });
        self.idempotency_order.push_back((now, key.clone()));
        reply
    }

    fn forget_old_keys(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.idempotency_order.front() {
            let expired = now.ms() - at.ms() >= IDEMPOTENCY_TTL_MS;
            if !expired && self.idempotency_order.len() < IDEMPOTENCY_KEYS_MAX {
                break;
            }
            let (_, key) = self.idempotency_order.pop_front().expect("front exists");
            self.idempotency.remove(&key);
        }
    }

    fn live_listing(&self, id: &ListingId) -> Result<&ListingState, Rejection> {
        match self.listings.get(id) {
            None => Err(Rejection::UnknownListing(id.clone())),
            Some(state) if state.withdrawn => Err(Rejection::ListingWithdrawn(id.clone())),
            Some(state) => Ok(state),
        }
    }

    fn mark_unpublished(&mut self, id: &ListingId, what: Unpublished) {
        let entry = self.unpublished.entry(id.clone()).or_default();
        entry.listing |= what.listing;
        entry.ari |= what.ari;
    }
}

fn check_dates_bookable(from: Date, to: Date, now: Timestamp) -> Result<(), Rejection> {
    let today = now.date();
    if from >= to {
        return Err(Rejection::InvalidRequest("the range is empty: 'from' must be before 'to'".into()));
    }
    if from < today.add_days(-DAYS_BEFORE_TODAY_MAX) {
        return Err(Rejection::InvalidRequest(format!("{from} is in the past")));
    }
    if to > today.add_days(HORIZON_DAYS_MAX + 1) {
        return Err(Rejection::InvalidRequest(format!("dates end beyond the {HORIZON_DAYS_MAX}-day horizon")));
    }
    Ok(())
}

/// Checks a stay hold against the listing's terms; the price of each night.
fn check_stay(
    state: &ListingState,
    check_in: Date,
    check_out: Date,
    units: u32,
    guests: u32,
    now: Timestamp,
) -> Result<Vec<Money>, Rejection> {
    let Some(stay) = state.listing.stay() else {
        return Err(Rejection::WrongKind { listing: state.listing.id.clone(), expected: "stay".into() });
    };
    check_dates_bookable(check_in, check_out, now)?;
    let nights = check_in.days_until(check_out) as u32;
    if nights > STAY_NIGHTS_MAX {
        return Err(Rejection::InvalidRequest(format!("at most {STAY_NIGHTS_MAX} nights")));
    }
    if units == 0 {
        return Err(Rejection::InvalidRequest("units must be at least 1".into()));
    }
    if guests == 0 || guests as u64 > stay.max_guests as u64 * units as u64 {
        return Err(Rejection::Restriction(format!("{guests} guests; this room takes 1-{} per unit", stay.max_guests)));
    }
    let mut prices = Vec::with_capacity(nights as usize);
    for offset in 0..nights as i32 {
        let date = check_in.add_days(offset);
        let day = state.days.get(&date).filter(|d| !d.terms.stop_sell).ok_or(Rejection::NotForSale { date })?;
        if day.free() < units {
            return Err(Rejection::SoldOut { date, requested: units, available: day.free() });
        }
        let price = Money::new(day.terms.price_minor, state.listing.currency).checked_mul(units as i64);
        prices.push(price.ok_or_else(|| Rejection::InvalidRequest("price overflows".into()))?);
    }
    let arrival = &state.days[&check_in].terms;
    if arrival.closed_to_arrival {
        return Err(Rejection::Restriction(format!("closed to arrival on {check_in}")));
    }
    if arrival.min_stay != 0 && nights < arrival.min_stay as u32 {
        return Err(Rejection::Restriction(format!("minimum stay {} nights from {check_in}", arrival.min_stay)));
    }
    if arrival.max_stay != 0 && nights > arrival.max_stay as u32 {
        return Err(Rejection::Restriction(format!("maximum stay {} nights from {check_in}", arrival.max_stay)));
    }
    if state.days.get(&check_out).is_some_and(|d| d.terms.closed_to_departure) {
        return Err(Rejection::Restriction(format!("closed to departure on {check_out}")));
    }
    Ok(prices)
}

/// Checks a trip hold; the fare of the departure for all seats.
fn check_trip(
    state: &ListingState,
    departure: Date,
    seats: u32,
    seat_numbers: &[String],
    now: Timestamp,
) -> Result<Vec<Money>, Rejection> {
    let Some(trip) = state.listing.trip() else {
        return Err(Rejection::WrongKind { listing: state.listing.id.clone(), expected: "trip".into() });
    };
    check_dates_bookable(departure, departure.add_days(1), now)?;
    if seats == 0 {
        return Err(Rejection::InvalidRequest("seats must be at least 1".into()));
    }
    if !seat_numbers.is_empty() && seat_numbers.len() != seats as usize {
        return Err(Rejection::InvalidRequest(format!("{} seat numbers for {seats} seats", seat_numbers.len())));
    }
    let day =
        state.days.get(&departure).filter(|d| !d.terms.stop_sell).ok_or(Rejection::NotForSale { date: departure })?;
    if day.free() < seats {
        return Err(Rejection::SoldOut { date: departure, requested: seats, available: day.free() });
    }
    for (idx, seat) in seat_numbers.iter().enumerate() {
        if !trip.seat_map.contains(seat) {
            return Err(Rejection::SeatUnknown(seat.clone()));
        }
        if day.seats_taken.contains_key(seat) || seat_numbers[..idx].contains(seat) {
            return Err(Rejection::SeatTaken(seat.clone()));
        }
    }
    let fare = Money::new(day.terms.price_minor, state.listing.currency).checked_mul(seats as i64);
    Ok(vec![fare.ok_or_else(|| Rejection::InvalidRequest("price overflows".into()))?])
}
