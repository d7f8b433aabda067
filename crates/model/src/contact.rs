//! How to reach an origin's node(s) for bookings: the libp2p peer ids of
//! the nodes that run its ledger and the addresses they listen on. It is
//! published as the origin's `contact` record, so an agency learns it from
//! the catalog like everything else; a replica group lists every member
//! here.

use serde::{Deserialize, Serialize};

/// Nodes one origin may list.
pub const CONTACT_PEERS_MAX: usize = 8;
/// Addresses one node may list.
pub const CONTACT_ADDRS_MAX: usize = 8;
pub const PEER_ID_BYTES_MAX: usize = 64;
pub const ADDRESS_BYTES_MAX: usize = 256;

#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Contact {
    pub peers: Vec<PeerContact>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PeerContact {
    /// A libp2p peer id in text.
    pub peer_id: String,
    /// Multiaddrs in text, e.g. `/ip4/203.0.113.7/tcp/7171`.
    pub addrs: Vec<String>,
}

impl Contact {
    /// Checks the limits; the reason when one is broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.peers.is_empty() || self.peers.len() > CONTACT_PEERS_MAX {
            return Err(format!("a contact lists 1-{CONTACT_PEERS_MAX} peers"));
        }
        self.peers.iter().try_for_each(PeerContact::validate)
    }
}

impl PeerContact {
    /// Checks one peer's limits (a contact's, or a replica group member's).
    pub fn validate(&self) -> Result<(), String> {
        let printable = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
        if self.peer_id.len() > PEER_ID_BYTES_MAX || !printable(&self.peer_id) {
            return Err(format!("peer id: 1-{PEER_ID_BYTES_MAX} printable ASCII characters"));
        }
        if self.addrs.len() > CONTACT_ADDRS_MAX {
            return Err(format!("at most {CONTACT_ADDRS_MAX} addresses per peer"));
        }
        if let Some(bad) = self.addrs.iter().find(|a| a.len() > ADDRESS_BYTES_MAX || !printable(a)) {
            return Err(format!("address {bad:?}: 1-{ADDRESS_BYTES_MAX} printable ASCII characters"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        let peer = PeerContact { peer_id: "12D3KooW".into(), addrs: vec!["/ip4/127.0.0.1/tcp/1".into()] };
        assert!(Contact { peers: vec![peer.clone()] }.validate().is_ok());
        assert!(Contact::default().validate().is_err());
        let spaced = PeerContact { addrs: vec!["/ip4/1 2".into()], ..peer.clone() };
        assert!(Contact { peers: vec![spaced] }.validate().is_err());
        assert!(Contact { peers: vec![peer; CONTACT_PEERS_MAX + 1] }.validate().is_err());
    }
}
