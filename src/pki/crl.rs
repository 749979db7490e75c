//! Certificate revocation lists.

use std::collections::HashSet;

use rcgen::{
    CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    CrlIssuingDistributionPoint, KeyIdMethod, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::error::PkiError;
use super::issue::whole_seconds;
use super::issuer::IssuerInfo;
use super::request::{CrlRequest, parse_serial_hex};
use super::sign::{self, TbsCapture};
use super::validate::{self, FieldErrors};
use crate::kms::Signer;

/// How far in the future `thisUpdate` may be relative to `now` (clock skew).
const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// A signed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCrl {
    /// DER.
    pub der: Vec<u8>,
    /// PEM (`X509 CRL`).
    pub pem: String,
    /// cRLNumber.
    pub number: u64,
    /// thisUpdate (whole seconds).
    pub this_update: OffsetDateTime,
    /// nextUpdate (whole seconds).
    pub next_update: OffsetDateTime,
    /// Number of revoked entries.
    pub entries: usize,
}

fn crl_params(
    req: &CrlRequest,
    now: OffsetDateTime,
) -> Result<CertificateRevocationListParams, PkiError> {
    let mut errs = FieldErrors::default();
    let this_update = whole_seconds(req.this_update);
    let next_update = whole_seconds(req.next_update);
    if next_update <= this_update {
        errs.push(
            "nextUpdate",
            next_update.to_string(),
            "must be after thisUpdate",
        );
    }
    if this_update > now + MAX_FUTURE_SKEW {
        errs.push(
            "thisUpdate",
            this_update.to_string(),
            "is in the future; use the current time",
        );
    }
    if let Some(url) = &req.distribution_point
        && let Some(p) = validate::http_url_problem(url)
    {
        errs.push("distributionPoint", url.clone(), p);
    }
    let mut seen = HashSet::with_capacity(req.entries.len());
    let mut revoked = Vec::with_capacity(req.entries.len());
    for (i, e) in req.entries.iter().enumerate() {
        let serial = match parse_serial_hex(&e.serial_hex) {
            Ok(s) => s,
            Err(p) => {
                errs.push(
                    format!("entries[{i}].serialNumber"),
                    e.serial_hex.clone(),
                    p,
                );
                continue;
            }
        };
        if !seen.insert(serial.clone()) {
            errs.push(
                format!("entries[{i}].serialNumber"),
                e.serial_hex.clone(),
                "listed twice; keep one entry per serial",
            );
            continue;
        }
        if e.revoked_at > this_update {
            errs.push(
                format!("entries[{i}].revocationTime"),
                e.revoked_at.to_string(),
                "after thisUpdate; a CRL cannot list future revocations",
            );
        }
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: whole_seconds(e.revoked_at),
            reason_code: Some(super::request::rcgen_reason(e.reason)),
            invalidity_date: e.invalidity_date.map(whole_seconds),
        });
    }
    if !errs.is_empty() {
        return Err(PkiError::Invalid(errs));
    }
    Ok(CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&req.number.to_be_bytes()),
        issuing_distribution_point: req.distribution_point.as_ref().map(|u| {
            CrlIssuingDistributionPoint {
                distribution_point: CrlDistributionPoint {
                    uris: vec![u.clone()],
                },
                scope: None,
            }
        }),
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    })
}

/// Builds the placeholder DER and TBS of a CRL (synchronous; see
/// [`super::sign`]).
fn build_tbs(
    params: &CertificateRevocationListParams,
    issuer: &IssuerInfo,
    signer: &dyn Signer,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let capture = TbsCapture::for_signer(signer)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = issuer.subject.clone();
    p.key_identifier_method = KeyIdMethod::PreSpecified(issuer.ski.clone());
    p.key_usages = Vec::new();
    let rc_issuer = rcgen::Issuer::new(p, &capture);
    let crl = params.signed_by(&rc_issuer)?;
    let tbs = capture.take()?;
    Ok((crl.der().to_vec(), tbs))
}

/// Signs a v2 CRL for `issuer` with `signer` (one KMS `Sign`): cRLNumber,
/// authorityKeyIdentifier (= issuer SKI), thisUpdate/nextUpdate, and one
/// entry per revoked serial with revocation time, reason code (omitted for
/// `unspecified`) and optional invalidity date.
///
/// `now` is only used to validate: the issuer must be valid at `now` and
/// `thisUpdate` must not be in the future.
#[tracing::instrument(skip_all, fields(issuer = issuer.subject(), number = req.number, entries = req.entries.len()))]
pub async fn sign_crl(
    issuer: &IssuerInfo,
    signer: &dyn Signer,
    req: &CrlRequest,
    now: OffsetDateTime,
) -> Result<SignedCrl, PkiError> {
    sign::check_issuer_key(issuer.spki_der(), signer)?;
    issuer.check_valid_at(now)?;
    if !issuer.can_sign_crls {
        return Err(PkiError::IssuerNotAllowed(
            "the issuer's keyUsage lacks cRLSign".into(),
        ));
    }
    let mut params = crl_params(req, now)?;
    params.key_identifier_method = KeyIdMethod::PreSpecified(issuer.ski.clone());
    let (placeholder, tbs) = build_tbs(&params, issuer, signer)?;
    let der = sign::finish(signer, &placeholder, &tbs).await?;
    Ok(SignedCrl {
        pem: crate::pki::to_pem("X509 CRL", der.clone()),
        der,
        number: req.number,
        this_update: params.this_update,
        next_update: params.next_update,
        entries: params.revoked_certs.len(),
    })
}
