//! The read side. [`Reader`] wraps a read-only connection; in WAL mode it
//! never blocks the writer and sees a consistent snapshot per query. The CLI
//! uses it directly, [`crate::store::Store`] through `spawn_blocking`.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use serde::Serialize;

use super::audit::{VerifyReport, verify_chain};
use super::clock::format_unix_ms;
use super::error::StoreError;
use super::migrations::{map_err, open_ro};
use super::records::{AuditOperation, CaStatus, CertStatus, normalize_serial};

/// Filters for [`Reader::certificates`]. All set filters must match.
#[derive(Debug, Clone, Default)]
pub struct CertQuery {
    /// Only certificates of this CA.
    pub ca: Option<String>,
    /// Only this (effective) status; `active` past notAfter counts as `expired`.
    pub status: Option<CertStatus>,
    /// Only still-valid active certificates whose notAfter is at or before
    /// this unix time.
    pub expiring_before: Option<i64>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this Certificate name.
    pub name: Option<String>,
    /// Only this serial (normalised).
    pub serial: Option<String>,
    /// "Now" for the effective status, unix seconds.
    pub now: i64,
    /// Include the PEM in the rows.
    pub include_pem: bool,
    /// At most this many rows (soonest notAfter first).
    pub limit: Option<u32>,
}

/// One mirrored certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRow {
    /// Issuing CA name.
    pub ca: String,
    /// Namespace.
    pub namespace: String,
    /// Certificate object name.
    pub name: String,
    /// Object uid.
    pub uid: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// Subject DN.
    pub subject: String,
    /// SANs (`DNS:..`, `IP:..`, ...).
    pub sans: Vec<String>,
    /// Usages.
    pub usages: Vec<String>,
    /// Effective status.
    pub status: CertStatus,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// Revision.
    pub revision: i64,
    /// Revocation time, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Revocation reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
    /// Secret the certificate was written to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Issued at, unix seconds.
    pub issued_at: i64,
    /// PEM, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
}

/// One mirrored CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaRow {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: Option<String>,
    /// KMS key ARN.
    pub kms_key_arn: Option<String>,
    /// KMS key spec.
    pub key_spec: Option<String>,
    /// Subject DN.
    pub subject: Option<String>,
    /// Current serial.
    pub serial: Option<String>,
    /// Parent CA.
    pub parent: Option<String>,
    /// Status.
    pub status: CaStatus,
    /// notBefore.
    pub not_before: Option<i64>,
    /// notAfter.
    pub not_after: Option<i64>,
    /// PEM.
    pub certificate_pem: Option<String>,
    /// First seen.
    pub created_at: i64,
    /// Last updated.
    pub updated_at: i64,
}

/// A revoked serial, for building CRLs and answering OCSP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevokedSerial {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Revocation time, unix seconds.
    pub revoked_at: i64,
    /// RFC 5280 reason name.
    pub reason: Option<String>,
}

/// A stored CRL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlRow {
    /// CA name.
    pub ca: String,
    /// CRL number.
    pub number: i64,
    /// thisUpdate.
    pub this_update: i64,
    /// nextUpdate.
    pub next_update: i64,
    /// Entries.
    pub revoked_count: i64,
    /// DER.
    #[serde(skip)]
    pub der: Vec<u8>,
    /// Published at.
    pub published_at: i64,
}

/// Filters for [`Reader::audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only rows at or after this unix millisecond.
    pub since_ms: Option<i64>,
    /// Only rows about this CA.
    pub ca: Option<String>,
    /// Only rows about objects in this namespace.
    pub namespace: Option<String>,
    /// Only this operation.
    pub operation: Option<AuditOperation>,
    /// Only rows about this object name.
    pub object_name: Option<String>,
    /// Only the newest this many rows (still returned oldest first).
    pub limit: Option<u32>,
}

/// One audit row as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// Row id (position in the chain).
    pub id: i64,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// RFC 3339 rendering of `time_ms`.
    pub time: String,
    /// Actor.
    pub actor: String,
    /// Operation (stored spelling).
    pub operation: String,
    /// Object kind.
    pub object_kind: String,
    /// Object namespace.
    pub object_namespace: Option<String>,
    /// Object name.
    pub object_name: Option<String>,
    /// Object uid.
    pub object_uid: Option<String>,
    /// CA.
    pub ca: Option<String>,
    /// Serial.
    pub serial: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// Details.
    pub details: serde_json::Value,
    /// Chain hash (hex).
    pub hash: String,
}

/// Row counts of the mirror tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MirrorCounts {
    /// Rows in `certificate_authorities`.
    pub cas: u64,
    /// Rows in `certificates`.
    pub certificates: u64,
    /// Rows in `crls`.
    pub crls: u64,
    /// Rows in `audit_log`.
    pub audit_rows: u64,
}

/// A read-only view of the database.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
    /// (device, inode) of the file opened, to notice a replaced file.
    file_id: Option<(u64, u64)>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish()
    }
}

impl Reader {
    /// Open `path` read-only. Fails with [`StoreError::Missing`] if there is
    /// no file, [`StoreError::Corrupt`] if it is not a database, and
    /// [`StoreError::SchemaTooOld`] if it needs `signet db migrate`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_ro(path)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            file_id: super::writer::file_id(path).ok(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False once the file at the path is not the one this reader opened
    /// (deleted or replaced): reopen to see the current database.
    pub fn is_current(&self) -> bool {
        self.file_id.is_some() && super::writer::file_id(&self.path).ok() == self.file_id
    }

    fn err(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| map_err(&self.path, what, e)
    }

    /// Certificates matching `q`, soonest notAfter first.
    pub fn certificates(&self, q: &CertQuery) -> Result<Vec<CertRow>, StoreError> {
        let mut sql = String::from(
            "SELECT ca.name, c.namespace, c.name, c.uid, c.serial, c.subject, c.sans, c.usages,
                    CASE WHEN c.status = 'active' AND c.not_after <= ?1 THEN 'expired'
                         ELSE c.status END AS eff_status,
                    c.not_before, c.not_after, c.revision, c.revoked_at, c.revocation_reason,
                    c.secret_name, c.issued_at, c.certificate_pem, c.id
               FROM certificates c JOIN certificate_authorities ca ON ca.id = c.ca_id
              WHERE 1 = 1",
        );
        let mut args: Vec<Value> = vec![Value::Integer(q.now)];
        let mut push = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(ca) = &q.ca {
            push(&mut sql, " AND ca.name = ?", Value::Text(ca.clone()));
        }
        if let Some(status) = q.status {
            push(
                &mut sql,
                " AND eff_status = ?",
                Value::Text(status.as_str().to_owned()),
            );
        }
        if let Some(before) = q.expiring_before {
            sql.push_str(" AND c.status = 'active' AND c.not_after > ?1");
            push(&mut sql, " AND c.not_after <= ?", Value::Integer(before));
        }
        if let Some(ns) = &q.namespace {
            push(&mut sql, " AND c.namespace = ?", Value::Text(ns.clone()));
        }
        if let Some(name) = &q.name {
            push(&mut sql, " AND c.name = ?", Value::Text(name.clone()));
        }
        if let Some(serial) = &q.serial {
            push(
                &mut sql,
                " AND c.serial = ?",
                Value::Text(normalize_serial(serial)),
            );
        }
        sql.push_str(" ORDER BY c.not_after, c.id");
        if let Some(limit) = q.limit {
            push(&mut sql, " LIMIT ?", Value::Integer(i64::from(limit)));
        }
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(self.err("listing certificates"))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(17)?, cert_row(r, q.include_pem)))
            })
            .map_err(self.err("listing certificates"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, row) = row.map_err(self.err("listing certificates"))?;
            out.push(row.map_err(|detail| StoreError::BadRow {
                path: self.path.clone(),
                table: "certificates",
                id,
                detail,
            })?);
        }
        Ok(out)
    }

    /// Every mirrored CA, by name.
    pub fn cas(&self) -> Result<Vec<CaRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, uid, kms_key_arn, key_spec, subject, serial, parent, status,
                        not_before, not_after, certificate_pem, created_at, updated_at, id
                   FROM certificate_authorities ORDER BY name",
            )
            .map_err(self.err("listing CAs"))?;
        let rows = stmt
            .query_map([], |r| {
                let status: String = r.get(7)?;
                Ok((
                    r.get::<_, i64>(13)?,
                    status,
                    CaRow {
                        name: r.get(0)?,
                        uid: r.get(1)?,
                        kms_key_arn: r.get(2)?,
                        key_spec: r.get(3)?,
                        subject: r.get(4)?,
                        serial: r.get(5)?,
                        parent: r.get(6)?,
                        status: CaStatus::Pending,
                        not_before: r.get(8)?,
                        not_after: r.get(9)?,
                        certificate_pem: r.get(10)?,
                        created_at: r.get(11)?,
                        updated_at: r.get(12)?,
                    },
                ))
            })
            .map_err(self.err("listing CAs"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, status, mut ca) = row.map_err(self.err("listing CAs"))?;
            ca.status =
                status
                    .parse()
                    .map_err(|e: super::records::UnknownValue| StoreError::BadRow {
                        path: self.path.clone(),
                        table: "certificate_authorities",
                        id,
                        detail: e.to_string(),
                    })?;
            out.push(ca);
        }
        Ok(out)
    }

    /// Revoked serials of CA `ca`, oldest revocation first.
    pub fn revoked_serials(&self, ca: &str) -> Result<Vec<RevokedSerial>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.serial, COALESCE(c.revoked_at, c.updated_at), c.revocation_reason
                   FROM certificates c JOIN certificate_authorities ca ON ca.id = c.ca_id
                  WHERE ca.name = ?1 AND c.status = 'revoked'
                  ORDER BY 2, c.serial",
            )
            .map_err(self.err("listing revoked serials"))?;
        let rows = stmt
            .query_map([ca], |r| {
                Ok(RevokedSerial {
                    serial: r.get(0)?,
                    revoked_at: r.get(1)?,
                    reason: r.get(2)?,
                })
            })
            .map_err(self.err("listing revoked serials"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing revoked serials"))
    }

    /// The highest CRL number recorded for CA `ca`.
    pub fn latest_crl_number(&self, ca: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT MAX(crl_number) FROM crls
                  WHERE ca_id = (SELECT id FROM certificate_authorities WHERE name = ?1)",
            )
            .and_then(|mut s| s.query_row([ca], |r| r.get(0)))
            .map_err(self.err("reading the latest CRL number"))
    }

    /// The CRL with the highest number for CA `ca`.
    pub fn latest_crl(&self, ca: &str) -> Result<Option<CrlRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT ca.name, crl_number, this_update, next_update, revoked_count, der,
                        published_at
                   FROM crls JOIN certificate_authorities ca ON ca.id = crls.ca_id
                  WHERE ca.name = ?1 ORDER BY crl_number DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([ca], |r| {
                    Ok(CrlRow {
                        ca: r.get(0)?,
                        number: r.get(1)?,
                        this_update: r.get(2)?,
                        next_update: r.get(3)?,
                        revoked_count: r.get(4)?,
                        der: r.get(5)?,
                        published_at: r.get(6)?,
                    })
                })
                .optional()
            })
            .map_err(self.err("reading the latest CRL"))
    }

    /// Audit rows matching `q`, oldest first.
    pub fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let mut out = Vec::new();
        self.audit_each(q, |row| {
            out.push(row);
            Ok::<(), StoreError>(())
        })?;
        Ok(out)
    }

    /// Stream audit rows matching `q`, oldest first, to `f` without holding
    /// them all in memory (for exporting a large trail). `f`'s error stops
    /// the scan and is returned.
    pub fn audit_each<E: From<StoreError>>(
        &self,
        q: &AuditQuery,
        mut f: impl FnMut(AuditRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut sql = String::from(
            "SELECT id, time_ms, actor, operation, object_kind, object_namespace, object_name,
                    object_uid, ca, serial, outcome, details, hash
               FROM audit_log WHERE 1 = 1",
        );
        let mut args: Vec<Value> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(since) = q.since_ms {
            push(&mut sql, " AND time_ms >= ?", Value::Integer(since));
        }
        if let Some(ca) = &q.ca {
            push(&mut sql, " AND ca = ?", Value::Text(ca.clone()));
        }
        if let Some(ns) = &q.namespace {
            push(
                &mut sql,
                " AND object_namespace = ?",
                Value::Text(ns.clone()),
            );
        }
        if let Some(op) = q.operation {
            push(
                &mut sql,
                " AND operation = ?",
                Value::Text(op.as_str().to_owned()),
            );
        }
        if let Some(name) = &q.object_name {
            push(&mut sql, " AND object_name = ?", Value::Text(name.clone()));
        }
        if let Some(limit) = q.limit {
            // The newest `limit` rows, still returned oldest first.
            push(
                &mut sql,
                " ORDER BY id DESC LIMIT ?",
                Value::Integer(i64::from(limit)),
            );
            sql = format!("SELECT * FROM ({sql}) ORDER BY id");
        } else {
            sql.push_str(" ORDER BY id");
        }
        let err = |e| E::from(map_err(&self.path, "querying the audit trail", e));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(err)?;
        let mut rows = stmt.query(params_from_iter(args)).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            f(audit_row(r).map_err(err)?)?;
        }
        Ok(())
    }

    /// Recompute the audit hash chain.
    pub fn verify_audit_chain(&self) -> Result<VerifyReport, StoreError> {
        // One read transaction: a consistent snapshot while the operator writes.
        self.conn
            .execute_batch("BEGIN")
            .map_err(self.err("verifying the audit chain"))?;
        let report = verify_chain(&self.conn).map_err(self.err("verifying the audit chain"));
        let _ = self.conn.execute_batch("COMMIT");
        report
    }

    /// The stored hash of audit row `id` (for checking an anchor recorded
    /// outside the database).
    pub fn audit_hash(&self, id: i64) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT hash FROM audit_log WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(self.err("reading an audit row hash"))
    }

    /// Row counts of the mirror tables.
    pub fn counts(&self) -> Result<MirrorCounts, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM certificate_authorities),
                        (SELECT COUNT(*) FROM certificates),
                        (SELECT COUNT(*) FROM crls),
                        (SELECT COUNT(*) FROM audit_log)",
                [],
                |r| {
                    Ok(MirrorCounts {
                        cas: r.get::<_, i64>(0)?.unsigned_abs(),
                        certificates: r.get::<_, i64>(1)?.unsigned_abs(),
                        crls: r.get::<_, i64>(2)?.unsigned_abs(),
                        audit_rows: r.get::<_, i64>(3)?.unsigned_abs(),
                    })
                },
            )
            .map_err(self.err("counting rows"))
    }

    /// True when the CA, certificate and CRL tables are all empty: the
    /// operator should rebuild the mirror from the cluster.
    pub fn is_empty_mirror(&self) -> Result<bool, StoreError> {
        let c = self.counts()?;
        Ok(c.cas == 0 && c.certificates == 0 && c.crls == 0)
    }

    /// A `mirror_state` value (for example `last_rebuild`).
    pub fn mirror_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM mirror_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading mirror state"))
    }

    /// Raw access for tests and diagnostics (read-only connection).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    let details: String = r.get(11)?;
    let time_ms: i64 = r.get(1)?;
    Ok(AuditRow {
        id: r.get(0)?,
        time_ms,
        time: format_unix_ms(time_ms),
        actor: r.get(2)?,
        operation: r.get(3)?,
        object_kind: r.get(4)?,
        object_namespace: r.get(5)?,
        object_name: r.get(6)?,
        object_uid: r.get(7)?,
        ca: r.get(8)?,
        serial: r.get(9)?,
        outcome: r.get(10)?,
        // Stored rows always hold JSON (a CHECK constraint); show anything
        // else verbatim rather than failing the listing.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        hash: r.get(12)?,
    })
}

/// Decode one certificates row; the outer error is SQLite's, the inner one
/// describes a malformed stored value.
fn cert_row(r: &Row<'_>, include_pem: bool) -> Result<CertRow, String> {
    let get = |e: rusqlite::Error| e.to_string();
    let sans: String = r.get(6).map_err(get)?;
    let usages: String = r.get(7).map_err(get)?;
    let status: String = r.get(8).map_err(get)?;
    Ok(CertRow {
        ca: r.get(0).map_err(get)?,
        namespace: r.get(1).map_err(get)?,
        name: r.get(2).map_err(get)?,
        uid: r.get(3).map_err(get)?,
        serial: r.get(4).map_err(get)?,
        subject: r.get(5).map_err(get)?,
        sans: serde_json::from_str(&sans).map_err(|e| format!("sans: {e}"))?,
        usages: serde_json::from_str(&usages).map_err(|e| format!("usages: {e}"))?,
        status: status
            .parse()
            .map_err(|e: super::records::UnknownValue| e.to_string())?,
        not_before: r.get(9).map_err(get)?,
        not_after: r.get(10).map_err(get)?,
        revision: r.get(11).map_err(get)?,
        revoked_at: r.get(12).map_err(get)?,
        revocation_reason: r.get(13).map_err(get)?,
        secret_name: r.get(14).map_err(get)?,
        issued_at: r.get(15).map_err(get)?,
        certificate_pem: if include_pem {
            r.get(16).map_err(get)?
        } else {
            None
        },
    })
}
