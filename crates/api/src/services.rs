//! What the HTTP surface needs from a node: one small trait per concern,
//! each with its own error type, bundled in [`AppState`].
//!
//! The router never sees a node. A node implements these traits over its
//! replica group, catalog, sagas and database; a test that is about HTTP
//! (status codes, forms, error mapping) gives the router small fakes
//! instead. The traits are object-safe so that handlers are plain
//! functions of one state type, not generic over a backend.

use std::sync::{Arc, RwLockReadGuard};

use async_trait::async_trait;
use caravan_accounts::token::Secret;
use caravan_accounts::{LoginRefusal, Principal, Role};
use caravan_booking::agency::{Booking, BookingError, Decision, NewBooking};
use caravan_ledger::{Command, Ledger, Rejection, Reply};
use caravan_model::{AriRun, Listing, ListingId, Timestamp};
use caravan_records::{Origin, Record, Verified};
use caravan_search::{Itinerary, StayOffer, StayQuery, TripQuery};

use crate::dto;
use crate::metrics::Metric;

/// A failure of ours, not the caller's: storage, a lost task, a bug. The
/// HTTP layer answers a generic 500 and logs the cause once.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Internal(Box<dyn std::error::Error + Send + Sync>);

impl Internal {
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Internal {
        Internal(cause.into())
    }
}

/// Why a command got no answer from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The ledger refused it; nothing changed.
    #[error(transparent)]
    Rejected(Rejection),
    /// The ledger could not take it now (shutting down, no leader, a
    /// storage failure that stopped the member); the client may retry
    /// with the same idempotency key.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Why a membership change did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupChangeError {
    /// It makes no sense for this group (an unknown member, the last voter).
    #[error("{0}")]
    Refused(String),
    /// The group could not do it now (no leader reachable); try again.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The fault hooks are switched off on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault hooks are off on this node ([group] fault_hooks in caravan.toml)")]
pub struct FaultHooksOff;

/// Why an account step a person asked for did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The input breaks a rule (an email that does not parse, a password
    /// too short, a token name too long); the message is for the person.
    #[error(transparent)]
    Invalid(caravan_accounts::AccountError),
    /// The link was used already, or has expired.
    #[error("this link is used up or expired; ask for a new one")]
    BadLink,
    /// The mail could not leave the node; it is kept, and the person may
    /// try again later.
    #[error("the mail could not be sent; try again later")]
    MailNotSent,
    /// Storage or another failure of ours.
    #[error(transparent)]
    Internal(#[from] Internal),
}

/// One account as an admin lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub id: u64,
    pub email: String,
    pub role: Role,
    pub verified: bool,
}

/// One API token as its owner lists it (the secret is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenSummary {
    /// Hex of the stored hash: how the owner names it to revoke it.
    pub hash: String,
    pub name: String,
    pub created: Timestamp,
}

/// The owner's ledger: commands in, committed state out.
#[async_trait]
pub trait LedgerService: Send + Sync + 'static {
    /// Runs a command through the ledger; resolves once it is durable.
    async fn submit(&self, command: Command) -> Result<Reply, SubmitError>;
    /// The ledger's committed state; hold the guard briefly, never across
    /// an `.await`.
    fn ledger(&self) -> RwLockReadGuard<'_, Ledger>;
    /// This node's publishing identity.
    fn origin(&self) -> Origin;
    /// How long a hold lasts when the client does not say.
    fn hold_ms_default(&self) -> i64 {
        caravan_ledger::HOLD_TTL_MS_DEFAULT
    }
    /// This node's own records with a version above `after_version`, oldest first.
    async fn own_records(&self, after_version: u64, limit: u32) -> Result<Vec<Verified<Record>>, Internal>;
}

/// The local catalog of every origin's listings, searched in memory.
pub trait CatalogService: Send + Sync + 'static {
    /// Stays that can be sold for the query.
    fn search_stays(&self, query: &StayQuery) -> Vec<StayOffer<Origin>>;
    /// Itineraries over the catalog's trips.
    fn search_trips(&self, query: &TripQuery) -> Vec<Itinerary<Origin>>;
    /// A listing of the catalog.
    fn listing(&self, origin: &Origin, id: &str) -> Option<Arc<Listing>>;
    /// A listing's availability in the catalog.
    fn runs(&self, origin: &Origin, id: &str) -> Option<Vec<AriRun>>;
}

/// The agency's bookings: any mix of parts at their owners, all or nothing.
#[async_trait]
pub trait AgencyService: Send + Sync + 'static {
    /// Books every part at its owner; waits a while for the end.
    async fn create_booking(&self, new: NewBooking) -> Result<Booking, BookingError>;
    async fn booking(&self, id: u64) -> Result<Option<Booking>, BookingError>;
    /// Bookings newest first, with ids below `before_id`; only `user`'s when given.
    async fn bookings(
        &self,
        user: Option<u64>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Booking>, BookingError>;
    /// The traveller confirms (or lets go of) a booking held for them.
    async fn decide_booking(&self, id: u64, decision: Decision) -> Result<Booking, BookingError>;
    /// Cancels a confirmed booking at every owner.
    async fn cancel_booking(&self, id: u64) -> Result<Booking, BookingError>;
}

/// People on this node: sessions, API tokens, registration, roles, and who
/// manages which listing.
#[async_trait]
pub trait AccountService: Send + Sync + 'static {
    /// The account a live API token stands for.
    async fn principal(&self, token: &Secret) -> Result<Option<Principal>, Internal>;
    /// The account a live session stands for.
    async fn session(&self, session: &Secret) -> Result<Option<Principal>, Internal>;
    /// Checks a password (throttled per email and per `client` address) and
    /// opens a new session.
    async fn login(&self, email: &str, password: &str, client: &str) -> Result<(Principal, Secret), LoginRefusal>;
    /// Checks a signed-in account's password again before a grave step,
    /// throttled as a login is.
    async fn confirm_password(&self, email: &str, password: &str, client: &str) -> Result<(), LoginRefusal>;
    /// Ends a session.
    async fn logout(&self, session: &Secret) -> Result<(), Internal>;
    /// Registers a traveller and mails the verification link.
    async fn register(&self, email: &str, password: &str) -> Result<(), AccountsError>;
    async fn verify_email(&self, token: &Secret) -> Result<(), AccountsError>;
    /// Mails a reset link if the address has an account (says nothing either way).
    async fn request_reset(&self, email: &str) -> Result<(), AccountsError>;
    async fn reset_password(&self, token: &Secret, password: &str) -> Result<(), AccountsError>;
    /// The account with `email` and its role, if there is one.
    async fn account_by_email(&self, email: &str) -> Result<Option<(u64, Role)>, Internal>;
    /// Accounts in id order after `after_id`.
    async fn accounts(&self, after_id: u64, limit: u32) -> Result<Vec<AccountSummary>, Internal>;
    /// Gives account `user` another role; false when there is no such account.
    async fn set_role(&self, user: u64, role: Role) -> Result<bool, Internal>;
    /// A user's API tokens.
    async fn api_tokens(&self, user: u64) -> Result<Vec<ApiTokenSummary>, Internal>;
    /// Issues an API token for `user`; the secret, shown once.
    async fn issue_api_token(&self, user: u64, name: &str) -> Result<Secret, AccountsError>;
    /// Revokes the user's API token whose stored hash is `hash`.
    async fn revoke_api_token(&self, user: u64, hash: [u8; 32]) -> Result<bool, Internal>;
    /// The accounts that manage `listing`.
    async fn managers(&self, listing: &ListingId) -> Result<Vec<u64>, Internal>;
    /// The accounts that manage `listing`, with their emails.
    async fn manager_accounts(&self, listing: &ListingId) -> Result<Vec<(u64, String)>, Internal>;
    async fn add_manager(&self, listing: &ListingId, user: u64) -> Result<(), Internal>;
    /// Whether `user` managed `listing` (and no longer does).
    async fn remove_manager(&self, listing: &ListingId, user: u64) -> Result<bool, Internal>;
    /// The listings `user` manages.
    async fn managed_listings(&self, user: u64) -> Result<Vec<String>, Internal>;
}

/// What an operator runs: the replica group, peers, origins and counters.
#[async_trait]
pub trait AdminService: Send + Sync + 'static {
    /// Peers, records held, replication lag; the catalog digest if asked.
    async fn status(&self, with_digest: bool) -> Result<dto::NodeStatus, Internal>;
    /// The node's metrics, for `/metrics`.
    fn metrics(&self) -> Vec<Metric>;
    /// Connected peers with their links and what they exchanged.
    fn peers(&self) -> Vec<dto::PeerView>;
    /// Records held per origin (the `limit` largest) and the frozen origins.
    async fn origins(&self, limit: u32) -> Result<(Vec<dto::OriginView>, Vec<dto::EquivocationView>), Internal>;
    /// The owner's replica group as this member sees it.
    fn group(&self) -> dto::GroupView;
    /// Sets the group's heartbeat and election timeout for every member,
    /// once they pass the rules (a refusal says which).
    async fn set_group_timers(&self, heartbeat_ms: u64, election_timeout_ms: u64) -> Result<(), SubmitError>;
    /// Adds a node to the owner's replica group: a learner until it has
    /// caught up, then a voter. Any member takes it (the leader acts).
    async fn add_group_member(&self, member: dto::GroupMemberInput) -> Result<(), GroupChangeError>;
    /// Takes a member out of the owner's replica group.
    async fn remove_group_member(&self, member_id: u64) -> Result<(), GroupChangeError>;
    /// A one-time invitation to join the group, valid for `ttl_ms`.
    async fn invite(&self, ttl_ms: i64) -> Result<dto::InvitationView, GroupChangeError>;
    /// Drops Raft messages to and from these peers (a fault hook for tests).
    fn cut_off_group_peers(&self, peers: Vec<String>) -> Result<(), FaultHooksOff>;
}

/// Everything the router needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<dyn LedgerService>,
    pub catalog: Arc<dyn CatalogService>,
    pub agency: Arc<dyn AgencyService>,
    pub accounts: Arc<dyn AccountService>,
    pub admin: Arc<dyn AdminService>,
    /// The wall clock, for defaults such as "from today".
    pub clock: fn() -> Timestamp,
    /// Random numbers, for generated ids.
    pub random_u32: fn() -> u32,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("origin", &self.ledger.origin()).finish_non_exhaustive()
    }
}

impl AppState {
    /// One value that is every service, as a node is.
    pub fn of<S>(services: Arc<S>, clock: fn() -> Timestamp, random_u32: fn() -> u32) -> AppState
    where
        S: LedgerService + CatalogService + AgencyService + AccountService + AdminService,
    {
        AppState {
            ledger: services.clone(),
            catalog: services.clone(),
            agency: services.clone(),
            accounts: services.clone(),
            admin: services,
            clock,
            random_u32,
        }
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Reads the ledger's committed state.
    pub fn read_ledger<R>(&self, read: impl FnOnce(&Ledger) -> R) -> R {
        read(&self.ledger.ledger())
    }
}
