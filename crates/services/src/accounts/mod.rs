//! The account service: sessions and API tokens, registration and
//! recovery (with their mails), roles, and who manages which listing. The
//! rules live in [`rules`] over the node's database; the service runs them
//! on the writer or the reader and types their failures.

pub mod rules;

use caravan_accounts::token::{Secret, TokenKind};
use caravan_accounts::{LoginRefusal, Principal, Role};
use caravan_api::async_trait;
use caravan_api::{AccountService, AccountSummary, AccountsError, ApiTokenSummary, Internal};
use caravan_model::{ListingId, Timestamp};
use caravan_store::rusqlite::Connection;
use caravan_store::users::{self, UserRow};
use caravan_store::StoreError;

use crate::mail::Mailer;
use crate::Database;
use rules::{AccountsError as RuleError, Mail};

/// The accounts of this node.
#[derive(Debug)]
pub struct Accounts<D> {
    db: D,
    mailer: Mailer,
    /// Where people reach the pages, for the links in mails.
    public_url: String,
    clock: fn() -> Timestamp,
}

impl<D: Database> Accounts<D> {
    pub fn new(db: D, mailer: Mailer, public_url: String, clock: fn() -> Timestamp) -> Accounts<D> {
        Accounts { db, mailer, public_url, clock }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Sends an account mail (see [`Mailer`]).
    async fn deliver(&self, mail: Result<Option<Mail>, RuleError>) -> Result<(), AccountsError> {
        let Some(mail) = mail.map_err(refusal)? else { return Ok(()) };
        self.mailer.send(&mail, self.now().ms()).await.map_err(|_| AccountsError::MailNotSent)
    }
}

/// A storage failure as the API's `Internal`.
fn internal(error: StoreError) -> Internal {
    Internal::new(error)
}

/// A stored account's role; a role this build does not know is a corrupt row.
fn role_of(user: &UserRow) -> Result<Role, StoreError> {
    Role::parse(&user.role).map_err(|e| StoreError::Corrupt(format!("account {}: {e}", user.id)))
}

/// The account a live token of `kind` stands for.
fn principal_of(
    conn: &Connection,
    token: &Secret,
    kind: TokenKind,
    now: Timestamp,
) -> Result<Option<Principal>, StoreError> {
    let Some(user) = rules::authenticate(conn, token, kind, now)? else { return Ok(None) };
    let role = role_of(&user)?;
    Ok(Some(Principal { user: user.id, email: user.email, role }))
}

/// What a person may be told of a failed account rule. Adding an account
/// and naming an unknown one are the CLI's steps, never a person's: met
/// here they are our bug.
fn refusal(error: RuleError) -> AccountsError {
    match error {
        RuleError::Invalid(invalid) => AccountsError::Invalid(invalid),
        RuleError::BadLink => AccountsError::BadLink,
        RuleError::Store(error) => AccountsError::Internal(internal(error)),
        RuleError::Refused(refusal) => AccountsError::Internal(Internal::new(refusal.to_string())),
        RuleError::Exists(_) | RuleError::Unknown(_) => AccountsError::Internal(Internal::new(error.to_string())),
    }
}

/// A password check's outcome, with its throttle writes kept even when it
/// refuses; only a storage failure rolls them back.
fn throttled<R>(outcome: Result<R, RuleError>) -> Result<Result<R, RuleError>, StoreError> {
    match outcome {
        Err(RuleError::Store(error)) => Err(error),
        outcome => Ok(outcome),
    }
}

/// Why a password check failed, as the person may read it; a failure of
/// ours is logged here and shown as "unavailable".
fn login_refusal(error: RuleError) -> LoginRefusal {
    match error {
        RuleError::Refused(refusal) => refusal,
        other => {
            tracing::error!(error = %other, "password check failed");
            LoginRefusal::Unavailable("the service is unavailable; try again".into())
        }
    }
}

#[async_trait]
impl<D: Database> AccountService for Accounts<D> {
    async fn principal(&self, token: &Secret) -> Result<Option<Principal>, Internal> {
        let (token, now) = (token.clone(), self.now());
        self.db.read(move |conn| principal_of(conn, &token, TokenKind::Api, now)).await.map_err(internal)
    }

    async fn session(&self, session: &Secret) -> Result<Option<Principal>, Internal> {
        let (session, now) = (session.clone(), self.now());
        self.db.read(move |conn| principal_of(conn, &session, TokenKind::Session, now)).await.map_err(internal)
    }

    async fn login(&self, email: &str, password: &str, client: &str) -> Result<(Principal, Secret), LoginRefusal> {
        let (email, password, client, now) = (email.to_owned(), password.to_owned(), client.to_owned(), self.now());
        let result = self
            .db
            .write(move |conn| throttled(rules::login(conn, &email, &password, &client, now)))
            .await
            .unwrap_or_else(|error| Err(error.into()));
        let (user, session) = result.map_err(login_refusal)?;
        let role = role_of(&user).map_err(|error| login_refusal(error.into()))?;
        Ok((Principal { user: user.id, email: user.email, role }, session))
    }

    async fn confirm_password(&self, email: &str, password: &str, client: &str) -> Result<(), LoginRefusal> {
        let (email, password, client, now) = (email.to_owned(), password.to_owned(), client.to_owned(), self.now());
        self.db
            .write(move |conn| throttled(rules::check_password(conn, &email, &password, &client, now)))
            .await
            .unwrap_or_else(|error| Err(error.into()))
            .map(|_| ())
            .map_err(login_refusal)
    }

    async fn logout(&self, session: &Secret) -> Result<(), Internal> {
        let hash = session.stored_hash(TokenKind::Session);
        self.db.write(move |conn| users::take_token(conn, &hash).map(|_| ())).await.map_err(internal)
    }

    async fn register(&self, email: &str, password: &str) -> Result<(), AccountsError> {
        let (email, password, url, now) = (email.to_owned(), password.to_owned(), self.public_url.clone(), self.now());
        let mail = self.db.write(move |conn| rules::register(conn, &email, &password, &url, now)).await;
        self.deliver(mail.map(Some)).await
    }

    async fn verify_email(&self, token: &Secret) -> Result<(), AccountsError> {
        let (token, now) = (token.clone(), self.now());
        let verified = self.db.write(move |conn| rules::verify_email(conn, &token, now)).await;
        verified.map(|_| ()).map_err(refusal)
    }

    async fn request_reset(&self, email: &str) -> Result<(), AccountsError> {
        let (email, url, now) = (email.to_owned(), self.public_url.clone(), self.now());
        let mail = self.db.write(move |conn| rules::request_reset(conn, &email, &url, now)).await;
        self.deliver(mail).await
    }

    async fn reset_password(&self, token: &Secret, password: &str) -> Result<(), AccountsError> {
        let (token, password, now) = (token.clone(), password.to_owned(), self.now());
        let reset = self.db.write(move |conn| rules::reset_password(conn, &token, &password, now)).await;
        reset.map(|_| ()).map_err(refusal)
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<(u64, Role)>, Internal> {
        let Ok(email) = caravan_accounts::Email::parse(email) else { return Ok(None) };
        let read = move |conn: &Connection| {
            let Some(user) = users::by_email(conn, email.as_str())? else { return Ok(None) };
            Ok(Some((user.id, role_of(&user)?)))
        };
        self.db.read(read).await.map_err(internal)
    }

    async fn accounts(&self, after_id: u64, limit: u32) -> Result<Vec<AccountSummary>, Internal> {
        let read = move |conn: &Connection| {
            let rows = users::list(conn, after_id, limit)?;
            rows.into_iter()
                .map(|user| {
                    let role = role_of(&user)?;
                    Ok(AccountSummary { id: user.id, email: user.email, role, verified: user.verified })
                })
                .collect()
        };
        self.db.read(read).await.map_err(internal)
    }

    async fn set_role(&self, user: u64, role: Role) -> Result<bool, Internal> {
        self.db.write(move |conn| users::set_role(conn, user, role.as_str())).await.map_err(internal)
    }

    async fn api_tokens(&self, user: u64) -> Result<Vec<ApiTokenSummary>, Internal> {
        let kind = TokenKind::Api.as_str();
        let rows = self.db.read(move |conn| users::tokens_of(conn, user, kind)).await.map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|t| ApiTokenSummary {
                hash: hex::encode(t.hash),
                name: t.name.unwrap_or_default(),
                created: Timestamp(t.created_ms),
            })
            .collect())
    }

    async fn issue_api_token(&self, user: u64, name: &str) -> Result<Secret, AccountsError> {
        let (name, now) = (name.to_owned(), self.now());
        let issued = self.db.write(move |conn| rules::issue_api_token_for(conn, user, &name, now)).await;
        issued.map_err(refusal)
    }

    async fn revoke_api_token(&self, user: u64, hash: [u8; 32]) -> Result<bool, Internal> {
        self.db.write(move |conn| users::delete_token_of(conn, user, &hash)).await.map_err(internal)
    }

    async fn managers(&self, listing: &ListingId) -> Result<Vec<u64>, Internal> {
        let listing = listing.to_string();
        self.db.read(move |conn| users::managers(conn, &listing)).await.map_err(internal)
    }

    async fn manager_accounts(&self, listing: &ListingId) -> Result<Vec<(u64, String)>, Internal> {
        let listing = listing.to_string();
        self.db.read(move |conn| users::manager_accounts(conn, &listing)).await.map_err(internal)
    }

    async fn add_manager(&self, listing: &ListingId, user: u64) -> Result<(), Internal> {
        let listing = listing.to_string();
        self.db.write(move |conn| users::add_manager(conn, &listing, user)).await.map_err(internal)
    }

    async fn remove_manager(&self, listing: &ListingId, user: u64) -> Result<bool, Internal> {
        let listing = listing.to_string();
        self.db.write(move |conn| users::remove_manager(conn, &listing, user)).await.map_err(internal)
    }

    async fn managed_listings(&self, user: u64) -> Result<Vec<String>, Internal> {
        self.db.read(move |conn| users::managed_by(conn, user)).await.map_err(internal)
    }
}
