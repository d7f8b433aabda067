//! Schema migrations, numbered by SQLite's `user_version`. A migration is
//! never edited once released: add a new one.

use rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: records, equivocations, catalog, ledger log.
    "
    -- The newest record per slot, exactly as received (encoded SignedRecord).
    -- A rowid table, not WITHOUT ROWID: rows are 300-600 bytes and arrive
    -- in random slot order, so they are appended in rowid order and only
    -- the small slot index takes random inserts.
    CREATE TABLE records (
        origin  BLOB    NOT NULL,
        kind    INTEGER NOT NULL,
        key     TEXT    NOT NULL,
        version INTEGER NOT NULL,
        time_ms INTEGER NOT NULL,
        id      BLOB    NOT NULL,
        signed  BLOB    NOT NULL
    );
    CREATE UNIQUE INDEX records_by_slot ON records (origin, key, kind);
    -- Set reconciliation walks records in (time, id) order, and peers fetch
    -- the ids it finds missing.
    CREATE INDEX records_by_time ON records (time_ms, id);
    CREATE INDEX records_by_id ON records (id);

    -- One proof per frozen origin.
    CREATE TABLE equivocations (
        origin      BLOB    PRIMARY KEY,
        proof       BLOB    NOT NULL,
        detected_ms INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- The catalog: derived from records, rebuilt from them at will.
    CREATE TABLE catalog_listings (
        origin     BLOB    NOT NULL,
        key        TEXT    NOT NULL,
        version    INTEGER NOT NULL,
        record_id  BLOB    NOT NULL,
        kind       TEXT    NOT NULL,
        title      TEXT    NOT NULL,
        currency   TEXT    NOT NULL,
        city       TEXT,
        country    TEXT,
        lat_e7     INTEGER,
        lon_e7     INTEGER,
        max_guests INTEGER,
        from_code  TEXT,
        to_code    TEXT,
        PRIMARY KEY (origin, key)
    ) WITHOUT ROWID;
    CREATE INDEX catalog_listings_by_place ON catalog_listings (country, city);
    CREATE INDEX catalog_listings_by_lat ON catalog_listings (lat_e7, lon_e7);
    CREATE INDEX catalog_listings_by_route ON catalog_listings (from_code, to_code);

    -- Rowid table for the same reason as records: runs make rows large.
    CREATE TABLE catalog_ari (
        origin          BLOB    NOT NULL,
        key             TEXT    NOT NULL,
        version         INTEGER NOT NULL,
        record_id       BLOB    NOT NULL,
        first_day       INTEGER,
        end_day         INTEGER,
        price_min_minor INTEGER,
        runs            BLOB    NOT NULL
    );
    CREATE UNIQUE INDEX catalog_ari_by_key ON catalog_ari (origin, key);

    -- The owner's ledger: every command with the time it was stamped and
    -- the reply it got, in order. Replaying it rebuilds the ledger.
    CREATE TABLE ledger_log (
        idx     INTEGER PRIMARY KEY,
        now_ms  INTEGER NOT NULL,
        command BLOB    NOT NULL,
        reply   BLOB    NOT NULL
    );
    ",
    // 2: origins' contacts in the catalog.
    "
    CREATE TABLE catalog_contacts (
        origin    BLOB    PRIMARY KEY,
        version   INTEGER NOT NULL,
        record_id BLOB    NOT NULL,
        -- An encoded ContactPayload.
        contact   BLOB    NOT NULL
    ) WITHOUT ROWID;
    ",
    // 3: the agency's bookings (sagas over several owners).
    "
    CREATE TABLE agency_bookings (
        id         INTEGER PRIMARY KEY,
        -- The Idempotency-Key the client created the booking with.
        client_key TEXT    UNIQUE,
        -- The account that made the booking, when one did.
        user_id    INTEGER,
        phase      TEXT    NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        -- The traveller's details (JSON); they never leave the agency and
        -- the owners' nodes.
        traveller  BLOB    NOT NULL,
        -- The saga, encoded by the node.
        saga       BLOB    NOT NULL
    );
    CREATE INDEX agency_bookings_unfinished ON agency_bookings (phase);
    CREATE INDEX agency_bookings_by_user ON agency_bookings (user_id, id);
    ",
    // 4: people: accounts, their secret tokens (hashes only), who manages
    // which listing, and login throttling.
    "
    CREATE TABLE users (
        id          INTEGER PRIMARY KEY,
        email       TEXT    NOT NULL UNIQUE,
        -- argon2id, PHC string.
        password    TEXT    NOT NULL,
        role        TEXT    NOT NULL,
        verified    INTEGER NOT NULL,
        created_ms  INTEGER NOT NULL
    );
    CREATE TABLE user_tokens (
        hash        BLOB    PRIMARY KEY,
        kind        TEXT    NOT NULL,
        user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        -- A name for API tokens, so their owner can tell them apart.
        name        TEXT,
        created_ms  INTEGER NOT NULL,
        expires_ms  INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX user_tokens_by_user ON user_tokens (user_id, kind);
    CREATE TABLE listing_managers (
        listing     TEXT    NOT NULL,
        user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (listing, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX listing_managers_by_user ON listing_managers (user_id);
    CREATE TABLE login_throttle (
        key             TEXT    PRIMARY KEY,
        failures        INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 5: the catalog lives in memory only (`caravan-catalog`), kept beside
    // the database as a snapshot file; its tables go. The snapshot names
    // the count of record-changing commits it is in step with.
    "
    DROP TABLE catalog_listings;
    DROP TABLE catalog_ari;
    DROP TABLE catalog_contacts;
    CREATE TABLE records_mark (
        only    INTEGER PRIMARY KEY CHECK (only = 1),
        commits INTEGER NOT NULL
    );
    INSERT INTO records_mark VALUES (1, 0);
    ",
];

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    check_version(found)?;
    for (idx, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", idx as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

pub fn check_readable(conn: &Connection) -> Result<(), StoreError> {
    check_version(user_version(conn)?)
}

fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

fn check_version(found: u32) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as u32;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    Ok(())
}
