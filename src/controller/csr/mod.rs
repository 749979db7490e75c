//! Signet as a Kubernetes CertificateSigningRequest signer: CSRs
//! (`certificates.k8s.io/v1`) whose `spec.signerName` is
//! `<signer domain>/<ca>` (default domain `signet.dev`, `--signer-domain`)
//! are signed by that CertificateAuthority once approved, under the same
//! policy as Signet Certificates.
//!
//! The contract (the CSR API's documentation): act only on requests with
//! `Approved=True` and neither `Denied` nor `Failed`; write
//! `status.certificate` (the leaf and the intermediates, PEM) once; a
//! refusal is a `Failed=True` condition with a reason and a message; never
//! sign twice (a mirror row keyed by the request's uid, written before the
//! status). Status goes through the `/status` subresource with the
//! object's resourceVersion (its conditions are not server-side-apply
//! friendly); the API server requires `sign` on the signer for that.
//!
//! Per request: step (pure) → recorded issuance? → CSR (parse, verify its
//! signature) → CA (exists: else Failed; Ready: else wait) → plan (pure) →
//! policy (the shared checks; the requester's namespace is its
//! ServiceAccount's) → one KMS Sign → mirror + audit row → status.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::json;
use time::OffsetDateTime;
use tracing::{Instrument, info, warn};

use super::{Context, Error, ca, driver, mirror, requests};
use crate::api::{CertificateAuthority, duration};
use crate::clock::{rfc3339, unix_ms};
use crate::pki;
use crate::store::{AuditEvent, AuditOperation, ObjectRef, Outcome};
use decide::Step;

/// Kind name in audit rows and the mirror.
pub const KIND: &str = "CertificateSigningRequest";

/// Runs the CSR signer (unless `--csr-signer=false`).
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let client = ctx.client.clone();
    let ctl = Controller::new(
        Api::<CertificateSigningRequest>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = ctl.store();
    let domain = ctx.signer_domain.clone();
    let stream = ctl
        // A CA becoming Ready wakes the approved requests waiting for it.
        .watches(
            Api::<CertificateAuthority>::all(client),
            watcher::Config::default(),
            move |ca| {
                let signer = format!("{domain}/{}", ca.name_any());
                super::refs_where(&store, |r: &CertificateSigningRequest| {
                    r.spec.signer_name == signer
                })
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(ctx.stop.wait())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(30)),
            ctx,
        );
    driver::drain("certificatesigningrequest", stream).await;
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if ctx.may_write().is_err() {
        return Ok(Action::requeue(driver::NOT_LEADER_RETRY));
    }
    let now = ctx.clock.now();
    let step = decide::step(&csr, &ctx.signer_domain, now);
    if matches!(step, Step::Nothing | Step::AwaitApproval) {
        return Ok(Action::await_change());
    }
    let span = tracing::info_span!("reconcile", kind = KIND, object = %csr.name_any());
    run(&csr, &ctx, step, now).instrument(span).await
}

async fn run(
    csr: &CertificateSigningRequest,
    ctx: &Context,
    step: Step,
    now: OffsetDateTime,
) -> Result<Action, Error> {
    let result = match step {
        Step::ApprovalExpired => Err(Error::Policy {
            reason: "ApprovalExpired",
            message: format!(
                "approved more than {} minutes ago and never collected; create a new CertificateSigningRequest",
                decide::APPROVAL_MAX_AGE.as_secs() / 60
            ),
        }),
        Step::Sign { ca } => sign(ctx, csr, &ca, now).await,
        Step::Nothing | Step::AwaitApproval => return Ok(Action::await_change()),
    };
    let Err(err) = result else {
        return Ok(Action::await_change());
    };
    if err.is_retryable() || matches!(err, Error::IssuerNotReady(_)) {
        // Transient (KMS, the API, the audit trail) or waiting for the CA:
        // the request stays approved and is signed later.
        warn!(reason = err.reason(), error = %err, "not signed yet");
        let wait = if err.is_not_leader() {
            driver::NOT_LEADER_RETRY
        } else {
            Duration::from_secs(15)
        };
        return Ok(Action::requeue(wait));
    }
    failed(ctx, csr, &err, now).await?;
    Ok(Action::await_change())
}

/// Signs `csr` with CA `ca_name` (or reuses what an earlier attempt signed
/// and recorded), then writes `status.certificate`.
async fn sign(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    ca_name: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let cas: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    let Some(ca) = cas.get_opt(ca_name).await? else {
        return Err(Error::Policy {
            reason: "IssuerNotFound",
            message: format!(
                "spec.signerName {:?} names CertificateAuthority {ca_name:?}, which does not exist",
                csr.spec.signer_name
            ),
        });
    };
    if let Some(facts) = recorded(ctx, csr, now).await? {
        let issuer = ca::issuer_of(&ca, false)?;
        info!(serial = %facts.serial_hex, "request was signed before its status was written; reusing that certificate");
        return write_certificate(ctx, csr, &issuer, &facts).await;
    }
    let contents = pki::parse_csr(&csr.spec.request.0).map_err(|e| Error::Policy {
        reason: "InvalidCSR",
        message: e.to_string(),
    })?;
    let urls = ca::urls::observe(ctx, &ca).await?;
    let issuer = ca::issuer_with_urls(&ca, true, urls.as_ref())?;
    let ca_max = duration::optional(
        "spec.maxCertificateDuration",
        ca.spec.max_certificate_duration.as_deref(),
    )
    .map_err(Error::InvalidSpec)?;
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let plan = super::certmanager::decide::plan_for(
        false,
        &usages,
        decide::duration(csr.spec.expiration_seconds, ca_max),
        &contents,
    )?;
    check_policy(ctx, csr, &ca, &plan).await?;
    let facts = requests::sign_leaf(ctx, &issuer, &plan, &contents.spki_der, now).await?;
    record(ctx, csr, &issuer.name, &plan.request, &facts, now).await?;
    write_certificate(ctx, csr, &issuer, &facts).await
}

/// The CA chain's policy, for the requester's namespace: a
/// ServiceAccount's; none for anyone else, which a CA that restricts
/// namespaces refuses.
async fn check_policy(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    ca: &CertificateAuthority,
    plan: &super::certmanager::decide::Plan,
) -> Result<(), Error> {
    if let Some(ns) = decide::requester_namespace(csr.spec.username.as_deref()) {
        return requests::check_policy(ctx, ca, ns, plan).await;
    }
    let ancestors = ca::observe::ancestry(ctx, ca).await?.parents;
    if std::iter::once(ca)
        .chain(ancestors.iter())
        .any(|c| c.spec.allowed_namespaces.is_some())
    {
        return Err(Error::Policy {
            reason: "NamespaceNotAllowed",
            message: format!(
                "CertificateAuthority {:?} (or a parent) allows only some namespaces, and requester {:?} is not a ServiceAccount (system:serviceaccount:<namespace>:<name>), so it is in none",
                ca.name_any(),
                csr.spec.username.clone().unwrap_or_default()
            ),
        });
    }
    requests::check_policy(ctx, ca, "", plan).await
}

/// What an earlier reconcile signed for this request (same uid).
async fn recorded(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    now: OffsetDateTime,
) -> Result<Option<pki::CertFacts>, Error> {
    let (name, uid) = (csr.name_any(), csr.uid().unwrap_or_default());
    requests::recorded(ctx, ("", &name, &uid), now).await
}

/// The audit row of `op` about `csr` (actor: its `spec.username`).
fn audit(
    csr: &CertificateSigningRequest,
    op: AuditOperation,
    outcome: Outcome,
    now: OffsetDateTime,
) -> AuditEvent {
    let mut obj = ObjectRef::cluster(KIND, csr.name_any());
    if let Some(uid) = csr.uid() {
        obj = obj.with_uid(uid);
    }
    let actor = csr
        .spec
        .username
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    AuditEvent::new(unix_ms(now), actor, op, obj).with_outcome(outcome)
}

/// Mirror row and audit row, before the status (the audit row committed).
async fn record(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    ca: &str,
    req: &pki::LeafRequest,
    facts: &pki::CertFacts,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let uid = csr.uid().unwrap_or_default();
    ctx.store
        .upsert_certificate(mirror::certificate_request_row(
            ("", &csr.name_any(), &uid),
            ca,
            req,
            facts,
        ));
    let row = audit(
        csr,
        AuditOperation::CertificateIssued,
        Outcome::Success,
        now,
    )
    .with_ca(ca)
    .with_serial(&facts.serial_hex)
    .with_details(json!({
        "notAfter": rfc3339(facts.not_after),
        "signerName": csr.spec.signer_name,
        "actorSource": "spec.username of the CertificateSigningRequest, set by the API server",
        "groups": csr.spec.groups,
    }));
    ctx.audit_committed(row, &facts.serial_hex).await?;
    ctx.metrics.certificate_issued(false);
    Ok(())
}

/// `status.certificate`: the leaf and the intermediates (PEM).
async fn write_certificate(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    issuer: &ca::ReadyIssuer,
    facts: &pki::CertFacts,
) -> Result<(), Error> {
    let (intermediates, _root) = pki::split_chain(&issuer.chain_pem);
    let mut next = csr.clone();
    let status = next.status.get_or_insert_with(Default::default);
    status.certificate = Some(ByteString(
        format!("{}{intermediates}", facts.pem()).into_bytes(),
    ));
    replace_status(ctx, &next).await?;
    info!(serial = %facts.serial_hex, ca = %issuer.name, "certificate signing request signed");
    Ok(())
}

/// Marks the request `Failed=True` with the error's reason and message,
/// and records the refusal.
async fn failed(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    err: &Error,
    now: OffsetDateTime,
) -> Result<(), Error> {
    warn!(reason = err.reason(), error = %err, "refused");
    let at = Time(super::conditions::jiff_ts(now));
    let mut next = csr.clone();
    let status = next.status.get_or_insert_with(Default::default);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: "Failed".into(),
            status: "True".into(),
            reason: Some(err.reason().into()),
            message: Some(err.to_string()),
            last_update_time: Some(at.clone()),
            last_transition_time: Some(at),
        });
    replace_status(ctx, &next).await?;
    let ca = decide::ca_of(&csr.spec.signer_name, &ctx.signer_domain).unwrap_or_default();
    ctx.store.audit(
        audit(csr, AuditOperation::PolicyDenied, Outcome::Denied, now)
            .with_ca(ca)
            .with_details(json!({"reason": err.reason(), "message": err.to_string()})),
    );
    Ok(())
}

/// Updates `/status` with the object's resourceVersion: a conflict means
/// someone else changed it first, and the next reconcile sees that.
async fn replace_status(ctx: &Context, next: &CertificateSigningRequest) -> Result<(), Error> {
    ctx.may_write()?;
    let name = next.name_any();
    Api::<CertificateSigningRequest>::all(ctx.client.clone())
        .replace_status(&name, &PostParams::default(), next)
        .await
        .map_err(|e| {
            Error::from_write(
                &format!("CertificateSigningRequest {name} status"),
                "grant the operator update on certificatesigningrequests/status and sign on its signers (see the chart's RBAC)",
                e,
            )
        })?;
    Ok(())
}
