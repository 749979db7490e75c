//! The single writer: a dedicated thread that owns the write connection.
//!
//! Callers enqueue [`Op`]s on an unbounded channel and return at once. The
//! thread drains up to `batch_max` queued ops into one `BEGIN IMMEDIATE`
//! transaction (each op inside a savepoint, so one bad record is rejected
//! without sinking the batch) and commits. If the database cannot be written
//! (missing or read-only volume, disk full, file moved away) the batch stays
//! queued in memory, health turns `Degraded`, the error is logged at most once
//! per `log_interval`, and the thread reopens the file with exponential
//! backoff until it can catch up. Nothing queued is dropped.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::audit::{ChainedRow, GENESIS};
use super::error::{ErrorClass, StoreError, classify, error_chain};
use super::migrations::{map_err, open_rw};
use super::records::{
    AuditEvent, CaRecord, CertRecord, CertStatus, CrlRecord, RevocationRecord, normalize_serial,
};
use super::{StoreHealth, StoreOptions, now_unix};

/// (last audit row id, its hash): where the next row chains from.
type Head = (i64, [u8; 32]);

/// Acknowledgement channel for one audit row: its id once committed.
pub(crate) type AuditAck = oneshot::Sender<Result<i64, StoreError>>;

/// One queued write.
pub(crate) enum Op {
    /// Append an audit row.
    Audit {
        event: AuditEvent,
        ack: Option<AuditAck>,
    },
    /// Insert or update a CA.
    UpsertCa(CaRecord),
    /// Insert or update a certificate.
    UpsertCert(CertRecord),
    /// Mark a certificate revoked.
    Revoke(RevocationRecord),
    /// Record a CRL.
    Crl(CrlRecord),
    /// Set a `mirror_state` key.
    SetState { key: String, value: String },
    /// Resolve once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

impl Op {
    fn describe(&self) -> String {
        match self {
            Op::Audit { event, .. } => format!("audit row {}", event.operation),
            Op::UpsertCa(r) => format!("CA {}", r.name),
            Op::UpsertCert(r) => {
                format!("certificate {}/{} serial {}", r.namespace, r.name, r.serial)
            }
            Op::Revoke(r) => format!("revocation of serial {} of CA {}", r.serial, r.ca),
            Op::Crl(r) => format!("CRL {} of CA {}", r.number, r.ca),
            Op::SetState { key, .. } => format!("mirror state {key}"),
            Op::Flush(_) => "flush".to_owned(),
        }
    }
}

/// State shared between the writer thread and every `Store` handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub health: Mutex<StoreHealth>,
    /// Writes enqueued and not yet committed or rejected.
    pub queued: AtomicU64,
    /// Writes committed since start.
    pub committed: AtomicU64,
    /// Writes refused because the record violates a constraint.
    pub rejected: AtomicU64,
    /// Batch attempts that failed and will be retried.
    pub write_failures: AtomicU64,
    /// False once the writer thread has ended (normally only after every
    /// handle is dropped; earlier means it panicked).
    pub writer_alive: AtomicBool,
    /// Set when a database with empty mirror tables was opened (new file,
    /// lost volume); cleared by `Store::record_rebuild`.
    pub needs_rebuild: AtomicBool,
}

impl Shared {
    pub fn new(health: StoreHealth) -> Self {
        Self {
            health: Mutex::new(health),
            queued: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            writer_alive: AtomicBool::new(true),
            needs_rebuild: AtomicBool::new(false),
        }
    }

    fn set_health(&self, h: StoreHealth) {
        match self.health.lock() {
            Ok(mut g) => *g = h,
            Err(poisoned) => *poisoned.into_inner() = h,
        }
    }
}

/// What happened to one op of a committed batch.
enum Done {
    Audit(i64),
    Other,
    Flush,
    Rejected(String),
}

pub(crate) struct Writer {
    pub path: PathBuf,
    pub rx: Receiver<Op>,
    pub shared: Arc<Shared>,
    pub opts: StoreOptions,
    pub conn: Option<Connection>,
    /// (device, inode) of the file `conn` was opened on.
    pub file_id: Option<(u64, u64)>,
}

impl Writer {
    pub fn run(mut self) {
        // Runs on return and on panic alike.
        struct Alive(Arc<Shared>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.writer_alive.store(false, Ordering::Relaxed);
            }
        }
        let _alive = Alive(Arc::clone(&self.shared));
        let mut pending: VecDeque<Op> = VecDeque::new();
        let mut disconnected = false;
        let mut backoff = self.opts.retry_initial;
        let mut last_log: Option<Instant> = None;
        // Started without a connection means the open at start failed.
        let mut failing_since: Option<Instant> = self.conn.is_none().then(Instant::now);
        // The audit head is logged now and then: an external record of it is
        // what detects truncation of the newest rows.
        let mut anchor = Anchor::default();

        loop {
            if pending.is_empty() {
                if !disconnected && let Ok(op) = self.rx.recv() {
                    pending.push_back(op);
                } else {
                    anchor.log(&self.path, Duration::ZERO);
                    return;
                }
            }
            while pending.len() < self.opts.batch_max {
                match self.rx.try_recv() {
                    Ok(op) => pending.push_back(op),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }

            let n = pending.len().min(self.opts.batch_max);
            let result = match self.opts.fence.check() {
                Err(closed) => Err(StoreError::Unavailable {
                    path: self.path.clone(),
                    detail: closed.to_string(),
                }),
                Ok(()) => self.ensure_open(),
            };
            let result = match result {
                Ok(conn) => apply_batch(conn, pending.iter().take(n))
                    .map_err(|e| map_err(&self.path, "writing a batch", e)),
                Err(e) => Err(e),
            };

            match result {
                Ok((done, head)) => {
                    anchor.head = head;
                    anchor.log(&self.path, self.opts.log_interval);
                    // Health first, so whoever a flush wakes sees it.
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            db = %self.path.display(),
                            outage_secs = since.elapsed().as_secs(),
                            "store is writable again; catching up queued writes"
                        );
                        self.shared.set_health(StoreHealth::Ok);
                    }
                    let n = done.len();
                    for (op, d) in pending.drain(..n).zip(done) {
                        finish(op, d, &self.shared);
                    }
                    backoff = self.opts.retry_initial;
                    last_log = None;
                }
                Err(err) => {
                    // Drop the connection: the file may have moved, the volume
                    // may have been remounted. Reopen on the next attempt.
                    self.conn = None;
                    self.shared.write_failures.fetch_add(1, Ordering::Relaxed);
                    let reason = error_chain(&err);
                    failing_since.get_or_insert_with(Instant::now);
                    self.shared.set_health(StoreHealth::Degraded {
                        reason: reason.clone(),
                    });
                    if last_log.is_none_or(|t| t.elapsed() >= self.opts.log_interval) {
                        tracing::error!(
                            db = %self.path.display(),
                            error = %reason,
                            queued = self.shared.queued.load(Ordering::Relaxed),
                            retry_in_ms = backoff.as_millis() as u64,
                            "store writes are failing; keeping them queued in memory and retrying"
                        );
                        last_log = Some(Instant::now());
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(self.opts.retry_max);
                }
            }
        }
    }

    /// The open connection, after checking the file it was opened on is
    /// still the one at `path`. SQLite in WAL mode keeps writing to a file
    /// that was deleted, moved or replaced under it; those writes would be
    /// lost on restart, so a changed file counts as a failure and is reopened.
    fn ensure_open(&mut self) -> Result<&mut Connection, StoreError> {
        if self.conn.is_some() {
            match file_id(&self.path) {
                Ok(id) if Some(id) == self.file_id => {}
                Ok(_) => {
                    tracing::warn!(
                        db = %self.path.display(),
                        "database file was replaced while open; reopening it \
                         (restart signet to rebuild the mirror if it is a new, empty file)"
                    );
                    self.conn = None;
                }
                Err(e) => {
                    self.conn = None;
                    return Err(StoreError::Unavailable {
                        path: self.path.clone(),
                        detail: format!("the open database file is no longer at this path: {e}"),
                    });
                }
            }
        }
        if self.conn.is_none() {
            let (conn, _) = open_rw(&self.path, self.opts.busy_timeout)?;
            if mirror_is_empty(&conn).unwrap_or(false) {
                self.shared.needs_rebuild.store(true, Ordering::Relaxed);
            }
            self.file_id = file_id(&self.path).ok();
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or(StoreError::WriterStopped)
    }
}

/// True when the CA, certificate and CRL tables hold no rows.
pub(crate) fn mirror_is_empty(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT (EXISTS (SELECT 1 FROM certificate_authorities)
                  OR EXISTS (SELECT 1 FROM certificates)
                  OR EXISTS (SELECT 1 FROM crls))",
        [],
        |r| r.get(0),
    )
}

/// (device, inode) of the file at `path`.
pub(crate) fn file_id(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Deliver the outcome of one op. Counters are updated before any ack is
/// sent, so a flush observes them settled.
fn finish(op: Op, done: Done, shared: &Shared) {
    if !matches!(op, Op::Flush(_)) {
        shared.queued.fetch_sub(1, Ordering::Relaxed);
    }
    match (op, done) {
        (Op::Flush(tx), _) => {
            let _ = tx.send(());
        }
        (op, Done::Rejected(detail)) => {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            let what = op.describe();
            tracing::error!(record = %what, error = %detail, "store rejected a record");
            if let Op::Audit { ack: Some(ack), .. } = op {
                let _ = ack.send(Err(StoreError::Rejected { what, detail }));
            }
        }
        (Op::Audit { ack, .. }, Done::Audit(id)) => {
            shared.committed.fetch_add(1, Ordering::Relaxed);
            if let Some(ack) = ack {
                let _ = ack.send(Ok(id));
            }
        }
        (_, Done::Audit(_) | Done::Other | Done::Flush) => {
            shared.committed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Apply `ops` in one transaction. A record-level error rejects only that
/// op; any other error rolls the whole batch back and is returned.
///
/// The fast path runs the batch without savepoints. Only if some record is
/// refused is the batch rolled back and replayed with one savepoint per op,
/// so the refused op can be skipped alone.
fn apply_batch<'a>(
    conn: &mut Connection,
    ops: impl Iterator<Item = &'a Op> + Clone,
) -> rusqlite::Result<(Vec<Done>, Head)> {
    match apply_batch_with(conn, ops.clone(), false)? {
        Some(result) => Ok(result),
        None => apply_batch_with(conn, ops, true)?.ok_or_else(|| {
            // Unreachable: with savepoints every record error is absorbed.
            rusqlite::Error::InvalidQuery
        }),
    }
}

/// `Ok(None)`: a record was refused on the fast path (batch rolled back).
fn apply_batch_with<'a>(
    conn: &mut Connection,
    ops: impl Iterator<Item = &'a Op>,
    savepoints: bool,
) -> rusqlite::Result<Option<(Vec<Done>, Head)>> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read the chain head inside the write lock, so a second writer (another
    // process) can never fork the chain.
    let mut head = chain_head(&tx)?;
    let now = now_unix();
    let mut done = Vec::new();
    for op in ops {
        if matches!(op, Op::Flush(_)) {
            done.push(Done::Flush);
            continue;
        }
        if !savepoints {
            match apply_op(&tx, op, &mut head, now) {
                Ok(d) => done.push(d),
                Err(e) if classify(&e) == ErrorClass::Record => return Ok(None),
                Err(e) => return Err(e),
            }
            continue;
        }
        let sp = tx.savepoint()?;
        let mut next = head;
        match apply_op(&sp, op, &mut next, now) {
            Ok(d) => {
                sp.commit()?;
                head = next;
                done.push(d);
            }
            Err(e) if classify(&e) == ErrorClass::Record => {
                drop(sp); // rolls back to the savepoint
                done.push(Done::Rejected(e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit()?;
    Ok(Some((done, head)))
}

/// Periodic `audit chain head` log line.
#[derive(Default)]
struct Anchor {
    head: Head,
    logged_id: i64,
    logged_at: Option<Instant>,
}

impl Anchor {
    fn log(&mut self, path: &std::path::Path, every: Duration) {
        if self.head.0 == self.logged_id || self.logged_at.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        tracing::info!(
            db = %path.display(),
            audit_head_id = self.head.0,
            audit_head_hash = %hex::encode(self.head.1),
            "audit chain head (compare with `signet audit verify` to detect truncation)"
        );
        self.logged_id = self.head.0;
        self.logged_at = Some(Instant::now());
    }
}

/// (last id, last hash) of the audit chain.
fn chain_head(conn: &Connection) -> rusqlite::Result<Head> {
    let row: Option<(i64, String)> = conn
        .prepare_cached("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => (0, GENESIS),
        Some((id, hash)) => {
            let mut h = GENESIS;
            // A hand-edited, undecodable hash chains from zeros; `audit
            // verify` reports that row anyway.
            if hex::decode_to_slice(&hash, &mut h).is_err() {
                tracing::error!(
                    id,
                    "audit_log head hash is not 32 hex bytes; run `signet audit verify`"
                );
            }
            (id, h)
        }
    })
}

fn apply_op(conn: &Connection, op: &Op, head: &mut Head, now: i64) -> rusqlite::Result<Done> {
    match op {
        Op::Audit { event, .. } => insert_audit(conn, event, head).map(Done::Audit),
        Op::UpsertCa(r) => upsert_ca(conn, r, now).map(|_| Done::Other),
        Op::UpsertCert(r) => upsert_cert(conn, r, now).map(|_| Done::Other),
        Op::Revoke(r) => revoke(conn, r, now).map(|_| Done::Other),
        Op::Crl(r) => record_crl(conn, r, now).map(|_| Done::Other),
        Op::SetState { key, value } => conn
            .prepare_cached(
                "INSERT INTO mirror_state (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                                                 updated_at = excluded.updated_at",
            )?
            .execute(params![key, value, now])
            .map(|_| Done::Other),
        Op::Flush(_) => Ok(Done::Flush),
    }
}

fn insert_audit(conn: &Connection, e: &AuditEvent, head: &mut Head) -> rusqlite::Result<i64> {
    let id = head.0 + 1;
    // Same spelling as the mirror tables, however the caller wrote it.
    let serial = e.serial.as_deref().map(normalize_serial);
    let details = serde_json::to_string(&e.details)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    let row = ChainedRow {
        id,
        time_ms: e.time_ms,
        actor: &e.actor,
        operation: e.operation.as_str(),
        object_kind: &e.object.kind,
        object_namespace: e.object.namespace.as_deref(),
        object_name: e.object.name.as_deref(),
        object_uid: e.object.uid.as_deref(),
        ca: e.ca.as_deref(),
        serial: serial.as_deref(),
        outcome: e.outcome.as_str(),
        details: &details,
    };
    let hash = row.chain_hash(&head.1);
    conn.prepare_cached(
        "INSERT INTO audit_log (id, time_ms, actor, operation, object_kind, object_namespace,
                                object_name, object_uid, ca, serial, outcome, details, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        id,
        row.time_ms,
        row.actor,
        row.operation,
        row.object_kind,
        row.object_namespace,
        row.object_name,
        row.object_uid,
        row.ca,
        row.serial,
        row.outcome,
        row.details,
        hex::encode(hash),
    ])?;
    *head = (id, hash);
    Ok(id)
}

/// Id of CA `name`, creating a `pending` placeholder if it is not mirrored yet
/// (a certificate can be mirrored before its CA during a rebuild).
fn ca_id(conn: &Connection, name: &str, now: i64) -> rusqlite::Result<i64> {
    if let Some(id) = conn
        .prepare_cached("SELECT id FROM certificate_authorities WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    conn.prepare_cached(
        "INSERT INTO certificate_authorities (name, status, created_at, updated_at)
         VALUES (?1, 'pending', ?2, ?2)",
    )?
    .execute(params![name, now])?;
    Ok(conn.last_insert_rowid())
}

fn upsert_ca(conn: &Connection, r: &CaRecord, now: i64) -> rusqlite::Result<()> {
    let at = if r.updated_at > 0 { r.updated_at } else { now };
    conn.prepare_cached(
        "INSERT INTO certificate_authorities
             (name, uid, kms_key_arn, key_spec, subject, serial, parent, status,
              not_before, not_after, certificate_pem, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(?8, 'pending'), ?9, ?10, ?11, ?12, ?12)
         ON CONFLICT (name) DO UPDATE SET
             uid             = COALESCE(?2, uid),
             kms_key_arn     = COALESCE(?3, kms_key_arn),
             key_spec        = COALESCE(?4, key_spec),
             subject         = COALESCE(?5, subject),
             serial          = COALESCE(?6, serial),
             parent          = COALESCE(?7, parent),
             status          = COALESCE(?8, status),
             not_before      = COALESCE(?9, not_before),
             not_after       = COALESCE(?10, not_after),
             certificate_pem = COALESCE(?11, certificate_pem),
             updated_at      = ?12",
    )?
    .execute(params![
        r.name,
        r.uid,
        r.kms_key_arn,
        r.key_spec,
        r.subject,
        r.serial.as_deref().map(normalize_serial),
        r.parent,
        r.status.map(|s| s.as_str()),
        r.not_before,
        r.not_after,
        r.certificate_pem,
        at,
    ])?;
    Ok(())
}

fn json_list(v: &[String]) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn upsert_cert(conn: &Connection, r: &CertRecord, now: i64) -> rusqlite::Result<()> {
    let ca = ca_id(conn, &r.ca, now)?;
    let serial = normalize_serial(&r.serial);
    // Revocation is sticky: a later upsert (say, a stale rebuild) never
    // turns a revoked certificate back into an active one.
    conn.prepare_cached(
            "INSERT INTO certificates
                 (ca_id, namespace, name, uid, serial, subject, sans, usages, status,
                  not_before, not_after, revision, revoked_at, revocation_reason,
                  certificate_pem, issued_at, updated_at, secret_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             ON CONFLICT (ca_id, serial) DO UPDATE SET
                 namespace         = excluded.namespace,
                 name              = excluded.name,
                 uid               = excluded.uid,
                 subject           = excluded.subject,
                 sans              = excluded.sans,
                 usages            = excluded.usages,
                 status            = CASE WHEN certificates.status = 'revoked'
                                          THEN 'revoked' ELSE excluded.status END,
                 not_before        = excluded.not_before,
                 not_after         = excluded.not_after,
                 revision          = excluded.revision,
                 revoked_at        = COALESCE(certificates.revoked_at, excluded.revoked_at),
                 revocation_reason = COALESCE(certificates.revocation_reason,
                                              excluded.revocation_reason),
                 certificate_pem   = COALESCE(excluded.certificate_pem, certificates.certificate_pem),
                 issued_at         = excluded.issued_at,
                 updated_at        = excluded.updated_at,
                 secret_name       = COALESCE(excluded.secret_name, certificates.secret_name)",
        )?
        .execute(params![
                ca,
                r.namespace,
                r.name,
                r.uid,
                serial,
                r.subject,
                json_list(&r.sans)?,
                json_list(&r.usages)?,
                r.status.as_str(),
                r.not_before,
                r.not_after,
                r.revision,
                r.revoked_at,
                r.revocation_reason,
                r.certificate_pem,
                r.issued_at,
                now,
                r.secret_name,
            ])?;
    if r.status == CertStatus::Active {
        // Only the newest active certificate of an object stays active.
        conn.prepare_cached(
            "UPDATE certificates SET status = 'superseded', updated_at = ?3
              WHERE namespace = ?1 AND name = ?2 AND status = 'active'
                AND id != (SELECT id FROM certificates
                            WHERE namespace = ?1 AND name = ?2 AND status = 'active'
                            ORDER BY issued_at DESC, id DESC LIMIT 1)",
        )?
        .execute(params![r.namespace, r.name, now])?;
    }
    Ok(())
}

fn revoke(conn: &Connection, r: &RevocationRecord, now: i64) -> rusqlite::Result<()> {
    let ca = ca_id(conn, &r.ca, now)?;
    let serial = normalize_serial(&r.serial);
    let changed = conn
        .prepare_cached(
            "UPDATE certificates SET
                 revoked_at        = CASE WHEN status = 'revoked' AND revoked_at IS NOT NULL
                                          THEN revoked_at ELSE ?3 END,
                 revocation_reason = CASE WHEN status = 'revoked' AND revoked_at IS NOT NULL
                                          THEN revocation_reason ELSE ?4 END,
                 status            = 'revoked',
                 updated_at        = ?5
              WHERE ca_id = ?1 AND serial = ?2",
        )?
        .execute(params![ca, serial, r.revoked_at, r.reason, now])?;
    if changed == 0 {
        // Unknown certificate (for example rebuilt from a CRL only): keep the
        // revocation anyway, with what we know.
        conn.prepare_cached(
            "INSERT INTO certificates
                 (ca_id, namespace, name, serial, subject, status, not_before, not_after,
                  revoked_at, revocation_reason, issued_at, updated_at)
             VALUES (?1, '', '', ?2, '', 'revoked', 0, 0, ?3, ?4, 0, ?5)",
        )?
        .execute(params![ca, serial, r.revoked_at, r.reason, now])?;
    }
    Ok(())
}

fn record_crl(conn: &Connection, r: &CrlRecord, now: i64) -> rusqlite::Result<()> {
    let ca = ca_id(conn, &r.ca, now)?;
    let published = if r.published_at > 0 {
        r.published_at
    } else {
        now
    };
    conn.prepare_cached(
        "INSERT INTO crls (ca_id, crl_number, this_update, next_update, revoked_count, der, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (ca_id, crl_number) DO UPDATE SET
             this_update   = excluded.this_update,
             next_update   = excluded.next_update,
             revoked_count = excluded.revoked_count,
             der           = excluded.der,
             published_at  = excluded.published_at",
    )?
    .execute(params![
        ca,
        r.number,
        r.this_update,
        r.next_update,
        r.revoked_count,
        r.der,
        published
    ])?;
    Ok(())
}
