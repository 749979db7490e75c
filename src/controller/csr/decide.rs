//! What to do with a Kubernetes CertificateSigningRequest, and what it asks
//! for. Pure.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use time::OffsetDateTime;

/// How long an approval stays good: an approved request nobody collected
/// within this long (kube-controller-manager's CSR cleaner deletes approved
/// requests after the same hour) is refused rather than signed late.
pub const APPROVAL_MAX_AGE: Duration = Duration::from_secs(3600);

/// Validity when `spec.expirationSeconds` is unset: the shorter of this
/// and the CA's maximum.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(90 * 86_400);

/// What the request's state calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Another signer's request, or a finished one (issued, denied,
    /// failed): never touched.
    Nothing,
    /// Ours, not approved (yet): sign nothing.
    AwaitApproval,
    /// Ours and approved, but the approval is older than
    /// [`APPROVAL_MAX_AGE`]: refuse.
    ApprovalExpired,
    /// Ours and approved: check and sign for this CA.
    Sign {
        /// The CA the signer name names.
        ca: String,
    },
}

/// The CA of `signer` when it is `<domain>/<ca>` with a CA name that can
/// exist (an object name), else `None`.
pub fn ca_of<'a>(signer: &'a str, domain: &str) -> Option<&'a str> {
    let ca = signer.strip_prefix(domain)?.strip_prefix('/')?;
    is_object_name(ca).then_some(ca)
}

/// Whether `d` can be the domain part of a signer name (`example.com`).
pub fn is_signer_domain(d: &str) -> bool {
    is_object_name(d) && d.contains('.')
}

/// A DNS-1123 subdomain: what a cluster-scoped object's name can be.
fn is_object_name(s: &str) -> bool {
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && edge(b[0])
        && edge(b[b.len() - 1])
        && b.iter().all(|&c| edge(c) || c == b'-' || c == b'.')
}

fn condition<'a>(
    csr: &'a CertificateSigningRequest,
    type_: &str,
) -> Option<&'a k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition> {
    csr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The step for `csr` under signer domain `domain` at `now`.
pub fn step(csr: &CertificateSigningRequest, domain: &str, now: OffsetDateTime) -> Step {
    let Some(ca) = ca_of(&csr.spec.signer_name, domain) else {
        return Step::Nothing;
    };
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if issued || condition(csr, "Denied").is_some() || condition(csr, "Failed").is_some() {
        return Step::Nothing;
    }
    let Some(approved) = condition(csr, "Approved") else {
        return Step::AwaitApproval;
    };
    let at = approved
        .last_update_time
        .as_ref()
        .or(approved.last_transition_time.as_ref())
        .map(|t| t.0.as_second());
    if let Some(at) = at
        && now.unix_timestamp() - at > APPROVAL_MAX_AGE.as_secs() as i64
    {
        return Step::ApprovalExpired;
    }
    Step::Sign { ca: ca.to_string() }
}

/// The validity to sign: `spec.expirationSeconds` (the API server
/// requires at least 600) capped by the CA's maximum; unset, the shorter of
/// [`DEFAULT_DURATION`] and that maximum. Signers may issue shorter than
/// asked (the CSR API says so); never longer.
pub fn duration(expiration_seconds: Option<i32>, ca_max: Option<Duration>) -> Duration {
    let asked = expiration_seconds
        .map(|s| Duration::from_secs(s.max(600) as u64))
        .unwrap_or(DEFAULT_DURATION);
    ca_max.map_or(asked, |m| asked.min(m))
}

/// The namespace a requester acts in for the CA's `allowedNamespaces`: a
/// ServiceAccount's (`system:serviceaccount:<ns>:<name>`). Any other
/// requester (a user, a node) has none, and a CA that restricts namespaces
/// refuses it.
pub fn requester_namespace(username: Option<&str>) -> Option<&str> {
    let rest = username?.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then_some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csr(signer: &str, status: serde_json::Value) -> CertificateSigningRequest {
        serde_json::from_value(json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "r"},
            "spec": {"request": "", "signerName": signer, "usages": ["server auth"]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn csr_signer_acts_only_on_its_own_approved_unfinished_requests() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let fresh = "2027-01-15T07:59:00Z"; // 1 min before now
        let stale = "2027-01-15T06:00:00Z"; // 2 h before now
        let approved = |at: &str| json!({"conditions": [{"type": "Approved", "status": "True", "lastUpdateTime": at}]});
        let cases = [
            (
                "another signer",
                "kubernetes.io/kube-apiserver-client",
                approved(fresh),
                Step::Nothing,
            ),
            (
                "another install's prefix",
                "pki.example.com/root",
                approved(fresh),
                Step::Nothing,
            ),
            (
                "a prefix that only starts like ours",
                "signet.devx/root",
                approved(fresh),
                Step::Nothing,
            ),
            ("no CA name", "signet.dev/", approved(fresh), Step::Nothing),
            (
                "not a CA name",
                "signet.dev/Root_CA",
                approved(fresh),
                Step::Nothing,
            ),
            ("pending", "signet.dev/root", json!({}), Step::AwaitApproval),
            (
                "approved",
                "signet.dev/root",
                approved(fresh),
                Step::Sign { ca: "root".into() },
            ),
            (
                "approved long ago",
                "signet.dev/root",
                approved(stale),
                Step::ApprovalExpired,
            ),
            (
                "denied",
                "signet.dev/root",
                json!({"conditions": [{"type": "Denied", "status": "True"}]}),
                Step::Nothing,
            ),
            (
                "failed",
                "signet.dev/root",
                json!({"conditions": [{"type": "Approved", "status": "True", "lastUpdateTime": fresh}, {"type": "Failed", "status": "True"}]}),
                Step::Nothing,
            ),
            (
                "issued",
                "signet.dev/root",
                json!({"conditions": [{"type": "Approved", "status": "True", "lastUpdateTime": fresh}], "certificate": "eA=="}),
                Step::Nothing,
            ),
        ];
        for (what, signer, status, want) in cases {
            assert_eq!(
                step(&csr(signer, status), "signet.dev", now),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn csr_duration_is_what_was_asked_but_never_beyond_the_ca_maximum() {
        let day = Duration::from_secs(86_400);
        assert_eq!(duration(Some(3600), None), Duration::from_secs(3600));
        assert_eq!(duration(Some(30 * 86_400), Some(7 * day)), 7 * day);
        assert_eq!(duration(None, None), DEFAULT_DURATION);
        assert_eq!(duration(None, Some(day)), day);
        assert_eq!(duration(Some(10), None), Duration::from_secs(600));
    }

    #[test]
    fn only_service_accounts_have_a_namespace_for_the_ca_policy() {
        assert_eq!(
            requester_namespace(Some("system:serviceaccount:team-a:builder")),
            Some("team-a")
        );
        assert_eq!(requester_namespace(Some("alice@example.com")), None);
        assert_eq!(requester_namespace(Some("system:node:worker-1")), None);
        assert_eq!(requester_namespace(Some("system:serviceaccount::x")), None);
        assert_eq!(requester_namespace(None), None);
    }
}
