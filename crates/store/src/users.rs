//! Accounts, their secret tokens (hashes only), who manages which listing,
//! and login throttling. The store keeps plain values; the rules
//! (password hashing, token lifetimes, throttling) live in
//! `caravan-accounts`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::StoreError;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UserRow {
    pub id: u64,
    pub email: String,
    pub password: String,
    pub role: String,
    pub verified: bool,
    pub created_ms: i64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TokenRow {
    pub hash: [u8; 32],
    pub kind: String,
    pub user_id: u64,
    pub name: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
}

const USER_COLUMNS: &str = "id, email, password, role, verified, created_ms";

fn user(row: &Row) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get::<_, i64>(0)? as u64,
        email: row.get(1)?,
        password: row.get(2)?,
        role: row.get(3)?,
        verified: row.get(4)?,
        created_ms: row.get(5)?,
    })
}

/// Creates an account; `None` when the email is taken.
pub fn create(
    conn: &Connection,
    email: &str,
    password: &str,
    role: &str,
    verified: bool,
    now_ms: i64,
) -> Result<Option<u64>, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users (email, password, role, verified, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (email) DO NOTHING",
        )?
        .execute(params![email, password, role, verified, now_ms])?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid() as u64))
}

pub fn by_email(conn: &Connection, email: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([email], user).optional()?)
}

pub fn by_id(conn: &Connection, id: u64) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id as i64], user).optional()?)
}

/// Accounts in id order, after `after_id`.
pub fn list(conn: &Connection, after_id: u64, limit: u32) -> Result<Vec<UserRow>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > ?1 ORDER BY id LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after_id as i64, limit], user)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Whether the account existed.
pub fn set_role(conn: &Connection, id: u64, role: &str) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached("UPDATE users SET role = ?2 WHERE id = ?1")?.execute(params![id as i64, role])? == 1)
}

pub fn set_password(conn: &Connection, id: u64, password: &str) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached("UPDATE users SET password = ?2 WHERE id = ?1")?.execute(params![id as i64, password])? == 1)
}

pub fn set_verified(conn: &Connection, id: u64) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached("UPDATE users SET verified = 1 WHERE id = ?1")?.execute([id as i64])? == 1)
}

pub fn put_token(conn: &Connection, token: &TokenRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO user_tokens (hash, kind, user_id, name, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        &token.hash[..],
        token.kind,
        token.user_id as i64,
        token.name,
        token.created_ms,
        token.expires_ms
    ])?;
    Ok(())
}

fn token(row: &Row) -> rusqlite::Result<TokenRow> {
    let hash: Vec<u8> = row.get(0)?;
    Ok(TokenRow {
        hash: hash.try_into().unwrap_or([0; 32]),
        kind: row.get(1)?,
        user_id: row.get::<_, i64>(2)? as u64,
        name: row.get(3)?,
        created_ms: row.get(4)?,
        expires_ms: row.get(5)?,
    })
}

const TOKEN_COLUMNS: &str = "hash, kind, user_id, name, created_ms, expires_ms";

pub fn token_by_hash(conn: &Connection, hash: &[u8; 32]) -> Result<Option<TokenRow>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM user_tokens WHERE hash = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([&hash[..]], token).optional()?)
}

/// Deletes a token and returns it: how a single-use token is spent, so two
/// uses racing each other cannot both succeed.
pub fn take_token(conn: &Connection, hash: &[u8; 32]) -> Result<Option<TokenRow>, StoreError> {
    let sql = format!("DELETE FROM user_tokens WHERE hash = ?1 RETURNING {TOKEN_COLUMNS}");
    Ok(conn.prepare_cached(&sql)?.query_row([&hash[..]], token).optional()?)
}

/// Deletes a user's tokens of one kind (all sessions at a password reset).
pub fn delete_tokens(conn: &Connection, user_id: u64, kind: &str) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM user_tokens WHERE user_id = ?1 AND kind = ?2")?
        .execute(params![user_id as i64, kind])?)
}

pub fn add_manager(conn: &Connection, listing: &str, user_id: u64) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR IGNORE INTO listing_managers (listing, user_id) VALUES (?1, ?2)")?
        .execute(params![listing, user_id as i64])?;
    Ok(())
}

pub fn remove_manager(conn: &Connection, listing: &str, user_id: u64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM listing_managers WHERE listing = ?1 AND user_id = ?2")?
        .execute(params![listing, user_id as i64])?
        == 1)
}

pub fn managers(conn: &Connection, listing: &str) -> Result<Vec<u64>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT user_id FROM listing_managers WHERE listing = ?1 ORDER BY user_id")?;
    let rows = stmt.query_map([listing], |row| row.get::<_, i64>(0).map(|id| id as u64))?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The accounts that manage `listing`, with their emails, by id.
pub fn manager_accounts(conn: &Connection, listing: &str) -> Result<Vec<(u64, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.email FROM listing_managers m JOIN users u ON u.id = m.user_id \
         WHERE m.listing = ?1 ORDER BY u.id",
    )?;
    let rows = stmt.query_map([listing], |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A login throttle's state: failures and the time before which no
/// attempt is judged.
pub fn throttle(conn: &Connection, key: &str) -> Result<(u32, i64), StoreError> {
    Ok(conn
        .prepare_cached("SELECT failures, locked_until_ms FROM login_throttle WHERE key = ?1")?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

pub fn set_throttle(conn: &Connection, key: &str, failures: u32, locked_until_ms: i64) -> Result<(), StoreError> {
    if failures == 0 {
        conn.prepare_cached("DELETE FROM login_throttle WHERE key = ?1")?.execute([key])?;
    } else {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO login_throttle (key, failures, locked_until_ms) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![key, failures, locked_until_ms])?;
    }
    Ok(())
}

/// The listings `user` manages.
pub fn managed_by(conn: &Connection, user_id: u64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT listing FROM listing_managers WHERE user_id = ?1 ORDER BY listing")?;
    let rows = stmt.query_map([user_id as i64], |row| row.get(0))?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// A user's tokens of one kind, newest first.
pub fn tokens_of(conn: &Connection, user_id: u64, kind: &str) -> Result<Vec<TokenRow>, StoreError> {
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM user_tokens WHERE user_id = ?1 AND kind = ?2 ORDER BY created_ms DESC");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user_id as i64, kind], token)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// A user's tokens of every kind, oldest first.
pub fn all_tokens_of(conn: &Connection, user_id: u64) -> Result<Vec<TokenRow>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM user_tokens WHERE user_id = ?1 ORDER BY created_ms");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([user_id as i64], token)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Deletes one of a user's tokens; whether it existed.
pub fn delete_token_of(conn: &Connection, user_id: u64, hash: &[u8; 32]) -> Result<bool, StoreError> {
    let deleted = conn
        .prepare_cached("DELETE FROM user_tokens WHERE user_id = ?1 AND hash = ?2")?
        .execute(params![user_id as i64, &hash[..]])?;
    Ok(deleted == 1)
}
