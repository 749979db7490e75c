//! Published state: what the controllers have signed and the HTTP side
//! serves (CRLs and CA certificates by name), plus the operator's
//! readiness. Controllers write it; `http` and `metrics` read it. It depends
//! on nothing else in the crate, so neither side imports the other.
//!
//! Entries are removed when their objects go: the controllers prune names
//! that are no longer in their caches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

/// A signed CRL as served at `/crl/<name>.crl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCrl {
    /// The CA that signed it.
    pub ca: String,
    /// DER.
    pub der: Arc<Vec<u8>>,
    /// cRLNumber.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
}

/// A CA certificate as served at `/ca/<name>.crt` (DER), `/ca/<name>.pem`
/// and `/ca/<name>/chain.pem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCa {
    /// The CA certificate (DER).
    pub cert_der: Arc<Vec<u8>>,
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// This CA's chain up to the root (PEM, this CA first).
    pub chain_pem: String,
}

/// Everything the HTTP side serves.
#[derive(Debug, Default)]
pub struct Published {
    crls: RwLock<HashMap<String, PublishedCrl>>,
    cas: RwLock<HashMap<String, PublishedCa>>,
    ready: AtomicBool,
    leader: AtomicBool,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Published {
    /// Empty state, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes (or replaces) the CRL of the CRL object `name`.
    pub fn put_crl(&self, name: &str, crl: PublishedCrl) {
        write(&self.crls).insert(name.to_string(), crl);
    }

    /// The CRL of the CRL object `name`.
    pub fn crl(&self, name: &str) -> Option<PublishedCrl> {
        read(&self.crls).get(name).cloned()
    }

    /// Names of the published CRLs.
    pub fn crl_names(&self) -> Vec<String> {
        read(&self.crls).keys().cloned().collect()
    }

    /// Keeps only the CRLs whose object names `keep` accepts.
    pub fn retain_crls(&self, keep: impl Fn(&str) -> bool) {
        write(&self.crls).retain(|k, _| keep(k));
    }

    /// Publishes (or replaces) the certificate of CA `name`.
    pub fn put_ca(&self, name: &str, ca: PublishedCa) {
        write(&self.cas).insert(name.to_string(), ca);
    }

    /// The certificate of CA `name`.
    pub fn ca(&self, name: &str) -> Option<PublishedCa> {
        read(&self.cas).get(name).cloned()
    }

    /// Names of the CAs with a published certificate.
    pub fn ca_names(&self) -> Vec<String> {
        read(&self.cas).keys().cloned().collect()
    }

    /// Keeps only the CAs whose names `keep` accepts.
    pub fn retain_cas(&self, keep: impl Fn(&str) -> bool) {
        write(&self.cas).retain(|k, _| keep(k));
    }

    /// Number of published CRLs and CA certificates.
    pub fn counts(&self) -> (usize, usize) {
        (read(&self.crls).len(), read(&self.cas).len())
    }

    /// Marks the controllers as running (or not).
    pub fn set_ready(&self, v: bool) {
        self.ready.store(v, Ordering::Relaxed);
    }

    /// Whether the controllers run.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks this replica as the one that reconciles.
    pub fn set_leader(&self, v: bool) {
        self.leader.store(v, Ordering::Relaxed);
    }

    /// Whether this replica reconciles.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_when_their_objects_go() {
        let p = Published::new();
        let t = OffsetDateTime::UNIX_EPOCH;
        for n in ["a", "b"] {
            p.put_crl(
                n,
                PublishedCrl {
                    ca: "ca".into(),
                    der: Arc::new(vec![1]),
                    number: 1,
                    this_update: t,
                    next_update: t,
                },
            );
        }
        p.retain_crls(|n| n == "b");
        assert!(p.crl("a").is_none() && p.crl("b").is_some());
    }
}
