//! One scenario per rule.

use super::*;
use caravan_ledger::{GroupTimers, HoldState, Publication};

fn hotel() -> Harness {
    let mut h = Harness::new();
    h.ok(Command::CreateListing(stay("room", 5)));
    h.ok(open("room", 0, 30, 5, 10_000));
    h
}

#[test]
fn holds_take_capacity_and_refuse_beyond_it() {
    let mut h = hotel();
    h.hold(hold_stay("room", 2, 4, 3));
    assert_eq!((h.free("room", 2), h.free("room", 3), h.free("room", 4)), (2, 2, 5));
    let refused = h.err(hold_stay("room", 3, 5, 3));
    assert_eq!(refused, Rejection::SoldOut { date: day(3), requested: 3, available: 2 });
    assert_eq!(h.free("room", 4), 5, "a refused hold changes nothing");
}

#[test]
fn a_hold_prices_each_night_and_checks_the_quote() {
    let mut h = hotel();
    h.ok(open("room", 3, 4, 5, 20_000));
    let hold = h.hold(hold_stay("room", 2, 4, 2));
    assert_eq!(hold.total.amount_minor, 2 * (10_000 + 20_000));
    let Command::Hold { request, .. } = hold_stay("room", 2, 4, 1) else { unreachable!() };
    let stale = Command::Hold { idempotency_key: None, request, ttl_ms: 60_000, expected_total_minor: Some(20_000) };
    assert!(matches!(h.err(stale), Rejection::PriceChanged { expected_minor: 20_000, .. }));
}

#[test]
fn confirm_turns_a_hold_into_a_booking_exactly_once() {
    let mut h = hotel();
    let hold = h.hold(hold_stay("room", 1, 2, 1));
    assert!(matches!(h.confirm(hold.id), Ok(Reply::Hold(b)) if matches!(b.state, HoldState::Confirmed { .. })));
    assert_eq!(h.confirm(hold.id), Err(Rejection::HoldNotLive { hold: hold.id, state: "confirmed".into() }));
    let day1 = &h.ledger.listing(&id("room")).unwrap().days[&day(1)];
    assert_eq!((day1.held, day1.booked), (0, 1));
}

#[test]
fn expiry_releases_at_the_deadline_and_never_before() {
    let mut h = hotel();
    let hold = h.hold(hold_stay("room", 1, 2, 5));
    h.advance_ms(15 * MINUTE_MS - 1);
    assert!(h.apply(Command::ExpireHolds).expired.is_empty(), "not a millisecond early");
    assert_eq!(h.free("room", 1), 0);
    h.advance_ms(1);
    assert_eq!(h.apply(Command::ExpireHolds).expired, vec![hold.id]);
    assert_eq!(h.free("room", 1), 5);
    assert_eq!(h.confirm(hold.id), Err(Rejection::HoldExpired(hold.id)));
    assert_eq!(h.cancel(hold.id), Err(Rejection::HoldExpired(hold.id)));
}

#[test]
fn a_confirm_at_the_deadline_is_too_late_even_without_a_timer() {
    let mut h = hotel();
    let hold = h.hold(hold_stay("room", 1, 2, 1));
    h.advance_ms(15 * MINUTE_MS);
    assert_eq!(h.confirm(hold.id), Err(Rejection::HoldExpired(hold.id)));
    assert_eq!(h.ledger.hold(hold.id).unwrap().state, HoldState::Expired { at: hold.expires_at });
}

#[test]
fn cancel_releases_a_hold_and_charges_a_late_booking_cancellation() {
    let mut h = hotel();
    let hold = h.hold(hold_stay("room", 1, 3, 1));
    h.cancel(hold.id).unwrap();
    assert_eq!(h.free("room", 1), 5);

    // Day 10, check-in 15:00: 48 hours' free cancellation, then one night.
    let early = h.hold(hold_stay("room", 10, 12, 2));
    h.confirm(early.id).unwrap();
    let Ok(Reply::Hold(cancelled)) = h.cancel(early.id) else { panic!() };
    assert!(matches!(cancelled.state, HoldState::BookingCancelled { penalty, .. } if penalty.amount_minor == 0));

    let late = h.hold(hold_stay("room", 1, 3, 2));
    h.confirm(late.id).unwrap();
    let Ok(Reply::Hold(cancelled)) = h.cancel(late.id) else { panic!() };
    let HoldState::BookingCancelled { penalty, .. } = cancelled.state else { panic!() };
    assert_eq!(penalty.amount_minor, 2 * 10_000, "first night, both units");
    assert_eq!(h.free("room", 1), 5);
    assert_eq!(h.cancel(late.id), Err(Rejection::HoldNotLive { hold: late.id, state: "booking_cancelled".into() }));
}

#[test]
fn idempotency_keys_return_the_first_answer() {
    let mut h = hotel();
    let Command::Hold { request, ttl_ms, .. } = hold_stay("room", 1, 2, 1) else { unreachable!() };
    let with_key = |k: &str, units: u32| {
        let mut request = request.clone();
        if let HoldRequest::Stay { units: u, .. } = &mut request {
            *u = units;
        }
        Command::Hold { idempotency_key: key(k), request, ttl_ms, expected_total_minor: None }
    };
    let first = h.ok(with_key("agency-1/abc", 1));
    let again = h.ok(with_key("agency-1/abc", 1));
    assert_eq!(first, again);
    assert_eq!(h.free("room", 1), 4, "the retry held nothing more");
    assert_eq!(h.err(with_key("agency-1/abc", 2)), Rejection::IdempotencyKeyReused);

    // Refusals are remembered too: the answer does not change under the client.
    h.ok(open("room", 3, 4, 0, 10_000));
    let mut sold_out = with_key("agency-1/def", 1);
    if let Command::Hold { request: HoldRequest::Stay { check_in, check_out, .. }, .. } = &mut sold_out {
        (*check_in, *check_out) = (day(3), day(4));
    }
    let refused = h.err(sold_out.clone());
    h.ok(open("room", 3, 4, 5, 10_000));
    assert_eq!(h.err(sold_out), refused);
}

#[test]
fn stay_restrictions() {
    let mut h = hotel();
    let patch = |p: AriPatch| Command::SetAri { listing: id("room"), from: day(5), to: day(6), patch: p };
    h.ok(patch(AriPatch { min_stay: Some(2), ..AriPatch::default() }));
    assert!(matches!(h.err(hold_stay("room", 5, 6, 1)), Rejection::Restriction(_)));
    h.hold(hold_stay("room", 5, 7, 1));
    h.ok(patch(AriPatch { closed_to_arrival: Some(true), ..AriPatch::default() }));
    assert!(matches!(h.err(hold_stay("room", 5, 7, 1)), Rejection::Restriction(_)));
    h.ok(patch(AriPatch { stop_sell: Some(true), ..AriPatch::default() }));
    assert_eq!(h.err(hold_stay("room", 4, 7, 1)), Rejection::NotForSale { date: day(5) });
    assert_eq!(h.err(hold_stay("room", 29, 31, 1)), Rejection::NotForSale { date: day(30) });
    assert!(matches!(h.err(hold_stay("room", 2, 2, 1)), Rejection::InvalidRequest(_)));
    assert!(matches!(h.err(hold_stay("room", -5, -3, 1)), Rejection::InvalidRequest(_)));
}

#[test]
fn allotment_cannot_drop_below_what_is_held_or_booked() {
    let mut h = hotel();
    let hold = h.hold(hold_stay("room", 1, 2, 3));
    h.confirm(hold.id).unwrap();
    h.hold(hold_stay("room", 1, 2, 1));
    assert_eq!(h.err(open("room", 0, 3, 3, 10_000)), Rejection::BelowCommitted { date: day(1), committed: 4 });
    assert_eq!(h.free("room", 0), 5, "all or nothing: day 0 unchanged");
    h.ok(open("room", 0, 3, 4, 10_000));
    assert_eq!(h.free("room", 1), 0);
    assert!(matches!(h.err(open("room", 0, 3, 6, 10_000)), Rejection::InvalidRequest(_)), "above capacity");
}

#[test]
fn seats_are_never_sold_twice() {
    let mut h = Harness::new();
    h.ok(Command::CreateListing(trip("bus", &["1A", "1B", "2A"])));
    h.ok(open("bus", 1, 2, 3, 2_500));
    let seats = |names: &[&str]| Command::Hold {
        idempotency_key: None,
        request: HoldRequest::Trip {
            listing: id("bus"),
            departure: day(1),
            seats: names.len() as u32,
            seat_numbers: names.iter().map(|s| s.to_string()).collect(),
        },
        ttl_ms: 60_000,
        expected_total_minor: None,
    };
    let first = h.hold(seats(&["1A"]));
    assert_eq!(first.total.amount_minor, 2_500);
    assert_eq!(h.err(seats(&["1A"])), Rejection::SeatTaken("1A".into()));
    assert_eq!(h.err(seats(&["1B", "1B"])), Rejection::SeatTaken("1B".into()));
    assert_eq!(h.err(seats(&["9Z"])), Rejection::SeatUnknown("9Z".into()));
    h.cancel(first.id).unwrap();
    h.hold(seats(&["1A", "1B"]));
    let unnamed = Command::Hold {
        idempotency_key: None,
        request: HoldRequest::Trip { listing: id("bus"), departure: day(1), seats: 2, seat_numbers: vec![] },
        ttl_ms: 60_000,
        expected_total_minor: None,
    };
    assert!(matches!(h.err(unnamed), Rejection::SoldOut { requested: 2, available: 1, .. }));
    assert!(matches!(h.err(hold_stay("bus", 1, 2, 1)), Rejection::WrongKind { .. }));
}

#[test]
fn listings_lifecycle() {
    let mut h = hotel();
    assert_eq!(h.err(Command::CreateListing(stay("room", 1))), Rejection::ListingExists(id("room")));
    assert!(matches!(h.err(Command::CreateListing(stay("bad", 0))), Rejection::InvalidListing(_)));
    assert!(matches!(h.err(Command::UpdateListing(stay("room", 2))), Rejection::InvalidRequest(_)), "allotment 5 > 2");
    let mut renamed = stay("room", 5);
    renamed.title = "Deluxe room".into();
    h.ok(Command::UpdateListing(renamed));
    assert!(matches!(h.err(Command::UpdateListing(trip("room", &["1"]))), Rejection::InvalidRequest(_)));
    let booking = h.hold(hold_stay("room", 1, 2, 1));
    h.confirm(booking.id).unwrap();
    h.ok(Command::WithdrawListing(id("room")));
    assert_eq!(h.err(hold_stay("room", 1, 2, 1)), Rejection::ListingWithdrawn(id("room")));
    assert_eq!(
        h.err(Command::CreateListing(stay("room", 1))),
        Rejection::ListingExists(id("room")),
        "ids are never reused"
    );
    assert!(h.cancel(booking.id).is_ok(), "bookings outlive their listing");
}

#[test]
fn publish_emits_what_changed_once() {
    let mut h = hotel();
    let first = h.apply(Command::Publish).publications;
    assert!(
        matches!(first.as_slice(), [Publication::Listing(_), Publication::Availability { runs, .. }] if runs.len() == 1)
    );
    assert!(h.apply(Command::Publish).publications.is_empty());
    h.hold(hold_stay("room", 3, 5, 2));
    let after_hold = h.apply(Command::Publish).publications;
    let [Publication::Availability { runs, .. }] = after_hold.as_slice() else { panic!("{after_hold:?}") };
    let on = |d| AriRun::find(runs, day(d)).unwrap().available;
    assert_eq!((on(2), on(3), on(4), on(5)), (5, 3, 3, 5), "ARI after bookings");
    h.ok(Command::WithdrawListing(id("room")));
    assert!(matches!(h.apply(Command::Publish).publications.as_slice(), [Publication::Withdrawal(_)]));
}

#[test]
fn a_publishing_point_is_bounded_and_round_robin() {
    use caravan_ledger::PUBLISHED_LISTINGS_MAX;
    let mut h = Harness::new();
    let n = PUBLISHED_LISTINGS_MAX + 10;
    for idx in 0..n {
        h.ok(Command::CreateListing(stay(&format!("room-{idx:04}"), 1)));
    }
    let listings_in = |publications: &[Publication]| -> Vec<String> {
        publications
            .iter()
            .filter_map(|p| match p {
                Publication::Listing(listing) => Some(listing.id.to_string()),
                _ => None,
            })
            .collect()
    };
    let first = listings_in(&h.apply(Command::Publish).publications);
    assert_eq!(first.len(), PUBLISHED_LISTINGS_MAX);
    assert!(h.ledger.has_unpublished());
    // Churn on listings already published must not starve the rest.
    h.ok(Command::UpdateListing(stay("room-0000", 1)));
    let second = listings_in(&h.apply(Command::Publish).publications);
    assert_eq!(second.len(), 11, "the 10 left, then room-0000 again: {second:?}");
    assert_eq!(second.last().map(String::as_str), Some("room-0000"));
    assert!(!h.ledger.has_unpublished());
}

#[test]
fn a_live_hold_outlives_the_withdrawal_of_its_listing() {
    let mut h = Harness::new();
    h.ok(Command::CreateListing(stay("room", 2)));
    h.ok(open("room", 0, 5, 2, 10_000));
    let hold = h.hold(hold_stay("room", 1, 2, 1));
    h.ok(Command::WithdrawListing(id("room")));
    assert_eq!(h.err(hold_stay("room", 1, 2, 1)), Rejection::ListingWithdrawn(id("room")));
    assert!(h.confirm(hold.id).is_ok());
}

#[test]
fn a_contact_is_published_when_it_changes() {
    let mut h = Harness::new();
    let contact = Contact {
        peers: vec![PeerContact { peer_id: "12D3KooWPeer".into(), addrs: vec!["/ip4/127.0.0.1/tcp/7171".into()] }],
    };
    h.ok(Command::SetContact(contact.clone()));
    assert_eq!(h.apply(Command::Publish).publications, vec![Publication::Contact(contact.clone())]);
    h.ok(Command::SetContact(contact.clone()));
    assert!(h.apply(Command::Publish).publications.is_empty(), "the same contact is not published again");
    assert!(matches!(h.err(Command::SetContact(Contact::default())), Rejection::InvalidRequest(_)));
}

#[test]
fn a_hold_for_a_traveller_keeps_them_and_publishes_nothing_of_them() {
    let mut h = hotel();
    h.apply(Command::Publish);
    let traveller = Traveller { name: "Ada".into(), email: "ada@example.org".into(), phone: None };
    let Command::Hold { idempotency_key, request, ttl_ms, expected_total_minor } = hold_stay("room", 3, 5, 1) else {
        unreachable!()
    };
    let command =
        Command::HoldFor { idempotency_key, request, ttl_ms, expected_total_minor, traveller: traveller.clone() };
    let hold = h.hold(command.clone());
    assert_eq!(h.ledger.traveller(hold.id), Some(&traveller));
    let published = h.apply(Command::Publish).publications;
    assert!(format!("{published:?}").find("Ada").is_none(), "{published:?}");
    let nobody = Traveller { email: "not-an-address".into(), ..traveller };
    let Command::HoldFor { request, ttl_ms, .. } = command else { unreachable!() };
    let bad =
        Command::HoldFor { idempotency_key: None, request, ttl_ms, expected_total_minor: None, traveller: nobody };
    assert!(matches!(h.err(bad), Rejection::InvalidRequest(_)));
}

#[test]
fn a_paused_listing_sells_nothing_and_publishes_every_day_closed_until_resumed() {
    let mut h = hotel();
    let booked = h.hold(hold_stay("room", 1, 2, 1));
    h.confirm(booked.id).unwrap();
    h.apply(Command::Publish);
    h.ok(Command::SetPaused { listing: id("room"), paused: true });
    assert_eq!(h.err(hold_stay("room", 1, 2, 1)), Rejection::ListingPaused(id("room")));
    let paused = h.apply(Command::Publish).publications;
    let [Publication::Availability { runs, .. }] = paused.as_slice() else { panic!("{paused:?}") };
    assert!(runs.iter().all(|run| run.day.stop_sell), "every day closed: {runs:?}");
    assert!(h.cancel(booked.id).is_ok(), "a booking made before the pause stays valid");
    h.ok(Command::SetPaused { listing: id("room"), paused: false });
    let resumed = h.apply(Command::Publish).publications;
    let [Publication::Availability { runs, .. }] = resumed.as_slice() else { panic!("{resumed:?}") };
    assert!(runs.iter().any(|run| !run.day.stop_sell), "open again: {runs:?}");
    h.hold(hold_stay("room", 1, 2, 1));
}

#[test]
fn a_confirmation_may_name_the_traveller_after_the_hold() {
    let mut h = hotel();
    let hold = h.hold(hold_stay("room", 3, 5, 1));
    assert_eq!(h.ledger.traveller(hold.id), None);
    let ada = Traveller { name: "Ada".into(), email: "ada@example.org".into(), phone: None };
    let nameless = Traveller { name: String::new(), ..ada.clone() };
    let refused = h.err(Command::ConfirmFor { idempotency_key: None, hold: hold.id, traveller: nameless });
    assert!(matches!(refused, Rejection::InvalidRequest(_)));
    assert_eq!(h.ledger.hold(hold.id).unwrap().state, HoldState::Held, "a refused confirmation confirms nothing");
    h.ok(Command::ConfirmFor { idempotency_key: None, hold: hold.id, traveller: ada.clone() });
    assert!(matches!(h.ledger.hold(hold.id).unwrap().state, HoldState::Confirmed { .. }));
    assert_eq!(h.ledger.traveller(hold.id), Some(&ada));
}

#[test]
fn a_confirmation_retried_with_the_traveller_gets_the_first_answer() {
    let mut h = hotel();
    let hold = h.hold(hold_stay("room", 3, 5, 1));
    let key = Some(IdempotencyKey::parse("saga-1-0-confirm").unwrap());
    let first = h.apply(Command::Confirm { idempotency_key: key.clone(), hold: hold.id }).reply;
    let ada = Traveller { name: "Ada".into(), email: "ada@example.org".into(), phone: None };
    let again = h.apply(Command::ConfirmFor { idempotency_key: key.clone(), hold: hold.id, traveller: ada }).reply;
    assert!(first.is_ok());
    assert_eq!(again, first, "the same decision, the same answer");
    let other = h.hold(hold_stay("room", 3, 5, 1));
    let reused = h.apply(Command::Confirm { idempotency_key: key, hold: other.id }).reply;
    assert_eq!(reused, Err(Rejection::IdempotencyKeyReused), "another hold under the key is refused");
}

#[test]
fn group_timers_keep_the_election_timeout_ten_heartbeats_long() {
    let mut h = Harness::new();
    assert_eq!(h.ledger.group_timers(), None);
    let hasty = GroupTimers { heartbeat_ms: 200, election_timeout_ms: 1_000 };
    assert!(matches!(h.err(Command::SetGroupTimers(hasty)), Rejection::InvalidRequest(_)));
    let sane = GroupTimers { heartbeat_ms: 50, election_timeout_ms: 800 };
    h.ok(Command::SetGroupTimers(sane));
    assert_eq!(h.ledger.group_timers(), Some(sane));
}

#[test]
fn a_batch_answers_each_command_as_if_it_ran_alone() {
    let mut h = hotel();
    let first = h.hold(hold_stay("room", 1, 2, 4));
    let batch = Command::Batch(vec![
        hold_stay("room", 1, 2, 1),
        hold_stay("room", 1, 2, 1),
        Command::Confirm { idempotency_key: None, hold: first.id },
    ]);
    let Ok(Reply::Batch(answers)) = h.apply(batch).reply else { panic!("a batch answers a batch") };
    assert!(matches!(&answers[0], Ok(Reply::Hold(_))), "the last room is held");
    assert_eq!(answers[1], Err(Rejection::SoldOut { date: day(1), requested: 1, available: 0 }));
    assert!(matches!(&answers[2], Ok(Reply::Hold(b)) if matches!(b.state, HoldState::Confirmed { .. })));
    let day1 = &h.ledger.listing(&id("room")).unwrap().days[&day(1)];
    assert_eq!((day1.held, day1.booked), (1, 4), "a refusal inside a batch changes nothing");
    h.ledger.check_invariants();
}

#[test]
fn a_batch_keeps_each_commands_idempotency_key() {
    let mut h = hotel();
    let Command::Hold { request, ttl_ms, .. } = hold_stay("room", 1, 2, 1) else { unreachable!() };
    let keyed = Command::Hold { idempotency_key: key("agency-1/one"), request, ttl_ms, expected_total_minor: None };
    let alone = h.ok(keyed.clone());
    let Ok(Reply::Batch(answers)) = h.apply(Command::Batch(vec![keyed.clone(), keyed])).reply else { panic!() };
    assert_eq!(answers, vec![Ok(alone.clone()), Ok(alone)], "a retry in a batch gets the first answer");
    assert_eq!(h.free("room", 1), 4);
}

#[test]
fn a_batch_refuses_commands_that_need_an_entry_of_their_own() {
    let mut h = hotel();
    for alone in [Command::Publish, Command::SetGroupTimers(GroupTimers { heartbeat_ms: 50, election_timeout_ms: 500 })]
    {
        let name = alone.name();
        let refused = h.err(Command::Batch(vec![hold_stay("room", 1, 2, 1), alone]));
        assert_eq!(refused, Rejection::InvalidRequest(format!("{name} cannot be part of a batch")));
    }
    let too_many = Command::Batch(vec![hold_stay("room", 1, 2, 1); caravan_ledger::BATCH_COMMANDS_MAX + 1]);
    assert!(matches!(h.err(too_many), Rejection::InvalidRequest(_)));
    assert_eq!(h.free("room", 1), 5, "a refused batch holds nothing");
}

fn within(holder: &str, holds_max: u32, hold: Command) -> Command {
    Command::HoldWithin { holder: holder.into(), holds_max, hold: Box::new(hold) }
}

#[test]
fn an_agency_keeps_no_more_live_holds_than_its_quota_and_others_still_hold() {
    let mut h = hotel();
    let greedy = |n: &str| match hold_stay("room", 1, 2, 1) {
        Command::Hold { request, ttl_ms, expected_total_minor, .. } => {
            Command::Hold { idempotency_key: key(n), request, ttl_ms, expected_total_minor }
        }
        _ => unreachable!("hold_stay is a hold"),
    };
    let first = h.hold(within("agency:greedy", 2, greedy("g1")));
    let second = h.hold(within("agency:greedy", 2, greedy("g2")));
    let refused = h.err(within("agency:greedy", 2, greedy("g3")));
    assert_eq!(refused.code(), "quota_exceeded", "{refused}");
    // A retry of an answered hold gets its answer, quota or not.
    assert_eq!(h.hold(within("agency:greedy", 2, greedy("g2"))), second);
    // Another agency, and the owner's own travellers, still hold.
    h.hold(within("agency:fair", 2, hold_stay("room", 1, 2, 1)));
    h.hold(hold_stay("room", 1, 2, 1));

    // A hold that resolves (confirmed, cancelled or expired) frees a place.
    h.confirm(first.id).unwrap();
    h.hold(within("agency:greedy", 2, greedy("g4")));
    h.err(within("agency:greedy", 2, greedy("g5")));
    h.advance_ms(16 * MINUTE_MS);
    h.hold(within("agency:greedy", 2, greedy("g6")));
    assert_eq!(h.ledger.holders()["agency:greedy"].len(), 1, "resolved holds are forgotten: {:?}", h.ledger.holders());
    assert_eq!(h.err(within("agency:greedy", 2, open("room", 1, 2, 1, 100))).code(), "invalid_request");
}
