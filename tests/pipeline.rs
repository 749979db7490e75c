//! The reconcilers in-process (no binary) against the real API server, with
//! an in-memory key store that counts keys and signatures: revocation is
//! decided first (never blocked by CA readiness, policy or a missing
//! Secret), nothing is spent before every check that could refuse has
//! passed, failures back off, and a rebuilt mirror equals the live one.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use signet::api::{Certificate, CertificateAuthority};

async fn patch_merge<K>(api: &Api<K>, name: &str, body: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap_or_else(|e| panic!("patching {name}: {e}"));
}

/// Waits until the published CRL of `crl` (in the operator's namespace)
/// lists `serial`.
async fn crl_lists(client: &kube::Client, crl: &str, serial: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &in_process().namespace);
    let name = format!("{crl}-crl");
    eventually(&format!("CRL {crl} listing serial {serial}"), || {
        let (cms, name) = (cms.clone(), name.clone());
        async move {
            let cm = cms.get_opt(&name).await.ok()??;
            let der = cm.binary_data?.get("ca.crl")?.0.clone();
            crl_entries(&der)
                .iter()
                .any(|(s, _, _)| s == serial)
                .then_some(())
        }
    })
    .await;
}

/// A root CA, a Certificate and a CRL, all Ready; returns the serial.
async fn issued(
    env: &signet_testenv::TestEnv,
    ns: &str,
    root: &str,
    crl_name: &str,
    extra_ca: &str,
) -> String {
    let client = env.client().await;
    apply(env, &root_ca(root, extra_ca)).unwrap();
    apply(
        env,
        &certificate(ns, "web", root, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    apply(env, &crl(crl_name, root, &in_process().namespace)).unwrap();
    let c = wait_cert(&client, ns, "web", ("True", Some("Issued")), None).await;
    wait_crl(&client, crl_name, 1, None).await;
    c.status.unwrap().serial_number.unwrap()
}

fn revoked_serials(c: &Certificate) -> Vec<String> {
    c.status
        .as_ref()
        .map(|s| {
            s.revocations
                .iter()
                .map(|r| r.serial_number.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The bug: revocation used to wait for the CA to be Ready. An incident is
/// exactly when a CA may not be.
#[tokio::test]
async fn revocation_goes_through_while_the_ca_is_not_ready() {
    let env = signet_testenv::env();
    in_process();
    let ns = env.namespace("rev-unready").await;
    let client = env.client().await;
    let (root, crl_name) = (unique("root"), unique("crl"));
    let serial = issued(env, ns.name(), &root, &crl_name, "").await;
    // An invalid spec the schema lets through makes the CA not Ready.
    let cas: Api<CertificateAuthority> = Api::all(client.clone());
    patch_merge(
        &cas,
        &root,
        json!({"spec": {"duration": "10h", "renewBefore": "20h"}}),
    )
    .await;
    wait_ca(&client, &root, ("False", Some("InvalidSpec")), None).await;

    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    patch_merge(
        &certs,
        "web",
        json!({"spec": {"revocation": {"reason": "keyCompromise"}}}),
    )
    .await;
    let c = wait_cert(&client, ns.name(), "web", ("False", Some("Revoked")), None).await;
    assert_eq!(revoked_serials(&c), std::slice::from_ref(&serial));
    // The CA's key still signs CRLs while the CA is not Ready.
    crl_lists(&client, &crl_name, &serial).await;
}

/// The bug: after a CA narrowed allowedNamespaces, its old certificates in
/// the excluded namespace could no longer be revoked.
#[tokio::test]
async fn revocation_goes_through_after_allowed_namespaces_narrowed() {
    let env = signet_testenv::env();
    in_process();
    let ns = env.namespace("rev-narrowed").await;
    let client = env.client().await;
    let (root, crl_name) = (unique("root"), unique("crl"));
    let allow = format!("  allowedNamespaces: {{names: [{}]}}\n", ns.name());
    let serial = issued(env, ns.name(), &root, &crl_name, &allow).await;
    let cas: Api<CertificateAuthority> = Api::all(client.clone());
    patch_merge(
        &cas,
        &root,
        json!({"spec": {"allowedNamespaces": {"names": ["someone-else"]}}}),
    )
    .await;
    wait_cert(
        &client,
        ns.name(),
        "web",
        ("False", Some("NamespaceNotAllowed")),
        None,
    )
    .await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args([
            "revoke",
            &format!("{}/web", ns.name()),
            "--reason",
            "keyCompromise",
        ])
        .envs(env.child_env())
        .output()
        .expect("running signet revoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("revoked serial {serial}")),
        "{stdout}"
    );
    crl_lists(&client, &crl_name, &serial).await;
}

/// The bug: `revoke --reissue` revoked only when the serial could be read
/// from the Secret; with the Secret deleted (the first thing people do with
/// a leaked key) it skipped the revocation and still reissued.
#[tokio::test]
async fn revoke_and_reissue_with_the_secret_deleted_still_revokes() {
    let env = signet_testenv::env();
    in_process();
    let ns = env.namespace("rev-nosecret").await;
    let client = env.client().await;
    let (root, crl_name) = (unique("root"), unique("crl"));
    let serial = issued(env, ns.name(), &root, &crl_name, "").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    secrets
        .delete("web-tls", &DeleteParams::default())
        .await
        .unwrap();
    // What `signet revoke --reissue` writes, naming the leaked serial.
    let req =
        json!({"reason": "keyCompromise", "reissue": true, "serial": serial, "actor": "cli:test"});
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    patch_merge(
        &certs,
        "web",
        json!({"metadata": {"annotations": {"signet.dev/revoke": req.to_string()}}}),
    )
    .await;

    let c = eventually("the leaked serial revoked and a new one issued", || {
        let certs = certs.clone();
        let serial = serial.clone();
        async move {
            let c = certs.get("web").await.ok()?;
            let st = c.status.clone()?;
            let done = revoked_serials(&c).contains(&serial)
                && st.serial_number.as_deref().is_some_and(|s| s != serial)
                && !c
                    .metadata
                    .annotations
                    .clone()
                    .unwrap_or_default()
                    .contains_key("signet.dev/revoke");
            done.then_some(c)
        }
    })
    .await;
    crl_lists(&client, &crl_name, &serial).await;
    let s = secrets.get("web-tls").await.unwrap();
    let new = s.metadata.annotations.unwrap()["signet.dev/serial"].clone();
    assert_eq!(Some(new), c.status.unwrap().serial_number);
}

/// The bug: a malformed `signet.dev/revoke` was ignored but switched the
/// backoff off, so a failing Certificate retried without backoff. Now it
/// gets a condition naming the fix and changes nothing else.
#[tokio::test]
async fn a_malformed_revoke_annotation_keeps_the_backoff_and_names_the_fix() {
    let env = signet_testenv::env();
    let op = in_process();
    let ns = env.namespace("rev-malformed").await;
    let client = env.client().await;
    let root = unique("root");
    apply(env, &root_ca(&root, "")).unwrap();
    let ca = wait_ca(&client, &root, ("True", None), None).await;
    let arn = ca.status.unwrap().kms_key_arn.unwrap();
    op.keys.set_unavailable(&arn, true);
    apply(
        env,
        &certificate(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    let attempts = || {
        let certs = certs.clone();
        async move {
            certs
                .get("web")
                .await
                .ok()?
                .status?
                .failed_issuance_attempts
        }
    };
    eventually("a second failed attempt", || async {
        attempts().await.filter(|a| *a >= 2)
    })
    .await;
    let before = attempts().await;
    patch_merge(
        &certs,
        "web",
        json!({"metadata": {"annotations": {"signet.dev/revoke": "please revoke"}}}),
    )
    .await;
    // The second failure's backoff is 10 s: nothing may retry during it.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            attempts().await,
            before,
            "a malformed request must not cut the backoff short"
        );
    }
    let c = eventually("the RevokeRequest condition", || {
        let certs = certs.clone();
        async move {
            let c = certs.get("web").await.ok()?;
            let cond = c
                .status
                .clone()?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "RevokeRequest")?;
            (cond.reason == "InvalidRevokeRequest").then_some(cond)
        }
    })
    .await;
    assert!(
        c.message.contains("signet revoke") && c.message.contains("signet.dev/revoke"),
        "{}",
        c.message
    );
    op.keys.set_unavailable(&arn, false);
    let c = wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), None).await;
    assert!(revoked_serials(&c).is_empty(), "nothing was revoked");
    patch_merge(
        &certs,
        "web",
        json!({"metadata": {"annotations": {"signet.dev/revoke": null}}}),
    )
    .await;
    // The next reconcile (the CA watch or renewal) drops the condition; poke it.
    patch_merge(
        &certs,
        "web",
        json!({"metadata": {"labels": {"poke": "1"}}}),
    )
    .await;
    eventually("the condition gone with the annotation", || {
        let certs = certs.clone();
        async move {
            let c = certs.get("web").await.ok()?;
            let gone = !c
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "RevokeRequest");
            gone.then_some(())
        }
    })
    .await;
}

/// Decide before you spend: a CA its parent cannot sign (pathLen 0) is
/// refused before a KMS key exists.
#[tokio::test]
async fn a_ca_its_parent_cannot_sign_creates_no_key() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let (root, inter) = (unique("tight"), unique("inter"));
    apply(env, &root_ca(&root, "  maxPathLength: 0\n")).unwrap();
    wait_ca(&client, &root, ("True", None), None).await;
    apply(env, &intermediate_ca(&inter, &root, "")).unwrap();
    let ca = wait_ca(&client, &inter, ("False", Some("IssuerNotAllowed")), None).await;
    assert!(!op.keys.has_alias(&inter), "a refused CA created a key");
    assert_eq!(ca.status.unwrap().kms_key_arn, None);
}

/// Decide before you spend: a root refused for its name constraints
/// creates no key.
#[tokio::test]
async fn a_root_with_unusable_name_constraints_creates_no_key() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let root = unique("badnc");
    apply(
        env,
        &root_ca(
            &root,
            "  nameConstraints: {permitted: {dnsDomains: ['not a domain']}}\n",
        ),
    )
    .unwrap();
    let ca = wait_ca(&client, &root, ("False", Some("InvalidSpec")), None).await;
    let (_, _, message) = ready(&ca.status.clone().unwrap().conditions).unwrap();
    assert!(
        message.contains("nameConstraints.permitted.dnsDomains[0]"),
        "{message}"
    );
    assert!(!op.keys.has_alias(&root));
}

/// An issuer chain with a loop is refused: a CA naming itself at admission
/// (CEL), A → B → A by the controller, before any key is created.
#[tokio::test]
async fn an_issuer_loop_is_refused_and_creates_no_key() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let me = unique("self");
    let err = apply(env, &intermediate_ca(&me, &me, "")).unwrap_err();
    assert!(
        err.contains("names this CertificateAuthority itself"),
        "{err}"
    );
    let (a, b) = (unique("loop-a"), unique("loop-b"));
    apply(env, &intermediate_ca(&a, &b, "")).unwrap();
    apply(env, &intermediate_ca(&b, &a, "")).unwrap();
    for name in [&a, &b] {
        let ca = wait_ca(&client, name, ("False", Some("InvalidSpec")), None).await;
        let (_, _, message) = ready(&ca.status.unwrap().conditions).unwrap();
        assert!(message.contains("loop"), "{message}");
        assert!(!op.keys.has_alias(name));
    }
}

/// A Secret of the wrong type is a terminal error in one readable sentence
/// (no Debug dump), and costs no signature.
#[tokio::test]
async fn a_secret_of_the_wrong_type_is_refused_readably_and_signs_nothing() {
    let env = signet_testenv::env();
    let op = in_process();
    let ns = env.namespace("wrongtype").await;
    let client = env.client().await;
    let root = unique("root");
    apply(env, &root_ca(&root, "")).unwrap();
    let ca = wait_ca(&client, &root, ("True", None), None).await;
    let arn = ca.status.unwrap().kms_key_arn.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let opaque: Secret = serde_json::from_value(json!({
        "metadata": {"name": "web-tls"}, "type": "Opaque", "stringData": {"password": "hunter2"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &opaque)
        .await
        .unwrap();
    let signed_before = op.keys.signatures_of(&arn);
    apply(
        env,
        &certificate(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    let c = wait_cert(
        &client,
        ns.name(),
        "web",
        ("False", Some("SecretTypeMismatch")),
        None,
    )
    .await;
    let (_, _, message) = ready(&c.status.clone().unwrap().conditions).unwrap();
    for dump in ["Status {", "ErrorResponse", "Api(", "Some("] {
        assert!(
            !message.contains(dump),
            "debug dump in condition: {message}"
        );
    }
    assert!(
        message.contains(&format!("{}/web-tls", ns.name())) && message.contains("spec.secretName"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        op.keys.signatures_of(&arn),
        signed_before,
        "no signature for a refused request"
    );
    assert_eq!(
        c.status.unwrap().failed_issuance_attempts,
        None,
        "terminal: no retries"
    );
    let s = secrets.get("web-tls").await.unwrap();
    assert_eq!(
        s.type_.as_deref(),
        Some("Opaque"),
        "the foreign Secret is untouched"
    );
}

/// One builder per mirror row: rebuilding the mirror from the cluster gives
/// the rows live reconciles wrote.
#[tokio::test]
async fn a_rebuilt_mirror_equals_the_one_live_reconciles_wrote() {
    let env = signet_testenv::env();
    let op = in_process();
    let ns = env.namespace("mirror").await;
    let client = env.client().await;
    let root = unique("root");
    apply(env, &root_ca(&root, "")).unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "web",
            &root,
            &format!("  commonName: web\n  dnsNames: [web.example.com]\n  ipAddresses: [10.0.0.1]\n  uris: ['spiffe://example.org/ns/{}/web']\n  usages: [server auth]\n", ns.name()),
        ),
    )
    .unwrap();
    wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), None).await;
    op.ctx.store.flush().await.unwrap();
    let rows = |store: signet::store::Store| {
        let ns = ns.name().to_string();
        let root = root.clone();
        async move {
            let certs = store
                .list_certificates(signet::store::CertQuery {
                    namespace: Some(ns),
                    include_pem: true,
                    now: signet::store::now_unix(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let cas: Vec<_> = store
                .list_cas()
                .await
                .unwrap()
                .into_iter()
                .filter(|c| c.name == root)
                .map(|mut c| {
                    c.updated_at = 0;
                    c.created_at = 0;
                    c
                })
                .collect();
            (format!("{certs:#?}"), format!("{cas:#?}"))
        }
    };
    let live = rows(op.ctx.store.clone()).await;
    assert!(
        live.0.contains("DNS:web.example.com") && live.0.contains("server auth"),
        "{}",
        live.0
    );
    let db = signet_testenv::run_dir().join(format!("rebuilt-{}.db", ns.name()));
    let fresh = signet::store::Store::open(&db).unwrap();
    let ctx = signet::controller::Context::new(signet::controller::ContextParts {
        client: client.clone(),
        keys: std::sync::Arc::new(signet::kms::LocalKms::new()),
        store: fresh.clone(),
        namespace: op.namespace.clone(),
        default_key_spec: signet::kms::KeySpec::EccNistP256,
        clock: std::sync::Arc::new(signet::clock::SystemClock),
        instance: None,
    });
    signet::controller::rebuild::rebuild(&ctx).await.unwrap();
    fresh.flush().await.unwrap();
    let rebuilt = rows(fresh).await;
    assert_eq!(rebuilt, live);
}
