//! Certificate reconciler: validate → issuer → policy → revoke? → plan →
//! sign → apply Secret → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, instrument, warn};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ca::{self, ReadyCa, convert, unix_ms};
use super::conditions::{self, Cond, rfc3339};
use super::revocations::{self, Revoked};
use super::{Context, Error, policy};
use crate::api::{
    CONDITION_ISSUING, CONDITION_READY, Certificate, CertificateAuthority, CertificateStatus,
    FIELD_MANAGER, RevocationReason, RotationPolicy, Usage, duration,
};
use crate::pki::{self, LeafRequest};
use crate::store::{AuditEvent, AuditOperation, CertRecord, CertStatus, ObjectRef, Outcome};

/// Default certificate validity (90 days).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);
/// Annotation set by `signet revoke --reissue`.
pub const REVOKE_ANNOTATION: &str = "signet.dev/revoke";
/// Annotation `signet revoke` sets next to `spec.revocation`: the actor.
pub const REVOKED_BY_ANNOTATION: &str = "signet.dev/revoked-by";
/// Secret annotations Signet writes.
pub const ANN_ISSUER: &str = "signet.dev/issuer";
/// Serial of the certificate in the Secret.
pub const ANN_SERIAL: &str = "signet.dev/serial";
/// notAfter of the certificate in the Secret.
pub const ANN_NOT_AFTER: &str = "signet.dev/not-after";
/// Hash of the spec the certificate was issued for.
pub const ANN_SPEC_HASH: &str = "signet.dev/spec-hash";
/// Label naming the owning Certificate.
pub const LABEL_CERTIFICATE: &str = "signet.dev/certificate";

/// Runs the Certificate controller.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let client = ctx.client.clone();
    let certs: Api<Certificate> = Api::all(client.clone());
    let ctl = Controller::new(certs, watcher::Config::default());
    let store = ctl.store();
    let store2 = store.clone();
    let secrets: Api<Secret> = Api::all(client.clone());
    let cas: Api<CertificateAuthority> = Api::all(client.clone());
    let stream = ctl
        // A CA appearing, becoming Ready or renewing wakes its Certificates.
        .watches(cas, watcher::Config::default(), move |ca| {
            let name = ca.name_any();
            super::refs_where(&store, |c| c.spec.issuer_ref.name == name)
        })
        // A Secret deleted or edited wakes the Certificate that owns it.
        .watches(
            secrets,
            watcher::Config::default().labels(LABEL_CERTIFICATE),
            move |secret: Secret| {
                let ns = secret.namespace().unwrap_or_default();
                let sname = secret.name_any();
                super::refs_where(&store2, |c| {
                    c.namespace().as_deref() == Some(&ns) && c.spec.secret_name == sname
                })
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drain("certificate", stream).await;
}

fn error_policy(_c: Arc<Certificate>, _e: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(15))
}

/// Request from `signet revoke --reissue` (annotation value, JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokeRequest {
    /// Reason name.
    pub reason: RevocationReason,
    /// Issue a new key and certificate afterwards.
    #[serde(default)]
    pub reissue: bool,
    /// Who asked (`cli:<user>`).
    #[serde(default)]
    pub actor: Option<String>,
    /// The serial to revoke (the current one when the CLI ran).
    #[serde(default)]
    pub serial: Option<String>,
}

/// The inputs that shape the certificate; a change triggers reissuance.
pub fn spec_hash(c: &Certificate) -> String {
    let s = &c.spec;
    let v = json!({
        "issuer": s.issuer_ref.name, "cn": s.common_name, "dns": s.dns_names,
        "ip": s.ip_addresses, "uri": s.uris, "email": s.email_addresses,
        "subject": s.subject, "usages": s.usages, "duration": s.duration,
        "key": s.private_key.as_ref().map(|p| (p.algorithm, p.size, p.encoding)),
    });
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.to_string().as_bytes());
    hex::encode(&d.as_ref()[..12])
}

/// Parsed, validated spec.
pub struct Plan {
    /// The PKI request.
    pub request: LeafRequest,
    /// Requested duration.
    pub duration: Duration,
    /// Renew this long before expiry.
    pub renew_before: Duration,
}

/// Validates what the schema cannot.
pub fn validate(c: &Certificate) -> Result<Plan, Error> {
    let s = &c.spec;
    let dur = match &s.duration {
        Some(d) => duration::parse("spec.duration", d).map_err(Error::InvalidSpec)?,
        None => DEFAULT_DURATION,
    };
    let renew_before = match &s.renew_before {
        Some(d) => duration::parse("spec.renewBefore", d).map_err(Error::InvalidSpec)?,
        None => dur / 3,
    };
    if renew_before >= dur {
        return Err(Error::InvalidSpec(format!(
            "spec.renewBefore ({}) must be shorter than spec.duration ({}); the default is a third of the duration",
            duration::format(renew_before),
            duration::format(dur)
        )));
    }
    let mut subject = s.subject.clone().map(convert::subject).unwrap_or_default();
    subject.common_name = s.common_name.clone();
    let request = LeafRequest {
        subject,
        dns_names: s.dns_names.clone(),
        ip_addresses: s.ip_addresses.clone(),
        uris: s.uris.clone(),
        email_addresses: s.email_addresses.clone(),
        usages: s.usages.iter().copied().map(convert::usage).collect(),
        duration: time::Duration::try_from(dur)
            .map_err(|_| Error::InvalidSpec("spec.duration is too large".into()))?,
        private_key: convert::private_key(s.private_key.as_ref()),
    };
    Ok(Plan {
        request,
        duration: dur,
        renew_before,
    })
}

/// What the Secret currently holds.
#[derive(Debug, Default)]
pub struct Current {
    /// Leaf certificate DER.
    pub cert_der: Option<Vec<u8>>,
    /// Serial (hex) of the leaf.
    pub serial: Option<String>,
    /// Validity of the leaf.
    pub not_before: Option<time::OffsetDateTime>,
    /// notAfter of the leaf.
    pub not_after: Option<time::OffsetDateTime>,
    /// Whether `tls.key` matches the leaf's public key.
    pub key_matches: bool,
    /// Spec hash annotation.
    pub spec_hash: Option<String>,
    /// Serial annotation (what Signet wrote next to the certificate).
    pub annotated_serial: Option<String>,
    /// The private key PEM (kept only for rotationPolicy Never).
    pub key_pem: Option<pki::PrivateKeyPem>,
}

fn first_pem_der(text: &[u8], tag: &str) -> Option<Vec<u8>> {
    pem::parse_many(text)
        .ok()?
        .into_iter()
        .find(|p| p.tag() == tag)
        .map(|p| p.contents().to_vec())
}

/// Whether the private key `key_pem` belongs to the certificate `cert_der`.
pub fn key_matches(key_pem: &str, cert_der: &[u8]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(cert_der) else {
        return false;
    };
    let cert_pub = cert.public_key().subject_public_key.data.to_vec();
    let Ok(p) = pem::parse(key_pem) else {
        return false;
    };
    let key_pub: Option<Vec<u8>> = match p.tag() {
        "PRIVATE KEY" => rcgen::KeyPair::try_from(p.contents())
            .ok()
            .map(|k| rcgen::PublicKeyData::der_bytes(&k).to_vec()),
        "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(p.contents())
            .ok()
            .map(|k| {
                aws_lc_rs::signature::KeyPair::public_key(&k)
                    .as_ref()
                    .to_vec()
            }),
        _ => None,
    };
    key_pub.is_some_and(|k| k == cert_pub)
}

/// Reads what the Secret holds (never logs the key).
pub fn inspect_secret(secret: Option<&Secret>) -> Current {
    let Some(secret) = secret else {
        return Current::default();
    };
    let data = secret.data.clone().unwrap_or_default();
    let cert_der = data
        .get("tls.crt")
        .and_then(|b| first_pem_der(&b.0, "CERTIFICATE"));
    let key = data
        .get("tls.key")
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    let mut cur = Current {
        spec_hash: secret.annotations().get(ANN_SPEC_HASH).cloned(),
        annotated_serial: secret.annotations().get(ANN_SERIAL).cloned(),
        ..Default::default()
    };
    if let Some(der) = &cert_der
        && let Ok((_, cert)) = X509Certificate::from_der(der)
    {
        cur.serial = Some(crate::store::normalize_serial(&hex::encode(
            cert.raw_serial(),
        )));
        cur.not_before =
            time::OffsetDateTime::from_unix_timestamp(cert.validity().not_before.timestamp()).ok();
        cur.not_after =
            time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok();
        cur.key_matches = key.as_deref().is_some_and(|k| key_matches(k, der));
    }
    cur.cert_der = cert_der;
    if cur.key_matches {
        cur.key_pem = key.map(pki::PrivateKeyPem::new);
    }
    cur
}

fn strip_zeros(s: &str) -> String {
    s.trim_start_matches('0').to_ascii_lowercase()
}

/// When to renew a certificate valid `[nb, na)`.
pub fn renewal_time(
    nb: time::OffsetDateTime,
    na: time::OffsetDateTime,
    renew_before: Duration,
) -> time::OffsetDateTime {
    let lifetime = na - nb;
    let rb = time::Duration::try_from(renew_before).unwrap_or(lifetime / 3);
    let rb = if rb >= lifetime { lifetime / 3 } else { rb };
    na - rb
}

/// Why a new certificate is needed — the renewal policy chain, in order.
pub fn needs_issuance(
    cur: &Current,
    hash: &str,
    renew_before: Duration,
    now: time::OffsetDateTime,
) -> Option<(&'static str, &'static str)> {
    if cur.cert_der.is_none() {
        return Some((
            "SecretMissing",
            "the Secret does not exist or holds no certificate",
        ));
    }
    if !cur.key_matches {
        return Some((
            "SecretInvalid",
            "the Secret's key does not match its certificate",
        ));
    }
    if cur.spec_hash.as_deref() != Some(hash) {
        return Some((
            "SpecChanged",
            "the spec changed since the certificate was issued",
        ));
    }
    // Someone replaced the certificate (and key) with another pair.
    if cur.annotated_serial.as_deref().map(strip_zeros) != cur.serial.as_deref().map(strip_zeros) {
        return Some((
            "SecretInvalid",
            "the Secret holds a certificate Signet did not issue for it",
        ));
    }
    match (cur.not_before, cur.not_after) {
        (Some(nb), Some(na)) if now >= renewal_time(nb, na, renew_before) => {
            Some(("Renewing", "the certificate is due for renewal"))
        }
        (Some(_), Some(_)) => None,
        _ => Some(("SecretInvalid", "the certificate cannot be parsed")),
    }
}

#[instrument(skip(ctx, cert), fields(ns = %cert.namespace().unwrap_or_default(), name = %cert.name_any()))]
async fn reconcile(cert: Arc<Certificate>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = std::time::Instant::now();
    let res = reconcile_inner(&cert, &ctx).await;
    ctx.metrics
        .observe_reconcile("certificate", start.elapsed(), res.as_ref().err());
    match res {
        Ok(a) => Ok(a),
        Err(e) => fail(&cert, &ctx, e).await,
    }
}

async fn reconcile_inner(cert: &Certificate, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let ns = cert.namespace().unwrap_or_default();
    let name = cert.name_any();
    if let Some(st) = &cert.status
        && let Some(wait) = super::backoff_gate(
            st.failed_issuance_attempts,
            st.last_failure_time.as_deref(),
            st.observed_generation,
            cert.meta().generation,
            now,
        )
        && cert.annotations().get(REVOKE_ANNOTATION).is_none()
    {
        return Ok(Action::requeue(wait));
    }
    let plan = validate(cert)?;
    let (ca_obj, ca) = ca::ready_ca(ctx, &cert.spec.issuer_ref.name).await?;
    check_policy(ctx, cert, &ca_obj, &plan).await?;

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets.get_opt(&cert.spec.secret_name).await?;
    let cur = inspect_secret(secret.as_ref());
    let status = cert.status.clone().unwrap_or_default();

    // Declarative revocation: permanent, no reissue.
    if let Some(rev) = &cert.spec.revocation {
        return revoke_declared(ctx, cert, &ca_obj, &cur, rev.reason, now).await;
    }
    // `signet revoke --reissue`: revoke the named serial, then reissue.
    let request: Option<RevokeRequest> = cert
        .annotations()
        .get(REVOKE_ANNOTATION)
        .and_then(|v| serde_json::from_str(v).ok());
    let mut forced = None;
    if let Some(req) = &request {
        let serial = req.serial.clone().or(cur.serial.clone());
        if let (Some(serial), Some(na)) = (serial, cur.not_after) {
            revoke(
                ctx,
                cert,
                &ca_obj,
                &serial,
                na,
                req.reason,
                req.actor.as_deref(),
                now,
            )
            .await?;
        }
        if req.reissue {
            forced = Some(("Reissue", "revoked and reissued on request"));
        }
    }

    let hash = spec_hash(cert);
    let why = forced.or_else(|| needs_issuance(&cur, &hash, plan.renew_before, now));
    let Some((reason, why_text)) = why else {
        // Up to date: make sure status says so (no write when unchanged).
        let (nb, na) = (cur.not_before.unwrap_or(now), cur.not_after.unwrap_or(now));
        let renewal = renewal_time(nb, na, plan.renew_before);
        let new_status = CertificateStatus {
            conditions: conditions::merge(
                &status.conditions,
                &[
                    Cond::yes(
                        CONDITION_READY,
                        "Issued",
                        format!("certificate is up to date; renews at {}", rfc3339(renewal)),
                    ),
                    Cond::no(CONDITION_ISSUING, "UpToDate", "no issuance in progress"),
                ],
                cert.meta().generation,
                now,
            ),
            observed_generation: cert.meta().generation,
            serial_number: cur.serial.clone(),
            not_before: Some(rfc3339(nb)),
            not_after: Some(rfc3339(na)),
            renewal_time: Some(rfc3339(renewal)),
            revision: status.revision.or(Some(1)),
            failed_issuance_attempts: None,
            last_failure_time: None,
            revocation_time: None,
            spec_hash: Some(hash),
        };
        if cert.status.as_ref() != Some(&new_status) {
            patch_status(ctx, &ns, &name, cleared(json!({ "status": new_status }))).await?;
        }
        if request.is_some() {
            clear_revoke_annotation(ctx, &ns, &name).await?;
        }
        return Ok(ca::requeue_at(now, renewal));
    };

    // Sign: one KMS call. rotationPolicy Never reuses a matching key.
    let reuse = matches!(
        cert.spec
            .private_key
            .as_ref()
            .and_then(|p| p.rotation_policy),
        Some(RotationPolicy::Never)
    ) && forced.is_none();
    let issued = match (reuse, &cur.key_pem) {
        (true, Some(key)) => {
            match pki::issue_leaf_with_key(&ca.info, ca.signer.as_ref(), &plan.request, key, now)
                .await
            {
                Ok(l) => l,
                // The existing key no longer fits the spec (algorithm/size):
                // a new one is the only way forward.
                Err(pki::PkiError::Invalid(_)) => {
                    pki::issue_leaf(&ca.info, ca.signer.as_ref(), &plan.request, now).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => pki::issue_leaf(&ca.info, ca.signer.as_ref(), &plan.request, now).await?,
    };
    apply_secret(ctx, cert, &ca, &issued, &hash).await?;

    let renewal = renewal_time(issued.not_before, issued.not_after, plan.renew_before);
    let revision = status.revision.unwrap_or(0) + 1;
    let mut message = format!(
        "certificate issued by {}, serial {}",
        ca_obj.name_any(),
        issued.serial_hex
    );
    if issued.clamped {
        message.push_str(&format!(
            "; validity clamped to the issuer's notAfter {}",
            rfc3339(issued.not_after)
        ));
    }
    let new_status = CertificateStatus {
        conditions: conditions::merge(
            &status.conditions,
            &[
                Cond::yes(CONDITION_READY, "Issued", message.clone()),
                Cond::no(CONDITION_ISSUING, "Issued", why_text),
            ],
            cert.meta().generation,
            now,
        ),
        observed_generation: cert.meta().generation,
        serial_number: Some(issued.serial_hex.clone()),
        not_before: Some(rfc3339(issued.not_before)),
        not_after: Some(rfc3339(issued.not_after)),
        renewal_time: Some(rfc3339(renewal)),
        revision: Some(revision),
        failed_issuance_attempts: None,
        last_failure_time: None,
        revocation_time: None,
        spec_hash: Some(hash),
    };
    patch_status(ctx, &ns, &name, cleared(json!({ "status": new_status }))).await?;
    if request.is_some() {
        clear_revoke_annotation(ctx, &ns, &name).await?;
    }

    let renewed = cur.serial.is_some();
    let op = if renewed {
        AuditOperation::CertificateRenewed
    } else {
        AuditOperation::CertificateIssued
    };
    if let Some(old) = &cur.serial
        && let (Some(nb), Some(na)) = (cur.not_before, cur.not_after)
    {
        ctx.store.upsert_certificate(record(
            cert,
            &ca_obj,
            old,
            nb,
            na,
            revision - 1,
            CertStatus::Superseded,
            None,
            now,
        ));
    }
    let mut rec = record(
        cert,
        &ca_obj,
        &issued.serial_hex,
        issued.not_before,
        issued.not_after,
        revision,
        CertStatus::Active,
        None,
        now,
    );
    rec.certificate_pem = Some(issued.cert_pem.clone());
    ctx.store.upsert_certificate(rec);
    ctx.store.audit(
        audit(cert, op, Outcome::Success, "controller", now)
            .with_ca(ca_obj.name_any())
            .with_serial(&issued.serial_hex)
            .with_details(json!({
                "reason": reason, "notAfter": rfc3339(issued.not_after),
                "clamped": issued.clamped, "secret": cert.spec.secret_name,
                "previousSerial": cur.serial,
            })),
    );
    ctx.metrics.certificate_issued(renewed);
    info!(reason, serial = %issued.serial_hex, "certificate issued");
    let ev_reason = if renewed { "Renewed" } else { "Issued" };
    publish_event(
        ctx,
        cert,
        EventType::Normal,
        ev_reason,
        format!("{message} ({why_text})"),
    )
    .await;
    Ok(ca::requeue_at(now, renewal))
}

async fn check_policy(
    ctx: &Context,
    cert: &Certificate,
    ca_obj: &CertificateAuthority,
    plan: &Plan,
) -> Result<(), Error> {
    let ns = cert.namespace().unwrap_or_default();
    let ca_name = ca_obj.name_any();
    if ca_obj
        .spec
        .allowed_namespaces
        .as_ref()
        .is_some_and(|a| a.selector.is_some())
    {
        let nss: Api<Namespace> = Api::all(ctx.client.clone());
        let labels = nss
            .get_opt(&ns)
            .await?
            .map(|n| n.labels().clone())
            .unwrap_or_default();
        policy::namespace_allowed(&ca_name, &ca_obj.spec, &ns, &labels)?;
    } else {
        policy::namespace_allowed(&ca_name, &ca_obj.spec, &ns, &BTreeMap::new())?;
    }
    policy::duration_allowed(&ca_name, &ca_obj.spec, plan.duration)?;
    policy::names_allowed(
        &ca_name,
        &ca_obj.spec,
        &policy::Names {
            dns: &cert.spec.dns_names,
            ips: &cert.spec.ip_addresses,
            emails: &cert.spec.email_addresses,
        },
    )
}

/// The root (last certificate) of a chain and the rest.
fn split_chain(chain_pem: &str) -> (String, String) {
    let certs = pem::parse_many(chain_pem.as_bytes()).unwrap_or_default();
    if certs.is_empty() {
        return (String::new(), String::new());
    }
    let enc = |p: &pem::Pem| {
        pem::encode_config(
            p,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    };
    let root = certs.last().map(enc).unwrap_or_default();
    let intermediates: String = certs[..certs.len() - 1].iter().map(enc).collect();
    (intermediates, root)
}

async fn apply_secret(
    ctx: &Context,
    cert: &Certificate,
    ca: &ReadyCa,
    issued: &pki::IssuedLeaf,
    hash: &str,
) -> Result<(), Error> {
    let ns = cert.namespace().unwrap_or_default();
    let (intermediates, root) = split_chain(&ca.chain_pem);
    let tpl = cert.spec.secret_template.clone().unwrap_or_default();
    let mut labels = tpl.labels.clone();
    labels.insert(LABEL_CERTIFICATE.into(), cert.name_any());
    let mut annotations = tpl.annotations.clone();
    annotations.insert(ANN_ISSUER.into(), cert.spec.issuer_ref.name.clone());
    annotations.insert(ANN_SERIAL.into(), issued.serial_hex.clone());
    annotations.insert(ANN_NOT_AFTER.into(), rfc3339(issued.not_after));
    annotations.insert(ANN_SPEC_HASH.into(), hash.to_string());
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(format!("{}{}", issued.cert_pem, intermediates).into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(issued.key.expose_secret().as_bytes().to_vec()),
        ),
        ("ca.crt".to_string(), ByteString(root.into_bytes())),
    ]);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(cert.spec.secret_name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut value = serde_json::to_value(&secret).map_err(|e| Error::Other(e.to_string()))?;
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    api.patch(
        &cert.spec.secret_name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn record(
    cert: &Certificate,
    ca: &CertificateAuthority,
    serial: &str,
    nb: time::OffsetDateTime,
    na: time::OffsetDateTime,
    revision: i64,
    status: CertStatus,
    revoked: Option<(i64, String)>,
    now: time::OffsetDateTime,
) -> CertRecord {
    let s = &cert.spec;
    let mut sans: Vec<String> = s.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
    sans.extend(s.ip_addresses.iter().map(|d| format!("IP:{d}")));
    sans.extend(s.uris.iter().map(|d| format!("URI:{d}")));
    sans.extend(s.email_addresses.iter().map(|d| format!("email:{d}")));
    let usages = if s.usages.is_empty() {
        vec![Usage::ServerAuth, Usage::ClientAuth]
    } else {
        s.usages.clone()
    };
    CertRecord {
        ca: ca.name_any(),
        namespace: cert.namespace().unwrap_or_default(),
        name: cert.name_any(),
        uid: cert.uid().unwrap_or_default(),
        serial: serial.to_string(),
        subject: s.common_name.clone().unwrap_or_default(),
        sans,
        usages: usages
            .iter()
            .map(|u| {
                serde_json::to_value(u)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect(),
        status,
        not_before: nb.unix_timestamp(),
        not_after: na.unix_timestamp(),
        revision,
        revoked_at: revoked.as_ref().map(|r| r.0),
        revocation_reason: revoked.map(|r| r.1),
        certificate_pem: None,
        secret_name: Some(s.secret_name.clone()),
        issued_at: now.unix_timestamp(),
    }
}

fn audit(
    cert: &Certificate,
    op: AuditOperation,
    outcome: Outcome,
    actor: &str,
    now: time::OffsetDateTime,
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

/// Revokes `serial` durably (register first), then mirrors and audits it.
#[allow(clippy::too_many_arguments)]
async fn revoke(
    ctx: &Context,
    cert: &Certificate,
    ca_obj: &CertificateAuthority,
    serial: &str,
    not_after: time::OffsetDateTime,
    reason: RevocationReason,
    actor: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<bool, Error> {
    let actor = actor.unwrap_or("controller").to_string();
    let entry = Revoked {
        serial: serial.to_string(),
        revoked_at: now.unix_timestamp(),
        reason: reason.as_str().to_string(),
        not_after: not_after.unix_timestamp(),
        certificate: Some(format!(
            "{}/{}",
            cert.namespace().unwrap_or_default(),
            cert.name_any()
        )),
        actor: Some(actor.clone()),
    };
    let added = revocations::add(&ctx.client, &ctx.namespace, &ca_obj.name_any(), &[entry]).await?;
    if added == 0 {
        return Ok(false);
    }
    ctx.store.record_revocation(crate::store::RevocationRecord {
        ca: ca_obj.name_any(),
        serial: serial.to_string(),
        revoked_at: now.unix_timestamp(),
        reason: Some(reason.as_str().to_string()),
    });
    ctx.store.audit(
        audit(
            cert,
            AuditOperation::CertificateRevoked,
            Outcome::Success,
            &actor,
            now,
        )
        .with_ca(ca_obj.name_any())
        .with_serial(serial)
        .with_details(json!({"reason": reason.as_str()})),
    );
    ctx.metrics.certificate_revoked();
    publish_event(
        ctx,
        cert,
        EventType::Warning,
        "Revoked",
        format!(
            "certificate serial {serial} revoked ({}) by {actor}",
            reason.as_str()
        ),
    )
    .await;
    Ok(true)
}

async fn revoke_declared(
    ctx: &Context,
    cert: &Certificate,
    ca_obj: &CertificateAuthority,
    cur: &Current,
    reason: RevocationReason,
    now: time::OffsetDateTime,
) -> Result<Action, Error> {
    let status = cert.status.clone().unwrap_or_default();
    // The serial to revoke: the one in the Secret, else the last issued.
    let serial = cur.serial.clone().or(status.serial_number.clone());
    let na = cur.not_after.or(status
        .not_after
        .as_deref()
        .and_then(conditions::parse_rfc3339));
    let (Some(serial), Some(na)) = (serial, na) else {
        return Err(Error::InvalidSpec(
            "spec.revocation is set but no certificate was ever issued; nothing to revoke".into(),
        ));
    };
    // `signet revoke` records who asked; kubectl edits are the controller's.
    let actor = cert.annotations().get(REVOKED_BY_ANNOTATION).cloned();
    revoke(
        ctx,
        cert,
        ca_obj,
        &serial,
        na,
        reason,
        actor.as_deref(),
        now,
    )
    .await?;
    let revoked_at = status
        .revocation_time
        .clone()
        .unwrap_or_else(|| rfc3339(now));
    let new_status = CertificateStatus {
        conditions: conditions::merge(
            &status.conditions,
            &[
                Cond::no(
                    CONDITION_READY,
                    "Revoked",
                    format!(
                        "certificate serial {serial} is revoked ({}); it is listed in the CA's CRL and will not be renewed",
                        reason.as_str()
                    ),
                ),
                Cond::no(
                    CONDITION_ISSUING,
                    "Revoked",
                    "revoked certificates are not reissued",
                ),
            ],
            cert.meta().generation,
            now,
        ),
        observed_generation: cert.meta().generation,
        serial_number: Some(serial),
        revocation_time: Some(revoked_at),
        ..status.clone()
    };
    if cert.status.as_ref() != Some(&new_status) {
        let ns = cert.namespace().unwrap_or_default();
        patch_status(ctx, &ns, &cert.name_any(), json!({ "status": new_status })).await?;
    }
    Ok(Action::await_change())
}

/// A merge patch omits `None` fields; failure bookkeeping must be removed
/// explicitly once an issuance succeeds.
fn cleared(mut body: serde_json::Value) -> serde_json::Value {
    body["status"]["failedIssuanceAttempts"] = serde_json::Value::Null;
    body["status"]["lastFailureTime"] = serde_json::Value::Null;
    body
}

async fn clear_revoke_annotation(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    let api: Api<Certificate> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {REVOKE_ANNOTATION: null}}})),
    )
    .await?;
    Ok(())
}

async fn patch_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    body: serde_json::Value,
) -> Result<(), Error> {
    super::patch_status(
        &Api::<Certificate>::namespaced(ctx.client.clone(), ns),
        name,
        body,
    )
    .await
}

async fn publish_event(
    ctx: &Context,
    cert: &Certificate,
    type_: EventType,
    reason: &str,
    note: String,
) {
    super::publish_event(ctx, cert, type_, "Issue", reason, note).await;
}

/// Records a failure: Ready=False with the reason; Event and audit only when
/// the reason/message changes (no storms); backoff grows with attempts.
async fn fail(cert: &Certificate, ctx: &Context, err: Error) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let ns = cert.namespace().unwrap_or_default();
    let status = cert.status.clone().unwrap_or_default();
    let reason = err.reason();
    let message = err.to_string();
    let prev = conditions::find(&status.conditions, CONDITION_READY);
    let changed = prev.is_none_or(|c| c.reason != reason || c.message != message);
    let retryable = err.is_retryable();
    let attempts = if retryable {
        status
            .failed_issuance_attempts
            .unwrap_or(0)
            .saturating_add(1)
    } else {
        0
    };
    warn!(reason, error = %message, "certificate not ready");
    if changed {
        publish_event(ctx, cert, EventType::Warning, reason, message.clone()).await;
        let op = match &err {
            Error::Policy { .. } => Some(AuditOperation::PolicyDenied),
            Error::Kms(_) | Error::Pki(_) => Some(AuditOperation::SigningFailed),
            _ => None,
        };
        if let Some(op) = op {
            let outcome = if op == AuditOperation::PolicyDenied {
                Outcome::Denied
            } else {
                Outcome::Failure
            };
            ctx.store.audit(
                audit(cert, op, outcome, "controller", now)
                    .with_ca(cert.spec.issuer_ref.name.clone())
                    .with_details(json!({"reason": reason, "message": message})),
            );
        }
    }
    let issuing = if retryable {
        Cond::yes(
            CONDITION_ISSUING,
            reason,
            format!("retrying after failure {attempts}: {message}"),
        )
    } else {
        Cond::no(CONDITION_ISSUING, reason, "waiting for a change")
    };
    let conds = conditions::merge(
        &status.conditions,
        &[Cond::no(CONDITION_READY, reason, message), issuing],
        cert.meta().generation,
        now,
    );
    let mut body = json!({"status": {
        "conditions": conds,
        "observedGeneration": cert.meta().generation,
    }});
    if attempts > 0 {
        body["status"]["failedIssuanceAttempts"] = json!(attempts);
        body["status"]["lastFailureTime"] = json!(rfc3339(now));
    }
    if changed || attempts > 0 {
        patch_status(ctx, &ns, &cert.name_any(), body).await?;
    }
    Ok(if retryable {
        Action::requeue(super::backoff(attempts))
    } else {
        Action::await_change()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn current(nb: i64, na: i64, hash: &str) -> Current {
        Current {
            cert_der: Some(vec![1]),
            serial: Some("1".into()),
            not_before: Some(t(nb)),
            not_after: Some(t(na)),
            key_matches: true,
            spec_hash: Some(hash.into()),
            annotated_serial: Some("1".into()),
            key_pem: None,
        }
    }

    #[test]
    fn renewal_policy_chain() {
        let rb = Duration::from_secs(100);
        let cases: Vec<(&str, Current, i64, Option<&str>)> = vec![
            (
                "a missing secret is issued",
                Current::default(),
                0,
                Some("SecretMissing"),
            ),
            (
                "a key that does not match is reissued",
                Current {
                    key_matches: false,
                    ..current(0, 1000, "h")
                },
                10,
                Some("SecretInvalid"),
            ),
            (
                "a changed spec is reissued",
                current(0, 1000, "old"),
                10,
                Some("SpecChanged"),
            ),
            (
                "a certificate swapped in by someone else is reissued",
                Current {
                    annotated_serial: Some("2".into()),
                    ..current(0, 1000, "h")
                },
                10,
                Some("SecretInvalid"),
            ),
            (
                "a fresh certificate is left alone",
                current(0, 1000, "h"),
                10,
                None,
            ),
            (
                "a certificate at its renewal time is renewed",
                current(0, 1000, "h"),
                900,
                Some("Renewing"),
            ),
            (
                "a certificate just before renewal is left alone",
                current(0, 1000, "h"),
                899,
                None,
            ),
        ];
        for (name, cur, now, want) in cases {
            let got = needs_issuance(&cur, "h", rb, t(now)).map(|(r, _)| r);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn renew_before_not_shorter_than_duration_is_invalid() {
        let c: Certificate = serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "x", "namespace": "y"},
            "spec": {"issuerRef": {"name": "ca"}, "secretName": "s", "dnsNames": ["a.example"],
                     "duration": "1h", "renewBefore": "2h"}
        }))
        .unwrap();
        let e = validate(&c).err().unwrap();
        assert_eq!(e.reason(), "InvalidSpec");
        assert!(e.to_string().contains("spec.renewBefore"));
    }

    #[test]
    fn chain_is_split_into_intermediates_and_root() {
        let a = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        let b = pem::encode(&pem::Pem::new("CERTIFICATE", vec![4, 5, 6]));
        let (inter, root) = split_chain(&format!("{a}{b}"));
        assert_eq!(pem::parse(&root).unwrap().contents(), &[4, 5, 6]);
        assert_eq!(pem::parse(&inter).unwrap().contents(), &[1, 2, 3]);
    }
}
