//! The people of an owner's replica group: accounts, their secret tokens
//! (as hashes) and who manages which listing, as one value that changes
//! only through [`Change`]s applied in the group's log order. Every member
//! applies the same changes at the same (leader-stamped) times, so every
//! member logs anyone in and checks any token.
//!
//! A change carries no randomness: the member that proposes it draws the
//! salts and secrets and hashes them, and the change carries the hashes.
//! Rules that need the state (an email already taken, a link already
//! used) are decided here, at apply time, so two members racing each other
//! cannot both win.

use std::collections::{BTreeMap, BTreeSet};

use caravan_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::token::{StoredToken, TokenKind};
use crate::{Email, Role};

/// A PHC password hash (argon2id), kept out of logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash(pub String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// A person's account.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Account {
    pub id: u64,
    pub email: Email,
    pub password: PasswordHash,
    pub role: Role,
    pub verified: bool,
    pub created: Timestamp,
}

/// A token as stored: its hash, whose, and what for.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Token {
    pub stored: StoredToken,
    /// An API token's name, so its owner can tell it apart.
    pub name: Option<String>,
}

/// An account to add: the email, the hashed password, what it may do.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct NewAccount {
    pub email: Email,
    pub password: PasswordHash,
    pub role: Role,
    pub verified: bool,
}

/// A token to store for an account: issued at the change's time, for
/// the lifetime of its kind.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct NewToken {
    pub hash: [u8; 32],
    pub kind: TokenKind,
    pub user: u64,
    pub name: Option<String>,
}

/// An account kept in one member's own database (written there by the
/// command line while the member was stopped, or by a version before
/// replicated accounts), with its tokens and listings, to be taken into
/// the group.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LocalAccount {
    pub email: Email,
    pub password: PasswordHash,
    pub role: Role,
    pub verified: bool,
    pub created: Timestamp,
    pub tokens: Vec<Token>,
    pub listings: Vec<String>,
}

/// One change to the directory, as the group's log carries it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Change {
    /// Adds an account; refused when its email has one.
    AddAccount(NewAccount),
    /// A traveller registers: a new account (unverified) with its email
    /// verification token; an unverified account that exists gets the
    /// token instead (the first mail may be lost; its password stays); a
    /// verified one gets nothing.
    Register {
        account: NewAccount,
        verification: [u8; 32],
    },
    SetRole {
        user: u64,
        role: Role,
    },
    /// Stores a token (a session at login, an API token, a reset link).
    Issue(NewToken),
    /// Ends a token of any kind (a logout).
    Revoke {
        hash: [u8; 32],
    },
    /// Ends one of `user`'s tokens (an API token its owner revokes).
    RevokeOf {
        user: u64,
        hash: [u8; 32],
    },
    /// Spends an email verification token and marks its account verified.
    VerifyEmail {
        hash: [u8; 32],
    },
    /// Spends a password reset token: a new password, the email verified
    /// (the mail reached it), and every session of the account ended.
    ResetPassword {
        hash: [u8; 32],
        password: PasswordHash,
    },
    AddManager {
        listing: String,
        user: u64,
    },
    RemoveManager {
        listing: String,
        user: u64,
    },
    /// Takes in accounts from one member's own database. An email the
    /// directory has keeps its account (the group's word wins) and gains
    /// the tokens and listings it lacks.
    Import(Vec<LocalAccount>),
}

/// What a change did.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Answer {
    /// The account added, or the account a change was about.
    Account(u64),
    Registered(Registration),
    /// Whether the change changed anything (a role set on an account that
    /// exists, a token revoked that was live, a manager removed).
    Changed(bool),
    Done,
    /// How many accounts an import added and how many it merged into
    /// accounts the directory had.
    Imported {
        added: u32,
        merged: u32,
    },
}

/// How a registration went: what the mail says.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Registration {
    /// A new account, to be verified with the token.
    New(u64),
    /// The account existed unverified; the token verifies it.
    Unverified(u64),
    /// The account exists and is verified; no token was stored.
    Verified(u64),
}

/// Why a change was refused; nothing changed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("an account with email {0} exists")]
    Exists(Email),
    #[error("no account {0}")]
    UnknownAccount(u64),
    #[error("this link is used up or expired; ask for a new one")]
    BadLink,
    #[error("a token with this hash exists")]
    TokenExists,
}

/// Accounts, tokens and managers, as every member of a group holds them.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Directory {
    accounts: BTreeMap<u64, Account>,
    by_email: BTreeMap<Email, u64>,
    tokens: BTreeMap<[u8; 32], Token>,
    /// Tokens that expire, by expiry, so forgetting them is O(expired).
    expiring: BTreeSet<(Timestamp, [u8; 32])>,
    /// (listing, account) pairs.
    managers: BTreeSet<(String, u64)>,
    last_id: u64,
    /// The latest change's time: a leader whose clock is behind cannot
    /// move it back.
    last_now: Timestamp,
}

impl Directory {
    /// Applies one change at `now` (the leader's stamp).
    pub fn apply(&mut self, change: &Change, now: Timestamp) -> Result<Answer, Refusal> {
        let now = now.max(self.last_now);
        self.last_now = now;
        self.forget_expired(now);
        match change {
            Change::AddAccount(account) => self.add_account(account, now).map(Answer::Account),
            Change::Register { account, verification } => self.register(account, *verification, now),
            Change::SetRole { user, role } => Ok(Answer::Changed(match self.accounts.get_mut(user) {
                Some(account) => {
                    account.role = *role;
                    true
                }
                None => false,
            })),
            Change::Issue(token) => self.issue(token, now).map(|()| Answer::Done),
            Change::Revoke { hash } => Ok(Answer::Changed(self.remove_token(hash).is_some())),
            Change::RevokeOf { user, hash } => {
                let owned = self.tokens.get(hash).is_some_and(|t| t.stored.user == *user);
                Ok(Answer::Changed(owned && self.remove_token(hash).is_some()))
            }
            Change::VerifyEmail { hash } => {
                let user = self.spend(hash, TokenKind::EmailVerification, now)?;
                self.account_mut(user)?.verified = true;
                Ok(Answer::Account(user))
            }
            Change::ResetPassword { hash, password } => {
                let user = self.spend(hash, TokenKind::PasswordReset, now)?;
                let account = self.account_mut(user)?;
                account.password = password.clone();
                account.verified = true;
                let sessions: Vec<[u8; 32]> = self
                    .tokens
                    .values()
                    .filter(|t| t.stored.user == user && t.stored.kind == TokenKind::Session)
                    .map(|t| t.stored.hash)
                    .collect();
                for hash in &sessions {
                    self.remove_token(hash);
                }
                Ok(Answer::Account(user))
            }
            Change::AddManager { listing, user } => {
                self.account(*user).ok_or(Refusal::UnknownAccount(*user))?;
                Ok(Answer::Changed(self.managers.insert((listing.clone(), *user))))
            }
            Change::RemoveManager { listing, user } => {
                Ok(Answer::Changed(self.managers.remove(&(listing.clone(), *user))))
            }
            Change::Import(accounts) => Ok(self.import(accounts, now)),
        }
    }

    fn add_account(&mut self, new: &NewAccount, now: Timestamp) -> Result<u64, Refusal> {
        if self.by_email.contains_key(&new.email) {
            return Err(Refusal::Exists(new.email.clone()));
        }
        self.last_id += 1;
        let id = self.last_id;
        let account = Account {
            id,
            email: new.email.clone(),
            password: new.password.clone(),
            role: new.role,
            verified: new.verified,
            created: now,
        };
        self.by_email.insert(account.email.clone(), id);
        self.accounts.insert(id, account);
        Ok(id)
    }

    fn register(&mut self, new: &NewAccount, verification: [u8; 32], now: Timestamp) -> Result<Answer, Refusal> {
        let registration = match self.by_email.get(&new.email).and_then(|id| self.accounts.get(id)) {
            Some(account) if account.verified => return Ok(Answer::Registered(Registration::Verified(account.id))),
            Some(account) => Registration::Unverified(account.id),
            None => Registration::New(self.add_account(new, now)?),
        };
        let (Registration::New(user) | Registration::Unverified(user) | Registration::Verified(user)) = registration;
        let token = NewToken { hash: verification, kind: TokenKind::EmailVerification, user, name: None };
        self.issue(&token, now)?;
        Ok(Answer::Registered(registration))
    }

    fn issue(&mut self, token: &NewToken, now: Timestamp) -> Result<(), Refusal> {
        self.account(token.user).ok_or(Refusal::UnknownAccount(token.user))?;
        let expires_at = token.kind.lifetime_ms().map(|ms| now.saturating_add_ms(ms));
        let stored = StoredToken { hash: token.hash, kind: token.kind, user: token.user, created_at: now, expires_at };
        self.insert_token(Token { stored, name: token.name.clone() })
    }

    fn insert_token(&mut self, token: Token) -> Result<(), Refusal> {
        if self.tokens.contains_key(&token.stored.hash) {
            return Err(Refusal::TokenExists);
        }
        if let Some(at) = token.stored.expires_at {
            self.expiring.insert((at, token.stored.hash));
        }
        self.tokens.insert(token.stored.hash, token);
        Ok(())
    }

    fn remove_token(&mut self, hash: &[u8; 32]) -> Option<Token> {
        let token = self.tokens.remove(hash)?;
        if let Some(at) = token.stored.expires_at {
            self.expiring.remove(&(at, *hash));
        }
        Some(token)
    }

    /// Spends a single-use token of `kind`: the account it was for.
    fn spend(&mut self, hash: &[u8; 32], kind: TokenKind, now: Timestamp) -> Result<u64, Refusal> {
        let live = self.tokens.get(hash).is_some_and(|t| t.stored.kind == kind && t.stored.is_live(now));
        if !live {
            return Err(Refusal::BadLink);
        }
        let token = self.remove_token(hash).ok_or(Refusal::BadLink)?;
        Ok(token.stored.user)
    }

    fn forget_expired(&mut self, now: Timestamp) {
        while let Some(&(at, hash)) = self.expiring.first() {
            if at > now {
                break;
            }
            self.expiring.pop_first();
            self.tokens.remove(&hash);
        }
    }

    fn import(&mut self, accounts: &[LocalAccount], now: Timestamp) -> Answer {
        let (mut added, mut merged) = (0, 0);
        for local in accounts {
            let user = match self.by_email.get(&local.email) {
                Some(&user) => {
                    merged += 1;
                    user
                }
                None => {
                    added += 1;
                    let new = NewAccount {
                        email: local.email.clone(),
                        password: local.password.clone(),
                        role: local.role,
                        verified: local.verified,
                    };
                    let user = self.add_account(&new, now).expect("the email is free");
                    self.account_mut(user).expect("just added").created = local.created;
                    user
                }
            };
            for token in &local.tokens {
                if token.stored.is_live(now) {
                    let stored = StoredToken { user, ..token.stored.clone() };
                    // A token the directory holds already stays as it is.
                    let _ = self.insert_token(Token { stored, name: token.name.clone() });
                }
            }
            for listing in &local.listings {
                self.managers.insert((listing.clone(), user));
            }
        }
        Answer::Imported { added, merged }
    }

    fn account_mut(&mut self, user: u64) -> Result<&mut Account, Refusal> {
        self.accounts.get_mut(&user).ok_or(Refusal::UnknownAccount(user))
    }

    pub fn account(&self, user: u64) -> Option<&Account> {
        self.accounts.get(&user)
    }

    pub fn by_email(&self, email: &Email) -> Option<&Account> {
        self.by_email.get(email).and_then(|id| self.accounts.get(id))
    }

    /// Accounts in id order after `after_id`.
    pub fn accounts(&self, after_id: u64, limit: usize) -> impl Iterator<Item = &Account> {
        self.accounts.range(after_id.saturating_add(1)..).map(|(_, account)| account).take(limit)
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// A live token with this hash.
    pub fn token(&self, hash: &[u8; 32], now: Timestamp) -> Option<&Token> {
        self.tokens.get(hash).filter(|t| t.stored.is_live(now))
    }

    /// The account a live token of `kind` with this hash stands for.
    pub fn authenticate(&self, hash: &[u8; 32], kind: TokenKind, now: Timestamp) -> Option<&Account> {
        let token = self.token(hash, now).filter(|t| t.stored.kind == kind)?;
        self.accounts.get(&token.stored.user)
    }

    /// A user's tokens of one kind, newest first.
    pub fn tokens_of(&self, user: u64, kind: TokenKind) -> Vec<&Token> {
        let mut tokens: Vec<&Token> =
            self.tokens.values().filter(|t| t.stored.user == user && t.stored.kind == kind).collect();
        tokens.sort_by_key(|t| std::cmp::Reverse((t.stored.created_at, t.stored.hash)));
        tokens
    }

    /// The accounts that manage `listing`, by id.
    pub fn managers(&self, listing: &str) -> Vec<u64> {
        let from = (listing.to_owned(), 0);
        self.managers.range(from..).take_while(|(l, _)| l == listing).map(|(_, user)| *user).collect()
    }

    /// The listings `user` manages, in order.
    pub fn managed_by(&self, user: u64) -> Vec<String> {
        self.managers.iter().filter(|(_, u)| *u == user).map(|(listing, _)| listing.clone()).collect()
    }

    /// Checks the directory's own invariants (the email index, the expiry
    /// index, managers naming accounts); panics on a broken one, which is
    /// a bug or a corrupt snapshot.
    pub fn check_invariants(&self) {
        assert_eq!(self.by_email.len(), self.accounts.len(), "one email per account");
        for (email, id) in &self.by_email {
            assert_eq!(self.accounts.get(id).map(|a| &a.email), Some(email), "email index");
        }
        let expiring = self.tokens.values().filter(|t| t.stored.expires_at.is_some()).count();
        assert_eq!(expiring, self.expiring.len(), "expiry index");
        assert!(self.accounts.keys().all(|&id| id <= self.last_id), "ids are never reused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_900_000_000_000);

    fn email(text: &str) -> Email {
        Email::parse(text).unwrap()
    }

    fn new_account(text: &str, verified: bool) -> NewAccount {
        NewAccount {
            email: email(text),
            password: PasswordHash(format!("hash of {text}")),
            role: Role::Traveller,
            verified,
        }
    }

    fn session(hash: u8, user: u64) -> Change {
        Change::Issue(NewToken { hash: [hash; 32], kind: TokenKind::Session, user, name: None })
    }

    #[test]
    fn accounts_are_one_per_email_and_ids_are_never_reused() {
        let mut dir = Directory::default();
        let ada = dir.apply(&Change::AddAccount(new_account("ada@example.org", true)), NOW).unwrap();
        assert_eq!(ada, Answer::Account(1));
        let again = dir.apply(&Change::AddAccount(new_account("ada@example.org", false)), NOW);
        assert_eq!(again, Err(Refusal::Exists(email("ada@example.org"))));
        assert_eq!(dir.apply(&Change::SetRole { user: 1, role: Role::Admin }, NOW), Ok(Answer::Changed(true)));
        assert_eq!(dir.apply(&Change::SetRole { user: 9, role: Role::Admin }, NOW), Ok(Answer::Changed(false)));
        assert_eq!(dir.by_email(&email("ada@example.org")).map(|a| a.role), Some(Role::Admin));
        dir.apply(&Change::AddAccount(new_account("bo@example.org", true)), NOW).unwrap();
        assert_eq!(dir.accounts(1, 10).map(|a| a.id).collect::<Vec<_>>(), vec![2]);
        dir.check_invariants();
    }

    #[test]
    fn registration_sends_a_link_that_verifies_once() {
        let mut dir = Directory::default();
        let register = |verification| Change::Register { account: new_account("ada@example.org", false), verification };
        assert_eq!(dir.apply(&register([1; 32]), NOW), Ok(Answer::Registered(Registration::New(1))));
        assert_eq!(dir.apply(&register([2; 32]), NOW), Ok(Answer::Registered(Registration::Unverified(1))));
        assert_eq!(dir.apply(&Change::VerifyEmail { hash: [2; 32] }, NOW), Ok(Answer::Account(1)));
        assert_eq!(dir.apply(&Change::VerifyEmail { hash: [2; 32] }, NOW), Err(Refusal::BadLink), "once");
        assert!(dir.account(1).unwrap().verified);
        assert_eq!(dir.apply(&register([3; 32]), NOW), Ok(Answer::Registered(Registration::Verified(1))));
        assert_eq!(dir.token(&[3; 32], NOW), None, "a verified account gets no link");
        // A session's hash is no verification link.
        dir.apply(&session(4, 1), NOW).unwrap();
        assert_eq!(dir.apply(&Change::VerifyEmail { hash: [4; 32] }, NOW), Err(Refusal::BadLink));
        dir.check_invariants();
    }

    #[test]
    fn a_reset_sets_the_password_and_ends_every_session() {
        let mut dir = Directory::default();
        dir.apply(&Change::AddAccount(new_account("ada@example.org", false)), NOW).unwrap();
        dir.apply(&session(1, 1), NOW).unwrap();
        let reset = NewToken { hash: [2; 32], kind: TokenKind::PasswordReset, user: 1, name: None };
        dir.apply(&Change::Issue(reset.clone()), NOW).unwrap();
        assert_eq!(dir.apply(&Change::Issue(reset), NOW), Err(Refusal::TokenExists));
        let change = Change::ResetPassword { hash: [2; 32], password: PasswordHash("new".into()) };
        let hour_later = NOW.saturating_add_ms(Timestamp::MS_PER_HOUR);
        assert_eq!(dir.apply(&change, hour_later), Err(Refusal::BadLink), "reset links expire");
        let change = Change::ResetPassword { hash: [2; 32], password: PasswordHash("new".into()) };
        let fresh = NewToken { hash: [2; 32], kind: TokenKind::PasswordReset, user: 1, name: None };
        dir.apply(&Change::Issue(fresh), hour_later).unwrap();
        assert_eq!(dir.apply(&change, hour_later), Ok(Answer::Account(1)));
        assert_eq!(dir.apply(&change, hour_later), Err(Refusal::BadLink), "a reset link works once");
        let ada = dir.account(1).unwrap();
        assert!(ada.verified && ada.password == PasswordHash("new".into()));
        assert_eq!(dir.authenticate(&[1; 32], TokenKind::Session, NOW), None, "sessions end");
        dir.check_invariants();
    }

    #[test]
    fn tokens_expire_are_forgotten_and_revoke_only_their_owners() {
        let mut dir = Directory::default();
        dir.apply(&Change::AddAccount(new_account("ada@example.org", true)), NOW).unwrap();
        dir.apply(&Change::AddAccount(new_account("bo@example.org", true)), NOW).unwrap();
        dir.apply(&session(1, 1), NOW).unwrap();
        let api = NewToken { hash: [2; 32], kind: TokenKind::Api, user: 1, name: Some("pms".into()) };
        dir.apply(&Change::Issue(api), NOW).unwrap();
        assert_eq!(dir.authenticate(&[1; 32], TokenKind::Session, NOW).map(|a| a.id), Some(1));
        assert_eq!(dir.authenticate(&[1; 32], TokenKind::Api, NOW), None, "a session is no API token");
        assert_eq!(dir.apply(&Change::RevokeOf { user: 2, hash: [2; 32] }, NOW), Ok(Answer::Changed(false)));
        assert_eq!(dir.tokens_of(1, TokenKind::Api).len(), 1, "only its owner revokes a token");
        let week_later = NOW.saturating_add_ms(8 * 24 * Timestamp::MS_PER_HOUR);
        assert_eq!(dir.authenticate(&[1; 32], TokenKind::Session, week_later), None, "sessions expire");
        dir.apply(&Change::AddManager { listing: "rl-1".into(), user: 1 }, week_later).unwrap();
        assert_eq!(dir.tokens.len(), 1, "an expired session is forgotten at the next change");
        assert_eq!(dir.authenticate(&[2; 32], TokenKind::Api, week_later).map(|a| a.id), Some(1));
        assert_eq!(dir.apply(&Change::RevokeOf { user: 1, hash: [2; 32] }, NOW), Ok(Answer::Changed(true)));
        dir.check_invariants();
    }

    #[test]
    fn managers_name_accounts() {
        let mut dir = Directory::default();
        dir.apply(&Change::AddAccount(new_account("ada@example.org", true)), NOW).unwrap();
        let manage = |listing: &str, user| Change::AddManager { listing: listing.into(), user };
        assert_eq!(dir.apply(&manage("rl-2", 1), NOW), Ok(Answer::Changed(true)));
        assert_eq!(dir.apply(&manage("rl-2", 1), NOW), Ok(Answer::Changed(false)));
        assert_eq!(dir.apply(&manage("rl-1", 1), NOW), Ok(Answer::Changed(true)));
        assert_eq!(dir.apply(&manage("rl-1", 7), NOW), Err(Refusal::UnknownAccount(7)));
        assert_eq!((dir.managers("rl-1"), dir.managers("rl-10")), (vec![1], vec![]));
        assert_eq!(dir.managed_by(1), vec!["rl-1".to_string(), "rl-2".to_string()]);
        let unmanage = Change::RemoveManager { listing: "rl-1".into(), user: 1 };
        assert_eq!(dir.apply(&unmanage, NOW), Ok(Answer::Changed(true)));
        assert_eq!(dir.managers("rl-1"), Vec::<u64>::new());
    }

    #[test]
    fn an_import_adds_what_is_missing_and_the_group_keeps_its_word() {
        let mut dir = Directory::default();
        let mut admin = new_account("admin@example.org", true);
        admin.role = Role::Provider;
        dir.apply(&Change::AddAccount(admin), NOW).unwrap();
        let token = |hash: u8, kind| Token {
            stored: StoredToken::issue(&crate::token::Secret::from_bytes([hash; 32]), kind, 99, NOW),
            name: Some("cli".into()),
        };
        let local = |text: &str, tokens: Vec<Token>| LocalAccount {
            email: email(text),
            password: PasswordHash("local".into()),
            role: Role::Admin,
            verified: true,
            created: Timestamp(5),
            tokens,
            listings: vec!["rl-1".into()],
        };
        let import = Change::Import(vec![
            local("admin@example.org", vec![token(1, TokenKind::Api)]),
            local("new@example.org", vec![token(2, TokenKind::Api)]),
        ]);
        assert_eq!(dir.apply(&import, NOW), Ok(Answer::Imported { added: 1, merged: 1 }));
        assert_eq!(dir.apply(&import, NOW), Ok(Answer::Imported { added: 0, merged: 2 }), "twice is once");
        let admin = dir.by_email(&email("admin@example.org")).unwrap();
        assert_eq!(admin.role, Role::Provider, "the group's account keeps its role");
        let hash = crate::token::Secret::from_bytes([1; 32]).stored_hash(TokenKind::Api);
        assert_eq!(dir.authenticate(&hash, TokenKind::Api, NOW).map(|a| a.id), Some(admin.id), "tokens re-pointed");
        let new = dir.by_email(&email("new@example.org")).unwrap();
        assert_eq!((new.role, new.created), (Role::Admin, Timestamp(5)));
        assert_eq!(dir.managers("rl-1"), vec![1, 2]);
        dir.check_invariants();
    }
}
