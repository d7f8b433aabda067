//! Named limits on records. A peer that exceeds one gets a rejection naming it.

/// An encoded `SignedRecord` (body and proof). Envelopes are capped at
/// 32 KiB, so a record must leave room for others beside it.
pub const SIGNED_RECORD_BYTES_MAX: usize = 16 * 1024;
/// Record keys are listing ids.
pub const KEY_BYTES_MAX: usize = caravan_model::limits::LISTING_ID_BYTES_MAX;
/// Records one bundle may hold: a proof has at most log2(4096) = 12 hashes.
pub const BUNDLE_LEAVES_MAX: u32 = 4096;
/// Hashes in a bundle inclusion proof.
pub const BUNDLE_PATH_MAX: usize = 12;
/// How far ahead of the verifier's clock a record's time may be.
pub const TIME_SKEW_MS_MAX: i64 = 10 * 60 * 1000;
/// Runs in one ARI payload (one per day over the whole horizon would be 732).
pub const ARI_RUNS_MAX: usize = 1024;
/// ARI days may start this many days before the record's date (time zones).
pub const ARI_DAYS_BEFORE_MAX: i32 = 1;
/// Units or seats open on one day.
pub const AVAILABLE_MAX: u32 = caravan_model::limits::UNITS_MAX;

const _: () = assert!(1 << BUNDLE_PATH_MAX == BUNDLE_LEAVES_MAX as usize);
