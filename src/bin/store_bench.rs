#![forbid(unsafe_code)]
//! `signet-store-bench`: throughput benchmark of the SQLite store, and the
//! writer used by the crash-safety test.
//!
//! * `signet-store-bench bench --db PATH --issuances N` queues N issuances
//!   (one certificate upsert + one audit row each, plus a CRL and revocation
//!   every 100) and reports committed rows per second.
//! * `signet-store-bench burst --db PATH` writes until killed, printing
//!   `ack <audit id> <serial>` only after the audit row (and the certificate
//!   upsert queued before it) is committed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
use signet::store::{
    AuditEvent, AuditOperation, CertRecord, CertStatus, CrlRecord, ObjectRef, RevocationRecord,
    Store, StoreOptions, now_unix, now_unix_ms,
};

#[derive(Parser)]
#[command(about = "Benchmark and crash-test driver for the Signet SQLite store")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Measure batched audit + mirror write throughput.
    Bench {
        /// Database file (created; use a fresh path).
        #[arg(long)]
        db: PathBuf,
        /// Issuances to write (each is 2 rows).
        #[arg(long, default_value_t = 100_000)]
        issuances: u64,
        /// Most writes per transaction.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
    },
    /// Write forever, acknowledging committed rows on stdout.
    Burst {
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Concurrent writer tasks.
        #[arg(long, default_value_t = 16)]
        tasks: u64,
    },
}

fn cert(i: u64, now: i64) -> CertRecord {
    CertRecord {
        ca: format!("ca-{}", i % 4),
        namespace: format!("ns-{}", i % 50),
        name: format!("cert-{i}"),
        uid: format!("00000000-0000-4000-8000-{i:012}"),
        serial: format!("{:032x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15 + 1),
        subject: format!("CN=cert-{i}.example"),
        sans: vec![
            format!("DNS:cert-{i}.example"),
            format!("DNS:www.cert-{i}.example"),
        ],
        usages: vec!["digital signature".into(), "server auth".into()],
        status: CertStatus::Active,
        not_before: now,
        not_after: now + 90 * 86_400,
        revision: 1,
        revoked_at: None,
        revocation_reason: None,
        certificate_pem: Some(format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            "A".repeat(600)
        )),
        secret_name: Some(format!("cert-{i}-tls")),
        issued_at: now,
    }
}

fn event(c: &CertRecord) -> AuditEvent {
    AuditEvent::new(
        now_unix_ms(),
        "controller/certificate",
        AuditOperation::CertificateIssued,
        ObjectRef::namespaced("Certificate", &c.namespace, &c.name).with_uid(&c.uid),
    )
    .with_ca(&c.ca)
    .with_serial(&c.serial)
    .with_details(serde_json::json!({ "revision": 1, "dnsNames": c.sans }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::Bench {
            db,
            issuances,
            batch,
        } => bench(db, issuances, batch).await,
        Mode::Burst { db, tasks } => burst(db, tasks).await,
    }
}

async fn bench(db: PathBuf, issuances: u64, batch: usize) -> anyhow::Result<()> {
    let store = Store::open_with(
        &db,
        StoreOptions {
            batch_max: batch,
            ..StoreOptions::default()
        },
    )?;
    let now = now_unix();
    let start = Instant::now();
    let mut rows = 0u64;
    for i in 0..issuances {
        let c = cert(i, now);
        let e = event(&c);
        store.upsert_certificate(c);
        store.audit(e);
        rows += 2;
        if i % 100 == 99 {
            let ca = format!("ca-{}", i % 4);
            store.record_revocation(RevocationRecord {
                ca: ca.clone(),
                serial: cert(i - 1, now).serial,
                revoked_at: now,
                reason: Some("keyCompromise".into()),
            });
            store.record_crl(CrlRecord {
                ca,
                number: i64::try_from(i)?,
                this_update: now,
                next_update: now + 86_400,
                revoked_count: 1,
                der: vec![0x30; 512],
                published_at: now,
            });
            rows += 2;
        }
    }
    let queued = start.elapsed();
    store.flush().await?;
    let elapsed = start.elapsed();
    let stats = store.stats();
    anyhow::ensure!(
        stats.rejected_total == 0,
        "{} writes were rejected",
        stats.rejected_total
    );
    let report = store.verify_audit_chain().await?;
    anyhow::ensure!(
        report.is_intact(),
        "audit chain broken: {:?}",
        report.broken
    );
    println!(
        "issuances={issuances} rows={rows} batch_max={batch} enqueue={:.3}s total={:.3}s rows_per_sec={:.0}",
        queued.as_secs_f64(),
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

async fn burst(db: PathBuf, tasks: u64) -> anyhow::Result<()> {
    let store = Store::open(&db)?;
    let now = now_unix();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        set.spawn(burst_task(store.clone(), t, tasks, now));
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

async fn burst_task(store: Store, first: u64, step: u64, now: i64) -> anyhow::Result<()> {
    let mut i = first;
    loop {
        let c = cert(i, now);
        let serial = signet::store::normalize_serial(&c.serial);
        let e = event(&c);
        store.upsert_certificate(c);
        let id = store.audit_committed(e).await?;
        // One write per line, after the commit: a kill can cut a line short
        // but never print an unacknowledged row.
        let line = format!("ack {id} {serial}\n");
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.flush()?;
        i += step;
    }
}
