//! Certificate: revocation first → observe → decide → act (sign, Secret,
//! mirror + audit) → status → Event.

mod act;
pub mod decide;
pub mod observe;
pub mod revoke;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use time::OffsetDateTime;
use tracing::info;

use super::conditions::Cond;
use super::driver::{self, Kind, Next};
use super::{Context, Error};
use crate::api::{
    CONDITION_ISSUING, CRL, Certificate, CertificateAuthority, CertificateStatus, RevocationReason,
};
use crate::clock::{rfc3339, unix_ms};
use crate::metrics::{CertificateSeries, Metrics};
use crate::pki;
use crate::store::{AuditEvent, AuditOperation, ObjectRef, Outcome};

pub use decide::{Decision, spec_hash};
pub use revoke::RevokeRequest;

crate::status_fields!(CertificateStatus, failed_issuance_attempts);

/// Default certificate validity (90 days).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);
/// Annotation set by `signet revoke --reissue`.
pub const REVOKE_ANNOTATION: &str = "signet.dev/revoke";
/// Annotation `signet revoke` sets with a revocation: who asked (vouched
/// for by the admission policy).
pub use crate::api::REVOKED_BY_ANNOTATION;
/// Condition type reporting an unusable `signet.dev/revoke` annotation.
pub const REVOKE_REQUEST_CONDITION: &str = "RevokeRequest";
/// Secret annotation: the issuing CA.
pub const ANN_ISSUER: &str = "signet.dev/issuer";
/// Secret annotation: serial of the certificate in the Secret.
pub const ANN_SERIAL: &str = "signet.dev/serial";
/// Secret annotation: notAfter of the certificate in the Secret.
pub const ANN_NOT_AFTER: &str = "signet.dev/not-after";
/// Secret annotation: uid of the Certificate the Secret was written for.
pub const ANN_CERTIFICATE_UID: &str = "signet.dev/certificate-uid";
/// Secret annotation: hash of the spec the certificate was issued for.
pub const ANN_SPEC_HASH: &str = "signet.dev/spec-hash";
/// Secret label naming the owning Certificate.
pub const LABEL_CERTIFICATE: &str = "signet.dev/certificate";
/// The type of every Secret Signet writes.
pub const SECRET_TYPE: &str = "kubernetes.io/tls";

#[async_trait::async_trait]
impl Kind for Certificate {
    type Status = CertificateStatus;
    const CONTROLLER: &'static str = "certificate";
    const ACTION: &'static str = "Issue";

    fn status_of(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }

    async fn reconcile(&self, ctx: &Context, now: OffsetDateTime) -> Result<Next, Error> {
        let mut base = self.status.clone().unwrap_or_default();
        let (forced, note) = match revoke::request(self, now) {
            revoke::Request::Declared(reason) => {
                return revoke_declared(ctx, self, &base, reason, now).await;
            }
            revoke::Request::Annotated(req, target) => {
                base = revoke_annotated(ctx, self, &base, &req, &target, now).await?;
                (req.reissue.then_some(decide::REISSUE), None)
            }
            revoke::Request::Malformed(note) => (None, Some(note)),
            revoke::Request::None => (None, None),
        };
        let world = observe::world(ctx, self).await?;
        let revoked: Vec<String> = base
            .revocations
            .iter()
            .map(|r| r.serial_number.clone())
            .collect();
        let (plan, decision) = decide::decide(self, &world, &revoked, forced, now)?;
        match decision {
            Decision::UpToDate { cert, renewal } => {
                if base.serial_number.as_deref() != Some(cert.serial_hex.as_str()) {
                    if status_already_has(ctx, self, &cert.serial_hex).await? {
                        // Only the watch store lags our own status write;
                        // a status built on it would drop what that write
                        // recorded (revision, previous certificates).
                        return Ok(Next::Until(renewal));
                    }
                    // In the Secret but never in status: the reconcile that
                    // issued it stopped early. Make sure it is on record.
                    let revision = base.revision.unwrap_or(0) + 1;
                    let prev = base.serial_number.clone();
                    act::record(ctx, self, &cert, revision, "Recorded", prev.as_deref(), now)
                        .await?;
                }
                let st =
                    status::up_to_date(self, &base, &cert, renewal, &plan.hash, note.as_ref(), now);
                driver::apply_status(ctx, self, &st).await?;
                Ok(Next::Until(renewal))
            }
            Decision::Issue {
                reason,
                why,
                issuer,
                reuse,
            } => {
                ctx.audit_ready()?;
                let leaf = act::sign(ctx, &plan, &issuer, reuse.as_ref(), now).await?;
                act::apply_secret(ctx, self, &issuer, &leaf, &plan.hash).await?;
                issued(
                    ctx,
                    self,
                    &base,
                    &plan,
                    &issuer.name,
                    leaf,
                    (reason, why),
                    note.as_ref(),
                    now,
                )
                .await
            }
        }
    }

    fn failure_conditions(&self, err: &Error, attempts: u32, now: OffsetDateTime) -> Vec<Cond> {
        let issuing = if err.is_retryable() {
            Cond::yes(
                CONDITION_ISSUING,
                err.reason(),
                format!("retrying after failure {attempts}: {err}"),
            )
        } else {
            Cond::no(CONDITION_ISSUING, err.reason(), "waiting for a change")
        };
        let mut out = vec![issuing];
        // A malformed revoke request is reported whatever else goes wrong.
        if let revoke::Request::Malformed(note) = revoke::request(self, now) {
            out.push(note);
        }
        out
    }

    fn failure_audit(&self, err: &Error, now: OffsetDateTime) -> Option<AuditEvent> {
        let (op, outcome) = match err {
            Error::Policy { .. } => (AuditOperation::PolicyDenied, Outcome::Denied),
            Error::Kms(_) | Error::Pki(_) => (AuditOperation::SigningFailed, Outcome::Failure),
            _ => return None,
        };
        Some(
            audit(self, op, outcome, "controller", now)
                .with_ca(self.spec.issuer_ref.name.clone())
                .with_details(
                    serde_json::json!({"reason": err.reason(), "message": err.to_string()}),
                ),
        )
    }

    fn urgent(&self, now: OffsetDateTime) -> bool {
        matches!(revoke::request(self, now), revoke::Request::Annotated(..))
    }

    fn record_metrics(&self, st: &CertificateStatus, metrics: &Metrics) {
        metrics.set_certificate(
            &self.namespace().unwrap_or_default(),
            &self.name_any(),
            CertificateSeries {
                issuer: self.spec.issuer_ref.name.clone(),
                not_after: driver::unix_seconds(st.not_after.as_deref()),
                // Revoked through spec.revocation: never renewed again.
                renewal: self
                    .spec
                    .revocation
                    .is_none()
                    .then(|| driver::unix_seconds(st.renewal_time.as_deref()))
                    .flatten(),
                ready: driver::ready_state(&st.conditions),
            },
        );
    }
}

/// Whether the Certificate as the API server has it (not as the watch
/// store may still have it) already records `serial`. One GET, only on the
/// rare path where the Secret is ahead of the cached status.
async fn status_already_has(
    ctx: &Context,
    cert: &Certificate,
    serial: &str,
) -> Result<bool, Error> {
    let fresh = cert
        .api(ctx.client.clone())
        .get_opt(&cert.name_any())
        .await?;
    Ok(fresh
        .and_then(|c| c.status)
        .and_then(|s| s.serial_number)
        .as_deref()
        == Some(serial))
}

/// `spec.revocation`: revoke every unexpired certificate of the object and
/// stop. Needs nothing but the object's own records.
async fn revoke_declared(
    ctx: &Context,
    cert: &Certificate,
    base: &CertificateStatus,
    reason: RevocationReason,
    now: OffsetDateTime,
) -> Result<Next, Error> {
    let targets = revoke::issued(cert, now);
    let actor = revoke::actor(cert, ctx.revoked_by_vouched().await);
    let confirmed = revoke::revoke(ctx, cert, base, &targets, reason, &actor, now).await?;
    let st = status::revoked(cert, base, confirmed, reason, now);
    driver::apply_status(ctx, cert, &st).await?;
    Ok(Next::AwaitChange)
}

/// `signet.dev/revoke`: revoke the named serial, confirm it in status, drop
/// the annotation. Returns the status to continue from.
async fn revoke_annotated(
    ctx: &Context,
    cert: &Certificate,
    base: &CertificateStatus,
    req: &RevokeRequest,
    target: &revoke::Target,
    now: OffsetDateTime,
) -> Result<CertificateStatus, Error> {
    let actor = revoke::actor(cert, ctx.revoked_by_vouched().await);
    let confirmed = revoke::revoke(
        ctx,
        cert,
        base,
        std::slice::from_ref(target),
        req.reason,
        &actor,
        now,
    )
    .await?;
    let st = status::with_revocations(base, confirmed);
    driver::apply_status(ctx, cert, &st).await?;
    revoke::clear_annotation(ctx, cert).await?;
    Ok(st)
}

/// After the Secret holds `leaf`: mirror + audit, status, Event.
#[allow(clippy::too_many_arguments)]
async fn issued(
    ctx: &Context,
    cert: &Certificate,
    base: &CertificateStatus,
    plan: &decide::Plan,
    issuer: &str,
    leaf: pki::IssuedLeaf,
    (reason, why): (&'static str, &'static str),
    note: Option<&Cond>,
    now: OffsetDateTime,
) -> Result<Next, Error> {
    let facts = pki::cert_facts(&leaf.cert_der)?;
    let previous = base.serial_number.clone();
    let revision = base.revision.unwrap_or(0) + 1;
    act::record(
        ctx,
        cert,
        &facts,
        revision,
        reason,
        previous.as_deref(),
        now,
    )
    .await?;
    let renewal =
        crate::api::duration::act_at(facts.not_before, facts.not_after, plan.lifetime.before_end);
    let mut message = format!(
        "certificate issued by {issuer}, serial {}",
        facts.serial_hex
    );
    if leaf.clamped {
        message.push_str(&format!(
            "; validity clamped to the issuer's notAfter {}",
            rfc3339(facts.not_after)
        ));
    }
    let new = status::NewCertificate {
        facts: &facts,
        issuer,
        renewal,
        hash: &plan.hash,
        message: message.clone(),
        why,
    };
    driver::apply_status(ctx, cert, &status::issued(cert, base, &new, note, now)).await?;
    info!(reason, serial = %facts.serial_hex, "certificate issued");
    if !ctx.success_events {
        return Ok(Next::Until(renewal));
    }
    let ev = if previous.is_some() {
        "Renewed"
    } else {
        "Issued"
    };
    driver::event(
        ctx,
        cert,
        EventType::Normal,
        ev,
        format!("{message} ({why})"),
    )
    .await;
    Ok(Next::Until(renewal))
}

/// An audit row about Certificate `cert`.
fn audit(
    cert: &Certificate,
    op: AuditOperation,
    outcome: Outcome,
    actor: &str,
    now: OffsetDateTime,
) -> AuditEvent {
    let mut obj = ObjectRef::namespaced(
        "Certificate",
        cert.namespace().unwrap_or_default(),
        cert.name_any(),
    );
    if let Some(uid) = cert.uid() {
        obj = obj.with_uid(uid);
    }
    AuditEvent::new(unix_ms(now), actor, op, obj).with_outcome(outcome)
}

/// Runs the Certificate controller.
///
/// Its watches fill the stores reconciles read (the CA, the Secret, the
/// CRLs: see [`super::watches`]), and the echoes of Signet's own status and
/// Secret writes wake nothing.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let client = ctx.client.clone();
    let (certs, cert_writer) = reflector::store::<Certificate>();
    let (cas, ca_writer) = reflector::store::<CertificateAuthority>();
    let (crls, crl_writer) = reflector::store::<CRL>();
    let (secrets, secret_writer) = reflector::store::<Secret>();
    ctx.caches
        .install(cas.clone(), crls.clone(), secrets.clone());
    tokio::spawn(prune_metrics(ctx.clone(), certs.clone()));

    let echoes = ctx.clone();
    // Certificates keep their managedFields: the status apply reads them
    // to clear fields an older version wrote with a merge patch.
    let own = watcher(
        Api::<Certificate>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(cert_writer)
    .applied_objects()
    .try_filter(move |c| std::future::ready(!echoes.echoes.is_echo(c)));
    // CRLs only change the URLs a CA stamps: nothing to wake, just keep
    // the store current.
    let crl_stream =
        watch(Api::<CRL>::all(client.clone()), watcher::Config::default()).reflect(crl_writer);
    tokio::spawn(crl_stream.for_each(|_| std::future::ready(())));
    // A CA appearing, becoming Ready or renewing wakes its Certificates.
    let ca_stream = watch(
        Api::<CertificateAuthority>::all(client.clone()),
        watcher::Config::default(),
    )
    .reflect(ca_writer)
    .touched_objects();
    // A Secret deleted or edited wakes the Certificate that owns it; our
    // own write of it does not.
    let echoes = ctx.clone();
    let secret_stream = watch(
        Api::<Secret>::all(client),
        watcher::Config::default().labels(LABEL_CERTIFICATE),
    )
    .reflect(secret_writer)
    .touched_objects()
    .try_filter(move |s| std::future::ready(!echoes.echoes.is_echo(s)));

    let by_issuer = certs.clone();
    let by_secret = certs.clone();
    let stream = Controller::for_stream(own, certs)
        .watches_stream(ca_stream, move |ca| {
            let name = ca.name_any();
            super::refs_where(&by_issuer, |c| c.spec.issuer_ref.name == name)
        })
        .watches_stream(secret_stream, move |secret: Secret| {
            let ns = secret.namespace().unwrap_or_default();
            let sname = secret.name_any();
            super::refs_where(&by_secret, |c| {
                c.namespace().as_deref() == Some(&ns) && c.spec.secret_name == sname
            })
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(ctx.stop.wait())
        .run(
            driver::reconcile::<Certificate>,
            driver::error_policy::<Certificate>,
            ctx,
        );
    driver::drain("certificate", stream).await;
}

/// A watch with kube-runtime's default backoff and without the
/// managedFields (never read, and the bulk of a cached object).
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .modify(|o| o.meta_mut().managed_fields = None)
}

/// Removes the series of deleted Certificates.
async fn prune_metrics(ctx: Arc<Context>, store: kube::runtime::reflector::Store<Certificate>) {
    // No wait for the store's first list: what is pruned was recorded by a
    // reconcile, and an object is in the store before it is reconciled.
    // (The controller's store never reported ready here, so waiting for it
    // meant never pruning.)
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let live: std::collections::HashSet<(String, String)> = store
            .state()
            .iter()
            .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
            .collect();
        ctx.metrics
            .retain_certificates(|ns, name| live.contains(&(ns.to_string(), name.to_string())));
    }
}
