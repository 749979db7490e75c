//! One CA shared by many namespaces: a tenant with `edit` in its own
//! namespace tries to hurt another tenant or the CA, and a broken input
//! tries to stop revocations. Each test shows the refusal (or recovery) and
//! that nothing was lost. The reconcilers run in-process, with an
//! in-memory key store that counts every signature.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use signet::api::{Certificate, CertificateAuthority, Revocation};
use signet_testenv::TestEnv;

/// A tenant: a user with the built-in `edit` role in one namespace only.
struct Tenant {
    user: String,
    client: kube::Client,
}

/// What `edit` grants a namespace's users, as far as Signet is concerned:
/// its Certificates (the chart aggregates that into `edit`), Secrets and
/// ConfigMaps. (The test control plane runs no controller-manager, so the
/// built-in `edit` role is not aggregated here; this role stands in.)
fn tenant_role(env: &TestEnv) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        apply(
            env,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: signet-test-tenant\nrules:\n- apiGroups: [signet.dev]\n  resources: [certificates]\n  verbs: [get, list, watch, create, update, patch, delete]\n- apiGroups: ['']\n  resources: [secrets, configmaps]\n  verbs: [get, list, watch, create, update, patch, delete]\n",
        )
        .expect("tenant role");
    });
}

async fn tenant(env: &TestEnv, ns: &str, user: &str) -> Tenant {
    tenant_role(env);
    apply(
        env,
        &format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {user}-edit, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: signet-test-tenant}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}\n"),
    )
    .expect("role binding");
    let path = env.kubeconfig_for(user, &[]).expect("tenant kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    // The aggregated rules reach `edit` a moment after the ClusterRole.
    let client = kube::Client::try_from(cfg).unwrap();
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns);
    eventually("the tenant's edit role to work", || {
        let certs = certs.clone();
        async move { certs.list(&Default::default()).await.ok().map(|_| ()) }
    })
    .await;
    Tenant {
        user: user.to_string(),
        client,
    }
}

/// A Ready root CA (extra spec lines allowed) and its key ARN.
async fn ready_ca(env: &TestEnv, name: &str, extra: &str) -> String {
    apply(env, &root_ca(name, extra)).unwrap();
    let ca = wait_ca(&env.client().await, name, ("True", None), None).await;
    ca.status.unwrap().kms_key_arn.unwrap()
}

fn cert_yaml(ns: &str, name: &str, ca: &str, extra: &str) -> Certificate {
    serde_yaml::from_str(&certificate(ns, name, ca, extra)).unwrap()
}

async fn create_as(t: &Tenant, c: &Certificate) -> Result<(), kube::Error> {
    let ns = c.metadata.namespace.clone().unwrap();
    Api::<Certificate>::namespaced(t.client.clone(), &ns)
        .create(&PostParams::default(), c)
        .await
        .map(|_| ())
}

fn ready_reason(c: &Certificate) -> Option<(String, String)> {
    let (s, r, m) = ready(&c.status.clone()?.conditions)?;
    (s == "False").then_some((r, m))
}

/// The serials in the revocation register of `ca`.
async fn register(ca: &str) -> Vec<String> {
    let client = signet_testenv::env().client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &in_process().namespace);
    match cms
        .get_opt(&format!("signet-revocations-{ca}"))
        .await
        .unwrap()
    {
        Some(cm) => signet::controller::revocations::parse(&cm)
            .entries
            .into_iter()
            .map(|e| e.serial)
            .collect(),
        None => Vec::new(),
    }
}

async fn crl_lists(crl: &str, serial: &str) {
    let client = signet_testenv::env().client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &in_process().namespace);
    let name = format!("{crl}-crl");
    eventually(&format!("CRL {crl} listing {serial}"), || {
        let (cms, name) = (cms.clone(), name.clone());
        async move {
            let der = cms
                .get_opt(&name)
                .await
                .ok()??
                .binary_data?
                .get("ca.crl")?
                .0
                .clone();
            crl_entries(&der)
                .iter()
                .any(|(s, _, _)| s == serial)
                .then_some(())
        }
    })
    .await;
}

/// Signatures of `arn` stay at `before` for `secs` seconds.
async fn signs_nothing(arn: &str, before: u64, secs: u64) {
    for _ in 0..secs * 4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            in_process().keys.signatures_of(arn),
            before,
            "a refused request cost a KMS signature"
        );
    }
}

#[tokio::test]
async fn a_tenant_cannot_revoke_another_namespaces_certificate() {
    let env = signet_testenv::env();
    in_process();
    let client = env.client().await;
    let (ns_a, ns_b) = (env.namespace("team-a").await, env.namespace("team-b").await);
    let root = unique("shared");
    let crl_name = unique("crl");
    ready_ca(env, &root, "").await;
    apply(env, &crl(&crl_name, &root, &in_process().namespace)).unwrap();
    apply(
        env,
        &certificate(ns_a.name(), "web", &root, "  dnsNames: [a.example.com]\n"),
    )
    .unwrap();
    let victim = wait_cert(&client, ns_a.name(), "web", ("True", Some("Issued")), None).await;
    let victim_serial = victim.status.unwrap().serial_number.unwrap();
    let b = tenant(env, ns_b.name(), "tenant-b").await;
    create_as(
        &b,
        &cert_yaml(ns_b.name(), "web", &root, "  dnsNames: [b.example.com]\n"),
    )
    .await
    .unwrap();
    wait_cert(&client, ns_b.name(), "web", ("True", Some("Issued")), None).await;
    // Team B names team A's serial in its own Certificate's revoke request.
    let req = json!({"reason": "keyCompromise", "serial": victim_serial});
    let certs_b: Api<Certificate> = Api::namespaced(b.client.clone(), ns_b.name());
    certs_b
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"signet.dev/revoke": req.to_string()}}}),
            ),
        )
        .await
        .unwrap();
    let cond = eventually("the refusal", || {
        let certs = certs_b.clone();
        async move {
            let c = certs.get("web").await.ok()?;
            c.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "RevokeRequest")
        }
    })
    .await;
    assert_eq!(cond.reason, "InvalidRevokeRequest");
    assert!(
        cond.message.contains("was not issued for this Certificate"),
        "{}",
        cond.message
    );
    assert!(
        !register(&root).await.contains(&victim_serial),
        "another team's serial reached the register"
    );
    // The CRL is unharmed: a legitimate revocation still reaches it.
    let own = certs_b
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .serial_number
        .unwrap();
    certs_b
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"signet.dev/revoke": null}},
                "spec": {"revocation": {"reason": "superseded"}}
            })),
        )
        .await
        .unwrap();
    crl_lists(&crl_name, &own).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &in_process().namespace);
    let der = cms
        .get(&format!("{crl_name}-crl"))
        .await
        .unwrap()
        .binary_data
        .unwrap()["ca.crl"]
        .0
        .clone();
    assert!(
        !crl_entries(&der)
            .iter()
            .any(|(s, _, _)| *s == victim_serial)
    );
}

#[tokio::test]
async fn a_tenant_cannot_claim_to_be_someone_else_and_cannot_revoke_cluster_wide() {
    let env = signet_testenv::env();
    in_process();
    let ns = env.namespace("liar").await;
    let root = unique("root");
    ready_ca(env, &root, "").await;
    let t = tenant(env, ns.name(), "tenant-liar").await;
    create_as(
        &t,
        &cert_yaml(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .await
    .unwrap();
    let client = env.client().await;
    let c = wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), None).await;
    let serial = c.status.unwrap().serial_number.unwrap();
    let certs: Api<Certificate> = Api::namespaced(t.client.clone(), ns.name());
    let lie = certs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"signet.dev/revoked-by": "cluster-admin"}},
                "spec": {"revocation": {"reason": "keyCompromise"}}
            })),
        )
        .await
        .unwrap_err();
    assert!(
        lie.to_string()
            .contains("may only name the user making the request"),
        "{lie}"
    );
    // Cluster-scoped revocations are out of reach.
    let r: Revocation = serde_json::from_value(json!({
        "metadata": {"name": unique("sneaky")},
        "spec": {"issuerRef": {"name": root}, "serialNumber": "0a", "reason": "keyCompromise"}
    }))
    .unwrap();
    let denied = Api::<Revocation>::all(t.client.clone())
        .create(&PostParams::default(), &r)
        .await
        .unwrap_err();
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "{denied}"
    );
    // The truth is accepted and is what the audit trail records.
    certs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"signet.dev/revoked-by": t.user}},
                "spec": {"revocation": {"reason": "keyCompromise"}}
            })),
        )
        .await
        .unwrap();
    wait_cert(&client, ns.name(), "web", ("False", Some("Revoked")), None).await;
    let op = in_process();
    let row = eventually("the revocation's audit row", || async {
        op.ctx.store.flush().await.ok()?;
        let rows = op
            .ctx
            .store
            .audit_rows(signet::store::AuditQuery {
                operation: Some(signet::store::AuditOperation::CertificateRevoked),
                namespace: Some(ns.name().to_string()),
                ..Default::default()
            })
            .await
            .ok()?;
        rows.into_iter()
            .find(|r| r.serial.as_deref() == Some(serial.as_str()))
    })
    .await;
    assert_eq!(row.actor, "user:tenant-liar");
}

#[tokio::test]
async fn a_cluster_admin_revokes_an_intermediate_and_a_serial_whose_certificate_is_gone() {
    let env = signet_testenv::env();
    in_process();
    let client = env.client().await;
    let ns = env.namespace("admin-rev").await;
    let (root, inter) = (unique("root"), unique("inter"));
    let (root_crl, inter_crl) = (unique("crl"), unique("crl"));
    ready_ca(env, &root, "").await;
    apply(env, &intermediate_ca(&inter, &root, "")).unwrap();
    let ica = wait_ca(&client, &inter, ("True", None), None).await;
    let inter_serial = ica.status.unwrap().serial_number.unwrap();
    apply(env, &crl(&root_crl, &root, &in_process().namespace)).unwrap();
    apply(env, &crl(&inter_crl, &inter, &in_process().namespace)).unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "gone",
            &inter,
            "  dnsNames: [gone.example.com]\n",
        ),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "gone", ("True", Some("Issued")), None).await;
    let gone_serial = c.status.unwrap().serial_number.unwrap();
    Api::<Certificate>::namespaced(client.clone(), ns.name())
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();

    let run = |args: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .arg("revoke")
            .args(args)
            .envs(env.child_env())
            .output()
            .expect("running signet revoke");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        text
    };
    let out = run(vec![
        "--issuer".into(),
        inter.clone(),
        "--serial".into(),
        gone_serial.clone(),
        "--reason".into(),
        "keyCompromise".into(),
    ]);
    assert!(
        out.contains(&format!("revoked serial {gone_serial}")),
        "{out}"
    );
    crl_lists(&inter_crl, &gone_serial).await;
    let out = run(vec![
        "--authority".into(),
        inter.clone(),
        "--reason".into(),
        "caCompromise".into(),
    ]);
    assert!(
        out.contains(&format!("revoked serial {inter_serial}")),
        "{out}"
    );
    crl_lists(&root_crl, &inter_serial).await;
}

#[tokio::test]
async fn an_unreadable_register_entry_never_stops_the_crl() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let ns = env.namespace("badreg").await;
    let (root, crl_name) = (unique("root"), unique("crl"));
    ready_ca(env, &root, "").await;
    apply(env, &crl(&crl_name, &root, &op.namespace)).unwrap();
    wait_crl(&client, &crl_name, 1, None).await;
    let garbage = json!([
        {"serial": "not-hex", "revokedAt": 1, "reason": "keyCompromise", "notAfter": 4102444800i64},
        {"serial": "0a1b", "revokedAt": 1, "reason": "stolen", "notAfter": 4102444800i64},
        {"serial": "0A:1B:2C", "revokedAt": 1, "reason": "keyCompromise", "notAfter": 4102444800i64},
        {"serial": "0a1b2c", "revokedAt": 2, "reason": "keyCompromise", "notAfter": 4102444800i64}
    ]);
    apply(
        env,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: signet-revocations-{root}\n  namespace: {}\n  labels: {{signet.dev/revocations-for: {root}}}\ndata:\n  revocations.json: '{}'\n",
            op.namespace, garbage
        ),
    )
    .unwrap();
    crl_lists(&crl_name, "0a1b2c").await;
    // A real revocation after the garbage still reaches the CRL.
    apply(
        env,
        &certificate(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), None).await;
    let serial = c.status.unwrap().serial_number.unwrap();
    Api::<Certificate>::namespaced(client.clone(), ns.name())
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revocation": {"reason": "keyCompromise"}}})),
        )
        .await
        .unwrap();
    crl_lists(&crl_name, &serial).await;
    let crl_obj = wait_crl(&client, &crl_name, 1, None).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &op.namespace);
    let reg = cms
        .get(&format!("signet-revocations-{root}"))
        .await
        .unwrap();
    let text = reg.data.unwrap()["revocations.json"].clone();
    assert!(
        text.contains("not-hex") && text.contains("stolen"),
        "unreadable entries were dropped: {text}"
    );
    let (_, _, message) = ready(&crl_obj.status.unwrap().conditions).unwrap();
    assert!(
        message.contains("unreadable revocation register entries were skipped"),
        "{message}"
    );
}

#[tokio::test]
async fn a_replayed_old_crl_is_not_trusted_and_numbers_keep_growing() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let ns = env.namespace("replay").await;
    let (root, crl_name) = (unique("root"), unique("crl"));
    ready_ca(env, &root, "").await;
    apply(env, &crl(&crl_name, &root, &op.namespace)).unwrap();
    wait_crl(&client, &crl_name, 1, None).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &op.namespace);
    let cm_name = format!("{crl_name}-crl");
    let old = cms.get(&cm_name).await.unwrap();
    apply(
        env,
        &certificate(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), None).await;
    let serial = c.status.unwrap().serial_number.unwrap();
    Api::<Certificate>::namespaced(client.clone(), ns.name())
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revocation": {"reason": "keyCompromise"}}})),
        )
        .await
        .unwrap();
    crl_lists(&crl_name, &serial).await;
    let revoked_number = wait_crl(&client, &crl_name, 2, None)
        .await
        .status
        .unwrap()
        .crl_number
        .unwrap();
    // Someone writes the old CRL back, with a forged number annotation.
    let mut replay = cms.get(&cm_name).await.unwrap();
    replay.binary_data = old.binary_data.clone();
    replay
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("signet.dev/crl-number".into(), "99999".into());
    cms.replace(&cm_name, &PostParams::default(), &replay)
        .await
        .unwrap();
    crl_lists(&crl_name, &serial).await;
    let facts = eventually("a CRL newer than the replayed one", || {
        let (cms, cm_name) = (cms.clone(), cm_name.clone());
        async move {
            let der = cms
                .get(&cm_name)
                .await
                .ok()?
                .binary_data?
                .get("ca.crl")?
                .0
                .clone();
            let f = signet::pki::crl_facts(&der).ok()?;
            (f.number as i64 > revoked_number).then_some(f)
        }
    })
    .await;
    assert!(
        facts.number < 99999,
        "the forged annotation was not believed"
    );
}

#[tokio::test]
async fn secrets_are_owned_and_a_conflict_costs_no_signature() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let ns = env.namespace("owned").await;
    let root = unique("root");
    let arn = ready_ca(env, &root, "").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    // Another app's TLS Secret.
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": "app-tls"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "theirs", "tls.key": "theirs"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let before = op.keys.signatures_of(&arn);
    apply(
        env,
        &certificate(
            ns.name(),
            "grabby",
            &root,
            "  secretName: app-tls\n  dnsNames: [a.example.com]\n",
        )
        .replace("  secretName: grabby-tls\n", ""),
    )
    .unwrap();
    let c = wait_cert(
        &client,
        ns.name(),
        "grabby",
        ("False", Some("SecretConflict")),
        None,
    )
    .await;
    let (_, message) = ready_reason(&c).unwrap();
    assert!(message.contains("was not created by Signet"), "{message}");
    signs_nothing(&arn, before, 3).await;
    let s = secrets.get("app-tls").await.unwrap();
    assert_eq!(
        s.data.unwrap()["tls.crt"].0,
        b"theirs",
        "another app's Secret was overwritten"
    );

    // Two Certificates naming one Secret: the second waits, no loop.
    apply(
        env,
        &certificate(ns.name(), "first", &root, "  dnsNames: [one.example.com]\n"),
    )
    .unwrap();
    wait_cert(&client, ns.name(), "first", ("True", Some("Issued")), None).await;
    let rv = secrets
        .get("first-tls")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let before = op.keys.signatures_of(&arn);
    apply(
        env,
        &certificate(
            ns.name(),
            "second",
            &root,
            "  secretName: first-tls\n  dnsNames: [two.example.com]\n",
        )
        .replace("  secretName: second-tls\n", ""),
    )
    .unwrap();
    let c = wait_cert(
        &client,
        ns.name(),
        "second",
        ("False", Some("SecretConflict")),
        None,
    )
    .await;
    assert!(
        ready_reason(&c)
            .unwrap()
            .1
            .contains("belongs to Certificate first")
    );
    signs_nothing(&arn, before, 10).await;
    assert_eq!(
        secrets
            .get("first-tls")
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv,
        "the Secret was rewritten"
    );

    // A Certificate re-created over its old Secret gets a certificate of its own.
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    let old = certs
        .get("first")
        .await
        .unwrap()
        .status
        .unwrap()
        .serial_number
        .unwrap();
    certs
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revocation": {"reason": "keyCompromise"}}})),
        )
        .await
        .unwrap();
    wait_cert(
        &client,
        ns.name(),
        "first",
        ("False", Some("Revoked")),
        None,
    )
    .await;
    certs
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the old Certificate gone", || {
        let certs = certs.clone();
        async move { certs.get_opt("first").await.ok()?.is_none().then_some(()) }
    })
    .await;
    apply(
        env,
        &certificate(ns.name(), "first", &root, "  dnsNames: [one.example.com]\n"),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "first", ("True", Some("Issued")), None).await;
    assert_ne!(
        c.status.unwrap().serial_number.unwrap(),
        old,
        "the revoked certificate was kept"
    );
}

#[tokio::test]
async fn the_issuance_policy_refuses_tenants_before_any_signature() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let ns = env.namespace("policy").await;
    let root = unique("root");
    let inter = unique("inter");
    ready_ca(
        env,
        &root,
        "  nameConstraints: {excluded: {dnsDomains: [secret.example.com]}}\n",
    )
    .await;
    apply(
        env,
        &intermediate_ca(&inter, &root, "  maxCertificateDuration: 720h\n"),
    )
    .unwrap();
    let ica = wait_ca(&client, &inter, ("True", None), None).await;
    let arn = ica.status.unwrap().kms_key_arn.unwrap();
    let t = tenant(env, ns.name(), "tenant-policy").await;
    let cases = [
        (
            "masters",
            "  commonName: admin\n  subject: {organizations: ['system:masters']}\n",
            "SubjectNotAllowed",
        ),
        (
            "ocsp",
            "  commonName: responder\n  usages: [ocsp signing]\n",
            "UsageNotAllowed",
        ),
        (
            "codesign",
            "  commonName: signer\n  usages: [code signing]\n",
            "UsageNotAllowed",
        ),
        (
            "spiffe",
            "  uris: ['spiffe://cluster.local/ns/kube-system/sa/admin']\n",
            "URINotAllowed",
        ),
        (
            "wildcard",
            "  dnsNames: ['*.example.com']\n",
            "NameConstraintViolation",
        ),
        (
            "long",
            "  dnsNames: [long.example.com]\n  duration: 2160h\n",
            "DurationExceedsMax",
        ),
    ];
    let before = op.keys.signatures_of(&arn);
    for (name, extra, _) in &cases {
        create_as(&t, &cert_yaml(ns.name(), name, &inter, extra))
            .await
            .unwrap();
    }
    for (name, _, reason) in &cases {
        let c = wait_cert(&client, ns.name(), name, ("False", Some(reason)), None).await;
        let (_, message) = ready_reason(&c).unwrap();
        assert!(
            message.contains("spec.") || message.contains("excluded"),
            "{name}: {message}"
        );
    }
    signs_nothing(&arn, before, 3).await;
    // Defaults follow the CA: no duration under a 30-day CA is 30 days.
    create_as(
        &t,
        &cert_yaml(
            ns.name(),
            "fine",
            &inter,
            "  dnsNames: [fine.example.com]\n  uris: ['spiffe://cluster.local/ns/{ns}/sa/web']\n"
                .replace("{ns}", ns.name())
                .as_str(),
        ),
    )
    .await
    .unwrap();
    let c = wait_cert(&client, ns.name(), "fine", ("True", Some("Issued")), None).await;
    let st = c.status.unwrap();
    let nb = signet::clock::parse_rfc3339(st.not_before.as_deref().unwrap()).unwrap();
    let na = signet::clock::parse_rfc3339(st.not_after.as_deref().unwrap()).unwrap();
    assert_eq!((na - nb).whole_hours(), 720);
}

#[tokio::test]
async fn the_audit_head_is_anchored_in_the_cluster_and_a_cut_off_tail_is_detected() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let ns = env.namespace("anchor").await;
    let root = unique("root");
    ready_ca(env, &root, "").await;
    apply(
        env,
        &certificate(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), None).await;
    op.ctx.store.flush().await.unwrap();
    let (head, _) = op.ctx.store.audit_head().await.unwrap().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &op.namespace);
    let anchored = eventually("the anchor to reach the head", || {
        let cms = cms.clone();
        async move {
            let text = cms
                .get_opt("signet-audit-anchor")
                .await
                .ok()??
                .data?
                .remove("anchor.json")?;
            let a: signet::store::cli::Anchor = serde_json::from_str(&text).ok()?;
            (a.row_id >= head).then_some(a.row_id)
        }
    })
    .await;
    // A copy of the database as it is now verifies against the anchor...
    let copy = signet_testenv::run_dir().join(format!("anchor-{}.db", ns.name()));
    let src = signet_testenv::run_dir().join("inproc.db");
    let conn = rusqlite::Connection::open(&src).unwrap();
    conn.execute("VACUUM INTO ?1", [copy.display().to_string()])
        .unwrap();
    let verify = |db: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["audit", "verify", "--db"])
            .arg(db)
            .args(["--anchor", &format!("{}/signet-audit-anchor", op.namespace)])
            .envs(env.child_env())
            .output()
            .unwrap()
    };
    let out = verify(&copy);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and one whose newest rows were cut off does not, though its chain
    // is intact.
    let cut = rusqlite::Connection::open(&copy).unwrap();
    cut.execute_batch("DROP TRIGGER IF EXISTS audit_log_no_delete;")
        .unwrap();
    // Everything from the anchored row on: whatever the anchor says by the
    // time verify reads it, that row is gone.
    let cut_rows = cut
        .execute("DELETE FROM audit_log WHERE id >= ?1", [anchored])
        .unwrap();
    assert!(cut_rows > 0);
    drop(cut);
    let out = verify(&copy);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("audit trail intact") && text.contains("cut off"),
        "{text}"
    );
}

#[tokio::test]
async fn a_ca_the_tenant_may_not_use_stays_out_of_reach() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let (ns, other) = (
        env.namespace("allowed").await,
        env.namespace("elsewhere").await,
    );
    let root = unique("root");
    let arn = ready_ca(
        env,
        &root,
        &format!("  allowedNamespaces: {{names: [{}]}}\n", other.name()),
    )
    .await;
    let t = tenant(env, ns.name(), "tenant-outside").await;
    let before = op.keys.signatures_of(&arn);
    create_as(
        &t,
        &cert_yaml(ns.name(), "web", &root, "  dnsNames: [web.example.com]\n"),
    )
    .await
    .unwrap();
    wait_cert(
        &client,
        ns.name(),
        "web",
        ("False", Some("NamespaceNotAllowed")),
        None,
    )
    .await;
    signs_nothing(&arn, before, 2).await;
    // And it cannot change the CA (cluster-scoped) to let itself in.
    let cas: Api<CertificateAuthority> = Api::all(t.client.clone());
    let e = cas
        .patch(
            &root,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"allowedNamespaces": null}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 403), "{e}");
}
