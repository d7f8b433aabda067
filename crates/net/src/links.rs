//! Who this node is connected to, for operators: each peer's address and
//! the round-trip time of its last ping. The swarm's task writes it; the
//! admin console reads a copy.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One connected peer's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLink {
    /// The remote address of the connection.
    pub address: String,
    /// Whether this node dialled it (else it dialled us).
    pub dialled: bool,
    /// The last ping's round trip, once one came back.
    pub rtt_ms: Option<u64>,
}

/// Connected peers by peer id.
#[derive(Debug, Default)]
pub struct PeerLinks(Mutex<BTreeMap<String, PeerLink>>);

impl PeerLinks {
    /// A copy of the links, by peer id.
    pub fn snapshot(&self) -> BTreeMap<String, PeerLink> {
        self.0.lock().expect("links lock").clone()
    }

    pub(crate) fn connected(&self, peer: String, link: PeerLink) {
        self.0.lock().expect("links lock").insert(peer, link);
    }

    pub(crate) fn disconnected(&self, peer: &str) {
        self.0.lock().expect("links lock").remove(peer);
    }

    pub(crate) fn pinged(&self, peer: &str, rtt_ms: u64) {
        if let Some(link) = self.0.lock().expect("links lock").get_mut(peer) {
            link.rtt_ms = Some(rtt_ms);
        }
    }
}
