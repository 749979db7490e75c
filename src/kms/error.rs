//! Typed KMS failures with a retry class and a bounded reason.

/// Why a KMS operation (sign, create, adopt) failed.
///
/// Messages carry the key id and what to do; they never carry secrets.
/// See [`SignError::is_retryable`] and [`SignError::reason`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// KMS could not be reached or answered with a server-side failure
    /// (connection refused, timeout, 5xx, `KMSInternalException`,
    /// `DependencyTimeoutException`, `KeyUnavailableException`). Retryable.
    #[error("KMS unavailable for key {key}: {detail}")]
    Unavailable {
        /// Key id, ARN or alias the call was about (may be empty for CreateKey).
        key: String,
        /// What went wrong, for humans.
        detail: String,
    },
    /// KMS throttled the request (`ThrottlingException`). Retryable.
    #[error("KMS throttled requests for key {key}: {detail}")]
    Throttled {
        /// Key id, ARN or alias.
        key: String,
        /// KMS message.
        detail: String,
    },
    /// Credentials could not be loaded or have expired (IRSA token refresh,
    /// profile, env). Retryable: a refreshed token usually fixes it.
    #[error("AWS credentials unavailable for KMS key {key}: {detail}")]
    CredentialsUnavailable {
        /// Key id, ARN or alias.
        key: String,
        /// What went wrong.
        detail: String,
    },
    /// The caller is not allowed to use the key (`AccessDeniedException`,
    /// `UnrecognizedClientException`, bad request signature). Terminal: fix
    /// the IAM or key policy.
    #[error(
        "access denied to KMS key {key}: {detail} (grant kms:Sign, kms:GetPublicKey and kms:DescribeKey)"
    )]
    AccessDenied {
        /// Key id, ARN or alias.
        key: String,
        /// KMS message.
        detail: String,
    },
    /// The key exists but cannot sign: disabled, pending deletion, pending
    /// import. Terminal: enable the key or choose another.
    #[error("KMS key {key} cannot be used: {state} (enable the key or point to another one)")]
    KeyDisabled {
        /// Key id, ARN or alias.
        key: String,
        /// Key state or KMS message.
        state: String,
    },
    /// No key with this id, ARN or alias. Terminal.
    #[error("KMS key {key} not found (check the key id, ARN or alias and the region)")]
    KeyNotFound {
        /// Key id, ARN or alias.
        key: String,
    },
    /// The key's usage is not `SIGN_VERIFY` (e.g. `ENCRYPT_DECRYPT`). Terminal.
    #[error("KMS key {key} has key usage {usage}; a CA key needs SIGN_VERIFY")]
    WrongKeyUsage {
        /// Key id, ARN or alias.
        key: String,
        /// The usage KMS reported.
        usage: String,
    },
    /// The key spec is not one Signet can sign certificates with. Terminal.
    #[error(
        "KMS key {key} has key spec {spec}; supported: ECC_NIST_P256, ECC_NIST_P384, RSA_2048, RSA_3072, RSA_4096"
    )]
    UnsupportedKeySpec {
        /// Key id, ARN or alias.
        key: String,
        /// The spec KMS reported or the caller asked for.
        spec: String,
    },
    /// The alias to create already exists. Terminal: adopt that key instead.
    #[error(
        "KMS alias {alias} already exists (adopt the key it points to, or choose another name)"
    )]
    AliasExists {
        /// Full alias name.
        alias: String,
    },
    /// The alias name is malformed. Terminal.
    #[error("invalid KMS alias {alias:?}: {detail}")]
    InvalidAlias {
        /// Full alias name.
        alias: String,
        /// Why.
        detail: String,
    },
    /// This replica's leader lease is not valid by its own clock, so it
    /// does not sign ([`crate::fence`]). Retryable: the replica that holds
    /// the Lease does the work.
    #[error("not signing with KMS key {key}: {detail}")]
    NotLeader {
        /// Key id, ARN or alias.
        key: String,
        /// Why the fence is closed.
        detail: String,
    },
    /// A KMS quota was hit (e.g. number of keys). Terminal until raised.
    #[error("KMS limit exceeded: {detail}")]
    LimitExceeded {
        /// KMS message.
        detail: String,
    },
    /// The signature KMS returned does not verify against the key's public
    /// key. It was discarded. Terminal: the key or the cached public key is
    /// not what it should be; investigate before issuing more.
    #[error("signature from KMS key {key} does not verify against its public key; discarded")]
    SignatureMismatch {
        /// Key ARN.
        key: String,
    },
    /// The digest handed to `sign_digest` has the wrong length (caller bug).
    #[error("digest for {alg} must be {expected} bytes, got {got}")]
    InvalidDigest {
        /// Algorithm name.
        alg: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The client is misconfigured (no region, bad endpoint URL). Terminal.
    #[error("KMS client configuration: {detail}")]
    Config {
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// Any other KMS error, with its code. Terminal.
    #[error("KMS error {code} for key {key}: {detail}")]
    Kms {
        /// Key id, ARN or alias.
        key: String,
        /// KMS error code (bounded set, but not one we classify).
        code: String,
        /// KMS message.
        detail: String,
    },
}

impl SignError {
    /// Whether retrying the same call later can succeed without anyone
    /// changing anything. Controllers requeue with backoff when `true` and
    /// wait for a spec or key change when `false`.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SignError::Unavailable { .. }
                | SignError::Throttled { .. }
                | SignError::CredentialsUnavailable { .. }
                | SignError::NotLeader { .. }
        )
    }

    /// Bounded CamelCase category for condition reasons, Events and metric
    /// labels. Never contains object names.
    pub fn reason(&self) -> &'static str {
        match self {
            SignError::Unavailable { .. } => "KMSUnavailable",
            SignError::Throttled { .. } => "KMSThrottled",
            SignError::CredentialsUnavailable { .. } => "KMSCredentialsUnavailable",
            SignError::AccessDenied { .. } => "KMSAccessDenied",
            SignError::KeyDisabled { .. } => "KMSKeyDisabled",
            SignError::KeyNotFound { .. } => "KMSKeyNotFound",
            SignError::WrongKeyUsage { .. } => "KMSWrongKeyUsage",
            SignError::UnsupportedKeySpec { .. } => "KMSUnsupportedKeySpec",
            SignError::AliasExists { .. } => "KMSAliasExists",
            SignError::InvalidAlias { .. } => "KMSInvalidAlias",
            SignError::LimitExceeded { .. } => "KMSLimitExceeded",
            SignError::NotLeader { .. } => "NotLeader",
            SignError::SignatureMismatch { .. } => "SignatureMismatch",
            SignError::InvalidDigest { .. } => "InvalidDigest",
            SignError::Config { .. } => "KMSConfig",
            SignError::Kms { .. } => "KMSError",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        let k = || "alias/signet/x".to_string();
        let retryable = [
            SignError::Unavailable {
                key: k(),
                detail: "connection refused".into(),
            },
            SignError::Throttled {
                key: k(),
                detail: String::new(),
            },
            SignError::CredentialsUnavailable {
                key: k(),
                detail: String::new(),
            },
        ];
        for e in &retryable {
            assert!(e.is_retryable(), "{e}");
        }
        let terminal = [
            SignError::AccessDenied {
                key: k(),
                detail: String::new(),
            },
            SignError::KeyDisabled {
                key: k(),
                state: "Disabled".into(),
            },
            SignError::KeyNotFound { key: k() },
            SignError::WrongKeyUsage {
                key: k(),
                usage: "ENCRYPT_DECRYPT".into(),
            },
            SignError::SignatureMismatch { key: k() },
        ];
        for e in &terminal {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn reasons_are_camel_case_without_spaces() {
        let e = SignError::KeyNotFound {
            key: "alias/signet/a b".into(),
        };
        assert_eq!(e.reason(), "KMSKeyNotFound");
        assert!(!e.reason().contains(' '));
    }
}
