//! Embedded, numbered schema migrations and the connection setup around them.
//!
//! Each file in `migrations/` is applied once, in order, inside its own
//! `BEGIN IMMEDIATE` transaction, and recorded in `schema_migrations`
//! (version, name, applied_at); `PRAGMA user_version` mirrors the version for
//! tools like the sqlite3 shell. A database whose version is higher than the
//! last migration this binary ships is refused instead of guessed at.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::error::{ErrorClass, StoreError, classify};

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Schema version this migration produces (1-based, contiguous).
    pub version: i64,
    /// File name under `migrations/`.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Every migration this binary ships, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init.sql",
        sql: include_str!("../../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_secret_name_and_audit_by_ca.sql",
        sql: include_str!("../../migrations/0002_secret_name_and_audit_by_ca.sql"),
    },
];

/// The schema version this binary writes and expects.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a connection waits on another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A migration that [`migrate`] applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Version reached.
    pub version: i64,
    /// File name.
    pub name: &'static str,
}

/// Map a SQLite error on `path` to a [`StoreError`] by its class.
pub(crate) fn map_err(path: &Path, what: &'static str, err: rusqlite::Error) -> StoreError {
    match classify(&err) {
        ErrorClass::Corrupt => StoreError::Corrupt {
            path: path.to_owned(),
            detail: err.to_string(),
        },
        ErrorClass::Transient
            if matches!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ) =>
        {
            StoreError::Busy {
                path: path.to_owned(),
                detail: format!("{what}: {err}"),
            }
        }
        ErrorClass::Transient => StoreError::Unavailable {
            path: path.to_owned(),
            detail: format!("{what}: {err}"),
        },
        ErrorClass::Record => StoreError::Sqlite {
            path: path.to_owned(),
            what,
            source: err,
        },
    }
}

/// The schema version recorded in the database (0 for a fresh file).
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let has_table: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if has_table.is_none() {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
}

/// Apply every pending migration. Idempotent.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<Vec<AppliedMigration>, StoreError> {
    migrate_to(conn, path, SCHEMA_VERSION)
}

/// Apply pending migrations up to and including `target` (tests use this to
/// build a database at an older version).
pub fn migrate_to(
    conn: &mut Connection,
    path: &Path,
    target: i64,
) -> Result<Vec<AppliedMigration>, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(|e| map_err(path, "creating schema_migrations", e))?;

    let found = schema_version(conn).map_err(|e| map_err(path, "reading schema version", e))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }

    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version <= target) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| map_err(path, "starting a migration transaction", e))?;
        // Re-read inside the write lock: another process may have migrated.
        let current =
            schema_version(&tx).map_err(|e| map_err(path, "reading schema version", e))?;
        if m.version <= current {
            continue;
        }
        let fail = |source: rusqlite::Error| match classify(&source) {
            ErrorClass::Record => StoreError::Migration {
                path: path.to_owned(),
                version: m.version,
                name: m.name,
                source,
            },
            _ => map_err(path, "applying a migration", source),
        };
        tx.execute_batch(m.sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, super::now_unix()],
        )
        .map_err(fail)?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::info!(version = m.version, name = m.name, db = %path.display(), "applied store migration");
        applied.push(AppliedMigration {
            version: m.version,
            name: m.name,
        });
    }
    Ok(applied)
}

/// Open `path` for writing: create the parent directory and the file if
/// needed, set WAL / synchronous=NORMAL / foreign keys / busy timeout, check
/// the file is a healthy SQLite database and migrate it.
pub(crate) fn open_rw(
    path: &Path,
    busy_timeout: Duration,
) -> Result<(Connection, Vec<AppliedMigration>), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable {
            path: path.to_owned(),
            detail: format!("creating directory {}: {e}", parent.display()),
        })?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(|e| map_err(path, "opening", e))?;
    configure(&conn, path, busy_timeout, true)?;
    check_integrity(&conn, path)?;
    let applied = migrate(&mut conn, path)?;
    // Refresh planner statistics where they are stale (cheap; what SQLite
    // recommends for long-lived connections), so e.g. `--expiring-within`
    // picks the notAfter index on a large mirror.
    if let Err(e) = conn.execute_batch("PRAGMA optimize = 0x10002") {
        tracing::debug!(db = %path.display(), error = %e, "PRAGMA optimize failed");
    }
    Ok((conn, applied))
}

/// Open `path` read-only for queries. The file must exist and be at the
/// schema version this binary expects (or newer: later migrations only add).
pub(crate) fn open_ro(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing {
            path: path.to_owned(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, "opening", e))?;
    configure(&conn, path, BUSY_TIMEOUT, false)?;
    let found = schema_version(&conn).map_err(|e| map_err(path, "reading schema version", e))?;
    if found < SCHEMA_VERSION {
        return Err(StoreError::SchemaTooOld {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

fn configure(
    conn: &Connection,
    path: &Path,
    busy_timeout: Duration,
    writer: bool,
) -> Result<(), StoreError> {
    let e = |e| map_err(path, "configuring the connection", e);
    conn.busy_timeout(busy_timeout).map_err(e)?;
    if writer {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(e)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable {
                path: path.to_owned(),
                detail: format!("the filesystem refused WAL mode (journal_mode={mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(e)?;
    }
    conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
    Ok(())
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| map_err(path, "checking integrity", e))?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| map_err(path, "checking integrity", e))?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("quick_check: {}", problems.join("; ")),
        })
    }
}
