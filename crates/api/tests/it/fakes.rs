//! Services that answer without a node: `Empty` knows nothing and stores
//! nothing; `BrokenStorage` fails every account step as a disk would.

use std::sync::{Arc, LazyLock, RwLock, RwLockReadGuard};

use caravan_accounts::token::Secret;
use caravan_accounts::{LoginRefusal, Principal, Role};
use caravan_api::dto::{
    EquivocationView, GroupMemberInput, GroupView, InvitationView, NodeStatus, OriginView, PeerView,
};
use caravan_api::*;
use caravan_booking::agency::{Booking, BookingError, Decision, NewBooking};
use caravan_ledger::{Command, Ledger, Rejection, Reply};
use caravan_model::{AriRun, Listing, ListingId, Timestamp};
use caravan_records::{Origin, Record, Verified};
use caravan_search::{Itinerary, StayOffer, StayQuery, TripQuery};

static EMPTY_LEDGER: LazyLock<RwLock<Ledger>> = LazyLock::new(|| RwLock::new(Ledger::new()));

/// A node with nothing in it: every read is empty, every command refused.
/// Every API token stands for an account of role `caller`, if any.
#[derive(Debug, Default)]
pub struct Empty {
    pub caller: Option<Role>,
}

#[async_trait]
impl LedgerService for Empty {
    async fn submit(&self, _: Command) -> Result<Reply, SubmitError> {
        Err(SubmitError::Rejected(Rejection::InvalidRequest("the fake ledger takes nothing".into())))
    }
    fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        EMPTY_LEDGER.read().unwrap()
    }
    fn origin(&self) -> Origin {
        Origin([7; 32])
    }
    async fn own_records(&self, _: u64, _: u32) -> Result<Vec<Verified<Record>>, Internal> {
        Ok(Vec::new())
    }
}

impl CatalogService for Empty {
    fn search_stays(&self, _: &StayQuery) -> Vec<StayOffer<Origin>> {
        Vec::new()
    }
    fn search_trips(&self, _: &TripQuery) -> Vec<Itinerary<Origin>> {
        Vec::new()
    }
    fn listing(&self, _: &Origin, _: &str) -> Option<Arc<Listing>> {
        None
    }
    fn runs(&self, _: &Origin, _: &str) -> Option<Vec<AriRun>> {
        None
    }
}

#[async_trait]
impl AgencyService for Empty {
    async fn create_booking(&self, _: NewBooking) -> Result<Booking, BookingError> {
        Err(BookingError::Unavailable("the fake agency books nothing".into()))
    }
    async fn booking(&self, _: u64) -> Result<Option<Booking>, BookingError> {
        Ok(None)
    }
    async fn bookings(&self, _: Option<u64>, _: Option<u64>, _: u32) -> Result<Vec<Booking>, BookingError> {
        Ok(Vec::new())
    }
    async fn decide_booking(&self, id: u64, _: Decision) -> Result<Booking, BookingError> {
        Err(BookingError::NotFound(id))
    }
    async fn cancel_booking(&self, id: u64) -> Result<Booking, BookingError> {
        Err(BookingError::NotFound(id))
    }
}

#[async_trait]
impl AccountService for Empty {
    async fn principal(&self, _: &Secret) -> Result<Option<Principal>, Internal> {
        Ok(self.caller.map(|role| Principal { user: 1, email: "ada@example.org".into(), role }))
    }
    async fn session(&self, _: &Secret) -> Result<Option<Principal>, Internal> {
        Ok(None)
    }
    async fn login(&self, _: &str, _: &str, _: &str) -> Result<(Principal, Secret), LoginRefusal> {
        Err(LoginRefusal::WrongCredentials)
    }
    async fn confirm_password(&self, _: &str, _: &str, _: &str) -> Result<(), LoginRefusal> {
        Err(LoginRefusal::WrongCredentials)
    }
    async fn logout(&self, _: &Secret) -> Result<(), Internal> {
        Ok(())
    }
    async fn register(&self, _: &str, _: &str) -> Result<(), AccountsError> {
        Ok(())
    }
    async fn verify_email(&self, _: &Secret) -> Result<(), AccountsError> {
        Err(AccountsError::BadLink)
    }
    async fn request_reset(&self, _: &str) -> Result<(), AccountsError> {
        Ok(())
    }
    async fn reset_password(&self, _: &Secret, _: &str) -> Result<(), AccountsError> {
        Err(AccountsError::BadLink)
    }
    async fn account_by_email(&self, _: &str) -> Result<Option<(u64, Role)>, Internal> {
        Ok(None)
    }
    async fn accounts(&self, _: u64, _: u32) -> Result<Vec<AccountSummary>, Internal> {
        Ok(Vec::new())
    }
    async fn set_role(&self, _: u64, _: Role) -> Result<bool, Internal> {
        Ok(false)
    }
    async fn api_tokens(&self, _: u64) -> Result<Vec<ApiTokenSummary>, Internal> {
        Ok(Vec::new())
    }
    async fn issue_api_token(&self, _: u64, _: &str) -> Result<Secret, AccountsError> {
        Err(AccountsError::Internal(Internal::new("the fake issues no tokens")))
    }
    async fn revoke_api_token(&self, _: u64, _: [u8; 32]) -> Result<bool, Internal> {
        Ok(false)
    }
    async fn managers(&self, _: &ListingId) -> Result<Vec<u64>, Internal> {
        Ok(Vec::new())
    }
    async fn manager_accounts(&self, _: &ListingId) -> Result<Vec<(u64, String)>, Internal> {
        Ok(Vec::new())
    }
    async fn add_manager(&self, _: &ListingId, _: u64) -> Result<(), Internal> {
        Ok(())
    }
    async fn remove_manager(&self, _: &ListingId, _: u64) -> Result<bool, Internal> {
        Ok(false)
    }
    async fn managed_listings(&self, _: u64) -> Result<Vec<String>, Internal> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl AdminService for Empty {
    async fn status(&self, _: bool) -> Result<NodeStatus, Internal> {
        Err(Internal::new("the fake has no status"))
    }
    fn metrics(&self) -> Vec<Metric> {
        Vec::new()
    }
    fn peers(&self) -> Vec<PeerView> {
        Vec::new()
    }
    async fn origins(&self, _: u32) -> Result<(Vec<OriginView>, Vec<EquivocationView>), Internal> {
        Ok((Vec::new(), Vec::new()))
    }
    fn group(&self) -> GroupView {
        GroupView::default()
    }
    async fn set_group_timers(&self, _: u64, _: u64) -> Result<(), SubmitError> {
        Err(SubmitError::Unavailable("no group".into()))
    }
    async fn add_group_member(&self, _: GroupMemberInput) -> Result<(), GroupChangeError> {
        Err(GroupChangeError::Unavailable("no group".into()))
    }
    async fn remove_group_member(&self, _: u64) -> Result<(), GroupChangeError> {
        Err(GroupChangeError::Unavailable("no group".into()))
    }
    async fn invite(&self, _: i64) -> Result<InvitationView, GroupChangeError> {
        Err(GroupChangeError::Unavailable("no group".into()))
    }
    fn cut_off_group_peers(&self, _: Vec<String>) -> Result<(), FaultHooksOff> {
        Err(FaultHooksOff)
    }
}

/// The disk under the accounts is gone: every account step fails with a
/// storage error, the way SQLite's "disk I/O error" would come back.
#[derive(Debug, Default)]
pub struct BrokenStorage;

fn disk_failed() -> Internal {
    Internal::new("database: disk I/O error")
}

#[async_trait]
impl AccountService for BrokenStorage {
    async fn principal(&self, _: &Secret) -> Result<Option<Principal>, Internal> {
        Err(disk_failed())
    }
    async fn session(&self, _: &Secret) -> Result<Option<Principal>, Internal> {
        Err(disk_failed())
    }
    async fn login(&self, _: &str, _: &str, _: &str) -> Result<(Principal, Secret), LoginRefusal> {
        Err(LoginRefusal::Unavailable("the service is unavailable; try again".into()))
    }
    async fn confirm_password(&self, _: &str, _: &str, _: &str) -> Result<(), LoginRefusal> {
        Err(LoginRefusal::Unavailable("the service is unavailable; try again".into()))
    }
    async fn logout(&self, _: &Secret) -> Result<(), Internal> {
        Err(disk_failed())
    }
    async fn register(&self, _: &str, _: &str) -> Result<(), AccountsError> {
        Err(disk_failed().into())
    }
    async fn verify_email(&self, _: &Secret) -> Result<(), AccountsError> {
        Err(disk_failed().into())
    }
    async fn request_reset(&self, _: &str) -> Result<(), AccountsError> {
        Err(disk_failed().into())
    }
    async fn reset_password(&self, _: &Secret, _: &str) -> Result<(), AccountsError> {
        Err(disk_failed().into())
    }
    async fn account_by_email(&self, _: &str) -> Result<Option<(u64, Role)>, Internal> {
        Err(disk_failed())
    }
    async fn accounts(&self, _: u64, _: u32) -> Result<Vec<AccountSummary>, Internal> {
        Err(disk_failed())
    }
    async fn set_role(&self, _: u64, _: Role) -> Result<bool, Internal> {
        Err(disk_failed())
    }
    async fn api_tokens(&self, _: u64) -> Result<Vec<ApiTokenSummary>, Internal> {
        Err(disk_failed())
    }
    async fn issue_api_token(&self, _: u64, _: &str) -> Result<Secret, AccountsError> {
        Err(disk_failed().into())
    }
    async fn revoke_api_token(&self, _: u64, _: [u8; 32]) -> Result<bool, Internal> {
        Err(disk_failed())
    }
    async fn managers(&self, _: &ListingId) -> Result<Vec<u64>, Internal> {
        Err(disk_failed())
    }
    async fn manager_accounts(&self, _: &ListingId) -> Result<Vec<(u64, String)>, Internal> {
        Err(disk_failed())
    }
    async fn add_manager(&self, _: &ListingId, _: u64) -> Result<(), Internal> {
        Err(disk_failed())
    }
    async fn remove_manager(&self, _: &ListingId, _: u64) -> Result<bool, Internal> {
        Err(disk_failed())
    }
    async fn managed_listings(&self, _: u64) -> Result<Vec<String>, Internal> {
        Err(disk_failed())
    }
}

fn fixed_clock() -> Timestamp {
    Timestamp(1_800_000_000_000)
}

fn fixed_random() -> u32 {
    0x5eed
}

/// A router state where every service is `Empty`.
pub fn empty() -> AppState {
    AppState::of(Arc::new(Empty::default()), fixed_clock, fixed_random)
}

/// An empty node whose API tokens all stand for an account of `role`.
pub fn called_by(role: Role) -> AppState {
    AppState::of(Arc::new(Empty { caller: Some(role) }), fixed_clock, fixed_random)
}

/// An empty node whose account storage has failed.
pub fn broken_accounts() -> AppState {
    AppState { accounts: Arc::new(BrokenStorage), ..empty() }
}
