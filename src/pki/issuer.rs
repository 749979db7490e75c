//! The issuing CA as seen by the builders: parsed from its certificate.

use rcgen::{DistinguishedName, DnType, DnValue};
use time::{Duration, OffsetDateTime};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::PkiError;
use super::validate::{self, FieldErrors};

/// URLs and limits a CA stamps into what it issues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerProfile {
    /// `crlDistributionPoints`: http(s) URLs of this CA's CRL, written into
    /// every certificate it issues.
    pub crl_distribution_points: Vec<String>,
    /// `ocspServers`: OCSP responder URLs (AIA id-ad-ocsp).
    pub ocsp_servers: Vec<String>,
    /// `issuingCertificateURLs`: where this CA's certificate can be
    /// downloaded (AIA id-ad-caIssuers).
    pub issuing_certificate_urls: Vec<String>,
    /// `certificatePolicies`: policy OIDs (dotted, e.g. `2.23.140.1.2.1`)
    /// written into every certificate this CA issues. Empty = no extension.
    pub policy_oids: Vec<String>,
    /// `maxDuration`: longest lifetime a request may ask for; longer
    /// requests are rejected (not clamped). `None` = only the CA's own
    /// notAfter limits.
    pub max_duration: Option<Duration>,
}

impl IssuerProfile {
    fn validate(&self) -> Result<(), PkiError> {
        let mut errs = FieldErrors::default();
        for (field, urls) in [
            ("crlDistributionPoints", &self.crl_distribution_points),
            ("ocspServers", &self.ocsp_servers),
            ("issuingCertificateURLs", &self.issuing_certificate_urls),
        ] {
            for (i, u) in urls.iter().enumerate() {
                if let Some(p) = validate::http_url_problem(u) {
                    errs.push(format!("{field}[{i}]"), u.clone(), p);
                }
            }
        }
        for (i, oid) in self.policy_oids.iter().enumerate() {
            if super::der::parse_oid(oid).is_none() {
                errs.push(
                    format!("certificatePolicies[{i}]"),
                    oid.clone(),
                    "not a dotted object identifier like 2.23.140.1.2.1",
                );
            }
        }
        if let Some(d) = self.max_duration
            && d <= Duration::ZERO
        {
            errs.push("maxDuration", d.to_string(), "must be positive");
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(PkiError::Invalid(errs))
        }
    }
}

/// An issuing CA: its certificate plus the profile it issues with.
///
/// Build it from the CA certificate Signet issued (or adopted) with
/// [`IssuerInfo::from_der`] / [`IssuerInfo::from_pem`].
#[derive(Debug, Clone)]
pub struct IssuerInfo {
    cert_der: Vec<u8>,
    pub(crate) subject: DistinguishedName,
    subject_string: String,
    /// The subject Name exactly as encoded in the certificate (DER).
    subject_der: Vec<u8>,
    pub(crate) ski: Vec<u8>,
    spki: Vec<u8>,
    /// The contents of the subjectPublicKey BIT STRING (without the
    /// unused-bits octet).
    public_key_bits: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    /// `Some(n)` when the CA has basicConstraints pathLenConstraint n.
    pub(crate) path_len: Option<u32>,
    pub(crate) can_sign_certs: bool,
    pub(crate) can_sign_crls: bool,
    /// URLs and limits.
    pub profile: IssuerProfile,
}

impl IssuerInfo {
    /// Parses a CA certificate (DER). It must be a CA (basicConstraints
    /// cA=TRUE), carry a subjectKeyIdentifier, and use single-valued RDNs.
    pub fn from_der(cert_der: &[u8], profile: IssuerProfile) -> Result<Self, PkiError> {
        profile.validate()?;
        let bad = |m: &str| PkiError::InvalidIssuer(m.to_string());
        let (rest, cert) = X509Certificate::from_der(cert_der)
            .map_err(|e| PkiError::InvalidIssuer(format!("not a DER certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the certificate"));
        }
        let bc = cert
            .basic_constraints()
            .map_err(|e| PkiError::InvalidIssuer(format!("basicConstraints: {e}")))?;
        let Some(bc) = bc.filter(|bc| bc.value.ca) else {
            return Err(PkiError::IssuerNotAllowed(
                "the issuer certificate is not a CA (basicConstraints cA is not TRUE)".into(),
            ));
        };
        let path_len = bc.value.path_len_constraint;
        let (can_sign_certs, can_sign_crls) = match cert.key_usage() {
            Ok(Some(ku)) => (ku.value.key_cert_sign(), ku.value.crl_sign()),
            Ok(None) => (true, true),
            Err(e) => return Err(PkiError::InvalidIssuer(format!("keyUsage: {e}"))),
        };
        let ski = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
            .ok_or_else(|| bad("no subjectKeyIdentifier extension"))?;
        let subject = dn_from_x509(cert.subject())?;
        Ok(IssuerInfo {
            cert_der: cert_der.to_vec(),
            subject,
            subject_string: cert.subject().to_string(),
            subject_der: cert.subject().as_raw().to_vec(),
            ski,
            spki: cert.public_key().raw.to_vec(),
            public_key_bits: cert.public_key().subject_public_key.data.to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            path_len,
            can_sign_certs,
            can_sign_crls,
            profile,
        })
    }

    /// Parses a CA certificate (PEM, the first `CERTIFICATE` block).
    pub fn from_pem(cert_pem: &str, profile: IssuerProfile) -> Result<Self, PkiError> {
        let block = pem::parse_many(cert_pem)
            .map_err(|e| PkiError::InvalidIssuer(format!("PEM: {e}")))?
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .ok_or_else(|| PkiError::InvalidIssuer("no CERTIFICATE PEM block".into()))?;
        Self::from_der(block.contents(), profile)
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        crate::pki::to_pem("CERTIFICATE", self.cert_der.clone())
    }

    /// Subject as an RFC 4514-style string (for logs and status).
    pub fn subject(&self) -> &str {
        &self.subject_string
    }

    /// DER SubjectPublicKeyInfo of the CA key.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The subject Name as encoded in the certificate (DER): what OCSP's
    /// issuerNameHash is computed over.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    /// The subjectPublicKey BIT STRING contents: what OCSP's issuerKeyHash
    /// (and a byKey ResponderID) is computed over.
    pub fn public_key_bits(&self) -> &[u8] {
        &self.public_key_bits
    }

    /// subjectKeyIdentifier (becomes the authorityKeyIdentifier of what
    /// this CA issues).
    pub fn ski(&self) -> &[u8] {
        &self.ski
    }

    /// notBefore of the CA certificate.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// notAfter of the CA certificate.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// pathLenConstraint, if any.
    pub fn path_len(&self) -> Option<u32> {
        self.path_len
    }

    /// Checks that the CA is valid at `now`.
    pub(crate) fn check_valid_at(&self, now: OffsetDateTime) -> Result<(), PkiError> {
        if now >= self.not_after {
            return Err(PkiError::IssuerExpired {
                not_after: self.not_after,
            });
        }
        if now < self.not_before {
            return Err(PkiError::IssuerNotYetValid {
                not_before: self.not_before,
            });
        }
        Ok(())
    }
}

/// Converts an x509-parser name into an rcgen name, keeping order and
/// string types so the issuer field of children matches byte for byte.
fn dn_from_x509(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName, PkiError> {
    let bad = |m: String| PkiError::InvalidIssuer(format!("subject: {m}"));
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(bad("multi-valued or empty RDNs are not supported".into()));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| bad("attribute OID too large".into()))?
            .collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(bad(format!(
                "attribute {} appears twice; not supported",
                attr.attr_type()
            )));
        }
        let any = attr.attr_value();
        let text = || {
            std::str::from_utf8(any.data)
                .map(str::to_string)
                .map_err(|_| bad("attribute value is not UTF-8".into()))
        };
        let value = match any.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?),
            Tag::PrintableString => DnValue::PrintableString(
                text()?
                    .as_str()
                    .try_into()
                    .map_err(|_| bad("invalid PrintableString".into()))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                text()?
                    .as_str()
                    .try_into()
                    .map_err(|_| bad("invalid IA5String".into()))?,
            ),
            other => return Err(bad(format!("unsupported string type {other}"))),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}
