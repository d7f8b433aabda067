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
    pub ledger: LedgerConfig,
    pub p2p: P2pConfig,
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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            http: SocketAddr::from(([127, 0, 0, 1], 7070)),
            ledger: LedgerConfig::default(),
            p2p: P2pConfig::default(),
        }
    }
}

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig { publish_interval_ms: 250 }
    }
}

/// Bounds on `publish_interval_ms`.
pub const PUBLISH_INTERVAL_MS_MIN: u64 = 1;
pub const PUBLISH_INTERVAL_MS_MAX: u64 = 60_000;

impl Config {
    /// Reads `caravan.toml` from `dir`; the defaults if there is none.
    pub fn load(dir: &Path) -> Result<Config, String> {
        let path = dir.join(CONFIG_FILE);
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        let interval = self.ledger.publish_interval_ms;
        if !(PUBLISH_INTERVAL_MS_MIN..=PUBLISH_INTERVAL_MS_MAX).contains(&interval) {
            return Err(format!(
                "ledger.publish_interval_ms = {interval}: must be {PUBLISH_INTERVAL_MS_MIN}-{PUBLISH_INTERVAL_MS_MAX}"
            ));
        }
        Ok(())
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
    }
}
