//! The node's configuration file, `caravan.toml` in the data directory.
//! `caravan init` writes one with the defaults; every field is optional.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

pub const CONFIG_FILE: &str = "caravan.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the HTTP API listens. Loopback by default: put a TLS proxy in
    /// front before exposing it.
    pub http: SocketAddr,
    /// The address people reach this node's pages at, for links in mails
    /// (default: `http://` + `http`).
    pub public_url: Option<String>,
    pub ledger: LedgerConfig,
    pub p2p: P2pConfig,
    pub search: SearchConfig,
    pub mail: crate::mail::MailConfig,
    pub group: GroupSettings,
    /// What each agency may do at this owner (holds in flight, holds a
    /// minute, booking calls a second).
    pub quotas: caravan_booking::Quotas,
}

/// The owner's replica group (ARCHITECTURE decision 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupSettings {
    /// How often the leader tells the other members it is alive, ms.
    pub heartbeat_ms: u64,
    /// How long a member waits without a heartbeat before it stands for
    /// election, ms: at least 10 × `heartbeat_ms`.
    pub election_timeout_ms: u64,
    /// Lets admins cut this member off from others
    /// (`PUT /api/v1/group/partition`): for fault tests, never in service.
    pub fault_hooks: bool,
}

impl Default for GroupSettings {
    fn default() -> GroupSettings {
        let timers = caravan_group::Timers::default();
        GroupSettings {
            heartbeat_ms: timers.heartbeat_ms,
            election_timeout_ms: timers.election_timeout_ms,
            fault_hooks: false,
        }
    }
}

impl GroupSettings {
    pub fn timers(&self) -> caravan_group::Timers {
        caravan_group::Timers { heartbeat_ms: self.heartbeat_ms, election_timeout_ms: self.election_timeout_ms }
    }
}

/// Trip search rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Minimum minutes between arriving at a stop and leaving it on another trip.
    pub min_connection_minutes_default: u16,
    /// The same per stop code, e.g. `LHR = 90`.
    pub min_connection_minutes: std::collections::BTreeMap<String, u16>,
}

impl Default for SearchConfig {
    fn default() -> SearchConfig {
        SearchConfig {
            min_connection_minutes_default: caravan_search::trips::MIN_CONNECTION_MINUTES_DEFAULT,
            min_connection_minutes: Default::default(),
        }
    }
}

/// Replication with other nodes. Off unless `listen` or `bootstrap` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// Multiaddrs to listen on, e.g. "/ip4/127.0.0.1/tcp/7171".
    pub listen: Vec<String>,
    /// Multiaddrs of peers to dial at start.
    pub bootstrap: Vec<String>,
    /// Find more peers through Kademlia, beyond the bootstrap peers.
    pub discovery: bool,
    /// Discovered peers are dialled while the node has fewer than this.
    pub peers_target: u32,
}

impl P2pConfig {
    /// Adds `addresses` to those to listen on, each once.
    pub fn listen_also<'a>(&mut self, addresses: impl IntoIterator<Item = &'a String>) {
        add_new(&mut self.listen, addresses);
    }

    /// Adds `addresses` to those dialled at start, each once.
    pub fn dial_also<'a>(&mut self, addresses: impl IntoIterator<Item = &'a String>) {
        add_new(&mut self.bootstrap, addresses);
    }
}

fn add_new<'a>(list: &mut Vec<String>, addresses: impl IntoIterator<Item = &'a String>) {
    for address in addresses {
        if !list.contains(address) {
            list.push(address.clone());
        }
    }
}

impl Default for P2pConfig {
    fn default() -> P2pConfig {
        P2pConfig {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            discovery: true,
            peers_target: caravan_net::PEERS_TARGET_DEFAULT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// How often changed availability is signed and published, ms. Longer
    /// intervals coalesce more changes into one record (and one bundle).
    pub publish_interval_ms: u64,
    /// How long a hold lasts when the agency or client does not say, seconds.
    pub hold_seconds_default: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            http: SocketAddr::from(([127, 0, 0, 1], 7070)),
            public_url: None,
            ledger: LedgerConfig::default(),
            p2p: P2pConfig::default(),
            search: SearchConfig::default(),
            mail: crate::mail::MailConfig::default(),
            group: GroupSettings::default(),
            quotas: caravan_booking::Quotas::default(),
        }
    }
}

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig {
            publish_interval_ms: 250,
            hold_seconds_default: (caravan_ledger::HOLD_TTL_MS_DEFAULT / 1000) as u32,
        }
    }
}

/// The longest minimum connection time a stop may have (a day).
pub const MIN_CONNECTION_MINUTES_MAX: u16 = 1_440;

/// Bounds on `publish_interval_ms`.
pub const PUBLISH_INTERVAL_MS_MIN: u64 = 1;
pub const PUBLISH_INTERVAL_MS_MAX: u64 = 60_000;

/// Why `caravan.toml` cannot be used; the node does not start with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Parse { path: std::path::PathBuf, source: toml::de::Error },
    /// A setting outside its bounds; the message names it and them.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads `caravan.toml` from `dir`; the defaults if there is none.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let interval = self.ledger.publish_interval_ms;
        if !(PUBLISH_INTERVAL_MS_MIN..=PUBLISH_INTERVAL_MS_MAX).contains(&interval) {
            return Err(ConfigError::Invalid(format!(
                "ledger.publish_interval_ms = {interval}: must be {PUBLISH_INTERVAL_MS_MIN}-{PUBLISH_INTERVAL_MS_MAX}"
            )));
        }
        let hold_ms = self.ledger.hold_seconds_default as i64 * 1000;
        if !(caravan_ledger::HOLD_TTL_MS_MIN..=caravan_ledger::HOLD_TTL_MS_MAX).contains(&hold_ms) {
            return Err(ConfigError::Invalid(format!(
                "ledger.hold_seconds_default = {}: must be {}-{}",
                self.ledger.hold_seconds_default,
                caravan_ledger::HOLD_TTL_MS_MIN / 1000,
                caravan_ledger::HOLD_TTL_MS_MAX / 1000
            )));
        }
        self.quotas.validate().map_err(|why| ConfigError::Invalid(format!("[quotas]: {why}")))?;
        let too_long = |m: &u16| *m > MIN_CONNECTION_MINUTES_MAX;
        if too_long(&self.search.min_connection_minutes_default)
            || self.search.min_connection_minutes.values().any(too_long)
        {
            return Err(ConfigError::Invalid(format!(
                "search.min_connection_minutes: at most {MIN_CONNECTION_MINUTES_MAX}"
            )));
        }
        self.group.timers().validate(None).map_err(|e| ConfigError::Invalid(format!("group: {e}")))?;
        Ok(())
    }

    /// Writes `caravan.toml` in `dir` whole or not at all (a temporary
    /// file renamed over it), so a crash never leaves half a config.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let path = dir.join(CONFIG_FILE);
        let temporary = dir.join(format!("{CONFIG_FILE}.new"));
        std::fs::write(&temporary, self.to_toml())?;
        std::fs::File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, &path)
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("config serializes");
        format!("# Caravan node configuration. Every field is optional.\n\n{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_typos_are_refused() {
        let config = Config::default();
        assert_eq!(toml::from_str::<Config>(&config.to_toml()).unwrap(), config);
        assert!(toml::from_str::<Config>("htp = \"127.0.0.1:1\"").is_err());
        let zero: Config = toml::from_str("[ledger]\npublish_interval_ms = 0").unwrap();
        assert!(zero.validate().is_err());
        let short: Config = toml::from_str("[ledger]\nhold_seconds_default = 1").unwrap();
        assert!(short.validate().is_err());
        let rules: Config = toml::from_str("[search.min_connection_minutes]\nLHR = 90").unwrap();
        assert_eq!(rules.search.min_connection_minutes["LHR"], 90);
        assert!(rules.validate().is_ok());
        let hasty: Config = toml::from_str("[group]\nheartbeat_ms = 200\nelection_timeout_ms = 1000").unwrap();
        assert!(hasty.validate().unwrap_err().to_string().contains("10× the heartbeat"));
    }
}
