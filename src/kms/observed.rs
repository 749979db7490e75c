//! [`Observed`]: a [`KeyManager`] wrapper that reports every call — and
//! every signature of the signers it hands out — to a [`KmsObserver`]
//! (the metrics). Callers stay unaware: the controllers hold it as their
//! `Arc<dyn KeyManager>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DeletionOutcome, KeyManager, KeySpec, SigAlg, SignError, Signer};

/// Operation name of [`Signer::sign_digest`] (KMS `Sign`).
pub const SIGN: &str = "Sign";
/// Operation name of [`KeyManager::create_key`] (KMS `CreateKey` +
/// `CreateAlias` + `GetPublicKey`).
pub const CREATE_KEY: &str = "CreateKey";
/// Operation name of [`KeyManager::adopt_key`] (KMS `DescribeKey` +
/// `GetPublicKey`).
pub const ADOPT_KEY: &str = "AdoptKey";
/// Operation name of [`KeyManager::schedule_key_deletion`].
pub const SCHEDULE_KEY_DELETION: &str = "ScheduleKeyDeletion";

/// Told about every finished KMS call.
pub trait KmsObserver: Send + Sync {
    /// `operation` (one of [`SIGN`], [`CREATE_KEY`], [`ADOPT_KEY`],
    /// [`SCHEDULE_KEY_DELETION`]) on a key of `spec` (when known) took
    /// `took`, retries included, and ended with `result`.
    fn kms_call(
        &self,
        operation: &'static str,
        spec: Option<KeySpec>,
        took: Duration,
        result: Result<(), &SignError>,
    );
}

/// Counts the `Sign` calls it observes (benchmarks and tests that check a
/// KMS call budget).
#[derive(Debug, Default)]
pub struct SignCounter(std::sync::atomic::AtomicU64);

impl SignCounter {
    /// Signatures counted so far.
    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl KmsObserver for SignCounter {
    fn kms_call(
        &self,
        operation: &'static str,
        _spec: Option<KeySpec>,
        _took: Duration,
        _result: Result<(), &SignError>,
    ) {
        if operation == SIGN {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A [`KeyManager`] whose calls, and whose signers' signatures, are
/// reported to an observer.
pub struct Observed {
    inner: Arc<dyn KeyManager>,
    observer: Arc<dyn KmsObserver>,
}

impl Observed {
    /// Wraps `inner`, reporting to `observer`.
    pub fn new(inner: Arc<dyn KeyManager>, observer: Arc<dyn KmsObserver>) -> Self {
        Observed { inner, observer }
    }

    fn report<T>(
        &self,
        operation: &'static str,
        spec: Option<KeySpec>,
        start: Instant,
        res: &Result<T, SignError>,
    ) {
        let result = res.as_ref().map(|_| ());
        self.observer
            .kms_call(operation, spec, start.elapsed(), result);
    }

    fn wrap(&self, signer: Arc<dyn Signer>) -> Arc<dyn Signer> {
        Arc::new(ObservedSigner {
            inner: signer,
            observer: self.observer.clone(),
        })
    }
}

#[async_trait::async_trait]
impl KeyManager for Observed {
    async fn create_key(
        &self,
        spec: KeySpec,
        alias: &str,
        tags: &[(String, String)],
    ) -> Result<Arc<dyn Signer>, SignError> {
        let start = Instant::now();
        let res = self.inner.create_key(spec, alias, tags).await;
        self.report(CREATE_KEY, Some(spec), start, &res);
        res.map(|s| self.wrap(s))
    }

    async fn adopt_key(&self, key: &str) -> Result<Arc<dyn Signer>, SignError> {
        let start = Instant::now();
        let res = self.inner.adopt_key(key).await;
        let spec = res.as_ref().ok().map(|s| s.key_spec());
        self.report(ADOPT_KEY, spec, start, &res);
        res.map(|s| self.wrap(s))
    }

    async fn schedule_key_deletion(
        &self,
        key: &str,
        pending_days: u8,
    ) -> Result<DeletionOutcome, SignError> {
        let start = Instant::now();
        let res = self.inner.schedule_key_deletion(key, pending_days).await;
        self.report(SCHEDULE_KEY_DELETION, None, start, &res);
        res
    }
}

/// A signer whose signatures are reported.
struct ObservedSigner {
    inner: Arc<dyn Signer>,
    observer: Arc<dyn KmsObserver>,
}

#[async_trait::async_trait]
impl Signer for ObservedSigner {
    fn public_key_spki_der(&self) -> &[u8] {
        self.inner.public_key_spki_der()
    }
    fn algorithm(&self) -> SigAlg {
        self.inner.algorithm()
    }
    fn key_arn(&self) -> &str {
        self.inner.key_arn()
    }
    fn key_spec(&self) -> KeySpec {
        self.inner.key_spec()
    }
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let start = Instant::now();
        let res = self.inner.sign_digest(digest).await;
        let result = res.as_ref().map(|_| ());
        self.observer
            .kms_call(SIGN, Some(self.key_spec()), start.elapsed(), result);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::LocalKms;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Calls(Mutex<Vec<(&'static str, Option<KeySpec>, &'static str)>>);

    impl KmsObserver for Calls {
        fn kms_call(
            &self,
            operation: &'static str,
            spec: Option<KeySpec>,
            _took: Duration,
            result: Result<(), &SignError>,
        ) {
            let outcome = result.map_or_else(|e| e.reason(), |()| "Success");
            self.0.lock().unwrap().push((operation, spec, outcome));
        }
    }

    #[tokio::test]
    async fn every_call_and_every_signature_is_reported_with_its_outcome() {
        let local = Arc::new(LocalKms::new());
        let calls = Arc::new(Calls::default());
        let keys = Observed::new(local.clone(), calls.clone());
        let spec = KeySpec::EccNistP256;
        let signer = keys.create_key(spec, "alias/t/a", &[]).await.unwrap();
        let digest = spec.sig_alg().digest(b"tbs");
        signer.sign_digest(&digest).await.unwrap();
        let adopted = keys.adopt_key(signer.key_arn()).await.unwrap();
        local.set_unavailable(signer.key_arn(), true);
        assert!(adopted.sign_digest(&digest).await.is_err());
        assert!(keys.adopt_key("alias/t/missing").await.is_err());
        let got = calls.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (CREATE_KEY, Some(spec), "Success"),
                (SIGN, Some(spec), "Success"),
                (ADOPT_KEY, Some(spec), "Success"),
                (SIGN, Some(spec), "KMSUnavailable"),
                (ADOPT_KEY, None, "KMSKeyNotFound"),
            ]
        );
        assert_eq!(local.signatures(), 1);
    }
}
