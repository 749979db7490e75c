//! Signet as a Kubernetes CSR signer, against the real API server (the
//! controllers in this process): `certificates.k8s.io/v1`
//! CertificateSigningRequests for `signet.dev/<ca>`, approved with
//! `kubectl certificate approve`, checked with openssl; and every way one
//! must not be signed.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::Api;
use signet::store::{AuditOperation, AuditQuery};
use signet_testenv::tools;

/// A fresh P-256 key and a PEM CSR for `cn` with DNS SAN `dns`.
fn make_csr(tag: &str, cn: &str, dns: &str) -> (String, std::path::PathBuf) {
    let key = tools::artifact(&format!("{tag}.key"), b"");
    let csr = tools::artifact(&format!("{tag}.csr"), b"");
    let out = tools::openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key.display().to_string(),
        "-out",
        &csr.display().to_string(),
        "-subj",
        &format!("/CN={cn}"),
        "-addext",
        &format!("subjectAltName=DNS:{dns}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (std::fs::read_to_string(&csr).unwrap(), key)
}

/// Creates CSR `name` for `signer` with `extra` spec lines.
fn create(name: &str, signer: &str, pem: &str, extra: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    apply(
        signet_testenv::env(),
        &format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  signerName: {signer}\n  request: {b64}\n  usages: [digital signature, server auth]\n{extra}"
        ),
    )
    .unwrap();
}

fn kubectl(args: &[&str]) {
    signet_testenv::env()
        .kubectl_ok(args)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e:#}"));
}

async fn get(name: &str) -> CertificateSigningRequest {
    let client = signet_testenv::env().client().await;
    Api::<CertificateSigningRequest>::all(client)
        .get(name)
        .await
        .unwrap()
}

/// Waits until CSR `name` has a certificate; returns it (PEM).
async fn wait_signed(name: &str) -> String {
    let n = name.to_string();
    eventually(&format!("CSR {name} signed"), || {
        let n = n.clone();
        async move {
            let c = get(&n).await;
            let cert = c.status?.certificate?;
            (!cert.0.is_empty()).then(|| String::from_utf8(cert.0).unwrap())
        }
    })
    .await
}

/// Waits until CSR `name` is `Failed=True`; returns (reason, message).
async fn wait_failed(name: &str) -> (String, String) {
    let n = name.to_string();
    eventually(&format!("CSR {name} failed"), || {
        let n = n.clone();
        async move {
            let c = get(&n).await;
            let f = c
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")?;
            Some((f.reason.unwrap_or_default(), f.message.unwrap_or_default()))
        }
    })
    .await
}

fn no_certificate(c: &CertificateSigningRequest) -> bool {
    c.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_none_or(|b| b.0.is_empty())
}

async fn ready_ca(prefix: &str, extra: &str) -> (String, String) {
    let env = signet_testenv::env();
    let client = env.client().await;
    let name = unique(prefix);
    apply(env, &root_ca(&name, extra)).unwrap();
    let ca = wait_ca(&client, &name, ("True", None), None).await;
    (name, ca.status.unwrap().certificate.unwrap())
}

/// Signs one approved CSR for `ca` and waits: the signer has seen every
/// event before it (used to show that an earlier CSR was left alone).
async fn barrier(ca: &str, tag: &str, dns: &str) {
    let name = unique(&format!("barrier-{tag}"));
    let (pem, _) = make_csr(&name, "barrier", dns);
    create(&name, &format!("signet.dev/{ca}"), &pem, "");
    kubectl(&["certificate", "approve", &name]);
    wait_signed(&name).await;
}

#[tokio::test]
async fn csr_approved_is_signed_once_with_the_requested_lifetime_and_the_chain_verifies() {
    let _op = in_process();
    let (ca, ca_pem) = ready_ca("csr-root", "").await;
    let name = unique("csr-web");
    let (pem, key) = make_csr(&name, "web", "web.example");
    create(
        &name,
        &format!("signet.dev/{ca}"),
        &pem,
        "  expirationSeconds: 3600\n",
    );
    // Not approved: nothing happens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(no_certificate(&get(&name).await), "signed before approval");
    kubectl(&["certificate", "approve", &name]);
    let cert = wait_signed(&name).await;

    let verified = tools::openssl_verify(&ca_pem, "", &cert, Some("sslserver"));
    assert!(verified.is_ok(), "{verified:?}");
    let cert_file = tools::artifact("csr-web.pem", cert.as_bytes());
    let cert_path = cert_file.display().to_string();
    let out = tools::openssl(&["x509", "-in", &cert_path, "-noout", "-text", "-dates"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("DNS:web.example"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    let secs = |field: &str| {
        let line = text.lines().find(|l| l.starts_with(field)).unwrap();
        let when = line.split_once('=').unwrap().1;
        let o = std::process::Command::new("date")
            .args(["-d", when, "+%s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let lifetime = secs("notAfter") - secs("notBefore");
    assert!(
        (3600..=3600 + 600).contains(&lifetime),
        "expirationSeconds 3600 gave a {lifetime} s certificate"
    );
    // The certificate belongs to the CSR's key.
    let pub_cert = tools::openssl(&["x509", "-in", &cert_path, "-noout", "-pubkey"]);
    let pub_key = tools::openssl(&["pkey", "-in", &key.display().to_string(), "-pubout"]);
    assert_eq!(pub_cert.stdout, pub_key.stdout);
    for f in tools::pkilint_cert(cert.as_bytes()) {
        assert!(!f.is_error(), "pkilint: {f:?}");
    }

    // One audit row, naming the requester; a later reconcile signs nothing.
    let op = in_process();
    op.ctx.store.flush().await.unwrap();
    let rows = op
        .ctx
        .store
        .audit_rows(AuditQuery {
            operation: Some(AuditOperation::CertificateIssued),
            object_name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].object_kind, "CertificateSigningRequest");
    let username = get(&name).await.spec.username.unwrap_or_default();
    assert!(!username.is_empty());
    assert_eq!(rows[0].actor, username);
    barrier(&ca, "once", "barrier.example").await;
    assert_eq!(wait_signed(&name).await, cert, "signed twice");
}

#[tokio::test]
async fn csr_lifetime_is_capped_at_the_ca_maximum() {
    let _op = in_process();
    let (ca, _) = ready_ca("csr-max", "  maxCertificateDuration: 2h\n").await;
    let name = unique("csr-long");
    let (pem, _) = make_csr(&name, "long", "long.example");
    create(
        &name,
        &format!("signet.dev/{ca}"),
        &pem,
        "  expirationSeconds: 864000\n",
    );
    kubectl(&["certificate", "approve", &name]);
    let cert = wait_signed(&name).await;
    let f = tools::artifact("csr-long.pem", cert.as_bytes());
    let out = tools::openssl(&[
        "x509",
        "-in",
        &f.display().to_string(),
        "-noout",
        "-checkend",
        "7300",
    ]);
    assert!(
        !out.status.success(),
        "a 10-day request under a 2 h CA maximum must not outlive 2 h"
    );
}

#[tokio::test]
async fn csr_denied_expired_approval_unknown_ca_policy_and_other_install_are_never_signed() {
    let _op = in_process();
    let (ca, _) = ready_ca("csr-refuse", "  allowedNamespaces: {names: [team-a]}\n").await;
    let (open_ca, _) = ready_ca(
        "csr-open",
        "  nameConstraints: {permitted: {dnsDomains: [corp.example]}}\n",
    )
    .await;
    let signer = format!("signet.dev/{open_ca}");

    // Denied: left alone for good.
    let denied = unique("csr-denied");
    let (pem, _) = make_csr(&denied, "d", "d.corp.example");
    create(&denied, &signer, &pem, "");
    kubectl(&["certificate", "deny", &denied]);

    // Another install's prefix: not ours, not touched at all.
    let foreign = unique("csr-foreign");
    let (pem, _) = make_csr(&foreign, "f", "f.corp.example");
    create(&foreign, &format!("pki.example.com/{open_ca}"), &pem, "");
    kubectl(&["certificate", "approve", &foreign]);

    // An approval older than an hour (set through the approval subresource
    // as an approver could have left it): refused, not signed late.
    let stale = unique("csr-stale");
    let (pem, _) = make_csr(&stale, "s", "s.corp.example");
    create(&stale, &signer, &pem, "");
    let mut c = get(&stale).await;
    let two_hours_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let at = signet::clock::rfc3339(two_hours_ago);
    let mut body = serde_json::to_value(&c).unwrap();
    body["status"] = serde_json::json!({"conditions": [{
        "type": "Approved", "status": "True", "reason": "TestApproval",
        "message": "approved long ago", "lastUpdateTime": at, "lastTransitionTime": at,
    }]});
    let file = tools::artifact("stale-approval.json", body.to_string().as_bytes());
    kubectl(&[
        "replace",
        "--raw",
        &format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{stale}/approval"),
        "-f",
        &file.display().to_string(),
    ]);
    c = get(&stale).await;
    assert!(
        c.status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Approved")
    );
    let (reason, message) = wait_failed(&stale).await;
    assert_eq!(reason, "ApprovalExpired", "{message}");

    // A CA that does not exist: Failed, naming it.
    let unknown = unique("csr-unknown");
    let (pem, _) = make_csr(&unknown, "u", "u.corp.example");
    create(&unknown, "signet.dev/no-such-ca", &pem, "");
    kubectl(&["certificate", "approve", &unknown]);
    let (reason, message) = wait_failed(&unknown).await;
    assert_eq!(reason, "IssuerNotFound");
    assert!(message.contains("no-such-ca"), "{message}");

    // Policy: a name outside the CA's name constraints, and a requester
    // outside the allowed namespaces (a user is in none).
    let outside = unique("csr-outside");
    let (pem, _) = make_csr(&outside, "o", "evil.example");
    create(&outside, &signer, &pem, "");
    kubectl(&["certificate", "approve", &outside]);
    let (reason, message) = wait_failed(&outside).await;
    assert!(message.contains("evil.example"), "{reason}: {message}");
    let nsless = unique("csr-nsless");
    let (pem, _) = make_csr(&nsless, "n", "n.example");
    create(&nsless, &format!("signet.dev/{ca}"), &pem, "");
    kubectl(&["certificate", "approve", &nsless]);
    let (reason, message) = wait_failed(&nsless).await;
    assert_eq!(reason, "NamespaceNotAllowed", "{message}");
    assert!(message.contains("not a ServiceAccount"), "{message}");

    // Everything before the barrier was seen; none of it was signed, and the
    // foreign one carries no condition of ours.
    barrier(&open_ca, "refusals", "barrier.corp.example").await;
    for name in [&denied, &foreign, &stale, &unknown, &outside, &nsless] {
        assert!(no_certificate(&get(name).await), "{name} was signed");
    }
    let f = get(&foreign).await;
    assert!(
        !f.status
            .unwrap()
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Failed"),
        "another install's CSR must not be touched"
    );
}

#[tokio::test]
async fn csr_requester_without_approve_on_the_signer_cannot_approve_its_own_request() {
    let _op = in_process();
    let (ca, _) = ready_ca("csr-selfapprove", "").await;
    let env = signet_testenv::env();
    // A requester that may create CSRs and even update approvals, but holds
    // no approve on Signet's signers.
    apply(
        env,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: csr-requester}\nrules:\n- apiGroups: [certificates.k8s.io]\n  resources: [certificatesigningrequests]\n  verbs: [create, get, list]\n- apiGroups: [certificates.k8s.io]\n  resources: [certificatesigningrequests/approval]\n  verbs: [update]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: csr-requester}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: csr-requester}\nsubjects:\n- {kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}\n",
    )
    .unwrap();
    let name = unique("csr-self");
    let (pem, _) = make_csr(&name, "self", "self.example");
    create(&name, &format!("signet.dev/{ca}"), &pem, "");
    let refused = env.kubectl_ok(&["--as=mallory", "certificate", "approve", &name]);
    let msg = format!(
        "{:#}",
        refused.expect_err("approving without approve on the signer")
    );
    assert!(
        msg.contains("forbidden") || msg.contains("Forbidden"),
        "{msg}"
    );
    barrier(&ca, "self", "barrier.example").await;
    assert!(no_certificate(&get(&name).await));
}
