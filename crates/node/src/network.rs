//! The node on the network: starting the libp2p task and the tasks that
//! answer peers (bookings, the group's Raft messages), and telling
//! agencies how to reach this owner (its contact record, every member of
//! its replica group) when the network starts or the membership changes.

use std::sync::Arc;

use caravan_api::GroupChangeError;
use caravan_ledger::Command;
use tokio::sync::{mpsc, oneshot};

use caravan_services::booking;

use crate::{group, Node, NodeError, NodeKey};

/// The running network task and the tasks answering peers.
#[derive(Debug)]
pub(crate) struct Network {
    stop: oneshot::Sender<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Network {
    /// Stops the network task and waits for it and the tasks it fed.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// How long the network start waits for more listen addresses after the first.
const CONTACT_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

impl Node {
    /// Starts replicating with peers over libp2p. Returns the first address
    /// the node listens on, if it listens at all.
    pub async fn start_network(&self, mut config: caravan_net::NetConfig) -> Result<Option<String>, NodeError> {
        config.traffic = self.inner.traffic.clone();
        config.links = self.inner.links.clone();
        let actions =
            self.take_replication_actions().ok_or_else(|| NodeError::Setup("the network is already running".into()))?;
        let listens = !config.listen.is_empty();
        let (listening_tx, mut listening_rx) = mpsc::channel(8);
        let (stop, stopped) = oneshot::channel::<()>();
        let data_dir = self.inner.db_path.parent().expect("the database lives in the data directory");
        let net_key = NodeKey::load_or_create_net_key(data_dir)?;
        let keypair = caravan_net::keypair_from_seed(net_key.seed());
        let peer_id = caravan_net::peer_id(&keypair);
        tracing::info!(%peer_id, "starting the network");
        let (calls_tx, calls) = mpsc::channel(booking::CALLS_MAX);
        let (book, book_rx) = mpsc::channel(booking::INBOUND_MAX);
        let (raft, raft_rx) = mpsc::channel(RAFT_INBOUND_MAX);
        let (forward, forward_rx) = mpsc::channel(RAFT_INBOUND_MAX);
        let (join, join_rx) = mpsc::channel(JOIN_INBOUND_MAX);
        *self.inner.calls.lock().expect("calls lock") = Some(calls_tx);
        let channels = caravan_net::CallChannels { calls, book, raft, forward, join };
        // Peers' records go to the verifier stage, then the writer.
        let events = self.inner.replication.clone();
        let net = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(error) =
                caravan_net::run(keypair, config, events, actions, listening_tx, channels, stopped).await
            {
                tracing::error!(%error, "the network stopped");
            }
        });
        let serve_bookings = tokio::spawn(booking::serve(self.inner.booking.clone(), book_rx));
        let serve_forwards = tokio::spawn(serve_group(self.inner.group.clone(), forward_rx));
        let serve_group = tokio::spawn(serve_group(self.inner.group.clone(), raft_rx));
        let serve_joins = tokio::spawn(serve_joins(self.clone(), join_rx));
        *self.inner.network.lock().expect("network lock") =
            Some(Network { stop, tasks: vec![net, serve_bookings, serve_forwards, serve_group, serve_joins] });
        if !listens {
            return Ok(None);
        }
        let first = listening_rx.recv().await;
        // Other listeners (QUIC, more interfaces) report within moments.
        let mut addrs: Vec<String> = first.iter().cloned().collect();
        while let Ok(Some(address)) = tokio::time::timeout(CONTACT_SETTLE, listening_rx.recv()).await {
            addrs.push(address);
        }
        addrs.truncate(caravan_model::contact::CONTACT_ADDRS_MAX);
        if let Err(error) = self.inner.group.announce(addrs.clone()).await {
            tracing::warn!(%error, "this member's addresses are not in its group's membership");
        }
        self.publish_contact(caravan_model::PeerContact { peer_id, addrs }).await;
        Ok(first)
    }

    /// Changes the group's membership, then tells agencies the new members.
    pub(crate) async fn change_group(&self, change: caravan_group::MembershipChange) -> Result<(), GroupChangeError> {
        use caravan_group::ChangeError;
        match self.inner.group.change_members(change).await {
            Ok(()) => {}
            Err(ChangeError::Refused(why)) => return Err(GroupChangeError::Refused(why)),
            Err(error) => return Err(GroupChangeError::Unavailable(error.to_string())),
        }
        let this = self.inner.contact.lock().expect("contact lock").clone();
        if let Some(this) = this {
            self.publish_contact(this).await;
        }
        Ok(())
    }

    /// Publishes how agencies reach this owner: every member of its
    /// replica group (this one first, as it listens now), so an agency
    /// that cannot reach one asks the next with the same idempotency key.
    async fn publish_contact(&self, this: caravan_model::PeerContact) {
        *self.inner.contact.lock().expect("contact lock") = Some(this.clone());
        if self.inner.group.members().is_empty() {
            return; // Joining: the group publishes it once it has added this member.
        }
        let mut peers = vec![this];
        for member in self.inner.group.members() {
            if peers.iter().all(|p| p.peer_id != member.peer_id) && !member.addrs.is_empty() {
                peers.push(caravan_model::PeerContact { peer_id: member.peer_id, addrs: member.addrs });
            }
        }
        peers.truncate(caravan_model::contact::CONTACT_PEERS_MAX);
        let contact = caravan_model::Contact { peers };
        if self.read_ledger(|ledger| ledger.contact() != Some(&contact)) {
            if let Err(error) = self.submit(Command::SetContact(contact)).await {
                tracing::warn!(?error, "contact not published; agencies cannot book here");
            }
        }
    }
}

/// Raft messages (and, apart, forwarded writes) from peers waiting for
/// the group.
const RAFT_INBOUND_MAX: usize = 1_024;
/// Machines redeeming invitations, waiting for their answer.
const JOIN_INBOUND_MAX: usize = 8;

/// Answers machines that redeem invitations, one at a time.
async fn serve_joins(node: Node, mut inbound: mpsc::Receiver<caravan_net::Inbound>) {
    while let Some(call) = inbound.recv().await {
        let reply = node.answer_join(&call.from, &call.request).await;
        let _ = call.reply.send(postcard::to_stdvec(&reply).expect("replies serialize"));
    }
}

/// Answers the group's Raft messages, each in its own task (a member's
/// append and a vote must not wait for each other), until the network
/// task drops its sender.
async fn serve_group(group: Arc<group::OwnerGroup>, mut inbound: mpsc::Receiver<caravan_net::Inbound>) {
    while let Some(call) = inbound.recv().await {
        let group = group.clone();
        tokio::spawn(async move {
            let reply = group.serve(&call.from, &call.request).await;
            let _ = call.reply.send(reply.encode());
        });
    }
}
