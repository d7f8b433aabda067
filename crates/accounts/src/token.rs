//! Secret tokens: 32 random bytes (from the shell) handed to their owner
//! once, as 64 hex characters, and stored only as their BLAKE3 hash, so a
//! leaked database holds no usable session, reset link or API token.

use caravan_model::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum TokenKind {
    /// A browser session (in an HttpOnly cookie).
    Session,
    /// Proves an email address; single use.
    EmailVerification,
    /// Sets a new password; single use.
    PasswordReset,
    /// An API client's bearer token; lives until revoked.
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::EmailVerification => "email_verification",
            TokenKind::PasswordReset => "password_reset",
            TokenKind::Api => "api",
        }
    }

    /// The kind [`TokenKind::as_str`] names.
    pub fn parse(text: &str) -> Option<TokenKind> {
        [TokenKind::Session, TokenKind::EmailVerification, TokenKind::PasswordReset, TokenKind::Api]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// How long a token of this kind is good for; `None`: until revoked.
    pub fn lifetime_ms(self) -> Option<i64> {
        const HOUR: i64 = Timestamp::MS_PER_HOUR;
        match self {
            TokenKind::Session => Some(7 * 24 * HOUR),
            TokenKind::EmailVerification => Some(48 * HOUR),
            TokenKind::PasswordReset => Some(HOUR),
            TokenKind::Api => None,
        }
    }

    /// Whether using the token ends it.
    pub fn single_use(self) -> bool {
        matches!(self, TokenKind::EmailVerification | TokenKind::PasswordReset)
    }
}

/// A secret as its owner holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    pub fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret(bytes)
    }

    /// Parses the 64 hex characters a client sends back.
    pub fn parse(text: &str) -> Option<Secret> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(Secret(bytes.try_into().ok()?))
    }

    /// What the owner is given.
    pub fn reveal(&self) -> String {
        hex::encode(self.0)
    }

    /// The CSRF token for forms of the session this secret stands for:
    /// derived, so nothing more is stored, and useless without the
    /// session cookie a cross-site form cannot read.
    pub fn csrf(&self) -> String {
        let key = blake3::derive_key("caravan 2026 csrf v1", &self.0);
        hex::encode(&key[..16])
    }

    /// What the database keeps, domain-separated by kind so a session id
    /// can never be replayed as a reset token.
    pub fn stored_hash(&self, kind: TokenKind) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("caravan 2026 account token v1");
        hasher.update(kind.as_str().as_bytes()).update(&self.0);
        *hasher.finalize().as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A stored token: whose, what for, until when.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StoredToken {
    pub hash: [u8; 32],
    pub kind: TokenKind,
    pub user: u64,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

impl StoredToken {
    pub fn issue(secret: &Secret, kind: TokenKind, user: u64, now: Timestamp) -> StoredToken {
        StoredToken {
            hash: secret.stored_hash(kind),
            kind,
            user,
            created_at: now,
            expires_at: kind.lifetime_ms().map(|ms| now.saturating_add_ms(ms)),
        }
    }

    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_hash_per_kind() {
        let secret = Secret::from_bytes([9; 32]);
        assert_eq!(Secret::parse(&secret.reveal()), Some(secret.clone()));
        assert_eq!(Secret::parse("zz"), None);
        assert_eq!(Secret::parse(&"ab".repeat(31)), None);
        assert_ne!(secret.stored_hash(TokenKind::Session), secret.stored_hash(TokenKind::PasswordReset));
        assert!(!format!("{secret:?}").contains("09"), "secrets stay out of logs");
    }

    #[test]
    fn tokens_expire_by_kind() {
        let now = Timestamp(1_000);
        let reset = StoredToken::issue(&Secret::from_bytes([1; 32]), TokenKind::PasswordReset, 7, now);
        assert!(reset.is_live(now) && reset.kind.single_use());
        assert!(!reset.is_live(now.saturating_add_ms(Timestamp::MS_PER_HOUR)));
        let api = StoredToken::issue(&Secret::from_bytes([2; 32]), TokenKind::Api, 7, now);
        assert!(api.is_live(Timestamp(i64::MAX)) && !api.kind.single_use());
    }
}
