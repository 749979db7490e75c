//! [`Fenced`]: a [`KeyManager`] wrapper that refuses every KMS call while
//! the leader fence is closed ([`crate::fence`]), and discards a signature
//! that came back after the fence closed, so a replica that lost its Lease
//! while a `Sign` was in flight never uses (publishes) what it got.

use std::sync::Arc;

use super::{DeletionOutcome, KeyManager, KeySpec, SigAlg, SignError, Signer};
use crate::fence::Fence;

/// A [`KeyManager`] whose calls, and whose signers' signatures, need an
/// open fence.
pub struct Fenced {
    inner: Arc<dyn KeyManager>,
    fence: Fence,
}

impl Fenced {
    /// Wraps `inner` behind `fence`.
    pub fn new(inner: Arc<dyn KeyManager>, fence: Fence) -> Self {
        Fenced { inner, fence }
    }
}

fn check(fence: &Fence, key: &str) -> Result<(), SignError> {
    fence.check().map_err(|e| SignError::NotLeader {
        key: key.to_string(),
        detail: e.to_string(),
    })
}

#[async_trait::async_trait]
impl KeyManager for Fenced {
    async fn create_key(
        &self,
        spec: KeySpec,
        alias: &str,
        tags: &[(String, String)],
    ) -> Result<Arc<dyn Signer>, SignError> {
        check(&self.fence, alias)?;
        let signer = self.inner.create_key(spec, alias, tags).await?;
        Ok(Arc::new(FencedSigner {
            inner: signer,
            fence: self.fence.clone(),
        }))
    }

    async fn adopt_key(&self, key: &str) -> Result<Arc<dyn Signer>, SignError> {
        check(&self.fence, key)?;
        let signer = self.inner.adopt_key(key).await?;
        Ok(Arc::new(FencedSigner {
            inner: signer,
            fence: self.fence.clone(),
        }))
    }

    async fn schedule_key_deletion(
        &self,
        key: &str,
        pending_days: u8,
    ) -> Result<DeletionOutcome, SignError> {
        check(&self.fence, key)?;
        self.inner.schedule_key_deletion(key, pending_days).await
    }
}

struct FencedSigner {
    inner: Arc<dyn Signer>,
    fence: Fence,
}

#[async_trait::async_trait]
impl Signer for FencedSigner {
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
        check(&self.fence, self.key_arn())?;
        let signature = self.inner.sign_digest(digest).await?;
        // Paused or partitioned while the call was in flight: the result
        // is dropped here, so nothing signed after the lease ran out is
        // ever written anywhere.
        check(&self.fence, self.key_arn())?;
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::LocalKms;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn fenced_kms_refuses_every_call_while_the_lease_is_not_valid() {
        let local = Arc::new(LocalKms::new());
        let fence = Fence::leased();
        let keys = Fenced::new(local.clone(), fence.clone());
        let spec = KeySpec::EccNistP256;
        let e = keys.create_key(spec, "alias/t/a", &[]).await.err().unwrap();
        assert_eq!(e.reason(), "NotLeader");
        assert!(e.is_retryable());
        fence.extend_until(Instant::now() + Duration::from_secs(60));
        let signer = keys.create_key(spec, "alias/t/a", &[]).await.unwrap();
        let digest = spec.sig_alg().digest(b"tbs");
        signer.sign_digest(&digest).await.unwrap();
        fence.close();
        let e = signer.sign_digest(&digest).await.unwrap_err();
        assert!(e.to_string().contains("not the leader"), "{e}");
        assert!(keys.adopt_key(signer.key_arn()).await.is_err());
    }
}
