//! Store integration tests: migrations, mirror semantics, the audit chain,
//! and failure behaviour (corrupt file, newer schema, unwritable volume).

mod store_common;

use std::process::Command;
use std::time::Duration;

use rusqlite::Connection;
use signet::store::migrations::{SCHEMA_VERSION, migrate, migrate_to, schema_version};
use signet::store::{
    AuditOperation, AuditQuery, CaRecord, CaStatus, CertQuery, CertStatus, CrlRecord, Outcome,
    Reader, RebuildSummary, RevocationRecord, Store, StoreError, StoreHealth,
};
use store_common::*;

fn tables(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table','index','trigger') ORDER BY name")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn migrations_apply_to_an_empty_database_and_are_idempotent() {
    let dir = TempDir::new("migrate");
    let path = dir.db();
    let mut conn = Connection::open(&path).expect("open");
    let applied = migrate(&mut conn, &path).expect("migrate");
    assert_eq!(applied.len() as i64, SCHEMA_VERSION);
    assert_eq!(schema_version(&conn).expect("version"), SCHEMA_VERSION);
    let user_version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(user_version, SCHEMA_VERSION);
    let names = tables(&conn);
    for want in [
        "certificate_authorities",
        "certificates",
        "crls",
        "audit_log",
        "mirror_state",
        "schema_migrations",
        "audit_log_no_update",
        "audit_log_no_delete",
        "certificates_by_not_after",
        "certificates_by_object",
        "audit_log_by_time",
        "audit_log_by_operation",
        "audit_log_by_ca",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let before = tables(&conn);
    assert!(
        migrate(&mut conn, &path)
            .expect("second migrate")
            .is_empty()
    );
    assert_eq!(tables(&conn), before);
    drop(conn);

    // Opening through the store is idempotent too, and sets WAL.
    let store = Store::open(&path).expect("store open");
    drop(store);
    let conn = Connection::open(&path).expect("reopen");
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_database_from_the_first_migration_upgrades_cleanly() {
    let dir = TempDir::new("upgrade");
    let path = dir.db();
    {
        let mut conn = Connection::open(&path).expect("open");
        migrate_to(&mut conn, &path, 1).expect("migrate to 1");
        assert_eq!(schema_version(&conn).expect("version"), 1);
        // Data written by a version-1 binary.
        conn.execute_batch(
            "INSERT INTO certificate_authorities (name, status, created_at, updated_at)
                  VALUES ('root', 'active', 1, 1);
             INSERT INTO certificates (ca_id, namespace, name, serial, subject, status,
                                       not_before, not_after, issued_at, updated_at)
                  VALUES (1, 'default', 'web', 'ab01', 'CN=web', 'active', 1, 4102444800, 1, 1);",
        )
        .expect("v1 data");
    }
    let store = Store::open(&path).expect("open upgrades");
    store.upsert_certificate(cert("default", "api", "cd02", "root"));
    flush(&store).await;
    let rows = store
        .list_certificates(CertQuery {
            now: NOW,
            ..CertQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(rows.len(), 2);
    let web = rows.iter().find(|r| r.name == "web").expect("v1 row kept");
    assert_eq!(web.secret_name, None);
    let api = rows.iter().find(|r| r.name == "api").expect("new row");
    assert_eq!(api.secret_name.as_deref(), Some("api-tls"));
    let conn = Connection::open(&path).expect("reopen");
    assert_eq!(schema_version(&conn).expect("version"), SCHEMA_VERSION);
}

#[test]
fn a_database_from_a_newer_signet_is_refused() {
    let dir = TempDir::new("newer");
    let path = dir.db();
    {
        let mut conn = Connection::open(&path).expect("open");
        migrate(&mut conn, &path).expect("migrate");
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', 0)",
            [],
        )
        .expect("future migration");
    }
    let err = Store::open(&path).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("schema version 99"), "{msg}");
    assert!(msg.contains(&format!("up to {SCHEMA_VERSION}")), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_corrupt_database_file_is_refused_with_the_recovery_command() {
    let dir = TempDir::new("corrupt");
    let path = dir.db();
    std::fs::write(
        &path,
        b"this is definitely not an SQLite database file, just some text.\n".repeat(64),
    )
    .expect("write junk");
    let err = Store::open(&path).expect_err("must refuse");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("move it aside and restart"), "{msg}");
    assert!(
        msg.contains("rebuilds the mirror from the cluster"),
        "{msg}"
    );
    // The CLI's read path says the same.
    let err = Reader::open(&path).expect_err("reader must refuse");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    // A real database with a smashed page is caught by the integrity check.
    let path2 = dir.path().join("smashed.db");
    {
        let store_conn = Connection::open(&path2).expect("open");
        store_conn
            .execute_batch(
                "PRAGMA page_size = 4096; CREATE TABLE t (x TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO t SELECT printf('%0200d', i) FROM n;
                 CREATE INDEX t_x ON t (x);",
            )
            .expect("fill");
    }
    let mut bytes = std::fs::read(&path2).expect("read");
    assert!(bytes.len() > 8 * 4096);
    for b in &mut bytes[4 * 4096..6 * 4096] {
        *b = 0x5a;
    }
    std::fs::write(&path2, &bytes).expect("smash");
    let err = Store::open(&path2).expect_err("must refuse a smashed file");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[tokio::test]
async fn mirror_upserts_are_idempotent_and_track_lifecycle() {
    init_logs();
    let dir = TempDir::new("mirror");
    let store = Store::open(&dir.db()).expect("open");
    assert!(store.is_empty_mirror().await.expect("empty?"));
    assert!(store.needs_rebuild());

    store.upsert_ca(CaRecord {
        name: "root".into(),
        kms_key_arn: Some("arn:aws:kms:eu-west-1:111122223333:key/abc".into()),
        key_spec: Some("ECC_NIST_P256".into()),
        subject: Some("CN=Root".into()),
        serial: Some("01".into()),
        status: Some(CaStatus::Active),
        not_after: Some(NOW + 3650 * 86_400),
        updated_at: NOW,
        ..CaRecord::default()
    });
    let first = cert("default", "web", "0A:0B", "root");
    store.upsert_certificate(first.clone());
    store.upsert_certificate(first.clone()); // idempotent
    // Renewal: a newer active certificate supersedes the old one.
    let mut renewed = cert("default", "web", "0c0d", "root");
    renewed.issued_at = NOW;
    renewed.revision = 2;
    store.upsert_certificate(renewed.clone());
    // Partial CA update keeps unspecified fields.
    store.upsert_ca(CaRecord {
        name: "root".into(),
        status: Some(CaStatus::Active),
        updated_at: NOW + 1,
        ..CaRecord::default()
    });
    store.record_revocation(RevocationRecord {
        ca: "root".into(),
        serial: "0a0b".into(),
        revoked_at: NOW + 10,
        reason: Some("superseded".into()),
    });
    // A stale upsert never un-revokes.
    store.upsert_certificate(first.clone());
    // Revocation of a certificate the mirror never saw is kept.
    store.record_revocation(RevocationRecord {
        ca: "root".into(),
        serial: "ff".into(),
        revoked_at: NOW + 20,
        reason: Some("keyCompromise".into()),
    });
    for n in [1, 2, 2] {
        store.record_crl(CrlRecord {
            ca: "root".into(),
            number: n,
            this_update: NOW,
            next_update: NOW + 86_400,
            revoked_count: n,
            der: vec![0x30, 0x03, 0x02, 0x01, n as u8],
            published_at: NOW,
        });
    }
    // A certificate of a CA that is not mirrored yet gets a placeholder CA.
    store.upsert_certificate(cert("team", "db", "11", "intermediate"));
    flush(&store).await;
    assert_eq!(store.stats().rejected_total, 0);
    assert_eq!(store.stats().queued, 0);
    assert!(!store.is_empty_mirror().await.expect("empty?"));
    assert!(
        !Store::open(&dir.db()).expect("reopen").needs_rebuild(),
        "a populated mirror needs no rebuild"
    );

    let all = store
        .list_certificates(CertQuery {
            now: NOW,
            ..CertQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 4, "{all:#?}");
    let by_serial = |s: &str| all.iter().find(|r| r.serial == s).expect(s).clone();
    assert_eq!(by_serial("0a0b").status, CertStatus::Revoked);
    assert_eq!(by_serial("0a0b").revoked_at, Some(NOW + 10));
    assert_eq!(by_serial("0c0d").status, CertStatus::Active);
    assert_eq!(by_serial("0c0d").revision, 2);
    assert_eq!(by_serial("ff").status, CertStatus::Revoked);

    let revoked = store.revoked_serials("root").await.expect("revoked");
    let serials: Vec<_> = revoked.iter().map(|r| r.serial.as_str()).collect();
    assert_eq!(serials, ["0a0b", "ff"]);
    assert_eq!(revoked[1].reason.as_deref(), Some("keyCompromise"));
    assert_eq!(store.latest_crl_number("root").await.expect("crl"), Some(2));
    assert_eq!(store.latest_crl_number("nope").await.expect("crl"), None);
    let crl = store.latest_crl("root").await.expect("crl").expect("some");
    assert_eq!(crl.der, vec![0x30, 0x03, 0x02, 0x01, 2]);

    let cas = store.list_cas().await.expect("cas");
    assert_eq!(cas.len(), 2);
    let root = cas.iter().find(|c| c.name == "root").expect("root");
    assert_eq!(root.key_spec.as_deref(), Some("ECC_NIST_P256"));
    assert_eq!(root.serial.as_deref(), Some("01"));
    let inter = cas
        .iter()
        .find(|c| c.name == "intermediate")
        .expect("placeholder");
    assert_eq!(inter.status, CaStatus::Pending);

    // Filters.
    let q = |f: fn(&mut CertQuery)| {
        let mut q = CertQuery {
            now: NOW,
            ..CertQuery::default()
        };
        f(&mut q);
        q
    };
    let team = store
        .list_certificates(q(|q| q.namespace = Some("team".into())))
        .await
        .expect("ns");
    assert_eq!(team.len(), 1);
    let active_root = store
        .list_certificates(q(|q| {
            q.ca = Some("root".into());
            q.status = Some(CertStatus::Active);
        }))
        .await
        .expect("status");
    assert_eq!(active_root.len(), 1);
    // Effective status: an active certificate past notAfter reads as expired.
    let later = store
        .list_certificates(CertQuery {
            now: NOW + 31 * 86_400,
            status: Some(CertStatus::Expired),
            ..CertQuery::default()
        })
        .await
        .expect("expired");
    assert_eq!(later.len(), 2);
}

#[tokio::test]
async fn rebuild_is_recorded() {
    let dir = TempDir::new("rebuild");
    let store = Store::open(&dir.db()).expect("open");
    store.upsert_certificate(cert("a", "b", "1", "root"));
    store.record_rebuild(RebuildSummary {
        time_ms: NOW * 1000,
        actor: "controller/startup".into(),
        reason: "empty database".into(),
        cas: 1,
        certificates: 1,
        crls: 0,
    });
    flush(&store).await;
    let rows = store
        .audit_rows(AuditQuery {
            operation: Some(AuditOperation::MirrorRebuilt),
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].details["certificates"], 1);
    let reader = Reader::open(&dir.db()).expect("reader");
    let state = reader
        .mirror_state("last_rebuild")
        .expect("state")
        .expect("set");
    assert!(state.contains("empty database"));
}

#[tokio::test]
async fn audit_rows_are_append_only() {
    let dir = TempDir::new("append");
    let store = Store::open(&dir.db()).expect("open");
    for i in 0..3 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    flush(&store).await;
    let conn = Connection::open(dir.db()).expect("open");
    let upd = conn
        .execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", [])
        .expect_err("update must fail");
    assert!(upd.to_string().contains("append-only"), "{upd}");
    let del = conn
        .execute("DELETE FROM audit_log WHERE id = 2", [])
        .expect_err("delete must fail");
    assert!(del.to_string().contains("append-only"), "{del}");
}

fn sqlite3(db: &std::path::Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the sqlite3 CLI ({e}); this test needs it: apt-get install sqlite3")
        });
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn audit_verify_passes_on_an_honest_log_and_pinpoints_an_edited_row() {
    let dir = TempDir::new("verify");
    let path = dir.db();
    let store = Store::open(&path).expect("open");
    for i in 0..20 {
        let op = if i % 5 == 4 {
            AuditOperation::CertificateRevoked
        } else {
            AuditOperation::CertificateIssued
        };
        let mut e = event(i, op, "default", "root");
        if i == 13 {
            e = e.with_outcome(Outcome::Failure);
        }
        store.audit(e);
    }
    flush(&store).await;
    let report = store.verify_audit_chain().await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 20);
    assert_eq!(report.head_id, Some(20));

    let mut out = Vec::new();
    signet::store::cli::audit_verify(&path, false, &mut out).expect("honest log verifies");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("intact: 20 rows"), "{text}");

    // Tamper with row 7 using the sqlite3 shell, as an attacker with file access would.
    sqlite3(
        &path,
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor = 'mallory' WHERE id = 7;",
    );
    let mut out = Vec::new();
    let err = signet::store::cli::audit_verify(&path, false, &mut out).expect_err("must fail");
    match &err {
        signet::store::cli::CliError::ChainBroken { id, .. } => assert_eq!(*id, 7),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("broken at row 7"), "{err}");
    assert!(String::from_utf8_lossy(&out).contains("BROKEN at row 7"));

    // New rows still append after tampering; the break stays pinpointed.
    store.audit(event(99, AuditOperation::CrlPublished, "default", "root"));
    flush(&store).await;
    let report = store.verify_audit_chain().await.expect("verify");
    assert_eq!(report.broken.map(|b| b.id), Some(7));
}

#[tokio::test]
async fn audit_verify_pinpoints_a_deleted_row() {
    let dir = TempDir::new("verify-del");
    let path = dir.db();
    let store = Store::open(&path).expect("open");
    for i in 0..10 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    flush(&store).await;
    sqlite3(
        &path,
        "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id = 4;",
    );
    let report = store.verify_audit_chain().await.expect("verify");
    let broken = report.broken.expect("broken");
    assert_eq!(broken.id, 5);
    assert!(broken.problem.contains("deleted"), "{}", broken.problem);
}

#[tokio::test]
async fn audit_queries_filter() {
    let dir = TempDir::new("audit-q");
    let store = Store::open(&dir.db()).expect("open");
    store.audit(event(
        1,
        AuditOperation::CertificateIssued,
        "team-a",
        "root",
    ));
    store.audit(event(
        2,
        AuditOperation::CertificateRevoked,
        "team-a",
        "root",
    ));
    store.audit(event(
        3,
        AuditOperation::CertificateIssued,
        "team-b",
        "other",
    ));
    let mut old = event(4, AuditOperation::PolicyDenied, "team-b", "root");
    old.time_ms -= 86_400_000;
    store.audit(old.with_outcome(Outcome::Denied));
    flush(&store).await;
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    let count = |rows: Vec<signet::store::AuditRow>| rows.len();
    assert_eq!(count(store.audit_rows(q(|_| {})).await.expect("all")), 4);
    assert_eq!(
        count(
            store
                .audit_rows(q(|q| q.namespace = Some("team-a".into())))
                .await
                .expect("ns")
        ),
        2
    );
    assert_eq!(
        count(
            store
                .audit_rows(q(|q| q.ca = Some("root".into())))
                .await
                .expect("ca")
        ),
        3
    );
    assert_eq!(
        count(
            store
                .audit_rows(q(|q| q.operation = Some(AuditOperation::CertificateIssued)))
                .await
                .expect("op")
        ),
        2
    );
    assert_eq!(
        count(
            store
                .audit_rows(q(|q| q.since_ms = Some(NOW * 1000 - 3_600_000)))
                .await
                .expect("since")
        ),
        3
    );
    let last = store
        .audit_rows(q(|q| q.limit = Some(2)))
        .await
        .expect("limit");
    assert_eq!(last.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 4]);
}

#[tokio::test]
async fn readers_never_block_the_writer() {
    let dir = TempDir::new("readers");
    let store = Store::open(&dir.db()).expect("open");
    store.audit(event(0, AuditOperation::CaIssued, "default", "root"));
    flush(&store).await;
    // Hold a read transaction open (a long `signet audit` on a big log).
    let reader = Reader::open(&dir.db()).expect("reader");
    reader
        .connection()
        .execute_batch("BEGIN; SELECT COUNT(*) FROM audit_log;")
        .expect("begin read");
    for i in 1..200 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    tokio::time::timeout(Duration::from_secs(5), store.flush())
        .await
        .expect("writer blocked by a reader")
        .expect("flush");
    // The open snapshot still sees the old state.
    let n: i64 = reader
        .connection()
        .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
    reader.connection().execute_batch("COMMIT").expect("end");
    assert_eq!(reader.counts().expect("counts").audit_rows, 200);
}

#[tokio::test]
async fn audit_committed_returns_consecutive_ids() {
    let dir = TempDir::new("ack");
    let store = Store::open(&dir.db()).expect("open");
    let a = store
        .audit_committed(event(0, AuditOperation::KmsKeyCreated, "default", "root"))
        .await
        .expect("ack");
    let b = store
        .audit_committed(event(1, AuditOperation::KmsKeyAdopted, "default", "root"))
        .await
        .expect("ack");
    assert_eq!((a, b), (1, 2));
}

/// The volume is missing at start (the database's parent is a regular file,
/// which fails for root too): the store starts Degraded, keeps every write in
/// memory, and catches up once the directory appears.
#[tokio::test]
async fn unwritable_path_at_start_degrades_then_catches_up() {
    let dir = TempDir::new("degraded-start");
    let vol = dir.path().join("vol");
    std::fs::write(&vol, b"not a directory").expect("blocker");
    let path = vol.join("signet.db");
    let store = Store::open_with(&path, fast_retry()).expect("open must not fail");
    match store.health() {
        StoreHealth::Degraded { reason } => {
            assert!(reason.contains(&path.display().to_string()), "{reason}")
        }
        StoreHealth::Ok => panic!("expected Degraded"),
    }
    for i in 0..50 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
        store.upsert_certificate(cert(
            "default",
            &format!("c{i}"),
            &format!("{:x}", i + 1),
            "root",
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!store.health().is_ok());
    assert_eq!(store.stats().queued, 100);
    assert!(store.stats().write_failures_total >= 1);
    assert!(
        store.is_empty_mirror().await.is_err(),
        "reads fail while unavailable"
    );

    assert!(!store.needs_rebuild(), "nothing opened yet");
    std::fs::remove_file(&vol).expect("remove blocker");
    std::fs::create_dir(&vol).expect("mount the volume");
    flush(&store).await;
    assert_eq!(store.health(), StoreHealth::Ok);
    assert!(
        store.needs_rebuild(),
        "a fresh database appeared: rebuild the mirror"
    );
    assert_eq!(store.stats().queued, 0);
    let reader = Reader::open(&path).expect("reader");
    let counts = reader.counts().expect("counts");
    assert_eq!((counts.audit_rows, counts.certificates), (50, 50));
    assert!(reader.verify_audit_chain().expect("verify").is_intact());
}

/// Another process holds the write lock (say, a `sqlite3` shell left in a
/// transaction): commits fail with SQLITE_BUSY after the busy timeout, the
/// store turns Degraded and keeps everything queued, then catches up.
#[tokio::test]
async fn write_lock_held_elsewhere_degrades_then_catches_up() {
    let dir = TempDir::new("degraded-lock");
    let path = dir.db();
    let mut opts = fast_retry();
    opts.busy_timeout = Duration::from_millis(50);
    let store = Store::open_with(&path, opts).expect("open");
    for i in 0..10 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    flush(&store).await;

    let other = Connection::open(&path).expect("second connection");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    for i in 10..30 {
        store.audit(event(
            i,
            AuditOperation::CertificateRenewed,
            "default",
            "root",
        ));
        store.upsert_certificate(cert(
            "default",
            &format!("c{i}"),
            &format!("{:x}", i + 1),
            "root",
        ));
    }
    assert!(
        wait_until(Duration::from_secs(10), || !store.health().is_ok()),
        "store never reported the failing writes"
    );
    match store.health() {
        StoreHealth::Degraded { reason } => assert!(reason.contains("locked"), "{reason}"),
        StoreHealth::Ok => unreachable!(),
    }
    assert_eq!(store.stats().queued, 40);
    // Readers still work while the writer is stuck.
    assert_eq!(
        Reader::open(&path)
            .expect("reader")
            .counts()
            .expect("counts")
            .audit_rows,
        10
    );

    other.execute_batch("ROLLBACK").expect("release");
    flush(&store).await;
    assert_eq!(store.health(), StoreHealth::Ok);
    let reader = Reader::open(&path).expect("reader");
    let counts = reader.counts().expect("counts");
    assert_eq!((counts.audit_rows, counts.certificates), (30, 20));
    assert!(reader.verify_audit_chain().expect("verify").is_intact());
}

/// The volume goes away while running: its directory is moved and a regular
/// file put in its place (fails for root too). SQLite alone would keep
/// writing to the moved file; the writer notices the path no longer leads to
/// the file it has open, turns Degraded, keeps every write queued, and
/// catches up into the same file once the directory is back.
#[tokio::test]
async fn volume_lost_while_running_degrades_then_catches_up() {
    let dir = TempDir::new("degraded-run");
    let vol = dir.path().join("vol");
    let moved = dir.path().join("vol.moved");
    let path = vol.join("signet.db");
    let store = Store::open_with(&path, fast_retry()).expect("open");
    for i in 0..10 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    flush(&store).await;
    assert!(store.health().is_ok());

    std::fs::rename(&vol, &moved).expect("unmount");
    std::fs::write(&vol, b"not a directory").expect("blocker");
    for i in 10..30 {
        store.audit(event(
            i,
            AuditOperation::CertificateRenewed,
            "default",
            "root",
        ));
        store.upsert_certificate(cert(
            "default",
            &format!("c{i}"),
            &format!("{:x}", i + 1),
            "root",
        ));
    }
    assert!(
        wait_until(Duration::from_secs(10), || !store.health().is_ok()),
        "store never noticed the volume was gone"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.stats().queued, 40);
    let moved_db = moved.join("signet.db");
    assert_eq!(
        Reader::open(&moved_db)
            .expect("reader")
            .counts()
            .expect("counts")
            .audit_rows,
        10,
        "nothing may be written to the moved-away file"
    );

    std::fs::remove_file(&vol).expect("remove blocker");
    std::fs::rename(&moved, &vol).expect("remount");
    flush(&store).await;
    assert_eq!(store.health(), StoreHealth::Ok);
    let reader = Reader::open(&path).expect("reader");
    let counts = reader.counts().expect("counts");
    assert_eq!((counts.audit_rows, counts.certificates), (30, 20));
    assert!(reader.verify_audit_chain().expect("verify").is_intact());
}

/// The database file is deleted under a running operator: later writes go to
/// a fresh file at the same path (not into the unlinked one, where they would
/// vanish), with a fresh, valid chain.
#[tokio::test]
async fn deleted_database_file_is_recreated_not_written_into_the_void() {
    let dir = TempDir::new("deleted");
    let path = dir.db();
    let store = Store::open_with(&path, fast_retry()).expect("open");
    for i in 0..5 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    flush(&store).await;
    store.upsert_certificate(cert("default", "web", "1", "root"));
    flush(&store).await;
    assert!(!store.is_empty_mirror().await.expect("read")); // pools a reader
    store.record_rebuild(RebuildSummary::default());
    flush(&store).await;
    assert!(!store.needs_rebuild());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    for i in 5..8 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    flush(&store).await;
    assert!(store.health().is_ok());
    let reader = Reader::open(&path).expect("a new file exists");
    assert_eq!(reader.counts().expect("counts").audit_rows, 3);
    let report = reader.verify_audit_chain().expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert!(
        store.is_empty_mirror().await.expect("empty"),
        "the operator should rebuild"
    );
    assert!(
        store.needs_rebuild(),
        "the writer noticed it opened an empty mirror"
    );
    store.record_rebuild(RebuildSummary::default());
    assert!(!store.needs_rebuild());
}

/// A record the database refuses (here: a trigger standing in for a
/// constraint) is rejected alone; the rest of its batch commits and the
/// store stays healthy.
#[tokio::test]
async fn a_rejected_record_does_not_sink_its_batch() {
    let dir = TempDir::new("reject");
    let path = dir.db();
    drop(Store::open(&path).expect("create"));
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TRIGGER reject_bad_cert BEFORE INSERT ON certificates
               WHEN NEW.name = 'bad' BEGIN SELECT RAISE(ABORT, 'bad certificate'); END;
             CREATE TRIGGER reject_bad_actor BEFORE INSERT ON audit_log
               WHEN NEW.actor = 'bad' BEGIN SELECT RAISE(ABORT, 'bad actor'); END;",
        )
        .expect("triggers");
    }
    let store = Store::open(&path).expect("open");
    store.audit(event(
        1,
        AuditOperation::CertificateIssued,
        "default",
        "root",
    ));
    store.upsert_certificate(cert("default", "good1", "1", "root"));
    store.upsert_certificate(cert("default", "bad", "2", "root"));
    let mut bad = event(2, AuditOperation::CertificateIssued, "default", "root");
    bad.actor = "bad".into();
    let bad_ack = store.audit_committed(bad);
    store.upsert_certificate(cert("default", "good2", "3", "root"));
    store.audit(event(
        3,
        AuditOperation::CertificateIssued,
        "default",
        "root",
    ));
    let err = bad_ack.await.expect_err("rejected");
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("bad actor"), "{err}");
    flush(&store).await;
    assert!(store.health().is_ok());
    assert_eq!(store.stats().rejected_total, 2);
    let reader = Reader::open(&path).expect("reader");
    let counts = reader.counts().expect("counts");
    assert_eq!((counts.audit_rows, counts.certificates), (2, 2));
    assert!(reader.verify_audit_chain().expect("verify").is_intact());
}

#[tokio::test]
async fn store_fence_closed_commits_nothing_keeps_it_queued_and_catches_up_when_open() {
    let dir = TempDir::new("fence");
    let fence = signet::fence::Fence::leased();
    let store = Store::open_with(
        &dir.db(),
        signet::store::StoreOptions {
            fence: fence.clone(),
            ..fast_retry()
        },
    )
    .expect("open");
    store.audit(event(1, AuditOperation::CertificateIssued, "ns", "root"));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), store.flush())
            .await
            .is_err(),
        "a closed fence must hold the write back"
    );
    let reader = Reader::open(&dir.db()).expect("reader");
    assert!(
        reader
            .audit(&AuditQuery::default())
            .expect("audit")
            .is_empty()
    );
    match store.health() {
        StoreHealth::Degraded { reason } => {
            assert!(reason.contains("leader lease"), "{reason}")
        }
        StoreHealth::Ok => panic!("a fenced store must report itself degraded"),
    }
    assert_eq!(
        store.stats().queued,
        1,
        "the write stays queued, not dropped"
    );

    fence.extend_until(std::time::Instant::now() + Duration::from_secs(60));
    tokio::time::timeout(Duration::from_secs(5), store.flush())
        .await
        .expect("flush once the fence is open")
        .expect("flush");
    assert_eq!(
        reader.audit(&AuditQuery::default()).expect("audit").len(),
        1
    );
    assert!(store.health().is_ok());
}
