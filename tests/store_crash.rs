//! Crash safety: SIGKILL a process in the middle of a burst of writes, then
//! reopen the database and check it is intact, every acknowledged row is
//! there, and the audit hash chain is valid.

mod store_common;

use std::collections::HashSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use signet::store::{Reader, Store};
use store_common::*;

/// Parse complete `ack <id> <serial>` lines; a line cut short by the kill
/// (no trailing newline) is ignored.
fn acks(output: &[u8]) -> Vec<(i64, String)> {
    let text = String::from_utf8_lossy(output);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            assert_eq!(parts.next(), Some("ack"), "unexpected line {l:?}");
            let id = parts
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad id in {l:?}"));
            let serial = parts.next().unwrap_or_else(|| panic!("no serial in {l:?}"));
            (id, serial.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn sigkill_mid_burst_loses_no_acknowledged_row() {
    let dir = TempDir::new("crash");
    let db = dir.db();
    for round in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signet-store-bench"))
            .args(["burst", "--db"])
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn signet-store-bench");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let start = Instant::now();
        // Let it acknowledge a few thousand rows, then kill it mid-write.
        while buf.iter().filter(|b| **b == b'\n').count() < 3_000 {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "burst too slow: {} acks",
                acks(&buf).len()
            );
            let n = stdout.read(&mut chunk).expect("read stdout");
            assert!(n > 0, "burst writer exited early (round {round})");
            buf.extend_from_slice(&chunk[..n]);
        }
        child.kill().expect("SIGKILL"); // std sends SIGKILL on unix
        // Everything it printed before dying was acknowledged.
        stdout.read_to_end(&mut buf).expect("drain stdout");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "child should have been killed");

        let acked = acks(&buf);
        assert!(acked.len() >= 3_000);

        // Reopen as the operator would on restart: integrity first.
        {
            let conn = Connection::open(&db).expect("reopen");
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity_check");
            assert_eq!(check, "ok");
            let mut audit = conn
                .prepare("SELECT serial FROM audit_log WHERE id = ?1")
                .expect("prepare");
            let mut certs = conn
                .prepare("SELECT 1 FROM certificates WHERE serial = ?1")
                .expect("prepare");
            let mut seen = HashSet::new();
            for (id, serial) in &acked {
                assert!(seen.insert(*id), "id {id} acknowledged twice");
                let stored: Option<String> = audit
                    .query_row([id], |r| r.get(0))
                    .optional()
                    .expect("query");
                assert_eq!(stored.as_deref(), Some(serial.as_str()), "audit row {id}");
                let present: Option<i64> = certs
                    .query_row([serial], |r| r.get(0))
                    .optional()
                    .expect("query");
                assert!(
                    present.is_some(),
                    "certificate {serial} acknowledged but missing"
                );
            }
        }
        let store = Store::open(&db).expect("store reopens after a crash");
        flush(&store).await;
        let report = Reader::open(&db)
            .expect("reader")
            .verify_audit_chain()
            .expect("verify");
        assert!(report.is_intact(), "round {round}: {report:?}");
        assert!(report.rows_checked >= acked.len() as u64);
        drop(store);
    }
}
