//! Root, intermediate and end-entity certificates.

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    IsCa, KeyIdMethod, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::error::PkiError;
use super::issuer::IssuerInfo;
use super::keys::{self, LeafKeyType, PrivateKeyPem};
use super::request::{CaRequest, LeafRequest, Usage};
use super::sign::{self, SpkiKey, TbsCapture};
use super::validate::FieldErrors;
use super::{der, human_duration};
use crate::kms::Signer;

/// A signed CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// PEM (`CERTIFICATE`).
    pub cert_pem: String,
    /// DER.
    pub cert_der: Vec<u8>,
    /// Serial number: lower-case hex of the minimal big-endian bytes (even
    /// length, no colons, no leading `00` byte), as `openssl x509 -serial`
    /// prints it (modulo case).
    pub serial_hex: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter (after clamping).
    pub not_after: OffsetDateTime,
    /// `true` when notAfter was cut to the issuer's notAfter.
    pub clamped: bool,
}

/// A signed end-entity certificate and its freshly generated key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLeaf {
    /// PEM (`CERTIFICATE`), the leaf only (no chain).
    pub cert_pem: String,
    /// DER.
    pub cert_der: Vec<u8>,
    /// The private key (PKCS#8, or PKCS#1 for RSA on request). Redacted in
    /// `Debug`.
    pub key: PrivateKeyPem,
    /// Serial number: lower-case hex of the minimal big-endian bytes (even
    /// length, no colons, no leading `00` byte), as `openssl x509 -serial`
    /// prints it (modulo case).
    pub serial_hex: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter (after clamping).
    pub not_after: OffsetDateTime,
    /// `true` when notAfter was cut to the issuer's notAfter.
    pub clamped: bool,
}

/// Drops sub-second precision (X.509 times have whole seconds).
pub(crate) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t - Duration::nanoseconds(i64::from(t.nanosecond()))
}

/// A fresh 128-bit random positive serial number.
pub(crate) fn random_serial() -> Result<(SerialNumber, String), PkiError> {
    let mut bytes = [0u8; 16];
    loop {
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| PkiError::Encoding("random number generator failed".into()))?;
        if let Some(first) = bytes.iter().position(|b| *b != 0) {
            let magnitude = &bytes[first..];
            return Ok((SerialNumber::from_slice(magnitude), hex::encode(magnitude)));
        }
    }
}

/// Validity window for a request: `(notBefore, notAfter, clamped)`.
pub(super) fn validity(
    now: OffsetDateTime,
    duration: Duration,
    max: Option<Duration>,
    issuer_not_after: Option<OffsetDateTime>,
    errs: &mut FieldErrors,
) -> Option<(OffsetDateTime, OffsetDateTime, bool)> {
    if duration <= Duration::ZERO {
        errs.push(
            "duration",
            human_duration(duration),
            "must be positive, e.g. 2160h (90 days)",
        );
        return None;
    }
    if let Some(max) = max
        && duration > max
    {
        errs.push(
            "duration",
            human_duration(duration),
            format!(
                "longer than the issuer allows ({}); request at most that",
                human_duration(max)
            ),
        );
        return None;
    }
    let not_before = whole_seconds(now);
    let Some(wanted) = not_before
        .checked_add(duration)
        .filter(|t| t.year() <= 9999)
    else {
        errs.push(
            "duration",
            human_duration(duration),
            "ends after the year 9999, which X.509 cannot express; request less",
        );
        return None;
    };
    match issuer_not_after {
        Some(limit) if wanted > limit => Some((not_before, limit, true)),
        _ => Some((not_before, wanted, false)),
    }
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ]
}

/// Validates a CA request into rcgen params (without validity).
fn ca_params(req: &CaRequest, errs: &mut FieldErrors) -> CertificateParams {
    let mut params = CertificateParams::default();
    if req.subject.common_name.is_none() {
        errs.push(
            "commonName",
            "",
            "a CA needs a commonName, e.g. \"Example Root CA\"",
        );
    }
    params.distinguished_name = req.subject.to_dn(errs);
    params.key_usages = ca_key_usages();
    params.name_constraints = req
        .name_constraints
        .as_ref()
        .and_then(|nc| nc.to_rcgen(errs));
    params.use_authority_key_identifier_extension = true;
    params
}

/// Adds the issuer's CRL distribution points and AIA to `params`.
fn add_issuer_urls(params: &mut CertificateParams, issuer: &IssuerInfo) {
    let p = &issuer.profile;
    if !p.crl_distribution_points.is_empty() {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: p.crl_distribution_points.clone(),
        }];
    }
    let policies: Vec<Vec<u64>> = p
        .policy_oids
        .iter()
        .filter_map(|o| der::parse_oid(o))
        .collect();
    if !policies.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                der::OID_CERTIFICATE_POLICIES,
                der::certificate_policies(&policies),
            ));
    }
    if !p.ocsp_servers.is_empty() || !p.issuing_certificate_urls.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                der::OID_AIA,
                der::authority_info_access(&p.ocsp_servers, &p.issuing_certificate_urls),
            ));
    }
}

/// rcgen issuer for `info`, signing through `capture`.
fn rcgen_issuer<'a>(
    info: &IssuerInfo,
    capture: &'a TbsCapture,
) -> rcgen::Issuer<'static, &'a TbsCapture> {
    let mut p = CertificateParams::default();
    p.distinguished_name = info.subject.clone();
    p.key_identifier_method = KeyIdMethod::PreSpecified(info.ski.clone());
    p.key_usages = Vec::new();
    rcgen::Issuer::new(p, capture)
}

/// Runs rcgen with a capturing key: returns `(placeholder DER, TBS)`.
/// Synchronous on purpose: nothing borrowed here lives across an `.await`.
fn build_tbs(
    params: &CertificateParams,
    subject_key: &impl rcgen::PublicKeyData,
    issuer: Option<&IssuerInfo>,
    signer: &dyn Signer,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let capture = TbsCapture::for_signer(signer)?;
    let cert = match issuer {
        Some(info) => params.signed_by(subject_key, &rcgen_issuer(info, &capture))?,
        None => params.signed_by(subject_key, &rcgen::Issuer::from_params(params, &capture))?,
    };
    let tbs = capture.take()?;
    Ok((cert.der().to_vec(), tbs))
}

fn pem_cert(der: &[u8]) -> String {
    crate::pki::to_pem("CERTIFICATE", der.to_vec())
}

fn invalid_if_any(errs: FieldErrors) -> Result<(), PkiError> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(PkiError::Invalid(errs))
    }
}

/// The checks and parameters of an intermediate under `parent`: parent
/// usable, pathLen below the parent's, subject, name constraints, validity.
/// Pure; shared by [`issue_intermediate`] and [`check_ca_request`].
type IntermediatePlan = (
    Option<u8>,
    CertificateParams,
    Option<(OffsetDateTime, OffsetDateTime, bool)>,
);

fn intermediate_plan(
    parent: &IssuerInfo,
    req: &CaRequest,
    now: OffsetDateTime,
    errs: &mut FieldErrors,
) -> Result<IntermediatePlan, PkiError> {
    parent.check_valid_at(now)?;
    if !parent.can_sign_certs {
        return Err(PkiError::IssuerNotAllowed(
            "the parent's keyUsage lacks keyCertSign".into(),
        ));
    }
    let path_len = match (parent.path_len, req.path_len) {
        (Some(0), _) => {
            return Err(PkiError::IssuerNotAllowed(
                "the parent has pathLen 0 and cannot sign subordinate CAs".into(),
            ));
        }
        (Some(p), Some(c)) if u32::from(c) >= p => {
            errs.push(
                "pathLen",
                c.to_string(),
                format!(
                    "must be below the parent's pathLen {p}; use at most {}",
                    p - 1
                ),
            );
            None
        }
        (Some(p), None) => Some(u8::try_from(p - 1).unwrap_or(u8::MAX)),
        (_, c) => c,
    };
    let params = ca_params(req, errs);
    let window = validity(
        now,
        req.duration,
        parent.profile.max_duration,
        Some(parent.not_after()),
        errs,
    );
    Ok((path_len, params, window))
}

/// Checks that `issuer` can sign certificates at `now`: valid then, and
/// keyUsage keyCertSign.
pub(super) fn check_can_issue(issuer: &IssuerInfo, now: OffsetDateTime) -> Result<(), PkiError> {
    issuer.check_valid_at(now)?;
    if !issuer.can_sign_certs {
        return Err(PkiError::IssuerNotAllowed(
            "the issuer's keyUsage lacks keyCertSign".into(),
        ));
    }
    Ok(())
}

/// Checks a CA request without signing anything: everything
/// [`issue_root`] (no `parent`) or [`issue_intermediate`] would refuse,
/// except the key itself. Run it before creating a KMS key, so a CA that
/// cannot be issued never costs one.
pub fn check_ca_request(
    req: &CaRequest,
    parent: Option<&IssuerInfo>,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let mut errs = FieldErrors::default();
    match parent {
        None => {
            ca_params(req, &mut errs);
            validity(now, req.duration, None, None, &mut errs);
        }
        Some(p) => {
            intermediate_plan(p, req, now, &mut errs)?;
        }
    }
    invalid_if_any(errs)
}

/// Checks a leaf request against `issuer` without generating a key or
/// signing: everything [`issue_leaf`] would refuse.
pub fn check_leaf_request(
    issuer: &IssuerInfo,
    req: &LeafRequest,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    check_can_issue(issuer, now)?;
    leaf_params(issuer, req, now).map(|_| ())
}

/// Issues a self-signed root CA certificate for `signer`'s key: one KMS
/// `Sign`. keyUsage keyCertSign+cRLSign+digitalSignature (critical),
/// basicConstraints cA (critical, pathLen when set), SKI = AKI.
#[tracing::instrument(skip_all, fields(key = signer.key_arn()))]
pub async fn issue_root(
    signer: &dyn Signer,
    req: &CaRequest,
    now: OffsetDateTime,
) -> Result<IssuedCert, PkiError> {
    let mut errs = FieldErrors::default();
    let mut params = ca_params(req, &mut errs);
    let window = validity(now, req.duration, None, None, &mut errs);
    invalid_if_any(errs)?;
    let Some((not_before, not_after, _)) = window else {
        return Err(PkiError::Encoding("validity not computed".into()));
    };
    let (serial, serial_hex) = random_serial()?;
    params.serial_number = Some(serial);
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::Ca(match req.path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    let subject_key = SpkiKey::from_spki(signer.public_key_spki_der())?;
    params.key_identifier_method = KeyIdMethod::PreSpecified(sign::key_id(&subject_key));
    let (placeholder, tbs) = build_tbs(&params, &subject_key, None, signer)?;
    let cert_der = sign::finish(signer, &placeholder, &tbs).await?;
    Ok(IssuedCert {
        cert_pem: pem_cert(&cert_der),
        cert_der,
        serial_hex,
        not_before,
        not_after,
        clamped: false,
    })
}

/// Issues an intermediate CA certificate for the key `subject_spki_der`
/// (the new CA's KMS public key), signed by `parent_signer` (the parent's
/// KMS key): one KMS `Sign`.
///
/// Validity is clamped to the parent's notAfter (`clamped` reports it).
/// pathLen must be below the parent's; when unset it becomes parent − 1.
/// The parent's CRL distribution points and AIA URLs are included.
#[tracing::instrument(skip_all, fields(parent = parent.subject()))]
pub async fn issue_intermediate(
    parent: &IssuerInfo,
    parent_signer: &dyn Signer,
    req: &CaRequest,
    subject_spki_der: &[u8],
    now: OffsetDateTime,
) -> Result<IssuedCert, PkiError> {
    sign::check_issuer_key(parent.spki_der(), parent_signer)?;
    let mut errs = FieldErrors::default();
    let (path_len, mut params, window) = intermediate_plan(parent, req, now, &mut errs)?;
    let subject_key = match SpkiKey::from_spki(subject_spki_der) {
        Ok(k) => Some(k),
        Err(e) => {
            errs.push("subjectPublicKey", "", e.to_string());
            None
        }
    };
    invalid_if_any(errs)?;
    let (Some((not_before, not_after, clamped)), Some(subject_key)) = (window, subject_key) else {
        return Err(PkiError::Encoding("validity not computed".into()));
    };
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    add_issuer_urls(&mut params, parent);
    if clamped {
        tracing::info!(%not_after, "intermediate validity clamped to the parent's notAfter");
    }
    sign_cert(
        parent,
        parent_signer,
        params,
        &subject_key,
        (not_before, not_after, clamped),
    )
    .await
}

/// Signs `params` for `subject_key` under `issuer` with one KMS `Sign`:
/// sets a fresh random serial, the validity window and the SKI (RFC 7093
/// method 1); the AKI is the issuer's SKI.
pub(super) async fn sign_cert(
    issuer: &IssuerInfo,
    signer: &dyn Signer,
    mut params: CertificateParams,
    subject_key: &SpkiKey,
    (not_before, not_after, clamped): (OffsetDateTime, OffsetDateTime, bool),
) -> Result<IssuedCert, PkiError> {
    let (serial, serial_hex) = random_serial()?;
    params.serial_number = Some(serial);
    params.not_before = not_before;
    params.not_after = not_after;
    params.key_identifier_method = KeyIdMethod::PreSpecified(sign::key_id(subject_key));
    let (placeholder, tbs) = build_tbs(&params, subject_key, Some(issuer), signer)?;
    let cert_der = sign::finish(signer, &placeholder, &tbs).await?;
    Ok(IssuedCert {
        cert_pem: pem_cert(&cert_der),
        cert_der,
        serial_hex,
        not_before,
        not_after,
        clamped,
    })
}

/// Validates a leaf request into rcgen params (subject, SANs, usages) and
/// resolves the key type. Pure.
fn leaf_params(
    issuer: &IssuerInfo,
    req: &LeafRequest,
    now: OffsetDateTime,
) -> Result<
    (
        CertificateParams,
        LeafKeyType,
        OffsetDateTime,
        OffsetDateTime,
        bool,
    ),
    PkiError,
> {
    let mut errs = FieldErrors::default();
    let mut params = CertificateParams::default();
    params.distinguished_name = if req.subject.is_empty() {
        DistinguishedName::new()
    } else {
        req.subject.to_dn(&mut errs)
    };
    params.subject_alt_names = req.sans(&mut errs);
    let key_type = req.private_key.resolve(&mut errs);
    let usages = req.effective_usages();

    let has_sans = !(req.dns_names.is_empty()
        && req.ip_addresses.is_empty()
        && req.uris.is_empty()
        && req.email_addresses.is_empty());
    if req.subject.common_name.is_none() && !has_sans {
        errs.push(
            "commonName",
            "",
            "empty request: set a commonName or at least one of dnsNames, ipAddresses, uris, emailAddresses",
        );
    } else if usages.contains(&Usage::ServerAuth)
        && req.dns_names.is_empty()
        && req.ip_addresses.is_empty()
    {
        errs.push(
            "dnsNames",
            "",
            "a server auth certificate needs at least one DNS name or IP address (TLS clients ignore commonName)",
        );
    }
    if usages.contains(&Usage::EmailProtection) && req.email_addresses.is_empty() {
        errs.push(
            "emailAddresses",
            "",
            "an email protection certificate needs at least one email address",
        );
    }

    let window = validity(
        now,
        req.duration,
        issuer.profile.max_duration,
        Some(issuer.not_after()),
        &mut errs,
    );
    invalid_if_any(errs)?;
    let (Some(key_type), Some((not_before, not_after, clamped))) = (key_type, window) else {
        return Err(PkiError::Encoding("request not resolved".into()));
    };

    let mut ku = vec![KeyUsagePurpose::DigitalSignature];
    if key_type.is_rsa()
        && (usages.contains(&Usage::ServerAuth) || usages.contains(&Usage::EmailProtection))
    {
        ku.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.key_usages = ku;
    params.extended_key_usages = usages.iter().map(|u| u.eku()).collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    add_issuer_urls(&mut params, issuer);
    Ok((params, key_type, not_before, not_after, clamped))
}

/// Issues an end-entity certificate with a freshly generated key, signed by
/// `signer` (the issuer's KMS key): validation, key generation and DER
/// building happen in-process, then one KMS `Sign`.
///
/// * keyUsage digitalSignature (+ keyEncipherment for RSA server/email),
///   critical; extendedKeyUsage from `usages` (default server + client auth);
///   basicConstraints cA=FALSE (critical); SKI and AKI.
/// * Validity starts at `now` and is clamped to the issuer's notAfter
///   (`clamped`); a duration above the issuer's `maxDuration` is an error.
/// * RSA keys are generated on a blocking thread (it takes tens of ms).
#[tracing::instrument(skip_all, fields(issuer = issuer.subject()))]
pub async fn issue_leaf(
    issuer: &IssuerInfo,
    signer: &dyn Signer,
    req: &LeafRequest,
    now: OffsetDateTime,
) -> Result<IssuedLeaf, PkiError> {
    sign::check_issuer_key(issuer.spki_der(), signer)?;
    check_can_issue(issuer, now)?;
    let (params, key_type, not_before, not_after, clamped) = leaf_params(issuer, req, now)?;
    let key_pair = if key_type.is_rsa() {
        tokio::task::spawn_blocking(move || keys::generate(key_type))
            .await
            .map_err(|e| PkiError::KeyGeneration(format!("key generation task: {e}")))??
    } else {
        keys::generate(key_type)?
    };
    finish_leaf(
        issuer, signer, req, params, key_pair, not_before, not_after, clamped,
    )
    .await
}

/// Issues an end-entity certificate for an existing private key
/// (`privateKey.rotationPolicy: Never`): like [`issue_leaf`] but the key is
/// reused. Fails with [`PkiError::Invalid`] naming `privateKey` when the key
/// does not match the requested algorithm/size, so the caller can rotate.
pub async fn issue_leaf_with_key(
    issuer: &IssuerInfo,
    signer: &dyn Signer,
    req: &LeafRequest,
    existing: &PrivateKeyPem,
    now: OffsetDateTime,
) -> Result<IssuedLeaf, PkiError> {
    sign::check_issuer_key(issuer.spki_der(), signer)?;
    check_can_issue(issuer, now)?;
    let (params, key_type, not_before, not_after, clamped) = leaf_params(issuer, req, now)?;
    let key_pair = keys::parse_matching(existing, key_type)?;
    finish_leaf(
        issuer, signer, req, params, key_pair, not_before, not_after, clamped,
    )
    .await
}

/// Issues an end-entity certificate for a key the requester holds
/// (`subject_spki_der`, from a verified CSR): the checks and extensions of
/// [`issue_leaf`], then one KMS `Sign`. `req.private_key` must describe
/// that key (see [`super::CsrContents::key`]); no private key is involved.
#[tracing::instrument(skip_all, fields(issuer = issuer.subject()))]
pub async fn issue_leaf_for_key(
    issuer: &IssuerInfo,
    signer: &dyn Signer,
    req: &LeafRequest,
    subject_spki_der: &[u8],
    now: OffsetDateTime,
) -> Result<IssuedCert, PkiError> {
    sign::check_issuer_key(issuer.spki_der(), signer)?;
    check_can_issue(issuer, now)?;
    let (params, _, not_before, not_after, clamped) = leaf_params(issuer, req, now)?;
    let subject_key = SpkiKey::from_spki(subject_spki_der).map_err(|e| {
        let mut errs = FieldErrors::default();
        errs.push("request", "", e.to_string());
        PkiError::Invalid(errs)
    })?;
    sign_cert(
        issuer,
        signer,
        params,
        &subject_key,
        (not_before, not_after, clamped),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn finish_leaf(
    issuer: &IssuerInfo,
    signer: &dyn Signer,
    req: &LeafRequest,
    mut params: CertificateParams,
    key_pair: rcgen::KeyPair,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    clamped: bool,
) -> Result<IssuedLeaf, PkiError> {
    let key = keys::encode(&key_pair, req.private_key.encoding)?;
    let (serial, serial_hex) = random_serial()?;
    params.serial_number = Some(serial);
    params.key_identifier_method = KeyIdMethod::PreSpecified(sign::key_id(&key_pair));
    let (placeholder, tbs) = build_tbs(&params, &key_pair, Some(issuer), signer)?;
    drop(key_pair);
    let cert_der = sign::finish(signer, &placeholder, &tbs).await?;
    if clamped {
        tracing::info!(%not_after, "certificate validity clamped to the issuer's notAfter");
    }
    Ok(IssuedLeaf {
        cert_pem: pem_cert(&cert_der),
        cert_der,
        key,
        serial_hex,
        not_before,
        not_after,
        clamped,
    })
}
