//! What to do with a CertificateRequest, and what it asks for. Pure.

use std::time::Duration;

use super::super::Error;
use super::types::CertificateRequest;
use crate::api::{self, duration};
use crate::pki::{CsrContents, LeafRequest};

/// cert-manager's `Ready` reasons (`CertificateRequestReason*`).
pub mod reason {
    /// Still in progress (waiting for approval, the CA, or a retry).
    pub const PENDING: &str = "Pending";
    /// Failed for good; `status.failureTime` is set.
    pub const FAILED: &str = "Failed";
    /// `status.certificate` is set.
    pub const ISSUED: &str = "Issued";
    /// An approver denied it; it will never be issued.
    pub const DENIED: &str = "Denied";
}

/// Default validity when `spec.duration` is unset (cert-manager's 90 days).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);

/// What the request's state calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Another issuer's request, or one that is finished (issued, failed,
    /// denied and marked): never touched again.
    Nothing,
    /// Denied by an approver and not marked yet: mark it failed.
    MarkDenied,
    /// Neither approved nor denied: leave it pending, sign nothing.
    AwaitApproval,
    /// Approved: check and sign.
    Sign,
}

/// The step for `cr`. A request is one-shot: once `Ready` is `True`, or
/// `False` with reason `Failed` or `Denied`, or `failureTime` is set,
/// nothing happens to it any more.
pub fn step(cr: &CertificateRequest) -> Step {
    if !cr.is_for_signet() {
        return Step::Nothing;
    }
    let finished = cr.status.as_ref().is_some_and(|s| s.failure_time.is_some())
        || cr.condition("Ready").is_some_and(|c| {
            c.status == "True"
                || matches!(c.reason.as_deref(), Some(reason::FAILED | reason::DENIED))
        });
    if finished {
        Step::Nothing
    } else if cr.is_true("Denied") {
        Step::MarkDenied
    } else if cr.is_true("Approved") {
        Step::Sign
    } else {
        Step::AwaitApproval
    }
}

/// What an approved request asks for, checked as far as the request alone
/// allows.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The leaf to build (names and key type from the CSR).
    pub request: LeafRequest,
    /// Extended key usages, Signet spelling (empty: server + client auth).
    pub usages: Vec<api::Usage>,
    /// Subject attributes besides the common name, for the CA's policy.
    pub subject: api::Subject,
    /// Requested validity.
    pub duration: Duration,
}

fn refuse(reason: &'static str, message: String) -> Error {
    Error::Policy { reason, message }
}

/// Builds the plan: no CA certificates, usages Signet can express, a
/// duration that parses (default: the shorter of 90 days and the CA's
/// maximum).
pub fn plan(
    cr: &CertificateRequest,
    csr: &CsrContents,
    ca_max: Option<Duration>,
) -> Result<Plan, Error> {
    let default = ca_max.map_or(DEFAULT_DURATION, |m| m.min(DEFAULT_DURATION));
    let duration = duration::optional("spec.duration", cr.spec.duration.as_deref())
        .map_err(Error::InvalidSpec)?
        .unwrap_or(default);
    plan_for(cr.spec.is_ca, &cr.spec.usages, duration, csr)
}

/// The plan of any CSR-based request (cert-manager's, Kubernetes'): no CA
/// certificates, usages Signet can express, `duration` as given.
pub fn plan_for(
    is_ca: bool,
    usage_list: &[String],
    duration: Duration,
    csr: &CsrContents,
) -> Result<Plan, Error> {
    if is_ca || csr.is_ca == Some(true) {
        return Err(refuse(
            "CANotAllowed",
            "spec.isCA (or the CSR's basicConstraints) asks for a CA certificate; Signet issues CA certificates only as CertificateAuthority objects (spec.issuerRef), so create an intermediate CertificateAuthority instead".into(),
        ));
    }
    let usages = usages(usage_list)?;
    let total = time::Duration::try_from(duration)
        .map_err(|_| Error::InvalidSpec("spec.duration is too large".into()))?;
    let s = &csr.subject;
    let subject = api::Subject {
        organizations: s.organizations.clone(),
        organizational_units: s.organizational_units.clone(),
        countries: s.countries.clone(),
        provinces: s.provinces.clone(),
        localities: s.localities.clone(),
        street_addresses: s.street_addresses.clone(),
        postal_codes: s.postal_codes.clone(),
        serial_number: s.serial_number.clone(),
    };
    let request = LeafRequest {
        subject: csr.subject.clone(),
        dns_names: csr.dns_names.clone(),
        ip_addresses: csr.ip_addresses.clone(),
        uris: csr.uris.clone(),
        email_addresses: csr.email_addresses.clone(),
        usages: usages.iter().copied().map(Into::into).collect(),
        duration: total,
        private_key: csr.key,
    };
    Ok(Plan {
        request,
        usages,
        subject,
        duration,
    })
}

/// cert-manager usages → Signet's extended key usages. The key usages
/// `signing`, `digital signature` and `key encipherment` are what Signet
/// sets anyway (digitalSignature; keyEncipherment for RSA TLS keys); CA
/// usages and usages Signet does not issue are refused by name.
pub fn usages(list: &[String]) -> Result<Vec<api::Usage>, Error> {
    let mut out = Vec::new();
    for (i, u) in list.iter().enumerate() {
        let eku = match u.as_str() {
            "signing" | "digital signature" | "key encipherment" => None,
            "server auth" => Some(api::Usage::ServerAuth),
            "client auth" => Some(api::Usage::ClientAuth),
            "code signing" => Some(api::Usage::CodeSigning),
            "email protection" | "s/mime" => Some(api::Usage::EmailProtection),
            "ocsp signing" => Some(api::Usage::OcspSigning),
            "cert sign" | "crl sign" => {
                return Err(refuse(
                    "CANotAllowed",
                    format!(
                        "spec.usages[{i}] {u:?} is a CA usage; Signet issues CA certificates only as CertificateAuthority objects"
                    ),
                ));
            }
            other => {
                return Err(refuse(
                    "UsageNotSupported",
                    format!(
                        "spec.usages[{i}] {other:?} is not supported by Signet; use server auth, client auth, code signing, email protection, ocsp signing, digital signature or key encipherment"
                    ),
                ));
            }
        };
        if let Some(e) = eku
            && !out.contains(&e)
        {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cr(issuer: serde_json::Value, conditions: serde_json::Value) -> CertificateRequest {
        serde_json::from_value(json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {"name": "r", "namespace": "n"},
            "spec": {"issuerRef": issuer, "request": ""},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn ours() -> serde_json::Value {
        json!({"name": "ca", "group": "signet.dev", "kind": "CertificateAuthority"})
    }

    #[test]
    fn requests_move_only_when_approved_and_never_after_they_finish() {
        let cases = [
            (
                "another issuer's request is not ours",
                json!({"name": "x", "group": "cert-manager.io", "kind": "ClusterIssuer"}),
                json!([{"type": "Approved", "status": "True"}]),
                Step::Nothing,
            ),
            (
                "a Signet group with another kind is not ours",
                json!({"name": "x", "group": "signet.dev", "kind": "Issuer"}),
                json!([{"type": "Approved", "status": "True"}]),
                Step::Nothing,
            ),
            (
                "an unapproved request waits",
                ours(),
                json!([]),
                Step::AwaitApproval,
            ),
            (
                "an approved request is signed",
                ours(),
                json!([{"type": "Approved", "status": "True"}]),
                Step::Sign,
            ),
            (
                "a denied request is marked failed",
                ours(),
                json!([{"type": "Denied", "status": "True"}]),
                Step::MarkDenied,
            ),
            (
                "a denied request already marked is left alone",
                ours(),
                json!([{"type": "Denied", "status": "True"},
                       {"type": "Ready", "status": "False", "reason": "Denied"}]),
                Step::Nothing,
            ),
            (
                "an issued request is never signed again",
                ours(),
                json!([{"type": "Approved", "status": "True"},
                       {"type": "Ready", "status": "True", "reason": "Issued"}]),
                Step::Nothing,
            ),
            (
                "a failed request is not retried",
                ours(),
                json!([{"type": "Approved", "status": "True"},
                       {"type": "Ready", "status": "False", "reason": "Failed"}]),
                Step::Nothing,
            ),
            (
                "a pending approved request is retried",
                ours(),
                json!([{"type": "Approved", "status": "True"},
                       {"type": "Ready", "status": "False", "reason": "Pending"}]),
                Step::Sign,
            ),
        ];
        for (what, issuer, conds, want) in cases {
            assert_eq!(step(&cr(issuer, conds)), want, "{what}");
        }
    }

    #[test]
    fn usages_map_to_extended_key_usages_and_ca_usages_are_refused() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            usages(&list(&["digital signature", "key encipherment"])).unwrap(),
            vec![]
        );
        assert_eq!(
            usages(&list(&["digital signature", "client auth", "s/mime"])).unwrap(),
            vec![api::Usage::ClientAuth, api::Usage::EmailProtection]
        );
        let e = usages(&list(&["cert sign"])).unwrap_err();
        assert_eq!(e.reason(), "CANotAllowed");
        assert!(e.to_string().contains("spec.usages[0]"), "{e}");
        let e = usages(&list(&["server auth", "ipsec tunnel"])).unwrap_err();
        assert_eq!(e.reason(), "UsageNotSupported");
        assert!(e.to_string().contains("ipsec tunnel"), "{e}");
    }
}
