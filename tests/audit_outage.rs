//! No certificate without its audit row: while the audit trail cannot be
//! written, nothing is signed and /readyz says so; when it can again,
//! signing resumes by itself and the rows are there. (Its own test binary:
//! it breaks the in-process operator's database on purpose.)

mod common;

use std::time::Duration;

use common::*;
use signet::http::{HttpState, Site, route};
use signet::store::{AuditEvent, AuditOperation, ObjectRef};

#[tokio::test]
async fn nothing_is_signed_while_the_audit_trail_cannot_be_written_and_signing_resumes_by_itself() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let ns = env.namespace("audit-down").await;
    let root = unique("root");
    apply(env, &root_ca(&root, "")).unwrap();
    let ca = wait_ca(&client, &root, ("True", None), None).await;
    let arn = ca.status.unwrap().kms_key_arn.unwrap();
    let http = HttpState {
        published: op.ctx.published.clone(),
        metrics: op.ctx.metrics.clone(),
        store: op.ctx.store.clone().into(),
    };
    op.ctx.published.set_ready(true);
    assert_eq!(route(&http, Site::Admin, "/readyz").await.status, 200);

    // The volume goes bad: a directory where the database file was.
    let db = signet_testenv::run_dir().join("inproc.db");
    let away = db.with_extension("away");
    std::fs::rename(&db, &away).unwrap();
    std::fs::create_dir(&db).unwrap();
    op.ctx.store.audit(AuditEvent::new(
        signet::store::now_unix_ms(),
        "test",
        AuditOperation::PolicyDenied,
        ObjectRef::cluster("Test", "provoke-a-write"),
    ));
    eventually("the store to notice", || async {
        (!op.ctx.store.health().is_ok()).then_some(())
    })
    .await;
    let probe = route(&http, Site::Admin, "/readyz").await;
    assert_eq!(
        probe.status,
        503,
        "{}",
        String::from_utf8_lossy(&probe.body)
    );
    assert!(String::from_utf8_lossy(&probe.body).contains("not signing"));

    let before = op.keys.signatures_of(&arn);
    apply(
        env,
        &certificate(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    let c = wait_cert(
        &client,
        ns.name(),
        "web",
        ("False", Some("AuditUnavailable")),
        None,
    )
    .await;
    let (_, _, message) = ready(&c.status.unwrap().conditions).unwrap();
    assert!(message.contains("signs nothing until it can"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        op.keys.signatures_of(&arn),
        before,
        "signed without an audit trail"
    );

    // The volume comes back: the store catches up and signing resumes.
    std::fs::remove_dir(&db).unwrap();
    std::fs::rename(&away, &db).unwrap();
    eventually("the store to recover", || async {
        op.ctx.store.health().is_ok().then_some(())
    })
    .await;
    let c = wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), None).await;
    assert_eq!(route(&http, Site::Admin, "/readyz").await.status, 200);
    let serial = c.status.unwrap().serial_number.unwrap();
    op.ctx.store.flush().await.unwrap();
    let rows = op
        .ctx
        .store
        .audit_rows(signet::store::AuditQuery {
            namespace: Some(ns.name().to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        rows.iter()
            .any(|r| r.serial.as_deref() == Some(serial.as_str())
                && r.operation == "certificate_issued"),
        "{rows:#?}"
    );
    let report = op.ctx.store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}
