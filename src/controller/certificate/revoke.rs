//! Revocation, decided first: it needs only Signet's own records of what it
//! issued for the object (its status), never the CA's readiness, the
//! namespace or duration policy, or the Secret (which may be gone or
//! replaced). The revocation register is written before anything reports
//! the revocation.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::super::conditions::Cond;
use super::super::driver::{self};
use super::super::revocations::{self, Revoked};
use super::super::{Context, Error};
use super::{REVOKE_ANNOTATION, REVOKE_REQUEST_CONDITION, REVOKED_BY_ANNOTATION, audit};
use crate::api::{Certificate, CertificateStatus, RevocationReason, RevokedSerial};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::pki;
use crate::store::{AuditOperation, Outcome, RevocationRecord};

/// Request from `signet revoke --reissue` (annotation value, JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokeRequest {
    /// Why.
    pub reason: RevocationReason,
    /// Issue a new key and certificate afterwards.
    #[serde(default)]
    pub reissue: bool,
    /// Ignored (older CLIs wrote who asked here; it was user-typed text).
    /// Who asked is `signet.dev/revoked-by`, which the admission policy
    /// vouches for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The serial to revoke (the current one when the CLI ran).
    #[serde(default)]
    pub serial: Option<String>,
    /// An id the CLI picks; a refusal quotes it, so the CLI knows the
    /// refusal is about its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A certificate to revoke: which, where, and until when it matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Serial, normal form.
    pub serial: String,
    /// The CA that issued it (whose register and CRL list it).
    pub issuer: String,
    /// Its notAfter.
    pub not_after: OffsetDateTime,
}

/// What the object asks for, in the order honoured.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Nothing.
    None,
    /// `spec.revocation`: revoke every unexpired certificate of the object,
    /// permanently.
    Declared(RevocationReason),
    /// `signet.dev/revoke`: revoke one serial, then maybe reissue.
    Annotated(RevokeRequest, Target),
    /// The annotation is unusable; the condition says how to fix it.
    Malformed(Cond),
}

/// Every unexpired certificate Signet issued for the object, from its
/// status (current first).
pub fn issued(cert: &Certificate, now: OffsetDateTime) -> Vec<Target> {
    let Some(st) = &cert.status else {
        return Vec::new();
    };
    let current_issuer = st
        .issuer
        .clone()
        .unwrap_or_else(|| cert.spec.issuer_ref.name.clone());
    let current = st
        .serial_number
        .as_ref()
        .zip(st.not_after.as_ref())
        .map(|(s, na)| (s, na, current_issuer));
    let previous = st
        .previous_certificates
        .iter()
        .map(|p| (&p.serial_number, &p.not_after, p.issuer.clone()));
    current
        .into_iter()
        .chain(previous)
        .filter_map(|(serial, na, issuer)| {
            let not_after = parse_rfc3339(na).filter(|t| *t > now)?;
            let issuer = if issuer.is_empty() {
                cert.spec.issuer_ref.name.clone()
            } else {
                issuer
            };
            Some(Target {
                serial: pki::normalize_serial(serial)?,
                issuer,
                not_after,
            })
        })
        .collect()
}

fn malformed(message: String) -> Request {
    Request::Malformed(Cond::no(
        REVOKE_REQUEST_CONDITION,
        "InvalidRevokeRequest",
        message,
    ))
}

/// Reads what the object asks for. Pure.
pub fn request(cert: &Certificate, now: OffsetDateTime) -> Request {
    if let Some(r) = &cert.spec.revocation {
        return Request::Declared(r.reason);
    }
    let Some(raw) = cert.annotations().get(REVOKE_ANNOTATION) else {
        return Request::None;
    };
    let fix = format!(
        "remove the annotation {REVOKE_ANNOTATION} or use `signet revoke {}/{} --reason <reason> --reissue`",
        cert.namespace().unwrap_or_default(),
        cert.name_any()
    );
    let req: RevokeRequest = match serde_json::from_str(raw) {
        Ok(r) => r,
        Err(e) => {
            return malformed(format!(
                "annotation {REVOKE_ANNOTATION} is not a valid request ({e}); {fix}"
            ));
        }
    };
    let fix = match &req.id {
        Some(id) => format!("{fix} (request {id})"),
        None => fix,
    };
    let records = issued(cert, now);
    let wanted = match &req.serial {
        Some(s) => match pki::normalize_serial(s) {
            Some(n) => Some(n),
            None => {
                return malformed(format!(
                    "serial {s:?} in {REVOKE_ANNOTATION} is not a hexadecimal serial number; {fix}"
                ));
            }
        },
        None => None,
    };
    let target = match &wanted {
        Some(w) => records.into_iter().find(|t| &t.serial == w),
        None => records.into_iter().next(),
    };
    match (target, wanted) {
        (Some(t), _) => Request::Annotated(req, t),
        (None, Some(w)) => malformed(format!(
            "serial {w} was not issued for this Certificate (or has expired), so it cannot be revoked here; {fix}"
        )),
        (None, None) => malformed(format!(
            "no unexpired certificate was issued for this Certificate yet; {fix}"
        )),
    }
}

/// Revokes `targets` durably — each CA's register first — then mirrors and
/// audits what status does not confirm yet. Returns the confirmed list.
pub async fn revoke(
    ctx: &Context,
    cert: &Certificate,
    prev: &CertificateStatus,
    targets: &[Target],
    reason: RevocationReason,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<RevokedSerial>, Error> {
    let mut confirmed = prev.revocations.clone();
    let fresh: Vec<&Target> = targets
        .iter()
        .filter(|t| !confirmed.iter().any(|r| r.serial_number == t.serial))
        .collect();
    let object = format!(
        "{}/{}",
        cert.namespace().unwrap_or_default(),
        cert.name_any()
    );
    for t in &fresh {
        let entry = Revoked {
            serial: t.serial.clone(),
            revoked_at: now.unix_timestamp(),
            reason,
            not_after: t.not_after.unix_timestamp(),
            certificate: Some(object.clone()),
            actor: Some(actor.to_string()),
        };
        revocations::add(&ctx.client, &ctx.namespace, &t.issuer, &[entry]).await?;
        record(ctx, cert, t, reason, actor, now);
        confirmed.push(RevokedSerial {
            serial_number: t.serial.clone(),
            reason,
            revocation_time: rfc3339(now),
            not_after: rfc3339(t.not_after),
        });
    }
    if !fresh.is_empty() {
        let serials: Vec<&str> = fresh.iter().map(|t| t.serial.as_str()).collect();
        driver::event(
            ctx,
            cert,
            EventType::Warning,
            "Revoked",
            format!(
                "serial {} revoked ({reason}) by {actor}",
                serials.join(", ")
            ),
        )
        .await;
    }
    Ok(confirmed)
}

/// Mirror row, audit row and metric of one revocation.
fn record(
    ctx: &Context,
    cert: &Certificate,
    t: &Target,
    reason: RevocationReason,
    actor: &str,
    now: OffsetDateTime,
) {
    ctx.store.record_revocation(RevocationRecord {
        ca: t.issuer.clone(),
        serial: t.serial.clone(),
        revoked_at: now.unix_timestamp(),
        reason: Some(reason.as_str().to_string()),
    });
    ctx.store.audit(
        audit(
            cert,
            AuditOperation::CertificateRevoked,
            Outcome::Success,
            actor,
            now,
        )
        .with_ca(t.issuer.clone())
        .with_serial(&t.serial)
        .with_details(json!({"reason": reason.as_str()})),
    );
    ctx.metrics.certificate_revoked();
}

/// Who asked for a revocation of `cert`, as the audit trail records it:
/// `user:<name>` when the admission policy that vouches for
/// `signet.dev/revoked-by` is in place, `unverified:<name>` when it is not
/// (never user-typed text presented as an identity), `unattributed` when
/// nobody said (spec.revocation set without `signet revoke`: the API
/// server's own audit log knows who).
pub fn actor(cert: &Certificate, vouched: bool) -> String {
    actor_of(cert.annotations(), vouched)
}

/// [`actor`] from an object's annotations.
pub fn actor_of(annotations: &std::collections::BTreeMap<String, String>, vouched: bool) -> String {
    match annotations.get(REVOKED_BY_ANNOTATION) {
        Some(name) if vouched => format!("user:{name}"),
        Some(name) => format!("unverified:{name}"),
        None => "unattributed".into(),
    }
}

/// Removes the `signet.dev/revoke` annotation once it is carried out.
pub async fn clear_annotation(ctx: &Context, cert: &Certificate) -> Result<(), Error> {
    ctx.may_write()?;
    let api: Api<Certificate> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    api.patch(
        &cert.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {REVOKE_ANNOTATION: null}}})),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IssuedSerial;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn cert(
        annotation: Option<&str>,
        revocation: bool,
        status: Option<CertificateStatus>,
    ) -> Certificate {
        let mut c: Certificate = serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"issuerRef": {"name": "ca"}, "secretName": "s", "dnsNames": ["a.example"]}
        }))
        .unwrap();
        if let Some(a) = annotation {
            c.metadata.annotations = Some([(REVOKE_ANNOTATION.to_string(), a.to_string())].into());
        }
        if revocation {
            c.spec.revocation = Some(crate::api::RevocationSetting {
                reason: RevocationReason::KeyCompromise,
            });
        }
        c.status = status;
        c
    }

    fn issued_status() -> CertificateStatus {
        CertificateStatus {
            serial_number: Some("0abc".into()),
            not_after: Some(rfc3339(t(10_000))),
            previous_certificates: vec![
                IssuedSerial {
                    serial_number: "0123".into(),
                    not_after: rfc3339(t(5_000)),
                    issuer: "old-ca".into(),
                },
                IssuedSerial {
                    serial_number: "0999".into(),
                    not_after: rfc3339(t(50)),
                    issuer: "ca".into(),
                },
            ],
            ..Default::default()
        }
    }

    fn kind(r: &Request) -> String {
        match r {
            Request::None => "None".into(),
            Request::Declared(_) => "Declared".into(),
            Request::Annotated(_, t) => format!("Annotated {}@{}", t.serial, t.issuer),
            Request::Malformed(c) => format!("Malformed {}", c.reason),
        }
    }

    #[test]
    fn revocation_requests() {
        let cases: Vec<(&str, Certificate, &str)> = vec![
            (
                "nothing asked",
                cert(None, false, Some(issued_status())),
                "None",
            ),
            (
                "spec.revocation wins over everything",
                cert(Some("{"), true, None),
                "Declared",
            ),
            (
                "a request without a serial revokes the current one",
                cert(
                    Some(r#"{"reason":"keyCompromise"}"#),
                    false,
                    Some(issued_status()),
                ),
                "Annotated 0abc@ca",
            ),
            (
                "a request for an earlier serial goes to the CA that issued it",
                cert(
                    Some(r#"{"reason":"superseded","serial":"01:23"}"#),
                    false,
                    Some(issued_status()),
                ),
                "Annotated 0123@old-ca",
            ),
            (
                "a serial of someone else is refused",
                cert(
                    Some(r#"{"reason":"superseded","serial":"beef"}"#),
                    false,
                    Some(issued_status()),
                ),
                "Malformed InvalidRevokeRequest",
            ),
            (
                "an expired serial is refused",
                cert(
                    Some(r#"{"reason":"superseded","serial":"0999"}"#),
                    false,
                    Some(issued_status()),
                ),
                "Malformed InvalidRevokeRequest",
            ),
            (
                "a serial that is not hex is refused",
                cert(
                    Some(r#"{"reason":"superseded","serial":"xyz"}"#),
                    false,
                    Some(issued_status()),
                ),
                "Malformed InvalidRevokeRequest",
            ),
            (
                "broken JSON is refused",
                cert(Some("revoke please"), false, Some(issued_status())),
                "Malformed InvalidRevokeRequest",
            ),
            (
                "an unknown reason is refused",
                cert(Some(r#"{"reason":"stolen"}"#), false, Some(issued_status())),
                "Malformed InvalidRevokeRequest",
            ),
            (
                "nothing issued yet is refused",
                cert(Some(r#"{"reason":"keyCompromise"}"#), false, None),
                "Malformed InvalidRevokeRequest",
            ),
        ];
        for (name, c, want) in cases {
            assert_eq!(kind(&request(&c, t(100))), want, "{name}");
        }
    }

    #[test]
    fn a_malformed_request_names_the_fix() {
        let Request::Malformed(c) =
            request(&cert(Some("nope"), false, Some(issued_status())), t(100))
        else {
            panic!("malformed expected");
        };
        assert!(
            c.message.contains("signet revoke team-a/web"),
            "{}",
            c.message
        );
        assert!(c.message.contains(REVOKE_ANNOTATION), "{}", c.message);
    }

    #[test]
    fn a_declared_revocation_covers_every_unexpired_certificate_and_never_the_secret() {
        let c = cert(None, true, Some(issued_status()));
        let serials: Vec<String> = issued(&c, t(100)).into_iter().map(|t| t.serial).collect();
        assert_eq!(serials, ["0abc", "0123"]);
    }
}
