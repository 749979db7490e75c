//! Bounded, jittered exponential backoff for KMS calls.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::SignError;

/// How often and how long to retry a retryable KMS failure.
///
/// Full-jitter exponential backoff: before attempt `n` (n ≥ 1) sleep a
/// uniformly random time in `[0, min(max_delay, base_delay · 2^(n-1))]`.
/// With the defaults (4 attempts, 100 ms base, 2 s cap) a call that keeps
/// failing gives up after at most 0.1 + 0.2 + 0.4 = 0.7 s of sleeping plus
/// the per-attempt timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (≥ 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt (upper bound of the jitter window).
    pub base_delay: Duration,
    /// Largest backoff window.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (one attempt).
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Upper bound of the jitter window before attempt `attempt` (1-based
    /// count of retries already done).
    pub fn window(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails terminally, or attempts run out.
    /// Returns the last error.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, SignError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SignError>>,
    {
        let attempts = self.max_attempts.max(1);
        let mut retry = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && retry + 1 < attempts => {
                    retry += 1;
                    let window = self.window(retry);
                    let sleep = if window.is_zero() {
                        Duration::ZERO
                    } else {
                        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
                        Duration::from_nanos(rand::rng().random_range(0..=nanos))
                    };
                    tracing::debug!(
                        op = what,
                        reason = e.reason(),
                        retry,
                        sleep_ms = sleep.as_millis() as u64,
                        "retrying KMS call: {e}"
                    );
                    tokio::time::sleep(sleep).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn windows_grow_and_are_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.window(1), Duration::from_millis(100));
        assert_eq!(p.window(2), Duration::from_millis(200));
        assert_eq!(p.window(3), Duration::from_millis(400));
        assert_eq!(p.window(10), Duration::from_secs(2));
        assert_eq!(p.window(1000), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn retries_retryable_errors_a_bounded_number_of_times() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let r: Result<(), _> = p
            .run("test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(SignError::Throttled {
                        key: "k".into(),
                        detail: String::new(),
                    })
                }
            })
            .await;
        assert!(matches!(r, Err(SignError::Throttled { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn terminal_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = RetryPolicy::default()
            .run("test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(SignError::KeyNotFound { key: "k".into() }) }
            })
            .await;
        assert!(matches!(r, Err(SignError::KeyNotFound { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn success_after_a_transient_failure() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let r = p
            .run("test", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(SignError::Unavailable {
                            key: "k".into(),
                            detail: "refused".into(),
                        })
                    } else {
                        Ok(7)
                    }
                }
            })
            .await;
        assert_eq!(r.ok(), Some(7));
    }
}
