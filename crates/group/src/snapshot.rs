//! Snapshots: the whole ledger at one applied log index, with a checksum
//! that is checked before a snapshot is trusted, whether read back from
//! disk or received from the leader.
//!
//! Layout: `CARAVAN-SNAPSHOT-1\n`, BLAKE3 of the body (32 bytes), body
//! (postcard of [`SnapshotImage`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use caravan_ledger::Ledger;
use serde::{Deserialize, Serialize};

use crate::{LogId, StoredMembership};

const MAGIC: &[u8] = b"CARAVAN-SNAPSHOT-1\n";
const CHECKSUM_BYTES: usize = 32;

/// Everything a member needs to stand where the log stood at `applied`.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct SnapshotImage {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    pub ledger: Ledger,
}

impl SnapshotImage {
    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("snapshots serialize");
        let mut bytes = Vec::with_capacity(MAGIC.len() + CHECKSUM_BYTES + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(blake3::hash(&body).as_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Decodes a snapshot whose checksum matches; why not otherwise.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotImage, String> {
        let rest = bytes.strip_prefix(MAGIC).ok_or("not a Caravan snapshot (bad magic)")?;
        if rest.len() < CHECKSUM_BYTES {
            return Err("snapshot truncated before its checksum".into());
        }
        let (checksum, body) = rest.split_at(CHECKSUM_BYTES);
        if blake3::hash(body).as_bytes() != checksum {
            return Err("snapshot checksum mismatch: the snapshot is corrupt or truncated".into());
        }
        let image: SnapshotImage = postcard::from_bytes(body).map_err(|e| format!("snapshot body: {e}"))?;
        image.ledger.check_invariants();
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
        let image = SnapshotImage::default();
        let bytes = image.encode();
        assert_eq!(SnapshotImage::decode(&bytes).unwrap(), image);
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(SnapshotImage::decode(&flipped).unwrap_err().contains("checksum"));
        assert!(SnapshotImage::decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("checksum"));
        assert!(SnapshotImage::decode(b"hello").unwrap_err().contains("magic"));
    }
}
