//! PKCS#10 certificate signing requests (cert-manager `spec.request`):
//! parsed, signature checked, and turned into the names and key a leaf
//! certificate is built from. Pure; nothing here signs.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

use super::keys::{KeyAlgorithm, KeyEncoding, PrivateKeySpec};
use super::request::Subject;

/// What a verified CSR asks for. The key is only its public half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrContents {
    /// Subject attributes (only the ones Signet can reproduce).
    pub subject: Subject,
    /// SAN DNS names.
    pub dns_names: Vec<String>,
    /// SAN IP addresses, as text.
    pub ip_addresses: Vec<String>,
    /// SAN URIs.
    pub uris: Vec<String>,
    /// SAN email addresses.
    pub email_addresses: Vec<String>,
    /// The subject public key (DER SubjectPublicKeyInfo).
    pub spki_der: Vec<u8>,
    /// The key's type, as a [`PrivateKeySpec`] the leaf builder resolves.
    pub key: PrivateKeySpec,
    /// The CSR's basicConstraints cA, when it has the extension.
    pub is_ca: Option<bool>,
}

/// Why a CSR cannot be signed: one sentence naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.request: {0}")]
pub struct CsrError(pub String);

fn bad(m: impl Into<String>) -> CsrError {
    CsrError(m.into())
}

/// Parses a PEM (`CERTIFICATE REQUEST`) CSR, verifies its self-signature
/// (proof that the requester holds the key) and reads its subject, SANs
/// and key. Anything Signet could not put into the certificate faithfully
/// (an unknown subject attribute, another SAN type) is refused rather than
/// dropped.
pub fn parse_csr(pem_bytes: &[u8]) -> Result<CsrContents, CsrError> {
    let block = pem::parse(pem_bytes).map_err(|e| {
        bad(format!(
            "not a PEM certificate request ({e}); it must hold one \"-----BEGIN CERTIFICATE REQUEST-----\" block"
        ))
    })?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(bad(format!(
            "the PEM block is {:?}, expected \"CERTIFICATE REQUEST\"",
            block.tag()
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(block.contents())
        .map_err(|e| bad(format!("not a DER PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the PKCS#10 request"));
    }
    csr.verify_signature().map_err(|e| {
        bad(format!(
            "the CSR's signature does not verify with its own public key ({e}); it was altered or signed with another key"
        ))
    })?;
    let info = &csr.certification_request_info;
    let mut out = CsrContents {
        subject: subject(&info.subject)?,
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        email_addresses: Vec::new(),
        spki_der: info.subject_pki.raw.to_vec(),
        key: key_spec(&info.subject_pki)?,
        is_ca: None,
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    add_san(&mut out, name)?;
                }
            }
            ParsedExtension::BasicConstraints(bc) => out.is_ca = Some(bc.ca),
            ParsedExtension::ParseError { .. } => {
                return Err(bad("an extension requested in the CSR does not parse"));
            }
            // Key usages come from spec.usages; other extensions are not
            // copied into the certificate.
            _ => {}
        }
    }
    Ok(out)
}

/// The contents of a bare public key (DER SubjectPublicKeyInfo) whose
/// possession someone else verified: no subject, no SANs.
pub fn contents_of_spki(der: &[u8]) -> Result<CsrContents, CsrError> {
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| bad(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the public key"));
    }
    Ok(CsrContents {
        subject: Subject::default(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        email_addresses: Vec::new(),
        spki_der: der.to_vec(),
        key: key_spec(&spki)?,
        is_ca: None,
    })
}

/// [`parse_csr`] of a DER PKCS#10 request.
pub fn parse_csr_der(der: &[u8]) -> Result<CsrContents, CsrError> {
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()));
    parse_csr(pem.as_bytes())
}

fn add_san(out: &mut CsrContents, name: &GeneralName<'_>) -> Result<(), CsrError> {
    match name {
        GeneralName::DNSName(d) => out.dns_names.push(d.to_string()),
        GeneralName::URI(u) => out.uris.push(u.to_string()),
        GeneralName::RFC822Name(e) => out.email_addresses.push(e.to_string()),
        GeneralName::IPAddress(raw) => {
            let ip = match raw.len() {
                4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*raw).unwrap_or_default()),
                16 => std::net::IpAddr::from(<[u8; 16]>::try_from(*raw).unwrap_or_default()),
                n => {
                    return Err(bad(format!(
                        "a SAN IP address has {n} bytes (4 or 16 expected)"
                    )));
                }
            };
            out.ip_addresses.push(ip.to_string());
        }
        other => {
            return Err(bad(format!(
                "SAN {other:?} is not supported; Signet signs DNS names, IP addresses, URIs and email addresses"
            )));
        }
    }
    Ok(())
}

/// The subject attributes Signet reproduces, by OID.
fn subject(name: &X509Name<'_>) -> Result<Subject, CsrError> {
    let mut s = Subject::default();
    for attr in name.iter_attributes() {
        let oid = attr.attr_type().to_id_string();
        let value = attr
            .as_str()
            .map_err(|_| bad(format!("subject attribute {oid} is not a text string")))?
            .to_string();
        match oid.as_str() {
            "2.5.4.3" if s.common_name.is_none() => s.common_name = Some(value),
            "2.5.4.3" => return Err(bad("the subject has more than one commonName")),
            "2.5.4.10" => s.organizations.push(value),
            "2.5.4.11" => s.organizational_units.push(value),
            "2.5.4.6" => s.countries.push(value),
            "2.5.4.8" => s.provinces.push(value),
            "2.5.4.7" => s.localities.push(value),
            "2.5.4.9" => s.street_addresses.push(value),
            "2.5.4.17" => s.postal_codes.push(value),
            "2.5.4.5" if s.serial_number.is_none() => s.serial_number = Some(value),
            _ => {
                return Err(bad(format!(
                    "subject attribute {oid} is not supported; use CN, O, OU, C, ST, L, street, postalCode or serialNumber"
                )));
            }
        }
    }
    Ok(s)
}

/// The key type of `spki`, as the leaf builder's key spec.
fn key_spec(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<PrivateKeySpec, CsrError> {
    let unsupported = |what: String| {
        bad(format!(
            "{what}; Signet signs ECDSA P-256/P-384, RSA 2048/3072/4096 and Ed25519 keys"
        ))
    };
    let spec = |algorithm, size| PrivateKeySpec {
        algorithm,
        size,
        encoding: KeyEncoding::Pkcs8,
    };
    if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" {
        return Ok(spec(KeyAlgorithm::Ed25519, None));
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => match rsa.key_size() {
            n @ (2048 | 3072 | 4096) => Ok(spec(KeyAlgorithm::Rsa, Some(n as u32))),
            n => Err(unsupported(format!("the CSR's RSA key has {n} bits"))),
        },
        Ok(PublicKey::EC(point)) => match point.key_size() {
            n @ (256 | 384) => Ok(spec(KeyAlgorithm::Ecdsa, Some(n as u32))),
            n => Err(unsupported(format!("the CSR's EC key has {n} bits"))),
        },
        Ok(_) => Err(unsupported(format!(
            "the CSR's key algorithm {} is not supported",
            spki.algorithm.algorithm.to_id_string()
        ))),
        Err(e) => Err(bad(format!("the CSR's public key does not parse: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_pem(sans: &[&str]) -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "web.example.com");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn a_verified_csr_yields_its_names_and_key_type() {
        let c = parse_csr(csr_pem(&["web.example.com", "10.0.0.1"]).as_bytes()).unwrap();
        assert_eq!(c.subject.common_name.as_deref(), Some("web.example.com"));
        assert_eq!(c.subject.organizations, vec!["Acme".to_string()]);
        assert_eq!(c.dns_names, vec!["web.example.com".to_string()]);
        assert_eq!(c.ip_addresses, vec!["10.0.0.1".to_string()]);
        assert_eq!(c.key.algorithm, KeyAlgorithm::Ecdsa);
        assert_eq!(c.key.size, Some(384));
        assert_eq!(c.is_ca, None);
    }

    #[test]
    fn a_csr_whose_signature_does_not_verify_is_refused() {
        let good = csr_pem(&["web.example.com"]);
        let block = pem::parse(good.as_bytes()).unwrap();
        let mut der = block.contents().to_vec();
        let last = der.len() - 1;
        der[last] ^= 1;
        let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        let e = parse_csr(forged.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("signature does not verify"), "{e}");
    }

    #[test]
    fn garbage_is_refused_naming_spec_request() {
        for bad in [
            "not pem at all",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let e = parse_csr(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with("spec.request: "), "{e}");
        }
    }
}
