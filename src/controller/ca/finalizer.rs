//! The one cleanup that is real: a CA with `kms.deletionPolicy:
//! ScheduleDeletion` whose key Signet created holds a finalizer, and its
//! deletion schedules the key's deletion (30-day KMS waiting period).

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;
use time::OffsetDateTime;

use super::super::driver::{self, Next};
use super::super::{Context, Error};
use super::audit;
use crate::api::{CertificateAuthority, KeyDeletionPolicy};
use crate::kms::DeletionOutcome;
use crate::store::{AuditOperation, Outcome};

/// Finalizer name.
pub const FINALIZER: &str = "signet.dev/kms-key-deletion";
/// KMS waiting period before a scheduled deletion happens.
pub const PENDING_DAYS: u8 = 30;

/// Whether the CA should hold the finalizer.
pub fn wants_finalizer(ca: &CertificateAuthority) -> bool {
    ca.spec.kms.deletion_policy == Some(KeyDeletionPolicy::ScheduleDeletion)
        && ca.spec.kms.key_id.is_none()
}

fn has_finalizer(ca: &CertificateAuthority) -> bool {
    ca.finalizers().iter().any(|f| f == FINALIZER)
}

/// Deletion and finalizer bookkeeping come before the pipeline; `Some`
/// when this reconcile ends here.
pub async fn handle(
    ctx: &Context,
    ca: &CertificateAuthority,
    now: OffsetDateTime,
) -> Result<Option<Next>, Error> {
    if ca.metadata.deletion_timestamp.is_some() {
        if has_finalizer(ca) {
            finalize(ctx, ca, now).await?;
        }
        return Ok(Some(Next::AwaitChange));
    }
    if wants_finalizer(ca) != has_finalizer(ca) {
        // The patch wakes us again with the finalizer in place.
        set_finalizer(ctx, ca, wants_finalizer(ca)).await?;
        return Ok(Some(Next::AwaitChange));
    }
    Ok(None)
}

/// Adds or removes our finalizer; the resourceVersion makes it safe.
async fn set_finalizer(
    ctx: &Context,
    ca: &CertificateAuthority,
    present: bool,
) -> Result<(), Error> {
    ctx.may_write()?;
    let mut list: Vec<String> = ca
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        list.push(FINALIZER.to_string());
    }
    let api: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    api.patch(
        &ca.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {
            "finalizers": list, "resourceVersion": ca.resource_version()
        }})),
    )
    .await?;
    Ok(())
}

/// Schedules the key's deletion (cancellable for 30 days) and lets the
/// object go. A key already pending deletion or gone is fine.
async fn finalize(
    ctx: &Context,
    ca: &CertificateAuthority,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let st = ca.status.clone().unwrap_or_default();
    if let (Some(true), Some(arn)) = (st.kms_key_created, st.kms_key_arn.as_deref()) {
        let outcome = ctx
            .keys
            .schedule_key_deletion(arn, PENDING_DAYS)
            .await
            .map_err(|e| {
                Error::Other(format!(
                    "scheduling deletion of KMS key {arn} failed ({e}); fix access or remove the finalizer {FINALIZER} by hand"
                ))
            })?;
        ctx.store.audit(audit(
            ca,
            AuditOperation::KmsKeyDeletionScheduled,
            Outcome::Success,
            json!({"keyArn": arn, "pendingWindowDays": PENDING_DAYS, "found": format!("{outcome:?}")}),
            now,
        ));
        if outcome == DeletionOutcome::Scheduled {
            driver::event(
                ctx,
                ca,
                EventType::Normal,
                "KeyDeletionScheduled",
                format!("KMS key {arn} scheduled for deletion in {PENDING_DAYS} days (cancel with `aws kms cancel-key-deletion`)"),
            )
            .await;
        }
    }
    set_finalizer(ctx, ca, false).await
}
