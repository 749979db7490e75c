//! Carrying out a CRL decision: restore lost register entries, sign (one
//! KMS `Sign`), publish the ConfigMap, status, then mirror, audit, metric
//! and the published state the HTTP side serves.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta};
use serde_json::json;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::super::conditions::{self, Cond};
use super::super::driver::{self, Next};
use super::super::revocations;
use super::super::{Context, Error};
use super::decide::Decision;
use super::observe::World;
use super::{ANN_CA, ANN_NEXT_UPDATE, ANN_NUMBER, DER_KEY, LABEL_CRL, target};
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
            Ok(Next::Until(refresh_at.min(now + super::MAX_RECHECK)))
        }
        Decision::Sign {
            issuer,
            number,
            entries,
            restore,
            lifetime,
            why,
        } => {
            if !restore.is_empty() {
                warn!(
                    count = restore.len(),
                    "restoring revocations from the last signed CRL into the register"
                );
                revocations::add(&ctx.client, &ctx.namespace, &issuer.name, &restore).await?;
            }
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
            publish_config_map(
                ctx,
                crl,
                &issuer.name,
                &issuer.info.cert_pem(),
                &signed,
                &ns,
                &name,
            )
            .await?;
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
            Ok(Next::Until(
                (signed.next_update - refresh).min(now + super::MAX_RECHECK),
            ))
        }
    }
}

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

/// Server-side applies the ConfigMap with the CRL (DER and PEM) and the CA
/// certificate.
async fn publish_config_map(
    ctx: &Context,
    crl: &CRL,
    ca: &str,
    ca_pem: &str,
    signed: &SignedCrl,
    ns: &str,
    name: &str,
) -> Result<(), Error> {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            labels: Some(BTreeMap::from([
                (LABEL_CRL.to_string(), crl.name_any()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "signet".to_string(),
                ),
            ])),
            annotations: Some(BTreeMap::from([
                (ANN_NUMBER.to_string(), signed.number.to_string()),
                (ANN_NEXT_UPDATE.to_string(), rfc3339(signed.next_update)),
                (ANN_CA.to_string(), ca.to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("ca.crl.pem".to_string(), signed.pem.clone()),
            ("ca.crt".to_string(), ca_pem.to_string()),
        ])),
        binary_data: Some(BTreeMap::from([(
            DER_KEY.to_string(),
            ByteString(signed.der.clone()),
        )])),
        ..Default::default()
    };
    driver::apply_object(
        &Api::<ConfigMap>::namespaced(ctx.client.clone(), ns),
        name,
        &cm,
        &format!("ConfigMap {ns}/{name}"),
        "fix spec.publish or the namespace",
    )
    .await
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
