//! What to do with a PodCertificateRequest, the identity it gets, and the
//! times its status carries. Pure.

use std::time::Duration;

use time::OffsetDateTime;

use super::types::PodCertificateRequest;

/// The shortest lifetime the API server accepts for a pod certificate.
pub const MIN_LIFETIME: Duration = Duration::from_secs(3600);
/// `maxExpirationSeconds` when the request has none (the API server's
/// default).
pub const DEFAULT_MAX_EXPIRATION: Duration = Duration::from_secs(86_400);
/// How far `beginRefreshAt` must stay from either end of the validity.
pub const REFRESH_MARGIN: time::Duration = time::Duration::minutes(10);
/// Trust domain of pod SPIFFE IDs when the CA's
/// `issuancePolicy.uris.spiffe.trustDomain` names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// What the request calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Another signer's, or already answered (Issued, Denied or Failed).
    Nothing,
    /// Ours: verify and sign with this CA.
    Sign {
        /// The CA the signer name names.
        ca: String,
    },
}

/// The step for `pcr` under signer domain `domain`.
pub fn step(pcr: &PodCertificateRequest, domain: &str) -> Step {
    let Some(ca) = super::super::csr::decide::ca_of(&pcr.spec.signer_name, domain) else {
        return Step::Nothing;
    };
    let answered = pcr.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            matches!(c.type_.as_str(), "Issued" | "Denied" | "Failed") && c.status == "True"
        })
    });
    if answered {
        Step::Nothing
    } else {
        Step::Sign { ca: ca.to_string() }
    }
}

/// The lifetime to sign: `maxExpirationSeconds` (default one day) capped
/// by the CA's maximum; `Err` when that cap is below the API server's one
/// hour minimum.
pub fn lifetime(
    max_expiration_seconds: Option<i32>,
    ca_max: Option<Duration>,
) -> Result<Duration, String> {
    let asked = max_expiration_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(DEFAULT_MAX_EXPIRATION);
    let lifetime = ca_max.map_or(asked, |m| asked.min(m));
    if lifetime < MIN_LIFETIME {
        return Err(format!(
            "the CA's maxCertificateDuration ({} s) is shorter than the one hour a pod certificate must last; raise it to at least 1h",
            lifetime.as_secs()
        ));
    }
    Ok(lifetime)
}

/// When the kubelet should start refreshing: two thirds into the
/// validity, and never within ten minutes of either end.
pub fn begin_refresh_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let at: OffsetDateTime = not_before + (not_after - not_before) * 2 / 3;
    at.clamp(not_before + REFRESH_MARGIN, not_after - REFRESH_MARGIN)
}

/// The pod's SPIFFE ID: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pcr(signer: &str, conditions: serde_json::Value) -> PodCertificateRequest {
        serde_json::from_value(json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"signerName": signer, "podName": "p", "podUID": "u", "serviceAccountName": "sa",
                     "serviceAccountUID": "su", "nodeName": "n1", "nodeUID": "nu"},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn pod_certificate_requests_are_answered_once_and_only_for_our_signers() {
        let issued = json!([{"type": "Issued", "status": "True", "reason": "x", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        assert_eq!(
            step(&pcr("signet.dev/root", json!([])), "signet.dev"),
            Step::Sign { ca: "root".into() }
        );
        assert_eq!(
            step(&pcr("signet.dev/root", issued), "signet.dev"),
            Step::Nothing
        );
        assert_eq!(
            step(&pcr("example.com/root", json!([])), "signet.dev"),
            Step::Nothing
        );
        assert_eq!(
            step(
                &pcr("kubernetes.io/kube-apiserver-client-pod", json!([])),
                "signet.dev"
            ),
            Step::Nothing
        );
    }

    #[test]
    fn pod_certificate_lifetime_respects_the_request_the_ca_and_the_one_hour_minimum() {
        let h = Duration::from_secs(3600);
        assert_eq!(lifetime(None, None), Ok(DEFAULT_MAX_EXPIRATION));
        assert_eq!(lifetime(Some(7200), None), Ok(2 * h));
        assert_eq!(lifetime(Some(86_400), Some(6 * h)), Ok(6 * h));
        let e = lifetime(None, Some(Duration::from_secs(1800))).unwrap_err();
        assert!(e.contains("maxCertificateDuration"), "{e}");
    }

    #[test]
    fn begin_refresh_at_stays_inside_the_validity_with_margins() {
        let nb = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let day = begin_refresh_at(nb, nb + time::Duration::days(1));
        assert_eq!(day, nb + time::Duration::hours(16));
        let hour = begin_refresh_at(nb, nb + time::Duration::hours(1));
        assert!(hour >= nb + REFRESH_MARGIN && hour <= nb + time::Duration::minutes(50));
    }

    #[test]
    fn spiffe_ids_name_namespace_and_service_account() {
        assert_eq!(
            spiffe_id("cluster.local", "team-a", "web"),
            "spiffe://cluster.local/ns/team-a/sa/web"
        );
    }
}
