//! Signed OCSP responses (RFC 6960 §4.2, BasicOCSPResponse).

use der::Any;
use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, OcspGeneralizedTime, OcspResponse, ResponderId, ResponseData, RevokedInfo,
    SingleResponse, Version,
};

use super::request::OID_NONCE;
use super::{CertStatus, MAX_NONCE_LEN, Responder, SingleAnswer};
use crate::kms::SigAlg;
use crate::pki::error::PkiError;
use crate::pki::issue::whole_seconds;
use crate::pki::request::RevocationReason;
use crate::pki::validate::FieldErrors;

/// How far `thisUpdate` may lie after `producedAt` (clock skew between
/// the revocation data and the responder).
const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// Longest nonce extension value echoed: an OCTET STRING of
/// [`MAX_NONCE_LEN`] bytes.
const MAX_NONCE_EXTN_LEN: usize = MAX_NONCE_LEN + 2;

/// Signs a successful `OCSPResponse` (id-pkix-ocsp-basic) answering
/// `answers`, with exactly one `Signer::sign_digest` call (the signer
/// verifies its signature before returning it).
///
/// * ResponderID byKey (SHA-1 of the responder's public key); a delegated
///   responder's certificate goes into `certs`.
/// * `nonce` is echoed as the id-pkix-ocsp-nonce extension: pass
///   [`OcspRequest::nonce`](super::OcspRequest::nonce) (and `None` for
///   cacheable GET answers, RFC 5019 §4).
/// * Times are cut to whole seconds.
///
/// Refuses ([`PkiError::Invalid`]) to vouch for a certificate of another
/// CA: an answer other than `Unknown` must have a CertID that
/// [matches](super::CertId::matches_issuer) the responder's CA. Also
/// refused: no answers, `nextUpdate` not after `thisUpdate`, `thisUpdate`
/// after `produced_at`, a revocation after `thisUpdate`, an over-long
/// nonce, and a responder not valid at `produced_at`.
#[tracing::instrument(skip_all, fields(issuer = responder.issuer.subject(), answers = answers.len()))]
pub async fn sign_response(
    responder: &Responder<'_>,
    answers: &[SingleAnswer],
    nonce: Option<&[u8]>,
    produced_at: OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    let produced_at = whole_seconds(produced_at);
    responder.check_valid_at(produced_at)?;
    check_answers(responder, answers, nonce, produced_at)?;
    let data = response_data(responder, answers, nonce, produced_at)?;
    let tbs = data.to_der().map_err(encoding)?;
    let signer = responder.signer;
    let signature = signer.sign_digest(&signer.algorithm().digest(&tbs)).await?;
    let certs = responder
        .delegated
        .as_ref()
        .map(|d| Certificate::from_der(d.cert_der).map(|c| vec![c]))
        .transpose()
        .map_err(encoding)?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: signature_algorithm(signer.algorithm()),
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
        certs,
    };
    OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(encoding)
}

fn encoding(e: der::Error) -> PkiError {
    PkiError::Encoding(format!("OCSP response: {e}"))
}

/// Everything [`sign_response`] refuses, each problem naming its answer.
fn check_answers(
    responder: &Responder<'_>,
    answers: &[SingleAnswer],
    nonce: Option<&[u8]>,
    produced_at: OffsetDateTime,
) -> Result<(), PkiError> {
    let mut errs = FieldErrors::default();
    if answers.is_empty() {
        errs.push("answers", "", "at least one answer is needed");
    }
    if let Some(n) = nonce
        && (n.is_empty() || n.len() > MAX_NONCE_EXTN_LEN)
    {
        errs.push(
            "nonce",
            format!("{} bytes", n.len()),
            format!("must be 1 to {MAX_NONCE_EXTN_LEN} bytes (RFC 8954)"),
        );
    }
    for (i, a) in answers.iter().enumerate() {
        let this_update = whole_seconds(a.this_update);
        if this_update > produced_at + MAX_FUTURE_SKEW {
            errs.push(
                format!("answers[{i}].thisUpdate"),
                this_update.to_string(),
                "after producedAt; use the time the status was known",
            );
        }
        if let Some(next) = a.next_update
            && whole_seconds(next) <= this_update
        {
            errs.push(
                format!("answers[{i}].nextUpdate"),
                next.to_string(),
                "must be after thisUpdate",
            );
        }
        if a.status != CertStatus::Unknown && !a.cert_id.matches_issuer(responder.issuer) {
            errs.push(
                format!("answers[{i}].certId"),
                a.cert_id.serial_hex(),
                format!(
                    "names a certificate of another CA than {}; answer Unknown",
                    responder.issuer.subject()
                ),
            );
        }
        if let CertStatus::Revoked { at, .. } = a.status
            && whole_seconds(at) > this_update
        {
            errs.push(
                format!("answers[{i}].revocationTime"),
                at.to_string(),
                "after thisUpdate; a response cannot report a future revocation",
            );
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(PkiError::Invalid(errs))
    }
}

/// The to-be-signed `ResponseData`.
fn response_data(
    responder: &Responder<'_>,
    answers: &[SingleAnswer],
    nonce: Option<&[u8]>,
    produced_at: OffsetDateTime,
) -> Result<ResponseData, PkiError> {
    let responses = answers
        .iter()
        .map(single_response)
        .collect::<Result<Vec<_>, _>>()?;
    let response_extensions = nonce
        .map(|n| {
            OctetString::new(n).map(|value| {
                vec![Extension {
                    extn_id: OID_NONCE,
                    critical: false,
                    extn_value: value,
                }]
            })
        })
        .transpose()
        .map_err(encoding)?;
    Ok(ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(
            OctetString::new(responder.key_hash.clone()).map_err(encoding)?,
        ),
        produced_at: generalized_time(produced_at)?,
        responses,
        response_extensions,
    })
}

fn single_response(a: &SingleAnswer) -> Result<SingleResponse, PkiError> {
    let cert_status = match a.status {
        CertStatus::Good => x509_ocsp::CertStatus::good(),
        CertStatus::Unknown => x509_ocsp::CertStatus::unknown(),
        CertStatus::Revoked { at, reason } => x509_ocsp::CertStatus::Revoked(RevokedInfo {
            revocation_time: generalized_time(at)?,
            revocation_reason: reason.and_then(crl_reason),
        }),
    };
    Ok(SingleResponse {
        cert_id: x509_ocsp::CertId::from_der(a.cert_id.der()).map_err(encoding)?,
        cert_status,
        this_update: generalized_time(a.this_update)?,
        next_update: a.next_update.map(generalized_time).transpose()?,
        single_extensions: None,
    })
}

/// The CRLReason written for `reason`; `None` for unspecified (RFC 5280
/// §5.3.1: omit rather than write unspecified).
fn crl_reason(reason: RevocationReason) -> Option<CrlReason> {
    Some(match reason {
        RevocationReason::Unspecified => return None,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    })
}

/// A GeneralizedTime of whole seconds.
fn generalized_time(t: OffsetDateTime) -> Result<OcspGeneralizedTime, PkiError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| PkiError::Encoding(format!("time {t} is before 1970")))?;
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime::from)
        .map_err(|e| PkiError::Encoding(format!("time {t}: {e}")))
}

/// The signatureAlgorithm of a response signed with `alg` (RFC 5758 for
/// ECDSA: no parameters; RFC 4055 for RSA: NULL parameters).
fn signature_algorithm(alg: SigAlg) -> AlgorithmIdentifierOwned {
    let (oid, parameters) = match alg {
        SigAlg::EcdsaP256Sha256 => (ECDSA_WITH_SHA256, None),
        SigAlg::EcdsaP384Sha384 => (ECDSA_WITH_SHA384, None),
        SigAlg::RsaPkcs1Sha256 => (SHA256_WITH_RSA, Some(Any::null())),
    };
    AlgorithmIdentifierOwned { oid, parameters }
}

/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (1.2.840.10045.4.3.3).
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// sha256WithRSAEncryption (1.2.840.113549.1.1.11).
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
