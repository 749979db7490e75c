//! AWS KMS implementation of [`Signer`], plus CA key lifecycle (create/adopt).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec, Tag};

use super::verify::Verifier;
use super::{RetryPolicy, SigAlg, SignError, Signer};

/// Default alias prefix for keys Signet creates.
pub const DEFAULT_ALIAS_PREFIX: &str = "alias/signet/";

/// How to reach KMS. Credentials are never part of this: they come from the
/// default chain (env, shared profile, IRSA web identity, container/instance
/// metadata) unless a test passes [`StaticCredentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsSettings {
    /// AWS region; `None` uses the default chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Endpoint override (local-kms, LocalStack, VPC endpoint), e.g.
    /// `http://127.0.0.1:4599`.
    pub endpoint: Option<String>,
    /// Prefix prepended to alias names that do not start with `alias/`.
    pub alias_prefix: String,
    /// TCP connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP attempt (connect + request + response).
    pub attempt_timeout: Duration,
    /// Retries of retryable failures (throttling, 5xx, network).
    pub retry: RetryPolicy,
    /// The leader fence, checked once more just before each request goes
    /// on the wire (open by default).
    pub fence: crate::fence::Fence,
}

impl Default for KmsSettings {
    fn default() -> Self {
        KmsSettings {
            region: None,
            endpoint: None,
            alias_prefix: DEFAULT_ALIAS_PREFIX.to_string(),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            fence: crate::fence::Fence::open(),
        }
    }
}

/// Refuses to transmit any KMS request while the leader fence is closed:
/// the last check before the bytes leave, after request signing and
/// everything else that could take time (or be frozen mid-way).
#[derive(Debug)]
struct FenceInterceptor(crate::fence::Fence);

impl aws_sdk_kms::config::Intercept for FenceInterceptor {
    fn name(&self) -> &'static str {
        "SignetLeaderFence"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_kms::config::RuntimeComponents,
        _cfg: &mut aws_sdk_kms::config::ConfigBag,
    ) -> Result<(), aws_sdk_kms::error::BoxError> {
        self.0.check().map_err(Into::into)
    }
}

/// Explicit credentials, for tests and benchmarks against local-kms only.
/// Production uses the default credential chain.
#[derive(Clone)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never printed).
    pub secret_access_key: String,
    /// Optional session token (never printed).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// KMS key specs Signet can create and sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeySpec {
    /// `ECC_NIST_P256` — ECDSA with SHA-256 (default).
    #[default]
    EccNistP256,
    /// `ECC_NIST_P384` — ECDSA with SHA-384.
    EccNistP384,
    /// `RSA_2048` — RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa2048,
    /// `RSA_3072` — RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa3072,
    /// `RSA_4096` — RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa4096,
}

impl KeySpec {
    /// Every supported spec.
    pub const ALL: [KeySpec; 5] = [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
    ];

    /// The KMS name, e.g. `ECC_NIST_P256`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
        }
    }

    /// Signature algorithm used with keys of this spec.
    pub fn sig_alg(self) -> SigAlg {
        match self {
            KeySpec::EccNistP256 => SigAlg::EcdsaP256Sha256,
            KeySpec::EccNistP384 => SigAlg::EcdsaP384Sha384,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => SigAlg::RsaPkcs1Sha256,
        }
    }

    fn to_sdk(self) -> aws_sdk_kms::types::KeySpec {
        use aws_sdk_kms::types::KeySpec as K;
        match self {
            KeySpec::EccNistP256 => K::EccNistP256,
            KeySpec::EccNistP384 => K::EccNistP384,
            KeySpec::Rsa2048 => K::Rsa2048,
            KeySpec::Rsa3072 => K::Rsa3072,
            KeySpec::Rsa4096 => K::Rsa4096,
        }
    }

    fn from_sdk(spec: &aws_sdk_kms::types::KeySpec) -> Option<Self> {
        KeySpec::ALL
            .into_iter()
            .find(|s| s.as_str() == spec.as_str())
    }
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeySpec {
    type Err = SignError;
    /// Parses the KMS name (`ECC_NIST_P256`, ...); anything else is
    /// [`SignError::UnsupportedKeySpec`].
    fn from_str(s: &str) -> Result<Self, SignError> {
        KeySpec::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| SignError::UnsupportedKeySpec {
                key: String::new(),
                spec: s.to_string(),
            })
    }
}

fn signing_algorithm(alg: SigAlg) -> SigningAlgorithmSpec {
    match alg {
        SigAlg::EcdsaP256Sha256 => SigningAlgorithmSpec::EcdsaSha256,
        SigAlg::EcdsaP384Sha384 => SigningAlgorithmSpec::EcdsaSha384,
        SigAlg::RsaPkcs1Sha256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
    }
}

/// A KMS client plus Signet's key lifecycle operations.
#[derive(Clone, Debug)]
pub struct AwsKms {
    client: Client,
    alias_prefix: String,
    retry: RetryPolicy,
}

impl AwsKms {
    /// Builds a client from the default credential chain (env, profile, IRSA
    /// web identity, ECS/EC2 metadata). Fails with [`SignError::Config`] when
    /// no region is known or the endpoint is not an http(s) URL.
    pub async fn new(settings: KmsSettings) -> Result<Self, SignError> {
        Self::build(settings, None).await
    }

    /// Builds a client with explicit credentials (tests and benchmarks
    /// against local-kms; local-kms accepts any, e.g. `test`/`test`).
    pub async fn with_static_credentials(
        settings: KmsSettings,
        credentials: StaticCredentials,
    ) -> Result<Self, SignError> {
        Self::build(settings, Some(credentials)).await
    }

    /// Wraps an already configured client (its own retry/timeouts apply in
    /// addition to `retry`).
    pub fn from_client(client: Client, alias_prefix: &str, retry: RetryPolicy) -> Self {
        AwsKms {
            client,
            alias_prefix: alias_prefix.to_string(),
            retry,
        }
    }

    async fn build(
        settings: KmsSettings,
        credentials: Option<StaticCredentials>,
    ) -> Result<Self, SignError> {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;

        if let Some(ep) = &settings.endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            return Err(SignError::Config {
                detail: format!("endpoint {ep:?} must start with http:// or https://"),
            });
        }
        // Our own RetryPolicy is the only retry layer, so that attempts and
        // classification are explicit; the SDK makes exactly one attempt.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(settings.connect_timeout)
            .operation_attempt_timeout(settings.attempt_timeout)
            .operation_timeout(settings.attempt_timeout + settings.connect_timeout)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled());
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(ep) = &settings.endpoint {
            loader = loader.endpoint_url(ep.clone());
        }
        if let Some(c) = credentials {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                c.access_key_id,
                c.secret_access_key,
                c.session_token,
                None,
                "signet-static",
            ));
        }
        let conf = loader.load().await;
        if conf.region().is_none() {
            return Err(SignError::Config {
                detail: "no AWS region: set the KMS region setting or AWS_REGION".into(),
            });
        }
        let config = aws_sdk_kms::config::Builder::from(&conf)
            .interceptor(FenceInterceptor(settings.fence.clone()))
            .build();
        Ok(AwsKms {
            client: Client::from_conf(config),
            alias_prefix: settings.alias_prefix,
            retry: settings.retry,
        })
    }

    /// The underlying SDK client (for tests and tooling; it cannot export
    /// asymmetric private keys — KMS has no such API).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Full alias for `name`: `name` itself when it starts with `alias/`,
    /// otherwise the configured prefix + `name`.
    pub fn alias_for(&self, name: &str) -> String {
        if name.starts_with("alias/") {
            name.to_string()
        } else {
            format!("{}{}", self.alias_prefix, name)
        }
    }

    /// Creates a `SIGN_VERIFY` key of `spec` in KMS, points `alias_name`
    /// (prefixed with the alias prefix unless it starts with `alias/`) at it,
    /// tags it, and returns its signer.
    ///
    /// Fails with [`SignError::AliasExists`] before creating anything when
    /// the alias is taken (adopt that key instead). If the alias cannot be
    /// created after the key was, the key is scheduled for deletion (7 days)
    /// so no unnamed key is left behind.
    #[tracing::instrument(skip(self, tags), fields(spec = %spec))]
    pub async fn create_key(
        &self,
        spec: KeySpec,
        alias_name: &str,
        tags: &[(String, String)],
    ) -> Result<KmsSigner, SignError> {
        let alias = self.alias_for(alias_name);
        validate_alias(&alias)?;

        match self.describe(&alias).await {
            Ok(_) => return Err(SignError::AliasExists { alias }),
            Err(SignError::KeyNotFound { .. }) => {}
            Err(e) => return Err(e),
        }

        let mut kms_tags = Vec::with_capacity(tags.len());
        for (k, v) in tags {
            let tag = Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| SignError::Config {
                    detail: format!("tag {k:?}: {e}"),
                })?;
            kms_tags.push(tag);
        }

        // CreateKey is not idempotent: retry only when the request surely
        // did not reach KMS (throttled, or the connection failed).
        let created = self
            .retry
            .run("CreateKey", || async {
                self.client
                    .create_key()
                    .key_usage(KeyUsageType::SignVerify)
                    .key_spec(spec.to_sdk())
                    .description(format!("Signet CA key {alias}"))
                    .set_tags(Some(kms_tags.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        let unsent = matches!(
                            &e,
                            SdkError::DispatchFailure(d) if d.is_io() && !d.is_timeout()
                        );
                        match classify(e, "") {
                            e @ SignError::Throttled { .. } => e,
                            e @ SignError::Unavailable { .. } if unsent => e,
                            SignError::Unavailable { key, detail } => SignError::Kms {
                                key,
                                code: "CreateKeyOutcomeUnknown".into(),
                                detail: format!(
                                    "{detail}; the key may have been created without an alias"
                                ),
                            },
                            e => e,
                        }
                    })
            })
            .await?;
        let meta = created.key_metadata().ok_or_else(|| SignError::Kms {
            key: alias.clone(),
            code: "MissingKeyMetadata".into(),
            detail: "CreateKey returned no key metadata".into(),
        })?;
        let key_id = meta.key_id().to_string();
        tracing::info!(key_id, alias, "created KMS key");

        let aliased = self
            .retry
            .run("CreateAlias", || async {
                self.client
                    .create_alias()
                    .alias_name(&alias)
                    .target_key_id(&key_id)
                    .send()
                    .await
                    .map_err(|e| match classify(e, &alias) {
                        SignError::KeyNotFound { .. } => SignError::Kms {
                            key: key_id.clone(),
                            code: "NotFoundException".into(),
                            detail: "new key not visible yet".into(),
                        },
                        e => e,
                    })
            })
            .await;
        if let Err(e) = aliased {
            let e = match e {
                SignError::AliasExists { .. } => SignError::AliasExists {
                    alias: alias.clone(),
                },
                e => e,
            };
            let _ = self
                .client
                .schedule_key_deletion()
                .key_id(&key_id)
                .pending_window_in_days(7)
                .send()
                .await;
            tracing::warn!(
                key_id,
                alias,
                "alias creation failed; key scheduled for deletion: {e}"
            );
            return Err(e);
        }
        self.adopt_key(&key_id).await
    }

    /// Adopts an existing key by key id, key ARN, alias name (`alias/...`) or
    /// alias ARN: checks that it is enabled and `SIGN_VERIFY` with a
    /// supported spec, fetches its public key, and returns its signer.
    #[tracing::instrument(skip(self))]
    pub async fn adopt_key(&self, key: &str) -> Result<KmsSigner, SignError> {
        if key.trim().is_empty() {
            return Err(SignError::KeyNotFound { key: key.into() });
        }
        let meta = self.describe(key).await?;
        let arn = meta.arn().unwrap_or(meta.key_id()).to_string();
        let state = meta.key_state().cloned();
        if !meta.enabled() || state.as_ref().is_some_and(|s| *s != KeyState::Enabled) {
            return Err(SignError::KeyDisabled {
                key: key.into(),
                state: state
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "Disabled".into()),
            });
        }
        match meta.key_usage() {
            Some(KeyUsageType::SignVerify) => {}
            other => {
                return Err(SignError::WrongKeyUsage {
                    key: key.into(),
                    usage: other.map(|u| u.as_str()).unwrap_or("unknown").into(),
                });
            }
        }
        let spec = meta.key_spec().and_then(KeySpec::from_sdk).ok_or_else(|| {
            SignError::UnsupportedKeySpec {
                key: key.into(),
                spec: meta
                    .key_spec()
                    .map(|s| s.as_str())
                    .unwrap_or("unknown")
                    .into(),
            }
        })?;

        let pk = self
            .retry
            .run("GetPublicKey", || async {
                self.client
                    .get_public_key()
                    .key_id(&arn)
                    .send()
                    .await
                    .map_err(|e| classify(e, key))
            })
            .await?;
        let spki = pk
            .public_key()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| SignError::Kms {
                key: key.into(),
                code: "MissingPublicKey".into(),
                detail: "GetPublicKey returned no key".into(),
            })?;
        KmsSigner::new(
            self.client.clone(),
            arn,
            meta.key_id().into(),
            spec,
            spki,
            self.retry,
        )
    }

    /// Schedules deletion of `key` after `pending_days` (KMS allows 7–30).
    /// A key already pending deletion or not found is a typed outcome.
    pub async fn schedule_deletion(
        &self,
        key: &str,
        pending_days: u8,
    ) -> Result<super::DeletionOutcome, SignError> {
        let res = self
            .retry
            .run("ScheduleKeyDeletion", || async {
                self.client
                    .schedule_key_deletion()
                    .key_id(key)
                    .pending_window_in_days(i32::from(pending_days))
                    .send()
                    .await
                    .map_err(|e| classify(e, key))
            })
            .await;
        match res {
            Ok(_) => Ok(super::DeletionOutcome::Scheduled),
            Err(SignError::KeyDisabled { .. }) => Ok(super::DeletionOutcome::AlreadyPending),
            Err(SignError::KeyNotFound { .. }) => Ok(super::DeletionOutcome::NotFound),
            Err(e) => Err(e),
        }
    }

    async fn describe(&self, key: &str) -> Result<aws_sdk_kms::types::KeyMetadata, SignError> {
        let out = self
            .retry
            .run("DescribeKey", || async {
                self.client
                    .describe_key()
                    .key_id(key)
                    .send()
                    .await
                    .map_err(|e| classify(e, key))
            })
            .await?;
        out.key_metadata().cloned().ok_or_else(|| SignError::Kms {
            key: key.into(),
            code: "MissingKeyMetadata".into(),
            detail: "DescribeKey returned no key metadata".into(),
        })
    }
}

#[async_trait::async_trait]
impl super::KeyManager for AwsKms {
    async fn create_key(
        &self,
        spec: KeySpec,
        alias: &str,
        tags: &[(String, String)],
    ) -> Result<Arc<dyn Signer>, SignError> {
        Ok(Arc::new(AwsKms::create_key(self, spec, alias, tags).await?))
    }

    async fn adopt_key(&self, key: &str) -> Result<Arc<dyn Signer>, SignError> {
        Ok(Arc::new(AwsKms::adopt_key(self, key).await?))
    }

    async fn schedule_key_deletion(
        &self,
        key: &str,
        pending_days: u8,
    ) -> Result<super::DeletionOutcome, SignError> {
        self.schedule_deletion(key, pending_days).await
    }
}

fn validate_alias(alias: &str) -> Result<(), SignError> {
    let bad = |detail: &str| {
        Err(SignError::InvalidAlias {
            alias: alias.to_string(),
            detail: detail.to_string(),
        })
    };
    let Some(name) = alias.strip_prefix("alias/") else {
        return bad("must start with alias/");
    };
    if name.is_empty() {
        return bad("empty name after alias/");
    }
    if alias.len() > 256 {
        return bad("longer than 256 characters");
    }
    if alias.starts_with("alias/aws/") {
        return bad("the alias/aws/ prefix is reserved for AWS managed keys");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-')))
    {
        return bad(&format!(
            "character {c:?} not allowed (use letters, digits, '/', '_', '-')"
        ));
    }
    Ok(())
}

/// `err: cause: cause ...` from the error's Display and its sources
/// (without the Debug dump `DisplayErrorContext` appends).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Maps an SDK error onto Signet's categories. `key` names the key in
/// messages.
fn classify<E>(err: SdkError<E>, key: &str) -> SignError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let key = key.to_string();
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let detail = se
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| code.clone());
            let status = se.raw().status();
            match code.as_str() {
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded" => SignError::Throttled { key, detail },
                "KMSInternalException"
                | "DependencyTimeoutException"
                | "KeyUnavailableException"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "ServiceUnavailableException" => SignError::Unavailable { key, detail },
                "ExpiredTokenException" | "ExpiredToken" => {
                    SignError::CredentialsUnavailable { key, detail }
                }
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "InvalidClientTokenId"
                | "MissingAuthenticationToken" => SignError::AccessDenied { key, detail },
                "DisabledException" | "KMSInvalidStateException" => {
                    SignError::KeyDisabled { key, state: detail }
                }
                "NotFoundException" | "InvalidArnException" => SignError::KeyNotFound { key },
                "InvalidKeyUsageException" => SignError::WrongKeyUsage { key, usage: detail },
                "AlreadyExistsException" => SignError::AliasExists { alias: key },
                "InvalidAliasNameException" => SignError::InvalidAlias { alias: key, detail },
                "LimitExceededException" => SignError::LimitExceeded { detail },
                _ if status.is_server_error() => SignError::Unavailable {
                    key,
                    detail: format!("{code} (HTTP {}): {detail}", status.as_u16()),
                },
                _ => SignError::Kms { key, code, detail },
            }
        }
        SdkError::DispatchFailure(d) if d.is_user() => SignError::Config {
            detail: format!("request to KMS could not be sent: {}", error_chain(&err)),
        },
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            SignError::Unavailable {
                key,
                detail: error_chain(&err),
            }
        }
        SdkError::ConstructionFailure(_) => {
            let detail = error_chain(&err);
            if detail.contains("credentials") || detail.contains("identity") {
                SignError::CredentialsUnavailable { key, detail }
            } else {
                SignError::Config { detail }
            }
        }
        _ => {
            let detail = error_chain(&err);
            if detail.contains("credentials") || detail.contains("identity") {
                SignError::CredentialsUnavailable { key, detail }
            } else {
                SignError::Unavailable { key, detail }
            }
        }
    }
}

/// A KMS key that signs certificate and CRL digests. Cheap to clone; share
/// it across tasks.
///
/// Every [`Signer::sign_digest`] call sends exactly one logical `Sign`
/// request with `MessageType=DIGEST` (retried on transient failures per the
/// [`RetryPolicy`]) and verifies the returned signature locally with
/// aws-lc-rs before handing it out.
#[derive(Clone)]
pub struct KmsSigner {
    client: Client,
    key_arn: String,
    key_id: String,
    spec: KeySpec,
    spki: Vec<u8>,
    verifier: Arc<Verifier>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner")
            .field("key_arn", &self.key_arn)
            .field("spec", &self.spec)
            .finish()
    }
}

impl KmsSigner {
    fn new(
        client: Client,
        key_arn: String,
        key_id: String,
        spec: KeySpec,
        spki: Vec<u8>,
        retry: RetryPolicy,
    ) -> Result<Self, SignError> {
        let verifier =
            Verifier::new(&spki, spec.sig_alg()).ok_or_else(|| SignError::UnsupportedKeySpec {
                key: key_arn.clone(),
                spec: format!("{spec} (public key does not parse as {spec})"),
            })?;
        Ok(KmsSigner {
            client,
            key_arn,
            key_id,
            spec,
            spki,
            verifier: Arc::new(verifier),
            retry,
        })
    }

    /// The KMS key id (UUID).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as PEM (`PUBLIC KEY`).
    pub fn public_key_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", self.spki.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
}

#[async_trait::async_trait]
impl Signer for KmsSigner {
    fn public_key_spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> SigAlg {
        self.spec.sig_alg()
    }

    fn key_arn(&self) -> &str {
        &self.key_arn
    }

    fn key_spec(&self) -> KeySpec {
        self.spec
    }

    #[tracing::instrument(skip_all, fields(key = %self.key_arn))]
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let alg = self.spec.sig_alg();
        if digest.len() != alg.digest_len() {
            return Err(SignError::InvalidDigest {
                alg: alg.as_str(),
                expected: alg.digest_len(),
                got: digest.len(),
            });
        }
        let out = self
            .retry
            .run("Sign", || async {
                self.client
                    .sign()
                    .key_id(&self.key_arn)
                    .message(Blob::new(digest))
                    .message_type(MessageType::Digest)
                    .signing_algorithm(signing_algorithm(alg))
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.key_arn))
            })
            .await?;
        let sig = out
            .signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| SignError::Kms {
                key: self.key_arn.clone(),
                code: "MissingSignature".into(),
                detail: "Sign returned no signature".into(),
            })?;
        if !self.verifier.verify(digest, &sig) {
            tracing::error!(key = %self.key_arn, "KMS signature failed local verification; discarded");
            return Err(SignError::SignatureMismatch {
                key: self.key_arn.clone(),
            });
        }
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_round_trip() {
        for s in KeySpec::ALL {
            assert_eq!(s.as_str().parse::<KeySpec>().ok(), Some(s));
            assert_eq!(KeySpec::from_sdk(&s.to_sdk()), Some(s));
        }
        let e = "ECC_NIST_P521".parse::<KeySpec>().err();
        assert!(matches!(e, Some(SignError::UnsupportedKeySpec { .. })));
        assert_eq!(KeySpec::default(), KeySpec::EccNistP256);
    }

    #[test]
    fn alias_validation() {
        assert!(validate_alias("alias/signet/root-ca").is_ok());
        assert!(validate_alias("alias/aws/x").is_err());
        assert!(validate_alias("alias/").is_err());
        assert!(validate_alias("signet/x").is_err());
        assert!(validate_alias("alias/a b").is_err());
    }

    #[test]
    fn static_credentials_debug_is_redacted() {
        let c = StaticCredentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("tok".into()),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("very-secret") && !s.contains("tok"));
    }
}
