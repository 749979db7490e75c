//! SQLite mirror of Signet's state and its append-only, hash-chained audit
//! trail.
//!
//! * [`Store`] is the handle the controllers hold (cheap to clone, `Send +
//!   Sync`). Its write methods enqueue and return at once; one writer thread
//!   batches them into transactions (see [`writer`](self)). Its read methods
//!   run on separate read-only connections, so readers never block the writer.
//! * [`Reader`] is the synchronous read side, used by the CLI, which reads the
//!   database file directly while the operator runs.
//! * [`cli`] holds the `signet audit`, `signet certs` and `signet db`
//!   subcommands as library functions plus their clap `Args`.
//!
//! The cluster is the source of truth; if [`Store::is_empty_mirror`] says so
//! at start — or [`Store::needs_rebuild`] turns true later (the volume only
//! appeared after start, or the file was deleted while running) — the
//! operator re-upserts everything it finds in the cluster (upserts are
//! idempotent; revocations are sticky) and calls [`Store::record_rebuild`].
//!
//! Failure behaviour: a corrupt file, a database from a newer signet or a
//! failing migration make [`Store::open`] fail (refuse to start, with the
//! file and the recovery command in the message). Operational failures —
//! missing, read-only, full or locked volume, file moved away — never do:
//! writes stay queued in memory, [`Store::health`] is `Degraded` with the
//! reason, the error is logged once per interval, and the writer catches up
//! when the database is usable again.
//!
//! Durability: WAL with `synchronous=NORMAL`. A committed write survives the
//! process being killed (the crash test SIGKILLs a writer mid-burst); only an
//! OS crash or power loss can lose the last few commits, never corrupt the
//! file.

pub mod audit;
pub mod cli;
pub mod clock;
pub mod error;
pub mod migrations;
pub mod query;
pub mod records;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

pub use audit::{BrokenLink, VerifyReport};
pub use clock::{now_unix, now_unix_ms};
pub use error::StoreError;
pub use migrations::{AppliedMigration, SCHEMA_VERSION};
pub use query::{
    AuditQuery, AuditRow, CaRow, CertQuery, CertRow, CrlRow, MirrorCounts, Reader, RevokedSerial,
};
pub use records::{
    AuditEvent, AuditOperation, CaRecord, CaStatus, CertRecord, CertStatus, CrlRecord, ObjectRef,
    Outcome, RebuildSummary, RevocationRecord, normalize_serial,
};

use writer::{Op, Shared, Writer};

/// Whether the store is keeping up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StoreHealth {
    /// Writes are being committed.
    Ok,
    /// Writes are failing and are held in memory until the database is
    /// writable again; `reason` says why.
    Degraded {
        /// The last error, with the file and the fix.
        reason: String,
    },
}

impl StoreHealth {
    /// True for [`StoreHealth::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StoreStats {
    /// Writes waiting to be committed (grows while degraded).
    pub queued: u64,
    /// Writes committed since start.
    pub committed_total: u64,
    /// Writes refused because the record violated a constraint.
    pub rejected_total: u64,
    /// Batch attempts that failed and were retried.
    pub write_failures_total: u64,
}

/// Tuning knobs; the defaults suit the operator.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most queued writes committed in one transaction.
    pub batch_max: usize,
    /// First retry delay after a failed batch.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Log a persisting write failure at most once per this interval.
    pub log_interval: Duration,
    /// How long the writer waits for another process's lock on the file
    /// before counting the attempt as failed.
    pub busy_timeout: Duration,
    /// The leader fence: while it is closed nothing is committed (writes
    /// stay queued, health turns degraded). Open by default.
    pub fence: crate::fence::Fence,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            batch_max: 1024,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            log_interval: Duration::from_secs(60),
            busy_timeout: migrations::BUSY_TIMEOUT,
            fence: crate::fence::Fence::open(),
        }
    }
}

/// Handle to the SQLite mirror and audit trail. Clone it freely.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    tx: Sender<Op>,
    shared: Arc<Shared>,
    readers: Mutex<Vec<Reader>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("health", &self.health())
            .finish()
    }
}

impl Store {
    /// Open (creating and migrating if needed) the database at `path` and
    /// start the writer thread.
    ///
    /// Refuses a corrupt file, a database from a newer signet, or a failing
    /// migration. If the file cannot be opened or written for an operational
    /// reason (volume not mounted, read-only, full), the store still starts,
    /// in [`StoreHealth::Degraded`], queues writes in memory and keeps retrying.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// [`Store::open`] with explicit [`StoreOptions`].
    pub fn open_with(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let (conn, health) = match migrations::open_rw(path, opts.busy_timeout) {
            Ok((conn, _)) => (Some(conn), StoreHealth::Ok),
            Err(e @ (StoreError::Unavailable { .. } | StoreError::Busy { .. })) => {
                let reason = error::error_chain(&e);
                tracing::error!(
                    db = %path.display(),
                    error = %reason,
                    "store unavailable at start; queueing writes in memory and retrying"
                );
                (None, StoreHealth::Degraded { reason })
            }
            Err(e) => return Err(e),
        };
        let shared = Arc::new(Shared::new(health));
        if let Some(c) = &conn
            && writer::mirror_is_empty(c).unwrap_or(false)
        {
            shared.needs_rebuild.store(true, Ordering::Relaxed);
        }
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            path: path.to_owned(),
            rx,
            shared: Arc::clone(&shared),
            opts: StoreOptions {
                batch_max: opts.batch_max.max(1),
                ..opts
            },
            file_id: writer::file_id(path).ok(),
            conn,
        };
        std::thread::Builder::new()
            .name("signet-store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Unavailable {
                path: path.to_owned(),
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                tx,
                shared,
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let counts = !matches!(op, Op::Flush(_));
        if counts {
            self.inner.shared.queued.fetch_add(1, Ordering::Relaxed);
        }
        if self.inner.tx.send(op).is_ok() {
            Ok(())
        } else {
            if counts {
                self.inner.shared.queued.fetch_sub(1, Ordering::Relaxed);
            }
            tracing::error!(db = %self.inner.path.display(), "store writer thread is gone; write lost");
            Err(StoreError::WriterStopped)
        }
    }

    /// Queue an audit row. Never blocks. The row is committed by the writer
    /// (see [`Store::flush`]); use [`Store::audit_committed`] to wait for it.
    pub fn audit(&self, event: AuditEvent) {
        let _ = self.send(Op::Audit { event, ack: None });
    }

    /// Queue an audit row and wait until it is committed; returns its id.
    /// While the store is degraded this waits until the database is back.
    pub async fn audit_committed(&self, event: AuditEvent) -> Result<i64, StoreError> {
        let (ack, rx) = oneshot::channel();
        self.send(Op::Audit {
            event,
            ack: Some(ack),
        })?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queue an insert-or-update of a CA (keyed by name; `None` fields keep
    /// their stored value).
    pub fn upsert_ca(&self, ca: CaRecord) {
        let _ = self.send(Op::UpsertCa(ca));
    }

    /// Queue an insert-or-update of a certificate (keyed by CA + serial).
    pub fn upsert_certificate(&self, cert: CertRecord) {
        let _ = self.send(Op::UpsertCert(cert));
    }

    /// Queue a revocation of a mirrored certificate (kept even if the
    /// certificate is not mirrored).
    pub fn record_revocation(&self, revocation: RevocationRecord) {
        let _ = self.send(Op::Revoke(revocation));
    }

    /// Queue a published CRL (keyed by CA + number).
    pub fn record_crl(&self, crl: CrlRecord) {
        let _ = self.send(Op::Crl(crl));
    }

    /// Record that the mirror was rebuilt from the cluster: a `mirror_rebuilt`
    /// audit row with the counts, and `mirror_state.last_rebuild`.
    pub fn record_rebuild(&self, summary: RebuildSummary) {
        self.inner
            .shared
            .needs_rebuild
            .store(false, Ordering::Relaxed);
        let details = serde_json::json!({
            "reason": summary.reason,
            "cas": summary.cas,
            "certificates": summary.certificates,
            "crls": summary.crls,
        });
        let _ = self.send(Op::SetState {
            key: "last_rebuild".to_owned(),
            value: details.to_string(),
        });
        self.audit(
            AuditEvent::new(
                summary.time_ms,
                summary.actor,
                AuditOperation::MirrorRebuilt,
                ObjectRef {
                    kind: "Mirror".to_owned(),
                    namespace: None,
                    name: None,
                    uid: None,
                },
            )
            .with_details(details),
        );
    }

    /// Wait until every write queued before this call is committed (or
    /// rejected). While degraded, this waits for the database to come back;
    /// wrap it in a timeout at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Flush(tx))?;
        rx.await.map_err(|_| StoreError::WriterStopped)
    }

    /// True when the writer has opened a database whose CA, certificate and
    /// CRL tables were empty (a new file, a lost volume, a file deleted while
    /// running, or a volume that only appeared after start) and no
    /// [`Store::record_rebuild`] has happened since. Cheap: poll it
    /// periodically and rebuild the mirror from the cluster when it is set.
    pub fn needs_rebuild(&self) -> bool {
        self.inner.shared.needs_rebuild.load(Ordering::Relaxed)
    }

    /// Ok, or Degraded with the reason. Cheap; call it from `/readyz`.
    pub fn health(&self) -> StoreHealth {
        if !self.inner.shared.writer_alive.load(Ordering::Relaxed) {
            return StoreHealth::Degraded {
                reason: "the store writer thread has stopped (see the panic in the log); \
                         restart signet"
                    .to_owned(),
            };
        }
        match self.inner.shared.health.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> StoreStats {
        let s = &self.inner.shared;
        StoreStats {
            queued: s.queued.load(Ordering::Relaxed),
            committed_total: s.committed.load(Ordering::Relaxed),
            rejected_total: s.rejected.load(Ordering::Relaxed),
            write_failures_total: s.write_failures.load(Ordering::Relaxed),
        }
    }

    /// Run `f` on a pooled read-only connection, off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = match inner.readers.lock() {
                Ok(mut pool) => pool.pop(),
                Err(poisoned) => poisoned.into_inner().pop(),
            };
            let reader = match pooled.filter(Reader::is_current) {
                Some(r) => r,
                None => Reader::open(&inner.path)?,
            };
            let out = f(&reader);
            if out.is_ok()
                && let Ok(mut pool) = inner.readers.lock()
                && pool.len() < 4
            {
                pool.push(reader);
            }
            out
        })
        .await
        .map_err(|_| StoreError::ReadTask)?
    }

    /// True when the CA, certificate and CRL tables are empty (fresh or lost
    /// database): rebuild the mirror from the cluster, then call
    /// [`Store::record_rebuild`]. Fails while the database is unavailable.
    pub async fn is_empty_mirror(&self) -> Result<bool, StoreError> {
        self.read(|r| r.is_empty_mirror()).await
    }

    /// Certificates matching `q` (see [`CertQuery`]).
    pub async fn list_certificates(&self, q: CertQuery) -> Result<Vec<CertRow>, StoreError> {
        self.read(move |r| r.certificates(&q)).await
    }

    /// Every mirrored CA.
    pub async fn list_cas(&self) -> Result<Vec<CaRow>, StoreError> {
        self.read(|r| r.cas()).await
    }

    /// Revoked serials of CA `ca`.
    pub async fn revoked_serials(&self, ca: &str) -> Result<Vec<RevokedSerial>, StoreError> {
        let ca = ca.to_owned();
        self.read(move |r| r.revoked_serials(&ca)).await
    }

    /// Highest CRL number recorded for CA `ca`.
    pub async fn latest_crl_number(&self, ca: &str) -> Result<Option<i64>, StoreError> {
        let ca = ca.to_owned();
        self.read(move |r| r.latest_crl_number(&ca)).await
    }

    /// The newest CRL of CA `ca`, DER included.
    pub async fn latest_crl(&self, ca: &str) -> Result<Option<CrlRow>, StoreError> {
        let ca = ca.to_owned();
        self.read(move |r| r.latest_crl(&ca)).await
    }

    /// Audit rows matching `q`, oldest first.
    pub async fn audit_rows(&self, q: AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.read(move |r| r.audit(&q)).await
    }

    /// The newest audit row: (id, hash).
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let rows = self
            .audit_rows(AuditQuery {
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        Ok(rows.into_iter().last().map(|r| (r.id, r.hash)))
    }

    /// Recompute the audit hash chain.
    pub async fn verify_audit_chain(&self) -> Result<VerifyReport, StoreError> {
        self.read(|r| r.verify_audit_chain()).await
    }
}
