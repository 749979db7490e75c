//! Reading back what Signet wrote: certificates in Secrets and status
//! fields, private keys, CRLs in ConfigMaps. The controllers call these and
//! import no X.509 parser themselves.
//!
//! Nothing read back is trusted blindly: [`verify_crl`] checks a CRL's
//! signature against its CA before its number, times or entries are used.

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::error::PkiError;
use super::issuer::IssuerInfo;
use super::keys::{self, PrivateKeyPem};
use crate::api::RevocationReason;

/// Lower-case hex of a serial's minimal big-endian magnitude (even length,
/// no leading `00` byte): the form used everywhere in Signet (status,
/// register, mirror, CRL entries) and, modulo case, by `openssl -serial`.
pub fn serial_hex(raw: &[u8]) -> String {
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    hex::encode(&raw[first..])
}

/// Normalises a user- or record-supplied hex serial (`0A:1B`, `0x0a1b`,
/// `a1b`) to [`serial_hex`] form. `None` when it is not a valid serial
/// (empty, not hex, zero, longer than 20 bytes).
pub fn normalize_serial(s: &str) -> Option<String> {
    super::request::parse_serial_hex(s).ok().map(hex::encode)
}

/// What Signet needs to know about a certificate it reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// DER.
    pub der: Vec<u8>,
    /// Serial, [`serial_hex`] form.
    pub serial_hex: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// Subject, RFC 4514 style.
    pub subject: String,
    /// Issuer, RFC 4514 style.
    pub issuer: String,
}

impl CertFacts {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        super::to_pem("CERTIFICATE", self.der.clone())
    }
}

/// Parses one DER certificate.
pub fn cert_facts(der: &[u8]) -> Result<CertFacts, PkiError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::InvalidIssuer(format!("not a DER certificate: {e}")))?;
    Ok(CertFacts {
        der: der.to_vec(),
        serial_hex: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        spki_der: cert.public_key().raw.to_vec(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
    })
}

/// The KMS key spec a public key corresponds to (EC P-256/P-384, RSA
/// 2048/3072/4096), if any.
pub fn spki_key_spec(spki_der: &[u8]) -> Option<crate::kms::KeySpec> {
    use crate::kms::KeySpec;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    match info.parsed().ok()? {
        x509_parser::public_key::PublicKey::EC(p) => match p.key_size() {
            256 => Some(KeySpec::EccNistP256),
            384 => Some(KeySpec::EccNistP384),
            _ => None,
        },
        x509_parser::public_key::PublicKey::RSA(r) => match r.key_size() {
            2048 => Some(KeySpec::Rsa2048),
            3072 => Some(KeySpec::Rsa3072),
            4096 => Some(KeySpec::Rsa4096),
            _ => None,
        },
        _ => None,
    }
}

/// The DER of every `CERTIFICATE` block in `pem_text`, in order.
pub fn pem_certificates(pem_text: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.contents().to_vec())
        .collect()
}

/// The first certificate of a PEM text (a leaf before its chain).
pub fn first_cert_facts(pem_text: &[u8]) -> Option<CertFacts> {
    pem_certificates(pem_text)
        .first()
        .and_then(|d| cert_facts(d).ok())
}

/// Splits a chain (PEM, leaf-most first) into (everything but the last,
/// the last): the intermediates and the root of a CA chain.
pub fn split_chain(chain_pem: &str) -> (String, String) {
    let certs = pem_certificates(chain_pem.as_bytes());
    let Some((root, rest)) = certs.split_last() else {
        return (String::new(), String::new());
    };
    let intermediates = rest
        .iter()
        .map(|d| super::to_pem("CERTIFICATE", d.clone()))
        .collect();
    (intermediates, super::to_pem("CERTIFICATE", root.clone()))
}

/// SHA-256 fingerprint, colon-separated upper-case hex.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The private key half of a `kubernetes.io/tls` Secret, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// No `tls.key`.
    Missing,
    /// `tls.key` is not a PEM key Signet can read.
    Unreadable,
    /// The key does not belong to the certificate.
    Mismatch,
    /// The key belongs to the certificate (kept for rotationPolicy Never).
    Matches(PrivateKeyPem),
}

/// What a `kubernetes.io/tls` Secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsContents {
    /// The leaf (first certificate of `tls.crt`), when it parses.
    pub cert: Option<CertFacts>,
    /// The key, compared with the leaf.
    pub key: KeyState,
}

/// Reads `tls.crt` and `tls.key` (never logs the key).
pub fn read_tls(tls_crt: Option<&[u8]>, tls_key: Option<&[u8]>) -> TlsContents {
    let cert = tls_crt.and_then(first_cert_facts);
    let key = match (tls_key, &cert) {
        (None, _) => KeyState::Missing,
        (Some(k), cert) => match std::str::from_utf8(k).ok().map(keys::parse_pem) {
            Some(Ok(Ok(kp))) => {
                let matches = cert.as_ref().is_some_and(|c| {
                    rcgen::PublicKeyData::subject_public_key_info(&kp) == c.spki_der
                });
                if matches {
                    KeyState::Matches(PrivateKeyPem::new(String::from_utf8_lossy(k).into_owned()))
                } else {
                    KeyState::Mismatch
                }
            }
            _ => KeyState::Unreadable,
        },
    };
    TlsContents { cert, key }
}

/// One entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntryFacts {
    /// Serial, [`serial_hex`] form.
    pub serial_hex: String,
    /// Revocation time.
    pub revoked_at: OffsetDateTime,
    /// Reason (unspecified when the entry has no reason code; `None` for a
    /// code Signet never writes).
    pub reason: Option<RevocationReason>,
}

/// What a CRL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFacts {
    /// cRLNumber (0 when absent).
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate, if present.
    pub next_update: Option<OffsetDateTime>,
    /// Revoked certificates.
    pub entries: Vec<CrlEntryFacts>,
}

fn crl_facts_of(crl: &CertificateRevocationList<'_>) -> Result<CrlFacts, PkiError> {
    let number = match crl.crl_number() {
        None => 0,
        Some(n) => match n.to_u64_digits().as_slice() {
            [] => 0,
            [v] => *v,
            _ => {
                return Err(PkiError::InvalidIssuer(
                    "CRL number does not fit 64 bits".into(),
                ));
            }
        },
    };
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| CrlEntryFacts {
            serial_hex: serial_hex(r.raw_serial()),
            revoked_at: r.revocation_date.to_datetime(),
            reason: match r.reason_code() {
                None => Some(RevocationReason::Unspecified),
                Some((_, code)) => RevocationReason::from_code(code.0),
            },
        })
        .collect();
    Ok(CrlFacts {
        number,
        this_update: crl.last_update().to_datetime(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
        entries,
    })
}

/// Parses a DER CRL without checking its signature (for tooling and for
/// reporting; use [`verify_crl`] before trusting anything in it).
pub fn crl_facts(der: &[u8]) -> Result<CrlFacts, PkiError> {
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| PkiError::InvalidIssuer(format!("not a DER CRL: {e}")))?;
    crl_facts_of(&crl)
}

/// Parses a DER CRL and checks that `issuer` signed it (signature against
/// the CA's key, issuer name equal to the CA's subject). Only then are its
/// number, times and entries worth anything.
pub fn verify_crl(der: &[u8], issuer: &IssuerInfo) -> Result<CrlFacts, PkiError> {
    let bad = |m: String| PkiError::InvalidIssuer(format!("CRL: {m}"));
    let (rest, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| bad(format!("not DER: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes".into()));
    }
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(issuer.spki_der())
        .map_err(|e| bad(format!("issuer key: {e}")))?;
    crl.verify_signature(&spki)
        .map_err(|e| bad(format!("signature does not verify against the CA key: {e}")))?;
    if crl.issuer().to_string() != issuer.subject() {
        return Err(bad(format!(
            "issued by {:?}, not by {:?}",
            crl.issuer().to_string(),
            issuer.subject()
        )));
    }
    crl_facts_of(&crl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_have_one_normal_form() {
        assert_eq!(serial_hex(&[0x00, 0x8a, 0x01]), "8a01");
        assert_eq!(normalize_serial("0x0A:1B").as_deref(), Some("0a1b"));
        assert_eq!(normalize_serial("a1b").as_deref(), Some("0a1b"));
        assert_eq!(normalize_serial("00"), None);
        assert_eq!(normalize_serial("xyz"), None);
        assert_eq!(normalize_serial(""), None);
    }

    #[test]
    fn a_secret_without_a_key_or_certificate_is_described_not_panicked_on() {
        let c = read_tls(None, None);
        assert!(c.cert.is_none());
        assert_eq!(c.key, KeyState::Missing);
        let c = read_tls(Some(b"garbage"), Some(b"garbage"));
        assert!(c.cert.is_none());
        assert_eq!(c.key, KeyState::Unreadable);
    }

    #[test]
    fn garbage_is_not_a_crl() {
        assert!(crl_facts(b"\x30\x03\x02\x01\x01").is_err());
        assert!(crl_facts(b"").is_err());
    }

    #[test]
    fn chains_split_into_intermediates_and_root() {
        let a = crate::pki::to_pem("CERTIFICATE", vec![1, 2, 3]);
        let b = crate::pki::to_pem("CERTIFICATE", vec![4, 5, 6]);
        let (inter, root) = split_chain(&format!("{a}{b}"));
        assert_eq!(root, b);
        assert_eq!(inter, a);
        assert_eq!(split_chain(""), (String::new(), String::new()));
    }
}
