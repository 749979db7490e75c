//! KMS outages: Ready=False with reason KMSUnavailable, growing backoff
//! recorded in status, automatic recovery when KMS returns. (Own test
//! binary: it stops and restarts its own local-kms.)

mod common;

use std::time::Duration;

use common::*;
use kube::api::Api;
use signet::api::Certificate;

#[tokio::test]
async fn kms_outage_is_reported_backs_off_and_recovers() {
    let env = signet_testenv::env();
    env.kubectl_ok(&["create", "namespace", "signet-kms"])
        .unwrap();
    let dir = signet_testenv::run_dir().join("own-kms");
    let kms = signet_testenv::start_kms(&dir).unwrap();
    let db = dir.join("signet.db");
    let op = Operator::start(env, "signet-kms", &db, &kms.endpoint);
    let ns = env.namespace("outage").await;
    let client = env.client().await;
    apply(env, &root_ca("kroot", "")).unwrap();
    wait_ca(&client, "kroot", ("True", None), &op).await;

    signet_testenv::kill(kms.pid);
    apply(
        env,
        &certificate(
            ns.name(),
            "during",
            "kroot",
            "  dnsNames: [during.example.com]\n",
        ),
    )
    .unwrap();
    let c = wait_cert(
        &client,
        ns.name(),
        "during",
        ("False", Some("KMSUnavailable")),
        &op,
    )
    .await;
    let (_, _, msg) = ready(&c.status.unwrap().conditions).unwrap();
    assert!(msg.contains("KMS"), "{msg}");
    // Backoff, not a hot loop: a few attempts over ~20 s, not hundreds.
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    let attempts = wait_for(
        "second failed attempt",
        Duration::from_secs(60),
        Some(&op),
        || {
            let certs = certs.clone();
            async move {
                let n = certs
                    .get("during")
                    .await
                    .ok()?
                    .status?
                    .failed_issuance_attempts?;
                (n >= 2).then_some(n)
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let later = certs.get("during").await.unwrap().status.unwrap();
    let n = later.failed_issuance_attempts.unwrap();
    assert!(
        n >= attempts && n <= attempts + 2,
        "attempts grew from {attempts} to {n} in 8 s"
    );
    assert!(later.last_failure_time.is_some());

    // KMS comes back on the same address with the same keys.
    let addr = kms.endpoint.trim_start_matches("http://").to_string();
    let _kms2 = signet_testenv::start_kms_on(&dir, &addr).unwrap();
    let c = wait_for("recovery", Duration::from_secs(90), Some(&op), || {
        let certs = certs.clone();
        async move {
            let c = certs.get("during").await.ok()?;
            let (s, _, _) = ready(&c.status.clone()?.conditions)?;
            (s == "True").then_some(c)
        }
    })
    .await;
    assert_eq!(c.status.unwrap().failed_issuance_attempts, None);
    op.kill();
}
