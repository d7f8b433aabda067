//! Booking across the network, in one process over libp2p on loopback: a
//! hotel, a bus company and an airline each run a node; an agency searches
//! its replica of the catalog and books a bus, a flight and a hotel as one.

use super::network::{eventually, node_with_fast_rounds};
use super::*;
use caravan_test_utils::free_port;

/// A trip listing between two stops, leaving and arriving at local times
/// (UTC+1), with `seats` seats at `fare_minor`, sold for the next 10 days.
async fn trip(
    owner: &TestNode,
    id: &str,
    mode: &str,
    [from, to]: [&str; 2],
    [departs, arrives]: [&str; 2],
    seats: u32,
    fare_minor: i64,
) {
    let listing = json!({
        "id": id, "title": format!("{from} → {to}"), "currency": "EUR",
        "cancellation": { "free_until_hours": 24, "penalty_percent": 50 },
        "trip": {
            "mode": mode, "operator": format!("{id} operator"), "service_number": id.to_uppercase(), "seats": seats,
            "stops": [
                { "code": from, "name": from, "departure": departs, "utc_offset_min": 60 },
                { "code": to, "name": to, "arrival": arrives, "utc_offset_min": 60 }
            ]
        }
    });
    let (status, body) = owner.call("POST", "/api/v1/listings", Some(listing)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ari = json!({ "from": day(0), "to": day(10), "available": seats, "price_minor": fare_minor });
    assert_eq!(owner.call("PUT", &format!("/api/v1/listings/{id}/ari"), Some(ari)).await.0, StatusCode::OK);
}

struct Network {
    agency: TestNode,
    hotel: TestNode,
    bus: TestNode,
    airline: TestNode,
    hotel_id: String,
}

/// Three owners and an agency, every owner dialling the agency; returns
/// once the agency's catalog holds everything and every owner's contact.
async fn network(rooms: u32, seats: u32) -> Network {
    let agency = node_with_fast_rounds().await;
    let address = agency.node.start_network(super::network::loopback(vec![])).await.unwrap().expect("listening");
    let (hotel, bus, airline) =
        (node_with_fast_rounds().await, node_with_fast_rounds().await, node_with_fast_rounds().await);
    for owner in [&hotel, &bus, &airline] {
        owner.node.start_network(super::network::loopback(vec![address.clone()])).await.unwrap();
    }
    let hotel_id = hotel.hotel(rooms).await;
    trip(&bus, "bus-1", "bus", ["GVA", "LYS"], ["08:00", "10:00"], seats, 2_500).await;
    trip(&airline, "fl-1", "flight", ["LYS", "ANC"], ["12:00", "13:00"], seats, 9_000).await;
    let node = agency.node.clone();
    // Listings, availabilities with an open day, and contacts (four: the
    // agency publishes its own too).
    let counts = || {
        node.read_catalog(|catalog| {
            let availabilities = catalog.index.saved().filter(|(.., entry)| entry.price_floor.is_some()).count();
            [catalog.listing_count(), availabilities, catalog.contact_count()]
        })
    };
    let replicated = eventually(|| counts() == [3, 3, 4]).await;
    let counts = counts();
    assert!(replicated, "the agency's catalog has the three listings and contacts: {counts:?}");
    // The hotel publishes its prices at its next publishing point, after
    // its listing and first availability record: wait until the agency sells it.
    let stays = format!("/api/v1/search/stays?city=annecy&check_in={}&check_out={}", day(2), day(4));
    let mut sold = false;
    for _ in 0..500 {
        let (_, found) = agency.call("GET", &stays, None).await;
        if found["offers"][0]["listing"] == hotel_id.as_str() {
            sold = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(sold, "the agency's search offers the hotel");
    Network { agency, hotel, bus, airline, hotel_id }
}

fn origin(t: &TestNode) -> String {
    t.node.origin().to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_traveller_books_a_bus_a_flight_and_a_hotel_of_three_owners_as_one() {
    let net = network(2, 3).await;

    // The operator sees the three owners connected, where they are and
    // what each sent.
    let (_, peers) = net.agency.call("GET", "/api/v1/peers", None).await;
    let peers = peers["peers"].as_array().unwrap().clone();
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert!(peers.iter().all(|p| p["address"].as_str().is_some_and(|a| a.contains("/ip4/127.0.0.1/"))), "{peers:?}");
    let records_in: u64 = peers.iter().map(|p| p["records_in"].as_u64().unwrap()).sum();
    assert!(records_in >= 9, "three listings, their availability and contacts came from them: {peers:?}");

    // Search the agency's local catalog.
    let stays = format!("/api/v1/search/stays?city=annecy&check_in={}&check_out={}&guests=2", day(2), day(4));
    let (status, found) = net.agency.call("GET", &stays, None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let offer = &found["offers"][0];
    assert_eq!(offer["listing"], net.hotel_id.as_str());
    assert_eq!(offer["total"]["amount_minor"], 20_000, "two nights at 100.00");
    assert!(offer["cancellation"]["free_until"].as_str().is_some());
    let free_until = offer["cancellation"]["free_until_local"].as_str();
    assert_eq!(free_until, Some(format!("{} 15:00", day(0)).as_str()), "48 h before a 15:00 check-in: {offer}");
    let trips = format!("/api/v1/search/trips?from=GVA&to=ANC&date={}", day(2));
    let (status, found) = net.agency.call("GET", &trips, None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let itinerary = &found["itineraries"][0];
    let legs: Vec<&str> =
        itinerary["legs"].as_array().unwrap().iter().map(|l| l["listing"].as_str().unwrap()).collect();
    assert_eq!(legs, vec!["bus-1", "fl-1"]);
    let bus = &itinerary["legs"][0];
    assert_eq!(
        (bus["departs_local"].as_str(), bus["arrives_local"].as_str()),
        (Some(format!("{} 08:00", day(2)).as_str()), Some(format!("{} 10:00", day(2)).as_str())),
        "timetable times, in the stops' own time: {bus}"
    );
    assert_eq!(itinerary["totals"][0]["amount_minor"], 11_500);

    // Book all three as one.
    let booking = json!({
        "traveller": { "name": "Ada Lovelace", "email": "ada@example.org" },
        "parts": [
            { "origin": origin(&net.bus), "listing": "bus-1", "departure": day(2), "seats": 1, "expected_total_minor": 2_500 },
            { "origin": origin(&net.airline), "listing": "fl-1", "departure": day(2), "seats": 1 },
            { "origin": origin(&net.hotel), "listing": net.hotel_id, "check_in": day(2), "check_out": day(4), "units": 1, "guests": 2 }
        ]
    });
    let (status, booked) = net
        .agency
        .call_with("POST", "/api/v1/bookings", Some(booking.clone()), &[("idempotency-key", "trip-ada")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    assert_eq!(booked["state"], "confirmed");
    assert!(booked["parts"].as_array().unwrap().iter().all(|p| p["status"] == "confirmed" && p["receipt"].is_object()));
    assert_eq!(booked["totals"][0]["amount_minor"], 2_500 + 9_000 + 20_000);

    // The same key gives the same booking; the owners sold once.
    let (status, again) =
        net.agency.call_with("POST", "/api/v1/bookings", Some(booking), &[("idempotency-key", "trip-ada")]).await;
    assert_eq!((status, &again["id"]), (StatusCode::CREATED, &booked["id"]));
    for owner in [&net.bus, &net.airline, &net.hotel] {
        let (_, sales) = owner.call("GET", "/api/v1/sales?state=confirmed", None).await;
        assert_eq!(sales["bookings"].as_array().unwrap().len(), 1, "{sales}");
        // The owner knows who comes; no record told anyone else.
        assert_eq!(sales["bookings"][0]["traveller"]["name"], "Ada Lovelace", "{sales}");
    }
    let mut leaked = 0;
    net.agency
        .node
        .records()
        .for_each(|stored| {
            leaked += stored.signed.windows(b"Lovelace".len()).filter(|w| w == b"Lovelace").count();
            Ok(())
        })
        .unwrap();
    assert_eq!(leaked, 0, "no record carries the traveller's name");
    let id = booked["id"].as_u64().unwrap();
    let (status, listed) = net.agency.call("GET", "/api/v1/bookings", None).await;
    assert_eq!((status, &listed["bookings"][0]["id"]), (StatusCode::OK, &json!(id)));

    // Availability follows the booking: the agency's search sees one room left.
    let agency = &net.agency;
    let mut left = None;
    for _ in 0..250 {
        let (_, found) = agency.call("GET", &stays, None).await;
        left = found["offers"][0]["units_left"].as_u64();
        if left == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, Some(1));

    // Cancelling cancels every part; the flight's penalty policy applies
    // (free until 24 hours before; it leaves in two days).
    let (status, cancelled) = agency.call("POST", &format!("/api/v1/bookings/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["parts"].as_array().unwrap().iter().all(|p| p["status"] == "cancelled"), "{cancelled}");
    let (_, sales) = net.hotel.call("GET", "/api/v1/sales?state=cancelled", None).await;
    assert_eq!(sales["bookings"].as_array().unwrap().len(), 1);
    // ... and availability follows the cancellation too.
    assert!(units_left_becomes(agency, &stays, 2).await, "both rooms for sale again");
}

/// Polls the agency's stay search until the first offer has `units` left.
async fn units_left_becomes(agency: &TestNode, search: &str, units: u64) -> bool {
    for _ in 0..250 {
        let (_, found) = agency.call("GET", search, None).await;
        if found["offers"][0]["units_left"].as_u64() == Some(units) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn availability_follows_an_expired_hold_at_every_agency() {
    let net = network(2, 3).await;
    let stays = format!("/api/v1/search/stays?city=annecy&check_in={}&check_out={}", day(2), day(3));
    assert!(units_left_becomes(&net.agency, &stays, 2).await);
    // A 10-second hold at the hotel itself: the agency sees one room, then two again.
    let mut hold = stay_hold(&net.hotel_id, 2, 3, 1);
    hold["hold_seconds"] = json!(10);
    assert_eq!(net.hotel.call("POST", "/api/v1/holds", Some(hold)).await.0, StatusCode::CREATED);
    assert!(units_left_becomes(&net.agency, &stays, 1).await, "the hold reached the agency");
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    assert!(units_left_becomes(&net.agency, &stays, 2).await, "the expiry reached the agency");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_named_seat_is_sold_once() {
    let net = network(2, 3).await;
    let seat_map = json!({ "seat_map": ["1A", "1B", "2A"] });
    // The bus gets a seat map: a new listing with named seats.
    let mut listing = net.bus.call("GET", "/api/v1/listings/bus-1", None).await.1;
    listing["id"] = json!("bus-2");
    listing["trip"]["seat_map"] = seat_map["seat_map"].clone();
    let (status, body) = net.bus.call("POST", "/api/v1/listings", Some(listing)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ari = json!({ "from": day(0), "to": day(10), "available": 3, "price_minor": 2_500 });
    assert_eq!(net.bus.call("PUT", "/api/v1/listings/bus-2/ari", Some(ari)).await.0, StatusCode::OK);
    let booking = |who: &str| {
        json!({
            "traveller": { "name": who, "email": format!("{who}@example.org") },
            "parts": [{ "origin": origin(&net.bus), "listing": "bus-2", "departure": day(2), "seat_numbers": ["1A"] }]
        })
    };
    let (first, second) = tokio::join!(
        net.agency.call("POST", "/api/v1/bookings", Some(booking("ada"))),
        net.agency.call("POST", "/api/v1/bookings", Some(booking("grace")))
    );
    let states = [first.1["state"].as_str().unwrap(), second.1["state"].as_str().unwrap()];
    let mut sorted = states;
    sorted.sort();
    assert_eq!(sorted, ["confirmed", "failed"], "{} {}", first.1, second.1);
    let failed = if states[0] == "failed" { &first.1 } else { &second.1 };
    assert_eq!(failed["parts"][0]["refusal"]["code"], "seat_taken", "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sold_out_part_releases_every_other_part_at_once() {
    let net = network(1, 3).await;
    // Someone else takes the only room at the hotel itself.
    let (status, _) = net.hotel.call("POST", "/api/v1/holds", Some(stay_hold(&net.hotel_id, 2, 4, 1))).await;
    assert_eq!(status, StatusCode::CREATED);

    let booking = json!({
        "traveller": { "name": "Grace Hopper", "email": "grace@example.org" },
        "parts": [
            { "origin": origin(&net.bus), "listing": "bus-1", "departure": day(2), "seats": 2 },
            { "origin": origin(&net.hotel), "listing": net.hotel_id, "check_in": day(2), "check_out": day(4), "units": 1, "guests": 1 }
        ]
    });
    let (status, failed) = net.agency.call("POST", "/api/v1/bookings", Some(booking)).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["parts"][1]["refusal"]["code"], "sold_out", "{failed}");
    assert_eq!(failed["parts"][0]["status"], "released", "{failed}");
    // The bus seats are free again at the owner, long before the hold's expiry.
    let (_, ari) =
        net.bus.call("GET", &format!("/api/v1/listings/bus-1/ari?from={}&to={}", day(2), day(3)), None).await;
    assert_eq!(ari["days"][0]["held"], 0, "{ari}");
    drop(net.airline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_cannot_touch_another_peers_hold() {
    let net = network(2, 3).await;
    // The agency holds through the protocol; the bus company's node then
    // replays the hold id with a made-up token against the hotel.
    let hold = caravan_booking::BookRequest {
        idempotency_key: "k".into(),
        op: caravan_booking::Op::Hold(one_night(&net.hotel_id)),
    };
    let hotel_origin = net.hotel.node.origin();
    let caravan_booking::Outcome::Receipt(receipt, _) = net.agency.node.booking().call_owner(hotel_origin, &hold).await
    else {
        panic!("the hold was granted");
    };
    assert_eq!(receipt.state, caravan_booking::ReceiptState::Held);
    let forged = caravan_booking::HoldRef { hold: receipt.hold.hold, token: [0; 32] };
    let cancel = caravan_booking::BookRequest { idempotency_key: "x".into(), op: caravan_booking::Op::Cancel(forged) };
    match net.bus.node.booking().call_owner(hotel_origin, &cancel).await {
        caravan_booking::Outcome::Refused(refusal) => {
            assert_eq!(refusal.code, caravan_booking::RefusalCode::UnknownHold)
        }
        other => panic!("{other:?}"),
    }
    // Even the real token is bound to the agency.
    let stolen =
        caravan_booking::BookRequest { idempotency_key: "y".into(), op: caravan_booking::Op::Status(receipt.hold) };
    assert!(matches!(
        net.bus.node.booking().call_owner(hotel_origin, &stolen).await,
        caravan_booking::Outcome::Refused(_)
    ));
    // A stranger that says it speaks for the agency is not taken for it:
    // the agency's signed contact record does not list it.
    let agency_origin = net.agency.node.origin();
    let claimed = net.hotel.node.booking().answer_booking("12D3KooWStranger", &stolen.encode_as(agency_origin)).await;
    let refusal = match caravan_booking::BookResponse::decode(&claimed) {
        caravan_booking::BookResponse::Refusal(refusal) => refusal,
        other => panic!("{other:?}"),
    };
    assert_eq!(refusal.code, caravan_booking::RefusalCode::UnknownHold);
    let mine =
        caravan_booking::BookRequest { idempotency_key: "z".into(), op: caravan_booking::Op::Status(receipt.hold) };
    assert!(matches!(
        net.agency.node.booking().call_owner(hotel_origin, &mine).await,
        caravan_booking::Outcome::Receipt(..)
    ));
}

/// One room of `listing` for the night in two days, as the protocol asks for it.
fn one_night(listing: &str) -> caravan_booking::HoldSpec {
    caravan_booking::HoldSpec {
        request: caravan_ledger::HoldRequest::Stay {
            listing: caravan_model::ListingId::parse(listing).unwrap(),
            check_in: caravan_model::Date::parse(&day(2)).unwrap(),
            check_out: caravan_model::Date::parse(&day(3)).unwrap(),
            units: 1,
            guests: 1,
        },
        hold_seconds: 0,
        expected_total_minor: None,
        traveller: None,
    }
}

/// Posts `booking` to the agency from another task (its answer may take
/// as long as the saga).
fn book_in_background(
    agency: &TestNode,
    booking: &Value,
) -> tokio::task::JoinHandle<Result<axum::response::Response, std::convert::Infallible>> {
    let request = Request::post("/api/v1/bookings")
        .header("content-type", "application/json")
        .header("authorization", crate::admin_bearer())
        .body(Body::from(booking.to_string()))
        .unwrap();
    tokio::spawn(caravan_api::router(agency.node.app_state()).oneshot(request))
}

/// Polls the agency's newest booking until its saga ends (up to 50 s); its state.
async fn last_booking_ends(agency: &TestNode) -> String {
    let mut state = String::new();
    for _ in 0..1_000 {
        let (_, listed) = agency.call("GET", "/api/v1/bookings", None).await;
        state = listed["bookings"][0]["state"].as_str().unwrap_or_default().to_owned();
        if state == "confirmed" || state == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    state
}

fn at_port(port: u16, bootstrap: Vec<String>) -> caravan_net::NetConfig {
    caravan_net::NetConfig { listen: vec![format!("/ip4/127.0.0.1/tcp/{port}")], bootstrap, ..Default::default() }
}

/// The status of a part of the agency's newest booking, as its group stored it.
fn stored_part_status(agency: &TestNode, part: usize) -> Option<String> {
    let stored =
        agency.node.read_ledger(|ledger| ledger.agency().list(None, None, 1).first().map(|b| b.saga.clone()))?;
    let saga: caravan_booking::Saga = postcard::from_bytes(&stored).ok()?;
    Some(saga.parts[part].status.name().to_owned())
}

async fn restart(t: TestNode, port: u16, bootstrap: Vec<String>) -> TestNode {
    let TestNode { dir, node } = t;
    node.shutdown().await;
    let t = super::network::open_with_fast_rounds(dir).await;
    t.node.start_network(at_port(port, bootstrap)).await.unwrap();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agency_stopped_mid_saga_resumes_it_and_ends_all_or_nothing() {
    let agency_port = free_port();
    let agency_address = format!("/ip4/127.0.0.1/tcp/{agency_port}");
    let agency = node_with_fast_rounds().await;
    agency.node.start_network(at_port(agency_port, vec![])).await.unwrap();
    let (hotel, bus) = (node_with_fast_rounds().await, node_with_fast_rounds().await);
    let bus_port = free_port();
    hotel.node.start_network(super::network::loopback(vec![agency_address.clone()])).await.unwrap();
    bus.node.start_network(at_port(bus_port, vec![agency_address.clone()])).await.unwrap();
    let hotel_id = hotel.hotel(2).await;
    trip(&bus, "bus-1", "bus", ["GVA", "LYS"], ["08:00", "10:00"], 3, 2_500).await;
    assert!(eventually(|| agency.node.read_catalog(|catalog| catalog.contact_count()) == 3).await);
    // The bus company's node goes down; the booking holds the room and
    // keeps trying the bus.
    let bus_dir = bus.dir;
    bus.node.shutdown().await;
    let bus_origin = caravan_node::NodeKey::load(bus_dir.path()).unwrap().origin().to_hex();
    let booking = json!({
        "traveller": { "name": "Ada", "email": "ada@example.org" },
        "parts": [
            { "origin": origin(&hotel), "listing": hotel_id, "check_in": day(2), "check_out": day(3), "hold_seconds": 120 },
            { "origin": bus_origin, "listing": "bus-1", "departure": day(2), "seats": 1, "hold_seconds": 120 }
        ]
    });
    let pending = book_in_background(&agency, &booking);
    assert!(eventually(|| stored_part_status(&agency, 0).as_deref() == Some("held")).await, "the room is held");
    assert_eq!(stored_part_status(&agency, 1).as_deref(), Some("new"), "the bus is still being tried");

    // The agency stops mid-saga; the bus company comes back; the agency restarts.
    let agency = restart(agency, agency_port, vec![]).await;
    let _ = pending.await;
    let bus = super::network::open_with_fast_rounds(bus_dir).await;
    bus.node.start_network(at_port(bus_port, vec![agency_address])).await.unwrap();
    // The restarted agency leads its group of one and picks the saga up on
    // its own; asking again starts no second task.
    let bus_taken = || matches!(stored_part_status(&agency, 1).as_deref(), Some("held" | "confirmed"));
    assert!(eventually(bus_taken).await, "the bus is tried again, and holds");
    assert_eq!(agency.node.agency().resume().await.unwrap(), 0, "one task per booking");

    let state = last_booking_ends(&agency).await;
    assert_eq!(state, "confirmed", "both parts booked after the restart");
    for owner in [&hotel, &bus] {
        let (_, sales) = owner.call("GET", "/api/v1/sales?state=confirmed", None).await;
        assert_eq!(sales["bookings"].as_array().unwrap().len(), 1, "{sales}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_killed_mid_saga_leaves_no_hold_alive_after_its_expiry() {
    let net = network(2, 3).await;
    let Network { agency, hotel, bus, airline, hotel_id } = net;
    // The airline is gone from the start: its part can never be held.
    let airline_origin = origin(&airline);
    airline.node.shutdown().await;
    let booking = json!({
        "traveller": { "name": "Ada", "email": "ada@example.org" },
        "parts": [
            { "origin": origin(&hotel), "listing": hotel_id, "check_in": day(2), "check_out": day(3), "hold_seconds": 10 },
            { "origin": airline_origin, "listing": "fl-1", "departure": day(2), "hold_seconds": 10 }
        ]
    });
    let pending = book_in_background(&agency, &booking);
    assert!(eventually(|| stored_part_status(&agency, 0).as_deref() == Some("held")).await);
    // The hotel's node dies holding the room.
    let TestNode { dir: hotel_dir, node: hotel_node } = hotel;
    hotel_node.shutdown().await;
    let _ = pending.await;

    // The saga gives the airline up, cannot reach the hotel to release,
    // and lets the hold go once it has expired.
    let state = last_booking_ends(&agency).await;
    assert_eq!(state, "failed");
    // Back up after the expiry, the hotel has nothing held.
    let hotel = super::network::open_with_fast_rounds(hotel_dir).await;
    let held = |t: &TestNode| {
        t.node.read_ledger(|ledger| ledger.holds().filter(|h| h.state == caravan_ledger::HoldState::Held).count())
    };
    assert!(eventually(|| held(&hotel) == 0).await, "the room's hold expired");
    let (_, sales) = hotel.call("GET", "/api/v1/sales?state=confirmed", None).await;
    assert!(sales["bookings"].as_array().unwrap().is_empty());
    drop(bus);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_bookings_get_clear_answers() {
    let net = network(2, 3).await;
    let part = json!({ "origin": origin(&net.bus), "listing": "bus-1", "departure": day(2) });
    let booking = |parts: Value| json!({ "traveller": { "name": "Ada", "email": "ada@example.org" }, "parts": parts });
    // The same Idempotency-Key twice at once: one booking.
    let key = [("idempotency-key", "twice")];
    let (first, second) = tokio::join!(
        net.agency.call_with("POST", "/api/v1/bookings", Some(booking(json!([part.clone()]))), &key),
        net.agency.call_with("POST", "/api/v1/bookings", Some(booking(json!([part.clone()]))), &key)
    );
    assert_eq!(first.1["id"], second.1["id"], "{} {}", first.1, second.1);
    let (_, sales) = net.bus.call("GET", "/api/v1/sales?state=confirmed", None).await;
    assert_eq!(sales["bookings"].as_array().unwrap().len(), 1);
    // The same key for another booking is a conflict.
    let other = booking(json!([part.clone(), part.clone()]));
    let (status, body) = net.agency.call_with("POST", "/api/v1/bookings", Some(other), &key).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // An origin nobody knows: refused at once, not retried.
    let stranger = json!({ "origin": "ab".repeat(32), "listing": "x", "departure": day(2) });
    let (status, failed) = net.agency.call("POST", "/api/v1/bookings", Some(booking(json!([stranger])))).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["parts"][0]["refusal"]["code"], "owner_unknown", "{failed}");
    // Malformed input: 4xx with a reason.
    for (body, expected) in [
        (booking(json!([])), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "traveller": { "name": "", "email": "a@b" }, "parts": [part.clone()] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            booking(json!([{ "origin": "zz", "listing": "bus-1", "departure": day(2) }])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "parts": [part] }), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, answer) = net.agency.call("POST", "/api/v1/bookings", Some(body)).await;
        assert_eq!(status, expected, "{answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    let (status, body) = net.agency.call("GET", "/api/v1/bookings/999999", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) =
        net.agency.call("GET", "/api/v1/search/stays?city=annecy&check_in=2020-01-01&check_out=2019-01-01", None).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (status, body) = net.agency.call("GET", "/api/v1/search/trips?from=GVA&to=ANC&date=tomorrow", None).await;
    assert_eq!(status.as_u16() / 100, 4, "{body}");
}

#[tokio::test]
async fn a_held_booking_waits_for_its_traveller() {
    let t = TestNode::start().await;
    let id = t.hotel(2).await;
    let origin = t.node.origin().to_hex();
    let booking = |hold_only: bool| {
        json!({
            "traveller": { "name": "Ada", "email": "ada@example.org" },
            "parts": [{ "origin": origin, "listing": id, "check_in": day(2), "check_out": day(3) }],
            "hold_only": hold_only
        })
    };
    let (status, held) = t.call("POST", "/api/v1/bookings", Some(booking(true))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    assert_eq!(held["state"], "held");
    assert!(held["held_until"].as_str().is_some(), "{held}");
    let path = format!("/api/v1/bookings/{}", held["id"]);
    // Who travels may be named with the confirmation; bad details change nothing.
    let nameless = json!({ "traveller": { "name": "", "email": "grace@example.org" } });
    let (status, body) = t.call("POST", &format!("{path}/confirm"), Some(nameless)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (status, body) = t.call("POST", &format!("{path}/confirm"), Some(json!({ "who": "Grace" }))).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let grace = json!({ "traveller": { "name": "Grace Hopper", "email": "grace@example.org" } });
    let (status, confirmed) = t.call("POST", &format!("{path}/confirm"), Some(grace)).await;
    assert_eq!(status, StatusCode::CREATED, "{confirmed}");
    assert_eq!(confirmed["state"], "confirmed");
    assert_eq!(confirmed["traveller"]["name"], "Grace Hopper", "{confirmed}");
    let (_, sales) = t.call("GET", "/api/v1/sales", None).await;
    assert_eq!(sales["bookings"][0]["traveller"]["name"], "Grace Hopper", "the owner has it: {sales}");
    let (status, body) = t.call("POST", &format!("{path}/confirm"), None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");

    // Letting a held booking go releases its holds at once.
    let (_, held) = t.call("POST", "/api/v1/bookings", Some(booking(true))).await;
    let (status, released) = t.call("POST", &format!("/api/v1/bookings/{}/cancel", held["id"]), None).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["state"], "failed");
    assert_eq!(released["parts"][0]["status"], "released", "{released}");
    let (_, ari) = t.call("GET", &format!("/api/v1/listings/{id}/ari?from={}&to={}", day(2), day(3)), None).await;
    assert_eq!((ari["days"][0]["held"].as_u64(), ari["days"][0]["booked"].as_u64()), (Some(0), Some(1)), "{ari}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookings_that_reach_an_owner_together_go_as_a_batch_and_every_receipt_verifies_alone() {
    let net = network(40, 3).await;
    let app = caravan_api::router(net.agency.node.app_state());
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(40));
    let mut travellers = tokio::task::JoinSet::new();
    for n in 0..40 {
        let booking = json!({
            "traveller": { "name": format!("Traveller {n}"), "email": format!("t{n}@example.org") },
            "parts": [{ "origin": origin(&net.hotel), "listing": net.hotel_id, "check_in": day(2), "check_out": day(3) }]
        });
        let request = crate::admin_post("/api/v1/bookings", &format!("together-{n}"), &booking);
        let (app, start) = (app.clone(), start.clone());
        travellers.spawn(async move {
            start.wait().await;
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body: Value =
                serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
            (status, body)
        });
    }
    let hotel = net.hotel.node.origin();
    let mut batched = 0;
    for (status, booked) in travellers.join_all().await {
        assert_eq!((status, booked["state"].as_str()), (StatusCode::CREATED, Some("confirmed")), "{booked}");
        let receipt = &booked["parts"][0]["receipt"];
        let proof = receipt["proof"].as_object().map(|proof| caravan_booking::BatchProof {
            index: proof["index"].as_u64().unwrap() as u32,
            count: proof["count"].as_u64().unwrap() as u32,
            path: proof["path"].as_array().unwrap().iter().map(|h| unhex(h).try_into().unwrap()).collect(),
        });
        batched += usize::from(proof.is_some());
        let signed = caravan_booking::SignedReceipt {
            receipt: unhex(&receipt["receipt"]),
            signature: unhex(&receipt["signature"]).try_into().unwrap(),
            proof,
        };
        let verified = signed.verify(hotel).expect("each receipt verifies alone, batched or not");
        assert_eq!(verified.state, caravan_booking::ReceiptState::Confirmed);
    }
    assert!(batched > 0, "40 bookings at once, and no receipt was signed in a batch");
    let (_, sales) = net.hotel.call("GET", "/api/v1/sales?state=confirmed", None).await;
    assert_eq!(sales["bookings"].as_array().unwrap().len(), 40, "each booked once");
}

fn unhex(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

/// A node from before bookings lived in its replica group: the bookings
/// its database kept are handed to the group at start, driven to an end
/// by the leader (here, an owner nobody knows: all let go), and forgotten
/// in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_a_database_kept_before_groups_are_handed_to_the_group() {
    let dir = tempfile::tempdir().unwrap();
    crate::init_node(dir.path());
    let spec = one_night("old-room");
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let now = caravan_model::Timestamp(since_epoch.as_millis() as i64);
    let part = caravan_booking::Part::new(caravan_records::Origin([9; 32]), spec);
    let saga = caravan_booking::Saga::new(7, 1, vec![part], now).unwrap();
    let traveller = caravan_model::Traveller { name: "Ada".into(), email: "ada@example.org".into(), phone: None };
    let row = caravan_store::agency::BookingRow {
        id: 7,
        client_key: Some("from-before".into()),
        user_id: None,
        phase: saga.phase.name().into(),
        created_ms: now.ms(),
        updated_ms: now.ms(),
        traveller: postcard::to_stdvec(&traveller).unwrap(),
        saga: postcard::to_stdvec(&saga).unwrap(),
    };
    let conn = caravan_store::open_writer(&dir.path().join(caravan_store::DB_FILE)).unwrap();
    caravan_store::agency::put(&conn, &row).unwrap();
    drop(conn);

    let options = caravan_node::NodeOptions { publish_interval_ms: 5, ..Default::default() };
    let t = TestNode { node: caravan_node::Node::open(dir.path(), options).await.unwrap(), dir };
    assert_eq!(last_booking_ends(&t).await, "failed", "the leader drove it to an end");
    let (_, kept) = t.call("GET", "/api/v1/bookings/7", None).await;
    assert_eq!(kept["traveller"]["name"], "Ada", "{kept}");
    let reader = caravan_store::open_reader(t.node.db_path()).unwrap();
    assert_eq!(caravan_store::agency::last_id(&reader).unwrap(), 0, "forgotten in the database");
}

/// An agency that holds everything it can is stopped at its quotas, each
/// refusal says which, `/metrics` counts them, and other agencies still
/// book.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_agency_is_held_to_its_quotas_and_others_still_book() {
    let quotas = caravan_booking::Quotas { holds_in_flight: 3, holds_per_minute: 5, calls_per_second: 40 };
    let dir = tempfile::tempdir().unwrap();
    crate::init_node(dir.path());
    let options = NodeOptions { publish_interval_ms: 5, quotas, ..NodeOptions::default() };
    let hotel = TestNode { node: Node::open(dir.path(), options).await.unwrap(), dir };
    let listing = hotel.hotel(20).await;
    let booking = hotel.node.booking();
    let ask = |peer: &'static str, op: caravan_booking::Op, key: String| {
        let request = caravan_booking::BookRequest { idempotency_key: key, op };
        async move { caravan_booking::BookResponse::decode(&booking.answer_booking(peer, &request.encode()).await) }
    };
    let hold = |peer: &'static str, key: &str| ask(peer, caravan_booking::Op::Hold(one_night(&listing)), key.into());
    let refused = |answer: caravan_booking::BookResponse| match answer {
        caravan_booking::BookResponse::Refusal(refusal) => refusal,
        other => panic!("not refused: {other:?}"),
    };
    let held = |answer: caravan_booking::BookResponse| match answer {
        caravan_booking::BookResponse::Receipt(signed) => signed.verify(hotel.node.origin()).unwrap().hold,
        other => panic!("not held: {other:?}"),
    };

    // Holds in flight: three, then the ledger refuses the fourth.
    let mut greedy_holds = Vec::new();
    for n in 0..3 {
        greedy_holds.push(held(hold("12D3KooWGreedy", &format!("g{n}")).await));
    }
    let fourth = refused(hold("12D3KooWGreedy", "g3").await);
    assert_eq!(fourth.code, caravan_booking::RefusalCode::QuotaExceeded);
    assert!(fourth.message.contains("holds_in_flight"), "{}", fourth.message);
    // Another agency books as if nothing happened.
    let fair = held(hold("12D3KooWFair", "f0").await);
    let confirm = caravan_booking::Op::Confirm { hold: fair, traveller: None };
    assert!(matches!(ask("12D3KooWFair", confirm, "f1".into()).await, caravan_booking::BookResponse::Receipt(_)));

    // Holds a minute: a released hold frees a place in flight, but the
    // fifth hold of the minute is the last.
    let release = caravan_booking::Op::Cancel(greedy_holds.pop().unwrap());
    assert!(matches!(ask("12D3KooWGreedy", release, "c0".into()).await, caravan_booking::BookResponse::Receipt(_)));
    held(hold("12D3KooWGreedy", "g4").await);
    let release = caravan_booking::Op::Cancel(greedy_holds.pop().unwrap());
    assert!(matches!(ask("12D3KooWGreedy", release, "c1".into()).await, caravan_booking::BookResponse::Receipt(_)));
    let sixth = refused(hold("12D3KooWGreedy", "g5").await);
    assert!(sixth.message.contains("5 holds a minute"), "{}", sixth.message);

    // Calls a second: a burst of status calls runs dry.
    let status = |n: usize| ask("12D3KooWChatty", caravan_booking::Op::Quote(one_night(&listing)), format!("q{n}"));
    let mut dry = 0;
    for n in 0..60 {
        if let caravan_booking::BookResponse::Refusal(refusal) = status(n).await {
            assert!(refusal.message.contains("40 booking calls a second"), "{}", refusal.message);
            dry += 1;
        }
    }
    assert!(dry >= 10, "{dry} of 60 calls refused");

    let metrics = hotel.metrics().await;
    for (quota, at_least) in [("holds_in_flight", 1), ("holds_per_minute", 1), ("calls_per_second", dry)] {
        let line = format!("caravan_quota_refusals_total{{quota=\"{quota}\"}} ");
        let count: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in {metrics}"))
            .trim()
            .parse()
            .unwrap();
        assert!(count >= at_least as u64, "{quota}: {count}");
    }
}
