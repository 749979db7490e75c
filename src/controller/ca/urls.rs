//! The URLs a CA stamps into what it issues when its spec leaves them out:
//! under its public base URL (`spec.publicBaseURL`, else the operator's
//! `--public-base-url`), pointing at Signet's own PKI listener —
//!
//! * CRL distribution point `<base>/crl/<crl>.crl`, for the CRL object
//!   that publishes the CA (the oldest live one whose `caRef` names it, so
//!   adding another does not move it; none while no CRL object names the
//!   CA, since a CDP that answers 404 makes strict clients fail);
//! * AIA caIssuers `<base>/ca/<ca>.crt`;
//! * AIA OCSP `<base>/ocsp/<ca>`.
//!
//! Each only where the matching spec field (`crlDistributionPoints`,
//! `issuingCertificateURLs`, `ocspServers`) is empty: explicit settings win.

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::super::{Context, Error};
use crate::api::{CRL, CertificateAuthority};
use crate::pki::{IssuerProfile, base_url_problem};

/// Where a CA's public PKI endpoints are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    /// The base URL, without a trailing `/`.
    pub base: String,
    /// The CRL object that publishes the CA's revocations, if one does.
    pub crl: Option<String>,
}

/// Reads what the URLs of `ca` depend on: its base URL and (when its spec
/// names no CRL distribution point) the CRL objects. `None` when neither
/// the CA nor the operator sets a base URL.
pub async fn observe(
    ctx: &Context,
    ca: &CertificateAuthority,
) -> Result<Option<PublicUrls>, Error> {
    let Some(base) = base_url(ca, ctx.public_base_url.as_deref())? else {
        return Ok(None);
    };
    let crl = if ca.spec.crl_distribution_points.is_empty() {
        let all = match ctx.caches.crls() {
            Some(cached) => cached,
            None => {
                Api::<CRL>::all(ctx.client.clone())
                    .list(&ListParams::default())
                    .await?
                    .items
            }
        };
        publishing_crl(&ca.name_any(), &all)
    } else {
        None
    };
    Ok(Some(PublicUrls { base, crl }))
}

/// The base URL that applies to `ca`: its own, else `default`; checked.
pub fn base_url(ca: &CertificateAuthority, default: Option<&str>) -> Result<Option<String>, Error> {
    let Some(url) = ca.spec.public_base_url.as_deref().or(default) else {
        return Ok(None);
    };
    match base_url_problem(url) {
        Some(problem) => Err(Error::InvalidSpec(format!(
            "CertificateAuthority {} spec.publicBaseURL {url:?}: {problem}",
            ca.name_any()
        ))),
        None => Ok(Some(url.trim_end_matches('/').to_string())),
    }
}

/// The CRL object that publishes `ca`: the oldest live one naming it (ties
/// broken by name).
pub fn publishing_crl(ca: &str, crls: &[CRL]) -> Option<String> {
    crls.iter()
        .filter(|c| c.spec.ca_ref.name == ca && c.metadata.deletion_timestamp.is_none())
        .min_by_key(|c| {
            (
                c.metadata.creation_timestamp.as_ref().map(|t| t.0),
                c.name_any(),
            )
        })
        .map(|c| c.name_any())
}

/// Fills the URL fields of `profile` (the profile of CA `ca`) that its
/// spec left empty.
pub fn stamp(profile: &mut IssuerProfile, ca: &str, urls: &PublicUrls) {
    let base = &urls.base;
    if profile.crl_distribution_points.is_empty()
        && let Some(crl) = &urls.crl
    {
        profile
            .crl_distribution_points
            .push(format!("{base}/crl/{crl}.crl"));
    }
    if profile.issuing_certificate_urls.is_empty() {
        profile
            .issuing_certificate_urls
            .push(format!("{base}/ca/{ca}.crt"));
    }
    if profile.ocsp_servers.is_empty() {
        profile.ocsp_servers.push(format!("{base}/ocsp/{ca}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ca(base: Option<&str>) -> CertificateAuthority {
        let mut spec: crate::api::CertificateAuthoritySpec =
            serde_json::from_value(serde_json::json!({"commonName": "Root"})).unwrap();
        spec.public_base_url = base.map(str::to_string);
        CertificateAuthority::new("root", spec)
    }

    fn crl(name: &str, ca: &str, created_s: i64, deleting: bool) -> CRL {
        let spec = serde_json::from_value(serde_json::json!({"caRef": {"name": ca}})).unwrap();
        let mut c = CRL::new(name, spec);
        let t = |s: i64| Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap());
        c.metadata.creation_timestamp = Some(t(created_s));
        if deleting {
            c.metadata.deletion_timestamp = Some(t(created_s + 1));
        }
        c
    }

    #[test]
    fn the_ca_base_url_wins_over_the_operator_default_and_loses_its_trailing_slash() {
        let d = Some("http://default.example");
        assert_eq!(
            base_url(&ca(Some("https://pki.example/x/")), d).unwrap(),
            Some("https://pki.example/x".into())
        );
        assert_eq!(
            base_url(&ca(None), d).unwrap(),
            Some("http://default.example".into())
        );
        assert_eq!(base_url(&ca(None), None).unwrap(), None);
        let err = base_url(&ca(Some("ftp://pki.example")), d).unwrap_err();
        assert!(err.to_string().contains("spec.publicBaseURL"), "{err}");
        assert!(base_url(&ca(Some("http://pki.example/?a=b")), d).is_err());
    }

    #[test]
    fn the_oldest_live_crl_naming_the_ca_publishes_it() {
        let crls = [
            crl("newer", "root", 200, false),
            crl("other-ca", "other", 50, false),
            crl("oldest-but-deleting", "root", 10, true),
            crl("older", "root", 100, false),
        ];
        assert_eq!(publishing_crl("root", &crls), Some("older".into()));
        assert_eq!(publishing_crl("nobody", &crls), None);
    }

    #[test]
    fn explicit_urls_win_and_missing_ones_point_at_signet() {
        let urls = PublicUrls {
            base: "http://pki.example".into(),
            crl: Some("root-crl".into()),
        };
        let mut p = IssuerProfile::default();
        stamp(&mut p, "root", &urls);
        assert_eq!(
            p.crl_distribution_points,
            ["http://pki.example/crl/root-crl.crl"]
        );
        assert_eq!(
            p.issuing_certificate_urls,
            ["http://pki.example/ca/root.crt"]
        );
        assert_eq!(p.ocsp_servers, ["http://pki.example/ocsp/root"]);

        let mut p = IssuerProfile {
            crl_distribution_points: vec!["http://mine.example/a.crl".into()],
            ocsp_servers: vec!["http://ocsp.mine.example".into()],
            ..IssuerProfile::default()
        };
        stamp(&mut p, "root", &PublicUrls { crl: None, ..urls });
        assert_eq!(p.crl_distribution_points, ["http://mine.example/a.crl"]);
        assert_eq!(p.ocsp_servers, ["http://ocsp.mine.example"]);
        assert_eq!(
            p.issuing_certificate_urls,
            ["http://pki.example/ca/root.crt"]
        );

        let mut p = IssuerProfile::default();
        stamp(
            &mut p,
            "root",
            &PublicUrls {
                base: "http://pki.example".into(),
                crl: None,
            },
        );
        assert!(
            p.crl_distribution_points.is_empty(),
            "no CRL object, no CDP"
        );
    }
}
