//! Who signs OCSP responses: the CA's own key, or a delegated responder
//! key with a certificate the CA issued ([`issue_responder`]).

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{HashAlgorithm, hash};
use crate::kms::Signer;
use crate::pki::error::PkiError;
use crate::pki::issue::{self, IssuedCert};
use crate::pki::issuer::IssuerInfo;
use crate::pki::sign::{self, SpkiKey};
use crate::pki::validate::FieldErrors;

/// Longest validity [`issue_responder`] accepts. A responder certificate
/// carries id-pkix-ocsp-nocheck, so clients cannot learn of its
/// revocation: it has to be short-lived (RFC 6960 §4.2.2.2.1).
pub const MAX_RESPONDER_VALIDITY: Duration = Duration::days(30);

/// `id-pkix-ocsp-nocheck` (1.3.6.1.5.5.7.48.1.5).
const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
/// The extnValue of id-pkix-ocsp-nocheck: `NULL`.
const NULL: [u8; 2] = [0x05, 0x00];
/// Appended to the CA's commonName for the responder's commonName.
const CN_SUFFIX: &str = " OCSP Responder";
/// Upper bound of commonName (RFC 5280 ub-common-name).
const MAX_CN_CHARS: usize = 64;

/// The key that signs OCSP responses for one CA, and (when delegated) its
/// certificate, which is sent along in every response.
pub struct Responder<'a> {
    pub(super) issuer: &'a IssuerInfo,
    pub(super) signer: &'a dyn Signer,
    pub(super) delegated: Option<Delegated<'a>>,
    /// SHA-1 of the signing key's subjectPublicKey (ResponderID byKey).
    pub(super) key_hash: Vec<u8>,
}

impl std::fmt::Debug for Responder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("issuer", &self.issuer.subject())
            .field("key", &self.signer.key_arn())
            .field("delegated", &self.delegated.is_some())
            .finish()
    }
}

/// A delegated responder's certificate.
pub(super) struct Delegated<'a> {
    pub(super) cert_der: &'a [u8],
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
}

impl<'a> Responder<'a> {
    /// The CA answers with its own key (one KMS `Sign` per response).
    pub fn ca(issuer: &'a IssuerInfo, signer: &'a dyn Signer) -> Result<Self, PkiError> {
        sign::check_issuer_key(issuer.spki_der(), signer)?;
        Ok(Responder {
            issuer,
            signer,
            delegated: None,
            key_hash: hash(HashAlgorithm::Sha1, issuer.public_key_bits()),
        })
    }

    /// A delegated responder: `signer` holds the key of `cert_der`, a
    /// certificate `issuer` signed with extendedKeyUsage id-kp-OCSPSigning
    /// (as [`issue_responder`] makes). All of that is checked here,
    /// including the CA's signature on the certificate.
    pub fn delegated(
        issuer: &'a IssuerInfo,
        signer: &'a dyn Signer,
        cert_der: &'a [u8],
    ) -> Result<Self, PkiError> {
        let bad = PkiError::InvalidResponder;
        let (rest, cert) = X509Certificate::from_der(cert_der)
            .map_err(|e| bad(format!("not a DER certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the certificate".into()));
        }
        if cert.public_key().raw != signer.public_key_spki_der() {
            return Err(bad(format!(
                "its public key is not the key of signer {}",
                signer.key_arn()
            )));
        }
        if cert.issuer().as_raw() != issuer.subject_der() {
            return Err(bad(format!(
                "issued by {}, not by {}",
                cert.issuer(),
                issuer.subject()
            )));
        }
        let (_, issuer_key) = SubjectPublicKeyInfo::from_der(issuer.spki_der())
            .map_err(|e| PkiError::InvalidIssuer(format!("public key: {e}")))?;
        cert.verify_signature(Some(&issuer_key)).map_err(|e| {
            bad(format!(
                "its signature does not verify with the key of {}: {e}",
                issuer.subject()
            ))
        })?;
        let ocsp_signing = cert
            .extended_key_usage()
            .map_err(|e| bad(format!("extendedKeyUsage: {e}")))?
            .is_some_and(|eku| eku.value.ocsp_signing);
        if !ocsp_signing {
            return Err(bad("its extendedKeyUsage lacks id-kp-OCSPSigning".into()));
        }
        let key_hash = hash(
            HashAlgorithm::Sha1,
            &cert.public_key().subject_public_key.data,
        );
        Ok(Responder {
            issuer,
            signer,
            delegated: Some(Delegated {
                cert_der,
                not_before: cert.validity().not_before.to_datetime(),
                not_after: cert.validity().not_after.to_datetime(),
            }),
            key_hash,
        })
    }

    /// The CA this responder answers for.
    pub fn issuer(&self) -> &IssuerInfo {
        self.issuer
    }

    /// The delegated responder certificate (DER), if any.
    pub fn cert_der(&self) -> Option<&[u8]> {
        self.delegated.as_ref().map(|d| d.cert_der)
    }

    /// When the responder can sign: the delegated certificate's notAfter,
    /// or the CA's.
    pub fn not_after(&self) -> OffsetDateTime {
        self.delegated
            .as_ref()
            .map_or(self.issuer.not_after(), |d| d.not_after)
    }

    /// Checks that the responder may sign at `t`.
    pub(super) fn check_valid_at(&self, t: OffsetDateTime) -> Result<(), PkiError> {
        let Some(d) = &self.delegated else {
            return self.issuer.check_valid_at(t);
        };
        if t >= d.not_after {
            return Err(PkiError::InvalidResponder(format!(
                "it expired at {}; issue a new one",
                d.not_after
            )));
        }
        if t < d.not_before {
            return Err(PkiError::InvalidResponder(format!(
                "it is not valid before {}; check the clock",
                d.not_before
            )));
        }
        Ok(())
    }
}

/// Issues a delegated OCSP responder certificate for the key
/// `responder_spki_der` (normally a fresh in-memory
/// [`LocalSigner`](crate::kms::LocalSigner)), signed by `issuer_signer`
/// (the CA's KMS key): one KMS `Sign`.
///
/// Subject: the CA's subject with commonName "<CA commonName> OCSP
/// Responder". keyUsage digitalSignature (critical), extendedKeyUsage
/// id-kp-OCSPSigning only, basicConstraints cA=FALSE, id-pkix-ocsp-nocheck,
/// SKI, AKI = the CA's SKI; no SANs, CRL distribution points or AIA.
/// `validity` is at most [`MAX_RESPONDER_VALIDITY`] and is clamped to the
/// CA's notAfter.
#[tracing::instrument(skip_all, fields(issuer = issuer.subject()))]
pub async fn issue_responder(
    issuer: &IssuerInfo,
    issuer_signer: &dyn Signer,
    responder_spki_der: &[u8],
    validity: Duration,
    now: OffsetDateTime,
) -> Result<IssuedCert, PkiError> {
    sign::check_issuer_key(issuer.spki_der(), issuer_signer)?;
    issue::check_can_issue(issuer, now)?;
    let mut errs = FieldErrors::default();
    let window = issue::validity(
        now,
        validity,
        Some(MAX_RESPONDER_VALIDITY),
        Some(issuer.not_after()),
        &mut errs,
    );
    let subject_key = match SpkiKey::from_spki(responder_spki_der) {
        Ok(_) if responder_spki_der == issuer.spki_der() => {
            errs.push(
                "responderPublicKey",
                "",
                "is the CA's own key; a CA answers with its key without a responder certificate",
            );
            None
        }
        Ok(k) => Some(k),
        Err(e) => {
            errs.push("responderPublicKey", "", e.to_string());
            None
        }
    };
    if !errs.is_empty() {
        return Err(PkiError::Invalid(errs));
    }
    let (Some(window), Some(subject_key)) = (window, subject_key) else {
        return Err(PkiError::Encoding("validity not computed".into()));
    };
    issue::sign_cert(
        issuer,
        issuer_signer,
        responder_params(issuer),
        &subject_key,
        window,
    )
    .await
}

/// The extensions and subject of a responder certificate (no validity).
fn responder_params(issuer: &IssuerInfo) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = responder_subject(&issuer.subject);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            OID_OCSP_NOCHECK,
            NULL.to_vec(),
        ));
    params
}

/// The CA's subject with commonName "<CA commonName> OCSP Responder" (the
/// CA's part shortened to keep within 64 characters), in the CA's order.
pub(super) fn responder_subject(ca: &DistinguishedName) -> DistinguishedName {
    let ca_cn = match ca.get(&DnType::CommonName) {
        Some(DnValue::Utf8String(s)) => s.clone(),
        Some(DnValue::PrintableString(s)) => s.as_str().to_string(),
        Some(DnValue::Ia5String(s)) => s.as_str().to_string(),
        _ => "Signet CA".to_string(),
    };
    let keep = MAX_CN_CHARS - CN_SUFFIX.chars().count();
    let cn: String = ca_cn.trim().chars().take(keep).collect();
    let cn = format!("{}{CN_SUFFIX}", cn.trim_end());
    let mut dn = DistinguishedName::new();
    let mut has_cn = false;
    for (ty, value) in ca.iter() {
        if *ty == DnType::CommonName {
            dn.push(DnType::CommonName, DnValue::Utf8String(cn.clone()));
            has_cn = true;
        } else {
            dn.push(ty.clone(), value.clone());
        }
    }
    if !has_cn {
        dn.push(DnType::CommonName, DnValue::Utf8String(cn));
    }
    dn
}

/// A delegated responder that owns its parts: the CA, the responder key
/// (in memory only) and its certificate, checked once by [`Responder::delegated`]
/// when built. [`DelegatedResponder::responder`] then lends a
/// [`Responder`] per answer without checking again.
pub struct DelegatedResponder {
    issuer: IssuerInfo,
    key: std::sync::Arc<dyn Signer>,
    cert_der: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key_hash: Vec<u8>,
}

impl std::fmt::Debug for DelegatedResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedResponder")
            .field("issuer", &self.issuer.subject())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl DelegatedResponder {
    /// Checks `cert_der` as [`Responder::delegated`] does and keeps it
    /// with `key` and `issuer`.
    pub fn new(
        issuer: IssuerInfo,
        key: std::sync::Arc<dyn Signer>,
        cert_der: Vec<u8>,
    ) -> Result<Self, PkiError> {
        let (not_before, not_after, key_hash) = {
            let r = Responder::delegated(&issuer, key.as_ref(), &cert_der)?;
            let d = r
                .delegated
                .as_ref()
                .ok_or_else(|| PkiError::InvalidResponder("not a delegated responder".into()))?;
            (d.not_before, d.not_after, r.key_hash.clone())
        };
        Ok(DelegatedResponder {
            issuer,
            key,
            cert_der,
            not_before,
            not_after,
            key_hash,
        })
    }

    /// The responder that signs with it.
    pub fn responder(&self) -> Responder<'_> {
        Responder {
            issuer: &self.issuer,
            signer: self.key.as_ref(),
            delegated: Some(Delegated {
                cert_der: &self.cert_der,
                not_before: self.not_before,
                not_after: self.not_after,
            }),
            key_hash: self.key_hash.clone(),
        }
    }

    /// The CA it answers for.
    pub fn issuer(&self) -> &IssuerInfo {
        &self.issuer
    }

    /// The responder certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The responder key (for a new view with the same certificate).
    pub fn key(&self) -> std::sync::Arc<dyn Signer> {
        self.key.clone()
    }

    /// The responder certificate's notBefore.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The responder certificate's notAfter.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}
