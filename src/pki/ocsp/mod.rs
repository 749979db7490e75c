//! OCSP (RFC 6960, with the RFC 5019 profile for GET): the pure pieces an
//! HTTP responder needs.
//!
//! | step | function |
//! |---|---|
//! | GET path → DER | [`decode_get`] |
//! | DER → what is asked | [`parse_request`] → [`OcspRequest`] of [`CertId`]s + nonce |
//! | is it about this CA? | [`CertId::matches_issuer`] |
//! | answer | [`sign_response`]`(&`[`Responder`]`, &[`[`SingleAnswer`]`], nonce, now)` — one `Signer::sign_digest` |
//! | refuse | [`error_response`]`(`[`ErrorStatus`]`)` |
//! | responder key's certificate | [`issue_responder`] — one KMS `Sign` by the CA |
//!
//! A CA can answer with its own (KMS) key, or delegate to a responder key
//! held in memory ([`crate::kms::LocalSigner`]) whose certificate the CA
//! issued with id-kp-OCSPSigning and id-pkix-ocsp-nocheck, so answering
//! costs no KMS call.
//!
//! Request parsing lives in `request.rs`, which depends on nothing else in
//! Signet so that the fuzz target (`hack/fuzz`) compiles it alone.

mod request;
mod responder;
mod response;

pub use request::{
    CertId, HashAlgorithm, MAX_CERTS, MAX_EXTENSIONS, MAX_NONCE_LEN, MAX_REQUEST_LEN, OcspError,
    OcspRequest, decode_get, parse_request,
};
pub use responder::{DelegatedResponder, MAX_RESPONDER_VALIDITY, Responder, issue_responder};
pub use response::sign_response;

use time::OffsetDateTime;

use super::issuer::IssuerInfo;
use super::request::RevocationReason;

/// Hashes `data` with a CertID hash algorithm.
pub(crate) fn hash(alg: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest;
    let alg = match alg {
        HashAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlgorithm::Sha256 => &digest::SHA256,
        HashAlgorithm::Sha384 => &digest::SHA384,
        HashAlgorithm::Sha512 => &digest::SHA512,
    };
    digest::digest(alg, data).as_ref().to_vec()
}

impl CertId {
    /// Whether this CertID names a certificate issued by `issuer`: its
    /// issuerNameHash is the hash of the issuer certificate's subject
    /// (DER) and its issuerKeyHash the hash of the issuer's subjectPublicKey
    /// BIT STRING contents (RFC 6960 §4.1.1). The serial is not checked.
    pub fn matches_issuer(&self, issuer: &IssuerInfo) -> bool {
        let alg = self.hash_algorithm();
        self.issuer_name_hash() == hash(alg, issuer.subject_der()).as_slice()
            && self.issuer_key_hash() == hash(alg, issuer.public_key_bits()).as_slice()
    }
}

/// What the responder says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `at`; `reason` becomes the CRLReason (omitted for `None`
    /// and for `Unspecified`, as in the CRL).
    Revoked {
        /// revocationTime.
        at: OffsetDateTime,
        /// revocationReason.
        reason: Option<RevocationReason>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// The answer about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleAnswer {
    /// The CertID as asked (echoed byte for byte).
    pub cert_id: CertId,
    /// Its status.
    pub status: CertStatus,
    /// When the status was known to be correct (e.g. the time of the
    /// revocation data it was read from).
    pub this_update: OffsetDateTime,
    /// When newer information will be available; after `this_update`.
    /// RFC 5019 responders set it (clients cache until then).
    pub next_update: Option<OffsetDateTime>,
}

/// An unsuccessful `OCSPResponseStatus` (RFC 6960 §4.2.1): the response
/// carries no signed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// 1: the request could not be parsed (every [`OcspError`]).
    MalformedRequest,
    /// 2: the responder failed (e.g. signing failed terminally).
    InternalError,
    /// 3: try again later (e.g. revocation data not loaded yet, or a
    /// retryable signing failure).
    TryLater,
    /// 6: the responder does not answer for this CA (RFC 5019 §2.2.3).
    Unauthorized,
}

impl ErrorStatus {
    /// The `OCSPResponseStatus` code.
    pub fn code(self) -> u8 {
        match self {
            ErrorStatus::MalformedRequest => 1,
            ErrorStatus::InternalError => 2,
            ErrorStatus::TryLater => 3,
            ErrorStatus::Unauthorized => 6,
        }
    }
}

/// The DER `OCSPResponse` for an unsuccessful status:
/// `SEQUENCE { ENUMERATED status }` with no responseBytes.
pub fn error_response(status: ErrorStatus) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, status.code()]
}

#[cfg(test)]
mod tests;
