//! CertificateAuthority: finalizer → observe → decide → act (key, sign) →
//! status → effects.

mod act;
pub mod decide;
mod finalizer;
pub mod observe;
pub mod urls;

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use time::OffsetDateTime;

use super::driver::{self, Kind, Next};
use super::{Context, Error};
use crate::api::{CertificateAuthority, CertificateAuthorityStatus};
use crate::clock::unix_ms;
use crate::metrics::{CaSeries, Metrics};
use crate::store::{AuditEvent, AuditOperation, ObjectRef, Outcome};

pub use decide::{Decision, ReadyIssuer, issuer_of, issuer_with_urls, spec_hash};
pub use finalizer::FINALIZER;

crate::status_fields!(CertificateAuthorityStatus, failed_attempts);

/// Default validity of a root CA certificate (10 years).
pub const ROOT_DURATION: std::time::Duration = std::time::Duration::from_secs(87600 * 3600);
/// Default validity of an intermediate CA certificate (5 years).
pub const INTERMEDIATE_DURATION: std::time::Duration = std::time::Duration::from_secs(43800 * 3600);

#[async_trait::async_trait]
impl Kind for CertificateAuthority {
    type Status = CertificateAuthorityStatus;
    const CONTROLLER: &'static str = "certificateauthority";
    const ACTION: &'static str = "Reconcile";

    fn status_of(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }

    async fn reconcile(&self, ctx: &Context, now: OffsetDateTime) -> Result<Next, Error> {
        if let Some(next) = finalizer::handle(ctx, self, now).await? {
            return Ok(next);
        }
        let world = observe::world(ctx, self).await?;
        let decision = decide::decide(self, &world, ctx.default_key_spec, now)?;
        act::carry_out(ctx, self, decision, now).await
    }

    fn record_metrics(&self, st: &CertificateAuthorityStatus, metrics: &Metrics) {
        metrics.set_ca(
            &self.name_any(),
            CaSeries {
                not_after: driver::unix_seconds(st.not_after.as_deref()),
                renewal: driver::unix_seconds(st.renewal_time.as_deref()),
                ready: driver::ready_state(&st.conditions),
            },
        );
    }

    fn failure_audit(&self, err: &Error, now: OffsetDateTime) -> Option<AuditEvent> {
        matches!(err, Error::Kms(_) | Error::Pki(_)).then(|| {
            audit(
                self,
                AuditOperation::SigningFailed,
                Outcome::Failure,
                serde_json::json!({"reason": err.reason(), "message": err.to_string()}),
                now,
            )
        })
    }
}

/// An audit row about CA `ca`.
fn audit(
    ca: &CertificateAuthority,
    op: AuditOperation,
    outcome: Outcome,
    details: serde_json::Value,
    now: OffsetDateTime,
) -> AuditEvent {
    let mut obj = ObjectRef::cluster("CertificateAuthority", ca.name_any());
    if let Some(uid) = ca.uid() {
        obj = obj.with_uid(uid);
    }
    AuditEvent::new(unix_ms(now), "controller", op, obj)
        .with_ca(ca.name_any())
        .with_outcome(outcome)
        .with_details(details)
}

/// Runs the CertificateAuthority controller.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let api: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    let ctl = Controller::new(api.clone(), watcher::Config::default());
    let store = ctl.store();
    tokio::spawn(prune_published(ctx.clone(), store.clone()));
    // An intermediate reacts to its parent (renewal, becoming Ready).
    let stream = ctl
        .watches(api, watcher::Config::default(), move |parent| {
            let name = parent.name_any();
            super::refs_where(&store, |c| {
                c.spec.issuer_ref.as_ref().is_some_and(|r| r.name == name)
            })
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(ctx.stop.wait())
        .run(
            driver::reconcile::<CertificateAuthority>,
            driver::error_policy::<CertificateAuthority>,
            ctx,
        );
    driver::drain("certificateauthority", stream).await;
}

/// Removes the published certificates and the series of deleted CAs.
async fn prune_published(
    ctx: Arc<Context>,
    store: kube::runtime::reflector::Store<CertificateAuthority>,
) {
    // No wait for the store's first list: what is pruned was recorded by a
    // reconcile, and an object is in the store before it is reconciled.
    // (The controller's store never reported ready here, so waiting for it
    // meant never pruning.)
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let names: std::collections::HashSet<String> =
            store.state().iter().map(|c| c.name_any()).collect();
        ctx.published.retain_cas(|n| names.contains(n));
        ctx.metrics.retain_cas(|n| names.contains(n));
    }
}
