//! CertificateAuthority reconciler: validate → key → plan → sign → status.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::conditions::{self, Cond, rfc3339};
use super::{Context, Error};
use crate::api::{
    CONDITION_READY, CertificateAuthority, CertificateAuthorityStatus, KeyDeletionPolicy,
    KmsKeySpec, duration,
};
use crate::kms::{KeySpec, KmsSigner, SignError, Signer};
use crate::pki::{self, CaRequest, IssuedCert, IssuerInfo, IssuerProfile};
use crate::store::{AuditEvent, AuditOperation, CaRecord, CaStatus, ObjectRef, Outcome};

/// Default validity of a root CA certificate.
pub const ROOT_DURATION: Duration = Duration::from_secs(87600 * 3600);
/// Default validity of an intermediate CA certificate.
pub const INTERMEDIATE_DURATION: Duration = Duration::from_secs(43800 * 3600);

/// Runs the CertificateAuthority controller.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let api: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    let ctl = Controller::new(api.clone(), watcher::Config::default());
    let store = ctl.store();
    // An intermediate reacts to its parent (renewal, becoming Ready).
    let ctl = ctl.watches(api, watcher::Config::default(), move |parent| {
        let name = parent.name_any();
        super::refs_where(&store, |c| {
            c.spec.issuer_ref.as_ref().is_some_and(|r| r.name == name)
        })
    });
    let stream = ctl
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drain("certificateauthority", stream).await;
}

fn error_policy(_ca: Arc<CertificateAuthority>, _e: &Error, _ctx: Arc<Context>) -> Action {
    // Status and backoff were handled in `reconcile`; this only covers
    // failures to write that status.
    Action::requeue(Duration::from_secs(15))
}

/// The inputs that shape the CA certificate; a change triggers reissuance.
fn spec_hash(ca: &CertificateAuthority) -> String {
    let s = &ca.spec;
    let v = json!({
        "cn": s.common_name, "subject": s.subject, "duration": s.duration,
        "pathLen": s.max_path_length, "nc": s.name_constraints,
        "issuer": s.issuer_ref.as_ref().map(|r| &r.name),
    });
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.to_string().as_bytes());
    hex::encode(&digest.as_ref()[..12])
}

/// Parsed, validated spec.
struct Plan {
    request: CaRequest,
    renew_before: Duration,
}

fn validate(ca: &CertificateAuthority) -> Result<Plan, Error> {
    let s = &ca.spec;
    let default = if s.issuer_ref.is_some() {
        INTERMEDIATE_DURATION
    } else {
        ROOT_DURATION
    };
    let dur = match &s.duration {
        Some(d) => duration::parse("spec.duration", d).map_err(Error::InvalidSpec)?,
        None => default,
    };
    let renew_before = match &s.renew_before {
        Some(d) => duration::parse("spec.renewBefore", d).map_err(Error::InvalidSpec)?,
        None => dur / 3,
    };
    if renew_before >= dur {
        return Err(Error::InvalidSpec(format!(
            "spec.renewBefore ({}) must be shorter than spec.duration ({})",
            duration::format(renew_before),
            duration::format(dur)
        )));
    }
    if let Some(m) = &s.max_certificate_duration {
        duration::parse("spec.maxCertificateDuration", m).map_err(Error::InvalidSpec)?;
    }
    let mut subject = s.subject.clone().map(convert::subject).unwrap_or_default();
    subject.common_name = Some(s.common_name.clone());
    Ok(Plan {
        request: CaRequest {
            subject,
            duration: time::Duration::try_from(dur)
                .map_err(|_| Error::InvalidSpec("spec.duration is too large".into()))?,
            path_len: s.max_path_length,
            name_constraints: s.name_constraints.as_ref().map(convert::name_constraints),
        },
        renew_before,
    })
}

/// The profile this CA stamps into what it issues.
pub fn profile(ca: &CertificateAuthority) -> Result<IssuerProfile, Error> {
    let s = &ca.spec;
    let max_duration = match &s.max_certificate_duration {
        Some(m) => Some(
            time::Duration::try_from(
                duration::parse("spec.maxCertificateDuration", m).map_err(Error::InvalidSpec)?,
            )
            .map_err(|_| Error::InvalidSpec("spec.maxCertificateDuration is too large".into()))?,
        ),
        None => None,
    };
    Ok(IssuerProfile {
        crl_distribution_points: s.crl_distribution_points.clone(),
        ocsp_servers: s.ocsp_servers.clone(),
        issuing_certificate_urls: s.issuing_certificate_urls.clone(),
        policy_oids: s.certificate_policies.clone(),
        max_duration,
    })
}

/// A Ready CA as an issuer: its certificate, profile, chain and signer.
pub struct ReadyCa {
    /// Parsed CA certificate + profile.
    pub info: IssuerInfo,
    /// The CA's chain up to the root (PEM, CA first).
    pub chain_pem: String,
    /// The KMS signer.
    pub signer: Arc<KmsSigner>,
}

/// Looks up a CA by name and requires it to be Ready.
pub async fn ready_ca(ctx: &Context, name: &str) -> Result<(CertificateAuthority, ReadyCa), Error> {
    let api: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    let ca = api
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::IssuerNotFound(name.to_string()))?;
    let status = ca.status.clone().unwrap_or_default();
    let (Some(cert), Some(arn), Some(chain)) = (
        status.certificate.as_ref(),
        status.kms_key_arn.as_ref(),
        status.chain.as_ref(),
    ) else {
        return Err(Error::IssuerNotReady(name.to_string()));
    };
    if !conditions::is_true(&status.conditions, CONDITION_READY) {
        return Err(Error::IssuerNotReady(name.to_string()));
    }
    let info = IssuerInfo::from_pem(cert, profile(&ca)?)?;
    let signer = ctx.signer(arn).await?;
    Ok((
        ca,
        ReadyCa {
            info,
            chain_pem: chain.clone(),
            signer,
        },
    ))
}

fn key_spec(ctx: &Context, spec: Option<KmsKeySpec>) -> KeySpec {
    match spec {
        None => ctx.default_key_spec,
        Some(KmsKeySpec::ECC_NIST_P256) => KeySpec::EccNistP256,
        Some(KmsKeySpec::ECC_NIST_P384) => KeySpec::EccNistP384,
        Some(KmsKeySpec::RSA_2048) => KeySpec::Rsa2048,
        Some(KmsKeySpec::RSA_3072) => KeySpec::Rsa3072,
        Some(KmsKeySpec::RSA_4096) => KeySpec::Rsa4096,
    }
}

/// Finds, adopts or creates the CA's KMS key. Returns (signer, created).
async fn ensure_key(
    ctx: &Context,
    ca: &CertificateAuthority,
) -> Result<(Arc<KmsSigner>, Option<AuditOperation>), Error> {
    let status = ca.status.clone().unwrap_or_default();
    if let Some(arn) = &status.kms_key_arn {
        return Ok((ctx.signer(arn).await?, None));
    }
    if let Some(key) = &ca.spec.kms.key_id {
        return Ok((ctx.signer(key).await?, Some(AuditOperation::KmsKeyAdopted)));
    }
    let name = ca.name_any();
    let tags = vec![
        ("signet.dev/managed-by".to_string(), "signet".to_string()),
        ("signet.dev/certificate-authority".to_string(), name.clone()),
    ];
    match ctx
        .kms
        .create_key(key_spec(ctx, ca.spec.kms.key_spec), &name, &tags)
        .await
    {
        Ok(signer) => {
            let signer = Arc::new(signer);
            ctx.remember_signer(signer.clone());
            Ok((signer, Some(AuditOperation::KmsKeyCreated)))
        }
        // A previous attempt created the key but could not record it:
        // adopt it instead of creating a second one.
        Err(SignError::AliasExists { alias }) => Ok((
            ctx.signer(&alias).await?,
            Some(AuditOperation::KmsKeyAdopted),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Why the CA certificate must be (re)issued, if it must.
fn needs_issuance(
    ca: &CertificateAuthority,
    signer: &KmsSigner,
    hash: &str,
    now: time::OffsetDateTime,
) -> Option<&'static str> {
    let status = ca.status.as_ref()?;
    let Some(cert) = &status.certificate else {
        return Some("Issuing");
    };
    if status.spec_hash.as_deref() != Some(hash) {
        return Some("SpecChanged");
    }
    match IssuerInfo::from_pem(cert, IssuerProfile::default()) {
        Ok(info) if info.spki_der() != signer.public_key_spki_der() => Some("KeyChanged"),
        Ok(_) => match status
            .renewal_time
            .as_deref()
            .and_then(conditions::parse_rfc3339)
        {
            Some(t) if now >= t => Some("Renewing"),
            Some(_) => None,
            None => Some("Renewing"),
        },
        Err(_) => Some("InvalidCertificate"),
    }
}

/// Finalizer held only by CAs with `kms.deletionPolicy: ScheduleDeletion`
/// whose key Signet created: the one cleanup that is real.
pub const FINALIZER: &str = "signet.dev/kms-key-deletion";

fn wants_finalizer(ca: &CertificateAuthority) -> bool {
    ca.spec.kms.deletion_policy == Some(KeyDeletionPolicy::ScheduleDeletion)
        && ca.spec.kms.key_id.is_none()
}

fn has_finalizer(ca: &CertificateAuthority) -> bool {
    ca.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds or removes our finalizer; the resourceVersion makes it safe.
async fn set_finalizer(
    ctx: &Context,
    ca: &CertificateAuthority,
    present: bool,
) -> Result<(), Error> {
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

/// Deletion of a CA with our finalizer: schedule the key's deletion (30-day
/// KMS waiting period; cancellable) and let the object go.
async fn finalize(ctx: &Context, ca: &CertificateAuthority) -> Result<Action, Error> {
    let status = ca.status.clone().unwrap_or_default();
    if let (Some(true), Some(arn)) = (status.kms_key_created, status.kms_key_arn.as_deref()) {
        let res = ctx
            .kms
            .client()
            .schedule_key_deletion()
            .key_id(arn)
            .pending_window_in_days(30)
            .send()
            .await;
        let outcome = match &res {
            Ok(_) => Outcome::Success,
            Err(e) => {
                let text = format!("{e:?}");
                // Already pending or gone: nothing left to do.
                if text.contains("KMSInvalidStateException") || text.contains("NotFoundException") {
                    Outcome::Success
                } else {
                    return Err(Error::Other(format!(
                        "scheduling deletion of KMS key {arn} failed; fix access or remove the finalizer {FINALIZER} by hand: {}",
                        aws_sdk_kms::error::DisplayErrorContext(e)
                    )));
                }
            }
        };
        let now = ctx.clock.now();
        ctx.store.audit(audit(
            ca,
            AuditOperation::KmsKeyDeletionScheduled,
            outcome,
            json!({
                "keyArn": arn, "pendingWindowDays": 30
            }),
            now,
        ));
        publish_event(ctx, ca, EventType::Normal, "KeyDeletionScheduled",
            format!("KMS key {arn} scheduled for deletion in 30 days (cancel with `aws kms cancel-key-deletion`)")).await;
    }
    set_finalizer(ctx, ca, false).await?;
    Ok(Action::await_change())
}

#[instrument(skip(ctx, ca), fields(name = %ca.name_any()))]
async fn reconcile(ca: Arc<CertificateAuthority>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ca.metadata.deletion_timestamp.is_some() {
        return if has_finalizer(&ca) {
            finalize(&ctx, &ca).await
        } else {
            Ok(Action::await_change())
        };
    }
    if wants_finalizer(&ca) != has_finalizer(&ca) {
        // The patch wakes us again with the finalizer in place.
        set_finalizer(&ctx, &ca, wants_finalizer(&ca)).await?;
        return Ok(Action::await_change());
    }
    let start = std::time::Instant::now();
    let res = reconcile_inner(&ca, &ctx).await;
    ctx.metrics
        .observe_reconcile("certificateauthority", start.elapsed(), res.as_ref().err());
    match res {
        Ok(a) => Ok(a),
        Err(e) => fail(&ca, &ctx, e).await,
    }
}

async fn reconcile_inner(ca: &CertificateAuthority, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let name = ca.name_any();
    if let Some(st) = &ca.status
        && let Some(wait) = super::backoff_gate(
            st.failed_attempts,
            st.last_failure_time.as_deref(),
            st.observed_generation,
            ca.meta().generation,
            now,
        )
    {
        return Ok(Action::requeue(wait));
    }
    let plan = validate(ca)?;
    let hash = spec_hash(ca);
    let parent = match &ca.spec.issuer_ref {
        Some(r) => Some(ready_ca(ctx, &r.name).await?),
        None => None,
    };
    let (signer, key_op) = ensure_key(ctx, ca).await?;
    if let Some(op) = key_op {
        ctx.store.audit(audit(
            ca,
            op,
            Outcome::Success,
            json!({
                "keyArn": signer.key_arn(), "keySpec": signer.key_spec().as_str()
            }),
            now,
        ));
        // Record the key at once so a later failure never creates another.
        patch_status(
            ctx,
            &name,
            json!({"status": {
                "kmsKeyArn": signer.key_arn(),
                "kmsKeyCreated": op == AuditOperation::KmsKeyCreated,
            }}),
        )
        .await?;
    }
    let status = ca.status.clone().unwrap_or_default();
    let reason = needs_issuance(ca, &signer, &hash, now).or(if ca.status.is_none() {
        Some("Issuing")
    } else {
        None
    });

    let (cert_pem, chain, serial, not_before, not_after, fingerprint, op) = match reason {
        Some(why) => {
            let issued = issue(ca, &plan, parent.as_ref().map(|(_, p)| p), &signer, now).await?;
            let chain = match &parent {
                Some((_, p)) => format!("{}{}", issued.cert_pem, p.chain_pem),
                None => issued.cert_pem.clone(),
            };
            let op = if status.certificate.is_some() {
                AuditOperation::CaRenewed
            } else {
                AuditOperation::CaIssued
            };
            info!(reason = why, serial = %issued.serial_hex, "CA certificate issued");
            (
                issued.cert_pem.clone(),
                chain,
                issued.serial_hex.clone(),
                issued.not_before,
                issued.not_after,
                fingerprint(&issued.cert_der),
                Some((op, why)),
            )
        }
        None => {
            let cert_pem = status.certificate.clone().unwrap_or_default();
            let info = IssuerInfo::from_pem(&cert_pem, IssuerProfile::default())?;
            let chain = match &parent {
                Some((_, p)) => format!("{cert_pem}{}", p.chain_pem),
                None => cert_pem.clone(),
            };
            (
                cert_pem,
                chain,
                status.serial_number.clone().unwrap_or_default(),
                info.not_before(),
                info.not_after(),
                fingerprint(info.cert_der()),
                None,
            )
        }
    };
    let lifetime = not_after - not_before;
    let renew_before = time::Duration::try_from(plan.renew_before).unwrap_or(lifetime / 3);
    let renew_before = if renew_before >= lifetime {
        lifetime / 3
    } else {
        renew_before
    };
    let renewal = not_after - renew_before;

    let message = format!(
        "{} CA ready; key {}",
        if ca.spec.issuer_ref.is_some() {
            "intermediate"
        } else {
            "root"
        },
        signer.key_arn()
    );
    let conds = conditions::merge(
        &status.conditions,
        &[Cond::yes(CONDITION_READY, "Issued", message)],
        ca.meta().generation,
        now,
    );
    let new_status = CertificateAuthorityStatus {
        conditions: conds,
        observed_generation: ca.meta().generation,
        kms_key_arn: Some(signer.key_arn().to_string()),
        kms_key_created: status
            .kms_key_created
            .or(Some(key_op == Some(AuditOperation::KmsKeyCreated))),
        certificate: Some(cert_pem.clone()),
        chain: Some(chain),
        serial_number: Some(serial.clone()),
        not_before: Some(rfc3339(not_before)),
        not_after: Some(rfc3339(not_after)),
        renewal_time: Some(rfc3339(renewal)),
        fingerprint_sha256: Some(fingerprint),
        spec_hash: Some(hash),
        failed_attempts: None,
        last_failure_time: None,
    };
    if ca.status.as_ref() != Some(&new_status) {
        let mut body = json!({ "status": new_status });
        // A merge patch omits `None`: clear failure bookkeeping explicitly.
        body["status"]["failedAttempts"] = serde_json::Value::Null;
        body["status"]["lastFailureTime"] = serde_json::Value::Null;
        patch_status(ctx, &name, body).await?;
    }
    ctx.ca_certs
        .write()
        .await
        .insert(name.clone(), cert_pem.clone());
    if let Some((op, why)) = op {
        ctx.store.upsert_ca(ca_record(
            ca, &signer, &serial, not_before, not_after, &cert_pem, now,
        ));
        ctx.store.audit(
            audit(
                ca,
                op,
                Outcome::Success,
                json!({
                    "reason": why, "notAfter": rfc3339(not_after)
                }),
                now,
            )
            .with_serial(&serial),
        );
        let (reason, note) = if op == AuditOperation::CaRenewed {
            (
                "Renewed",
                format!("CA certificate renewed ({why}), serial {serial}"),
            )
        } else {
            ("Issued", format!("CA certificate issued, serial {serial}"))
        };
        publish_event(ctx, ca, EventType::Normal, reason, note).await;
    }
    Ok(requeue_at(now, renewal))
}

/// Requeue exactly at `when` (at least 1 s from now).
pub fn requeue_at(now: time::OffsetDateTime, when: time::OffsetDateTime) -> Action {
    let secs = (when - now).whole_seconds().max(1) as u64;
    Action::requeue(Duration::from_secs(secs))
}

async fn issue(
    ca: &CertificateAuthority,
    plan: &Plan,
    parent: Option<&ReadyCa>,
    signer: &Arc<KmsSigner>,
    now: time::OffsetDateTime,
) -> Result<IssuedCert, Error> {
    let _ = ca;
    Ok(match parent {
        None => pki::issue_root(signer.as_ref(), &plan.request, now).await?,
        Some(p) => {
            pki::issue_intermediate(
                &p.info,
                p.signer.as_ref(),
                &plan.request,
                signer.public_key_spki_der(),
                now,
            )
            .await?
        }
    })
}

/// SHA-256 fingerprint, colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn patch_status(ctx: &Context, name: &str, body: serde_json::Value) -> Result<(), Error> {
    super::patch_status(
        &Api::<CertificateAuthority>::all(ctx.client.clone()),
        name,
        body,
    )
    .await
}

fn audit(
    ca: &CertificateAuthority,
    op: AuditOperation,
    outcome: Outcome,
    details: serde_json::Value,
    now: time::OffsetDateTime,
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

/// Unix milliseconds.
pub fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The mirror row of a CA.
pub fn ca_record(
    ca: &CertificateAuthority,
    signer: &KmsSigner,
    serial: &str,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    cert_pem: &str,
    now: time::OffsetDateTime,
) -> CaRecord {
    CaRecord {
        name: ca.name_any(),
        uid: ca.uid(),
        kms_key_arn: Some(signer.key_arn().to_string()),
        key_spec: Some(signer.key_spec().as_str().to_string()),
        subject: Some(ca.spec.common_name.clone()),
        serial: Some(serial.to_string()),
        parent: ca.spec.issuer_ref.as_ref().map(|r| r.name.clone()),
        status: Some(CaStatus::Active),
        not_before: Some(not_before.unix_timestamp()),
        not_after: Some(not_after.unix_timestamp()),
        certificate_pem: Some(cert_pem.to_string()),
        updated_at: now.unix_timestamp(),
    }
}

async fn publish_event(
    ctx: &Context,
    ca: &CertificateAuthority,
    type_: EventType,
    reason: &str,
    note: String,
) {
    super::publish_event(ctx, ca, type_, "Reconcile", reason, note).await;
}

/// Records a failure: Ready=False with the reason, an Event and an audit
/// row only when the reason changes (no storms), and the requeue policy of
/// the error class.
async fn fail(ca: &CertificateAuthority, ctx: &Context, err: Error) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let status = ca.status.clone().unwrap_or_default();
    let reason = err.reason();
    let message = err.to_string();
    let prev = conditions::find(&status.conditions, CONDITION_READY);
    let changed = prev.is_none_or(|c| c.reason != reason || c.message != message);
    let attempts = if err.is_retryable() {
        status.failed_attempts.unwrap_or(0).saturating_add(1)
    } else {
        0
    };
    warn!(reason, error = %message, "CertificateAuthority not ready");
    if changed {
        publish_event(ctx, ca, EventType::Warning, reason, message.clone()).await;
        if matches!(err, Error::Kms(_) | Error::Pki(_)) {
            ctx.store.audit(audit(
                ca,
                AuditOperation::SigningFailed,
                Outcome::Failure,
                json!({
                    "reason": reason, "message": message
                }),
                now,
            ));
        }
    }
    let conds = conditions::merge(
        &status.conditions,
        &[Cond::no(CONDITION_READY, reason, message)],
        ca.meta().generation,
        now,
    );
    let mut body = json!({"status": {
        "conditions": conds,
        "observedGeneration": ca.meta().generation,
    }});
    if attempts > 0 {
        body["status"]["failedAttempts"] = json!(attempts);
        body["status"]["lastFailureTime"] = json!(rfc3339(now));
    }
    if changed || attempts > 0 {
        patch_status(ctx, &ca.name_any(), body).await?;
    }
    Ok(if err.is_retryable() {
        Action::requeue(super::backoff(attempts))
    } else {
        Action::await_change()
    })
}

/// Conversions from API types to PKI requests.
pub mod convert {
    use crate::api;
    use crate::pki;

    /// API subject → PKI subject (common name set by the caller).
    pub fn subject(s: api::Subject) -> pki::Subject {
        pki::Subject {
            common_name: None,
            organizations: s.organizations,
            organizational_units: s.organizational_units,
            countries: s.countries,
            provinces: s.provinces,
            localities: s.localities,
            street_addresses: s.street_addresses,
            postal_codes: s.postal_codes,
            serial_number: s.serial_number,
        }
    }

    fn subtrees(l: Option<&api::NameList>) -> pki::NameSubtrees {
        let l = l.cloned().unwrap_or_default();
        pki::NameSubtrees {
            dns_domains: l.dns_domains,
            ip_ranges: l.ip_ranges,
            email_addresses: l.email_addresses,
        }
    }

    /// API name constraints → PKI name constraints.
    pub fn name_constraints(nc: &api::NameConstraints) -> pki::NameConstraintsSpec {
        pki::NameConstraintsSpec {
            permitted: subtrees(nc.permitted.as_ref()),
            excluded: subtrees(nc.excluded.as_ref()),
        }
    }

    /// API usage → PKI usage.
    pub fn usage(u: api::Usage) -> pki::Usage {
        match u {
            api::Usage::ServerAuth => pki::Usage::ServerAuth,
            api::Usage::ClientAuth => pki::Usage::ClientAuth,
            api::Usage::CodeSigning => pki::Usage::CodeSigning,
            api::Usage::EmailProtection => pki::Usage::EmailProtection,
            api::Usage::OcspSigning => pki::Usage::OcspSigning,
        }
    }

    /// API private key spec → PKI private key spec.
    pub fn private_key(p: Option<&api::PrivateKeySpec>) -> pki::PrivateKeySpec {
        let p = p.cloned().unwrap_or_default();
        pki::PrivateKeySpec {
            algorithm: match p.algorithm {
                None | Some(api::KeyAlgorithm::ECDSA) => pki::KeyAlgorithm::Ecdsa,
                Some(api::KeyAlgorithm::RSA) => pki::KeyAlgorithm::Rsa,
                Some(api::KeyAlgorithm::Ed25519) => pki::KeyAlgorithm::Ed25519,
            },
            size: p.size,
            encoding: match p.encoding {
                None | Some(api::KeyEncoding::PKCS8) => pki::KeyEncoding::Pkcs8,
                Some(api::KeyEncoding::PKCS1) => pki::KeyEncoding::Pkcs1,
            },
        }
    }

    /// API revocation reason → PKI reason.
    pub fn reason(r: api::RevocationReason) -> pki::RevocationReason {
        use api::RevocationReason as A;
        use pki::RevocationReason as P;
        match r {
            A::Unspecified => P::Unspecified,
            A::KeyCompromise => P::KeyCompromise,
            A::CaCompromise => P::CaCompromise,
            A::AffiliationChanged => P::AffiliationChanged,
            A::Superseded => P::Superseded,
            A::CessationOfOperation => P::CessationOfOperation,
            A::CertificateHold => P::CertificateHold,
            A::PrivilegeWithdrawn => P::PrivilegeWithdrawn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CertificateAuthoritySpec;

    fn ca(duration: Option<&str>, renew: Option<&str>) -> CertificateAuthority {
        let spec: CertificateAuthoritySpec = serde_json::from_value(json!({
            "commonName": "Test Root", "duration": duration, "renewBefore": renew
        }))
        .unwrap();
        CertificateAuthority::new("root", spec)
    }

    #[test]
    fn renew_before_longer_than_duration_is_invalid_spec() {
        let e = validate(&ca(Some("10h"), Some("20h"))).err().unwrap();
        assert_eq!(e.reason(), "InvalidSpec");
        assert!(e.to_string().contains("spec.renewBefore"), "{e}");
    }

    #[test]
    fn defaults_apply_for_a_root() {
        let p = validate(&ca(None, None)).ok().unwrap();
        assert_eq!(p.renew_before, ROOT_DURATION / 3);
        assert_eq!(p.request.subject.common_name.as_deref(), Some("Test Root"));
    }

    #[test]
    fn spec_hash_changes_with_shaping_fields_only() {
        let a = ca(Some("10h"), None);
        let mut b = a.clone();
        b.spec.renew_before = Some("1h".into());
        assert_eq!(spec_hash(&a), spec_hash(&b));
        b.spec.common_name = "Other".into();
        assert_ne!(spec_hash(&a), spec_hash(&b));
    }
}
