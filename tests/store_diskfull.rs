//! A real full volume: the database lives on a small tmpfs that the test
//! fills up. Writes fail with SQLITE_FULL (ENOSPC; root is not exempt on
//! tmpfs), the store turns Degraded and holds every write in memory, and it
//! catches up once space is freed.
//!
//! Needs root with CAP_SYS_ADMIN to mount a tmpfs (as on the dev machines and
//! CI). Elsewhere set `SIGNET_SKIP_TMPFS_TESTS=1` to skip it explicitly.

mod store_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use signet::store::{AuditOperation, Reader, Store, StoreHealth};
use store_common::*;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_owned())),
            other => {
                if std::env::var_os("SIGNET_SKIP_TMPFS_TESTS").is_some() {
                    eprintln!(
                        "skipping: SIGNET_SKIP_TMPFS_TESTS is set and mount failed: {other:?}"
                    );
                    return None;
                }
                panic!(
                    "cannot mount a tmpfs at {} ({other:?}); this test needs root with \
                     CAP_SYS_ADMIN, or set SIGNET_SKIP_TMPFS_TESTS=1 to skip it explicitly",
                    at.display()
                );
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

#[tokio::test]
async fn full_volume_degrades_then_catches_up() {
    let dir = TempDir::new("diskfull");
    let vol = dir.path().join("vol");
    let Some(_mount) = Tmpfs::mount(&vol, "16m") else {
        return;
    };
    let path = vol.join("signet.db");
    let store = Store::open_with(&path, fast_retry()).expect("open");
    for i in 0..10 {
        store.audit(event(
            i,
            AuditOperation::CertificateIssued,
            "default",
            "root",
        ));
    }
    flush(&store).await;

    let filler = vol.join("filler");
    assert!(fill(&filler) > 0);
    let padding = "x".repeat(1000);
    for i in 10..2010 {
        let e = event(i, AuditOperation::CertificateIssued, "default", "root")
            .with_details(serde_json::json!({ "i": i, "padding": padding }));
        store.audit(e);
        store.upsert_certificate(cert(
            "default",
            &format!("c{i}"),
            &format!("{:x}", i + 1),
            "root",
        ));
    }
    assert!(
        wait_until(Duration::from_secs(20), || !store.health().is_ok()),
        "store never reported the full volume"
    );
    match store.health() {
        StoreHealth::Degraded { reason } => assert!(reason.contains("full"), "{reason}"),
        StoreHealth::Ok => unreachable!(),
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(store.stats().queued > 0, "writes must stay queued");

    std::fs::remove_file(&filler).expect("free space");
    flush(&store).await;
    assert_eq!(store.health(), StoreHealth::Ok);
    assert_eq!(store.stats().queued, 0);
    assert_eq!(store.stats().rejected_total, 0);
    let reader = Reader::open(&path).expect("reader");
    let counts = reader.counts().expect("counts");
    assert_eq!((counts.audit_rows, counts.certificates), (2010, 2000));
    assert!(reader.verify_audit_chain().expect("verify").is_intact());
    drop(reader);
    drop(store);
    // Give the writer thread a moment to close the file before unmounting.
    std::thread::sleep(Duration::from_millis(100));
}
