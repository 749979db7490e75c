//! Signing keys that never leave AWS KMS.
//!
//! * [`Signer`] is the seam between certificate building ([`crate::pki`]) and
//!   the place a CA key lives. Its contract (below) says what a signature
//!   looks like and which failures are worth retrying.
//! * [`AwsKms`] wraps an `aws-sdk-kms` client: it creates CA keys
//!   ([`AwsKms::create_key`]) or adopts existing ones ([`AwsKms::adopt_key`]),
//!   both returning a [`KmsSigner`].
//! * [`KmsSigner`] implements [`Signer`] with `MessageType=DIGEST`, bounded
//!   jittered retries, and local verification of every signature.
//!
//! * [`KeyManager`] is the seam for the CA key lifecycle (create, adopt,
//!   schedule deletion). The controllers hold an `Arc<dyn KeyManager>`;
//!   [`AwsKms`] is the production implementation and [`LocalKms`] runs
//!   reconcilers in-process in tests.
//! * [`Observed`] wraps any [`KeyManager`] and reports every call and every
//!   signature (operation, key spec, latency, outcome) to a
//!   [`KmsObserver`] — the metrics — so no caller records them itself.
//!
//! There is no code path that exports a private key: KMS asymmetric keys are
//! generated inside KMS, and this module only ever calls `CreateKey`,
//! `CreateAlias`, `DescribeKey`, `GetPublicKey`, `Sign` and
//! `ScheduleKeyDeletion`. No other module touches the AWS SDK.

mod aws;
mod error;
mod fenced;
pub mod local;
mod observed;
mod retry;
mod verify;

use std::sync::Arc;

pub use aws::{AwsKms, KeySpec, KmsSettings, KmsSigner, StaticCredentials};
pub use error::SignError;
pub use fenced::Fenced;
pub use local::{LocalKms, LocalSigner};
pub use observed::{
    ADOPT_KEY, CREATE_KEY, KmsObserver, Observed, SCHEDULE_KEY_DELETION, SIGN, SignCounter,
};
pub use retry::RetryPolicy;
pub use verify::verify_digest_signature;

/// Alias kept for readability at call sites that manage keys rather than sign.
pub type KmsError = SignError;

/// Signature algorithm a CA key signs with.
///
/// The digest algorithm is fixed by the variant; [`Signer::sign_digest`] takes
/// a digest of exactly [`SigAlg::digest_len`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ECDSA over NIST P-256 with SHA-256 (KMS `ECDSA_SHA_256`).
    EcdsaP256Sha256,
    /// ECDSA over NIST P-384 with SHA-384 (KMS `ECDSA_SHA_384`).
    EcdsaP384Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (KMS `RSASSA_PKCS1_V1_5_SHA_256`).
    RsaPkcs1Sha256,
}

impl SigAlg {
    /// The aws-lc-rs digest algorithm the signature is computed over.
    pub fn digest_algorithm(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            SigAlg::EcdsaP256Sha256 | SigAlg::RsaPkcs1Sha256 => &aws_lc_rs::digest::SHA256,
            SigAlg::EcdsaP384Sha384 => &aws_lc_rs::digest::SHA384,
        }
    }

    /// Length in bytes of the digest [`Signer::sign_digest`] expects.
    pub fn digest_len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    /// Hashes `message` with this algorithm's digest.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(self.digest_algorithm(), message)
            .as_ref()
            .to_vec()
    }

    /// A short stable name, e.g. for logs and status fields.
    pub fn as_str(self) -> &'static str {
        match self {
            SigAlg::EcdsaP256Sha256 => "ECDSA_SHA_256",
            SigAlg::EcdsaP384Sha384 => "ECDSA_SHA_384",
            SigAlg::RsaPkcs1Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
        }
    }
}

impl std::fmt::Display for SigAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key that signs digests on behalf of a CA. Object safe; use it as
/// `&dyn Signer` or `Arc<dyn Signer>`.
///
/// # Contract
///
/// * [`public_key_spki_der`](Signer::public_key_spki_der) is the DER
///   `SubjectPublicKeyInfo` of the key; it never changes for one signer.
/// * [`sign_digest`](Signer::sign_digest) takes the digest (not the message)
///   of the data to sign — SHA-256 or SHA-384 as given by
///   [`algorithm`](Signer::algorithm) — and returns the bytes that go into an
///   X.509 `signatureValue` BIT STRING: a DER `ECDSA-Sig-Value` for ECDSA, the
///   raw PKCS#1 v1.5 signature block for RSA.
/// * An implementation MUST verify the signature against
///   `public_key_spki_der` before returning it; a signature that does not
///   verify is reported as [`SignError::SignatureMismatch`] and never
///   returned.
/// * An implementation retries transient failures itself with a bounded,
///   jittered backoff. When it still returns an error, the caller decides by
///   [`SignError::is_retryable`]:
///   - retryable (`KMSUnavailable`, `KMSThrottled`, `KMSCredentialsUnavailable`):
///     requeue the work with a growing backoff; nothing is wrong with the spec
///     or the key;
///   - terminal (everything else, e.g. `KMSAccessDenied`, `KMSKeyDisabled`,
///     `KMSKeyNotFound`, `KMSWrongKeyUsage`, `SignatureMismatch`): a human has
///     to change something (IAM policy, key state, spec); wait for a change.
/// * [`SignError::reason`] is a bounded CamelCase category suitable as a
///   condition reason, Event reason and metric label.
/// * A call never blocks beyond the implementation's bounded timeouts.
#[async_trait::async_trait]
pub trait Signer: Send + Sync {
    /// DER `SubjectPublicKeyInfo` of the signing key.
    fn public_key_spki_der(&self) -> &[u8];
    /// Signature algorithm (and therefore digest) this key signs with.
    fn algorithm(&self) -> SigAlg;
    /// Identity of the key for logs and status (the KMS key ARN).
    fn key_arn(&self) -> &str;
    /// The key spec (curve or RSA size).
    fn key_spec(&self) -> KeySpec;
    /// Signs a digest; see the trait-level contract.
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError>;
}

impl std::fmt::Debug for dyn Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_arn())
    }
}

/// What scheduling a key's deletion found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionOutcome {
    /// The key is now pending deletion.
    Scheduled,
    /// It already was (a previous attempt, or a human).
    AlreadyPending,
    /// No such key (deleted already, or another account/region).
    NotFound,
}

/// Where CA keys live: create, adopt and retire them.
///
/// # Contract
///
/// * [`create_key`](KeyManager::create_key) is not idempotent: it creates a
///   key and points `alias` at it. When the alias exists already it creates
///   nothing and fails with [`SignError::AliasExists`] (adopt that key).
/// * [`adopt_key`](KeyManager::adopt_key) takes a key id, ARN, alias or alias
///   ARN and checks the key can sign (enabled, `SIGN_VERIFY`, supported spec).
/// * [`schedule_key_deletion`](KeyManager::schedule_key_deletion) is
///   idempotent; a key already pending deletion or gone is a typed outcome,
///   not an error.
/// * Errors follow the [`Signer`] contract's retry classes.
#[async_trait::async_trait]
pub trait KeyManager: Send + Sync {
    /// Creates a `SIGN_VERIFY` key of `spec` named `alias` (prefixed with the
    /// configured alias prefix unless it starts with `alias/`), tagged.
    async fn create_key(
        &self,
        spec: KeySpec,
        alias: &str,
        tags: &[(String, String)],
    ) -> Result<Arc<dyn Signer>, SignError>;
    /// Adopts an existing key.
    async fn adopt_key(&self, key: &str) -> Result<Arc<dyn Signer>, SignError>;
    /// Schedules the key's deletion after `pending_days` (7–30 in AWS).
    async fn schedule_key_deletion(
        &self,
        key: &str,
        pending_days: u8,
    ) -> Result<DeletionOutcome, SignError>;
}
