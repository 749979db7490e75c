//! Store errors: each names what failed, on which file, and what to do.

use std::path::PathBuf;

/// The recovery advice for a database that cannot be used.
pub const RECOVERY_HINT: &str = "move it aside and restart (for example `mv {path} {path}.broken`): \
signet rebuilds the mirror from the cluster; keep the moved file, it holds the audit trail";

fn recovery(path: &std::path::Path) -> String {
    RECOVERY_HINT.replace("{path}", &path.display().to_string())
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file exists but is not a usable SQLite database.
    #[error("database file {} is corrupt or not a SQLite database ({detail}); {}", path.display(), recovery(path))]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },

    /// The database was migrated by a newer signet.
    #[error(
        "database {} has schema version {found} but this signet binary knows versions up to {supported}; \
run a signet release at least as new as the one that last migrated it, or {}",
        path.display(), recovery(path)
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Highest version this binary ships.
        supported: i64,
    },

    /// The database is older than this binary and a read-only client cannot migrate it.
    #[error(
        "database {} has schema version {found} but this signet binary needs {supported}; \
run `signet db migrate --db {}` (or start the operator, which migrates on start)",
        path.display(), path.display()
    )]
    SchemaTooOld {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Version this binary needs.
        supported: i64,
    },

    /// A migration script failed.
    #[error("migration {version} ({name}) failed on {}; the database was left at the previous version", path.display())]
    Migration {
        /// The database file.
        path: PathBuf,
        /// Migration number.
        version: i64,
        /// Migration file name.
        name: &'static str,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },

    /// No database file where one was expected (read-only clients).
    #[error("no signet database at {}; pass --db PATH or set SIGNET_DB to the operator's database file", path.display())]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },

    /// The database could not be opened or written (permissions, missing
    /// volume, disk full). The operator keeps running and retries.
    #[error("database {} is unavailable ({detail}); check that the volume is mounted, writable and not full", path.display())]
    Unavailable {
        /// The database file.
        path: PathBuf,
        /// What the OS or SQLite reported.
        detail: String,
    },

    /// Another process holds the database lock longer than the busy timeout.
    #[error(
        "database {} is locked by another process ({detail}); stop the other writer \
(a second signet replica, or a sqlite3 shell left inside a transaction)",
        path.display()
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },

    /// A query failed.
    #[error("{what} failed on database {}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Which operation.
        what: &'static str,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },

    /// A row the store wrote could not be decoded (hand edited?).
    #[error("row {id} of table {table} in {} is malformed: {detail}", path.display())]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// Table name.
        table: &'static str,
        /// Row id.
        id: i64,
        /// What was wrong.
        detail: String,
    },

    /// The writer refused one record (a constraint it violates). Other writes
    /// are unaffected.
    #[error("the store rejected {what}: {detail}")]
    Rejected {
        /// What was being written.
        what: String,
        /// Why.
        detail: String,
    },

    /// The writer thread is gone (only after a panic inside it).
    #[error("the store writer thread has stopped; see the earlier log lines and restart signet")]
    WriterStopped,

    /// A blocking read task could not be joined.
    #[error("a store read task was cancelled or panicked")]
    ReadTask,
}

impl StoreError {
    /// A short, bounded category for metrics labels and condition reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Corrupt { .. } => "corrupt",
            Self::SchemaTooNew { .. } => "schema_too_new",
            Self::SchemaTooOld { .. } => "schema_too_old",
            Self::Migration { .. } => "migration",
            Self::Missing { .. } => "missing",
            Self::Unavailable { .. } => "unavailable",
            Self::Busy { .. } => "busy",
            Self::Sqlite { .. } => "sqlite",
            Self::BadRow { .. } => "bad_row",
            Self::Rejected { .. } => "rejected",
            Self::WriterStopped => "writer_stopped",
            Self::ReadTask => "read_task",
        }
    }
}

/// How the writer should react to a SQLite error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The file is not usable: refuse.
    Corrupt,
    /// The record itself is wrong: reject it, keep going.
    Record,
    /// I/O, permissions, disk full, busy: keep the writes queued and retry.
    Transient,
}

pub(crate) fn classify(err: &rusqlite::Error) -> ErrorClass {
    use rusqlite::ErrorCode as C;
    match err.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => ErrorClass::Corrupt,
        Some(C::ConstraintViolation | C::TypeMismatch | C::TooBig | C::ParameterOutOfRange) => {
            ErrorClass::Record
        }
        Some(_) => ErrorClass::Transient,
        // Conversion/parameter errors come from our own code and the record.
        None => ErrorClass::Record,
    }
}

/// Render an error with its source chain, `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
