//! People on a node: accounts, roles, passwords, secret tokens and login
//! throttling, without IO. The shell brings the randomness (salts, token
//! bytes) and the clock, and stores what this crate computes.
//!
//! - [`Email`], [`Role`]: who, and what they may do.
//! - [`password`]: argon2id hashes in PHC strings, and the password rules.
//! - [`token`]: secrets handed out once (sessions, CSRF, email
//!   verification, password reset, API tokens) and stored only as hashes.
//! - [`throttle`]: failed logins slow the next attempts down.
//! - [`directory`]: the accounts, tokens and managers of a replica group,
//!   changed only through its log.

pub mod directory;
pub mod password;
pub mod throttle;
pub mod token;

use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest email address (RFC 5321's path limit).
pub const EMAIL_BYTES_MAX: usize = 254;

/// An email address, trimmed and lower-cased, so one person is one account.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Email(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("email: {0}")]
    Email(String),
    #[error("password: {0}")]
    Password(String),
    #[error("role {0:?}: traveller, provider or admin")]
    Role(String),
}

impl Email {
    /// Accepts `local@domain.tld` with no spaces or control characters.
    /// Deliverability is proven by the verification mail, not here.
    pub fn parse(text: &str) -> Result<Email, AccountError> {
        let text = text.trim().to_lowercase();
        let bad = |why: &str| Err(AccountError::Email(format!("{text:?} {why}")));
        if text.is_empty() || text.len() > EMAIL_BYTES_MAX {
            return bad(&format!("must be 1-{EMAIL_BYTES_MAX} bytes"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("must not contain spaces");
        }
        let Some((local, domain)) = text.rsplit_once('@') else { return bad("has no @") };
        if local.is_empty()
            || local.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return bad("is not an address");
        }
        Ok(Email(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an account may do. Each role may do what the one before may.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Role {
    /// Searches, books, sees and cancels their own bookings.
    Traveller,
    /// Also creates services and manages those they manage.
    Provider,
    /// Also manages users, roles and the node.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Result<Role, AccountError> {
        match text {
            "traveller" => Ok(Role::Traveller),
            "provider" => Ok(Role::Provider),
            "admin" => Ok(Role::Admin),
            other => Err(AccountError::Role(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Traveller => "traveller",
            Role::Provider => "provider",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// Who is asking: an authenticated account.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Principal {
    pub user: u64,
    pub email: String,
    pub role: Role,
}

/// Why a login did not give a session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefusal {
    /// Wrong email or password; which one is not said.
    #[error("wrong email or password")]
    WrongCredentials,
    #[error("too many wrong passwords; try again in {0} s")]
    Throttled(i64),
    #[error("confirm your email address first: follow the link we sent")]
    Unverified,
    #[error("{0}")]
    Unavailable(String),
}

/// Whether `user` (with `role`) may change a service whose managers are
/// `managers`: an admin may change any, a provider those they manage.
pub fn may_manage(user: u64, role: Role, managers: &[u64]) -> bool {
    role == Role::Admin || (role == Role::Provider && managers.contains(&user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.ORG ").unwrap().as_str(), "ada@example.org");
        for bad in ["", "ada", "ada@", "@example.org", "ada@example", "a da@example.org", "ada@.org", "ada@org."] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(250))).is_err());
    }

    #[test]
    fn roles_nest_and_managers_manage() {
        assert!(Role::Admin.allows(Role::Provider) && Role::Provider.allows(Role::Traveller));
        assert!(!Role::Traveller.allows(Role::Provider));
        assert_eq!(Role::parse("provider"), Ok(Role::Provider));
        assert!(Role::parse("root").is_err());
        assert!(may_manage(7, Role::Provider, &[3, 7]));
        assert!(!may_manage(7, Role::Provider, &[3]));
        assert!(!may_manage(7, Role::Traveller, &[7]), "a traveller manages nothing");
        assert!(may_manage(1, Role::Admin, &[]));
    }
}
