//! The one signature rule: every signature a node checks, alone or in a
//! batch, is judged by ZIP-215 (ed25519-zebra), whose batch and single
//! checks agree on every input. With ed25519's classic rules they do not:
//! the cofactored batch equation accepts a signature whose `R` carries a
//! small-order component that a strict single check refuses, so whether
//! such a record was taken would depend on what else arrived with it.
//!
//! Beside the rule, a key that names an origin must be the canonical
//! encoding of a point that is not of small order. A small-order key
//! verifies forged signatures for every message, and a second encoding of
//! one key would make the same signer two origins. Every check takes its
//! key through [`signer_key`] first; that looks at the bytes alone (no
//! field arithmetic: a batch decodes each key once, and a second decoding
//! here would cost a third of a check), so a key that is no point at all
//! is found by the signature check, which it fails.

use std::sync::OnceLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_zebra::batch::{Item, Verifier};
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};

/// A key accepted as a signer: canonical and not of small order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignerKey([u8; 32]);

/// `bytes` as a signer's key, or `None` if no origin may have it: a `y`
/// at or above the field's modulus (a second encoding of a smaller one),
/// or the `y` of a point of small order (whatever its sign bit).
pub fn signer_key(bytes: &[u8; 32]) -> Option<SignerKey> {
    let mut y = *bytes;
    y[31] &= 0x7f;
    (below_modulus(&y) && !small_order_ys().contains(&y)).then_some(SignerKey(*bytes))
}

/// Whether `y` (little-endian, top bit clear) is below 2^255 - 19.
fn below_modulus(y: &[u8; 32]) -> bool {
    // At or above the modulus only if every byte but the lowest is at its
    // most and the lowest reaches 0xed.
    !(y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed)
}

/// The `y` of each point of small order (five: the eight points share
/// them in pairs of opposite `x`, but for `x = 0`).
fn small_order_ys() -> &'static [[u8; 32]] {
    static YS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    YS.get_or_init(|| {
        let mut ys: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|point| {
                let mut y = point.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect();
        ys.sort();
        ys.dedup();
        ys
    })
}

/// Whether `signature` is `key`'s over `message`.
pub fn verify_one(key: SignerKey, message: &[u8], signature: &[u8; 64]) -> bool {
    VerificationKey::try_from(key.0).and_then(|key| key.verify(&Signature::from_bytes(signature), message)).is_ok()
}

/// Checks many signatures at once; one answer per input, in order, the
/// same as [`verify_one`] would give each. One batch when all are good;
/// when one is not, each is checked alone to find out which.
pub fn verify_each(signed: &[(SignerKey, &[u8], [u8; 64])]) -> Vec<bool> {
    let items: Vec<Item> = signed
        .iter()
        .map(|(key, message, signature)| {
            Item::from((VerificationKeyBytes::from(key.0), Signature::from_bytes(signature), message))
        })
        .collect();
    let mut batch = Verifier::new();
    for item in &items {
        batch.queue(item.clone());
    }
    if batch.verify(weights_for(signed)).is_ok() {
        return vec![true; items.len()];
    }
    items.into_iter().map(|item| item.verify_single().is_ok()).collect()
}

/// Where a batch draws the random weights of its equation: from a hash
/// of everything in it, so no signer can choose a signature knowing its
/// weight (each depends on every other), and a batch is judged the same
/// on every run.
fn weights_for(signed: &[(SignerKey, &[u8], [u8; 64])]) -> rand::rngs::StdRng {
    let mut transcript = blake3::Hasher::new_derive_key("caravan signature batch weights");
    for (key, message, signature) in signed {
        transcript.update(&key.0);
        transcript.update(signature);
        transcript.update(&(message.len() as u64).to_le_bytes());
        transcript.update(message);
    }
    rand::SeedableRng::from_seed(*transcript.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};

    use super::*;

    /// Every 32-byte string that decodes (as ZIP-215 decodes: `y` taken
    /// mod p, the sign bit of `x = 0` ignored) to a point of small order:
    /// the eight canonical encodings and their non-canonical twins.
    fn small_order_encodings() -> Vec<[u8; 32]> {
        // p = 2^255 - 19, little-endian.
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut found = Vec::new();
        for point in EIGHT_TORSION {
            let canonical = point.compress().to_bytes();
            let mut twins = vec![canonical];
            let mut flipped = canonical;
            flipped[31] ^= 0x80;
            twins.push(flipped);
            // y + p, where it still fits in 255 bits, with either sign.
            let (mut sum, mut carry) = ([0u8; 32], 0u16);
            for i in 0..32 {
                let digit = (canonical[i] & if i == 31 { 0x7f } else { 0xff }) as u16 + p[i] as u16 + carry;
                sum[i] = digit as u8;
                carry = digit >> 8;
            }
            if carry == 0 && sum[31] & 0x80 == 0 {
                twins.push(sum);
                twins.push([&sum[..31], &[sum[31] | 0x80]].concat().try_into().unwrap());
            }
            for twin in twins {
                let decodes_small = CompressedEdwardsY(twin).decompress().is_some_and(|q| q.is_small_order());
                if decodes_small && !found.contains(&twin) {
                    found.push(twin);
                }
            }
        }
        found
    }

    /// A signature by secret scalar `a` over `message` whose nonce point is
    /// encoded as `r_bytes` (for nonce scalar `r`): `(R, r + k·a)`.
    fn sign_with(a: Scalar, r: Scalar, r_bytes: [u8; 32], message: &[u8]) -> [u8; 64] {
        let key = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let k = Scalar::from_hash(Sha512::new().chain_update(r_bytes).chain_update(key).chain_update(message));
        let s = r + k * a;
        [r_bytes, s.to_bytes()].concat().try_into().unwrap()
    }

    fn key_of(a: Scalar) -> SignerKey {
        signer_key(&(ED25519_BASEPOINT_POINT * a).compress().to_bytes()).expect("a usable key")
    }

    #[test]
    fn there_are_fourteen_encodings_of_small_order_points_and_none_is_a_signer() {
        let encodings = small_order_encodings();
        assert_eq!(encodings.len(), 14);
        assert!(encodings.iter().all(|bytes| signer_key(bytes).is_none()));
        let a = Scalar::from(7u64);
        let key = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        assert!(signer_key(&key).is_some());
        // y = p and above: second encodings, whatever point they name.
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        for low in 0xed..=0xff {
            p[0] = low;
            assert!(signer_key(&p).is_none(), "{low:#x}");
        }
    }

    /// A key that is no point passes the byte checks and fails every
    /// signature check, alone and in a batch.
    #[test]
    fn a_key_that_is_no_point_signs_nothing() {
        let off_curve = (2u8..)
            .map(|low| {
                let mut y = [0u8; 32];
                y[0] = low;
                y
            })
            .find(|y| CompressedEdwardsY(*y).decompress().is_none())
            .unwrap();
        let stranger = signer_key(&off_curve).expect("canonical and not of small order");
        let a = Scalar::from(3u64);
        let good = (
            key_of(a),
            b"m".as_slice(),
            sign_with(a, Scalar::ONE, ED25519_BASEPOINT_POINT.compress().to_bytes(), b"m"),
        );
        let bad = (stranger, b"m".as_slice(), good.2);
        assert!(!verify_one(stranger, b"m", &good.2));
        assert_eq!(verify_each(&[good, bad]), vec![true, false]);
    }

    /// The ZIP-215 edge cases: a nonce point `R` given by each encoding of
    /// each small-order point, and a nonce with a small-order component.
    /// ZIP-215 accepts them all; alone or in any batch, so does a node.
    #[test]
    fn batch_and_single_checks_agree_on_the_small_order_edge_cases() {
        let a = Scalar::from(0x5eed_u64) * Scalar::from(0x1234_5678_u64);
        let key = key_of(a);
        let message = b"caravan record".as_slice();
        let mut signed: Vec<(SignerKey, &[u8], [u8; 64])> = Vec::new();
        // R small order (any encoding): with r = 0, s = k·a.
        for r_bytes in small_order_encodings() {
            signed.push((key, message, sign_with(a, Scalar::ZERO, r_bytes, message)));
        }
        // R = [r]B + T: the cofactored equation accepts, a strict one not.
        for torsion in EIGHT_TORSION.iter().skip(1) {
            let r = Scalar::from(99u64);
            let r_bytes = (ED25519_BASEPOINT_POINT * r + torsion).compress().to_bytes();
            signed.push((key, message, sign_with(a, r, r_bytes, message)));
        }
        let alone: Vec<bool> = signed.iter().map(|(key, m, sig)| verify_one(*key, m, sig)).collect();
        assert!(alone.iter().all(|&ok| ok), "ZIP-215 accepts every one: {alone:?}");
        assert_eq!(verify_each(&signed), alone);
        // With a forgery among them, each is still judged as alone.
        let mut forged = sign_with(
            a,
            Scalar::from(5u64),
            (ED25519_BASEPOINT_POINT * Scalar::from(5u64)).compress().to_bytes(),
            message,
        );
        forged[40] ^= 1;
        signed.push((key, message, forged));
        let mut expected = alone.clone();
        expected.push(false);
        assert_eq!(verify_each(&signed), expected);
        for (i, one) in signed.iter().enumerate() {
            assert_eq!(verify_each(std::slice::from_ref(one)), vec![expected[i]], "entry {i} alone");
        }
    }

    proptest::proptest! {
        /// Any batch, mixing good signatures, small-order edge cases and
        /// noise in any order, is judged entry by entry as alone.
        #[test]
        fn a_batch_judges_each_signature_as_it_is_judged_alone(
            picks in proptest::collection::vec((0usize..3, 0u64..40, proptest::prelude::any::<[u8; 8]>()), 1..24)
        ) {
            let a = Scalar::from(0xca7a_u64);
            let key = key_of(a);
            let message = b"any".as_slice();
            let edges = small_order_encodings();
            let signed: Vec<(SignerKey, &[u8], [u8; 64])> = picks
                .iter()
                .map(|&(kind, n, noise)| {
                    let r = Scalar::from(n + 1);
                    let signature = match kind {
                        0 => sign_with(a, r, (ED25519_BASEPOINT_POINT * r).compress().to_bytes(), message),
                        1 => sign_with(a, Scalar::ZERO, edges[n as usize % edges.len()], message),
                        _ => {
                            let mut s = sign_with(a, r, (ED25519_BASEPOINT_POINT * r).compress().to_bytes(), message);
                            s[(noise[0] % 64) as usize] ^= noise[1] | 1;
                            s
                        }
                    };
                    (key, message, signature)
                })
                .collect();
            let alone: Vec<bool> = signed.iter().map(|(key, m, sig)| verify_one(*key, m, sig)).collect();
            proptest::prop_assert_eq!(verify_each(&signed), alone);
        }
    }

    #[test]
    fn a_scalar_beyond_the_group_order_is_refused_alone_and_in_a_batch() {
        let a = Scalar::from(11u64);
        let key = key_of(a);
        let message = b"m".as_slice();
        let r = Scalar::from(3u64);
        let r_bytes = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        let good = sign_with(a, r, r_bytes, message);
        assert!(verify_one(key, message, &good));
        // s + ℓ: the same point arithmetic, but not a canonical scalar.
        let mut ell = [0u8; 32]; // ℓ = 2^252 + 27742317777372353535851937790883648493
        ell[..16].copy_from_slice(&[
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        ]);
        ell[31] = 0x10;
        let (mut s, mut carry) = ([0u8; 32], 0u16);
        for i in 0..32 {
            let digit = good[32 + i] as u16 + ell[i] as u16 + carry;
            s[i] = digit as u8;
            carry = digit >> 8;
        }
        let stretched: [u8; 64] = [r_bytes, s].concat().try_into().unwrap();
        assert!(!verify_one(key, message, &stretched));
        assert_eq!(verify_each(&[(key, message, good), (key, message, stretched)]), vec![true, false]);
    }
}
