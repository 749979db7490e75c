//! Signet's part of a CertificateRequest's status (the `Ready` condition,
//! `certificate`, `ca`, `failureTime`), its audit rows and Events.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use time::OffsetDateTime;
use tracing::warn;

use super::super::{Context, Error};
use super::types::{CertificateRequest, RequestCondition};
use crate::api::FIELD_MANAGER;
use crate::clock::{rfc3339, unix_ms};
use crate::store::{AuditEvent, AuditOperation, ObjectRef, Outcome};

/// Signet's `Ready` condition for `cr` (the transition time kept while the
/// status stays the same).
pub(super) fn ready(
    cr: &CertificateRequest,
    status: &str,
    reason: &str,
    message: &str,
    now: OffsetDateTime,
) -> RequestCondition {
    let prev = cr.condition("Ready");
    let since = prev
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| rfc3339(now));
    RequestCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(since),
    }
}

/// Writes the `Ready` condition (and `failureTime` for a final failure),
/// unless the request already says exactly that.
pub(super) async fn write_status(
    ctx: &Context,
    cr: &CertificateRequest,
    cond: RequestCondition,
    failed_at: Option<OffsetDateTime>,
) -> Result<(), Error> {
    let same = cr.condition("Ready").is_some_and(|c| {
        c.status == cond.status && c.reason == cond.reason && c.message == cond.message
    });
    if same && failed_at.is_none() {
        return Ok(());
    }
    let mut status = json!({ "conditions": [cond] });
    if let Some(t) = failed_at {
        status["failureTime"] = json!(rfc3339(t));
    }
    apply_status(ctx, cr, status).await
}

/// Server-side apply of Signet's part of the status (field manager
/// `signet`).
pub(super) async fn apply_status(
    ctx: &Context,
    cr: &CertificateRequest,
    status: serde_json::Value,
) -> Result<(), Error> {
    ctx.may_write()?;
    let ns = cr.namespace().unwrap_or_default();
    let name = cr.name_any();
    let body = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": name},
        "status": status,
    });
    Api::<CertificateRequest>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(|e| {
            Error::from_write(
                &format!("the status of CertificateRequest {ns}/{name}"),
                "check the chart's RBAC for certificaterequests/status",
                e,
            )
        })?;
    Ok(())
}

/// An audit row about `cr`; the actor is the request's `spec.username`.
pub(super) fn audit(
    cr: &CertificateRequest,
    op: AuditOperation,
    outcome: Outcome,
    now: OffsetDateTime,
) -> AuditEvent {
    let mut obj = ObjectRef::namespaced(
        "CertificateRequest",
        cr.namespace().unwrap_or_default(),
        cr.name_any(),
    );
    if let Some(uid) = cr.uid() {
        obj = obj.with_uid(uid);
    }
    let actor = cr
        .spec
        .username
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    AuditEvent::new(unix_ms(now), actor, op, obj)
        .with_ca(cr.spec.issuer_ref.name.clone())
        .with_outcome(outcome)
}

/// An Event about `cr` (a failure to publish is logged, never fatal).
pub(super) async fn event(
    ctx: &Context,
    cr: &CertificateRequest,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Issue".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &cr.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}
