//! Published state: what the controllers have signed and the HTTP side
//! serves (CRLs and CA certificates by name), plus the operator's
//! readiness. Controllers write it; `http` and `metrics` read it. It depends
//! on nothing else in the crate, so neither side imports the other.
//!
//! Entries are removed when their objects go: the controllers prune names
//! that are no longer in their caches.
//!
//! The OCSP view of a CA ([`PublishedOcsp`]) is what the responder answers
//! from: the CA's delegated responder (its key lives only here, in
//! memory), the revocations of the CA's last signed CRL, and the answers
//! signed from them so far. The CRL controller replaces the view when the
//! CRL number or the responder changes, which drops the cached answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

use crate::pki::RevocationReason;
use crate::pki::ocsp::DelegatedResponder;

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

/// Most answers one CA's view keeps; when full it starts over (a flood of
/// distinct requests costs CPU, never unbounded memory).
pub const MAX_CACHED_ANSWERS: usize = 16_384;

/// What the OCSP responder of one CA answers from.
#[derive(Debug)]
pub struct PublishedOcsp {
    /// The delegated responder (CA, in-memory key, certificate).
    pub responder: DelegatedResponder,
    /// Revoked serials (normal form) of the CA's last signed CRL: when and why.
    pub revoked: HashMap<String, (OffsetDateTime, Option<RevocationReason>)>,
    /// The cRLNumber they come from: the cache generation.
    pub crl_number: u64,
    /// That CRL's nextUpdate: answers are valid until then at most.
    pub next_update: OffsetDateTime,
    /// Signed answers by request (see [`OcspAnswer`]).
    answers: RwLock<HashMap<Vec<u8>, Arc<OcspAnswer>>>,
    /// Serials the mirror confirmed as issued by this CA.
    issued: RwLock<std::collections::HashSet<String>>,
}

/// A signed OCSP response kept for reuse until its nextUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspAnswer {
    /// DER `OCSPResponse`.
    pub der: Vec<u8>,
    /// producedAt.
    pub produced_at: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The outcome label it counts under.
    pub outcome: &'static str,
}

impl PublishedOcsp {
    /// A view with no answers yet.
    pub fn new(
        responder: DelegatedResponder,
        revoked: HashMap<String, (OffsetDateTime, Option<RevocationReason>)>,
        crl_number: u64,
        next_update: OffsetDateTime,
    ) -> Self {
        PublishedOcsp {
            responder,
            revoked,
            crl_number,
            next_update,
            answers: RwLock::default(),
            issued: RwLock::default(),
        }
    }

    /// The cached answer to `key` (the request's CertIDs), if still valid at `now`.
    pub fn answer(&self, key: &[u8], now: OffsetDateTime) -> Option<Arc<OcspAnswer>> {
        read(&self.answers)
            .get(key)
            .filter(|a| a.next_update > now)
            .cloned()
    }

    /// Keeps `answer` for `key`.
    pub fn keep_answer(&self, key: Vec<u8>, answer: Arc<OcspAnswer>) {
        let mut map = write(&self.answers);
        if map.len() >= MAX_CACHED_ANSWERS {
            map.clear();
        }
        map.insert(key, answer);
    }

    /// Number of cached answers.
    pub fn cached_answers(&self) -> usize {
        read(&self.answers).len()
    }

    /// Whether `serial` is known to be issued by this CA.
    pub fn is_known_issued(&self, serial: &str) -> bool {
        read(&self.issued).contains(serial)
    }

    /// Remembers that the mirror confirmed `serial`.
    pub fn remember_issued(&self, serial: &str) {
        let mut set = write(&self.issued);
        if set.len() >= MAX_CACHED_ANSWERS {
            set.clear();
        }
        set.insert(serial.to_string());
    }
}

/// Everything the HTTP side serves.
#[derive(Debug, Default)]
pub struct Published {
    crls: RwLock<HashMap<String, PublishedCrl>>,
    cas: RwLock<HashMap<String, PublishedCa>>,
    ocsp: RwLock<HashMap<String, Arc<PublishedOcsp>>>,
    ready: AtomicBool,
    leader: AtomicBool,
    standby: AtomicBool,
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

    /// Publishes (or replaces) the OCSP view of CA `ca`.
    pub fn put_ocsp(&self, ca: &str, view: Arc<PublishedOcsp>) {
        write(&self.ocsp).insert(ca.to_string(), view);
    }

    /// The OCSP view of CA `ca`.
    pub fn ocsp(&self, ca: &str) -> Option<Arc<PublishedOcsp>> {
        read(&self.ocsp).get(ca).cloned()
    }

    /// Keeps only the OCSP views of the CAs `keep` accepts.
    pub fn retain_ocsp(&self, keep: impl Fn(&str) -> bool) {
        write(&self.ocsp).retain(|k, _| keep(k));
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

    /// Marks this replica as a standby waiting for the leader lease.
    pub fn set_standby(&self, v: bool) {
        self.standby.store(v, Ordering::Relaxed);
    }

    /// Whether this replica stands by (ready to take over).
    pub fn is_standby(&self) -> bool {
        self.standby.load(Ordering::Relaxed)
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
