//! What the watches already know, so reconciles need not ask the API again.
//!
//! * [`Echoes`] — the resourceVersion of every object Signet just wrote.
//!   When the watch delivers that very version it is the echo of our own
//!   write, not news: it must not wake another reconcile.
//! * [`Caches`] — the stores the Certificate controller's watches fill (CAs,
//!   CRLs, Signet's Secrets). A Certificate reconcile reads its issuer and
//!   its Secret from them; a miss (not synced yet, a Secret Signet has not
//!   labelled) falls back to one GET. Only the controller whose triggers
//!   come from the same watches reads them: a store is updated before the
//!   event it holds wakes anything, so a read can never be older than the
//!   change that caused the reconcile.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{CRL, CertificateAuthority};

/// Object identity in [`Echoes`]: kind, namespace, name.
type Key = (&'static str, String, String);

/// More than this many unanswered writes is a leak, not a backlog: forget
/// them (the cost is one extra reconcile each, never a missed change).
const MAX_PENDING: usize = 200_000;

/// resourceVersions of Signet's own recent writes.
#[derive(Default)]
pub struct Echoes {
    pending: Mutex<HashMap<Key, String>>,
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> Option<Key> {
    let m = obj.meta();
    Some((
        kind_of::<K>(),
        m.namespace.clone().unwrap_or_default(),
        m.name.clone()?,
    ))
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    // Derived and k8s-openapi kinds name themselves with a 'static str.
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(s) => s,
        std::borrow::Cow::Owned(_) => "other",
    }
}

impl Echoes {
    /// Records `written`, the object as the API server returned it after
    /// our write.
    pub fn wrote<K: Resource<DynamicType = ()>>(&self, written: &K) {
        let (Some(k), Some(rv)) = (key(written), written.meta().resource_version.clone()) else {
            return;
        };
        if let Ok(mut map) = self.pending.lock() {
            if map.len() >= MAX_PENDING {
                map.clear();
            }
            map.insert(k, rv);
        }
    }

    /// Whether `seen` (from a watch) is exactly what we last wrote; the
    /// entry is consumed either way once a newer version shows up.
    pub fn is_echo<K: Resource<DynamicType = ()>>(&self, seen: &K) -> bool {
        let Some(k) = key(seen) else {
            return false;
        };
        let Ok(mut map) = self.pending.lock() else {
            return false;
        };
        let rv = seen.meta().resource_version.as_deref();
        match map.get(&k) {
            Some(mine) if Some(mine.as_str()) == rv => {
                map.remove(&k);
                // A deletion is never an echo of a write.
                seen.meta().deletion_timestamp.is_none()
            }
            _ => false,
        }
    }

    /// Writes recorded and not yet seen back (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.pending.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Watch stores the Certificate controller fills (see the module docs).
#[derive(Default)]
pub struct Caches {
    cas: OnceLock<Store<CertificateAuthority>>,
    crls: OnceLock<Store<CRL>>,
    secrets: OnceLock<Store<Secret>>,
}

/// A cached object, or `Miss` when the cache cannot say.
pub enum Cached<T> {
    /// The cache holds it.
    Hit(T),
    /// The cache knows it does not exist.
    Absent,
    /// Ask the API.
    Miss,
}

impl Caches {
    /// Installs the stores (once; later calls are ignored).
    pub fn install(
        &self,
        cas: Store<CertificateAuthority>,
        crls: Store<CRL>,
        secrets: Store<Secret>,
    ) {
        let _ = self.cas.set(cas);
        let _ = self.crls.set(crls);
        let _ = self.secrets.set(secrets);
    }

    /// CA `name`. Absent only once the CA watch has listed everything.
    pub fn ca(&self, name: &str) -> Cached<CertificateAuthority> {
        lookup(self.cas.get(), &ObjectRef::new(name))
    }

    /// Every CRL, when the CRL watch has listed them all.
    pub fn crls(&self) -> Option<Vec<CRL>> {
        let store = self.crls.get()?;
        synced(store).then(|| store.state().iter().map(|c| (**c).clone()).collect())
    }

    /// Secret `namespace/name` when the cache holds it. The Secret watch
    /// sees only Signet-labelled Secrets, so a Secret it does not hold may
    /// still exist: that is a `Miss`, never `Absent`.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        let store = self.secrets.get()?;
        store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| (*s).clone())
    }
}

fn synced<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> bool {
    // `Store::is_ready` is not public; a store that answered one
    // `wait_until_ready` is ready. Poll without waiting.
    use futures::FutureExt;
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

fn lookup<K>(store: Option<&Store<K>>, r: &ObjectRef<K>) -> Cached<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let Some(store) = store else {
        return Cached::Miss;
    };
    match store.get(r) {
        Some(obj) => Cached::Hit((*obj).clone()),
        None if synced(store) => Cached::Absent,
        None => Cached::Miss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(name: &str, rv: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_the_version_we_wrote_is_an_echo_and_only_once() {
        let e = Echoes::default();
        e.wrote(&secret("a", "10"));
        assert!(!e.is_echo(&secret("a", "9")), "an older version is news");
        assert!(!e.is_echo(&secret("b", "10")), "another object is news");
        assert!(e.is_echo(&secret("a", "10")));
        assert!(!e.is_echo(&secret("a", "10")), "consumed");
        assert_eq!(e.pending(), 0);
    }

    #[test]
    fn a_change_after_our_write_is_news() {
        let e = Echoes::default();
        e.wrote(&secret("a", "10"));
        assert!(!e.is_echo(&secret("a", "11")));
        let mut deleted = secret("a", "10");
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                crate::controller::conditions::jiff_ts(time::OffsetDateTime::UNIX_EPOCH),
            ));
        e.wrote(&secret("a", "10"));
        assert!(!e.is_echo(&deleted), "a deletion always wakes");
    }
}
