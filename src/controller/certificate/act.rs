//! Issuing: one KMS `Sign`, the Secret (server-side apply), and — as soon
//! as the certificate is in the Secret — its mirror row and audit row.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta};
use serde_json::json;
use time::OffsetDateTime;

use super::super::ca::ReadyIssuer;
use super::super::{Context, Error, driver, mirror};
use super::decide::Plan;
use super::{
    ANN_CERTIFICATE_UID, ANN_ISSUER, ANN_NOT_AFTER, ANN_SERIAL, ANN_SPEC_HASH, LABEL_CERTIFICATE,
    SECRET_TYPE, audit,
};
use crate::api::Certificate;
use crate::clock::rfc3339;
use crate::pki::{self, CertFacts, IssuedLeaf, PrivateKeyPem};
use crate::store::{AuditOperation, Outcome};

/// Signs a certificate for `plan` (reusing `reuse` when it still fits).
pub async fn sign(
    ctx: &Context,
    plan: &Plan,
    issuer: &ReadyIssuer,
    reuse: Option<&PrivateKeyPem>,
    now: OffsetDateTime,
) -> Result<IssuedLeaf, Error> {
    let signer = ctx.signer(&issuer.key_arn).await?;
    let signer = signer.as_ref();
    let req = &plan.request;
    Ok(match reuse {
        Some(key) => match pki::issue_leaf_with_key(&issuer.info, signer, req, key, now).await {
            Ok(l) => l,
            // The key no longer fits the spec (algorithm/size): rotate.
            Err(pki::PkiError::Invalid(_)) => {
                pki::issue_leaf(&issuer.info, signer, req, now).await?
            }
            Err(e) => return Err(e.into()),
        },
        None => pki::issue_leaf(&issuer.info, signer, req, now).await?,
    })
}

/// The Secret Signet writes for `leaf`.
fn secret_for(cert: &Certificate, issuer: &ReadyIssuer, leaf: &IssuedLeaf, hash: &str) -> Secret {
    let (intermediates, root) = pki::split_chain(&issuer.chain_pem);
    let tpl = cert.spec.secret_template.clone().unwrap_or_default();
    let mut labels = tpl.labels.clone();
    labels.insert(LABEL_CERTIFICATE.into(), cert.name_any());
    let mut annotations = tpl.annotations.clone();
    annotations.insert(ANN_ISSUER.into(), issuer.name.clone());
    annotations.insert(ANN_SERIAL.into(), leaf.serial_hex.clone());
    annotations.insert(ANN_NOT_AFTER.into(), rfc3339(leaf.not_after));
    annotations.insert(ANN_SPEC_HASH.into(), hash.to_string());
    if let Some(uid) = cert.uid() {
        annotations.insert(ANN_CERTIFICATE_UID.into(), uid);
    }
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(format!("{}{intermediates}", leaf.cert_pem).into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(leaf.key.expose_secret().as_bytes().to_vec()),
        ),
        ("ca.crt".to_string(), ByteString(root.into_bytes())),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(cert.spec.secret_name.clone()),
            namespace: cert.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(data),
        ..Default::default()
    }
}

/// Writes the Secret (server-side apply, field manager `signet`).
pub async fn apply_secret(
    ctx: &Context,
    cert: &Certificate,
    issuer: &ReadyIssuer,
    leaf: &IssuedLeaf,
    hash: &str,
) -> Result<(), Error> {
    let ns = cert.namespace().unwrap_or_default();
    let name = &cert.spec.secret_name;
    driver::apply_object(
        ctx,
        &Api::<Secret>::namespaced(ctx.client.clone(), &ns),
        name,
        &secret_for(cert, issuer, leaf, hash),
        &format!("Secret {ns}/{name}"),
        "delete that Secret or set another spec.secretName",
    )
    .await
}

/// The mirror row and audit row of a certificate now in its Secret. Runs
/// before the status write, and waits (bounded) until the audit row is
/// committed, so a failure later in the reconcile loses neither; a
/// certificate whose status write never happened is recorded again by the
/// next reconcile (see `recover`).
pub async fn record(
    ctx: &Context,
    cert: &Certificate,
    facts: &CertFacts,
    revision: i64,
    reason: &str,
    previous: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), Error> {
    ctx.store
        .upsert_certificate(mirror::certificate_row(cert, facts, revision));
    let op = if previous.is_some() {
        AuditOperation::CertificateRenewed
    } else {
        AuditOperation::CertificateIssued
    };
    let row = audit(cert, op, Outcome::Success, "controller", now)
        .with_ca(cert.spec.issuer_ref.name.clone())
        .with_serial(&facts.serial_hex)
        .with_details(json!({
            "reason": reason, "notAfter": rfc3339(facts.not_after),
            "secret": cert.spec.secret_name, "previousSerial": previous,
        }));
    ctx.audit_committed(row, &facts.serial_hex).await?;
    ctx.metrics.certificate_issued(previous.is_some());
    Ok(())
}
