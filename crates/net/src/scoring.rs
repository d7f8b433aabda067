//! How a node scores the peers that gossip to it (gossipsub's peer
//! scoring), so a peer that sends forged envelopes is cut off while honest
//! ones keep full delivery.
//!
//! Honest nodes forward only envelopes they verified (validation is
//! manual: the core's verdict comes first), and the core rejects only what
//! proves bad faith (a signature or proof that does not verify, bytes that
//! do not decode, an oversized envelope), so a rejected envelope came from
//! a peer that forged it or forwarded it unchecked. Each such delivery
//! counts against the sender, squared and weighted 100: one puts it below
//! the graylist threshold at once, and gossipsub then ignores everything
//! it sends. The count decays by 1 % a second: the first forgery cuts a
//! peer off for ~11 s, the second (once it is heard again) for ~75 s, and
//! so on. Delivering envelopes first earns up to 100, and time in the
//! mesh a little more. Under-delivery is not punished: a quiet owner's
//! traffic is small and bursty, and a peer cannot forge what it does not
//! have.
//!
//! Envelopes a node will not forward but that prove nothing against the
//! sender are answered `Ignore`: no penalty, no forwarding. So are those
//! of an origin frozen for equivocating (the sender may not have the proof
//! yet), a record kind this build does not know (a newer node), a time
//! ahead of this node's clock, and a node too busy to look.

use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams};

/// Below this a peer's gossip about envelopes it has is ignored.
pub const GOSSIP_THRESHOLD: f64 = -10.0;
/// Below this nothing is published to the peer.
pub const PUBLISH_THRESHOLD: f64 = -50.0;
/// Below this everything the peer sends is ignored.
pub const GRAYLIST_THRESHOLD: f64 = -80.0;
/// The weight of one rejected envelope (squared with their count).
pub const INVALID_DELIVERY_WEIGHT: f64 = -100.0;

/// The score parameters for a node gossiping on `topic`.
pub fn params(topic: TopicHash) -> PeerScoreParams {
    let records = TopicScoreParams {
        topic_weight: 1.0,
        // P1: a little for staying in the mesh (at most 36 after an hour).
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3_600.0,
        // P2: delivering envelopes first, up to 100.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 100.0,
        // P3, P3b: off (see the module's comment).
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P4: rejected envelopes.
        invalid_message_deliveries_weight: INVALID_DELIVERY_WEIGHT,
        invalid_message_deliveries_decay: 0.99,
        ..TopicScoreParams::default()
    };
    let mut params = PeerScoreParams {
        // Decays run every second.
        decay_interval: Duration::from_secs(1),
        ..PeerScoreParams::default()
    };
    params.topics.insert(topic, records);
    // Nodes on one machine (a local cluster, the demo, tests) are not a
    // Sybil attack.
    params.ip_colocation_factor_whitelist.insert(std::net::Ipv4Addr::LOCALHOST.into());
    params.ip_colocation_factor_whitelist.insert(std::net::Ipv6Addr::LOCALHOST.into());
    params
}

pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_valid_and_one_forgery_graylists_a_peer_for_a_while() {
        let topic = libp2p::gossipsub::IdentTopic::new("t").hash();
        let params = params(topic.clone());
        params.validate().unwrap();
        thresholds().validate().unwrap();
        const { assert!(INVALID_DELIVERY_WEIGHT < GRAYLIST_THRESHOLD, "one forgery graylists") };
        // Still graylisted after ten seconds of decay.
        let decay = params.topics[&topic].invalid_message_deliveries_decay;
        let left = decay.powi(10);
        assert!(INVALID_DELIVERY_WEIGHT * left * left < GRAYLIST_THRESHOLD);
    }
}
