//! Signet as a cert-manager external issuer, against the real API server
//! with cert-manager's own CertificateRequest CRD (tests/fixtures, copied
//! from the cert-manager Go module by hack/cert-manager-crds.sh). Requests
//! are created the way cert-manager's controller creates them (a PEM CSR
//! made by openssl, its annotations, `spec.usages`, approval as a status
//! condition); the reconcilers run in-process with an in-memory key store
//! that counts every signature.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use signet::controller::certmanager::{self, CertificateRequest};
use signet::store::{AuditOperation, AuditQuery};
use signet_testenv::tools;

/// What the start-up showed about the issuer without and with the CRDs.
struct Startup {
    off_without_crds: bool,
    absent_checks: u64,
    on_after_install: bool,
}

/// Starts the in-process operator without cert-manager's CRDs, watches the
/// issuer stay off, installs the CRDs and waits for it to start. Every test
/// runs after this.
fn cert_manager() -> &'static Startup {
    static STARTUP: OnceLock<Startup> = OnceLock::new();
    STARTUP.get_or_init(|| {
        let env = signet_testenv::env();
        assert!(
            env.kubectl_ok(&["get", "crd", "certificaterequests.cert-manager.io"])
                .is_err(),
            "the shared control plane must start without cert-manager's CRDs"
        );
        in_process();
        let wait = |what: &str, f: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            while !f() {
                assert!(start.elapsed() < Duration::from_secs(60), "{what}");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        wait("the issuer never checked for the CRDs", &|| {
            certmanager::absent_checks() >= 2
        });
        let off_without_crds = !certmanager::is_active();
        let absent_checks = certmanager::absent_checks();
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cert-manager-crds.yaml"
        );
        env.kubectl_ok(&["apply", "--server-side", "-f", fixture])
            .expect("installing cert-manager's CRD");
        env.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/certificaterequests.cert-manager.io",
            "--timeout=60s",
        ])
        .expect("cert-manager's CRD established");
        wait("the issuer did not start after the CRDs appeared", &|| {
            certmanager::is_active()
        });
        Startup {
            off_without_crds,
            absent_checks,
            on_after_install: certmanager::is_active(),
        }
    })
}

/// A fresh P-256 key and a CSR for it (openssl), with `subj` and `sans`
/// (`DNS:a.example.com,...`, empty for none). Returns the CSR PEM.
fn csr(subj: &str, sans: &str) -> String {
    let key = tools::artifact("csr.key", b"");
    let out = tools::artifact("csr.pem", b"");
    let (key, out) = (key.display().to_string(), out.display().to_string());
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        subj,
        "-out",
        &out,
    ];
    let ext = format!("subjectAltName={sans}");
    if !sans.is_empty() {
        args.extend(["-addext", &ext]);
    }
    let res = tools::openssl(&args);
    assert!(
        res.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::read_to_string(&out).unwrap()
}

/// A CertificateRequest as cert-manager's certificates controller writes
/// it for Certificate `name`, pointing at Signet CA `ca`.
fn request(
    ns: &str,
    name: &str,
    ca: &str,
    csr_pem: &str,
    extra: serde_json::Value,
) -> CertificateRequest {
    use base64::Engine as _;
    let mut spec = json!({
        "issuerRef": {"group": "signet.dev", "kind": "CertificateAuthority", "name": ca},
        "request": base64::engine::general_purpose::STANDARD.encode(csr_pem),
        "usages": ["digital signature", "key encipherment"],
        "duration": "2160h0m0s",
        "username": "system:serviceaccount:cert-manager:cert-manager",
        "groups": ["system:serviceaccounts", "system:authenticated"],
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": name, "namespace": ns, "annotations": {
            "cert-manager.io/certificate-name": name,
            "cert-manager.io/certificate-revision": "1",
            "cert-manager.io/private-key-secret-name": format!("{name}-key"),
        }},
        "spec": spec,
    }))
    .unwrap()
}

async fn create(client: &kube::Client, cr: &CertificateRequest) -> CertificateRequest {
    Api::<CertificateRequest>::namespaced(client.clone(), &cr.namespace().unwrap())
        .create(&PostParams::default(), cr)
        .await
        .unwrap_or_else(|e| panic!("creating CertificateRequest {}: {e}", cr.name_any()))
}

/// Sets `type_=True` the way an approver does (its own field manager, so
/// Signet's `Ready` stays Signet's).
async fn set_condition(client: &kube::Client, ns: &str, name: &str, type_: &str) {
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), ns);
    let by = if type_ == "Approved" {
        "approved"
    } else {
        "denied"
    };
    let body = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": name},
        "status": {"conditions": [{
            "type": type_, "status": "True", "reason": "signet-tests",
            "message": format!("Certificate request has been {by} by the test approver"),
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]},
    });
    api.patch_status(
        name,
        &PatchParams::apply("test-approver").force(),
        &Patch::Apply(body),
    )
    .await
    .unwrap_or_else(|e| panic!("setting {type_} on {ns}/{name}: {e}"));
}

/// Waits until the request's Ready condition has `reason`; returns it.
async fn wait_reason(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> CertificateRequest {
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("CertificateRequest {ns}/{name} Ready reason {reason}"),
        || {
            let api = api.clone();
            async move {
                let cr = api.get_opt(name).await.ok()??;
                (cr.condition("Ready")?.reason.as_deref() == Some(reason)).then_some(cr)
            }
        },
    )
    .await
}

fn ready_message(cr: &CertificateRequest) -> String {
    cr.condition("Ready")
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// A Ready root CA `name` (with `extra` spec lines); returns its key ARN.
async fn ready_root(client: &kube::Client, name: &str, extra: &str) -> String {
    apply(signet_testenv::env(), &root_ca(name, extra)).unwrap();
    let ca = wait_ca(client, name, ("True", None), None).await;
    ca.status.unwrap().kms_key_arn.unwrap()
}

fn text(b: &Option<k8s_openapi::ByteString>) -> String {
    b.as_ref()
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

/// The audit rows of operation `op` about request `ns/name`.
async fn audit_rows(ns: &str, name: &str, op: AuditOperation) -> Vec<signet::store::AuditRow> {
    let op_ctx = &in_process().ctx;
    op_ctx.store.flush().await.unwrap();
    op_ctx
        .store
        .audit_rows(AuditQuery {
            namespace: Some(ns.into()),
            object_name: Some(name.into()),
            operation: Some(op),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.object_kind == "CertificateRequest")
        .collect()
}

#[tokio::test]
async fn the_issuer_is_off_without_the_crds_and_starts_when_they_are_installed() {
    let s = cert_manager();
    assert!(
        s.off_without_crds,
        "the issuer ran before cert-manager's CRDs existed"
    );
    assert!(s.absent_checks >= 2, "discovery was not polled");
    assert!(s.on_after_install, "the issuer did not start");
}

#[tokio::test]
async fn an_approved_request_in_an_allowed_namespace_is_issued_and_verifies_with_openssl() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-issue").await;
    let (root, inter) = (unique("cm-root"), unique("cm-inter"));
    ready_root(&client, &root, "").await;
    apply(
        env,
        &intermediate_ca(
            &inter,
            &root,
            &format!("  allowedNamespaces: {{names: [{}]}}\n", ns.name()),
        ),
    )
    .unwrap();
    let arn = wait_ca(&client, &inter, ("True", None), None)
        .await
        .status
        .unwrap()
        .kms_key_arn
        .unwrap();
    let keys = &in_process().keys;
    let before = keys.signatures_of(&arn);
    let pem = csr("/CN=web.example.com", "DNS:web.example.com,IP:10.1.2.3");
    create(&client, &request(ns.name(), "web", &inter, &pem, json!({}))).await;
    set_condition(&client, ns.name(), "web", "Approved").await;
    let cr = wait_reason(&client, ns.name(), "web", "Issued").await;
    let st = cr.status.clone().unwrap();
    assert_eq!(cr.condition("Ready").unwrap().status, "True");
    assert!(cr.is_true("Approved"), "the approver's condition was kept");
    let chain = text(&st.certificate);
    let ca = text(&st.ca);
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "status.certificate is the leaf and the intermediate:\n{chain}"
    );
    tools::openssl_verify(&ca, &chain, &chain, Some("sslserver"))
        .expect("the issued chain verifies against status.ca");
    let facts = signet::pki::parse::first_cert_facts(chain.as_bytes()).unwrap();
    assert_eq!(keys.signatures_of(&arn) - before, 1, "one KMS Sign");

    let ctx = &in_process().ctx;
    let rows = ctx
        .store
        .list_certificates(signet::store::CertQuery {
            namespace: Some(ns.name().into()),
            name: Some("web".into()),
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one mirror row");
    assert_eq!(rows[0].serial, facts.serial_hex);
    assert_eq!(rows[0].ca, inter);
    assert_eq!(rows[0].uid, cr.uid().unwrap());
    let audit = audit_rows(ns.name(), "web", AuditOperation::CertificateIssued).await;
    assert_eq!(audit.len(), 1, "one audit row: {audit:?}");
    assert_eq!(
        audit[0].actor, "system:serviceaccount:cert-manager:cert-manager",
        "the actor is the request's spec.username"
    );
    assert_eq!(audit[0].serial.as_deref(), Some(facts.serial_hex.as_str()));
}

#[tokio::test]
async fn an_unapproved_request_stays_pending_and_nothing_is_signed() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-pending").await;
    let root = unique("cm-pending");
    let arn = ready_root(&client, &root, "").await;
    let keys = &in_process().keys;
    let before = keys.signatures_of(&arn);
    let pem = csr("/CN=p.example.com", "DNS:p.example.com");
    create(&client, &request(ns.name(), "p", &root, &pem, json!({}))).await;
    let cr = wait_reason(&client, ns.name(), "p", "Pending").await;
    assert!(
        ready_message(&cr).contains("approved"),
        "{}",
        ready_message(&cr)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), ns.name());
    let cr = api.get("p").await.unwrap();
    assert!(cr.status.unwrap().certificate.is_none());
    assert_eq!(
        keys.signatures_of(&arn),
        before,
        "nothing signed before approval"
    );
}

#[tokio::test]
async fn a_denied_request_is_marked_failed_and_not_signed() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-denied").await;
    let root = unique("cm-denied");
    let arn = ready_root(&client, &root, "").await;
    let keys = &in_process().keys;
    let before = keys.signatures_of(&arn);
    let pem = csr("/CN=d.example.com", "DNS:d.example.com");
    create(&client, &request(ns.name(), "d", &root, &pem, json!({}))).await;
    set_condition(&client, ns.name(), "d", "Denied").await;
    let cr = wait_reason(&client, ns.name(), "d", "Denied").await;
    let st = cr.status.clone().unwrap();
    assert_eq!(cr.condition("Ready").unwrap().status, "False");
    assert!(
        st.failure_time.is_some(),
        "failureTime set as cert-manager does"
    );
    assert!(st.certificate.is_none());
    assert!(cr.is_true("Denied"), "the approver's condition was kept");
    assert_eq!(
        keys.signatures_of(&arn),
        before,
        "a denied request is never signed"
    );
}

/// Waits for `Failed` and checks the request failed for good: failureTime,
/// no certificate, `want` in the message, then no further writes.
async fn failed_for_good(client: &kube::Client, ns: &str, name: &str, want: &[&str]) {
    let cr = wait_reason(client, ns, name, "Failed").await;
    let msg = ready_message(&cr);
    for w in want {
        assert!(msg.contains(w), "{w:?} missing from the message: {msg}");
    }
    let st = cr.status.clone().unwrap();
    assert!(st.failure_time.is_some(), "failureTime set");
    assert!(st.certificate.is_none());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = Api::<CertificateRequest>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    assert_eq!(
        again.resource_version(),
        cr.resource_version(),
        "a failed request is not retried (no further status writes)"
    );
}

#[tokio::test]
async fn a_request_from_a_namespace_the_ca_does_not_allow_is_failed_naming_the_rule() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-ns").await;
    let root = unique("cm-ns");
    let arn = ready_root(
        &client,
        &root,
        "  allowedNamespaces: {names: [somewhere-else]}\n",
    )
    .await;
    let keys = &in_process().keys;
    let before = keys.signatures_of(&arn);
    let pem = csr("/CN=n.example.com", "DNS:n.example.com");
    create(&client, &request(ns.name(), "n", &root, &pem, json!({}))).await;
    set_condition(&client, ns.name(), "n", "Approved").await;
    failed_for_good(
        &client,
        ns.name(),
        "n",
        &["NamespaceNotAllowed", "spec.allowedNamespaces", ns.name()],
    )
    .await;
    assert_eq!(keys.signatures_of(&arn), before, "nothing signed");
    let denied = audit_rows(ns.name(), "n", AuditOperation::PolicyDenied).await;
    assert_eq!(denied.len(), 1, "the denial is audited: {denied:?}");
}

#[tokio::test]
async fn a_name_outside_an_ancestors_name_constraints_is_failed_naming_the_rule() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-nc").await;
    let (root, inter) = (unique("cm-nc-root"), unique("cm-nc-inter"));
    ready_root(
        &client,
        &root,
        "  nameConstraints: {permitted: {dnsDomains: [example.com]}}\n",
    )
    .await;
    apply(env, &intermediate_ca(&inter, &root, "")).unwrap();
    let arn = wait_ca(&client, &inter, ("True", None), None)
        .await
        .status
        .unwrap()
        .kms_key_arn
        .unwrap();
    let keys = &in_process().keys;
    let before = keys.signatures_of(&arn);
    let pem = csr("/CN=evil.org", "DNS:evil.org");
    create(&client, &request(ns.name(), "nc", &inter, &pem, json!({}))).await;
    set_condition(&client, ns.name(), "nc", "Approved").await;
    failed_for_good(
        &client,
        ns.name(),
        "nc",
        &["NameConstraintViolation", "evil.org", &root],
    )
    .await;
    assert_eq!(keys.signatures_of(&arn), before, "nothing signed");
}

#[tokio::test]
async fn a_malformed_or_forged_csr_and_a_ca_request_are_failed_once_without_a_panic_or_retries() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-bad").await;
    let root = unique("cm-bad");
    let arn = ready_root(&client, &root, "").await;
    let keys = &in_process().keys;
    let before = keys.signatures_of(&arn);

    let garbage = "-----BEGIN CERTIFICATE REQUEST-----\nTm90IGEgQ1NSIGF0IGFsbA==\n-----END CERTIFICATE REQUEST-----\n";
    let good = csr("/CN=f.example.com", "DNS:f.example.com");
    let der = pem::parse(good.as_bytes()).unwrap();
    let mut bytes = der.contents().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bytes));
    let cases = [
        (
            "garbage",
            garbage.to_string(),
            json!({}),
            vec!["InvalidCSR", "spec.request"],
        ),
        (
            "forged",
            forged,
            json!({}),
            vec!["InvalidCSR", "signature does not verify"],
        ),
        (
            "ca",
            good,
            json!({"isCA": true, "usages": ["cert sign"]}),
            vec!["CANotAllowed"],
        ),
    ];
    for (name, pem, extra, _) in &cases {
        create(
            &client,
            &request(ns.name(), name, &root, pem, extra.clone()),
        )
        .await;
        set_condition(&client, ns.name(), name, "Approved").await;
    }
    for (name, _, _, want) in &cases {
        failed_for_good(&client, ns.name(), name, want).await;
    }
    assert_eq!(keys.signatures_of(&arn), before, "nothing signed");
}

#[tokio::test]
async fn a_request_for_a_missing_ca_waits_pending_and_is_issued_once_the_ca_is_ready() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-wait").await;
    let root = unique("cm-later");
    let pem = csr("/CN=w.example.com", "DNS:w.example.com");
    create(&client, &request(ns.name(), "w", &root, &pem, json!({}))).await;
    set_condition(&client, ns.name(), "w", "Approved").await;
    let cr = wait_reason(&client, ns.name(), "w", "Pending").await;
    eventually("the Pending message to name the missing CA", || {
        let api: Api<CertificateRequest> = Api::namespaced(client.clone(), ns.name());
        let root = root.clone();
        async move {
            let cr = api.get("w").await.ok()?;
            ready_message(&cr).contains(&root).then_some(())
        }
    })
    .await;
    assert!(
        cr.status.unwrap().failure_time.is_none(),
        "waiting is not failing"
    );
    ready_root(&client, &root, "").await;
    let cr = wait_reason(&client, ns.name(), "w", "Issued").await;
    let st = cr.status.unwrap();
    tools::openssl_verify(&text(&st.ca), "", &text(&st.certificate), Some("sslserver"))
        .expect("issued once the CA is Ready");
}

#[tokio::test]
async fn a_crash_between_signing_and_the_status_write_does_not_sign_twice() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-crash").await;
    let root = unique("cm-crash");
    let arn = ready_root(&client, &root, "").await;
    let op = in_process();
    let pem = csr("/CN=c.example.com", "DNS:c.example.com");
    let created = create(&client, &request(ns.name(), "c", &root, &pem, json!({}))).await;
    wait_reason(&client, ns.name(), "c", "Pending").await;
    let before = op.keys.signatures_of(&arn);
    // The operator that "crashed": it took the request as approved, signed
    // it and recorded the issuance, and died before writing the status.
    let (_, signed) =
        certmanager::sign_and_record(&op.ctx, &created, time::OffsetDateTime::now_utc())
            .await
            .expect("signing before the crash");
    assert_eq!(op.keys.signatures_of(&arn) - before, 1);
    // The request is approved; the running operator must reuse the record.
    set_condition(&client, ns.name(), "c", "Approved").await;
    let cr = wait_reason(&client, ns.name(), "c", "Issued").await;
    let chain = text(&cr.status.unwrap().certificate);
    let facts = signet::pki::parse::first_cert_facts(chain.as_bytes()).unwrap();
    assert_eq!(
        facts.serial_hex, signed.serial_hex,
        "the recorded certificate was reused"
    );
    assert_eq!(
        op.keys.signatures_of(&arn) - before,
        1,
        "one signature for one request"
    );
    let audit = audit_rows(ns.name(), "c", AuditOperation::CertificateIssued).await;
    assert_eq!(audit.len(), 1, "one audit row: {audit:?}");
}

#[tokio::test]
async fn a_signed_request_revoked_with_signet_revoke_appears_in_the_crl() {
    cert_manager();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns = env.namespace("cm-revoke").await;
    let (root, crl_name) = (unique("cm-rev"), unique("cm-rev-crl"));
    ready_root(&client, &root, "").await;
    apply(env, &crl(&crl_name, &root, &in_process().namespace)).unwrap();
    let pem = csr("/CN=r.example.com", "DNS:r.example.com");
    create(&client, &request(ns.name(), "r", &root, &pem, json!({}))).await;
    set_condition(&client, ns.name(), "r", "Approved").await;
    let cr = wait_reason(&client, ns.name(), "r", "Issued").await;
    let chain = text(&cr.status.unwrap().certificate);
    let serial = signet::pki::parse::first_cert_facts(chain.as_bytes())
        .unwrap()
        .serial_hex;
    let target = format!("certificaterequest/{}/r", ns.name());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.args(["revoke", &target, "--reason", "keyCompromise"]);
    for (k, v) in env.child_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "signet revoke {target}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&serial),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &in_process().namespace);
    let name = format!("{crl_name}-crl");
    eventually(&format!("CRL {crl_name} listing serial {serial}"), || {
        let (cms, name, serial) = (cms.clone(), name.clone(), serial.clone());
        async move {
            let cm = cms.get_opt(&name).await.ok()??;
            let der = cm.binary_data?.get("ca.crl")?.0.clone();
            crl_entries(&der)
                .iter()
                .any(|(s, _, r)| *s == serial && r == "keyCompromise")
                .then_some(())
        }
    })
    .await;
}

/// Whether `user` may `approve` cert-manager signer `signer` (the check
/// cert-manager's webhook makes before an approver sets Approved/Denied).
async fn may_approve(client: &kube::Client, user: &str, signer: &str) -> bool {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {
            "group": "cert-manager.io", "resource": "signers", "verb": "approve", "name": signer,
        }},
    }))
    .unwrap();
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn the_example_approver_rbac_lets_cert_manager_approve_for_that_ca_only() {
    let env = signet_testenv::env();
    let client = env.client().await;
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cert-manager/approver-rbac.yaml"
    ))
    .unwrap();
    apply(env, &yaml).expect("the example RBAC applies");
    let sa = "system:serviceaccount:cert-manager:cert-manager";
    let allowed = "certificateauthorities.signet.dev/example-issuing";
    eventually("the approve grant to take effect", || {
        let client = client.clone();
        async move { may_approve(&client, sa, allowed).await.then_some(()) }
    })
    .await;
    assert!(
        !may_approve(
            &client,
            sa,
            "certificateauthorities.signet.dev/example-root"
        )
        .await,
        "the example grants approval for example-issuing only"
    );
    assert!(
        !may_approve(&client, "system:serviceaccount:demo:default", allowed).await,
        "other identities cannot approve"
    );
}
