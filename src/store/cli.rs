//! `signet audit`, `signet audit verify`, `signet certs` and `signet db
//! migrate` as library functions, plus their clap arguments.
//!
//! They read the database file directly (read-only, WAL), so they work while
//! the operator runs. `main.rs` wires each with one line, e.g.
//! `Cmd::Audit(a) => signet::store::cli::run_audit(&a, &mut std::io::stdout())?`.
//!
//! Human output is an aligned table; `--json` prints one JSON object per line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::audit::VerifyReport;
use super::clock::{format_unix, now_unix, now_unix_ms, parse_duration};
use super::error::StoreError;
use super::migrations::{AppliedMigration, SCHEMA_VERSION, open_rw};
use super::query::{AuditQuery, AuditRow, CertQuery, CertRow, Reader};
use super::records::{AuditOperation, CertStatus};

/// Where the operator keeps its database unless `--db` / `SIGNET_DB` say otherwise.
pub const DEFAULT_DB_PATH: &str = "/var/lib/signet/signet.db";

/// Errors of the store subcommands.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `audit verify` found a row that does not chain.
    #[error(
        "audit trail in {} is broken at row {id}: {problem}; rows from {id} on cannot be trusted",
        path.display()
    )]
    ChainBroken {
        /// The database file.
        path: PathBuf,
        /// First broken row id.
        id: i64,
        /// What is wrong.
        problem: String,
    },
    /// Writing to stdout failed.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::Output(e)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        Self::Output(std::io::Error::other(e))
    }
}

/// clap value parser for duration flags (`--since`, `--expiring-within`).
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// The actor recorded for audit rows written from the CLI: `cli/<user>`.
pub fn cli_actor() -> String {
    let user = ["SIGNET_ACTOR", "SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("cli/{user}")
}

/// `signet audit`: list audit rows; `signet audit verify`: check the chain.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// `verify` checks the hash chain instead of listing rows.
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// SQLite database written by the operator.
    #[arg(long, env = "SIGNET_DB", default_value = DEFAULT_DB_PATH, value_name = "PATH", global = true)]
    pub db: PathBuf,
    /// Only rows from the last DUR (e.g. 30m, 24h, 7d, 90d).
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub since: Option<Duration>,
    /// Only rows about this CertificateAuthority.
    #[arg(long, value_name = "NAME")]
    pub ca: Option<String>,
    /// Only rows about objects in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this operation.
    #[arg(long, value_name = "OP")]
    pub operation: Option<AuditOperation>,
    /// Only the newest N rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// One JSON object per line instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands of `signet audit`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit hash chain and name the first broken row (exit
    /// status 1 if there is one).
    Verify {
        /// Also check the chain head the operator anchors in the cluster
        /// (`<namespace>/<configmap>`, e.g. `signet-system/signet-audit-anchor`):
        /// a database whose newest rows were cut off fails. Needs KUBECONFIG.
        #[arg(long, value_name = "NS/NAME")]
        anchor: Option<String>,
    },
}

/// An audit chain head recorded outside the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    /// Row id.
    pub row_id: i64,
    /// That row's hash.
    pub hash: String,
    /// When it was recorded (RFC 3339).
    pub time: String,
}

/// Checks `anchor` against the database: the row must exist with that
/// hash. Run after the chain itself verified.
pub fn check_anchor(db: &Path, anchor: &Anchor, out: &mut dyn Write) -> Result<(), CliError> {
    let reader = Reader::open(db)?;
    let problem = match reader.audit_hash(anchor.row_id)? {
        Some(h) if h == anchor.hash => {
            writeln!(
                out,
                "anchor matches: row {} recorded at {} is in the database with the same hash",
                anchor.row_id, anchor.time
            )?;
            return Ok(());
        }
        Some(_) => format!(
            "row {} differs from the anchor recorded at {} (the database was rewritten)",
            anchor.row_id, anchor.time
        ),
        None => format!(
            "row {} recorded in the anchor at {} is missing: the newest rows were cut off",
            anchor.row_id, anchor.time
        ),
    };
    writeln!(out, "audit trail BROKEN: {problem}")?;
    Err(CliError::ChainBroken {
        path: db.to_owned(),
        id: anchor.row_id,
        problem,
    })
}

/// `signet certs`: list mirrored certificates.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// SQLite database written by the operator.
    #[arg(long, env = "SIGNET_DB", default_value = DEFAULT_DB_PATH, value_name = "PATH")]
    pub db: PathBuf,
    /// Only active certificates expiring within DUR (e.g. 7d, 30d).
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub expiring_within: Option<Duration>,
    /// Only certificates issued by this CertificateAuthority.
    #[arg(long, value_name = "NAME")]
    pub ca: Option<String>,
    /// Only certificates with this status.
    #[arg(long, value_name = "S")]
    pub status: Option<CertStatus>,
    /// Only certificates in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `signet db ...`: database maintenance.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// Subcommands of `signet db`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DbCommand {
    /// Create the database if needed and apply pending schema migrations.
    Migrate {
        /// SQLite database written by the operator.
        #[arg(long, env = "SIGNET_DB", default_value = DEFAULT_DB_PATH, value_name = "PATH")]
        db: PathBuf,
    },
}

/// Run `signet audit [verify]`.
pub fn run_audit(args: &AuditArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match args.command {
        Some(AuditCommand::Verify { .. }) => audit_verify(&args.db, args.json, out).map(|_| ()),
        None => {
            let q = AuditQuery {
                since_ms: args.since.map(|d| {
                    now_unix_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                }),
                ca: args.ca.clone(),
                namespace: args.namespace.clone(),
                operation: args.operation,
                object_name: None,
                limit: args.limit,
            };
            audit_list(&args.db, &q, args.json, out)
        }
    }
}

/// Run `signet certs`.
pub fn run_certs(args: &CertsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let now = now_unix();
    let q = CertQuery {
        ca: args.ca.clone(),
        status: args.status,
        expiring_before: args
            .expiring_within
            .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
        namespace: args.namespace.clone(),
        now,
        ..CertQuery::default()
    };
    certs_list(&args.db, &q, args.json, out)
}

/// Run `signet db ...`.
pub fn run_db(args: &DbArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        DbCommand::Migrate { db } => db_migrate(db, out).map(|_| ()),
    }
}

/// List audit rows matching `q`.
pub fn audit_list(
    db: &Path,
    q: &AuditQuery,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let reader = Reader::open(db)?;
    if json {
        // Streamed: an export of the whole trail never sits in memory.
        reader.audit_each(q, |row| -> Result<(), CliError> {
            serde_json::to_writer(&mut *out, &row)?;
            out.write_all(b"\n")?;
            Ok(())
        })?;
    } else {
        let rows = reader.audit(q)?;
        write_table(
            out,
            &[
                "ID",
                "TIME",
                "ACTOR",
                "OPERATION",
                "OUTCOME",
                "OBJECT",
                "CA",
                "SERIAL",
                "DETAILS",
            ],
            rows.iter().map(audit_cells).collect(),
        )?;
    }
    Ok(())
}

fn audit_cells(r: &AuditRow) -> Vec<String> {
    let object = match (&r.object_namespace, &r.object_name) {
        (Some(ns), Some(n)) => format!("{} {ns}/{n}", r.object_kind),
        (None, Some(n)) => format!("{} {n}", r.object_kind),
        _ => r.object_kind.clone(),
    };
    vec![
        r.id.to_string(),
        r.time.clone(),
        r.actor.clone(),
        r.operation.clone(),
        r.outcome.clone(),
        object,
        dash(r.ca.as_deref()),
        dash(r.serial.as_deref()),
        details_cell(&r.details),
    ]
}

/// Compact one-line details for the table (`--json` has them in full).
fn details_cell(details: &serde_json::Value) -> String {
    const MAX: usize = 80;
    let text = match details {
        serde_json::Value::Object(m) if m.is_empty() => return "-".to_owned(),
        serde_json::Value::Null => return "-".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() <= MAX {
        text
    } else {
        let mut cut: String = text.chars().take(MAX - 1).collect();
        cut.push('…');
        cut
    }
}

/// Recompute the audit chain. Prints a summary; a broken chain is returned
/// as [`CliError::ChainBroken`] (after printing) so the exit status is non-zero.
pub fn audit_verify(db: &Path, json: bool, out: &mut dyn Write) -> Result<VerifyReport, CliError> {
    let report = Reader::open(db)?.verify_audit_chain()?;
    if json {
        serde_json::to_writer(&mut *out, &report)?;
        out.write_all(b"\n")?;
    } else {
        match (&report.broken, &report.head_id, &report.head_hash) {
            (Some(b), _, _) => writeln!(
                out,
                "audit trail BROKEN at row {}: {} ({} rows checked)",
                b.id, b.problem, report.rows_checked
            )?,
            (None, Some(id), Some(hash)) => writeln!(
                out,
                "audit trail intact: {} rows, head row {id} hash {hash}",
                report.rows_checked
            )?,
            _ => writeln!(out, "audit trail intact: 0 rows")?,
        }
    }
    match &report.broken {
        Some(b) => Err(CliError::ChainBroken {
            path: db.to_owned(),
            id: b.id,
            problem: b.problem.clone(),
        }),
        None => Ok(report),
    }
}

/// List certificates matching `q`.
pub fn certs_list(
    db: &Path,
    q: &CertQuery,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let rows = Reader::open(db)?.certificates(q)?;
    if json {
        for row in &rows {
            serde_json::to_writer(&mut *out, row)?;
            out.write_all(b"\n")?;
        }
    } else {
        write_table(
            out,
            &[
                "NAMESPACE",
                "NAME",
                "CA",
                "SERIAL",
                "STATUS",
                "NOT AFTER",
                "EXPIRES",
                "SECRET",
            ],
            rows.iter().map(|r| cert_cells(r, q.now)).collect(),
        )?;
    }
    Ok(())
}

fn cert_cells(r: &CertRow, now: i64) -> Vec<String> {
    let left = r.not_after - now;
    let expires = if left >= 0 {
        format!("in {}", super::clock::format_relative(left))
    } else {
        format!("{} ago", super::clock::format_relative(-left))
    };
    vec![
        dash(Some(&r.namespace)),
        dash(Some(&r.name)),
        r.ca.clone(),
        r.serial.clone(),
        r.status.to_string(),
        format_unix(r.not_after),
        expires,
        dash(r.secret_name.as_deref()),
    ]
}

/// Create the database if needed and apply pending migrations.
pub fn db_migrate(db: &Path, out: &mut dyn Write) -> Result<Vec<AppliedMigration>, CliError> {
    let (_conn, applied) = open_rw(db, super::migrations::BUSY_TIMEOUT)?;
    if applied.is_empty() {
        writeln!(
            out,
            "{}: already at schema version {SCHEMA_VERSION}",
            db.display()
        )?;
    } else {
        for m in &applied {
            writeln!(out, "{}: applied {} ({})", db.display(), m.version, m.name)?;
        }
        writeln!(
            out,
            "{}: now at schema version {SCHEMA_VERSION}",
            db.display()
        )?;
    }
    Ok(applied)
}

fn dash(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "-".to_owned(),
    }
}

/// Write `rows` under `headers`, columns padded to their widest cell and
/// separated by two spaces. Prints only the header row when `rows` is empty.
pub fn write_table(
    out: &mut dyn Write,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["A", "BB"],
            vec![vec!["xxx".into(), "y".into()], vec!["z".into(), "w".into()]],
        )
        .ok();
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text, "A    BB\nxxx  y\nz    w\n");
    }
}
