//! The catalog as bytes, so a node restarts without reading and decoding
//! every record again.
//!
//! Layout: `MAGIC`, the format version (u32), the *mark* of the record
//! store the catalog was in step with (u64, the writer's to define), then
//! every entry, contact and frozen origin (postcard, each list preceded by
//! its length), the digest's sums of entries and contacts (so a restart
//! does not hash every entry again), and last the BLAKE3 of everything
//! before it. A file that
//! is cut short, altered or from another version fails [`decode`], and
//! the node rebuilds the catalog from its records instead.

use std::io::{self, Write};

use caravan_model::Contact;
use caravan_records::Origin;
use caravan_search::SavedEntry;
use serde::Serialize;

use crate::{Catalog, Stamps};

const MAGIC: &[u8; 16] = b"caravan-catalog\n";
/// 4: the index's entries as it spells them out (a stay's facts, not its
/// listing and runs), with the records they came from, and the digest's
/// sums. 5: stamps of eight bytes per record.
const VERSION: u32 = 5;
const CHECKSUM_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("not a catalog snapshot")]
    NotASnapshot,
    #[error("catalog snapshot format {0}, this build reads {VERSION}")]
    Version(u32),
    #[error("catalog snapshot checksum does not match: the file is damaged")]
    Checksum,
    #[error("catalog snapshot does not decode: {0}")]
    Malformed(String),
}

/// Writes `catalog` in step with the store's `mark`.
pub fn encode(catalog: &Catalog, mark: u64, out: impl Write) -> io::Result<()> {
    let mut out = Hashing { inner: out, hasher: blake3::Hasher::new() };
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    out.write_all(&mark.to_le_bytes())?;
    put(&mut out, &(catalog.index.len() as u64))?;
    for (origin, entry, stamps) in catalog.entries() {
        put(&mut out, &(origin.0, entry, stamps))?;
    }
    put(&mut out, &(catalog.contacts.len() as u64))?;
    for (origin, contact) in &catalog.contacts {
        put(&mut out, &(origin.0, contact))?;
    }
    put(&mut out, &(catalog.frozen.len() as u64))?;
    for origin in &catalog.frozen {
        put(&mut out, &origin.0)?;
    }
    put(&mut out, &(catalog.entries_fold, catalog.contacts_fold))?;
    let checksum = *out.hasher.finalize().as_bytes();
    out.inner.write_all(&checksum)?;
    out.inner.flush()
}

/// Reads a snapshot back: the catalog and the store mark it was in step with.
pub fn decode(bytes: &[u8]) -> Result<(Catalog, u64), SnapshotError> {
    let header = MAGIC.len() + 4 + 8;
    if bytes.len() < header + CHECKSUM_BYTES || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let version = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(SnapshotError::Version(version));
    }
    let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if blake3::hash(content).as_bytes() != checksum {
        return Err(SnapshotError::Checksum);
    }
    let mark = u64::from_le_bytes(content[20..28].try_into().expect("8 bytes"));
    let mut rest = &content[header..];
    let mut catalog = Catalog::default();
    let entries = take::<u64>(&mut rest)?;
    // Room for what the file says comes, bounded by what its bytes can hold.
    let room = (entries as usize).min(rest.len() / 16);
    catalog.index.reserve(room);
    catalog.stamps.reserve_exact(room);
    for _ in 0..entries {
        let (origin, entry, stamps): ([u8; 32], SavedEntry, Stamps) = take(&mut rest)?;
        let handle = catalog.index.restore(&Origin(origin), entry).map_err(SnapshotError::Malformed)?;
        *catalog.stamps_mut(handle) = stamps;
    }
    for _ in 0..take::<u64>(&mut rest)? {
        let (origin, contact): ([u8; 32], Contact) = take(&mut rest)?;
        contact.validate().map_err(|e| SnapshotError::Malformed(format!("contact: {e}")))?;
        catalog.contacts.insert(Origin(origin), contact);
    }
    for _ in 0..take::<u64>(&mut rest)? {
        catalog.frozen.insert(Origin(take(&mut rest)?));
    }
    (catalog.entries_fold, catalog.contacts_fold) = take(&mut rest)?;
    if !rest.is_empty() {
        return Err(SnapshotError::Malformed(format!("{} bytes after the end", rest.len())));
    }
    Ok((catalog, mark))
}

fn put(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    postcard::to_io(value, out).map(drop).map_err(|e| io::Error::other(e.to_string()))
}

fn take<'a, T: serde::Deserialize<'a>>(rest: &mut &'a [u8]) -> Result<T, SnapshotError> {
    let (value, after) = postcard::take_from_bytes(rest).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    *rest = after;
    Ok(value)
}

/// Hashes what passes through, for the checksum at the end.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
