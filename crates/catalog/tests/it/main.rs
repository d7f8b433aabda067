//! The catalog follows the records: built change by change in any order,
//! it is the catalog built from the newest records at once; its snapshot
//! reads back whole or not at all.

use caravan_catalog::{snapshot, Catalog, Change};
use caravan_model::*;
use caravan_records::Origin;
use caravan_records::{sign_bundle, sign_one, verify, verify_batch, Draft, Payload, Record, Verified};
use caravan_replication::{MemoryStore, Put, RecordStore};
use caravan_search::{MemoryShelf, Place, StayQuery};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const NOW: Timestamp = Timestamp(1_893_456_000_000);

/// Listings with amenities named in different orders, so that the index
/// meets the names in an order that depends on the order of delivery.
fn listing(id: &str, city: &str) -> Listing {
    let mut listing = caravan_test_utils::stay(id, city, 9);
    if let ListingDetails::Stay(stay) = &mut listing.details {
        let names = ["wifi", "pool", "spa", "parking"];
        let first = id.len() % names.len();
        stay.amenities = names.iter().cycle().skip(first).take(3).map(|a| a.to_string()).collect();
    }
    listing
}

fn ari(available: u32, price: i64) -> Payload {
    let day = AriDay { available, price_minor: price, ..AriDay::default() };
    Payload::Ari(vec![AriRun { start: NOW.date(), days: 10, day }])
}

/// A history with replacements, a withdrawal, bundles, a contact and an
/// equivocation.
fn history() -> Vec<Verified<Record>> {
    let hotel = SigningKey::from_bytes(&[1; 32]);
    let chain = SigningKey::from_bytes(&[2; 32]);
    let liar = SigningKey::from_bytes(&[3; 32]);
    let one = |key: &SigningKey, id: &str, version, payload| {
        verify(sign_one(key, &Draft { key: id.into(), version, time: NOW, payload }), NOW).unwrap()
    };
    let contact = Contact { peers: vec![PeerContact { peer_id: "12D3KooWhotel".into(), addrs: vec![] }] };
    let mut out = vec![
        one(&hotel, "venice-1", 1, Payload::Listing(listing("venice-1", "Venice"))),
        one(&hotel, "venice-1", 2, ari(5, 20_000)),
        one(&hotel, "venice-1", 3, ari(4, 21_000)),
        one(&hotel, "venice-2", 4, Payload::Listing(listing("venice-2", "Venice"))),
        one(&hotel, "venice-2", 5, ari(1, 9_000)),
        one(&hotel, "venice-2", 6, Payload::Withdrawal),
        one(&hotel, "node", 7, Payload::Contact(contact)),
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

/// Stores each record as the node does, and tells the catalog what the
/// store says changed.
fn deliver(store: &mut MemoryStore, catalog: &mut Catalog, records: &[Verified<Record>]) {
    for record in records {
        let change = match store.put(record.clone(), NOW) {
            Ok(Put::New { .. }) => Change::Put(Box::new(record.clone().into_inner())),
            Ok(Put::Equivocation(proof)) => Change::Freeze(proof.origin()),
            Ok(Put::Old | Put::Frozen) => continue,
            Err(never) => match never {},
        };
        catalog.apply(change);
    }
}

/// The catalog of a store's newest records and frozen origins, at once.
fn from_scratch(store: &MemoryStore) -> Catalog {
    let mut catalog = Catalog::default();
    for record in store.records() {
        catalog.put((**record).clone());
    }
    for origin in store.frozen() {
        catalog.freeze(*origin);
    }
    catalog
}

fn delivered(records: &[Verified<Record>]) -> (MemoryStore, Catalog) {
    let (mut store, mut catalog) = (MemoryStore::default(), Catalog::default());
    deliver(&mut store, &mut catalog, records);
    (store, catalog)
}

/// The store's newest listings and runs, as the node's shelf reads them.
fn shelf(store: &MemoryStore) -> MemoryShelf<Origin> {
    let mut shelf = MemoryShelf::default();
    for record in store.records() {
        match &record.payload {
            Payload::Listing(listing) => shelf.put_listing(&record.origin, &record.key, listing.clone()),
            Payload::Ari(runs) => shelf.put_ari(&record.origin, &record.key, runs.clone()),
            _ => {}
        }
    }
    shelf
}

#[test]
fn the_catalog_holds_the_newest_of_each_listing() {
    let (store, catalog) = delivered(&history());
    assert_eq!(catalog.listing_count(), 7, "venice-1 and six in Milan; venice-2 withdrawn, rome frozen");
    assert_eq!(catalog.contact_count(), 1);
    let venice = Place::City { city: "Venice".into(), country: None };
    let venice = StayQuery::new(venice, NOW.date(), NOW.date().add_days(1), 1);
    let offers = catalog.index.search_stays(&venice, &shelf(&store));
    let found: Vec<(&str, i64)> = offers.iter().map(|o| (o.listing.id.as_str(), o.price.total.amount_minor)).collect();
    assert_eq!(found, vec![("venice-1", 21_000)], "the newer availability replaced the older; venice-2 is withdrawn");
    assert!(catalog.is_frozen(&caravan_records::Origin(SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes())));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn built_in_any_order_it_is_the_catalog_built_at_once(order in Just((0..22).collect::<Vec<usize>>()).prop_shuffle()) {
        let history = history();
        let shuffled: Vec<_> = order.iter().map(|&i| history[i].clone()).collect();
        let (store, catalog) = delivered(&shuffled);
        prop_assert_eq!(catalog.digest(), from_scratch(&store).digest());
        let (_, in_order) = delivered(&history);
        prop_assert_eq!(catalog.digest(), in_order.digest());
        prop_assert_eq!(catalog.digest(), catalog.digest_recomputed(), "kept in step with every change");
    }
}

#[test]
fn the_digest_sees_every_change() {
    let history = history();
    let (mut store, mut catalog) = delivered(&history[..2]);
    let before = catalog.digest();
    deliver(&mut store, &mut catalog, &history[2..3]);
    assert_ne!(catalog.digest(), before);
}

#[test]
fn a_snapshot_reads_back_as_the_same_catalog() {
    let (_, catalog) = delivered(&history());
    let mut bytes = Vec::new();
    snapshot::encode(&catalog, 42, &mut bytes).unwrap();
    let (read, mark) = snapshot::decode(&bytes).unwrap();
    assert_eq!(mark, 42);
    assert_eq!(read.digest(), catalog.digest());
    assert_eq!(read.digest_recomputed(), catalog.digest(), "what was read is what was saved");
    assert_eq!(read.listing_count(), catalog.listing_count());
}

#[test]
fn a_damaged_snapshot_is_refused() {
    let (_, catalog) = delivered(&history());
    let mut bytes = Vec::new();
    snapshot::encode(&catalog, 7, &mut bytes).unwrap();
    for at in [20, bytes.len() / 2, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x40;
        assert_eq!(snapshot::decode(&damaged).err(), Some(snapshot::SnapshotError::Checksum), "byte {at}");
    }
    assert!(snapshot::decode(&bytes[..bytes.len() - 1]).is_err(), "cut short");
    assert_eq!(snapshot::decode(b"not a snapshot at all, no").err(), Some(snapshot::SnapshotError::NotASnapshot));
    let mut other_version = bytes.clone();
    other_version[16] = 9;
    assert_eq!(snapshot::decode(&other_version).err(), Some(snapshot::SnapshotError::Version(9)));
}
