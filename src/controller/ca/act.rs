//! Carrying out a CA decision: the key (created only now), the signature,
//! the status, then mirror, audit, published certificate and Event.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use serde_json::json;
use time::OffsetDateTime;
use tracing::info;

use super::super::conditions::{self, Cond};
use super::super::driver::{self, Next};
use super::super::{Context, Error, mirror};
use super::audit;
use super::decide::{Decision, KeyPlan, ReadyIssuer};
use crate::api::duration::{self, Lifetime};
use crate::api::{CONDITION_READY, CertificateAuthority, CertificateAuthorityStatus};
use crate::clock::rfc3339;
use crate::kms::{KeySpec, SignError, Signer};
use crate::pki::{self, CaRequest, CertFacts};
use crate::published::PublishedCa;
use crate::store::{AuditOperation, Outcome};

/// Carries out `decision`.
pub async fn carry_out(
    ctx: &Context,
    ca: &CertificateAuthority,
    decision: Decision,
    now: OffsetDateTime,
) -> Result<Next, Error> {
    match decision {
        Decision::UpToDate {
            facts,
            key,
            renewal,
            parent,
        } => {
            let chain = chain(&facts, parent.as_ref());
            let status = ready_status(ca, &facts, key.as_ref(), None, &chain, renewal, now);
            driver::apply_status(ctx, ca, &status).await?;
            publish(ctx, ca, &facts, chain);
            Ok(Next::Until(renewal))
        }
        Decision::Issue {
            why,
            key,
            request,
            parent,
            lifetime,
        } => {
            ctx.audit_ready()?;
            let (signer, created) = ensure_key(ctx, ca, key, now).await?;
            issue(
                ctx, ca, why, &signer, created, &request, parent, lifetime, now,
            )
            .await
        }
    }
}

/// This CA's chain: its certificate, then the parent's chain.
fn chain(facts: &CertFacts, parent: Option<&ReadyIssuer>) -> String {
    match parent {
        Some(p) => format!("{}{}", facts.pem(), p.chain_pem),
        None => facts.pem(),
    }
}

/// The status of a Ready CA. Pure.
fn ready_status(
    ca: &CertificateAuthority,
    facts: &CertFacts,
    key: &dyn Signer,
    created: Option<bool>,
    chain: &str,
    renewal: OffsetDateTime,
    now: OffsetDateTime,
) -> CertificateAuthorityStatus {
    let prev = ca.status.clone().unwrap_or_default();
    let kind = if ca.spec.issuer_ref.is_some() {
        "intermediate"
    } else {
        "root"
    };
    let message = format!("{kind} CA ready; key {}", key.key_arn());
    CertificateAuthorityStatus {
        conditions: conditions::merge(
            &prev.conditions,
            &[Cond::yes(CONDITION_READY, "Issued", message)],
            ca.metadata.generation,
            now,
        ),
        observed_generation: ca.metadata.generation,
        kms_key_arn: Some(key.key_arn().to_string()),
        kms_key_created: prev.kms_key_created.or(created),
        certificate: Some(facts.pem()),
        chain: Some(chain.to_string()),
        serial_number: Some(facts.serial_hex.clone()),
        not_before: Some(rfc3339(facts.not_before)),
        not_after: Some(rfc3339(facts.not_after)),
        renewal_time: Some(rfc3339(renewal)),
        fingerprint_sha256: Some(pki::fingerprint_sha256(&facts.der)),
        spec_hash: Some(super::spec_hash(ca)),
        failed_attempts: None,
        last_failure_time: None,
    }
}

fn publish(ctx: &Context, ca: &CertificateAuthority, facts: &CertFacts, chain: String) {
    ctx.published.put_ca(
        &ca.name_any(),
        PublishedCa {
            cert_der: Arc::new(facts.der.clone()),
            cert_pem: facts.pem(),
            chain_pem: chain,
        },
    );
}

/// The key to sign with. A key created or adopted for the first time is
/// recorded in status at once, so a later failure never creates another.
async fn ensure_key(
    ctx: &Context,
    ca: &CertificateAuthority,
    plan: KeyPlan,
    now: OffsetDateTime,
) -> Result<(Arc<dyn Signer>, Option<bool>), Error> {
    let recorded = ca.status.as_ref().and_then(|s| s.kms_key_arn.as_ref());
    let (signer, created) = match plan {
        KeyPlan::Existing(s) if recorded.is_some() => return Ok((s, None)),
        KeyPlan::Existing(s) => (s, false),
        KeyPlan::Create(spec) => create_key(ctx, ca, spec).await?,
    };
    let op = if created {
        AuditOperation::KmsKeyCreated
    } else {
        AuditOperation::KmsKeyAdopted
    };
    ctx.store.audit(audit(
        ca,
        op,
        Outcome::Success,
        json!({"keyArn": signer.key_arn(), "keySpec": signer.key_spec().as_str()}),
        now,
    ));
    let mut st = ca.status.clone().unwrap_or_default();
    st.kms_key_arn = Some(signer.key_arn().to_string());
    st.kms_key_created = Some(created);
    driver::apply_status(ctx, ca, &st).await?;
    Ok((signer, Some(created)))
}

/// Creates the CA's key. An alias that exists already means a previous
/// attempt created the key but could not record it: adopt that key.
async fn create_key(
    ctx: &Context,
    ca: &CertificateAuthority,
    spec: KeySpec,
) -> Result<(Arc<dyn Signer>, bool), Error> {
    let name = ca.name_any();
    let tags = [
        ("signet.dev/managed-by".to_string(), "signet".to_string()),
        ("signet.dev/certificate-authority".to_string(), name.clone()),
    ];
    match ctx.keys.create_key(spec, &name, &tags).await {
        Ok(s) => {
            ctx.remember_signer(s.clone(), None);
            Ok((s, true))
        }
        Err(SignError::AliasExists { alias }) => Ok((ctx.signer(&alias).await?, false)),
        Err(e) => Err(e.into()),
    }
}

/// Signs the CA certificate (one KMS `Sign`, by the parent's key for an
/// intermediate), then status, mirror, audit, published certificate, Event.
#[allow(clippy::too_many_arguments)]
async fn issue(
    ctx: &Context,
    ca: &CertificateAuthority,
    why: &'static str,
    signer: &Arc<dyn Signer>,
    created: Option<bool>,
    request: &CaRequest,
    parent: Option<ReadyIssuer>,
    lifetime: Lifetime,
    now: OffsetDateTime,
) -> Result<Next, Error> {
    let issued = match &parent {
        None => pki::issue_root(signer.as_ref(), request, now).await?,
        Some(p) => {
            let parent_signer = ctx.signer(&p.key_arn).await?;
            pki::issue_intermediate(
                &p.info,
                parent_signer.as_ref(),
                request,
                signer.public_key_spki_der(),
                now,
            )
            .await?
        }
    };
    let facts = pki::cert_facts(&issued.cert_der)?;
    let chain = chain(&facts, parent.as_ref());
    let renewal = duration::act_at(facts.not_before, facts.not_after, lifetime.before_end);
    let renewed = ca.status.as_ref().is_some_and(|s| s.certificate.is_some());
    info!(reason = why, serial = %facts.serial_hex, "CA certificate issued");
    let status = ready_status(ca, &facts, signer.as_ref(), created, &chain, renewal, now);
    // The certificate exists now: mirror and audit before anything else can fail.
    effects(ctx, ca, signer.key_arn(), &facts, why, renewed, now);
    driver::apply_status(ctx, ca, &status).await?;
    publish(ctx, ca, &facts, chain);
    let (reason, note) = if renewed {
        (
            "Renewed",
            format!(
                "CA certificate renewed ({why}), serial {}",
                facts.serial_hex
            ),
        )
    } else {
        (
            "Issued",
            format!("CA certificate issued, serial {}", facts.serial_hex),
        )
    };
    driver::event(ctx, ca, EventType::Normal, reason, note).await;
    Ok(Next::Until(renewal))
}

fn effects(
    ctx: &Context,
    ca: &CertificateAuthority,
    key_arn: &str,
    facts: &CertFacts,
    why: &str,
    renewed: bool,
    now: OffsetDateTime,
) {
    ctx.store
        .upsert_ca(mirror::ca_row(ca, Some(key_arn), Some(facts), now));
    let op = if renewed {
        AuditOperation::CaRenewed
    } else {
        AuditOperation::CaIssued
    };
    ctx.store.audit(
        audit(
            ca,
            op,
            Outcome::Success,
            json!({"reason": why, "notAfter": rfc3339(facts.not_after)}),
            now,
        )
        .with_serial(&facts.serial_hex),
    );
}
