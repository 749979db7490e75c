//! The operator against a real kube-apiserver and local-kms: issuance,
//! renewal, reissue, revocation, policy, bad input. One operator process
//! serves every test of this binary.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use signet::api::Certificate;
use signet_testenv::tools;

fn operator() -> &'static Operator {
    static OP: OnceLock<Operator> = OnceLock::new();
    OP.get_or_init(|| {
        let env = signet_testenv::env();
        env.kubectl_ok(&["create", "namespace", "signet-ops"]).ok();
        let db = signet_testenv::run_dir().join("controllers.db");
        Operator::start(env, "signet-ops", &db, &env.kms.endpoint)
    })
}

/// pkilint findings tolerated, with the reason. pkilint's RFC 5280 profile
/// validates SAN syntax strictly: it rejects wildcard DNS names (RFC 5280
/// does not define them; RFC 6125 and the CA/B Forum BRs do) and URIs with
/// schemes it does not know (SPIFFE IDs are RFC 3986 URIs).
const TOLERATED: &[(&str, &str)] = &[
    (
        "pkix.invalid_domain_name_syntax",
        "wildcard dNSName (RFC 6125), not an RFC 5280 host name",
    ),
    (
        "pkix.invalid_uri_syntax",
        "spiffe:// URI SAN, valid RFC 3986 but unknown to pkilint",
    ),
];

fn lint_clean(pem: &str, what: &str) {
    let findings = tools::pkilint_cert(pem.as_bytes());
    let mut errors = Vec::new();
    for f in findings.iter().filter(|f| f.is_error()) {
        match TOLERATED.iter().find(|(code, _)| *code == f.code) {
            Some((_, why)) if f.message.contains("*.") || f.message.contains("spiffe://") => {
                eprintln!(
                    "{what}: tolerating pkilint {} ({}): {why}",
                    f.code, f.message
                )
            }
            _ => errors.push(f),
        }
    }
    assert!(errors.is_empty(), "{what}: pkilint errors {errors:#?}");
}

/// Root → intermediate → server Certificate: the Secret verifies with
/// openssl as a TLS server, the CA chain and leaf lint clean, annotations
/// are set, and the CA status carries chain + fingerprint.
#[tokio::test]
async fn root_intermediate_and_server_certificate_verify_and_lint_clean() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("issue").await;
    let client = env.client().await;
    let (root, inter) = (unique("root"), unique("inter"));
    apply(env, &root_ca(&root, "  kms: {keySpec: ECC_NIST_P384}\n")).unwrap();
    // Certificates carry where to find the CRL, the OCSP responder and the
    // issuer (zlint requires them for TLS server certificates).
    apply(
        env,
        &intermediate_ca(
            &inter,
            &root,
            &format!(
                "  certificatePolicies: [2.23.140.1.2.1]\n  crlDistributionPoints: [http://signet.example/crl/{inter}.crl]\n  ocspServers: [http://signet.example/ocsp]\n  issuingCertificateURLs: [http://signet.example/ca/{inter}.pem]\n"
            ),
        ),
    )
    .unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "web",
            &inter,
            "  dnsNames: [web.example.com, '*.web.example.com']\n  ipAddresses: [10.0.0.1, '::1']\n  usages: [server auth]\n",
        ),
    )
    .unwrap();
    let ca = wait_ca(&client, &inter, ("True", Some("Issued")), op).await;
    let st = ca.status.unwrap();
    assert!(st.kms_key_arn.unwrap().starts_with("arn:aws:kms:"));
    assert_eq!(
        st.chain
            .as_deref()
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    assert_eq!(st.fingerprint_sha256.unwrap().len(), 95);
    let cert = wait_cert(&client, ns.name(), "web", ("True", Some("Issued")), op).await;
    let cst = cert.status.unwrap();
    assert_eq!(cst.revision, Some(1));
    assert!(cst.renewal_time.is_some());

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let s = secrets.get("web-tls").await.unwrap();
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    let ann = s.metadata.annotations.clone().unwrap();
    assert_eq!(ann["signet.dev/issuer"], inter);
    assert_eq!(ann["signet.dev/serial"], cst.serial_number.clone().unwrap());
    let (crt, ca_crt, key) = (
        secret_text(&s, "tls.crt"),
        secret_text(&s, "ca.crt"),
        secret_text(&s, "tls.key"),
    );
    assert_eq!(
        crt.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf + intermediate"
    );
    assert!(key.contains("BEGIN PRIVATE KEY"));
    tools::openssl_verify(&ca_crt, &crt, &crt, Some("sslserver")).unwrap();
    // Leaf and intermediate lint clean; zlint finds no error on the leaf.
    let leaf = crt
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap()
        .to_string();
    lint_clean(&leaf, "leaf");
    lint_clean(&ca_crt, "root");
    // zlint applies CA/B Forum rules for publicly-trusted certificates; a
    // private CA legitimately certifies private addresses (10.0.0.1, ::1).
    let z: Vec<_> = tools::zlint(&leaf)
        .into_iter()
        .filter(|r| r.is_error())
        .filter(|r| {
            let tolerated = r.lint == "e_ext_san_contains_reserved_ip";
            if tolerated {
                eprintln!(
                    "tolerating zlint {}: private PKI certifies reserved IPs",
                    r.lint
                );
            }
            !tolerated
        })
        .collect();
    assert!(z.is_empty(), "zlint errors: {z:#?}");
    // The private key never reaches status, events or the operator log.
    let secret_body = key.lines().nth(1).unwrap().to_string();
    assert!(
        !std::fs::read_to_string(&op.log)
            .unwrap()
            .contains(&secret_body)
    );
    let events = env
        .kubectl_ok(&["get", "events", "-n", ns.name(), "-o", "yaml"])
        .unwrap();
    assert!(events.contains("Issued") && !events.contains(&secret_body));
}

/// An mTLS client certificate verifies for `sslclient`, RSA with PKCS#1.
#[tokio::test]
async fn client_certificate_with_rsa_pkcs1_key() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("client").await;
    let client = env.client().await;
    let root = unique("croot");
    apply(env, &root_ca(&root, "")).unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "client",
            &root,
            &format!("  commonName: service-a\n  uris: [spiffe://cluster.local/ns/{}/sa/b]\n  usages: [client auth]\n  privateKey: {{algorithm: RSA, size: 2048, encoding: PKCS1}}\n", ns.name()),
        ),
    )
    .unwrap();
    wait_cert(&client, ns.name(), "client", ("True", None), op).await;
    let s = Api::<Secret>::namespaced(client, ns.name())
        .get("client-tls")
        .await
        .unwrap();
    assert!(secret_text(&s, "tls.key").contains("BEGIN RSA PRIVATE KEY"));
    let crt = secret_text(&s, "tls.crt");
    tools::openssl_verify(&secret_text(&s, "ca.crt"), "", &crt, Some("sslclient")).unwrap();
    assert!(
        tools::openssl_verify(&secret_text(&s, "ca.crt"), "", &crt, Some("sslserver")).is_err()
    );
    lint_clean(&crt, "client leaf");
}

/// Spec change reissues; an unrelated label on the Secret does not; a
/// deleted Secret is recreated; a Secret whose key no longer matches is
/// repaired.
#[tokio::test]
async fn reissue_on_spec_change_deleted_or_corrupted_secret_but_not_on_unrelated_edits() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("reissue").await;
    let client = env.client().await;
    let root = unique("rroot");
    apply(env, &root_ca(&root, "")).unwrap();
    let manifest =
        |dns: &str| certificate(ns.name(), "app", &root, &format!("  dnsNames: [{dns}]\n"));
    apply(env, &manifest("a.example.com")).unwrap();
    let c1 = wait_cert(&client, ns.name(), "app", ("True", None), op).await;
    let serial1 = c1.status.unwrap().serial_number.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());

    // Another tool labels the Secret: no reissue, label kept.
    secrets
        .patch("app-tls", &PatchParams::apply("other-tool"), &Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-tls", "labels": {"team": "blue"}}
        })))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = secrets.get("app-tls").await.unwrap();
    assert_eq!(s.metadata.labels.as_ref().unwrap()["team"], "blue");
    assert_eq!(
        s.metadata.annotations.as_ref().unwrap()["signet.dev/serial"],
        serial1
    );

    // Spec change → new serial with the new name.
    apply(env, &manifest("b.example.com")).unwrap();
    let serial2 = wait_for(
        "reissue after spec change",
        Duration::from_secs(60),
        Some(op),
        || {
            let certs = certs.clone();
            let serial1 = serial1.clone();
            async move {
                let s = certs.get("app").await.ok()?.status?.serial_number?;
                (s != serial1).then_some(s)
            }
        },
    )
    .await;
    let c = certs.get("app").await.unwrap();
    assert_eq!(c.status.unwrap().revision, Some(2));

    // Secret deleted → recreated (watch, no polling).
    secrets
        .delete("app-tls", &DeleteParams::default())
        .await
        .unwrap();
    let serial3 = wait_for(
        "secret recreated",
        Duration::from_secs(30),
        Some(op),
        || {
            let secrets = secrets.clone();
            async move {
                let s = secrets.get_opt("app-tls").await.ok()??;
                s.metadata.annotations?.get("signet.dev/serial").cloned()
            }
        },
    )
    .await;
    assert_ne!(serial3, serial2);

    // A key that does not match the certificate is never left in place.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    secrets
        .patch(
            "app-tls",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "stringData": {"tls.key": other}
            })),
        )
        .await
        .unwrap();
    let fixed = wait_for(
        "mismatched key repaired",
        Duration::from_secs(30),
        Some(op),
        || {
            let secrets = secrets.clone();
            let serial3 = serial3.clone();
            async move {
                let s = secrets.get("app-tls").await.ok()?;
                let serial = s
                    .metadata
                    .annotations
                    .clone()?
                    .get("signet.dev/serial")
                    .cloned()?;
                (serial != serial3).then_some(s)
            }
        },
    )
    .await;
    let contents = signet::pki::read_tls(
        Some(secret_text(&fixed, "tls.crt").as_bytes()),
        Some(secret_text(&fixed, "tls.key").as_bytes()),
    );
    assert!(matches!(contents.key, signet::pki::KeyState::Matches(_)));
}

/// Short-lived certificates renew on time (requeue at renewalTime).
#[tokio::test]
async fn certificate_renews_at_its_renewal_time() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("renew").await;
    let client = env.client().await;
    let root = unique("nroot");
    apply(env, &root_ca(&root, "")).unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "short",
            &root,
            "  dnsNames: [short.example.com]\n  duration: 60s\n  renewBefore: 45s\n",
        ),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "short", ("True", None), op).await;
    let first = c.status.unwrap().serial_number.unwrap();
    let certs: Api<Certificate> = Api::namespaced(client, ns.name());
    let st = wait_for("renewal", Duration::from_secs(60), Some(op), || {
        let certs = certs.clone();
        let first = first.clone();
        async move {
            let st = certs.get("short").await.ok()?.status?;
            (st.serial_number.as_deref() != Some(first.as_str())).then_some(st)
        }
    })
    .await;
    assert_eq!(st.revision, Some(2));
    let events = env.kubectl_ok(&["get", "events", "-n", ns.name()]).unwrap();
    assert!(events.contains("Renewed"), "{events}");
}

/// A Certificate naming a missing CA waits with IssuerNotFound and is
/// issued once the CA appears.
#[tokio::test]
async fn missing_issuer_then_issued_when_the_ca_appears() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("late").await;
    let client = env.client().await;
    let root = unique("lroot");
    apply(
        env,
        &certificate(
            ns.name(),
            "early",
            &root,
            "  dnsNames: [early.example.com]\n",
        ),
    )
    .unwrap();
    let c = wait_cert(
        &client,
        ns.name(),
        "early",
        ("False", Some("IssuerNotFound")),
        op,
    )
    .await;
    let (_, _, msg) = ready(&c.status.unwrap().conditions).unwrap();
    assert!(msg.contains(&root), "{msg}");
    apply(env, &root_ca(&root, "")).unwrap();
    wait_cert(&client, ns.name(), "early", ("True", Some("Issued")), op).await;
}

/// Policy denials: namespace, duration, name constraints — Ready=False
/// with the rule's reason and no certificate issued.
#[tokio::test]
async fn policy_denials_name_the_rule_and_issue_nothing() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("policy").await;
    let client = env.client().await;
    let root = unique("proot");
    apply(
        env,
        &root_ca(
            &root,
            &format!(
                "  maxCertificateDuration: 720h\n  nameConstraints:\n    permitted: {{dnsDomains: [example.com]}}\n  allowedNamespaces: {{names: [{}]}}\n",
                ns.name()
            ),
        ),
    )
    .unwrap();
    let other = env.namespace("policy-other").await;
    apply(
        env,
        &certificate(
            other.name(),
            "wrong-ns",
            &root,
            "  dnsNames: [a.example.com]\n",
        ),
    )
    .unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "too-long",
            &root,
            "  dnsNames: [a.example.com]\n  duration: 2160h\n",
        ),
    )
    .unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "bad-name",
            &root,
            "  dnsNames: [evil.org]\n  duration: 24h\n",
        ),
    )
    .unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "fine",
            &root,
            "  dnsNames: [ok.example.com]\n  duration: 720h\n",
        ),
    )
    .unwrap();
    wait_cert(
        &client,
        other.name(),
        "wrong-ns",
        ("False", Some("NamespaceNotAllowed")),
        op,
    )
    .await;
    wait_cert(
        &client,
        ns.name(),
        "too-long",
        ("False", Some("DurationExceedsMax")),
        op,
    )
    .await;
    wait_cert(
        &client,
        ns.name(),
        "bad-name",
        ("False", Some("NameConstraintViolation")),
        op,
    )
    .await;
    wait_cert(&client, ns.name(), "fine", ("True", None), op).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    assert!(secrets.get_opt("too-long-tls").await.unwrap().is_none());
    assert!(secrets.get_opt("bad-name-tls").await.unwrap().is_none());
    // The CA certificate carries the constraint too.
    let ca = wait_ca(&client, &root, ("True", None), op).await;
    let text = tools::openssl(&[
        "x509",
        "-noout",
        "-text",
        "-in",
        &tools::artifact("nc.pem", ca.status.unwrap().certificate.unwrap().as_bytes())
            .display()
            .to_string(),
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("Name Constraints"));
}

/// A spec the schema accepts but Signet cannot honour: InvalidSpec, once.
#[tokio::test]
async fn invalid_spec_that_passes_the_schema_is_reported_without_a_retry_loop() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("invalid").await;
    let client = env.client().await;
    let root = unique("iroot");
    apply(env, &root_ca(&root, "")).unwrap();
    apply(
        env,
        &certificate(ns.name(), "bad", &root, "  dnsNames: ['a..example.com']\n"),
    )
    .unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "renew",
            &root,
            "  dnsNames: [x.example.com]\n  duration: 1h\n  renewBefore: 2h\n",
        ),
    )
    .unwrap();
    let c = wait_cert(
        &client,
        ns.name(),
        "bad",
        ("False", Some("InvalidSpec")),
        op,
    )
    .await;
    let (_, _, msg) = ready(&c.status.clone().unwrap().conditions).unwrap();
    assert!(msg.contains("dnsNames[0]"), "{msg}");
    let c2 = wait_cert(
        &client,
        ns.name(),
        "renew",
        ("False", Some("InvalidSpec")),
        op,
    )
    .await;
    let (_, _, msg) = ready(&c2.status.unwrap().conditions).unwrap();
    assert!(msg.contains("spec.renewBefore"), "{msg}");
    // No hot loop: the status is not rewritten while nothing changes.
    let rv1 = c.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again = Api::<Certificate>::namespaced(client, ns.name())
        .get("bad")
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, rv1);
    assert_eq!(again.status.unwrap().failed_issuance_attempts, None);
}

/// Objects the schema or CEL rules reject never reach the operator.
#[tokio::test]
async fn invalid_objects_are_rejected_at_admission_with_readable_messages() {
    let env = signet_testenv::env();
    let ns = env.namespace("admission").await;
    let cases = [
        (
            certificate(
                ns.name(),
                "enum",
                "x",
                "  dnsNames: [a.example.com]\n  privateKey: {algorithm: DSA}\n",
            ),
            "supported values: \"ECDSA\", \"RSA\", \"Ed25519\"",
        ),
        (
            certificate(
                ns.name(),
                "neg",
                "x",
                "  dnsNames: [a.example.com]\n  duration: -5h\n",
            ),
            "must be a positive Go duration",
        ),
        (
            certificate(ns.name(), "empty", "x", "  dnsNames: ['']\n"),
            "dnsNames entries must be non-empty",
        ),
        (
            certificate(ns.name(), "nothing", "x", ""),
            "set commonName or at least one of dnsNames",
        ),
        (
            certificate(
                ns.name(),
                "size",
                "x",
                "  dnsNames: [a.example.com]\n  privateKey: {algorithm: RSA, size: 1024}\n",
            ),
            "size must be 256 or 384 for ECDSA",
        ),
        (
            root_ca(
                &unique("both"),
                "  kms: {keyId: alias/x, keySpec: ECC_NIST_P256}\n",
            ),
            "set either keyId",
        ),
        (
            certificate(ns.name(), "ip", "x", "  ipAddresses: [300.1.1.1]\n"),
            "ipAddresses entries must be IPv4 or IPv6",
        ),
    ];
    for (yaml, want) in cases {
        let err = apply(env, &yaml).expect_err(&yaml);
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
}

/// Declarative revocation: the serial appears in the published CRL (parsed
/// and linted) within seconds; the Certificate is not reissued; deleting it
/// does not un-revoke.
#[tokio::test]
async fn revocation_appears_in_the_crl_and_survives_deleting_the_certificate() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("revoke").await;
    let client = env.client().await;
    let root = unique("vroot");
    let crl_name = unique("vcrl");
    apply(env, &root_ca(&root, "")).unwrap();
    apply(env, &crl(&crl_name, &root, "signet-ops")).unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "doomed",
            &root,
            "  dnsNames: [doomed.example.com]\n",
        ),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "doomed", ("True", None), op).await;
    let serial = c.status.unwrap().serial_number.unwrap();
    let first = wait_crl(&client, &crl_name, 1, op)
        .await
        .status
        .unwrap()
        .crl_number
        .unwrap();

    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    certs
        .patch(
            "doomed",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"revocation": {"reason": "keyCompromise"}}
            })),
        )
        .await
        .unwrap();
    wait_cert(&client, ns.name(), "doomed", ("False", Some("Revoked")), op).await;
    let crl_obj = wait_crl(&client, &crl_name, first + 1, op).await;
    assert_eq!(crl_obj.status.clone().unwrap().revoked_count, Some(1));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "signet-ops");
    let cm = cms.get(&format!("{crl_name}-crl")).await.unwrap();
    let der = cm.binary_data.unwrap()["ca.crl"].0.clone();
    let entries = crl_entries(&der);
    assert!(
        entries
            .iter()
            .any(|(s, _, r)| s == &serial && r == "keyCompromise"),
        "{entries:?}"
    );
    let findings = tools::pkilint_crl(&der);
    assert!(findings.iter().all(|f| !f.is_error()), "{findings:#?}");
    // Over HTTP too.
    let (status, body) = op.pki_get(&format!("/crl/{crl_name}.crl")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(crl_entries(&body).len(), 1);
    // Removing the revocation is refused at admission.
    let err = certs
        .patch(
            "doomed",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"revocation": null}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revocation is permanent"), "{err}");
    // Deleting the Certificate keeps the serial in the next CRL.
    certs
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let api: Api<signet::api::CRL> = Api::all(client.clone());
    api.patch(
        &crl_name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"validity": "23h"}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cm = cms.get(&format!("{crl_name}-crl")).await.unwrap();
    let der = cm.binary_data.unwrap()["ca.crl"].0.clone();
    assert!(crl_entries(&der).iter().any(|(s, _, _)| s == &serial));
}

/// `signet revoke --reissue` revokes the current serial and issues a new
/// key + certificate; the audit trail names the CLI user.
#[tokio::test]
async fn cli_revoke_with_reissue_issues_a_fresh_key() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("cli").await;
    let client = env.client().await;
    let root = unique("qroot");
    let crl_name = unique("qcrl");
    apply(env, &root_ca(&root, "")).unwrap();
    apply(env, &crl(&crl_name, &root, "signet-ops")).unwrap();
    apply(
        env,
        &certificate(ns.name(), "svc", &root, "  dnsNames: [svc.example.com]\n"),
    )
    .unwrap();
    let c = wait_cert(&client, ns.name(), "svc", ("True", None), op).await;
    let old = c.status.unwrap().serial_number.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let old_key = secret_text(&secrets.get("svc-tls").await.unwrap(), "tls.key");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args([
            "revoke",
            &format!("{}/svc", ns.name()),
            "--reason",
            "superseded",
            "--reissue",
        ])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("SIGNET_ACTOR", "alice")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reissued as serial"), "{stdout}");
    let c = wait_cert(&client, ns.name(), "svc", ("True", None), op).await;
    assert_ne!(c.status.unwrap().serial_number.unwrap(), old);
    assert_ne!(
        secret_text(&secrets.get("svc-tls").await.unwrap(), "tls.key"),
        old_key
    );
    wait_for(
        "old serial in the CRL",
        Duration::from_secs(30),
        Some(op),
        || {
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "signet-ops");
            let name = format!("{crl_name}-crl");
            let old = old.clone();
            async move {
                let cm = cms.get_opt(&name).await.ok()??;
                let der = cm.binary_data?.get("ca.crl")?.0.clone();
                crl_entries(&der)
                    .iter()
                    .any(|(s, _, _)| *s == old)
                    .then_some(())
            }
        },
    )
    .await;
    // Bad CLI input: clear errors.
    for (args, want) in [
        (
            vec!["revoke", "no-slash", "--reason", "keyCompromise"],
            "<namespace>/<name>",
        ),
        (vec!["revoke", "a/b", "--reason", "stolen"], "keyCompromise"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(&args)
            .env("KUBECONFIG", &env.kubeconfig)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// rotationPolicy Never keeps the key across a reissue; Always changes it.
#[tokio::test]
async fn rotation_policy_never_keeps_the_key() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("rotate").await;
    let client = env.client().await;
    let root = unique("oroot");
    apply(env, &root_ca(&root, "")).unwrap();
    let m = |dns: &str| {
        certificate(
            ns.name(),
            "keep",
            &root,
            &format!("  dnsNames: [{dns}]\n  privateKey: {{rotationPolicy: Never}}\n"),
        )
    };
    apply(env, &m("k1.example.com")).unwrap();
    let c = wait_cert(&client, ns.name(), "keep", ("True", None), op).await;
    let serial = c.status.unwrap().serial_number.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let key1 = secret_text(&secrets.get("keep-tls").await.unwrap(), "tls.key");
    apply(env, &m("k2.example.com")).unwrap();
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    wait_for("reissue", Duration::from_secs(30), Some(op), || {
        let certs = certs.clone();
        let serial = serial.clone();
        async move {
            let s = certs.get("keep").await.ok()?.status?.serial_number?;
            (s != serial).then_some(())
        }
    })
    .await;
    assert_eq!(
        secret_text(&secrets.get("keep-tls").await.unwrap(), "tls.key"),
        key1
    );
}

/// Every operation leaves its audit row, and the chain verifies.
#[tokio::test]
async fn operations_leave_audit_rows_and_metrics() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("audit").await;
    let client = env.client().await;
    let root = unique("aroot");
    apply(env, &root_ca(&root, "")).unwrap();
    apply(
        env,
        &certificate(ns.name(), "a", &root, "  dnsNames: [a.example.com]\n"),
    )
    .unwrap();
    apply(
        env,
        &certificate(ns.name(), "denied", &root, "  dnsNames: ['a..b']\n"),
    )
    .unwrap();
    wait_cert(&client, ns.name(), "a", ("True", None), op).await;
    let audit = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(args)
            .arg("--db")
            .arg(&op.db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    apply(env, &crl(&format!("{root}-crl"), &root, "signet-ops")).unwrap();
    // A spec change (renewed), a revocation, a policy denial.
    apply(
        env,
        &certificate(ns.name(), "a", &root, "  dnsNames: [a2.example.com]\n"),
    )
    .unwrap();
    let limited = unique("alimited");
    apply(env, &root_ca(&limited, "  maxCertificateDuration: 24h\n")).unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "capped",
            &limited,
            "  dnsNames: [c.example.com]\n  duration: 48h\n",
        ),
    )
    .unwrap();
    wait_cert(
        &client,
        ns.name(),
        "capped",
        ("False", Some("DurationExceedsMax")),
        op,
    )
    .await;
    let certs_api: Api<Certificate> = Api::namespaced(client.clone(), ns.name());
    wait_for("renewal", Duration::from_secs(30), Some(op), || {
        let certs_api = certs_api.clone();
        async move { (certs_api.get("a").await.ok()?.status?.revision? == 2).then_some(()) }
    })
    .await;
    certs_api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"revocation": {"reason": "cessationOfOperation"}}
            })),
        )
        .await
        .unwrap();
    let rows = wait_for("audit rows", Duration::from_secs(30), Some(op), || {
        let out = audit(&["audit", "--ca", &root, "--json"]);
        async move {
            [
                "kms_key_created",
                "ca_issued",
                "certificate_issued",
                "certificate_renewed",
                "certificate_revoked",
                "crl_published",
            ]
            .iter()
            .all(|o| out.contains(o))
            .then_some(out)
        }
    })
    .await;
    let denied = audit(&[
        "audit",
        "--operation",
        "policy_denied",
        "--namespace",
        ns.name(),
    ]);
    assert!(
        denied.contains("policy_denied") && denied.contains("denied"),
        "{denied}"
    );
    let revoked = audit(&[
        "audit",
        "--ca",
        &root,
        "--operation",
        "certificate_revoked",
        "--json",
    ]);
    assert!(revoked.contains("cessationOfOperation"), "{revoked}");
    assert!(
        rows.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    assert!(audit(&["audit", "verify"]).contains("intact"));
    let certs = audit(&["certs", "--ca", &root]);
    assert!(certs.contains(ns.name()), "{certs}");
    let (status, metrics) = op.http_get("/metrics").unwrap();
    assert_eq!(status, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("signet_certificates_issued_total"));
    assert!(
        metrics
            .contains("signet_reconcile_total{controller=\"certificate\",result=\"InvalidSpec\"}")
    );
    // Object names appear only in the per-object series (as cert-manager's
    // do), never in the labels of counters and histograms.
    for line in metrics.lines().filter(|l| l.contains(ns.name())) {
        assert!(
            line.starts_with("signet_certificate_"),
            "an object name in an event metric's labels: {line}"
        );
    }
}

/// Finalizers only where cleanup is real: a default CA has none (deleting
/// it never waits for the operator); with `deletionPolicy:
/// ScheduleDeletion` the created key is scheduled for deletion in KMS.
#[tokio::test]
async fn ca_deletion_schedules_key_deletion_only_when_asked() {
    use signet::api::CertificateAuthority;
    let env = signet_testenv::env();
    let op = operator();
    let client = env.client().await;
    let (keep, drop) = (unique("keep"), unique("drop"));
    apply(env, &root_ca(&keep, "")).unwrap();
    apply(
        env,
        &root_ca(&drop, "  kms: {deletionPolicy: ScheduleDeletion}\n"),
    )
    .unwrap();
    let kept = wait_ca(&client, &keep, ("True", None), op).await;
    let dropped = wait_ca(&client, &drop, ("True", None), op).await;
    assert!(kept.metadata.finalizers.unwrap_or_default().is_empty());
    assert_eq!(
        dropped.metadata.finalizers.clone().unwrap_or_default(),
        vec!["signet.dev/kms-key-deletion".to_string()]
    );
    let arn = dropped.status.unwrap().kms_key_arn.unwrap();
    let api: Api<CertificateAuthority> = Api::all(client.clone());
    api.delete(&drop, &DeleteParams::default()).await.unwrap();
    api.delete(&keep, &DeleteParams::default()).await.unwrap();
    wait_for("CA gone", Duration::from_secs(30), Some(op), || {
        let api = api.clone();
        let drop = drop.clone();
        async move { api.get_opt(&drop).await.ok()?.is_none().then_some(()) }
    })
    .await;
    let kms = kms_sdk(&env.kms);
    let meta = kms
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(
        meta.key_state,
        Some(aws_sdk_kms::types::KeyState::PendingDeletion)
    );
}

/// A CA renewed before expiry keeps its key, so a leaf issued under the old
/// CA certificate still verifies against the new one; the renewal is
/// audited as ca_renewed.
#[tokio::test]
async fn ca_renewal_keeps_leaves_issued_under_the_old_certificate_valid() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("carenew").await;
    let client = env.client().await;
    let root = unique("rnroot");
    apply(
        env,
        &root_ca(&root, "  duration: 10m\n  renewBefore: 9m30s\n"),
    )
    .unwrap();
    let ca1 = wait_ca(&client, &root, ("True", None), op).await;
    let old_root = ca1.status.clone().unwrap().certificate.unwrap();
    let old_serial = ca1.status.unwrap().serial_number.unwrap();
    apply(
        env,
        &certificate(
            ns.name(),
            "leaf",
            &root,
            "  dnsNames: [leaf.example.com]\n  duration: 5m\n  renewBefore: 1m\n",
        ),
    )
    .unwrap();
    wait_cert(&client, ns.name(), "leaf", ("True", None), op).await;
    let s = Api::<Secret>::namespaced(client.clone(), ns.name())
        .get("leaf-tls")
        .await
        .unwrap();
    let leaf = secret_text(&s, "tls.crt");
    tools::openssl_verify(&old_root, "", &leaf, Some("sslserver")).unwrap();
    // Renewal is due 30 s after issuance.
    let api: Api<signet::api::CertificateAuthority> = Api::all(client.clone());
    let new_root = wait_for("CA renewal", Duration::from_secs(90), Some(op), || {
        let api = api.clone();
        let root = root.clone();
        let old_serial = old_serial.clone();
        async move {
            let st = api.get(&root).await.ok()?.status?;
            (st.serial_number.as_deref() != Some(old_serial.as_str())).then_some(st.certificate?)
        }
    })
    .await;
    assert_ne!(new_root, old_root);
    tools::openssl_verify(&new_root, "", &leaf, Some("sslserver"))
        .expect("a leaf from before the CA renewal verifies against the renewed CA certificate");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["audit", "--ca", &root, "--operation", "ca_renewed", "--db"])
        .arg(&op.db)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ca_renewed"));
}

/// A CA whose key cannot be used is not Ready (reason from KMS, audited as
/// signing_failed); its Certificates wait with IssuerNotReady; adopting an
/// existing key works and is audited as kms_key_adopted.
#[tokio::test]
async fn unusable_kms_key_and_issuer_not_ready_then_adoption() {
    let env = signet_testenv::env();
    let op = operator();
    let ns = env.namespace("notready").await;
    let client = env.client().await;
    let (broken, adopted) = (unique("broken"), unique("adopted"));
    apply(
        env,
        &root_ca(
            &broken,
            "  kms: {keyId: alias/signet-test/does-not-exist}\n",
        ),
    )
    .unwrap();
    let ca = wait_ca(&client, &broken, ("False", Some("KMSKeyNotFound")), op).await;
    let (_, _, msg) = ready(&ca.status.unwrap().conditions).unwrap();
    assert!(msg.contains("does-not-exist"), "{msg}");
    apply(
        env,
        &certificate(
            ns.name(),
            "waiting",
            &broken,
            "  dnsNames: [w.example.com]\n",
        ),
    )
    .unwrap();
    wait_cert(
        &client,
        ns.name(),
        "waiting",
        ("False", Some("IssuerNotReady")),
        op,
    )
    .await;

    // Adopt a key made outside Signet, by alias.
    let kms = kms_sdk(&env.kms);
    let key = kms
        .create_key()
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP384)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let alias = format!("alias/external/{adopted}");
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    apply(
        env,
        &root_ca(&adopted, &format!("  kms: {{keyId: {alias}}}\n")),
    )
    .unwrap();
    let ca = wait_ca(&client, &adopted, ("True", None), op).await;
    assert_eq!(ca.status.unwrap().kms_key_arn, key.arn);

    let audit = |op_name: &str, ca: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args([
                "audit",
                "--ca",
                ca,
                "--operation",
                op_name,
                "--json",
                "--db",
            ])
            .arg(&op.db)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("audit rows", Duration::from_secs(20), Some(op), || {
        let ok = audit("signing_failed", &broken).contains("KMSKeyNotFound")
            && audit("kms_key_adopted", &adopted).contains("kms_key_adopted");
        async move { ok.then_some(()) }
    })
    .await;
}
