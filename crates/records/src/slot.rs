//! The newest-wins rule for one slot `(origin, kind, key)`, as a pure
//! decision that every record store (SQLite, the simulator's memory) applies
//! the same way.

use crate::{Kind, Record, RecordId};

/// What to do with an incoming record, given what its slot holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotDecision {
    /// The slot is empty: store it.
    Insert,
    /// The record is newer: replace the stored one.
    Replace { previous_version: u64 },
    /// This very record is already stored.
    Duplicate,
    /// A newer version is stored.
    Stale { stored_version: u64 },
    /// A different record with the same version is stored: the origin
    /// equivocated.
    Equivocation,
    /// The key was withdrawn: listing and ARI records for it are refused.
    Withdrawn,
}

/// Decides for `incoming`, given the stored version and id of its slot (if
/// any) and whether its key carries a withdrawal.
pub fn decide(stored: Option<(u64, RecordId)>, key_withdrawn: bool, incoming: &Record) -> SlotDecision {
    match stored {
        Some((version, _)) if incoming.version < version => SlotDecision::Stale { stored_version: version },
        Some((version, id)) if incoming.version == version && id == incoming.id() => SlotDecision::Duplicate,
        Some((version, _)) if incoming.version == version => SlotDecision::Equivocation,
        Some((version, _)) => SlotDecision::Replace { previous_version: version },
        None if key_withdrawn && incoming.kind != Kind::Withdrawal => SlotDecision::Withdrawn,
        None => SlotDecision::Insert,
    }
}

impl SlotDecision {
    /// Whether the incoming record becomes the newest in its slot.
    pub fn stores(&self) -> bool {
        matches!(self, SlotDecision::Insert | SlotDecision::Replace { .. })
    }
}
