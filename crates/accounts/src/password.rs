//! Passwords: the rules a new one must meet, and argon2id hashes in PHC
//! string form (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so the
//! parameters travel with each hash and can be raised later.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::AccountError;

pub const PASSWORD_CHARS_MIN: usize = 10;
/// Long enough for any passphrase, short enough that hashing stays cheap.
pub const PASSWORD_BYTES_MAX: usize = 256;

/// Checks a new password against the rules: length only (NIST 800-63B:
/// no composition rules), and not the email address itself.
pub fn check_new(password: &str, email: &str) -> Result<(), AccountError> {
    if password.chars().count() < PASSWORD_CHARS_MIN {
        return Err(AccountError::Password(format!("at least {PASSWORD_CHARS_MIN} characters")));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(AccountError::Password(format!("at most {PASSWORD_BYTES_MAX} bytes")));
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(AccountError::Password("must not be the email address".into()));
    }
    Ok(())
}

/// The argon2id hash of `password` with `salt` (16 random bytes from the
/// shell), with OWASP's recommended parameters (19 MiB, 2 passes).
pub fn hash(password: &str, salt: [u8; 16]) -> String {
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2id with default parameters").to_string()
}

/// Whether `password` matches the PHC string `phc`. A malformed hash never
/// matches.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the account does not exist, so a login
/// for an unknown email costs as long as one with a wrong password.
pub fn decoy_hash() -> String {
    hash("caravan decoy password", [0x5a; 16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let phc = hash("correct horse battery", [7; 16]);
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterx", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(phc, hash("correct horse battery", [8; 16]), "the salt changes the hash");
    }

    #[test]
    fn new_passwords_follow_the_rules() {
        assert!(check_new("short", "a@b.c").is_err());
        assert!(check_new("ada@example.org", "ada@example.org").is_err());
        assert!(check_new(&"x".repeat(300), "a@b.c").is_err());
        assert!(check_new("a long enough phrase", "a@b.c").is_ok());
    }
}
