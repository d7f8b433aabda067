//! The accounts' rules that run on one member's own database, and the
//! account mails.
//!
//! The group's people live in its directory (`caravan_accounts::directory`),
//! changed through its log. A member's own database keeps what is its
//! alone: the login throttles (each member counts the attempts it
//! judged), and accounts written by the command line ([`add_user`],
//! [`issue_api_token`], [`install_admin_token`]) that wait there until the
//! node takes them into the group ([`local_accounts`], [`forget_local`]).

use caravan_accounts::directory::{Account, LocalAccount, PasswordHash, Token};
use caravan_accounts::throttle::Throttle;
use caravan_accounts::token::{Secret, StoredToken, TokenKind};
use caravan_accounts::{password, AccountError, Email, LoginRefusal, Principal, Role};
use caravan_model::Timestamp;
use caravan_store::rusqlite::Connection;
use caravan_store::users::{self, TokenRow};
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds an account with a new password to this member's own database, to
/// be taken into the group when the node starts.
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

fn put_token(conn: &Connection, stored: &StoredToken, name: Option<String>) -> Result<(), StoreError> {
    users::put_token(
        conn,
        &TokenRow {
            hash: stored.hash,
            kind: stored.kind.as_str().to_owned(),
            user_id: stored.user,
            name,
            created_ms: stored.created_at.ms(),
            expires_ms: stored.expires_at.map(Timestamp::ms),
        },
    )
}

/// A new API token for the account `email` in this member's own
/// database, named so its owner can tell it apart; shown once.
pub fn issue_api_token(conn: &Connection, email: &str, name: &str, now: Timestamp) -> Result<Secret, AccountsError> {
    let email = Email::parse(email)?;
    let name = token_name(name)?;
    let user = users::by_email(conn, email.as_str())?.ok_or_else(|| AccountsError::Unknown(email.to_string()))?;
    let secret = Secret::from_bytes(rand::random());
    put_token(conn, &StoredToken::issue(&secret, TokenKind::Api, user.id, now), Some(name))?;
    Ok(secret)
}

/// Makes sure `email` has an admin account and stores `secret` as one of
/// its API tokens, in this member's own database. `caravan cluster up`
/// gives every member the same token this way, so one client can drive
/// the whole cluster. A new account gets a random password (reset it to
/// log in by browser).
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
    put_token(conn, &StoredToken::issue(secret, TokenKind::Api, user, now), Some(name.to_owned()))?;
    Ok(user)
}

/// The longest name of an API token.
pub const TOKEN_NAME_BYTES_MAX: usize = 80;

/// An API token's name, trimmed, once it passes the rules.
pub fn token_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.len() > TOKEN_NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(AccountError::Password(format!("a token's name is 1-{TOKEN_NAME_BYTES_MAX} printable bytes")));
    }
    Ok(name.to_owned())
}

/// Checks a password against `account` (the group's account with that
/// email, if any), throttled per email and per client (an address) in this
/// member's database: while either waits, the attempt is refused unjudged.
/// Also asked before a grave step (withdrawing a service), so a borrowed
/// session is not enough for it.
pub fn check_password(
    conn: &Connection,
    email: &str,
    account: Option<&Account>,
    given_password: &str,
    client: &str,
    now: Timestamp,
) -> Result<(), AccountsError> {
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
    let account = account.filter(|account| account.email == email);
    // Verify against a decoy when there is no account, so timing does not
    // tell which emails have accounts.
    let hash = account.map_or_else(password::decoy_hash, |a| a.password.0.clone());
    let matches = password::verify(given_password, &hash) && account.is_some();
    for (key, throttle) in keys.iter().zip(&mut throttles) {
        if matches {
            throttle.record_success();
        } else {
            throttle.record_failure(now);
        }
        users::set_throttle(conn, key, throttle.failures, throttle.locked_until.ms())?;
    }
    match account {
        Some(account) if matches && !account.verified => Err(AccountsError::Refused(LoginRefusal::Unverified)),
        Some(_) if matches => Ok(()),
        _ => Err(AccountsError::Refused(LoginRefusal::WrongCredentials)),
    }
}

/// The accounts waiting in this member's own database to be taken into
/// the group, with their live tokens and their listings. A row this
/// build cannot read is reported, not skipped.
pub fn local_accounts(conn: &Connection, now: Timestamp) -> Result<Vec<LocalAccount>, StoreError> {
    let mut accounts = Vec::new();
    let corrupt = |what: String| StoreError::Corrupt(what);
    for user in users::list(conn, 0, u32::MAX)? {
        let email = Email::parse(&user.email).map_err(|e| corrupt(format!("account {}: {e}", user.id)))?;
        let role = Role::parse(&user.role).map_err(|e| corrupt(format!("account {}: {e}", user.id)))?;
        let mut tokens = Vec::new();
        for row in users::all_tokens_of(conn, user.id)? {
            let kind = TokenKind::parse(&row.kind)
                .ok_or_else(|| corrupt(format!("a token of account {}: kind {:?}", user.id, row.kind)))?;
            let stored = StoredToken {
                hash: row.hash,
                kind,
                user: user.id,
                created_at: Timestamp(row.created_ms),
                expires_at: row.expires_ms.map(Timestamp),
            };
            if stored.is_live(now) {
                tokens.push(Token { stored, name: row.name });
            }
        }
        accounts.push(LocalAccount {
            email,
            password: PasswordHash(user.password),
            role,
            verified: user.verified,
            created: Timestamp(user.created_ms),
            tokens,
            listings: users::managed_by(conn, user.id)?,
        });
    }
    Ok(accounts)
}

/// Forgets the tokens and listings the group took in from this member's
/// own database, so a token revoked in the group never comes back from
/// here. The accounts stay, so the command line can issue them tokens
/// later; the group keeps its own word on them. What the command line
/// added meanwhile stays for the next time.
pub fn forget_local(conn: &Connection, taken: &[LocalAccount]) -> Result<(), StoreError> {
    for account in taken {
        let Some(user) = users::by_email(conn, account.email.as_str())? else { continue };
        for token in &account.tokens {
            users::take_token(conn, &token.stored.hash)?;
        }
        for listing in &account.listings {
            users::remove_manager(conn, listing, user.id)?;
        }
    }
    Ok(())
}

/// Whether this member's own database holds anything the group may not
/// have: a token, a listing's manager, or an account after `after_user`
/// (accounts up to it were handed over already).
pub fn waiting(conn: &Connection, after_user: u64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM user_tokens) OR EXISTS (SELECT 1 FROM listing_managers) \
             OR EXISTS (SELECT 1 FROM users WHERE id > ?1)",
        )?
        .query_row([after_user as i64], |row| row.get(0))?)
}

/// The newest account's id in this member's own database.
pub fn last_local_user(conn: &Connection) -> Result<u64, StoreError> {
    let last: Option<i64> = conn.prepare_cached("SELECT max(id) FROM users")?.query_row([], |row| row.get(0))?;
    Ok(last.unwrap_or(0) as u64)
}

/// Whether this member's own database holds an account with `email`.
pub fn holds_local(conn: &Connection, email: &Email) -> Result<bool, StoreError> {
    Ok(users::by_email(conn, email.as_str())?.is_some())
}

/// The account a live token of `kind` in this member's own database
/// stands for.
pub fn local_principal(
    conn: &Connection,
    hash: &[u8; 32],
    kind: TokenKind,
    now: Timestamp,
) -> Result<Option<Principal>, StoreError> {
    let Some(token) = users::token_by_hash(conn, hash)? else { return Ok(None) };
    let live = token.kind == kind.as_str() && token.expires_ms.is_none_or(|at| now.ms() < at);
    let Some(user) = users::by_id(conn, token.user_id)?.filter(|_| live) else { return Ok(None) };
    let role = Role::parse(&user.role).map_err(|e| StoreError::Corrupt(format!("account {}: {e}", user.id)))?;
    Ok(Some(Principal { user: user.id, email: user.email, role }))
}

/// A mail to send: to whom, about what, and the link in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// The mail with the link that confirms `email`, with a note for a second
/// registration.
pub fn verification_mail(email: &Email, base_url: &str, secret: &Secret, note: &str) -> Mail {
    Mail {
        to: email.to_string(),
        subject: "Confirm your email address".into(),
        body: format!(
            "Welcome to Caravan. Confirm your address within 48 hours: {base_url}/verify?token={}\n{note}\n",
            secret.reveal()
        ),
    }
}

/// What a second registration of a confirmed address gets: a note, never
/// telling the stranger at the form that the address is registered.
pub fn registered_again_mail(email: &Email, base_url: &str) -> Mail {
    Mail {
        to: email.to_string(),
        subject: "Your Caravan account".into(),
        body: format!("Someone (you?) tried to register {email} again. You already have an account: log in at {base_url}/login, or reset your password at {base_url}/forgot.\n"),
    }
}

/// The mail with a password reset link.
pub fn reset_mail(email: &Email, base_url: &str, secret: &Secret) -> Mail {
    Mail {
        to: email.to_string(),
        subject: "Reset your Caravan password".into(),
        body: format!("Set a new password within the hour: {base_url}/reset?token={}\nIf you did not ask for this, ignore this mail.\n", secret.reveal()),
    }
}

/// A second registration's note while the address is unconfirmed.
pub const REGISTERED_TWICE: &str = "If you registered twice, log in with the password you chose first, or reset it.";

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_accounts::directory::{Change, Directory};
    use caravan_accounts::throttle::FREE_FAILURES;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = caravan_store::open_writer(&dir.path().join(caravan_store::DB_FILE)).unwrap();
        (dir, conn)
    }

    const NOW: Timestamp = Timestamp(1_900_000_000_000);

    #[test]
    fn the_command_lines_accounts_wait_until_the_group_takes_them() {
        let (_dir, conn) = db();
        let id = add_user(&conn, "Ada@Example.org", "a long enough phrase", Role::Admin, true, NOW).unwrap();
        assert!(matches!(
            add_user(&conn, "ada@example.org", "another long phrase", Role::Traveller, false, NOW),
            Err(AccountsError::Exists(_))
        ));
        assert!(matches!(
            add_user(&conn, "b@example.org", "short", Role::Traveller, false, NOW),
            Err(AccountsError::Invalid(_))
        ));
        let api = issue_api_token(&conn, "ada@example.org", "pms", NOW).unwrap();
        users::add_manager(&conn, "rl-1", id).unwrap();

        let local = local_accounts(&conn, NOW).unwrap();
        let mut group = Directory::default();
        group.apply(&Change::Import(local.clone()), NOW).unwrap();
        let ada = group.authenticate(&api.stored_hash(TokenKind::Api), TokenKind::Api, NOW).unwrap();
        assert_eq!((ada.email.as_str(), ada.role), ("ada@example.org", Role::Admin));
        assert_eq!(group.managers("rl-1"), vec![ada.id]);
        // What the command line adds meanwhile stays for the next time.
        let later = issue_api_token(&conn, "ada@example.org", "channel manager", NOW).unwrap();
        forget_local(&conn, &local).unwrap();
        let left = local_accounts(&conn, NOW).unwrap();
        let hashes = |account: &LocalAccount| account.tokens.iter().map(|t| t.stored.hash).collect::<Vec<_>>();
        assert_eq!((left.len(), hashes(&left[0])), (1, vec![later.stored_hash(TokenKind::Api)]));
        assert!(left[0].listings.is_empty(), "a listing is taken in once");
        forget_local(&conn, &left).unwrap();
        let bare = local_accounts(&conn, NOW).unwrap();
        assert!(bare.len() == 1 && bare[0].tokens.is_empty(), "the account stays for the next token");
        assert!(waiting(&conn, 0).unwrap() && !waiting(&conn, last_local_user(&conn).unwrap()).unwrap());
        issue_api_token(&conn, "ada@example.org", "another", NOW).unwrap();
        assert!(waiting(&conn, last_local_user(&conn).unwrap()).unwrap(), "a new token waits");
    }

    #[test]
    fn wrong_passwords_are_throttled_and_unknown_emails_look_the_same() {
        let (_dir, conn) = db();
        let mut group = Directory::default();
        let local = {
            let (_d, inbox) = db();
            add_user(&inbox, "ada@example.org", "a long enough phrase", Role::Traveller, true, NOW).unwrap();
            local_accounts(&inbox, NOW).unwrap()
        };
        group.apply(&Change::Import(local), NOW).unwrap();
        let ada = group.by_email(&Email::parse("ada@example.org").unwrap()).cloned();
        let check = |email: &str, password: &str, client: &str, now| {
            check_password(&conn, email, ada.as_ref(), password, client, now)
        };
        assert!(matches!(
            check("nobody@example.org", "whatever it is", "10.0.0.9", NOW),
            Err(AccountsError::Refused(LoginRefusal::WrongCredentials))
        ));
        for _ in 0..FREE_FAILURES {
            assert!(matches!(
                check("ada@example.org", "wrong guess!!", "10.0.0.1", NOW),
                Err(AccountsError::Refused(LoginRefusal::WrongCredentials))
            ));
        }
        // Even the right password waits now, from any address.
        assert!(matches!(
            check("ada@example.org", "a long enough phrase", "10.0.0.2", NOW),
            Err(AccountsError::Refused(LoginRefusal::Throttled(30)))
        ));
        let later = NOW.saturating_add_ms(30_000);
        assert!(check("ada@example.org", "a long enough phrase", "10.0.0.2", later).is_ok());
        // An account handed over for another email never matches.
        assert!(
            check_password(&conn, "bo@example.org", ada.as_ref(), "a long enough phrase", "10.0.0.3", later).is_err()
        );
    }
}
