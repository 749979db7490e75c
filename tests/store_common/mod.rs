//! Helpers shared by the store integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use signet::store::{
    AuditEvent, AuditOperation, CertRecord, CertStatus, ObjectRef, Store, StoreOptions,
};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "signet-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn db(&self) -> PathBuf {
        self.0.join("signet.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Show the store's tracing output in failing tests.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("signet=debug")
        .try_init();
}

/// Options that retry quickly, for failure tests.
pub fn fast_retry() -> StoreOptions {
    StoreOptions {
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ..StoreOptions::default()
    }
}

pub const NOW: i64 = 1_795_000_000; // 2026-11-18

pub fn cert(ns: &str, name: &str, serial: &str, ca: &str) -> CertRecord {
    CertRecord {
        ca: ca.to_owned(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{ns}-{name}"),
        serial: serial.to_owned(),
        subject: format!("CN={name}.example"),
        sans: vec![format!("DNS:{name}.example")],
        usages: vec!["server auth".to_owned()],
        status: CertStatus::Active,
        not_before: NOW - 3_600,
        not_after: NOW + 30 * 86_400,
        revision: 1,
        revoked_at: None,
        revocation_reason: None,
        certificate_pem: Some(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
        ),
        secret_name: Some(format!("{name}-tls")),
        issued_at: NOW - 3_600,
    }
}

pub fn event(i: i64, op: AuditOperation, ns: &str, ca: &str) -> AuditEvent {
    AuditEvent::new(
        NOW * 1000 + i,
        "controller/certificate",
        op,
        ObjectRef::namespaced("Certificate", ns, format!("c{i}")),
    )
    .with_ca(ca)
    .with_serial(&format!("{i:x}"))
    .with_details(serde_json::json!({ "i": i }))
}

/// Poll `f` every 20 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

pub async fn flush(store: &Store) {
    tokio::time::timeout(Duration::from_secs(20), store.flush())
        .await
        .expect("flush timed out")
        .expect("flush failed");
}
