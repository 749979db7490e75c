//! Bad days, against the real API server and local-kms, with the operator
//! binary reaching KMS through a proxy that counts connections and `Sign`
//! calls at the wire:
//!
//! * the operator SIGKILLed in the middle of a burst, then restarted;
//! * revocations made while the operator is down;
//! * KMS down for 20 s in the middle of a burst.
//!
//! Each asserts that nothing was lost. Scenarios run one at a time: every
//! operator reconciles every namespace of the shared API server.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use signet::api::Certificate;
use signet::pki::parse::{KeyState, read_tls};
use signet::store::{AuditOperation, AuditQuery, Reader};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Kills the operator when the scenario ends, pass or fail.
struct Running(Operator);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill();
    }
}

async fn all_ready(client: &kube::Client, ns: &str, n: usize, op: &Operator) -> Vec<Certificate> {
    all_certificates_ready(client, ns, n, Duration::from_secs(180), || op.log_tail()).await
}

/// Every Secret's key belongs to its certificate; every Certificate's
/// status serial has an issuance audit row; the chain verifies. Returns the
/// number of issuance audit rows.
async fn nothing_lost(client: &kube::Client, ns: &str, certs: &[Certificate], db: &Path) -> usize {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let reader = Reader::open(db).unwrap();
    let mut rows = Vec::new();
    for op in [
        AuditOperation::CertificateIssued,
        AuditOperation::CertificateRenewed,
    ] {
        rows.extend(
            reader
                .audit(&AuditQuery {
                    namespace: Some(ns.into()),
                    operation: Some(op),
                    ..Default::default()
                })
                .unwrap(),
        );
    }
    let norm = |s: &str| s.replace(':', "").to_ascii_lowercase();
    for c in certs {
        let name = c.metadata.name.clone().unwrap();
        let s = secrets.get(&format!("{name}-tls")).await.unwrap();
        let data = s.data.unwrap_or_default();
        let tls = read_tls(
            data.get("tls.crt").map(|b| b.0.as_slice()),
            data.get("tls.key").map(|b| b.0.as_slice()),
        );
        assert!(
            matches!(tls.key, KeyState::Matches(_)),
            "{ns}/{name}: the Secret's key does not belong to its certificate"
        );
        let serial = norm(&c.status.clone().unwrap().serial_number.unwrap());
        assert!(
            rows.iter().any(|r| r.object_name.as_deref() == Some(&name)
                && r.serial.as_deref().map(norm).as_deref() == Some(serial.as_str())),
            "{ns}/{name}: serial {serial} has no issuance audit row"
        );
    }
    let report = reader.verify_audit_chain().unwrap();
    assert!(report.is_intact(), "audit chain broken: {report:?}");
    rows.len()
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = signet_testenv::run_dir().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn sigkill_mid_burst_then_restart_every_certificate_ends_ready_and_nothing_is_lost() {
    let _one = SERIAL.lock().await;
    let env = signet_testenv::env();
    let client = env.client().await;
    let ops_ns = "signet-fault-kill";
    env.kubectl_ok(&["create", "namespace", ops_ns]).unwrap();
    let db = dir("fault-kill").join("signet.db");
    let kms = SignProxy::start(&env.kms.endpoint);
    let op = Running(Operator::start(env, ops_ns, &db, &kms.endpoint));
    let ns = env.namespace("fault-kill").await;
    apply(env, &root_ca("fault-kill-root", "")).unwrap();
    apply(env, &certificates(ns.name(), "k", 0..1, "fault-kill-root")).unwrap();
    all_ready(&client, ns.name(), 1, &op.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = kms.signs();

    let burst = certificates(ns.name(), "k", 1..151, "fault-kill-root");
    let applying = std::thread::spawn(move || apply(signet_testenv::env(), &burst));
    let start = Instant::now();
    while kms.signs() < base + 20 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    op.0.kill();
    applying.join().unwrap().unwrap();
    let signed_before_kill = kms.signs() - base;
    assert!(signed_before_kill < 150, "SIGKILL landed mid-burst");

    let op = Running(Operator::start(env, ops_ns, &db, &kms.endpoint));
    let certs = all_ready(&client, ns.name(), 151, &op.0).await;
    let rows = nothing_lost(&client, ns.name(), &certs, &db).await as u64;
    // Signatures that never reached a Secret are the ones in flight at the
    // kill: at most the operator's concurrency (4).
    let leaf_signs = kms.signs() - base;
    assert!(
        leaf_signs >= rows - 1 && leaf_signs <= rows - 1 + 4,
        "{leaf_signs} leaf signatures for {rows} recorded issuances (first one before the burst)"
    );
}

#[tokio::test]
async fn revocations_made_while_the_operator_is_down_are_all_in_the_crl_after_it_starts() {
    let _one = SERIAL.lock().await;
    let env = signet_testenv::env();
    let client = env.client().await;
    let ops_ns = "signet-fault-down";
    env.kubectl_ok(&["create", "namespace", ops_ns]).unwrap();
    let db = dir("fault-down").join("signet.db");
    let op = Running(Operator::start(env, ops_ns, &db, &env.kms.endpoint));
    let ns = env.namespace("fault-down").await;
    apply(env, &root_ca("fault-down-root", "")).unwrap();
    apply(env, &crl("fault-down-crl", "fault-down-root", ops_ns)).unwrap();
    apply(env, &certificates(ns.name(), "d", 0..5, "fault-down-root")).unwrap();
    let certs = all_ready(&client, ns.name(), 5, &op.0).await;
    let number = wait_crl(&client, "fault-down-crl", 1, &op.0)
        .await
        .status
        .unwrap()
        .crl_number
        .unwrap();
    drop(op);

    // Three revocations while no operator runs.
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    let mut revoked = Vec::new();
    for c in &certs[..3] {
        let name = c.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"revocation": {"reason": "keyCompromise"}}})),
        )
        .await
        .unwrap();
        revoked.push(c.status.clone().unwrap().serial_number.unwrap());
    }

    let op = Running(Operator::start(env, ops_ns, &db, &env.kms.endpoint));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ops_ns);
    let norm = |s: &str| s.replace(':', "").to_ascii_lowercase();
    let listed = wait_for(
        "all three serials in the CRL",
        Duration::from_secs(60),
        Some(&op.0),
        || {
            let cms = cms.clone();
            let revoked = revoked.clone();
            async move {
                let cm = cms.get_opt("fault-down-crl-crl").await.ok()??;
                let der = cm.binary_data?.get("ca.crl")?.0.clone();
                let entries = crl_entries(&der);
                revoked
                    .iter()
                    .all(|s| {
                        entries
                            .iter()
                            .any(|(e, _, r)| norm(e) == norm(s) && r == "keyCompromise")
                    })
                    .then_some(entries)
            }
        },
    )
    .await;
    assert_eq!(
        listed.len(),
        3,
        "exactly the three revoked serials: {listed:?}"
    );
    let now = wait_crl(&client, "fault-down-crl", number + 1, &op.0).await;
    assert_eq!(now.status.unwrap().revoked_count, Some(3));
}

#[tokio::test]
async fn kms_down_for_20s_mid_burst_every_certificate_ends_ready_with_bounded_kms_calls() {
    let _one = SERIAL.lock().await;
    let env = signet_testenv::env();
    let client = env.client().await;
    let ops_ns = "signet-fault-kms";
    env.kubectl_ok(&["create", "namespace", ops_ns]).unwrap();
    let d = dir("fault-kms");
    let db = d.join("signet.db");
    // A local-kms of this test's own, so it can be stopped and started on
    // the same address with the same keys.
    let own = signet_testenv::start_kms(&d.join("kms")).unwrap();
    let addr = own.endpoint.trim_start_matches("http://").to_string();
    let kms = SignProxy::start(&own.endpoint);
    let op = Running(Operator::start(env, ops_ns, &db, &kms.endpoint));
    let ns = env.namespace("fault-kms").await;
    apply(env, &root_ca("fault-kms-root", "")).unwrap();
    apply(env, &certificates(ns.name(), "m", 0..1, "fault-kms-root")).unwrap();
    all_ready(&client, ns.name(), 1, &op.0).await;
    let base = kms.signs();

    let burst = certificates(ns.name(), "m", 1..101, "fault-kms-root");
    let applying = std::thread::spawn(move || apply(signet_testenv::env(), &burst));
    let start = Instant::now();
    while kms.signs() < base + 10 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    signet_testenv::kill(own.pid);
    applying.join().unwrap().unwrap();
    let at_outage = kms.connections();

    // During the outage: backoff shows in status, and the calls slow down.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let first_half = kms.connections() - at_outage;
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    let waiting = api.list(&ListParams::default()).await.unwrap().items;
    let backing_off = waiting
        .iter()
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.failed_issuance_attempts.unwrap_or(0) >= 1
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.reason == "KMSUnavailable")
            })
        })
        .count();
    assert!(
        backing_off > 0,
        "no Certificate shows KMSUnavailable with attempts"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let outage = kms.connections() - at_outage;
    let second_half = outage - first_half;
    let pending = waiting.iter().filter(|c| !is_ready(c)).count().max(1) as u64;
    eprintln!(
        "KMS outage: {outage} connection attempts in 20 s ({first_half} then {second_half}) for {pending} waiting Certificates"
    );
    assert!(
        outage <= pending * 20,
        "{outage} KMS connection attempts in 20 s for {pending} waiting Certificates: a retry storm"
    );
    assert!(
        second_half <= first_half,
        "attempts must slow down as the backoff grows ({first_half} then {second_half})"
    );

    let back = signet_testenv::start_kms_on(&d.join("kms"), &addr).unwrap();
    let certs = all_ready(&client, ns.name(), 101, &op.0).await;
    nothing_lost(&client, ns.name(), &certs, &db).await;
    drop(op);
    signet_testenv::kill(back.pid);
}
