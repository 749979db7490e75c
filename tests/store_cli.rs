//! `signet audit`, `signet audit verify`, `signet certs`, `signet db migrate`:
//! argument parsing (including the bad-input errors) and output.

mod store_common;

use clap::Parser;
use signet::store::cli::{
    AuditArgs, AuditCommand, CertsArgs, CliError, DbArgs, run_audit, run_certs, run_db,
};
use signet::store::{AuditOperation, Outcome, Store, StoreError, now_unix, now_unix_ms};
use store_common::*;

/// Stand-in for the `signet` binary's clap tree.
#[derive(Debug, Parser)]
#[command(name = "signet")]
struct Signet {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    Audit(AuditArgs),
    Certs(CertsArgs),
    Db(DbArgs),
}

fn parse(args: &[&str]) -> Result<Cmd, String> {
    Signet::try_parse_from(std::iter::once("signet").chain(args.iter().copied()))
        .map(|s| s.cmd)
        .map_err(|e| e.to_string())
}

fn run(args: &[&str]) -> Result<String, CliError> {
    let mut out = Vec::new();
    match parse(args).expect("arguments parse") {
        Cmd::Audit(a) => run_audit(&a, &mut out)?,
        Cmd::Certs(a) => run_certs(&a, &mut out)?,
        Cmd::Db(a) => run_db(&a, &mut out)?,
    }
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

#[test]
fn unknown_operation_names_the_flag_and_lists_valid_values() {
    let err = parse(&["audit", "--operation", "certificate_exploded"]).expect_err("must fail");
    assert!(err.contains("--operation"), "{err}");
    assert!(err.contains("certificate_exploded"), "{err}");
    for op in AuditOperation::ALL {
        assert!(err.contains(op.as_str()), "{err} lacks {op}");
    }
}

#[test]
fn malformed_since_names_the_flag_and_the_format() {
    for bad in ["3x", "7", "yesterday", "-1d", "1.5h"] {
        let flag = format!("--since={bad}");
        let err = parse(&["audit", &flag]).expect_err("must fail");
        assert!(err.contains("--since"), "{err}");
        assert!(err.contains("30m") && err.contains("7d"), "{err}");
    }
    let err = parse(&["certs", "--expiring-within", "soon"]).expect_err("must fail");
    assert!(err.contains("--expiring-within"), "{err}");
    let err = parse(&["certs", "--status", "zombie"]).expect_err("must fail");
    assert!(
        err.contains("--status") && err.contains("superseded"),
        "{err}"
    );
}

#[test]
fn durations_and_verify_parse() {
    match parse(&["audit", "--since", "90d", "--ca", "root", "--json"]).expect("parse") {
        Cmd::Audit(a) => {
            assert_eq!(a.since.map(|d| d.as_secs()), Some(90 * 86_400));
            assert!(a.json && a.command.is_none());
        }
        other => panic!("{other:?}"),
    }
    match parse(&["audit", "verify", "--db", "/x/y.db"]).expect("parse") {
        Cmd::Audit(a) => {
            assert!(matches!(
                a.command,
                Some(AuditCommand::Verify { anchor: None })
            ));
            assert_eq!(a.db, std::path::Path::new("/x/y.db"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_database_says_how_to_point_at_one() {
    let dir = TempDir::new("cli-missing");
    let db = dir.path().join("nope.db");
    let err = run(&["audit", "--db", db.to_str().expect("utf-8")]).expect_err("must fail");
    assert!(
        matches!(err, CliError::Store(StoreError::Missing { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("--db"), "{err}");
    assert!(!db.exists(), "a read-only command must not create the file");
}

#[tokio::test]
async fn audit_and_certs_print_tables_and_json_lines() {
    let dir = TempDir::new("cli-out");
    let db = dir.db();
    let dbs = db.to_str().expect("utf-8").to_owned();
    let now = now_unix();
    let store = Store::open(&db).expect("open");
    let mut soon = cert("team-a", "web", "0a", "root");
    soon.not_after = now + 3 * 86_400;
    let mut later = cert("team-b", "api-with-a-long-name", "0b", "issuing");
    later.not_after = now + 60 * 86_400;
    store.upsert_certificate(soon);
    store.upsert_certificate(later);
    let t = now_unix_ms();
    let mut e1 = event(1, AuditOperation::CertificateIssued, "team-a", "root");
    e1.time_ms = t;
    let mut e2 = event(2, AuditOperation::CertificateRevoked, "team-b", "issuing");
    e2.time_ms = t;
    let mut e3 = event(3, AuditOperation::PolicyDenied, "team-a", "root");
    e3.time_ms = t - 2 * 86_400_000;
    store.audit(e1);
    store.audit(e2);
    store.audit(e3.with_outcome(Outcome::Denied));
    flush(&store).await;

    // Human table: a header and one aligned line per row.
    let text = run(&["audit", "--db", &dbs]).expect("audit");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ID  TIME"), "{text}");
    let col = lines[0].find("OPERATION").expect("OPERATION column");
    for l in &lines[1..] {
        assert!(
            l[col..].starts_with("certificate_") || l[col..].starts_with("policy_denied"),
            "misaligned: {text}"
        );
    }

    // Filters.
    let text = run(&["audit", "--db", &dbs, "--since", "24h"]).expect("since");
    assert_eq!(text.lines().count(), 3, "{text}");
    let text = run(&[
        "audit",
        "--db",
        &dbs,
        "--operation",
        "certificate_revoked",
        "--json",
    ])
    .expect("op");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["operation"], "certificate_revoked");
    assert_eq!(rows[0]["object_namespace"], "team-b");
    let text = run(&[
        "audit",
        "--db",
        &dbs,
        "--ca",
        "root",
        "--namespace",
        "team-a",
        "--json",
    ])
    .expect("ca+ns");
    assert_eq!(text.lines().count(), 2, "{text}");

    // certs
    let text = run(&["certs", "--db", &dbs]).expect("certs");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .next()
            .is_some_and(|h| h.starts_with("NAMESPACE"))
    );
    let text =
        run(&["certs", "--db", &dbs, "--expiring-within", "7d", "--json"]).expect("expiring");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["name"], "web");
    assert_eq!(rows[0]["status"], "active");
    let text = run(&["certs", "--db", &dbs, "--ca", "issuing", "--json"]).expect("ca");
    assert_eq!(text.lines().count(), 1, "{text}");
    let text = run(&["certs", "--db", &dbs, "--status", "revoked"]).expect("status");
    assert_eq!(text.lines().count(), 1, "header only: {text}");

    // verify through the CLI entry point
    let text = run(&["audit", "verify", "--db", &dbs]).expect("verify");
    assert!(text.contains("intact: 3 rows"), "{text}");
    let text = run(&["audit", "verify", "--db", &dbs, "--json"]).expect("verify json");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(v["rows_checked"], 3);
}

#[test]
fn db_migrate_creates_and_is_idempotent() {
    let dir = TempDir::new("cli-migrate");
    let db = dir.path().join("sub").join("signet.db");
    let dbs = db.to_str().expect("utf-8").to_owned();
    let text = run(&["db", "migrate", "--db", &dbs]).expect("migrate");
    assert!(text.contains("applied 1 (0001_init.sql)"), "{text}");
    assert!(text.contains("now at schema version"), "{text}");
    let text = run(&["db", "migrate", "--db", &dbs]).expect("migrate again");
    assert!(text.contains("already at schema version"), "{text}");
}

#[tokio::test]
async fn cli_reads_a_database_after_the_operator_stopped() {
    let dir = TempDir::new("cli-stopped");
    let db = dir.db();
    let dbs = db.to_str().expect("utf-8").to_owned();
    {
        let store = Store::open(&db).expect("open");
        store.audit(event(1, AuditOperation::CaIssued, "default", "root"));
        flush(&store).await;
    }
    // The writer thread closes the file (and SQLite removes the WAL) once
    // the last handle is gone.
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        !dir.path().join("signet.db-wal").exists()
    }));
    let text = run(&["audit", "--db", &dbs, "--json"]).expect("audit");
    assert_eq!(text.lines().count(), 1, "{text}");
    let text = run(&["audit", "verify", "--db", &dbs]).expect("verify");
    assert!(text.contains("intact: 1 rows"), "{text}");
}
