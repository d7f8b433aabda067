//! Invitations to join this owner's replica group, so that no one copies
//! `node.key` by hand.
//!
//! `caravan group invite` asks a member for one: a token naming that
//! member (peer id, addresses), a one-time secret and an expiry. The
//! machine that joins with it dials the member over a peer connection
//! (encrypted, and authenticated by its peer id), proves the secret on
//! `/caravan/group-join/1`, and receives the owner key and the group's
//! members; the member then adds it to the group. The member keeps only a
//! hash of the secret, beside its Raft log; an invitation works for one
//! machine, once, until it expires.

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use caravan_group::{Member, MemberId};
use caravan_model::Timestamp;

/// How a token starts: the kind and version of what follows (hex).
pub const TOKEN_PREFIX: &str = "caravan-invite-1.";
pub const TTL_MS_DEFAULT: i64 = 60 * 60 * 1000;
pub const TTL_MS_MAX: i64 = 7 * 24 * 60 * 60 * 1000;
/// Invitations a member keeps (expired ones are dropped first).
pub const ISSUED_MAX: usize = 256;
/// The key beside the Raft log under which a member keeps its invitations.
pub const ISSUED_KEY: &str = "invitations";

/// Why an invitation was not issued, taken or redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    #[error("not a caravan invitation: copy the whole token `caravan group invite` printed")]
    Malformed,
    #[error("this member issued no such invitation")]
    Unknown,
    #[error("the invitation has expired: ask for a new one with `caravan group invite`")]
    Expired,
    #[error("the invitation was used already: an invitation works once")]
    Used,
    #[error("keeping the invitations: {0}")]
    Storage(String),
    #[error("this machine's network key: {0}")]
    Key(String),
    #[error("the member that issued the invitation did not answer: {0}")]
    Unreachable(String),
    #[error("the group refused the invitation: {0}")]
    Refused(String),
}

/// What the joining machine is given, as a token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The member that issued it, and where it listens.
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub secret: [u8; 32],
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation").field("peer_id", &self.peer_id).field("expires_at", &self.expires_at).finish()
    }
}

impl Invitation {
    pub fn token(&self) -> String {
        format!("{TOKEN_PREFIX}{}", hex::encode(postcard::to_stdvec(self).expect("invitations serialize")))
    }

    pub fn parse(token: &str) -> Result<Invitation, InvitationError> {
        let hex_part = token.trim().strip_prefix(TOKEN_PREFIX).ok_or(InvitationError::Malformed)?;
        let bytes = hex::decode(hex_part).map_err(|_| InvitationError::Malformed)?;
        postcard::from_bytes(&bytes).map_err(|_| InvitationError::Malformed)
    }
}

/// What the issuing member keeps of an invitation: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    secret_hash: [u8; 32],
    expires_at: Timestamp,
    /// The peer that redeemed it: only that peer may redeem it again (a
    /// retry after a lost answer).
    redeemed_by: Option<String>,
}

impl Issued {
    pub fn new(secret: &[u8; 32], expires_at: Timestamp) -> Issued {
        Issued { secret_hash: *blake3::hash(secret).as_bytes(), expires_at, redeemed_by: None }
    }
}

/// Adds an invitation to a member's list, dropping expired ones and, past
/// [`ISSUED_MAX`], the oldest.
pub fn issue(issued: &mut Vec<Issued>, invitation: Issued, now: Timestamp) {
    issued.retain(|i| i.expires_at > now);
    issued.push(invitation);
    if issued.len() > ISSUED_MAX {
        issued.drain(..issued.len() - ISSUED_MAX);
    }
}

/// Checks `secret` as redeemed by `peer` at `now` and marks it so.
pub fn redeem(issued: &mut [Issued], secret: &[u8; 32], peer: &str, now: Timestamp) -> Result<(), InvitationError> {
    // blake3's `Hash` compares in constant time.
    let hash = blake3::hash(secret);
    let invitation =
        issued.iter_mut().find(|i| blake3::Hash::from(i.secret_hash) == hash).ok_or(InvitationError::Unknown)?;
    if invitation.expires_at <= now {
        return Err(InvitationError::Expired);
    }
    match &invitation.redeemed_by {
        Some(by) if by != peer => Err(InvitationError::Used),
        _ => {
            invitation.redeemed_by = Some(peer.to_owned());
            Ok(())
        }
    }
}

/// What the joining machine sends on `/caravan/group-join/1`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub secret: [u8; 32],
    /// The id the joining machine drew, and where the group can dial it.
    pub member_id: MemberId,
    pub addrs: Vec<String>,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest").field("member_id", &self.member_id).field("addrs", &self.addrs).finish()
    }
}

/// The issuing member's answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    /// The owner key's seed (every member signs as the owner) and the
    /// group's members; the issuing member adds the new one next.
    Welcome {
        owner_seed: [u8; 32],
        members: Vec<Member>,
    },
    Refused(String),
}

impl std::fmt::Debug for JoinReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinReply::Welcome { members, .. } => write!(f, "Welcome({} members)", members.len()),
            JoinReply::Refused(why) => write!(f, "Refused({why:?})"),
        }
    }
}

/// How long a member goes on trying to add a machine that redeemed one of
/// its invitations (it may take a while to start).
const ADD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
/// The queues of the joining machine's own small swarm.
const REDEEM_QUEUE_MAX: usize = 16;
/// How long the joining machine waits for the issuing member's answer.
const REDEEM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn read_issued(log_path: &std::path::Path) -> Result<Vec<Issued>, InvitationError> {
    let issued = caravan_group::read_local(log_path, ISSUED_KEY).map_err(InvitationError::Storage)?;
    Ok(issued.unwrap_or_default())
}

fn write_issued(log_path: &std::path::Path, issued: &[Issued]) -> Result<(), InvitationError> {
    caravan_group::write_local(log_path, ISSUED_KEY, &issued).map_err(InvitationError::Storage)
}

impl crate::Node {
    fn log_path(&self) -> std::path::PathBuf {
        self.data_dir().join(caravan_group::LOG_FILE)
    }

    /// Issues an invitation to join this member's group, valid `ttl_ms`.
    pub(crate) async fn invite(
        &self,
        ttl_ms: i64,
    ) -> Result<caravan_api::dto::InvitationView, caravan_api::GroupChangeError> {
        use caravan_api::GroupChangeError::{Refused, Unavailable};
        let status = self.inner.group.status();
        let announced = status.members.iter().find(|m| m.peer_id == status.peer_id).map(|m| m.addrs.clone());
        let listening = self.inner.contact.lock().expect("contact lock").as_ref().map(|c| c.addrs.clone());
        let addrs = announced.filter(|a| !a.is_empty()).or(listening).unwrap_or_default();
        if addrs.is_empty() {
            return Err(Refused(
                "this member listens on no address another machine can dial: run it with --p2p".into(),
            ));
        }
        let (now, secret) = (self.now(), rand::random::<[u8; 32]>());
        let expires_at = now.saturating_add_ms(ttl_ms.clamp(0, TTL_MS_MAX));
        let log_path = self.log_path();
        let _one_at_a_time = self.inner.invitations.lock().await;
        let keep = move || -> Result<(), InvitationError> {
            let mut issued = read_issued(&log_path)?;
            issue(&mut issued, Issued::new(&secret, expires_at), now);
            write_issued(&log_path, &issued)
        };
        let kept =
            tokio::task::spawn_blocking(keep).await.unwrap_or_else(|e| Err(InvitationError::Storage(e.to_string())));
        kept.map_err(|why| Unavailable(why.to_string()))?;
        let invitation = Invitation { peer_id: status.peer_id, addrs, secret, expires_at };
        tracing::info!(expires_at = %caravan_api::dto::rfc3339(expires_at), "group invitation issued");
        Ok(caravan_api::dto::InvitationView {
            token: invitation.token(),
            expires_at: caravan_api::dto::rfc3339(expires_at),
        })
    }

    /// Answers a machine that redeems an invitation: checks it, gives the
    /// owner key and the members, and adds the machine to the group.
    pub(crate) async fn answer_join(&self, peer: &str, request: &[u8]) -> JoinReply {
        let Ok(request) = postcard::from_bytes::<JoinRequest>(request) else {
            return JoinReply::Refused("not a join request".into());
        };
        let contact = caravan_model::PeerContact { peer_id: peer.to_owned(), addrs: request.addrs.clone() };
        if let Err(why) = contact.validate() {
            return JoinReply::Refused(why);
        }
        if request.member_id == 0 {
            return JoinReply::Refused("member id 0 is not a member id".into());
        }
        let (log_path, now, peer_id, secret) = (self.log_path(), self.now(), peer.to_owned(), request.secret);
        let redeemed = {
            let _one_at_a_time = self.inner.invitations.lock().await;
            let check = move || -> Result<(), InvitationError> {
                let mut issued = read_issued(&log_path)?;
                redeem(&mut issued, &secret, &peer_id, now)?;
                write_issued(&log_path, &issued)
            };
            tokio::task::spawn_blocking(check).await.unwrap_or_else(|e| Err(InvitationError::Storage(e.to_string())))
        };
        if let Err(why) = redeemed {
            tracing::warn!(%peer, %why, "invitation refused");
            return JoinReply::Refused(why.to_string());
        }
        let owner_seed = match crate::NodeKey::load(&self.data_dir()) {
            Ok(key) => key.seed(),
            Err(error) => return JoinReply::Refused(format!("this member cannot read its key: {error}")),
        };
        let member = Member { peer_id: peer.to_owned(), addrs: request.addrs };
        tracing::info!(%peer, member_id = request.member_id, "invitation redeemed; adding the machine to the group");
        tokio::spawn(self.clone().add_until_joined(request.member_id, member));
        JoinReply::Welcome { owner_seed, members: self.inner.group.members() }
    }

    /// Adds a machine that redeemed an invitation, trying again while it
    /// starts (a learner until it has caught up, then a voter).
    async fn add_until_joined(self, member_id: MemberId, member: Member) {
        let deadline = tokio::time::Instant::now() + ADD_PATIENCE;
        loop {
            let change = caravan_group::MembershipChange::Add(member_id, member.clone());
            match self.change_group(change).await {
                Ok(()) => return tracing::info!(member_id, "invited machine joined the group"),
                Err(caravan_api::GroupChangeError::Refused(why)) => {
                    return tracing::warn!(member_id, %why, "invited machine not added");
                }
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return tracing::warn!(member_id, %error, "invited machine not added; gave up");
                }
                Err(error) => tracing::debug!(member_id, %error, "invited machine not added yet"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
}

/// Redeems `invitation` from a machine whose data directory has a network
/// key (its peer id) and a member id, over a peer connection of its own:
/// the owner key's seed and the group's members.
pub async fn redeem_invitation(
    data_dir: &std::path::Path,
    invitation: &Invitation,
    member_id: MemberId,
    addrs: Vec<String>,
) -> Result<([u8; 32], Vec<Member>), InvitationError> {
    let net_key = crate::NodeKey::load_or_create_net_key(data_dir).map_err(|e| InvitationError::Key(e.to_string()))?;
    let keypair = caravan_net::keypair_from_seed(net_key.seed());
    let config = caravan_net::NetConfig { discovery: false, ..caravan_net::NetConfig::default() };
    let (events, mut events_rx) = mpsc::channel(REDEEM_QUEUE_MAX);
    let (_actions, actions_rx) = mpsc::channel(REDEEM_QUEUE_MAX);
    let (listening, _listening_rx) = mpsc::channel(REDEEM_QUEUE_MAX);
    let (calls, calls_rx) = mpsc::channel(REDEEM_QUEUE_MAX);
    // Nobody asks this swarm anything: its inbound queues are closed.
    let closed = || mpsc::channel(REDEEM_QUEUE_MAX).0;
    let channels = caravan_net::CallChannels {
        calls: calls_rx,
        book: closed(),
        raft: closed(),
        forward: closed(),
        join: closed(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let swarm = tokio::spawn(caravan_net::run(keypair, config, events, actions_rx, listening, channels, async {
        let _ = stopped.await;
    }));
    let drain = tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
    let request = JoinRequest { secret: invitation.secret, member_id, addrs };
    let (reply, answer) = oneshot::channel();
    let call = caravan_net::Call {
        protocol: caravan_net::Protocol::Join,
        peer: invitation.peer_id.clone(),
        addrs: invitation.addrs.clone(),
        request: postcard::to_stdvec(&request).expect("requests serialize"),
        reply,
    };
    let unreachable = InvitationError::Unreachable;
    let asked = async {
        calls.send(call).await.map_err(|_| unreachable("the network stopped".into()))?;
        let bytes = answer.await.map_err(|_| unreachable("the network stopped".into()))?;
        bytes.map_err(|failed| unreachable(failed.to_string()))
    };
    let answered =
        tokio::time::timeout(REDEEM_TIMEOUT, asked).await.unwrap_or_else(|_| Err(unreachable("timed out".into())));
    let _ = stop.send(());
    let _ = swarm.await;
    drain.abort();
    match postcard::from_bytes::<JoinReply>(&answered?) {
        Ok(JoinReply::Welcome { owner_seed, members }) => Ok((owner_seed, members)),
        Ok(JoinReply::Refused(why)) => Err(InvitationError::Refused(why)),
        Err(_) => {
            Err(InvitationError::Unreachable("it answered something else than an answer to an invitation".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation() -> Invitation {
        Invitation {
            peer_id: "12D3KooWissuer".into(),
            addrs: vec!["/ip4/10.0.0.1/tcp/7171".into()],
            secret: [9; 32],
            expires_at: Timestamp(10_000),
        }
    }

    #[test]
    fn a_token_round_trips_and_anything_else_is_refused_clearly() {
        let token = invitation().token();
        assert_eq!(Invitation::parse(&format!(" {token}\n")).unwrap(), invitation());
        for bad in ["", "caravan-invite-1.zz", &token[..token.len() - 2], "hello"] {
            assert_eq!(Invitation::parse(bad), Err(InvitationError::Malformed), "{bad:?}");
        }
        assert!(!format!("{:?}", invitation()).contains("9, 9"), "Debug hides the secret");
    }

    #[test]
    fn an_invitation_works_for_one_machine_and_until_it_expires() {
        let mut issued = Vec::new();
        issue(&mut issued, Issued::new(&[9; 32], Timestamp(10_000)), Timestamp(0));
        assert_eq!(redeem(&mut issued, &[8; 32], "a", Timestamp(1)), Err(InvitationError::Unknown));
        redeem(&mut issued, &[9; 32], "a", Timestamp(1)).unwrap();
        redeem(&mut issued, &[9; 32], "a", Timestamp(2)).expect("the same machine may ask again");
        assert_eq!(redeem(&mut issued, &[9; 32], "b", Timestamp(3)), Err(InvitationError::Used));
        issue(&mut issued, Issued::new(&[7; 32], Timestamp(5_000)), Timestamp(4));
        assert_eq!(redeem(&mut issued, &[7; 32], "c", Timestamp(5_000)), Err(InvitationError::Expired));
        issue(&mut issued, Issued::new(&[6; 32], Timestamp(20_000)), Timestamp(10_000));
        assert_eq!(issued.len(), 1, "expired invitations are dropped when another is issued");
    }
}
