//! Records: signing, verification and every rejection reason.

use caravan_model::{AriDay, AriRun, Listing, Timestamp};
use caravan_records::limits::*;
use caravan_records::{
    proto, sign_bundle, sign_one, verify, verify_batch, Draft, EquivocationProof, Payload, Proof, Rejection,
};
use ed25519_dalek::SigningKey;
use prost::Message;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn ari_draft(listing: &str, version: u64, available: u32) -> Draft {
    let today = NOW.date();
    let day = AriDay { available, price_minor: 12_000, ..AriDay::default() };
    Draft {
        key: listing.into(),
        version,
        time: NOW,
        payload: Payload::Ari(vec![AriRun { start: today, days: 30, day }]),
    }
}

fn listing_draft(title: String) -> Draft {
    let listing = Listing { title, ..caravan_test_utils::stay("room-1", "Lisbon", 1) };
    Draft { key: "room-1".into(), version: 1, time: NOW, payload: Payload::Listing(listing) }
}

fn rejection(signed: proto::SignedRecord) -> Rejection {
    verify(signed, NOW).expect_err("must be rejected")
}

#[test]
fn a_signed_record_verifies_and_round_trips() {
    let signed = sign_one(&key(1), &listing_draft("Sea view flat".into()));
    let record = verify(signed.clone(), NOW).unwrap();
    assert_eq!(record.origin.0, key(1).verifying_key().to_bytes());
    assert_eq!(record.version, 1);
    let again = verify(caravan_records::decode_signed(&record.encode()).unwrap(), NOW).unwrap();
    assert_eq!(again, record);
    assert_eq!(again.body(), signed.record.as_slice(), "never re-encoded");
}

#[test]
fn signing_is_deterministic() {
    let draft = ari_draft("room-1", 7, 3);
    assert_eq!(sign_one(&key(1), &draft), sign_one(&key(1), &draft));
    assert_eq!(sign_bundle(&key(1), &[draft.clone(), draft.clone()]), sign_bundle(&key(1), &[draft.clone(), draft]));
}

#[test]
fn forged_record_is_rejected() {
    // Signed by key 2, claiming to be from key 1.
    let mut forged = sign_one(&key(2), &ari_draft("room-1", 1, 3));
    let mut body = proto::Record::decode(forged.record.as_slice()).unwrap();
    body.origin = key(1).verifying_key().to_bytes().to_vec();
    forged.record = body.encode_to_vec();
    assert_eq!(rejection(forged), Rejection::BadSignature);
}

#[test]
fn tampered_record_is_rejected() {
    let mut signed = sign_one(&key(1), &ari_draft("room-1", 1, 3));
    let mut body = proto::Record::decode(signed.record.as_slice()).unwrap();
    body.version = 2;
    signed.record = body.encode_to_vec();
    assert_eq!(rejection(signed), Rejection::BadSignature);
}

#[test]
fn oversized_record_is_rejected() {
    let mut signed = sign_one(&key(1), &ari_draft("room-1", 1, 3));
    signed.record.extend(std::iter::repeat_n(0u8, SIGNED_RECORD_BYTES_MAX));
    assert!(matches!(rejection(signed), Rejection::Oversized { .. }));
    let big = vec![0u8; SIGNED_RECORD_BYTES_MAX + 1];
    assert!(matches!(caravan_records::decode_signed(&big), Err(Rejection::Oversized { .. })));
}

#[test]
fn each_limit_has_its_reason() {
    let long_title = sign_one(&key(1), &listing_draft("x".repeat(5000)));
    assert!(matches!(rejection(long_title), Rejection::FieldTooLong { field: "title", .. }));

    let mut far = ari_draft("room-1", 1, 3);
    far.payload = Payload::Ari(vec![AriRun {
        start: NOW.date().add_days(800),
        days: 1,
        day: AriDay { available: 1, price_minor: 1, ..AriDay::default() },
    }]);
    assert!(matches!(rejection(sign_one(&key(1), &far)), Rejection::OutOfHorizon { .. }));

    // Dates at the edge of i32 must be refused, not overflow.
    for start_day in [i32::MAX, i32::MAX - 10, i32::MIN] {
        let mut edge = ari_draft("room-1", 1, 3);
        edge.payload = Payload::Ari(vec![AriRun {
            start: caravan_model::Date::from_days(start_day),
            days: 700,
            day: AriDay { available: 1, price_minor: 1, ..AriDay::default() },
        }]);
        assert!(matches!(rejection(sign_one(&key(1), &edge)), Rejection::OutOfHorizon { .. }), "{start_day}");
    }

    let mut future = ari_draft("room-1", 1, 3);
    future.time = NOW.saturating_add_ms(TIME_SKEW_MS_MAX + 1);
    assert!(matches!(rejection(sign_one(&key(1), &future)), Rejection::TimeInFuture { .. }));

    let bad_key = Draft { key: "no spaces allowed".into(), ..ari_draft("x", 1, 1) };
    assert!(matches!(rejection(sign_one(&key(1), &bad_key)), Rejection::BadKey(_)));

    let zero = ari_draft("room-1", 0, 3);
    assert_eq!(rejection(sign_one(&key(1), &zero)), Rejection::ZeroVersion);

    let mut unknown = sign_one(&key(1), &ari_draft("room-1", 1, 3));
    let mut body = proto::Record::decode(unknown.record.as_slice()).unwrap();
    body.kind = 42;
    unknown.record = body.encode_to_vec();
    assert_eq!(rejection(unknown), Rejection::UnknownKind(42));

    let garbage = proto::SignedRecord { record: vec![0xFF, 0x01], proof: None };
    assert!(matches!(rejection(garbage), Rejection::Malformed(_)));

    let mut overlapping = ari_draft("room-1", 1, 3);
    let day = AriDay { available: 1, price_minor: 1, ..AriDay::default() };
    overlapping.payload =
        Payload::Ari(vec![AriRun { start: NOW.date(), days: 3, day }, AriRun { start: NOW.date(), days: 1, day }]);
    assert!(matches!(rejection(sign_one(&key(1), &overlapping)), Rejection::InvalidPayload(_)));
}

#[test]
fn a_bad_record_in_a_batch_does_not_taint_the_others() {
    let mut batch: Vec<_> = (1..=20).map(|v| sign_one(&key(1), &ari_draft("room-1", v, 3))).collect();
    let mut body = proto::Record::decode(batch[7].record.as_slice()).unwrap();
    body.time_ms -= 1;
    batch[7].record = body.encode_to_vec();
    let results = verify_batch(batch, NOW);
    for (idx, result) in results.iter().enumerate() {
        assert_eq!(result.is_ok(), idx != 7, "record {idx}: {result:?}");
    }
    assert_eq!(results[7].as_ref().unwrap_err(), &Rejection::BadSignature);
}

#[test]
fn bundled_records_verify_alone_and_reject_tampering() {
    let drafts: Vec<Draft> = (0..13).map(|i| ari_draft(&format!("room-{i}"), 5, i)).collect();
    let bundle = sign_bundle(&key(3), &drafts);
    assert!(verify_batch(bundle.clone(), NOW).iter().all(Result::is_ok));
    // Each one alone, as when fetched later from a store.
    let alone = verify(bundle[12].clone(), NOW).unwrap();
    assert!(matches!(alone.proof(), Proof::Bundle { leaf_index: 12, leaf_count: 13, .. }));

    let mut tampered = bundle[4].clone();
    let mut body = proto::Record::decode(tampered.record.as_slice()).unwrap();
    body.version = 6;
    tampered.record = body.encode_to_vec();
    assert_eq!(rejection(tampered), Rejection::BadProof);

    // A bundle signature by another key over the same root.
    let mut stolen = bundle[0].clone();
    let other = sign_bundle(&key(4), &drafts);
    if let (Some(proto::signed_record::Proof::Bundle(mine)), Some(proto::signed_record::Proof::Bundle(theirs))) =
        (stolen.proof.as_mut(), other[0].proof.as_ref())
    {
        mine.signature = theirs.signature.clone();
    }
    assert_eq!(rejection(stolen), Rejection::BadProof);

    // A bundle signature can never pass as a record signature.
    let mut as_single = bundle[0].clone();
    if let Some(proto::signed_record::Proof::Bundle(b)) = &bundle[0].proof {
        as_single.proof = Some(proto::signed_record::Proof::Signature(b.signature.clone()));
    }
    assert_eq!(rejection(as_single), Rejection::BadSignature);
}

#[test]
fn equivocation_is_detected_and_its_proof_verifies() {
    let a = verify(sign_one(&key(1), &ari_draft("room-1", 9, 3)), NOW).unwrap();
    let b = verify(sign_one(&key(1), &ari_draft("room-1", 9, 2)), NOW).unwrap();
    let c = verify(sign_one(&key(1), &ari_draft("room-1", 10, 2)), NOW).unwrap();
    assert!(EquivocationProof::detect(&a, &a).is_none(), "the same record twice is a duplicate");
    assert!(EquivocationProof::detect(&a, &c).is_none(), "a newer version replaces");
    let proof = EquivocationProof::detect(&a, &b).expect("equivocation");
    let decoded = EquivocationProof::verify(&proof.encode(), NOW).unwrap();
    assert_eq!(decoded.origin(), a.origin);

    // A proof made of two records from different slots proves nothing.
    let fake = EquivocationProof { first: a.clone(), second: c };
    assert!(EquivocationProof::verify(&fake.encode(), NOW).is_err());
}

#[test]
fn unknown_fields_survive_verification() {
    let signed = sign_one(&key(1), &ari_draft("room-1", 1, 3));
    let mut body = signed.record.clone();
    // Field 15, varint 1: a field a future version might add.
    body.extend_from_slice(&[0x78, 0x01]);
    let signature = ed25519_dalek::Signer::sign(&key(1), &body).to_bytes().to_vec();
    let extended =
        proto::SignedRecord { record: body.clone(), proof: Some(proto::signed_record::Proof::Signature(signature)) };
    let record = verify(extended, NOW).unwrap();
    assert_eq!(record.body(), body.as_slice());
}

/// The same draft, its ARI payload replaced by `payload`, signed.
fn signed_with_ari_payload(payload: proto::AriPayload) -> proto::SignedRecord {
    use ed25519_dalek::Signer;
    let signed = sign_one(&key(1), &ari_draft("room-1", 1, 3));
    let mut body = proto::Record::decode(signed.record.as_slice()).unwrap();
    body.payload = payload.encode_to_vec();
    let record = body.encode_to_vec();
    let signature = key(1).sign(&record).to_bytes().to_vec();
    proto::SignedRecord { record, proof: Some(proto::signed_record::Proof::Signature(signature)) }
}

/// Runs travel packed; records published with runs one by one still
/// read the same; a record may not give both, nor bytes that do not unpack.
#[test]
fn runs_travel_packed_and_runs_one_by_one_still_read() {
    let draft = ari_draft("room-1", 1, 3);
    let Payload::Ari(runs) = &draft.payload else { unreachable!() };
    let packed = sign_one(&key(1), &draft);
    let body = proto::Record::decode(packed.record.as_slice()).unwrap();
    let payload = proto::AriPayload::decode(body.payload.as_slice()).unwrap();
    assert!(payload.runs.is_empty() && !payload.packed_runs.is_empty());
    assert_eq!(verify(packed, NOW).unwrap().payload, draft.payload);

    let one_by_one: Vec<proto::AriRun> = runs
        .iter()
        .map(|run| proto::AriRun {
            start_day: run.start.days(),
            days: run.days,
            available: run.day.available,
            price_minor: run.day.price_minor,
            ..proto::AriRun::default()
        })
        .collect();
    let old = signed_with_ari_payload(proto::AriPayload { runs: one_by_one.clone(), packed_runs: vec![] });
    assert_eq!(verify(old, NOW).unwrap().payload, draft.payload);

    let both = signed_with_ari_payload(proto::AriPayload { runs: one_by_one, packed_runs: payload.packed_runs });
    assert!(matches!(rejection(both), Rejection::InvalidPayload(_)));
    let garbage = signed_with_ari_payload(proto::AriPayload { runs: vec![], packed_runs: vec![0x80] });
    assert!(matches!(rejection(garbage), Rejection::InvalidPayload(_)));
}
