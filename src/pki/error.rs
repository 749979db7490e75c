//! PKI failures with a category.

use time::OffsetDateTime;

use super::validate::FieldErrors;
use crate::kms::SignError;

/// Why a certificate or CRL could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The request is invalid; every problem names its field. Terminal until
    /// the spec changes.
    #[error("invalid request: {0}")]
    Invalid(FieldErrors),
    /// The issuer certificate has expired (or expires before anything can be
    /// issued). Terminal: renew the CA.
    #[error("issuer certificate expired at {not_after}; renew the CA before issuing")]
    IssuerExpired {
        /// Issuer notAfter.
        not_after: OffsetDateTime,
    },
    /// The issuer certificate is not valid yet (clock skew?). Retryable.
    #[error("issuer certificate is not valid before {not_before}; check the clock")]
    IssuerNotYetValid {
        /// Issuer notBefore.
        not_before: OffsetDateTime,
    },
    /// The issuer certificate cannot issue this artifact (not a CA, no
    /// keyCertSign/cRLSign, pathLen exhausted). Terminal.
    #[error("issuer cannot issue this: {0}")]
    IssuerNotAllowed(String),
    /// The signer's public key is not the issuer certificate's key. Terminal.
    #[error("signer key {key} does not match the issuer certificate's public key")]
    IssuerKeyMismatch {
        /// Signer key ARN.
        key: String,
    },
    /// The issuer certificate could not be parsed or lacks a needed field.
    #[error("issuer certificate unusable: {0}")]
    InvalidIssuer(String),
    /// A delegated OCSP responder certificate cannot sign for this CA (not
    /// issued by it, another key, no id-kp-OCSPSigning, outside its
    /// validity). Terminal: issue a new responder certificate.
    #[error("OCSP responder certificate unusable: {0}")]
    InvalidResponder(String),
    /// KMS signing failed; see [`SignError`] for the retry class.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Key generation failed (should not happen).
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    /// DER encoding failed (should not happen).
    #[error("encoding failed: {0}")]
    Encoding(String),
}

impl PkiError {
    /// Whether retrying later can succeed without a spec change.
    pub fn is_retryable(&self) -> bool {
        match self {
            PkiError::Sign(e) => e.is_retryable(),
            PkiError::IssuerNotYetValid { .. } => true,
            _ => false,
        }
    }

    /// Bounded CamelCase category for condition reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PkiError::Invalid(_) => "InvalidRequest",
            PkiError::IssuerExpired { .. } => "IssuerExpired",
            PkiError::IssuerNotYetValid { .. } => "IssuerNotYetValid",
            PkiError::IssuerNotAllowed(_) => "IssuerNotAllowed",
            PkiError::IssuerKeyMismatch { .. } => "IssuerKeyMismatch",
            PkiError::InvalidIssuer(_) => "InvalidIssuer",
            PkiError::InvalidResponder(_) => "InvalidResponder",
            PkiError::Sign(e) => e.reason(),
            PkiError::KeyGeneration(_) => "KeyGenerationFailed",
            PkiError::Encoding(_) => "EncodingFailed",
        }
    }

    /// The field problems when this is [`PkiError::Invalid`].
    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            PkiError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Encoding(e.to_string())
    }
}
