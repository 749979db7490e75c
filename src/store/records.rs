//! Plain record types exchanged with the store.
//!
//! They deliberately depend on nothing from Kubernetes: controllers convert
//! their objects into these, the CLI and HTTP layers read them back. Times
//! are unix seconds (UTC) except audit times, which are unix milliseconds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happened, as recorded in the audit trail.
///
/// The string form (`as_str`) is what is stored and what `signet audit
/// --operation` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum AuditOperation {
    /// A new KMS key was created for a CA.
    KmsKeyCreated,
    /// An existing KMS key (id, ARN or alias) was adopted by a CA.
    KmsKeyAdopted,
    /// A CA certificate was issued for the first time.
    CaIssued,
    /// A CA certificate was re-issued (renewal or rotation).
    CaRenewed,
    /// A CA certificate was revoked by its parent.
    CaRevoked,
    /// A leaf certificate was issued for the first time.
    CertificateIssued,
    /// A leaf certificate was re-issued.
    CertificateRenewed,
    /// A certificate was revoked.
    CertificateRevoked,
    /// A CRL was signed and published.
    CrlPublished,
    /// A request was refused by policy (validation, issuer constraints).
    PolicyDenied,
    /// KMS signing, or local verification of a KMS signature, failed.
    SigningFailed,
    /// The SQLite mirror was rebuilt from the cluster.
    MirrorRebuilt,
    KmsKeyDeletionScheduled,
}

impl AuditOperation {
    /// Every operation, in declaration order.
    pub const ALL: [AuditOperation; 13] = [
        Self::KmsKeyCreated,
        Self::KmsKeyAdopted,
        Self::CaIssued,
        Self::CaRenewed,
        Self::CaRevoked,
        Self::CertificateIssued,
        Self::CertificateRenewed,
        Self::CertificateRevoked,
        Self::CrlPublished,
        Self::PolicyDenied,
        Self::SigningFailed,
        Self::MirrorRebuilt,
        Self::KmsKeyDeletionScheduled,
    ];

    /// The stored (and CLI) spelling, e.g. `certificate_issued`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KmsKeyCreated => "kms_key_created",
            Self::KmsKeyAdopted => "kms_key_adopted",
            Self::CaIssued => "ca_issued",
            Self::CaRenewed => "ca_renewed",
            Self::CaRevoked => "ca_revoked",
            Self::CertificateIssued => "certificate_issued",
            Self::CertificateRenewed => "certificate_renewed",
            Self::CertificateRevoked => "certificate_revoked",
            Self::CrlPublished => "crl_published",
            Self::PolicyDenied => "policy_denied",
            Self::SigningFailed => "signing_failed",
            Self::MirrorRebuilt => "mirror_rebuilt",
            Self::KmsKeyDeletionScheduled => "kms_key_deletion_scheduled",
        }
    }

    /// All valid spellings joined by `, ` (for error messages).
    pub fn valid_values() -> String {
        Self::ALL
            .iter()
            .map(|o| o.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for AuditOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the known enum spellings.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?}; valid values: {valid}")]
pub struct UnknownValue {
    /// Which kind of value was being parsed.
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
    /// The accepted spellings.
    pub valid: String,
}

impl FromStr for AuditOperation {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "operation",
                value: s.to_owned(),
                valid: Self::valid_values(),
            })
    }
}

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Outcome {
    /// The operation completed.
    Success,
    /// The operation was attempted and failed.
    Failure,
    /// The operation was refused (policy).
    Denied,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Kubernetes object an audit row is about.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Kind, e.g. `Certificate`, `CertificateAuthority`, `CRL`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Object uid, when known.
    pub uid: Option<String>,
}

impl ObjectRef {
    /// A cluster-scoped object (CertificateAuthority, CRL).
    pub fn cluster(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            namespace: None,
            name: Some(name.into()),
            uid: None,
        }
    }

    /// A namespaced object (Certificate).
    pub fn namespaced(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            uid: None,
        }
    }

    /// Attach the object's uid.
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }
}

/// One audit event, as handed to [`crate::store::Store::audit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened, unix milliseconds. The caller's clock decides.
    pub time_ms: i64,
    /// Who did it: `controller/certificate`, `cli/<user>`, ...
    pub actor: String,
    /// What happened.
    pub operation: AuditOperation,
    /// Which object it happened to.
    pub object: ObjectRef,
    /// The CA involved, by name.
    pub ca: Option<String>,
    /// The certificate serial involved (lowercase hex, no colons).
    pub serial: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Free-form details (error message, reason, KMS key id, counts, ...).
    pub details: serde_json::Value,
}

impl AuditEvent {
    /// A successful event with empty details; refine with the `with_*` methods.
    pub fn new(
        time_ms: i64,
        actor: impl Into<String>,
        operation: AuditOperation,
        object: ObjectRef,
    ) -> Self {
        Self {
            time_ms,
            actor: actor.into(),
            operation,
            object,
            ca: None,
            serial: None,
            outcome: Outcome::Success,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Set the CA name.
    pub fn with_ca(mut self, ca: impl Into<String>) -> Self {
        self.ca = Some(ca.into());
        self
    }

    /// Set the serial (normalised to lowercase hex without separators).
    pub fn with_serial(mut self, serial: &str) -> Self {
        self.serial = Some(normalize_serial(serial));
        self
    }

    /// Set the outcome.
    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Mark the event failed and put the error (with its source chain) into
    /// `details.error`, keeping other details.
    pub fn with_error(mut self, err: &dyn std::error::Error) -> Self {
        self.outcome = Outcome::Failure;
        let msg = super::error::error_chain(err);
        match &mut self.details {
            serde_json::Value::Object(map) => {
                map.insert("error".to_owned(), serde_json::Value::String(msg));
            }
            other => {
                *other = serde_json::json!({ "error": msg });
            }
        }
        self
    }

    /// Set the details object.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Lifecycle state of a mirrored CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum CaStatus {
    /// Known by name (for example referenced by a certificate) but not yet issued.
    Pending,
    /// Issued and usable.
    Active,
    /// Past notAfter.
    Expired,
    /// Revoked by its parent.
    Revoked,
    /// Issuance failed; see the audit trail.
    Failed,
}

impl CaStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for CaStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Pending,
            Self::Active,
            Self::Expired,
            Self::Revoked,
            Self::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| UnknownValue {
            what: "CA status",
            value: s.to_owned(),
            valid: "pending, active, expired, revoked, failed".to_owned(),
        })
    }
}

/// Lifecycle state of a mirrored certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum CertStatus {
    /// The current certificate of its Certificate object.
    Active,
    /// Replaced by a newer certificate for the same object.
    Superseded,
    /// Revoked.
    Revoked,
    /// Past notAfter. Reads also report an `active` row past notAfter as expired.
    Expired,
}

impl CertStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Superseded => "superseded",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Active, Self::Superseded, Self::Revoked, Self::Expired]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "certificate status",
                value: s.to_owned(),
                valid: "active, superseded, revoked, expired".to_owned(),
            })
    }
}

/// A CertificateAuthority as mirrored. Upserting is idempotent, keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CaRecord {
    /// CertificateAuthority name (cluster-scoped).
    pub name: String,
    /// Object uid.
    pub uid: Option<String>,
    /// KMS key ARN (or id / alias as adopted).
    pub kms_key_arn: Option<String>,
    /// KMS key spec, e.g. `ECC_NIST_P256`, `RSA_3072`.
    pub key_spec: Option<String>,
    /// Subject DN in RFC 4514 form.
    pub subject: Option<String>,
    /// Serial of the current CA certificate (lowercase hex).
    pub serial: Option<String>,
    /// Parent CA name for intermediates; `None` for roots.
    pub parent: Option<String>,
    /// Lifecycle state.
    pub status: Option<CaStatus>,
    /// notBefore of the current CA certificate, unix seconds.
    pub not_before: Option<i64>,
    /// notAfter of the current CA certificate, unix seconds.
    pub not_after: Option<i64>,
    /// Current CA certificate, PEM.
    pub certificate_pem: Option<String>,
    /// When this record was observed, unix seconds.
    pub updated_at: i64,
}

/// A leaf certificate as mirrored. Upserting is idempotent, keyed by
/// (`ca`, `serial`). Upserting an `Active` certificate marks older active
/// certificates of the same `namespace`/`name` as `Superseded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Issuing CA name. A placeholder CA row is created if it is not mirrored yet.
    pub ca: String,
    /// Namespace of the Certificate object.
    pub namespace: String,
    /// Name of the Certificate object.
    pub name: String,
    /// Uid of the Certificate object (empty when unknown).
    pub uid: String,
    /// Serial number, lowercase hex without separators (normalised on write).
    pub serial: String,
    /// Subject DN in RFC 4514 form.
    pub subject: String,
    /// SANs as typed strings: `DNS:a.example`, `IP:10.0.0.1`, `URI:spiffe://..`, `email:a@b`.
    pub sans: Vec<String>,
    /// Key usages / extended key usages, cert-manager spelling (`server auth`, ...).
    pub usages: Vec<String>,
    /// Lifecycle state.
    pub status: CertStatus,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// Issuance counter of the Certificate object (status.revision).
    pub revision: i64,
    /// Revocation time, unix seconds.
    pub revoked_at: Option<i64>,
    /// Revocation reason (RFC 5280 name, e.g. `keyCompromise`).
    pub revocation_reason: Option<String>,
    /// Certificate PEM (never the key).
    pub certificate_pem: Option<String>,
    /// Secret the certificate was written to.
    pub secret_name: Option<String>,
    /// When it was issued, unix seconds.
    pub issued_at: i64,
}

/// A revocation to apply to a mirrored certificate.
///
/// If the certificate is not mirrored (for example after rebuilding from a
/// CRL only), a minimal row is created so the revocation is never lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// Issuing CA name.
    pub ca: String,
    /// Serial number (normalised on write).
    pub serial: String,
    /// Revocation time, unix seconds.
    pub revoked_at: i64,
    /// RFC 5280 reason name.
    pub reason: Option<String>,
}

/// A signed CRL. Recording is idempotent, keyed by (`ca`, `number`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlRecord {
    /// CA name.
    pub ca: String,
    /// CRL number (monotonic per CA).
    pub number: i64,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: i64,
    /// Number of entries.
    pub revoked_count: i64,
    /// The DER-encoded CRL.
    #[serde(with = "hex_bytes")]
    pub der: Vec<u8>,
    /// When it was published, unix seconds.
    pub published_at: i64,
}

/// What a mirror rebuild restored, for the `mirror_rebuilt` audit row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RebuildSummary {
    /// When the rebuild finished, unix milliseconds.
    pub time_ms: i64,
    /// Who rebuilt, usually `controller/startup`.
    pub actor: String,
    /// Why: `empty database`, `database file missing`, ...
    pub reason: String,
    /// CAs restored.
    pub cas: u64,
    /// Certificates restored.
    pub certificates: u64,
    /// CRLs restored.
    pub crls: u64,
}

/// Normalise a serial to the form the store keys on: lowercase hex of the
/// unsigned value, without `:`/space/`-` separators or a `0x` prefix,
/// without redundant leading zero bytes, and of even length (so it always
/// hex-decodes to the serial's bytes): `00:A1:0B` → `a10b`, `0xF` → `0f`.
pub fn normalize_serial(serial: &str) -> String {
    let cleaned: String = serial
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .flat_map(|c| c.to_lowercase())
        .collect();
    let cleaned = cleaned.strip_prefix("0x").unwrap_or(&cleaned);
    let trimmed = cleaned.trim_start_matches('0');
    if trimmed.is_empty() {
        return if cleaned.is_empty() {
            String::new()
        } else {
            "00".to_owned()
        };
    }
    if trimmed.len() % 2 == 1 {
        format!("0{trimmed}")
    } else {
        trimmed.to_owned()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_error_marks_failure_and_keeps_details() {
        let err = std::io::Error::other("KMS throttled");
        let e = AuditEvent::new(
            1,
            "controller/ca",
            AuditOperation::SigningFailed,
            ObjectRef::cluster("CertificateAuthority", "root"),
        )
        .with_details(serde_json::json!({ "attempt": 3 }))
        .with_error(&err);
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.details["attempt"], 3);
        assert_eq!(e.details["error"], "KMS throttled");
    }

    #[test]
    fn serials_are_normalised() {
        assert_eq!(normalize_serial("0A:1b:FF"), "0a1bff");
        assert_eq!(normalize_serial("00:A1:0B"), "a10b");
        assert_eq!(normalize_serial("00"), "00");
        assert_eq!(normalize_serial("0x00fe"), "fe");
        assert_eq!(normalize_serial("0x0f0"), "f0");
        assert_eq!(normalize_serial("1"), "01");
        assert_eq!(normalize_serial(""), "");
    }

    #[test]
    fn operations_round_trip_through_their_spelling() {
        for op in AuditOperation::ALL {
            assert_eq!(op.as_str().parse::<AuditOperation>().ok(), Some(op));
        }
        let err = "nope"
            .parse::<AuditOperation>()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("certificate_revoked")));
    }
}
