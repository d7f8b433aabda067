//! Caravan's HTTP interface: REST/JSON under `/api/v1`, `/healthz` and the
//! OpenAPI document. The only crate that knows HTTP and JSON.
//!
//! Handlers are thin: parse and check the request into domain values, hand
//! a ledger command to the [`Backend`], render the answer as the API's own
//! view types (`dto`), never the domain types themselves. Bad input of any
//! kind is a 4xx with `{"error": code, "message": text}`; only our own bugs
//! and storage failures are 5xx, and those are logged once.

// The OpenAPI document's schemas are one `json!` literal, deeper than the
// default limit allows.
#![recursion_limit = "256"]

mod agency;
mod auth;
pub mod dto;
mod error;
mod metrics;
pub mod openapi;
mod pages;
mod routes;

pub use error::ApiError;
pub use metrics::{Metric, Sample};
pub use routes::router;

use caravan_booking::agency::{Booking, BookingError, NewBooking};
use caravan_ledger::{Command, Ledger, Rejection, Reply};
use caravan_model::Timestamp;
use caravan_records::{Origin, Record, Verified};
use std::future::Future;

/// Why a command got no answer from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// The ledger refused it; nothing changed.
    Rejected(Rejection),
    /// The ledger could not take it now (shutting down, storage failure);
    /// the client may retry with the same idempotency key.
    Unavailable(String),
}

/// Why a membership change did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChangeError {
    /// It makes no sense for this group (an unknown member, the last voter).
    Refused(String),
    /// The group could not do it now (no leader reachable); try again.
    Unavailable(String),
}

/// What the API needs from a running node.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Runs a command through the ledger; resolves once it is durable.
    fn submit(&self, command: Command) -> impl Future<Output = Result<Reply, SubmitError>> + Send;
    /// Reads the ledger's committed state.
    fn read_ledger<R>(&self, read: impl FnOnce(&Ledger) -> R) -> R;
    /// This node's publishing identity.
    fn origin(&self) -> Origin;
    /// The wall clock, for defaults such as "from today".
    fn now(&self) -> Timestamp;
    /// How long a hold lasts when the client does not say.
    fn hold_ms_default(&self) -> i64 {
        caravan_ledger::HOLD_TTL_MS_DEFAULT
    }
    /// A random number, for generated ids.
    fn random_u32(&self) -> u32;
    /// The node's metrics, for `/metrics`.
    fn metrics(&self) -> Vec<Metric>;
    /// Peers, records held, replication lag; the catalog digest if asked.
    fn status(&self, with_digest: bool) -> impl Future<Output = Result<dto::NodeStatus, String>> + Send;
    /// Stays in the local catalog that can be sold for the query.
    fn search_stays(&self, query: &caravan_search::StayQuery) -> Vec<caravan_search::StayOffer<Origin>>;
    /// A listing of the local catalog.
    fn catalog_listing(&self, origin: &Origin, id: &str) -> Option<std::sync::Arc<caravan_model::Listing>>;
    /// A listing's availability in the local catalog.
    fn catalog_runs(&self, origin: &Origin, id: &str) -> Option<std::sync::Arc<Vec<caravan_model::AriRun>>>;
    /// Itineraries over the local catalog's trips.
    fn search_trips(&self, query: &caravan_search::TripQuery) -> Vec<caravan_search::Itinerary<Origin>>;
    /// Books every part at its owner, all or nothing; waits a while for the end.
    fn create_booking(&self, new: NewBooking) -> impl Future<Output = Result<Booking, BookingError>> + Send;
    fn booking(&self, id: u64) -> impl Future<Output = Result<Option<Booking>, BookingError>> + Send;
    /// Bookings newest first, with ids below `before_id`; only `user`'s when given.
    fn bookings(
        &self,
        user: Option<u64>,
        before_id: Option<u64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Booking>, BookingError>> + Send;
    /// The account an API token stands for, if it is live.
    fn principal(
        &self,
        token: &caravan_accounts::token::Secret,
    ) -> impl Future<Output = Result<Option<caravan_accounts::Principal>, String>> + Send;
    /// The accounts that manage `listing`.
    fn managers(&self, listing: &caravan_model::ListingId) -> impl Future<Output = Result<Vec<u64>, String>> + Send;
    fn add_manager(
        &self,
        listing: &caravan_model::ListingId,
        user: u64,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// The accounts that manage `listing`, with their emails.
    fn manager_accounts(
        &self,
        listing: &caravan_model::ListingId,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, String>> + Send;
    /// Whether `user` managed `listing` (and no longer does).
    fn remove_manager(
        &self,
        listing: &caravan_model::ListingId,
        user: u64,
    ) -> impl Future<Output = Result<bool, String>> + Send;
    /// The account with `email` and its role, if there is one.
    fn account_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<(u64, caravan_accounts::Role)>, String>> + Send;
    /// Checks a signed-in account's password again before a grave step,
    /// throttled as a login is.
    fn confirm_password(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> impl Future<Output = Result<(), caravan_accounts::LoginRefusal>> + Send;
    /// Connected peers with their links and what they exchanged.
    fn peers(&self) -> Vec<dto::PeerView>;
    /// The owner's replica group as this member sees it.
    fn group(&self) -> dto::GroupView;
    /// Sets the group's heartbeat and election timeout for every member,
    /// once they pass the rules (a refusal says which).
    fn set_group_timers(
        &self,
        heartbeat_ms: u64,
        election_timeout_ms: u64,
    ) -> impl Future<Output = Result<(), SubmitError>> + Send;
    /// Adds a node to the owner's replica group: a learner until it has
    /// caught up, then a voter. Any member takes it (the leader acts).
    fn add_group_member(
        &self,
        member: dto::GroupMemberInput,
    ) -> impl Future<Output = Result<(), GroupChangeError>> + Send;
    /// Takes a member out of the owner's replica group.
    fn remove_group_member(&self, member_id: u64) -> impl Future<Output = Result<(), GroupChangeError>> + Send;
    /// Drops Raft messages to and from these peers (a fault hook for
    /// tests); `Err` when the node's fault hooks are off.
    fn cut_off_group_peers(&self, peers: Vec<String>) -> Result<(), String>;
    /// Records held per origin (the `limit` largest) and the frozen origins.
    fn origins(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<dto::OriginView>, Vec<dto::EquivocationView>), String>> + Send;
    /// The listings `user` manages.
    fn managed_listings(&self, user: u64) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// Checks a password (throttled per email and per `client` address) and
    /// opens a new session.
    fn login(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> impl Future<
        Output = Result<(caravan_accounts::Principal, caravan_accounts::token::Secret), caravan_accounts::LoginRefusal>,
    > + Send;
    /// The account a live session stands for.
    fn session(
        &self,
        session: &caravan_accounts::token::Secret,
    ) -> impl Future<Output = Result<Option<caravan_accounts::Principal>, String>> + Send;
    /// Registers a traveller and mails the verification link; the error
    /// is a message for the person.
    fn register(&self, email: &str, password: &str) -> impl Future<Output = Result<(), String>> + Send;
    fn verify_email(&self, token: &caravan_accounts::token::Secret) -> impl Future<Output = Result<(), String>> + Send;
    /// Mails a reset link if the address has an account (says nothing either way).
    fn request_reset(&self, email: &str) -> impl Future<Output = Result<(), String>> + Send;
    fn reset_password(
        &self,
        token: &caravan_accounts::token::Secret,
        password: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Accounts in id order after `after_id`: (id, email, role, verified).
    fn accounts(
        &self,
        after_id: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(u64, String, caravan_accounts::Role, bool)>, String>> + Send;
    /// Gives account `user` another role; false when there is no such account.
    fn set_role(&self, user: u64, role: caravan_accounts::Role) -> impl Future<Output = Result<bool, String>> + Send;
    /// A user's API tokens: (hex of the stored hash, name, created).
    fn api_tokens(&self, user: u64) -> impl Future<Output = Result<Vec<(String, String, Timestamp)>, String>> + Send;
    /// Issues an API token for `user`; the secret, shown once.
    fn issue_api_token(
        &self,
        user: u64,
        name: &str,
    ) -> impl Future<Output = Result<caravan_accounts::token::Secret, String>> + Send;
    /// Revokes the user's API token whose stored hash is `hash`.
    fn revoke_api_token(&self, user: u64, hash: [u8; 32]) -> impl Future<Output = Result<bool, String>> + Send;
    /// Ends a session.
    fn logout(&self, session: &caravan_accounts::token::Secret) -> impl Future<Output = Result<(), String>> + Send;
    /// The traveller confirms (or lets go of) a booking held for them.
    fn decide_booking(
        &self,
        id: u64,
        decision: caravan_booking::agency::Decision,
    ) -> impl Future<Output = Result<Booking, BookingError>> + Send;
    /// Cancels a confirmed booking at every owner.
    fn cancel_booking(&self, id: u64) -> impl Future<Output = Result<Booking, BookingError>> + Send;
    /// This node's own records with a version above `after_version`, oldest first.
    fn own_records(
        &self,
        after_version: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Verified<Record>>, String>> + Send;
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}
