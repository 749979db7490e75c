//! Carrying out a CRL decision: restore lost register entries, sign (one
//! KMS `Sign`), publish the ConfigMap, status, then mirror, audit, metric
//! and the published state the HTTP side serves.

use std::sync::Arc;

use kube::ResourceExt;
use serde_json::json;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::super::conditions::{self, Cond};
use super::super::driver::{self, Next};
use super::super::revocations;
use super::super::{Context, Error};
use super::decide::Decision;
use super::observe::World;
use super::target;
use crate::api::{CONDITION_READY, CRL, CrlStatus};
use crate::clock::{rfc3339, unix_ms};
use crate::pki::{self, CrlRequest, SignedCrl};
use crate::published::PublishedCrl;
use crate::store::{AuditEvent, AuditOperation, CrlRecord, ObjectRef};

/// Carries out `decision`.
pub async fn carry_out(
    ctx: &Context,
    crl: &CRL,
    world: &World,
    decision: Decision,
    now: OffsetDateTime,
) -> Result<Next, Error> {
    let (ns, name) = target(crl, &ctx.namespace);
    let skipped = world.register.skipped.len();
    let restore = match &decision {
        Decision::UpToDate { restore, .. } | Decision::Sign { restore, .. } => restore,
    };
    if !restore.is_empty() {
        warn!(
            count = restore.len(),
            "restoring revocations from the last signed CRL into the register"
        );
        revocations::add(&ctx.client, &ctx.namespace, &crl.spec.ca_ref.name, restore).await?;
    }
    match decision {
        Decision::UpToDate {
            facts,
            der,
            refresh_at,
            ..
        } => {
            publish_state(
                ctx,
                crl,
                facts.number,
                facts.this_update,
                facts.next_update.unwrap_or(refresh_at),
                der,
            );
            let st = ready_status(
                crl,
                facts.number,
                None,
                facts.entries.len(),
                &ns,
                &name,
                skipped,
                now,
            );
            driver::apply_status(ctx, crl, &st).await?;
            let next = refresh_at.min(now + super::MAX_RECHECK);
            Ok(Next::Until(
                ocsp_step(ctx, crl, world, &facts, now, next).await,
            ))
        }
        Decision::Sign {
            issuer,
            number,
            entries,
            lifetime,
            why,
            ..
        } => {
            let validity = time::Duration::try_from(lifetime.total).unwrap_or(time::Duration::DAY);
            let req = CrlRequest {
                number,
                this_update: now,
                next_update: now + validity,
                entries,
                distribution_point: None,
            };
            ctx.audit_ready()?;
            let signer = ctx.signer(&issuer.key_arn).await?;
            let signed = pki::sign_crl(&issuer.info, signer.as_ref(), &req, now).await?;
            let objects = super::publish::config_maps(
                crl,
                &issuer.name,
                &issuer.info.cert_pem(),
                &signed,
                &ns,
                &name,
            );
            super::publish::publish(ctx, objects, &ns).await?;
            // The new CRL no longer lists certificates expired past the
            // retention: they leave the register too.
            let cutoff = (now - super::decide::retention(crl)?).unix_timestamp();
            if world.register.entries.iter().any(|e| e.not_after <= cutoff) {
                let gone =
                    revocations::prune(&ctx.client, &ctx.namespace, &issuer.name, cutoff).await?;
                info!(gone, "expired certificates left the revocation register");
            }
            record(ctx, crl, &issuer.name, &signed, why, &ns, &name, now);
            publish_state(
                ctx,
                crl,
                signed.number,
                signed.this_update,
                signed.next_update,
                signed.der.clone(),
            );
            let st = ready_status(
                crl,
                signed.number,
                Some(&signed),
                signed.entries,
                &ns,
                &name,
                skipped,
                now,
            );
            driver::apply_status(ctx, crl, &st).await?;
            info!(number, revoked = signed.entries, why, "CRL published");
            let refresh = time::Duration::try_from(lifetime.before_end).unwrap_or_default();
            let next = (signed.next_update - refresh).min(now + super::MAX_RECHECK);
            let next = match pki::crl_facts(&signed.der) {
                Ok(facts) => ocsp_step(ctx, crl, world, &facts, now, next).await,
                Err(e) => {
                    warn!(error = %e, "the CRL just signed does not parse; OCSP not updated");
                    next
                }
            };
            Ok(Next::Until(next))
        }
    }
}

/// Keeps the CA's OCSP view in step with the CRL just published (see
/// [`super::ocsp`]); returns when to reconcile next. A failure (KMS down)
/// leaves the CRL published and is retried within a minute.
async fn ocsp_step(
    ctx: &Context,
    crl: &CRL,
    world: &World,
    facts: &pki::CrlFacts,
    now: OffsetDateTime,
    next: OffsetDateTime,
) -> OffsetDateTime {
    let Some(ca) = &world.ca else {
        return next;
    };
    let name = &crl.spec.ca_ref.name;
    match super::ocsp::refresh(ctx, ca, name, facts, now).await {
        Ok(()) => super::ocsp::renew_at(ctx, name).map_or(next, |at| next.min(at)),
        Err(e) => {
            warn!(error = %e, reason = e.reason(), "OCSP responder not updated; retrying within a minute");
            next.min(now + OCSP_RETRY)
        }
    }
}

/// How soon a failed OCSP responder update is tried again.
const OCSP_RETRY: time::Duration = time::Duration::minutes(1);

/// The status of a published CRL. Pure.
#[allow(clippy::too_many_arguments)]
fn ready_status(
    crl: &CRL,
    number: u64,
    signed: Option<&SignedCrl>,
    revoked: usize,
    ns: &str,
    name: &str,
    skipped: usize,
    now: OffsetDateTime,
) -> CrlStatus {
    let prev = crl.status.clone().unwrap_or_default();
    let mut message = format!("CRL {number} published to {ns}/{name}");
    if skipped > 0 {
        message.push_str(&format!(
            "; {skipped} unreadable revocation register entries were skipped (see the operator log)"
        ));
    }
    CrlStatus {
        conditions: conditions::merge(
            &prev.conditions,
            &[Cond::yes(CONDITION_READY, "Published", message)],
            crl.metadata.generation,
            now,
        ),
        observed_generation: crl.metadata.generation,
        crl_number: Some(number as i64),
        this_update: signed.map(|s| rfc3339(s.this_update)).or(prev.this_update),
        next_update: signed.map(|s| rfc3339(s.next_update)).or(prev.next_update),
        revoked_count: Some(revoked as i64),
        config_map: Some(format!("{ns}/{name}")),
        failed_attempts: None,
        last_failure_time: None,
    }
}

fn publish_state(
    ctx: &Context,
    crl: &CRL,
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    der: Vec<u8>,
) {
    ctx.published.put_crl(
        &crl.name_any(),
        PublishedCrl {
            ca: crl.spec.ca_ref.name.clone(),
            der: Arc::new(der),
            number,
            this_update,
            next_update,
        },
    );
}

/// Mirror row, audit row and metric of a published CRL.
#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &Context,
    crl: &CRL,
    ca: &str,
    signed: &SignedCrl,
    why: &str,
    ns: &str,
    name: &str,
    now: OffsetDateTime,
) {
    ctx.store.record_crl(CrlRecord {
        ca: ca.to_string(),
        number: signed.number as i64,
        this_update: signed.this_update.unix_timestamp(),
        next_update: signed.next_update.unix_timestamp(),
        revoked_count: signed.entries as i64,
        der: signed.der.clone(),
        published_at: now.unix_timestamp(),
    });
    let mut obj = ObjectRef::cluster("CRL", crl.name_any());
    if let Some(uid) = crl.uid() {
        obj = obj.with_uid(uid);
    }
    ctx.store.audit(
        AuditEvent::new(
            unix_ms(now),
            "controller",
            AuditOperation::CrlPublished,
            obj,
        )
        .with_ca(ca.to_string())
        .with_details(json!({
            "number": signed.number, "revoked": signed.entries, "why": why,
            "nextUpdate": rfc3339(signed.next_update),
            "configMap": format!("{ns}/{name}"),
        })),
    );
    ctx.metrics.crl_published();
}
