//! Keys held in this process's memory: [`LocalSigner`] and [`LocalKms`].
//!
//! Two uses, both deliberate:
//! * OCSP responder keys. A delegated responder certificate (issued by the CA
//!   through KMS) lets Signet answer OCSP queries without a KMS call per
//!   answer. Its key is generated here, lives only in memory, and is replaced
//!   with the certificate; it is never written anywhere.
//! * Running reconcilers in-process in tests with [`LocalKms`] standing in
//!   for AWS KMS. CA keys in production always live in KMS
//!   ([`AwsKms`](super::AwsKms)); nothing in `signet run` constructs a
//!   [`LocalKms`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::Digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};

use super::{DeletionOutcome, KeyManager, KeySpec, SigAlg, SignError, Signer};

enum Key {
    Ec(EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

/// A signing key generated in memory. Its private half is never exported:
/// there is no accessor for it, and `Debug` prints only the id.
pub struct LocalSigner {
    key: Key,
    spki: Vec<u8>,
    spec: KeySpec,
    id: String,
    corrupt: bool,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner")
            .field("id", &self.id)
            .field("spec", &self.spec)
            .finish()
    }
}

impl LocalSigner {
    /// Generates a key of `spec`, identified as `id` in logs and status.
    pub fn generate(spec: KeySpec, id: impl Into<String>) -> Result<Self, SignError> {
        let fail = |what: &str| SignError::Kms {
            key: String::new(),
            code: "LocalKeyGeneration".into(),
            detail: format!("generating a {spec} key in memory failed: {what}"),
        };
        let (key, spki) = match spec {
            KeySpec::EccNistP256 | KeySpec::EccNistP384 => {
                let alg = if spec == KeySpec::EccNistP256 {
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let k = EcdsaKeyPair::generate(alg).map_err(|_| fail("ECDSA"))?;
                let spki = k
                    .public_key()
                    .as_der()
                    .map_err(|_| fail("public key"))?
                    .as_ref()
                    .to_vec();
                (Key::Ec(k), spki)
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let size = match spec {
                    KeySpec::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    KeySpec::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    _ => aws_lc_rs::rsa::KeySize::Rsa4096,
                };
                let k = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| fail("RSA"))?;
                let spki = k
                    .public_key()
                    .as_der()
                    .map_err(|_| fail("public key"))?
                    .as_ref()
                    .to_vec();
                (Key::Rsa(k), spki)
            }
        };
        Ok(LocalSigner {
            key,
            spki,
            spec,
            id: id.into(),
            corrupt: false,
        })
    }

    /// A signer whose signatures are corrupted before verification, to test
    /// that a bad signature is never returned.
    pub fn corrupting(mut self) -> Self {
        self.corrupt = true;
        self
    }
}

#[async_trait::async_trait]
impl Signer for LocalSigner {
    fn public_key_spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn algorithm(&self) -> SigAlg {
        self.spec.sig_alg()
    }
    fn key_spec(&self) -> KeySpec {
        self.spec
    }
    fn key_arn(&self) -> &str {
        &self.id
    }
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let alg = self.algorithm();
        let d = Digest::import_less_safe(digest, alg.digest_algorithm()).map_err(|_| {
            SignError::InvalidDigest {
                alg: alg.as_str(),
                expected: alg.digest_len(),
                got: digest.len(),
            }
        })?;
        let failed = || SignError::Kms {
            key: self.id.clone(),
            code: "LocalSignFailed".into(),
            detail: "signing in memory failed".into(),
        };
        let mut sig = match &self.key {
            Key::Ec(k) => k.sign_digest(&d).map_err(|_| failed())?.as_ref().to_vec(),
            Key::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign_digest(&signature::RSA_PKCS1_SHA256, &d, &mut out)
                    .map_err(|_| failed())?;
                out
            }
        };
        if self.corrupt
            && let Some(last) = sig.last_mut()
        {
            *last ^= 1;
        }
        if !super::verify_digest_signature(&self.spki, alg, digest, &sig) {
            return Err(SignError::SignatureMismatch {
                key: self.id.clone(),
            });
        }
        Ok(sig)
    }
}

/// A [`LocalSigner`] that counts its signatures into a shared counter.
struct Counted {
    inner: LocalSigner,
    signs: Arc<AtomicU64>,
    own_signs: AtomicU64,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl Signer for Counted {
    fn public_key_spki_der(&self) -> &[u8] {
        self.inner.public_key_spki_der()
    }
    fn algorithm(&self) -> SigAlg {
        self.inner.algorithm()
    }
    fn key_spec(&self) -> KeySpec {
        self.inner.key_spec()
    }
    fn key_arn(&self) -> &str {
        self.inner.key_arn()
    }
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(SignError::Unavailable {
                key: self.inner.id.clone(),
                detail: "local key store switched off by the test".into(),
            });
        }
        self.signs.fetch_add(1, Ordering::Relaxed);
        self.own_signs.fetch_add(1, Ordering::Relaxed);
        self.inner.sign_digest(digest).await
    }
}

#[derive(Default)]
struct LocalState {
    keys: HashMap<String, (Arc<Counted>, bool)>,
    aliases: HashMap<String, String>,
}

/// An in-memory [`KeyManager`] for running reconcilers in tests. Keys get
/// ARN-shaped ids (`arn:signet:local:key/N`); aliases behave as in KMS
/// (creating a taken alias is [`SignError::AliasExists`]). A key scheduled
/// for deletion can no longer be adopted.
#[derive(Default)]
pub struct LocalKms {
    state: Mutex<LocalState>,
    next: AtomicU64,
    created: AtomicU64,
    signs: Arc<AtomicU64>,
}

impl LocalKms {
    /// An empty key store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys created so far (tests count spending).
    pub fn keys_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Signatures made so far by all keys (tests count spending).
    pub fn signatures(&self) -> u64 {
        self.signs.load(Ordering::Relaxed)
    }

    /// Signatures made so far by the key `arn`.
    pub fn signatures_of(&self, arn: &str) -> u64 {
        self.lock()
            .keys
            .get(arn)
            .map_or(0, |(k, _)| k.own_signs.load(Ordering::Relaxed))
    }

    /// Makes every signature of key `arn` fail as `KMSUnavailable`
    /// (retryable) until switched back, like a KMS outage for that key.
    pub fn set_unavailable(&self, arn: &str, down: bool) {
        if let Some((k, _)) = self.lock().keys.get(arn) {
            k.down.store(down, Ordering::Relaxed);
        }
    }

    /// Whether a key answers to `alias` (with or without `alias/signet/`).
    pub fn has_alias(&self, alias: &str) -> bool {
        let st = self.lock();
        st.aliases.contains_key(alias) || st.aliases.contains_key(&format!("alias/signet/{alias}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl KeyManager for LocalKms {
    async fn create_key(
        &self,
        spec: KeySpec,
        alias: &str,
        _tags: &[(String, String)],
    ) -> Result<Arc<dyn Signer>, SignError> {
        let alias = if alias.starts_with("alias/") {
            alias.to_string()
        } else {
            format!("alias/signet/{alias}")
        };
        if self.lock().aliases.contains_key(&alias) {
            return Err(SignError::AliasExists { alias });
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let arn = format!("arn:signet:local:key/{n}");
        let signer = Arc::new(Counted {
            inner: LocalSigner::generate(spec, arn.clone())?,
            signs: self.signs.clone(),
            own_signs: AtomicU64::new(0),
            down: AtomicBool::new(false),
        });
        let mut st = self.lock();
        st.keys.insert(arn.clone(), (signer.clone(), true));
        st.aliases.insert(alias, arn);
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(signer as Arc<dyn Signer>)
    }

    async fn adopt_key(&self, key: &str) -> Result<Arc<dyn Signer>, SignError> {
        let st = self.lock();
        let arn = st
            .aliases
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string());
        match st.keys.get(&arn) {
            Some((s, true)) => Ok(s.clone() as Arc<dyn Signer>),
            Some((_, false)) => Err(SignError::KeyDisabled {
                key: key.into(),
                state: "PendingDeletion".into(),
            }),
            None => Err(SignError::KeyNotFound { key: key.into() }),
        }
    }

    async fn schedule_key_deletion(
        &self,
        key: &str,
        _pending_days: u8,
    ) -> Result<DeletionOutcome, SignError> {
        let mut st = self.lock();
        Ok(match st.keys.get_mut(key) {
            Some((_, enabled @ true)) => {
                *enabled = false;
                DeletionOutcome::Scheduled
            }
            Some((_, false)) => DeletionOutcome::AlreadyPending,
            None => DeletionOutcome::NotFound,
        })
    }
}
