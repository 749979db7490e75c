//! The leader fence: whether this process may act as the one writer now.
//!
//! With leader election on, a replica may sign, write objects and write
//! the database only while its Lease is valid *by its own monotonic
//! clock*: every successful renewal opens the fence until the moment the
//! renewal request was sent plus the renew deadline (shorter than the lease
//! by a safety margin). A process that was paused (SIGSTOP, a frozen VM, a
//! long GC-like stall) wakes with the fence closed, because the monotonic
//! clock kept running while it slept, and refuses to act until it holds
//! the Lease again — whatever its tasks were doing when it stopped.
//!
//! Without leader election the fence is always open ([`Fence::open`]).
//! Lower layers (`kms`, `store`) take a `Fence` and ask [`Fence::check`]
//! before each write; they know nothing about Leases.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cloneable handle; all clones see the same deadline.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// `None`: unfenced (single replica). `Some(None)`: closed.
    until: Option<Arc<Mutex<Option<Instant>>>>,
}

/// Two fences are equal when they are the same fence (clones of one), or
/// both never close.
impl PartialEq for Fence {
    fn eq(&self, other: &Self) -> bool {
        match (&self.until, &other.until) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Fence {}

/// Why the fence refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "this replica's leader lease is not valid by its own clock ({why}); it does not sign or write until it holds the Lease again"
)]
pub struct FenceClosed {
    /// "never acquired", "lost", or how long ago it expired.
    pub why: String,
}

impl Fence {
    /// A fence that never closes (leader election off).
    pub fn open() -> Self {
        Fence { until: None }
    }

    /// A fence that starts closed and opens with [`Fence::extend_until`].
    pub fn leased() -> Self {
        Fence {
            until: Some(Arc::new(Mutex::new(None))),
        }
    }

    /// Opens the fence until `until` (never moves an open deadline back).
    pub fn extend_until(&self, until: Instant) {
        if let Some(slot) = &self.until {
            let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_none_or(|t| t < until) {
                *g = Some(until);
            }
        }
    }

    /// Closes the fence now (leadership lost or released).
    pub fn close(&self) {
        if let Some(slot) = &self.until {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// Ok while this process may act as the writer.
    pub fn check(&self) -> Result<(), FenceClosed> {
        let Some(slot) = &self.until else {
            return Ok(());
        };
        let until = *slot.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match until {
            Some(t) if now < t => Ok(()),
            Some(t) => Err(FenceClosed {
                why: format!("expired {:.1} s ago", (now - t).as_secs_f64()),
            }),
            None => Err(FenceClosed {
                why: "not the leader".into(),
            }),
        }
    }

    /// Whether [`Fence::check`] passes.
    pub fn is_open(&self) -> bool {
        self.check().is_ok()
    }

    /// How long the fence stays open from now (`None` when unfenced).
    pub fn remaining(&self) -> Option<Duration> {
        let slot = self.until.as_ref()?;
        let until = *slot.lock().unwrap_or_else(|p| p.into_inner());
        Some(until.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_unfenced_is_always_open() {
        let f = Fence::open();
        assert!(f.is_open());
        f.close();
        assert!(f.is_open(), "close() has no effect without leader election");
        assert_eq!(f.remaining(), None);
    }

    #[test]
    fn fence_leased_starts_closed_opens_on_extend_and_closes_at_the_deadline() {
        let f = Fence::leased();
        let e = f.check().unwrap_err();
        assert!(e.to_string().contains("not the leader"), "{e}");
        f.extend_until(Instant::now() + Duration::from_secs(60));
        assert!(f.clone().is_open(), "clones share the deadline");
        // An older deadline never shortens an open fence.
        f.extend_until(Instant::now());
        assert!(f.is_open());
        f.close();
        assert!(!f.is_open());
        f.extend_until(Instant::now() - Duration::from_secs(2));
        let e = f.check().unwrap_err();
        assert!(e.why.starts_with("expired"), "{e}");
    }
}
