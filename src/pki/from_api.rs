//! From Signet's API types (`crate::api`) to PKI requests: the one place a
//! spec becomes a [`LeafRequest`], [`CaRequest`] or [`IssuerProfile`].

use time::Duration;

use super::issuer::IssuerProfile;
use super::keys::{KeyAlgorithm, KeyEncoding, PrivateKeySpec};
use super::request::{CaRequest, LeafRequest, NameConstraintsSpec, NameSubtrees, Subject, Usage};
use crate::api;

impl Subject {
    /// The subject of `s` with common name `cn`.
    pub fn from_api(s: Option<&api::Subject>, cn: Option<String>) -> Self {
        let s = s.cloned().unwrap_or_default();
        Subject {
            common_name: cn,
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
}

impl From<api::Usage> for Usage {
    fn from(u: api::Usage) -> Self {
        match u {
            api::Usage::ServerAuth => Usage::ServerAuth,
            api::Usage::ClientAuth => Usage::ClientAuth,
            api::Usage::CodeSigning => Usage::CodeSigning,
            api::Usage::EmailProtection => Usage::EmailProtection,
            api::Usage::OcspSigning => Usage::OcspSigning,
        }
    }
}

impl PrivateKeySpec {
    /// `spec.privateKey` with defaults (ECDSA P-256, PKCS#8).
    pub fn from_api(p: Option<&api::PrivateKeySpec>) -> Self {
        let p = p.cloned().unwrap_or_default();
        PrivateKeySpec {
            algorithm: match p.algorithm {
                None | Some(api::KeyAlgorithm::ECDSA) => KeyAlgorithm::Ecdsa,
                Some(api::KeyAlgorithm::RSA) => KeyAlgorithm::Rsa,
                Some(api::KeyAlgorithm::Ed25519) => KeyAlgorithm::Ed25519,
            },
            size: p.size,
            encoding: match p.encoding {
                None | Some(api::KeyEncoding::PKCS8) => KeyEncoding::Pkcs8,
                Some(api::KeyEncoding::PKCS1) => KeyEncoding::Pkcs1,
            },
        }
    }
}

fn subtrees(l: Option<&api::NameList>) -> NameSubtrees {
    let l = l.cloned().unwrap_or_default();
    NameSubtrees {
        dns_domains: l.dns_domains,
        ip_ranges: l.ip_ranges,
        email_addresses: l.email_addresses,
    }
}

impl NameConstraintsSpec {
    /// `spec.nameConstraints`.
    pub fn from_api(nc: &api::NameConstraints) -> Self {
        NameConstraintsSpec {
            permitted: subtrees(nc.permitted.as_ref()),
            excluded: subtrees(nc.excluded.as_ref()),
        }
    }
}

impl LeafRequest {
    /// The request a Certificate spec makes, for `duration`.
    pub fn from_api(s: &api::CertificateSpec, duration: Duration) -> Self {
        LeafRequest {
            subject: Subject::from_api(s.subject.as_ref(), s.common_name.clone()),
            dns_names: s.dns_names.clone(),
            ip_addresses: s.ip_addresses.clone(),
            uris: s.uris.clone(),
            email_addresses: s.email_addresses.clone(),
            usages: s.usages.iter().copied().map(Usage::from).collect(),
            duration,
            private_key: PrivateKeySpec::from_api(s.private_key.as_ref()),
        }
    }
}

impl CaRequest {
    /// The request a CertificateAuthority spec makes, for `duration`.
    pub fn from_api(s: &api::CertificateAuthoritySpec, duration: Duration) -> Self {
        CaRequest {
            subject: Subject::from_api(s.subject.as_ref(), Some(s.common_name.clone())),
            duration,
            path_len: s.max_path_length,
            name_constraints: s
                .name_constraints
                .as_ref()
                .map(NameConstraintsSpec::from_api),
        }
    }
}

impl IssuerProfile {
    /// What a CA spec stamps into what it issues.
    pub fn from_api(s: &api::CertificateAuthoritySpec, max_duration: Option<Duration>) -> Self {
        IssuerProfile {
            crl_distribution_points: s.crl_distribution_points.clone(),
            ocsp_servers: s.ocsp_servers.clone(),
            issuing_certificate_urls: s.issuing_certificate_urls.clone(),
            policy_oids: s.certificate_policies.clone(),
            max_duration,
        }
    }
}
