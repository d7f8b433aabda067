//! The account service: sessions and API tokens, registration and
//! recovery (with their mails), roles, and who manages which listing.
//! They live in the replica group's directory, so every member logs
//! anyone in: reads look at the directory as applied here, changes go
//! through the group's log. What stays on this member is in [`rules`]:
//! the login throttles, and accounts the command line wrote, which
//! [`Accounts::take_in_local`] hands to the group.

pub mod rules;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use caravan_accounts::directory::{
    Account, Answer, Change, Directory, NewAccount, NewToken, PasswordHash, Refusal, Registration,
};
use caravan_accounts::token::{Secret, TokenKind};
use caravan_accounts::{password, Email, LoginRefusal, Principal, Role};
use caravan_api::async_trait;
use caravan_api::{AccountService, AccountSummary, AccountsError, ApiTokenSummary, Internal};
use caravan_ledger::{Command, Reply};
use caravan_model::{ListingId, Timestamp};
use caravan_store::StoreError;

use crate::booking::Proposer;
use crate::mail::Mailer;
use crate::Database;
use rules::{AccountsError as RuleError, Mail};

/// The most accounts one change takes in from a member's own database:
/// a log entry stays far below the group's frame limit.
const IMPORT_ACCOUNTS_MAX: usize = 64;

/// The accounts of this node's replica group.
#[derive(Debug)]
pub struct Accounts<D, G> {
    /// This member's own database: login throttles, and accounts the
    /// command line wrote there, waiting to be taken into the group.
    db: D,
    /// Where changes go: through the group's log, to every member.
    group: Arc<G>,
    /// The group's people as applied at this member.
    people: Arc<RwLock<Directory>>,
    mailer: Mailer,
    /// Where people reach the pages, for the links in mails.
    public_url: String,
    clock: fn() -> Timestamp,
    /// The newest account of this member's own database handed to the
    /// group (or found there already): older ones have nothing more to give
    /// unless a token or a listing waits.
    taken_up_to: AtomicU64,
}

/// What the account service is handed by the node.
#[derive(Debug)]
pub struct AccountsSetup<D, G> {
    pub db: D,
    pub group: Arc<G>,
    pub people: Arc<RwLock<Directory>>,
    pub mailer: Mailer,
    pub public_url: String,
    pub clock: fn() -> Timestamp,
}

impl<D: Database, G: Proposer> Accounts<D, G> {
    pub fn new(setup: AccountsSetup<D, G>) -> Accounts<D, G> {
        let AccountsSetup { db, group, people, mailer, public_url, clock } = setup;
        Accounts { db, group, people, mailer, public_url, clock, taken_up_to: AtomicU64::new(0) }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn read<R>(&self, read: impl FnOnce(&Directory) -> R) -> R {
        read(&self.people.read().expect("people lock"))
    }

    /// Runs `change` through the group's log: its answer once applied here.
    async fn change(&self, change: Change) -> Result<Result<Answer, Refusal>, Internal> {
        match self.group.propose(Command::People(change)).await {
            Ok(Ok(Reply::People(answer))) => Ok(answer),
            Ok(other) => Err(Internal::new(format!("the group answered a change to accounts with {other:?}"))),
            Err(error) => Err(Internal::new(error)),
        }
    }

    /// Sends an account mail (see [`Mailer`]).
    async fn deliver(&self, mail: Mail) -> Result<(), AccountsError> {
        self.mailer.send(&mail, self.now().ms()).await.map_err(|_| AccountsError::MailNotSent)
    }

    /// Checks a password, throttled in this member's database.
    async fn check(&self, email: &str, password: &str, client: &str) -> Result<Account, LoginRefusal> {
        let parsed = Email::parse(email).ok();
        let find = |people: &Directory| parsed.as_ref().and_then(|email| people.by_email(email).cloned());
        let mut account = self.read(find);
        if let (None, Some(email)) = (&account, &parsed) {
            if self.took_in(email.clone()).await.map_err(unavailable)? {
                account = self.read(find);
            }
        }
        let (email, password, client, now) = (email.to_owned(), password.to_owned(), client.to_owned(), self.now());
        let judged = account.clone();
        self.db
            .write(move |conn| throttled(rules::check_password(conn, &email, judged.as_ref(), &password, &client, now)))
            .await
            .unwrap_or_else(|error| Err(error.into()))
            .map_err(login_refusal)?;
        account.ok_or_else(|| login_refusal(RuleError::Refused(LoginRefusal::WrongCredentials)))
    }

    /// Takes the accounts the command line wrote into this member's own
    /// database into the group, and forgets their tokens and listings here
    /// once the group has them. How many accounts it handed over.
    pub async fn take_in_local(&self) -> Result<usize, Internal> {
        let (now, taken_up_to) = (self.now(), self.taken_up_to.load(Ordering::Acquire));
        let read = move |conn: &_| -> Result<_, StoreError> {
            if !rules::waiting(conn, taken_up_to)? {
                return Ok(None);
            }
            Ok(Some((rules::last_local_user(conn)?, rules::local_accounts(conn, now)?)))
        };
        let Some((last_user, mut local)) = self.db.read(read).await.map_err(internal)? else { return Ok(0) };
        // An account taken in before stays here with nothing more to give.
        local.retain(|account| {
            !account.tokens.is_empty()
                || !account.listings.is_empty()
                || self.read(|people| people.by_email(&account.email).is_none())
        });
        for chunk in local.chunks(IMPORT_ACCOUNTS_MAX) {
            let taken = chunk.to_vec();
            match self.change(Change::Import(taken.clone())).await? {
                Ok(Answer::Imported { added, merged }) => {
                    tracing::info!(added, merged, "accounts from this member's database taken into the group")
                }
                other => return Err(Internal::new(format!("taking accounts into the group: {other:?}"))),
            }
            self.db.write(move |conn| rules::forget_local(conn, &taken)).await.map_err(internal)?;
        }
        self.taken_up_to.fetch_max(last_user, Ordering::AcqRel);
        Ok(local.len())
    }

    /// Whether an account the group lacks waits in this member's own
    /// database (the command line wrote it while the node ran): if so it
    /// is taken in now, so it works at its first use.
    async fn took_in(&self, email: Email) -> Result<bool, Internal> {
        let waiting = move |conn: &_| rules::holds_local(conn, &email);
        if !self.db.read(waiting).await.map_err(internal)? {
            return Ok(false);
        }
        Ok(self.take_in_local().await? > 0)
    }

    /// The account a live API token stands for. A token the command line
    /// just wrote into this member's own database is taken into the group
    /// at its first use; while the group cannot take it (no leader yet, or
    /// a member that has not joined), the token still stands for its
    /// account here.
    async fn authenticate(&self, secret: &Secret) -> Result<Option<Principal>, Internal> {
        let (hash, now) = (secret.stored_hash(TokenKind::Api), self.now());
        let find = |people: &Directory| people.authenticate(&hash, TokenKind::Api, now).map(principal);
        if let Some(found) = self.read(find) {
            return Ok(Some(found));
        }
        let local = move |conn: &_| rules::local_principal(conn, &hash, TokenKind::Api, now);
        let Some(local) = self.db.read(local).await.map_err(internal)? else { return Ok(None) };
        match self.take_in_local().await {
            Ok(_) => Ok(self.read(find)),
            Err(error) => {
                tracing::debug!(%error, "a token of this member's database, not in the group yet");
                Ok(Some(local))
            }
        }
    }
}

/// A storage failure as the API's `Internal`.
fn internal(error: StoreError) -> Internal {
    Internal::new(error)
}

fn principal(account: &Account) -> Principal {
    Principal { user: account.id, email: account.email.to_string(), role: account.role }
}

/// A refusal no person's request can cause (the service checks first): a
/// bug of ours, reported as such.
fn unexpected(refusal: Refusal) -> Internal {
    Internal::new(format!("the group refused a change to accounts: {refusal}"))
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
        other => unavailable(other),
    }
}

fn unavailable(error: impl std::fmt::Display) -> LoginRefusal {
    tracing::error!(%error, "login failed");
    LoginRefusal::Unavailable("the service is unavailable; try again".into())
}

#[async_trait]
impl<D: Database, G: Proposer + 'static> AccountService for Accounts<D, G> {
    async fn principal(&self, token: &Secret) -> Result<Option<Principal>, Internal> {
        self.authenticate(token).await
    }

    async fn session(&self, session: &Secret) -> Result<Option<Principal>, Internal> {
        let (hash, now) = (session.stored_hash(TokenKind::Session), self.now());
        Ok(self.read(|people| people.authenticate(&hash, TokenKind::Session, now).map(principal)))
    }

    async fn login(&self, email: &str, password: &str, client: &str) -> Result<(Principal, Secret), LoginRefusal> {
        let account = self.check(email, password, client).await?;
        let session = Secret::from_bytes(rand::random());
        let token = NewToken {
            hash: session.stored_hash(TokenKind::Session),
            kind: TokenKind::Session,
            user: account.id,
            name: None,
        };
        match self.change(Change::Issue(token)).await {
            Ok(Ok(_)) => Ok((principal(&account), session)),
            Ok(Err(refusal)) => Err(unavailable(refusal)),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn confirm_password(&self, email: &str, password: &str, client: &str) -> Result<(), LoginRefusal> {
        self.check(email, password, client).await.map(|_| ())
    }

    async fn logout(&self, session: &Secret) -> Result<(), Internal> {
        self.change(Change::Revoke { hash: session.stored_hash(TokenKind::Session) }).await?.map_err(unexpected)?;
        Ok(())
    }

    async fn register(&self, email: &str, password: &str) -> Result<(), AccountsError> {
        let email = Email::parse(email).map_err(AccountsError::Invalid)?;
        password::check_new(password, email.as_str()).map_err(AccountsError::Invalid)?;
        let hash = PasswordHash(password::hash(password, rand::random()));
        let secret = Secret::from_bytes(rand::random());
        let account = NewAccount { email: email.clone(), password: hash, role: Role::Traveller, verified: false };
        let change = Change::Register { account, verification: secret.stored_hash(TokenKind::EmailVerification) };
        let url = &self.public_url;
        let mail = match self.change(change).await?.map_err(unexpected)? {
            Answer::Registered(Registration::New(_)) => rules::verification_mail(&email, url, &secret, ""),
            // The first mail may have been lost (or refused): a new link.
            // The password stays the one chosen first, so whoever registers
            // an address again cannot set the password of its owner.
            Answer::Registered(Registration::Unverified(_)) => {
                rules::verification_mail(&email, url, &secret, rules::REGISTERED_TWICE)
            }
            Answer::Registered(Registration::Verified(_)) => rules::registered_again_mail(&email, url),
            other => return Err(Internal::new(format!("a registration answered {other:?}")).into()),
        };
        self.deliver(mail).await
    }

    async fn verify_email(&self, token: &Secret) -> Result<(), AccountsError> {
        let hash = token.stored_hash(TokenKind::EmailVerification);
        match self.change(Change::VerifyEmail { hash }).await? {
            Ok(_) => Ok(()),
            Err(Refusal::BadLink) => Err(AccountsError::BadLink),
            Err(refusal) => Err(unexpected(refusal).into()),
        }
    }

    async fn request_reset(&self, email: &str) -> Result<(), AccountsError> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        let Some(user) = self.read(|people| people.by_email(&email).map(|a| a.id)) else { return Ok(()) };
        let secret = Secret::from_bytes(rand::random());
        let token = NewToken {
            hash: secret.stored_hash(TokenKind::PasswordReset),
            kind: TokenKind::PasswordReset,
            user,
            name: None,
        };
        self.change(Change::Issue(token)).await?.map_err(unexpected)?;
        self.deliver(rules::reset_mail(&email, &self.public_url, &secret)).await
    }

    async fn reset_password(&self, token: &Secret, new_password: &str) -> Result<(), AccountsError> {
        let (hash, now) = (token.stored_hash(TokenKind::PasswordReset), self.now());
        let email = self.read(|people| {
            let token = people.token(&hash, now).filter(|t| t.stored.kind == TokenKind::PasswordReset)?;
            people.account(token.stored.user).map(|a| a.email.clone())
        });
        let email = email.ok_or(AccountsError::BadLink)?;
        // A password the rules refuse does not use up the link.
        password::check_new(new_password, email.as_str()).map_err(AccountsError::Invalid)?;
        let password = PasswordHash(password::hash(new_password, rand::random()));
        match self.change(Change::ResetPassword { hash, password }).await? {
            Ok(_) => Ok(()),
            Err(Refusal::BadLink) => Err(AccountsError::BadLink),
            Err(refusal) => Err(unexpected(refusal).into()),
        }
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<(u64, Role)>, Internal> {
        let Ok(email) = Email::parse(email) else { return Ok(None) };
        Ok(self.read(|people| people.by_email(&email).map(|a| (a.id, a.role))))
    }

    async fn accounts(&self, after_id: u64, limit: u32) -> Result<Vec<AccountSummary>, Internal> {
        Ok(self.read(|people| {
            people
                .accounts(after_id, limit as usize)
                .map(|a| AccountSummary { id: a.id, email: a.email.to_string(), role: a.role, verified: a.verified })
                .collect()
        }))
    }

    async fn set_role(&self, user: u64, role: Role) -> Result<bool, Internal> {
        match self.change(Change::SetRole { user, role }).await?.map_err(unexpected)? {
            Answer::Changed(changed) => Ok(changed),
            other => Err(Internal::new(format!("setting a role answered {other:?}"))),
        }
    }

    async fn api_tokens(&self, user: u64) -> Result<Vec<ApiTokenSummary>, Internal> {
        Ok(self.read(|people| {
            people
                .tokens_of(user, TokenKind::Api)
                .into_iter()
                .map(|t| ApiTokenSummary {
                    hash: hex::encode(t.stored.hash),
                    name: t.name.clone().unwrap_or_default(),
                    created: t.stored.created_at,
                })
                .collect()
        }))
    }

    async fn issue_api_token(&self, user: u64, name: &str) -> Result<Secret, AccountsError> {
        let name = rules::token_name(name).map_err(AccountsError::Invalid)?;
        let secret = Secret::from_bytes(rand::random());
        let token = NewToken { hash: secret.stored_hash(TokenKind::Api), kind: TokenKind::Api, user, name: Some(name) };
        self.change(Change::Issue(token)).await?.map_err(unexpected)?;
        Ok(secret)
    }

    async fn revoke_api_token(&self, user: u64, hash: [u8; 32]) -> Result<bool, Internal> {
        match self.change(Change::RevokeOf { user, hash }).await?.map_err(unexpected)? {
            Answer::Changed(changed) => Ok(changed),
            other => Err(Internal::new(format!("revoking a token answered {other:?}"))),
        }
    }

    async fn managers(&self, listing: &ListingId) -> Result<Vec<u64>, Internal> {
        Ok(self.read(|people| people.managers(&listing.to_string())))
    }

    async fn manager_accounts(&self, listing: &ListingId) -> Result<Vec<(u64, String)>, Internal> {
        Ok(self.read(|people| {
            let managers = people.managers(&listing.to_string());
            managers.into_iter().filter_map(|id| people.account(id).map(|a| (id, a.email.to_string()))).collect()
        }))
    }

    async fn add_manager(&self, listing: &ListingId, user: u64) -> Result<(), Internal> {
        self.change(Change::AddManager { listing: listing.to_string(), user }).await?.map_err(unexpected)?;
        Ok(())
    }

    async fn remove_manager(&self, listing: &ListingId, user: u64) -> Result<bool, Internal> {
        match self.change(Change::RemoveManager { listing: listing.to_string(), user }).await?.map_err(unexpected)? {
            Answer::Changed(changed) => Ok(changed),
            other => Err(Internal::new(format!("removing a manager answered {other:?}"))),
        }
    }

    async fn managed_listings(&self, user: u64) -> Result<Vec<String>, Internal> {
        Ok(self.read(|people| people.managed_by(user)))
    }
}
