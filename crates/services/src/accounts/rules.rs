//! Accounts on this node, over its database: adding people, logging them
//! in (throttled), and issuing the secret tokens that stand for them
//! (sessions, API tokens). The rules come from `caravan-accounts`; this
//! module brings the randomness, the clock's reading and the SQL.
//!
//! These run on a connection of the caller's (the CLI's writer
//! connection, or the node's writer once the web app arrives).

use caravan_accounts::throttle::Throttle;
use caravan_accounts::token::{Secret, StoredToken, TokenKind};
use caravan_accounts::{password, AccountError, Email, LoginRefusal, Role};
use caravan_model::Timestamp;
use caravan_store::rusqlite::Connection;
use caravan_store::users::{self, TokenRow, UserRow};
use caravan_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error(transparent)]
    Invalid(#[from] AccountError),
    #[error("an account with email {0} exists")]
    Exists(String),
    #[error("no account with email {0}")]
    Unknown(String),
    /// A login refused, for the person to read.
    #[error(transparent)]
    Refused(#[from] LoginRefusal),
    #[error("this link is used up or expired; ask for a new one")]
    BadLink,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds an account with a new password.
pub fn add_user(
    conn: &Connection,
    email: &str,
    new_password: &str,
    role: Role,
    verified: bool,
    now: Timestamp,
) -> Result<u64, AccountsError> {
    let email = Email::parse(email)?;
    password::check_new(new_password, email.as_str())?;
    let hash = password::hash(new_password, rand::random());
    users::create(conn, email.as_str(), &hash, role.as_str(), verified, now.ms())?
        .ok_or_else(|| AccountsError::Exists(email.to_string()))
}

fn issue(
    conn: &Connection,
    kind: TokenKind,
    user: u64,
    name: Option<String>,
    now: Timestamp,
) -> Result<Secret, StoreError> {
    let secret = Secret::from_bytes(rand::random());
    let stored = StoredToken::issue(&secret, kind, user, now);
    users::put_token(
        conn,
        &TokenRow {
            hash: stored.hash,
            kind: kind.as_str().to_owned(),
            user_id: user,
            name,
            created_ms: now.ms(),
            expires_ms: stored.expires_at.map(Timestamp::ms),
        },
    )?;
    Ok(secret)
}

/// A new API token for the account `email`, named so its owner can tell
/// it apart; shown once.
pub fn issue_api_token(conn: &Connection, email: &str, name: &str, now: Timestamp) -> Result<Secret, AccountsError> {
    let email = Email::parse(email)?;
    let user = users::by_email(conn, email.as_str())?.ok_or_else(|| AccountsError::Unknown(email.to_string()))?;
    Ok(issue(conn, TokenKind::Api, user.id, Some(name.to_owned()), now)?)
}

/// Checks a password and, if it is right, returns the account and a new
/// session secret. Throttled as [`check_password`].
pub fn login(
    conn: &Connection,
    email: &str,
    given_password: &str,
    client: &str,
    now: Timestamp,
) -> Result<(UserRow, Secret), AccountsError> {
    let user = check_password(conn, email, given_password, client, now)?;
    let session = issue(conn, TokenKind::Session, user.id, None, now)?;
    Ok((user, session))
}

/// Checks a password, throttled per email and per client (an address):
/// while either waits, the attempt is refused unjudged. Also asked before
/// a grave step (withdrawing a service), so a borrowed session is not
/// enough for it.
pub fn check_password(
    conn: &Connection,
    email: &str,
    given_password: &str,
    client: &str,
    now: Timestamp,
) -> Result<UserRow, AccountsError> {
    let email = Email::parse(email).map_err(|_| AccountsError::Refused(LoginRefusal::WrongCredentials))?;
    let keys = [format!("email:{email}"), format!("client:{client}")];
    let mut throttles = Vec::with_capacity(keys.len());
    for key in &keys {
        let (failures, locked_until_ms) = users::throttle(conn, key)?;
        let throttle = Throttle { failures, locked_until: Timestamp(locked_until_ms) };
        throttle
            .check(now)
            .map_err(|wait_ms| AccountsError::Refused(LoginRefusal::Throttled((wait_ms + 999) / 1000)))?;
        throttles.push(throttle);
    }
    let user = users::by_email(conn, email.as_str())?;
    // Verify against a decoy when there is no account, so timing does not
    // tell which emails have accounts.
    let hash = user.as_ref().map_or_else(password::decoy_hash, |u| u.password.clone());
    let matches = password::verify(given_password, &hash) && user.is_some();
    for (key, throttle) in keys.iter().zip(&mut throttles) {
        if matches {
            throttle.record_success();
        } else {
            throttle.record_failure(now);
        }
        users::set_throttle(conn, key, throttle.failures, throttle.locked_until.ms())?;
    }
    match user {
        Some(user) if matches && !user.verified => Err(AccountsError::Refused(LoginRefusal::Unverified)),
        Some(user) if matches => Ok(user),
        _ => Err(AccountsError::Refused(LoginRefusal::WrongCredentials)),
    }
}

/// A mail to send: to whom, about what, and the link in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Registers a traveller (unverified) and returns the verification mail.
/// An email that already has an account gets a note instead, so the form
/// never tells a stranger which addresses are registered.
pub fn register(
    conn: &Connection,
    email: &str,
    new_password: &str,
    base_url: &str,
    now: Timestamp,
) -> Result<Mail, AccountsError> {
    let email = Email::parse(email)?;
    password::check_new(new_password, email.as_str())?;
    if let Some(user) = users::by_email(conn, email.as_str())? {
        if !user.verified {
            // The first mail may have been lost (or refused): a new link.
            // The password stays the one chosen first, so whoever registers
            // an address again cannot set the password of its owner.
            let secret = issue(conn, TokenKind::EmailVerification, user.id, None, now)?;
            return Ok(verification_mail(
                &email,
                base_url,
                &secret,
                "If you registered twice, log in with the password you chose first, or reset it.",
            ));
        }
        return Ok(Mail {
            to: email.to_string(),
            subject: "Your Caravan account".into(),
            body: format!("Someone (you?) tried to register {email} again. You already have an account: log in at {base_url}/login, or reset your password at {base_url}/forgot.\n"),
        });
    }
    let user = add_user(conn, email.as_str(), new_password, Role::Traveller, false, now)?;
    let secret = issue(conn, TokenKind::EmailVerification, user, None, now)?;
    Ok(verification_mail(&email, base_url, &secret, ""))
}

fn verification_mail(email: &Email, base_url: &str, secret: &Secret, note: &str) -> Mail {
    Mail {
        to: email.to_string(),
        subject: "Confirm your email address".into(),
        body: format!(
            "Welcome to Caravan. Confirm your address within 48 hours: {base_url}/verify?token={}\n{note}\n",
            secret.reveal()
        ),
    }
}

/// Spends a single-use token of `kind`; the account it was for.
fn spend(conn: &Connection, secret: &Secret, kind: TokenKind, now: Timestamp) -> Result<u64, AccountsError> {
    let token = users::take_token(conn, &secret.stored_hash(kind))?.ok_or(AccountsError::BadLink)?;
    if token.expires_ms.is_some_and(|at| now.ms() >= at) {
        return Err(AccountsError::BadLink);
    }
    Ok(token.user_id)
}

/// Confirms an email address with the token from the verification mail.
pub fn verify_email(conn: &Connection, secret: &Secret, now: Timestamp) -> Result<u64, AccountsError> {
    let user = spend(conn, secret, TokenKind::EmailVerification, now)?;
    users::set_verified(conn, user)?;
    Ok(user)
}

/// The password-reset mail for `email`, if it has an account (none
/// otherwise; the page says the same either way).
pub fn request_reset(
    conn: &Connection,
    email: &str,
    base_url: &str,
    now: Timestamp,
) -> Result<Option<Mail>, AccountsError> {
    let Ok(email) = Email::parse(email) else { return Ok(None) };
    let Some(user) = users::by_email(conn, email.as_str())? else { return Ok(None) };
    let secret = issue(conn, TokenKind::PasswordReset, user.id, None, now)?;
    Ok(Some(Mail {
        to: email.to_string(),
        subject: "Reset your Caravan password".into(),
        body: format!("Set a new password within the hour: {base_url}/reset?token={}\nIf you did not ask for this, ignore this mail.\n", secret.reveal()),
    }))
}

/// Sets a new password with the token from the reset mail (once), ends
/// every session of the account, and confirms its email (the mail reached it).
pub fn reset_password(
    conn: &Connection,
    secret: &Secret,
    new_password: &str,
    now: Timestamp,
) -> Result<u64, AccountsError> {
    // A password the rules refuse does not use up the link.
    let hash = secret.stored_hash(TokenKind::PasswordReset);
    let token = users::token_by_hash(conn, &hash)?.ok_or(AccountsError::BadLink)?;
    let user = users::by_id(conn, token.user_id)?.ok_or(AccountsError::BadLink)?;
    password::check_new(new_password, &user.email)?;
    spend(conn, secret, TokenKind::PasswordReset, now)?;
    users::set_password(conn, user.id, &password::hash(new_password, rand::random()))?;
    users::set_verified(conn, user.id)?;
    users::delete_tokens(conn, user.id, TokenKind::Session.as_str())?;
    Ok(user.id)
}

/// A new API token for account `user`, named so its owner can tell it apart.
pub fn issue_api_token_for(conn: &Connection, user: u64, name: &str, now: Timestamp) -> Result<Secret, AccountsError> {
    let name = name.trim();
    if name.is_empty() || name.len() > TOKEN_NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(AccountsError::Invalid(AccountError::Password(format!(
            "a token's name is 1-{TOKEN_NAME_BYTES_MAX} printable bytes"
        ))));
    }
    Ok(issue(conn, TokenKind::Api, user, Some(name.to_owned()), now)?)
}

/// The longest name of an API token.
pub const TOKEN_NAME_BYTES_MAX: usize = 80;

/// Makes sure `email` has an admin account and stores `secret` as one of
/// its API tokens. `caravan cluster up` gives every member the same
/// token this way, so one client can drive the whole cluster. A new
/// account gets a random password (reset it to log in by browser).
pub fn install_admin_token(
    conn: &Connection,
    email: &str,
    secret: &Secret,
    name: &str,
    now: Timestamp,
) -> Result<u64, AccountsError> {
    let email = Email::parse(email)?;
    let user = match users::by_email(conn, email.as_str())? {
        Some(user) => user.id,
        None => {
            let password = Secret::from_bytes(rand::random()).reveal();
            add_user(conn, email.as_str(), &password, Role::Admin, true, now)?
        }
    };
    let stored = StoredToken::issue(secret, TokenKind::Api, user, now);
    users::put_token(
        conn,
        &TokenRow {
            hash: stored.hash,
            kind: TokenKind::Api.as_str().to_owned(),
            user_id: user,
            name: Some(name.to_owned()),
            created_ms: now.ms(),
            expires_ms: None,
        },
    )?;
    Ok(user)
}

/// The account a live token of `kind` stands for.
pub fn authenticate(
    conn: &Connection,
    secret: &Secret,
    kind: TokenKind,
    now: Timestamp,
) -> Result<Option<UserRow>, StoreError> {
    let Some(token) = users::token_by_hash(conn, &secret.stored_hash(kind))? else { return Ok(None) };
    if token.expires_ms.is_some_and(|at| now.ms() >= at) {
        return Ok(None);
    }
    users::by_id(conn, token.user_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_accounts::throttle::FREE_FAILURES;

    /// The token in a mail's link.
    fn link_token(mail: &Mail) -> Secret {
        let start = mail.body.find("token=").unwrap() + "token=".len();
        Secret::parse(&mail.body[start..start + 64]).unwrap()
    }

    #[test]
    fn register_verify_and_reset_with_single_use_links() {
        let (_dir, conn) = db();
        let now = Timestamp(1_900_000_000_000);
        let mail = register(&conn, "ada@example.org", "a long enough phrase", "http://x", now).unwrap();
        assert!(matches!(
            login(&conn, "ada@example.org", "a long enough phrase", "c", now),
            Err(AccountsError::Refused(LoginRefusal::Unverified))
        ));
        // Unconfirmed, a second registration mails the owner a new link and
        // changes nothing else: the first password stays.
        let again = register(&conn, "ada@example.org", "another long phrase", "http://x", now).unwrap();
        assert!(again.to == "ada@example.org" && again.body.contains("token="), "{again:?}");
        let token = link_token(&mail);
        verify_email(&conn, &token, now).unwrap();
        assert!(matches!(verify_email(&conn, &token, now), Err(AccountsError::BadLink)), "a link works once");
        let taken = login(&conn, "ada@example.org", "another long phrase", "c", now);
        assert!(matches!(taken, Err(AccountsError::Refused(LoginRefusal::WrongCredentials))));
        let (_, session) = login(&conn, "ada@example.org", "a long enough phrase", "c", now).unwrap();
        let confirmed = register(&conn, "ada@example.org", "another long phrase", "http://x", now).unwrap();
        assert!(!confirmed.body.contains("token="), "once confirmed, registering again sends no link");

        assert_eq!(request_reset(&conn, "nobody@example.org", "http://x", now).unwrap(), None);
        let reset = link_token(&request_reset(&conn, "ada@example.org", "http://x", now).unwrap().unwrap());
        assert!(matches!(reset_password(&conn, &reset, "short", now), Err(AccountsError::Invalid(_))));
        reset_password(&conn, &reset, "a brand new phrase", now).unwrap();
        assert!(
            matches!(reset_password(&conn, &reset, "yet another phrase", now), Err(AccountsError::BadLink)),
            "a reset token works once"
        );
        assert_eq!(authenticate(&conn, &session, TokenKind::Session, now).unwrap(), None, "old sessions end");
        assert!(login(&conn, "ada@example.org", "a brand new phrase", "c", now).is_ok());
        let late = link_token(&request_reset(&conn, "ada@example.org", "http://x", now).unwrap().unwrap());
        let hour_later = now.saturating_add_ms(Timestamp::MS_PER_HOUR);
        assert!(
            matches!(reset_password(&conn, &late, "a third new phrase", hour_later), Err(AccountsError::BadLink)),
            "reset links expire"
        );
    }

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = caravan_store::open_writer(&dir.path().join(caravan_store::DB_FILE)).unwrap();
        (dir, conn)
    }

    #[test]
    fn people_log_in_and_tokens_stand_for_them() {
        let (_dir, conn) = db();
        let now = Timestamp(1_900_000_000_000);
        let id = add_user(&conn, "Ada@Example.org", "a long enough phrase", Role::Admin, true, now).unwrap();
        assert!(matches!(
            add_user(&conn, "ada@example.org", "another long phrase", Role::Traveller, false, now),
            Err(AccountsError::Exists(_))
        ));
        assert!(matches!(
            add_user(&conn, "b@example.org", "short", Role::Traveller, false, now),
            Err(AccountsError::Invalid(_))
        ));

        let (user, session) = login(&conn, "ada@example.org", "a long enough phrase", "127.0.0.1", now).unwrap();
        assert_eq!(user.id, id);
        assert_eq!(authenticate(&conn, &session, TokenKind::Session, now).unwrap().map(|u| u.id), Some(id));
        assert_eq!(authenticate(&conn, &session, TokenKind::Api, now).unwrap(), None, "a session is not an API token");
        let week_later = now.saturating_add_ms(8 * 24 * Timestamp::MS_PER_HOUR);
        assert_eq!(authenticate(&conn, &session, TokenKind::Session, week_later).unwrap(), None, "sessions expire");

        let api = issue_api_token(&conn, "ada@example.org", "pms", now).unwrap();
        assert_eq!(authenticate(&conn, &api, TokenKind::Api, week_later).unwrap().map(|u| u.id), Some(id));
    }

    #[test]
    fn wrong_passwords_are_throttled_and_unknown_emails_look_the_same() {
        let (_dir, conn) = db();
        let now = Timestamp(1_900_000_000_000);
        add_user(&conn, "ada@example.org", "a long enough phrase", Role::Traveller, true, now).unwrap();
        assert!(matches!(
            login(&conn, "nobody@example.org", "whatever it is", "10.0.0.9", now),
            Err(AccountsError::Refused(LoginRefusal::WrongCredentials))
        ));
        for _ in 0..FREE_FAILURES {
            assert!(matches!(
                login(&conn, "ada@example.org", "wrong guess!!", "10.0.0.1", now),
                Err(AccountsError::Refused(LoginRefusal::WrongCredentials))
            ));
        }
        // Even the right password waits now, from any address.
        assert!(matches!(
            login(&conn, "ada@example.org", "a long enough phrase", "10.0.0.2", now),
            Err(AccountsError::Refused(LoginRefusal::Throttled(30)))
        ));
        let later = now.saturating_add_ms(30_000);
        assert!(login(&conn, "ada@example.org", "a long enough phrase", "10.0.0.2", later).is_ok());
    }
}
