//! High availability against the real API server and local-kms: two
//! `signet run` processes with leader election on one database file.
//!
//! * a standby neither opens the database nor signs, and is ready;
//! * the leader SIGKILLed: the standby takes over within the lease;
//! * the leader SIGSTOPped past its lease: the standby takes over, and the
//!   old leader, resumed, stops without one more KMS `Sign`;
//! * SIGTERM: in-flight signings finish, the audit queue is flushed, the
//!   Lease is released, exit 0 — every `Sign` has its Secret and audit row.
//!
//! Each operator reaches KMS through a counting proxy, so the `Sign` calls
//! of each process are counted at the wire. Scenarios run one at a time:
//! operators reconcile every namespace of the shared API server.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use signet::api::Certificate;
use signet::store::{AuditOperation, AuditQuery, Reader};

/// Lease duration the tests run with (seconds).
const LEASE: u64 = 6;
/// Certificates in the SIGTERM test's burst.
const BURST: usize = 150;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One `signet run --leader-election` with its own KMS proxy.
struct Replica {
    op: Operator,
    kms: SignProxy,
    name: String,
}

/// A failed assertion must not leave a leader running that would reconcile
/// the next scenario's objects.
impl Drop for Replica {
    fn drop(&mut self) {
        self.op.kill();
    }
}

fn replica(ns: &str, db: &Path, name: &str) -> Replica {
    let env = signet_testenv::env();
    let kms = SignProxy::start(&env.kms.endpoint);
    let lease = LEASE.to_string();
    let op = Operator::start_with(
        env,
        ns,
        db,
        &kms.endpoint,
        &[
            ("SIGNET_LEADER_ELECTION", "true"),
            ("SIGNET_LEASE_DURATION", &lease),
            ("POD_NAME", name),
        ],
    );
    Replica {
        op,
        kms,
        name: name.to_string(),
    }
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("signet-leader")
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// Waits until `name` holds the Lease; returns how long that took.
async fn wait_holder(client: &kube::Client, ns: &str, name: &str, logs: &[&Replica]) -> Duration {
    let start = Instant::now();
    loop {
        if holder(client, ns).await.as_deref() == Some(name) {
            return start.elapsed();
        }
        let tails: Vec<String> = logs
            .iter()
            .map(|r| format!("--- {}:\n{}", r.name, r.op.log_tail()))
            .collect();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} did not get the Lease within 60 s (holder {:?}):\n{}",
            holder(client, ns).await,
            tails.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether process `pid` has `db` (or its -wal/-shm) open.
fn has_open(pid: u32, db: &Path) -> bool {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|t| t.to_string_lossy().starts_with(&*db.to_string_lossy()))
            .unwrap_or(false)
    })
}

/// Waits until every Certificate in `ns` is Ready; returns them.
async fn all_ready(
    client: &kube::Client,
    ns: &str,
    n: usize,
    logs: &[&Replica],
) -> Vec<Certificate> {
    let tails = || {
        logs.iter()
            .map(|r| format!("--- {}:\n{}", r.name, r.op.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    all_certificates_ready(client, ns, n, Duration::from_secs(120), tails).await
}

/// Exactly one issuance audit row per Certificate, and its serial is the
/// one in the Secret and in status; the chain verifies.
async fn one_serial_per_revision(
    client: &kube::Client,
    ns: &str,
    certs: &[Certificate],
    db: &Path,
) {
    let reader = Reader::open(db).unwrap();
    let rows = reader
        .audit(&AuditQuery {
            namespace: Some(ns.into()),
            operation: Some(AuditOperation::CertificateIssued),
            ..Default::default()
        })
        .unwrap();
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        by_name
            .entry(r.object_name.unwrap_or_default())
            .or_default()
            .push(r.serial.unwrap_or_default());
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for c in certs {
        let name = c.metadata.name.clone().unwrap();
        let status_serial = c.status.clone().unwrap().serial_number.unwrap();
        let audited = by_name.get(&name).cloned().unwrap_or_default();
        assert_eq!(
            audited.len(),
            1,
            "{ns}/{name}: expected exactly one issuance audit row, got serials {audited:?}"
        );
        let secret = secrets.get(&format!("{name}-tls")).await.unwrap();
        let in_secret = secret
            .metadata
            .annotations
            .unwrap_or_default()
            .get("signet.dev/serial")
            .cloned()
            .unwrap_or_default();
        let norm = |s: &str| s.replace(':', "").to_ascii_lowercase();
        assert_eq!(norm(&audited[0]), norm(&status_serial), "{ns}/{name}");
        assert_eq!(norm(&in_secret), norm(&status_serial), "{ns}/{name}");
    }
    let report = reader.verify_audit_chain().unwrap();
    assert!(report.is_intact(), "audit chain broken: {report:?}");
}

fn run_dir(name: &str) -> PathBuf {
    let dir = signet_testenv::run_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn wait_exit(r: &Replica, within: Duration) -> Option<i32> {
    let start = Instant::now();
    while signet_testenv::is_running(r.op.pid) {
        assert!(
            start.elapsed() < within,
            "{} still running {within:?} after it should have stopped:\n{}",
            r.name,
            r.op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signet_testenv::exit_code(r.op.pid)
}

#[tokio::test]
async fn ha_standby_never_opens_the_database_and_takes_over_within_the_lease_when_the_leader_is_killed()
 {
    let _one = SERIAL.lock().await;
    let env = signet_testenv::env();
    let client = env.client().await;
    let ops_ns = "signet-ha-kill";
    env.kubectl_ok(&["create", "namespace", ops_ns]).unwrap();
    let db = run_dir("ha-kill").join("signet.db");
    let a = replica(ops_ns, &db, "ha-kill-a");
    wait_holder(&client, ops_ns, "ha-kill-a", &[&a]).await;
    let b = replica(ops_ns, &db, "ha-kill-b");
    let (code, body) = b.op.http_get("/readyz").unwrap();
    assert_eq!(
        (code, String::from_utf8_lossy(&body).trim()),
        (200, "standby: waiting for the leader lease")
    );
    assert!(has_open(a.op.pid, &db), "the leader has the database open");

    let ns = env.namespace("ha-kill").await;
    apply(env, &root_ca("ha-kill-root", "")).unwrap();
    apply(env, &certificates(ns.name(), "k", 0..10, "ha-kill-root")).unwrap();
    all_ready(&client, ns.name(), 10, &[&a, &b]).await;
    assert!(
        !has_open(b.op.pid, &db),
        "a standby must not open the database"
    );
    assert_eq!(b.kms.signs(), 0, "a standby must not sign");

    a.op.kill();
    let took = wait_holder(&client, ops_ns, "ha-kill-b", &[&b]).await;
    // Takeover: one lease duration of silence by B's clock, plus up to two
    // retry periods and the API round trips.
    assert!(
        took <= Duration::from_secs(LEASE * 2 + 2),
        "standby took {took:?} to take over a {LEASE} s lease"
    );
    apply(env, &certificates(ns.name(), "k", 10..15, "ha-kill-root")).unwrap();
    let certs = all_ready(&client, ns.name(), 15, &[&b]).await;
    assert!(
        b.kms.signs() >= 5,
        "the new leader signed the new Certificates"
    );
    assert!(
        has_open(b.op.pid, &db),
        "the new leader opened the database"
    );
    b.op.kill();
    one_serial_per_revision(&client, ns.name(), &certs, &db).await;
}

#[tokio::test]
async fn ha_paused_leader_resumed_after_its_lease_expired_stops_without_signing_again() {
    let _one = SERIAL.lock().await;
    let env = signet_testenv::env();
    let client = env.client().await;
    let ops_ns = "signet-ha-pause";
    env.kubectl_ok(&["create", "namespace", ops_ns]).unwrap();
    let db = run_dir("ha-pause").join("signet.db");
    let a = replica(ops_ns, &db, "ha-pause-a");
    wait_holder(&client, ops_ns, "ha-pause-a", &[&a]).await;
    let b = replica(ops_ns, &db, "ha-pause-b");

    let ns = env.namespace("ha-pause").await;
    apply(env, &root_ca("ha-pause-root", "")).unwrap();
    apply(env, &certificates(ns.name(), "p", 0..5, "ha-pause-root")).unwrap();
    all_ready(&client, ns.name(), 5, &[&a, &b]).await;

    // A burst, and the leader frozen in the middle of it: reconciles that
    // were past their checks when it stopped resume after its lease ran out.
    apply(env, &certificates(ns.name(), "p", 5..45, "ha-pause-root")).unwrap();
    let signs_before = a.kms.signs();
    let start = Instant::now();
    while a.kms.signs() < signs_before + 3 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signet_testenv::signal(a.op.pid, "STOP");
    let took = wait_holder(&client, ops_ns, "ha-pause-b", &[&b]).await;
    assert!(
        took <= Duration::from_secs(LEASE * 2 + 2),
        "standby took {took:?} to take over from a paused leader"
    );

    // Resume the old leader past its lease: it must not sign again. (Not
    // later: had it frozen inside a database transaction, the new leader's
    // commits would wait for that lock until it runs again.)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frozen_at = a.kms.signs();
    signet_testenv::signal(a.op.pid, "CONT");
    let code = wait_exit(&a, Duration::from_secs(30)).await;
    assert_ne!(
        code,
        Some(0),
        "a replica that lost its lease exits non-zero (to restart as a standby)"
    );
    assert_eq!(
        a.kms.signs(),
        frozen_at,
        "the resumed old leader called KMS Sign after its lease expired:\n{}",
        a.op.log_tail()
    );
    let log = std::fs::read_to_string(&a.op.log).unwrap();
    assert!(log.contains("lost the leader lease"), "{}", a.op.log_tail());
    // B is still the leader and finishes the burst alone.
    assert_eq!(holder(&client, ops_ns).await.as_deref(), Some("ha-pause-b"));
    let certs = all_ready(&client, ns.name(), 45, &[&b]).await;
    assert_eq!(
        a.kms.signs(),
        frozen_at,
        "the old leader signed after it stopped"
    );
    b.op.kill();
    one_serial_per_revision(&client, ns.name(), &certs, &db).await;
}

#[tokio::test]
async fn sigterm_finishes_inflight_signings_flushes_audit_releases_the_lease_and_exits_0() {
    let _one = SERIAL.lock().await;
    let env = signet_testenv::env();
    let client = env.client().await;
    let ops_ns = "signet-ha-term";
    env.kubectl_ok(&["create", "namespace", ops_ns]).unwrap();
    let db = run_dir("ha-term").join("signet.db");
    let a = replica(ops_ns, &db, "ha-term-a");
    wait_holder(&client, ops_ns, "ha-term-a", &[&a]).await;
    let ns = env.namespace("ha-term").await;
    apply(env, &root_ca("ha-term-root", "")).unwrap();
    apply(env, &certificates(ns.name(), "t", 0..1, "ha-term-root")).unwrap();
    all_ready(&client, ns.name(), 1, &[&a]).await;
    // Let the CA's own signing settle, then count only leaf signatures.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = a.kms.signs();

    // Applied from another thread: the operator signs while kubectl is
    // still sending, and the signal goes out after the first few.
    let burst = certificates(ns.name(), "t", 1..BURST + 1, "ha-term-root");
    let applying = std::thread::spawn(move || apply(signet_testenv::env(), &burst));
    let start = Instant::now();
    while a.kms.signs() < base + 5 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    signet_testenv::signal(a.op.pid, "TERM");
    applying.join().unwrap().unwrap();
    let code = wait_exit(&a, Duration::from_secs(25)).await;
    assert_eq!(code, Some(0), "SIGTERM exits 0:\n{}", a.op.log_tail());
    assert_eq!(
        holder(&client, ops_ns).await,
        None,
        "the Lease was released for a standby to take at once"
    );
    let leaf_signs = a.kms.signs() - base;
    assert!(
        leaf_signs > 0 && leaf_signs < BURST as u64,
        "SIGTERM landed mid-burst ({leaf_signs} signs):\n{}",
        a.op.log_tail()
    );
    // Every signature made before the exit reached a Secret and the trail.
    let reader = Reader::open(&db).unwrap();
    let issued = reader
        .audit(&AuditQuery {
            namespace: Some(ns.name().into()),
            operation: Some(AuditOperation::CertificateIssued),
            ..Default::default()
        })
        .unwrap()
        .len() as u64;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default().labels("signet.dev/certificate"))
        .await
        .unwrap()
        .items
        .len() as u64;
    assert_eq!(
        (issued, secrets),
        (leaf_signs + 1, leaf_signs + 1),
        "signatures made ({leaf_signs} + the first) must each have an audit row and a Secret:\n{}",
        a.op.log_tail()
    );

    // A successor takes the released Lease at once and finishes the rest.
    let b = replica(ops_ns, &db, "ha-term-b");
    let took = wait_holder(&client, ops_ns, "ha-term-b", &[&b]).await;
    assert!(
        took < Duration::from_secs(LEASE),
        "released Lease taken in {took:?}"
    );
    let certs = all_ready(&client, ns.name(), BURST + 1, &[&b]).await;
    b.op.kill();
    one_serial_per_revision(&client, ns.name(), &certs, &db).await;
}
