//! Revocations survive an operator restart with an empty database, the
//! deletion of the Certificate and even of the revocation register: the
//! last signed CRL is a durable record. The mirror is rebuilt from the
//! cluster. (Own test binary: it owns its operator's lifecycle.)

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use signet::api::{CRL, Certificate};

#[tokio::test]
async fn revocation_survives_restart_with_empty_sqlite_and_lost_register() {
    let env = signet_testenv::env();
    env.kubectl_ok(&["create", "namespace", "signet-restart"])
        .unwrap();
    let dir = signet_testenv::run_dir().join("restart");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("signet.db");
    let op = Operator::start(env, "signet-restart", &db, &env.kms.endpoint);
    let ns = env.namespace("survive").await;
    let client = env.client().await;
    apply(env, &root_ca("sroot", "")).unwrap();
    apply(env, &crl("scrl", "sroot", "signet-restart")).unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "victim",
            "sroot",
            "  dnsNames: [victim.example.com]\n",
        ),
    )
    .unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "bystander",
            "sroot",
            "  dnsNames: [ok.example.com]\n",
        ),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "victim", ("True", None), &op).await;
    wait_cert(&client, ns.name(), "bystander", ("True", None), &op).await;
    let serial = c.status.unwrap().serial_number.unwrap();
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    certs
        .patch(
            "victim",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"revocation": {"reason": "keyCompromise"}}
            })),
        )
        .await
        .unwrap();
    wait_cert(
        &client,
        ns.name(),
        "victim",
        ("False", Some("Revoked")),
        &op,
    )
    .await;
    let n = wait_crl(&client, "scrl", 2, &op)
        .await
        .status
        .unwrap()
        .crl_number
        .unwrap();

    // Lose everything but the cluster's last signed CRL.
    certs
        .delete("victim", &DeleteParams::default())
        .await
        .unwrap();
    op.kill();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "signet-restart");
    cms.delete("signet-revocations-sroot", &DeleteParams::default())
        .await
        .unwrap();

    let op = Operator::start(env, "signet-restart", &db, &env.kms.endpoint);
    // Force a re-sign: the new CRL still lists the serial, with a higher number.
    let crls: Api<CRL> = Api::all(client.clone());
    crls.patch(
        "scrl",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"validity": "20h"}})),
    )
    .await
    .unwrap();
    let st = wait_crl(&client, "scrl", n + 1, &op).await.status.unwrap();
    assert_eq!(st.revoked_count, Some(1));
    let cm = cms.get("scrl-crl").await.unwrap();
    let der = cm.binary_data.unwrap()["ca.crl"].0.clone();
    assert!(
        crl_entries(&der)
            .iter()
            .any(|(s, _, r)| *s == serial && r == "keyCompromise")
    );
    // The register was restored from the CRL.
    let reg = cms.get("signet-revocations-sroot").await.unwrap();
    assert!(reg.data.unwrap()["revocations.json"].contains(&serial));

    // The mirror was rebuilt from the cluster, and says so.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let audit = wait_for(
        "mirror_rebuilt audit row",
        Duration::from_secs(20),
        Some(&op),
        || {
            let out = run(&["audit", "--operation", "mirror_rebuilt"]);
            async move { out.contains("mirror_rebuilt").then_some(out) }
        },
    )
    .await;
    assert!(audit.contains("mirror_rebuilt"));
    let listed = run(&["certs", "--ca", "sroot", "--json"]);
    assert!(listed.contains("bystander"), "{listed}");
    assert!(run(&["audit", "verify"]).contains("intact"));
    op.kill();
}
