//! A persisting write failure is logged once per interval, not once per
//! retry, and recovery is logged once. (Own test binary: it installs the
//! process-wide tracing subscriber that the writer thread logs through.)

mod store_common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use signet::store::{AuditOperation, Store};
use store_common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        let text = self
            .0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        text.matches(needle).count()
    }
}

#[tokio::test]
async fn a_persisting_failure_is_logged_once_per_interval() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::INFO)
        .init();

    let dir = TempDir::new("log-once");
    let path = dir.db();
    let mut opts = fast_retry();
    opts.busy_timeout = Duration::from_millis(10);
    opts.retry_max = Duration::from_millis(30);
    opts.log_interval = Duration::from_secs(3600);
    let store = Store::open_with(&path, opts).expect("open");

    let other = Connection::open(&path).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    store.audit(event(1, AuditOperation::CaIssued, "default", "root"));
    assert!(
        wait_until(Duration::from_secs(10), || store
            .stats()
            .write_failures_total
            >= 10),
        "expected many retries"
    );
    assert_eq!(logs.count("store writes are failing"), 1);

    other.execute_batch("ROLLBACK").expect("unlock");
    flush(&store).await;
    assert_eq!(logs.count("store is writable again"), 1);
    assert_eq!(logs.count("store writes are failing"), 1);
}
