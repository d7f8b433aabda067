//! The owner's replica group as an operator sees it: a node is a group of
//! one that leads itself, its ledger survives restarts through the Raft
//! log and snapshot, and the heartbeat and election timeout are set for
//! the whole group (validated), taken at once and kept. Three members
//! over libp2p: any of them serves, all sign the same records, and the
//! group outlives its leader; an agency then books through another member.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_node_is_a_group_of_one_that_leads_and_keeps_its_ledger_across_restarts() {
    let t = TestNode::start().await;
    let id = t.hotel(5).await;
    let (status, group) = t.call("GET", "/api/v1/group", None).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["role"], "leader", "{group}");
    assert_eq!(group["leader"], group["member_id"], "{group}");
    assert_eq!(group["members"].as_array().map(Vec::len), Some(1), "{group}");
    let applied = group["applied_index"].as_u64().unwrap();
    assert!(applied >= 3, "membership, listing and its days are in the log: {group}");
    let (status, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 3, 2))).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");

    let t = t.reopen().await;
    let (_, again) = t.call("GET", "/api/v1/group", None).await;
    assert_eq!(again["member_id"], group["member_id"], "a member keeps its id");
    assert_eq!(again["role"], "leader", "{again}");
    let (status, kept) = t.call("GET", &format!("/api/v1/holds/{}", hold["id"]), None).await;
    assert_eq!((status, &kept["state"]), (StatusCode::OK, &hold["state"]), "{kept}");
}

#[tokio::test(flavor = "multi_thread")]
async fn group_timers_are_validated_agreed_through_the_log_taken_at_once_and_kept() {
    let t = TestNode::start().await;
    let hasty = json!({ "heartbeat_ms": 200, "election_timeout_ms": 1_000 });
    let (status, body) = t.call("PUT", "/api/v1/group/timers", Some(hasty)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(body["message"].as_str().unwrap().contains("10× the heartbeat"), "{body}");
    let typo = json!({ "heartbeat": 50 });
    let (status, _) = t.call("PUT", "/api/v1/group/timers", Some(typo)).await;
    assert!(status.is_client_error());
    let traveller = json!({ "heartbeat_ms": 50, "election_timeout_ms": 800 });
    let (status, _) =
        t.call_with("PUT", "/api/v1/group/timers", Some(traveller), &[("authorization", "anonymous")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let sane = json!({ "heartbeat_ms": 50, "election_timeout_ms": 800 });
    let (status, group) = t.call("PUT", "/api/v1/group/timers", Some(sane)).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    let running = |group: &Value| (group["heartbeat_ms"].as_u64(), group["election_timeout_ms"].as_u64());
    assert!(soon(|| async { running(&group_of(&t).await) == (Some(50), Some(800)) }).await, "taken without a restart");
    let group = group_of(&t).await;
    assert_eq!(group["role"], "leader", "{group}");
    assert_eq!(group["agreed_heartbeat_ms"], Value::Null, "nothing left to take: {group}");
    let id = t.hotel(2).await;
    let (status, hold) = t.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 3, 1))).await;
    assert_eq!(status, StatusCode::CREATED, "the new core takes commands: {hold}");

    let t = t.reopen().await;
    assert_eq!(running(&group_of(&t).await), (Some(50), Some(800)), "kept across a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_timers_set_through_a_follower_run_on_every_member_without_an_election() {
    let (first, second, third, _) = three_members().await;
    let id = first.hotel(64).await;
    let before = group_of(&first).await;
    assert_eq!(before["role"], "leader", "{before}");
    // Holds go on through the leader and a follower while every core is
    // swapped: each waits out its member's swap, none fails.
    let timers = json!({ "heartbeat_ms": 40, "election_timeout_ms": 900 });
    let set = second.call("PUT", "/api/v1/group/timers", Some(timers));
    let ((status, group), through_leader, through_follower) =
        tokio::join!(set, unit_holds(&first, &id, 30), unit_holds(&third, &id, 30));
    assert_eq!(status, StatusCode::OK, "{group}");
    for (status, hold) in through_leader.into_iter().chain(through_follower) {
        assert_eq!(status, StatusCode::CREATED, "{hold}");
    }
    for member in [&first, &second, &third] {
        let taken = || async {
            let group = group_of(member).await;
            (group["heartbeat_ms"].as_u64(), group["election_timeout_ms"].as_u64()) == (Some(40), Some(900))
        };
        assert!(soon(taken).await, "{}", group_of(member).await);
    }
    let after = group_of(&first).await;
    assert_eq!((&after["role"], &after["term"]), (&json!("leader"), &before["term"]), "no election: {after}");

    // The new cores commit, through the leader and through a follower.
    for member in [&first, &third] {
        let (status, hold) = member.call("POST", "/api/v1/holds", Some(stay_hold(&id, 1, 3, 1))).await;
        assert_eq!(status, StatusCode::CREATED, "{hold}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn membership_changes_that_make_no_sense_are_refused_and_only_admins_make_them() {
    let t = TestNode::start().await;
    let me = group_of(&t).await["member_id"].as_u64().unwrap();
    let (status, body) = t.call("DELETE", &format!("/api/v1/group/members/{me}"), None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "group_change_refused");
    assert!(body["message"].as_str().unwrap().contains("last voter"), "{body}");
    let (status, body) = t.call("DELETE", "/api/v1/group/members/12345", None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "group_change_refused");
    let (status, body) = t.call("DELETE", "/api/v1/group/members/not-a-number", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let bad_peer = json!({ "member_id": 7, "peer_id": "has spaces", "addrs": [] });
    let (status, body) = t.call("POST", "/api/v1/group/members", Some(bad_peer)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "group_change_refused");
    let zero = json!({ "member_id": 0, "peer_id": "12D3KooW", "addrs": [] });
    let (status, body) = t.call("POST", "/api/v1/group/members", Some(zero)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "group_change_refused");
    let typo = json!({ "member": 7, "peer_id": "12D3KooW", "addrs": [] });
    let (status, body) = t.call("POST", "/api/v1/group/members", Some(typo)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");

    let anonymous = [("authorization", "anonymous")];
    let (status, _) = t.call_with("DELETE", &format!("/api/v1/group/members/{me}"), None, &anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, group) = t.call("GET", "/api/v1/group", None).await;
    assert_eq!(group["members"].as_array().map(Vec::len), Some(1), "nothing changed: {group}");
}

/// A member of `leader`'s group: a fresh node with the owner's key,
/// listening on loopback, added through the leader's API.
async fn join(leader: &TestNode, leader_peer: &str) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    crate::init_node(dir.path());
    let key = caravan_node::identity::KEY_FILE;
    std::fs::copy(leader.dir.path().join(key), dir.path().join(key)).unwrap();
    caravan_node::prepare_join(dir.path(), &[leader_peer.to_owned()]).unwrap();
    let options = caravan_node::NodeOptions { publish_interval_ms: 5, ..Default::default() };
    let node = caravan_node::Node::open(dir.path(), options).await.unwrap();
    node.start_network(super::network::loopback(vec![])).await.unwrap();
    let joiner = TestNode { dir, node };
    let (_, me) = joiner.call("GET", "/api/v1/group", None).await;
    assert_eq!(me["members"], json!([]), "not a member before the leader adds it: {me}");
    let input = json!({ "member_id": me["member_id"], "peer_id": me["peer_id"], "addrs": me["addrs"] });
    let (status, group) = leader.call("POST", "/api/v1/group/members", Some(input)).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    let added = group["members"].as_array().unwrap().iter().find(|m| m["id"] == me["member_id"]).cloned();
    assert_eq!(added.map(|m| m["voter"].clone()), Some(json!(true)), "{group}");
    joiner
}

/// A group of three in one process: a node listening on loopback (its
/// address returned last) and two members added through it.
async fn three_members() -> (TestNode, TestNode, TestNode, String) {
    let first = TestNode::start().await;
    let address = first.node.start_network(super::network::loopback(vec![])).await.unwrap().expect("listening");
    let first_peer = group_of(&first).await["peer_id"].as_str().unwrap().to_owned();
    let second = join(&first, &first_peer).await;
    let third = join(&first, &first_peer).await;
    (first, second, third, address)
}

async fn group_of(t: &TestNode) -> Value {
    t.call("GET", "/api/v1/group", None).await.1
}

/// Every record a member holds: kind, key, version and the signed bytes.
fn records_of(t: &TestNode) -> Vec<(i32, String, u64, Vec<u8>)> {
    let mut held = Vec::new();
    t.node
        .records()
        .for_each(|stored| {
            held.push((stored.kind as i32, stored.key, stored.version, stored.signed));
            Ok(())
        })
        .unwrap();
    held.sort();
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_serve_alike_sign_identical_records_and_survive_their_leader() {
    let (first, second, third, address) = three_members().await;
    let group = group_of(&first).await;
    assert_eq!(group["members"].as_array().map(Vec::len), Some(3), "{group}");

    // Any member takes commands; a follower reads its own writes.
    let listing = second.hotel(4).await;
    let (status, hold) = third.call("POST", "/api/v1/holds", Some(stay_hold(&listing, 2, 4, 1))).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let hold_path = format!("/api/v1/holds/{}", hold["id"]);
    let (status, confirmed) = third.call("POST", &format!("{hold_path}/confirm"), None).await;
    assert_eq!((status, &confirmed["state"]), (StatusCode::OK, &json!("confirmed")), "{confirmed}");

    // Every member signs the same records: same key, version, bytes.
    let members = [&first, &second, &third];
    let converged = super::network::eventually(|| {
        let records: Vec<_> = members.iter().map(|t| records_of(t)).collect();
        !records[0].is_empty() && records.iter().all(|r| r == &records[0])
    })
    .await;
    assert!(converged, "members' records differ");
    for t in members {
        let (_, origins) = t.call("GET", "/api/v1/origins", None).await;
        assert_eq!(origins["equivocations"], json!([]), "{origins}");
    }

    // An agency learns the three members from the owner's contact record.
    let agency = super::network::node_with_fast_rounds().await;
    agency.node.start_network(super::network::loopback(vec![address])).await.unwrap();
    let contact_version = |t: &TestNode| {
        records_of(t).into_iter().find(|(kind, ..)| *kind == caravan_records::Kind::Contact as i32).map(|r| r.2)
    };
    let published = contact_version(&first).expect("the owner publishes its contact");
    let newest_contact = |t: &TestNode| {
        records_of(t).into_iter().filter(|(kind, ..)| *kind == caravan_records::Kind::Contact as i32).map(|r| r.2).max()
    };
    let learned = super::network::eventually(|| {
        newest_contact(&agency) >= Some(published) && agency.node.read_catalog(|c| c.listing_count()) == 1
    })
    .await;
    assert!(learned, "the agency has the owner's listing and latest contact");

    // The leader goes; the others elect one and keep every booking.
    let TestNode { dir: _kept, node } = first;
    node.shutdown().await;
    let mut new_leader = None;
    for _ in 0..100 {
        let (a, b) = (group_of(&second).await, group_of(&third).await);
        if a["role"] == "leader" || b["role"] == "leader" {
            new_leader = Some(a["leader"].clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(new_leader.is_some(), "no new leader within 10 s");
    for t in [&second, &third] {
        let (status, kept) = t.call("GET", &hold_path, None).await;
        assert_eq!((status, &kept["state"]), (StatusCode::OK, &json!("confirmed")), "{kept}");
        let (status, more) = t.call("POST", "/api/v1/holds", Some(stay_hold(&listing, 5, 6, 1))).await;
        assert_eq!(status, StatusCode::CREATED, "{more}");
    }

    // The agency's first choice is gone: it books through another member.
    let origin = second.node.origin().to_hex();
    let booking = json!({
        "traveller": { "name": "Ada Lovelace", "email": "ada@example.org" },
        "parts": [{ "origin": origin, "listing": listing, "check_in": day(7), "check_out": day(8), "units": 1, "guests": 1 }]
    });
    let key = [("idempotency-key", "after-the-leader")];
    let (status, booked) = agency.call_with("POST", "/api/v1/bookings", Some(booking), &key).await;
    assert_eq!((status, &booked["state"]), (StatusCode::CREATED, &json!("confirmed")), "{booked}");
    for t in [&second, &third] {
        let mut sales = Value::Null;
        for _ in 0..100 {
            sales = t.call("GET", "/api/v1/sales?state=confirmed", None).await.1;
            let sold = sales["bookings"].as_array().unwrap().iter().any(|b| b["traveller"]["name"] == "Ada Lovelace");
            if sold {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let sold = sales["bookings"].as_array().unwrap().iter().any(|b| b["traveller"]["name"] == "Ada Lovelace");
        assert!(sold, "both survivors sold the room: {sales}");
    }
}

/// `count` holds of one unit for two nights, one after the other.
async fn unit_holds(member: &TestNode, listing: &str, count: usize) -> Vec<(StatusCode, Value)> {
    let mut answers = Vec::new();
    for _ in 0..count {
        answers.push(member.call("POST", "/api/v1/holds", Some(stay_hold(listing, 1, 3, 1))).await);
    }
    answers
}

/// Waits until `condition` holds at a member (followers apply what the
/// group committed a moment after the leader).
async fn soon<F: std::future::Future<Output = bool>>(mut condition: impl FnMut() -> F) -> bool {
    for _ in 0..250 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_logs_in_to_any_member_and_her_tokens_work_at_every_one() {
    use caravan_accounts::{LoginRefusal, Role};
    use caravan_api::AccountService;
    let (first, second, third, _) = three_members().await;
    let members = [&first, &second, &third];
    let email = "hana@example.org";
    let password = "a long enough phrase";

    // She registers at one member, confirms at another, and an admin at
    // the third makes her a provider.
    second.node.accounts().register(email, password).await.unwrap();
    let link = caravan_accounts::token::Secret::parse(&super::pages::mailed_token(&second, email)).unwrap();
    let known = soon(|| async { third.node.accounts().account_by_email(email).await.unwrap().is_some() }).await;
    assert!(known, "the account reaches every member");
    third.node.accounts().verify_email(&link).await.unwrap();
    let (user, _) = first.node.accounts().account_by_email(email).await.unwrap().unwrap();
    assert!(first.node.accounts().set_role(user, Role::Provider).await.unwrap());
    let managed = caravan_model::ListingId::parse("rl-hana").unwrap();
    first.node.accounts().add_manager(&managed, user).await.unwrap();

    // She logs in at every member, and her session, her API token and the
    // listings she manages are known at every one.
    for t in members {
        let logged_in = soon(|| async {
            match t.node.accounts().login(email, password, "10.0.0.7").await {
                Ok((principal, _)) => principal.role == Role::Provider,
                Err(LoginRefusal::Unverified) => false,
                Err(refusal) => panic!("{refusal}"),
            }
        })
        .await;
        assert!(logged_in, "she logs in at every member");
    }
    let (_, session) = third.node.accounts().login(email, password, "10.0.0.7").await.unwrap();
    let token = second.node.accounts().issue_api_token(user, "channel manager").await.unwrap();
    for t in members {
        let accounts = t.node.accounts();
        let everywhere = soon(|| async {
            let session = accounts.session(&session).await.unwrap().map(|p| p.user);
            let api = accounts.principal(&token).await.unwrap().map(|p| p.user);
            let listings = accounts.managed_listings(user).await.unwrap();
            session == Some(user) && api == Some(user) && listings == ["rl-hana"]
        })
        .await;
        assert!(everywhere, "her session, token and listing are known at every member");
        let bearer = format!("Bearer {}", token.reveal());
        let (status, _) = t.call_with("GET", "/api/v1/holds/h-1", None, &[("authorization", bearer.as_str())]).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "her token opens the API of every member");
    }

    // Revoked at one member, the token opens none; logged out at one, the
    // session ends at all.
    let hash: [u8; 32] = token.stored_hash(caravan_accounts::token::TokenKind::Api);
    assert!(first.node.accounts().revoke_api_token(user, hash).await.unwrap());
    second.node.accounts().logout(&session).await.unwrap();
    for t in members {
        let accounts = t.node.accounts();
        let ended = soon(|| async {
            accounts.principal(&token).await.unwrap().is_none() && accounts.session(&session).await.unwrap().is_none()
        })
        .await;
        assert!(ended, "a revoked token and an ended session end at every member");
    }
}

/// An agency that runs as a group of three: a booking asked for at a
/// follower is driven by the leader; the leader is lost while the booking
/// waits for its traveller; the next leader picks it up and the traveller
/// confirms it at another member. Nothing is lost, nothing is booked twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agency_group_loses_its_leader_mid_booking_and_keeps_the_booking() {
    let (first, second, third, address) = three_members().await;
    let hotel = super::network::node_with_fast_rounds().await;
    hotel.node.start_network(super::network::loopback(vec![address])).await.unwrap();
    let hotel_id = hotel.hotel(2).await;
    for t in [&first, &second, &third] {
        let knows =
            super::network::eventually(|| t.node.read_catalog(|c| c.listing_count() == 1 && c.contact_count() >= 2));
        assert!(knows.await, "every member of the agency knows the hotel and how to reach it");
    }

    let booking = json!({
        "traveller": { "name": "Ada Lovelace", "email": "ada@example.org" },
        "parts": [{ "origin": hotel.node.origin().to_hex(), "listing": hotel_id, "check_in": day(2), "check_out": day(3) }],
        "hold_only": true
    });
    let (status, held) = second.call("POST", "/api/v1/bookings", Some(booking)).await;
    assert_eq!((status, &held["state"]), (StatusCode::ACCEPTED, &json!("held")), "{held}");
    let path = format!("/api/v1/bookings/{}", held["id"]);
    for t in [&first, &third] {
        let known = soon(|| async { t.call("GET", &path, None).await.1["state"] == "held" }).await;
        assert!(known, "every member has the held booking");
    }

    // The agency's leader goes while the booking waits for its traveller.
    let TestNode { dir: _kept, node } = first;
    node.shutdown().await;
    let led =
        soon(|| async { group_of(&second).await["role"] == "leader" || group_of(&third).await["role"] == "leader" });
    assert!(led.await, "the agency's group elects a new leader");
    let (status, confirmed) = third.call("POST", &format!("{path}/confirm"), None).await;
    assert_eq!((status, &confirmed["state"]), (StatusCode::CREATED, &json!("confirmed")), "{confirmed}");
    for t in [&second, &third] {
        let done = soon(|| async { t.call("GET", &path, None).await.1["state"] == "confirmed" }).await;
        assert!(done, "both survivors have the booking confirmed");
    }
    let (_, sales) = hotel.call("GET", "/api/v1/sales?state=confirmed", None).await;
    assert_eq!(sales["bookings"].as_array().map(Vec::len), Some(1), "the room is booked once: {sales}");
}
