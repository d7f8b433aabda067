//! Snapshots: the whole ledger and the group's people at one applied log
//! index, with a checksum that is checked before a snapshot is trusted,
//! whether read back from disk or received from the leader.
//!
//! Layout: `CARAVAN-SNAPSHOT-3\n`, BLAKE3 of the body (32 bytes), body
//! (postcard of [`SnapshotImage`]). A `CARAVAN-SNAPSHOT-2` snapshot (from
//! before agencies' holds were counted against quotas) reads with none
//! counted, and a `CARAVAN-SNAPSHOT-1` one (from before the group kept its
//! people) with no people either.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use caravan_accounts::directory::Directory;
use caravan_ledger::agency::AgencyBook;
use caravan_ledger::{Holders, Ledger};
use serde::{Deserialize, Serialize};

use crate::{LogId, StoredMembership};

const MAGIC: &[u8] = b"CARAVAN-SNAPSHOT-3\n";
const MAGIC_WITHOUT_HOLDERS: &[u8] = b"CARAVAN-SNAPSHOT-2\n";
const MAGIC_WITHOUT_PEOPLE: &[u8] = b"CARAVAN-SNAPSHOT-1\n";
const CHECKSUM_BYTES: usize = 32;

/// Everything a member needs to stand where the log stood at `applied`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SnapshotImage {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    pub ledger: Ledger,
    pub people: Directory,
}

/// A snapshot as written: the agency's bookings and the holds counted
/// against quotas beside the ledger that holds them (the ledger's own
/// serialization leaves them out).
#[derive(Serialize)]
struct Written<'a> {
    applied: Option<LogId>,
    membership: &'a StoredMembership,
    ledger: &'a Ledger,
    people: &'a Directory,
    agency: &'a AgencyBook,
    holders: &'a Holders,
}

#[derive(Deserialize)]
struct Read {
    applied: Option<LogId>,
    membership: StoredMembership,
    ledger: Ledger,
    people: Directory,
    agency: AgencyBook,
    holders: Holders,
}

/// A snapshot from before holds were counted against quotas.
#[derive(Deserialize)]
struct ReadWithoutHolders {
    applied: Option<LogId>,
    membership: StoredMembership,
    ledger: Ledger,
    people: Directory,
    agency: AgencyBook,
}

/// A snapshot from before the group kept its people and bookings.
#[derive(Deserialize)]
struct ImageWithoutPeople {
    applied: Option<LogId>,
    membership: StoredMembership,
    ledger: Ledger,
}

impl SnapshotImage {
    pub fn encode(&self) -> Vec<u8> {
        let written = Written {
            applied: self.applied,
            membership: &self.membership,
            ledger: &self.ledger,
            people: &self.people,
            agency: self.ledger.agency(),
            holders: self.ledger.holders(),
        };
        let body = postcard::to_stdvec(&written).expect("snapshots serialize");
        let mut bytes = Vec::with_capacity(MAGIC.len() + CHECKSUM_BYTES + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(blake3::hash(&body).as_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Decodes a snapshot whose checksum matches; why not otherwise.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotImage, String> {
        let (body, format) = if let Some(rest) = bytes.strip_prefix(MAGIC) {
            (rest, 3)
        } else if let Some(rest) = bytes.strip_prefix(MAGIC_WITHOUT_HOLDERS) {
            (rest, 2)
        } else {
            (bytes.strip_prefix(MAGIC_WITHOUT_PEOPLE).ok_or("not a Caravan snapshot (bad magic)")?, 1)
        };
        if body.len() < CHECKSUM_BYTES {
            return Err("snapshot truncated before its checksum".into());
        }
        let (checksum, body) = body.split_at(CHECKSUM_BYTES);
        if blake3::hash(body).as_bytes() != checksum {
            return Err("snapshot checksum mismatch: the snapshot is corrupt or truncated".into());
        }
        let body_error = |e: postcard::Error| format!("snapshot body: {e}");
        let image = if format == 3 {
            let Read { applied, membership, mut ledger, people, agency, holders } =
                postcard::from_bytes(body).map_err(body_error)?;
            ledger.restore_agency(agency);
            ledger.restore_holders(holders);
            SnapshotImage { applied, membership, ledger, people }
        } else if format == 2 {
            let ReadWithoutHolders { applied, membership, mut ledger, people, agency } =
                postcard::from_bytes(body).map_err(body_error)?;
            ledger.restore_agency(agency);
            SnapshotImage { applied, membership, ledger, people }
        } else {
            let old: ImageWithoutPeople = postcard::from_bytes(body).map_err(body_error)?;
            SnapshotImage {
                applied: old.applied,
                membership: old.membership,
                ledger: old.ledger,
                people: Directory::default(),
            }
        };
        image.ledger.check_invariants();
        image.people.check_invariants();
        Ok(image)
    }

    /// A short name for an encoded snapshot: its index and a hash prefix.
    pub fn id(applied: Option<LogId>, bytes: &[u8]) -> String {
        let index = applied.map_or(0, |log_id| log_id.index);
        format!("{index}-{}", &blake3::hash(bytes).to_hex()[..16])
    }
}

/// A snapshot kept in memory, shared with whoever made it.
pub type SnapshotSlot = Arc<Mutex<Option<Vec<u8>>>>;

/// Where the current snapshot is kept.
#[derive(Clone, Debug)]
pub enum SnapshotStore {
    /// A file replaced atomically (written beside, synced, renamed).
    File(PathBuf),
    /// Memory shared with whoever made it, so a simulated crash keeps it.
    Memory(SnapshotSlot),
}

impl SnapshotStore {
    pub fn load(&self) -> Result<Option<Vec<u8>>, String> {
        match self {
            SnapshotStore::File(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
            SnapshotStore::Memory(slot) => Ok(slot.lock().expect("snapshot lock").clone()),
        }
    }

    pub fn save(&self, bytes: &[u8]) -> Result<(), String> {
        match self {
            SnapshotStore::File(path) => {
                use std::io::Write;
                let partial = path.with_extension("partial");
                let write = || -> std::io::Result<()> {
                    let mut file = std::fs::File::create(&partial)?;
                    file.write_all(bytes)?;
                    file.sync_all()?;
                    std::fs::rename(&partial, path)?;
                    if let Some(dir) = path.parent() {
                        std::fs::File::open(dir)?.sync_all()?;
                    }
                    Ok(())
                };
                write().map_err(|e| format!("{}: {e}", path.display()))
            }
            SnapshotStore::Memory(slot) => {
                *slot.lock().expect("snapshot lock") = Some(bytes.to_vec());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let mut image = SnapshotImage::default();
        let booking = caravan_ledger::agency::AgencyBooking {
            id: 1,
            client_key: Some("k".into()),
            user: None,
            phase: "holding".into(),
            terminal: false,
            created: caravan_model::Timestamp(1),
            updated: caravan_model::Timestamp(1),
            traveller: vec![],
            saga: vec![1, 2],
        };
        let put = caravan_ledger::agency::PutBooking { booking, revision: None };
        image.ledger.apply(&caravan_ledger::Command::PutBooking(put), caravan_model::Timestamp(1));
        let bytes = image.encode();
        assert_eq!(SnapshotImage::decode(&bytes).unwrap(), image, "the agency's bookings included");
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(SnapshotImage::decode(&flipped).unwrap_err().contains("checksum"));
        assert!(SnapshotImage::decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("checksum"));
        assert!(SnapshotImage::decode(b"hello").unwrap_err().contains("magic"));
    }

    #[test]
    fn holds_counted_against_quotas_travel_in_snapshots_and_older_ones_read_without() {
        use caravan_ledger::{Command, HoldRequest};
        use caravan_model::{AriPatch, Timestamp};
        let now = Timestamp(1_893_456_000_000);
        let listing = caravan_test_utils::stay("room", "Vienna", 3);
        let id = listing.id.clone();
        let mut image = SnapshotImage::default();
        image.ledger.apply(&Command::CreateListing(listing), now);
        let patch = AriPatch { available: Some(3), price_minor: Some(9_000), ..AriPatch::default() };
        let (check_in, check_out) = (now.date().add_days(1), now.date().add_days(2));
        image.ledger.apply(&Command::SetAri { listing: id.clone(), from: check_in, to: check_out, patch }, now);
        let request = HoldRequest::Stay { listing: id, check_in, check_out, units: 1, guests: 1 };
        let hold = Command::Hold { idempotency_key: None, request, ttl_ms: 600_000, expected_total_minor: None };
        let within = Command::HoldWithin { holder: "agency:a".into(), holds_max: 2, hold: Box::new(hold) };
        assert!(image.ledger.apply(&within, now).reply.is_ok());
        let read = SnapshotImage::decode(&image.encode()).unwrap();
        assert_eq!(read.ledger.holders()["agency:a"].len(), 1);
        assert_eq!(read, image);

        // Written before holders were counted: the same, none counted.
        let body = postcard::to_stdvec(&(
            image.applied,
            &image.membership,
            &image.ledger,
            &image.people,
            image.ledger.agency(),
        ))
        .unwrap();
        let older = [MAGIC_WITHOUT_HOLDERS, blake3::hash(&body).as_bytes(), &body].concat();
        let read = SnapshotImage::decode(&older).unwrap();
        assert!(read.ledger.holders().is_empty());
        assert_eq!(read.ledger.hold(caravan_ledger::HoldId(1)), image.ledger.hold(caravan_ledger::HoldId(1)));
    }

    #[test]
    fn a_snapshot_from_before_the_group_kept_its_people_still_reads() {
        #[derive(Serialize)]
        struct Old<'a> {
            applied: Option<LogId>,
            membership: &'a StoredMembership,
            ledger: &'a Ledger,
        }
        let mut ledger = Ledger::new();
        ledger.apply(&caravan_ledger::Command::ExpireHolds, caravan_model::Timestamp(7));
        let applied = Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), 42));
        let body =
            postcard::to_stdvec(&Old { applied, membership: &StoredMembership::default(), ledger: &ledger }).unwrap();
        let bytes = [MAGIC_WITHOUT_PEOPLE, blake3::hash(&body).as_bytes(), &body].concat();
        let image = SnapshotImage::decode(&bytes).unwrap();
        assert_eq!((image.applied, &image.ledger, image.people.account_count()), (applied, &ledger, 0));
    }
}
