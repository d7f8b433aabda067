//! The catalog follows the records and can be rebuilt from them.

use caravan_catalog::db;
use caravan_model::*;
use caravan_records::{sign_bundle, sign_one, verify, verify_batch, Draft, Payload, Record, Verified};
use caravan_store::{open_writer, records, DB_FILE};
use ed25519_dalek::SigningKey;

const NOW: Timestamp = Timestamp(1_893_456_000_000);

fn listing(id: &str, city: &str) -> Listing {
    caravan_test_utils::stay(id, city, 9)
}

fn ari(available: u32, price: i64) -> Payload {
    let day = AriDay { available, price_minor: price, ..AriDay::default() };
    Payload::Ari(vec![AriRun { start: NOW.date(), days: 10, day }])
}

/// A history with replacements, a withdrawal, bundles and an equivocation.
fn history() -> Vec<Verified<Record>> {
    let hotel = SigningKey::from_bytes(&[1; 32]);
    let chain = SigningKey::from_bytes(&[2; 32]);
    let liar = SigningKey::from_bytes(&[3; 32]);
    let one = |key: &SigningKey, id: &str, version, payload| {
        verify(sign_one(key, &Draft { key: id.into(), version, time: NOW, payload }), NOW).unwrap()
    };
    let mut out = vec![
        one(&hotel, "venice-1", 1, Payload::Listing(listing("venice-1", "Venice"))),
        one(&hotel, "venice-1", 2, ari(5, 20_000)),
        one(&hotel, "venice-1", 3, ari(4, 21_000)),
        one(&hotel, "venice-2", 4, Payload::Listing(listing("venice-2", "Venice"))),
        one(&hotel, "venice-2", 5, ari(1, 9_000)),
        one(&hotel, "venice-2", 6, Payload::Withdrawal),
        one(&liar, "rome-1", 1, Payload::Listing(listing("rome-1", "Rome"))),
        one(&liar, "rome-1", 2, ari(1, 1)),
        one(&liar, "rome-1", 2, ari(2, 1)),
    ];
    let drafts: Vec<Draft> = (0..6)
        .flat_map(|i| {
            let id = format!("milan-{i}");
            [
                Draft { key: id.clone(), version: 10, time: NOW, payload: Payload::Listing(listing(&id, "Milan")) },
                Draft { key: id, version: 10, time: NOW, payload: ari(i, 10_000 + i as i64) },
            ]
        })
        .collect();
    out.extend(verify_batch(sign_bundle(&chain, &drafts), NOW).into_iter().map(Result::unwrap));
    out
}

fn deliver(conn: &caravan_store::rusqlite::Connection, records: &[Verified<Record>]) {
    for record in records {
        let outcome = records::put(conn, record, NOW).unwrap();
        db::on_put(conn, record, &outcome).unwrap();
    }
}

#[test]
fn rebuilding_from_records_gives_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    deliver(&conn, &history());
    let live = db::digest(&conn).unwrap();
    assert_eq!(db::listing_count(&conn).unwrap(), 7, "venice-1 and six in Milan; venice-2 withdrawn, rome frozen");

    let rebuilt_from = db::rebuild(&conn, NOW).unwrap();
    assert_eq!(
        rebuilt_from, 15,
        "venice-1 listing and ARI, venice-2 tombstone, Milan 6 × 2; nothing of the frozen origin"
    );
    assert_eq!(db::digest(&conn).unwrap(), live);
}

#[test]
fn any_delivery_order_converges_to_the_same_catalog() {
    let history = history();
    let dir = tempfile::tempdir().unwrap();
    let in_order = open_writer(&dir.path().join("a.sqlite")).unwrap();
    deliver(&in_order, &history);
    let reversed = open_writer(&dir.path().join("b.sqlite")).unwrap();
    let mut backwards = history.clone();
    backwards.reverse();
    deliver(&reversed, &backwards);
    assert_eq!(db::digest(&reversed).unwrap(), db::digest(&in_order).unwrap());
}

#[test]
fn the_digest_sees_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
    let history = history();
    deliver(&conn, &history[..2]);
    let before = db::digest(&conn).unwrap();
    deliver(&conn, &history[2..3]);
    assert_ne!(db::digest(&conn).unwrap(), before);
}
