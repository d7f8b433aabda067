//! Generated records shaped like the network's: slots spread over origins
//! of every size, bodies of 250–650 bytes that are part random (ids,
//! signatures, numbers) and part text, times that rise as records arrive.

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

/// Bytes of a bundle's proof carried by each bundled record: the root's
/// signature and the record's path in a tree of ~1,000 records.
const BUNDLE_PROOF_BYTES: usize = 64 + 10 * 32;
/// Bytes of a single record's signature.
const SIGNATURE_BYTES: usize = 64;

#[derive(Debug, Clone, Copy)]
pub enum Proof {
    Single,
    Bundle,
}

/// One record as the store takes it.
#[derive(Debug, Clone)]
pub struct Row {
    /// origin (32) ‖ kind (1) ‖ key.
    pub slot: Vec<u8>,
    pub version: u64,
    pub time_ms: u64,
    pub id: [u8; 32],
    /// The encoded signed record, as received.
    pub signed: Vec<u8>,
    /// Set when the caller knows what the slot holds (as a catalog in
    /// memory would): the replaced record's `time ‖ id`, if any. The store
    /// then writes without looking first.
    pub replaces: Option<Option<[u8; 40]>>,
}

#[derive(Debug)]
pub struct Workload {
    origins: Vec<[u8; 32]>,
    text: Vec<u8>,
    rng: SmallRng,
    proof: Proof,
    first_ms: u64,
    clock_ms: u64,
    /// Versions handed out per slot beyond the first, for updates.
    version: u64,
}

impl Workload {
    pub fn new(records: u64, proof: Proof) -> Workload {
        let mut rng = SmallRng::seed_from_u64(42);
        // About 50 slots per origin on average; `origin_of` skews them so
        // that a few chains hold many and most hosts hold a few.
        let origins = (0..(records / 50).max(1)).map(|_| random_32(&mut rng)).collect();
        let words = ["Hotel", "room", "double", "sea", "view", "EUR", "breakfast", "Paris", "2030-06-01", "city"];
        let mut text = Vec::new();
        while text.len() < 8_192 {
            text.extend_from_slice(words[rng.gen_range(0..words.len())].as_bytes());
            text.push(b' ');
        }
        let first_ms = 1_893_456_000_000;
        Workload { origins, text, rng, proof, first_ms, clock_ms: first_ms, version: 1 }
    }

    /// The slot key of slot number `slot`.
    pub fn slot_key(&self, slot: u64) -> Vec<u8> {
        let origin = self.origin_of(slot);
        let mut key = Vec::with_capacity(32 + 1 + 16);
        key.extend_from_slice(&origin);
        key.push((slot % 2) as u8);
        key.extend_from_slice(format!("l-{:010x}", slot / 2).as_bytes());
        key
    }

    /// Slot `slot`'s first record.
    pub fn fresh(&mut self, slot: u64) -> Row {
        self.row(slot, 1)
    }

    /// A newer record for slot `slot`.
    pub fn update(&mut self, slot: u64) -> Row {
        self.version += 1;
        self.row(slot, self.version)
    }

    /// The times records were given, first to last.
    pub fn time_span(&self) -> (u64, u64) {
        (self.first_ms, self.clock_ms)
    }

    /// A skewed choice: squaring a uniform draw puts most slots on the
    /// first origins (the chains), and leaves a few each to the rest.
    fn origin_of(&self, slot: u64) -> [u8; 32] {
        let mixed = slot.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        let uniform = (mixed >> 11) as f64 / (1u64 << 53) as f64;
        let at = ((uniform * uniform) * self.origins.len() as f64) as usize;
        self.origins[at.min(self.origins.len() - 1)]
    }

    fn row(&mut self, slot: u64, version: u64) -> Row {
        // Several records per millisecond, as at a busy node.
        self.clock_ms += u64::from(self.rng.gen_ratio(1, 4));
        let id = random_32(&mut self.rng);
        let body = self.rng.gen_range(250..650);
        let proof = match self.proof {
            Proof::Single => SIGNATURE_BYTES,
            Proof::Bundle => BUNDLE_PROOF_BYTES,
        };
        let mut signed = Vec::with_capacity(body + proof);
        let slot_key = self.slot_key(slot);
        signed.extend_from_slice(&slot_key);
        let random = body / 4;
        let mut noise = vec![0; random + proof];
        self.rng.fill_bytes(&mut noise);
        signed.extend_from_slice(&noise);
        let start = self.rng.gen_range(0..self.text.len() - 700);
        let text_len = body.saturating_sub(signed.len() - proof).max(16);
        signed.extend_from_slice(&self.text[start..start + text_len]);
        Row { slot: slot_key, version, time_ms: self.clock_ms, id, signed, replaces: None }
    }
}

fn random_32(rng: &mut SmallRng) -> [u8; 32] {
    let mut bytes = [0; 32];
    rng.fill_bytes(&mut bytes);
    bytes
}
