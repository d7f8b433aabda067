//! The group's heartbeat interval and election timeout, and the rules
//! that keep them sane.

use serde::{Deserialize, Serialize};

/// How often the leader tells followers it is alive, and how long a
/// follower waits without hearing it before it stands for election.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Timers {
    pub heartbeat_ms: u64,
    /// The shortest election timeout; each wait is drawn from
    /// `election_timeout_ms..1.5 × election_timeout_ms` so that two
    /// followers rarely stand at once.
    pub election_timeout_ms: u64,
}

impl Default for Timers {
    /// A failover in ~2 s on a LAN, the CPU saturated: inside the 3 s
    /// goal with a second to spare (1 s timeouts took up to 4.4 s there).
    fn default() -> Timers {
        Timers { heartbeat_ms: 60, election_timeout_ms: 600 }
    }
}

impl Timers {
    pub const HEARTBEAT_MS_MIN: u64 = 10;
    pub const HEARTBEAT_MS_MAX: u64 = 10_000;
    /// Election timeout over heartbeat: a few lost heartbeats must not
    /// depose a healthy leader.
    pub const ELECTION_OVER_HEARTBEAT_MIN: u64 = 10;
    /// Election timeout over the log store's slowest appends (p99): a slow
    /// fsync must not look like a dead leader.
    pub const ELECTION_OVER_APPEND_MIN: u64 = 10;

    /// Checks the rules; `append_p99_ms` is the log store's measured append
    /// latency, when known.
    pub fn validate(&self, append_p99_ms: Option<f64>) -> Result<(), String> {
        let Timers { heartbeat_ms, election_timeout_ms } = *self;
        if !(Self::HEARTBEAT_MS_MIN..=Self::HEARTBEAT_MS_MAX).contains(&heartbeat_ms) {
            return Err(format!(
                "heartbeat interval must be {}-{} ms, not {heartbeat_ms}",
                Self::HEARTBEAT_MS_MIN,
                Self::HEARTBEAT_MS_MAX
            ));
        }
        let election_min = heartbeat_ms * Self::ELECTION_OVER_HEARTBEAT_MIN;
        if election_timeout_ms < election_min {
            return Err(format!(
                "election timeout {election_timeout_ms} ms is below {}× the heartbeat interval ({election_min} ms)",
                Self::ELECTION_OVER_HEARTBEAT_MIN
            ));
        }
        if let Some(append_ms) = append_p99_ms {
            let floor = append_ms * Self::ELECTION_OVER_APPEND_MIN as f64;
            if (election_timeout_ms as f64) < floor {
                return Err(format!(
                    "election timeout {election_timeout_ms} ms is below {}× the log store's append latency \
                     ({append_ms:.1} ms p99): a slow disk would look like a dead leader",
                    Self::ELECTION_OVER_APPEND_MIN
                ));
            }
        }
        Ok(())
    }
}

/// The timers as the group agreed on them through its log.
impl From<caravan_ledger::GroupTimers> for Timers {
    fn from(agreed: caravan_ledger::GroupTimers) -> Timers {
        Timers { heartbeat_ms: agreed.heartbeat_ms, election_timeout_ms: agreed.election_timeout_ms }
    }
}

/// Log entries between snapshots. A snapshot is the whole ledger, so this
/// trades snapshot work against the log a restart re-applies.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;
/// Entries kept behind a snapshot, so a follower a little behind catches
/// up from the log instead of a whole snapshot.
pub const LOG_KEPT_BEHIND_SNAPSHOT: u64 = 20_000;
/// Entries in one append-entries message: large enough for catch-up to
/// run far ahead of the write rate, small enough to stay well under the
/// transport's message cap.
pub const ENTRIES_PER_MESSAGE: u64 = 2_000;
/// Bytes of snapshot in one message, well under the transport's cap.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;

/// openraft's configuration for these timers.
pub fn raft_config(timers: Timers) -> Result<openraft::Config, String> {
    let config = openraft::Config {
        cluster_name: "caravan-owner".into(),
        heartbeat_interval: timers.heartbeat_ms,
        election_timeout_min: timers.election_timeout_ms,
        election_timeout_max: timers.election_timeout_ms * 3 / 2,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOG_KEPT_BEHIND_SNAPSHOT,
        max_payload_entries: ENTRIES_PER_MESSAGE,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        replication_lag_threshold: LOG_KEPT_BEHIND_SNAPSHOT,
        ..openraft::Config::default()
    };
    config.validate().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_timeout_must_be_ten_heartbeats_and_ten_appends() {
        assert_eq!(Timers::default().validate(Some(5.0)), Ok(()));
        let short = Timers { heartbeat_ms: 100, election_timeout_ms: 999 };
        assert!(short.validate(None).unwrap_err().contains("10× the heartbeat"));
        let slow_disk = Timers { heartbeat_ms: 20, election_timeout_ms: 200 };
        assert!(slow_disk.validate(Some(25.0)).unwrap_err().contains("append latency"));
        assert!(Timers { heartbeat_ms: 5, election_timeout_ms: 1_000 }.validate(None).is_err());
        assert!(raft_config(Timers::default()).is_ok());
    }
}
