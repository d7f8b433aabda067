//! The stateless half of taking in what peers send: decoding envelopes and
//! fetched records and verifying their signatures. It needs nothing but
//! the bytes and the time, so a shell runs it on as many threads as it has
//! cores, and only [`Replica::handle_checked`](crate::Replica::handle_checked)
//! — storing, counting, answering — runs where the store is.

use caravan_model::Timestamp;
use caravan_records::{proto, verify_batch, EquivocationProof, Record, Rejection, Verified};
use prost::Message as _;

use crate::{Config, Event, Message};

/// The limits checking applies, taken from the replica's [`Config`].
#[derive(Clone, Copy, Debug)]
pub struct Checker {
    envelope_bytes_max: usize,
    fetch_ids_max: usize,
}

/// An [`Event`] with its records decoded and verified.
#[derive(Debug)]
pub enum Checked<P> {
    /// A gossiped envelope: every record in it verified, or why not.
    Gossip {
        from: P,
        /// BLAKE3 of the envelope: gossipsub's message id.
        envelope_id: [u8; 32],
        bytes: usize,
        envelope: Result<CheckedEnvelope, Rejection>,
    },
    /// A page of fetched records: each stands alone, so the good ones are
    /// kept and the others counted.
    Records { from: P, request: u64, bytes: usize, verified: Vec<Verified<Record>>, rejected: Vec<Rejection> },
    /// An equivocation proof a peer sent back.
    Proof { from: P, proof: Result<Box<EquivocationProof>, Rejection> },
    /// Anything with nothing to verify: connections and reconciliation.
    Plain(Event<P>),
}

/// What a gossiped envelope carried, all of it verified.
#[derive(Debug)]
pub struct CheckedEnvelope {
    pub records: Vec<Verified<Record>>,
    pub proofs: Vec<EquivocationProof>,
}

impl<P> Checked<P> {
    /// Records this carries that verified: the work storing it will take.
    pub fn records(&self) -> usize {
        match self {
            Checked::Gossip { envelope: Ok(envelope), .. } => envelope.records.len(),
            Checked::Records { verified, .. } => verified.len(),
            _ => 0,
        }
    }
}

impl<P> Event<P> {
    /// Whether checking it verifies signatures (the work worth another
    /// thread), rather than passing it on as it is.
    pub fn carries_signatures(&self) -> bool {
        matches!(
            self,
            Event::Gossip { .. } | Event::Message { message: Message::Records { .. } | Message::Proof(_), .. }
        )
    }
}

impl Checker {
    pub fn new(config: &Config) -> Checker {
        Checker { envelope_bytes_max: config.envelope_bytes_max, fetch_ids_max: config.fetch_ids_max }
    }

    /// Decodes and verifies what `event` carries; pure, so any thread may
    /// run it.
    pub fn check<P>(&self, event: Event<P>, now: Timestamp) -> Checked<P> {
        match event {
            Event::Gossip { from, envelope: bytes } => Checked::Gossip {
                from,
                envelope_id: *blake3::hash(&bytes).as_bytes(),
                bytes: bytes.len(),
                envelope: self.check_envelope(&bytes, now),
            },
            Event::Message { from, message: Message::Records { request, records } } => {
                let bytes = records.iter().map(Vec::len).sum();
                let (verified, rejected) = self.check_records(&records, now);
                Checked::Records { from, request, bytes, verified, rejected }
            }
            Event::Message { from, message: Message::Proof(bytes) } => {
                Checked::Proof { from, proof: EquivocationProof::verify(&bytes, now).map(Box::new) }
            }
            other => Checked::Plain(other),
        }
    }

    /// All or nothing: one bad record (or proof) rejects the envelope, so
    /// nothing in it is stored.
    fn check_envelope(&self, bytes: &[u8], now: Timestamp) -> Result<CheckedEnvelope, Rejection> {
        let limit = self.envelope_bytes_max * 2;
        if bytes.len() > limit {
            return Err(Rejection::Oversized { size: bytes.len(), limit });
        }
        let envelope = proto::Envelope::decode(bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
        let proofs = envelope
            .proofs
            .into_iter()
            .map(|proof| EquivocationProof::verify_proto(proof, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut records = envelope.records;
        for run in envelope.runs {
            records.extend(caravan_records::runs::unpack(run)?);
        }
        let records = verify_batch(records, now).into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(CheckedEnvelope { records, proofs })
    }

    /// Each fetched record on its own; a page longer than asked for is
    /// cut at what was asked.
    fn check_records(&self, records: &[Vec<u8>], now: Timestamp) -> (Vec<Verified<Record>>, Vec<Rejection>) {
        let mut rejected = Vec::new();
        let mut decoded = Vec::with_capacity(records.len().min(self.fetch_ids_max));
        for bytes in records.iter().take(self.fetch_ids_max) {
            match caravan_records::decode_signed(bytes) {
                Ok(signed) => decoded.push(signed),
                Err(rejection) => rejected.push(rejection),
            }
        }
        let mut verified = Vec::with_capacity(decoded.len());
        for result in verify_batch(decoded, now) {
            match result {
                Ok(record) => verified.push(record),
                Err(rejection) => rejected.push(rejection),
            }
        }
        (verified, rejected)
    }
}
