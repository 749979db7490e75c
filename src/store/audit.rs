//! The audit trail's hash chain.
//!
//! Row `n` stores `hash_n = SHA-256(hash_{n-1} || canonical(row_n))` in hex,
//! with `hash_0` = 32 zero bytes. `canonical` is the compact JSON array
//!
//! ```text
//! ["signet-audit-v1", id, time_ms, actor, operation, object_kind,
//!  object_namespace, object_name, object_uid, ca, serial, outcome, details]
//! ```
//!
//! where `details` is the stored JSON text verbatim (a string), and absent
//! values are `null`. Including the id means reordering, deleting or inserting
//! rows breaks the chain at the first affected row; editing any column breaks
//! it at the edited row. Truncating the newest rows is not detectable from the
//! table alone: compare the head hash that `signet audit verify` prints with
//! one recorded elsewhere (for example in the operator's logs) to cover that.

use aws_lc_rs::digest;
use rusqlite::Connection;
use serde::Serialize;

/// The `hash` the first row chains from.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// The columns of one audit row that the hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedRow<'a> {
    /// Row id.
    pub id: i64,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// Actor.
    pub actor: &'a str,
    /// Operation spelling.
    pub operation: &'a str,
    /// Object kind.
    pub object_kind: &'a str,
    /// Object namespace.
    pub object_namespace: Option<&'a str>,
    /// Object name.
    pub object_name: Option<&'a str>,
    /// Object uid.
    pub object_uid: Option<&'a str>,
    /// CA name.
    pub ca: Option<&'a str>,
    /// Serial.
    pub serial: Option<&'a str>,
    /// Outcome spelling.
    pub outcome: &'a str,
    /// Details JSON text as stored.
    pub details: &'a str,
}

impl ChainedRow<'_> {
    /// The canonical bytes the hash covers.
    pub fn canonical(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Canon<'b>(
            &'static str,
            i64,
            i64,
            &'b str,
            &'b str,
            &'b str,
            Option<&'b str>,
            Option<&'b str>,
            Option<&'b str>,
            Option<&'b str>,
            Option<&'b str>,
            &'b str,
            &'b str,
        );
        let c = Canon(
            "signet-audit-v1",
            self.id,
            self.time_ms,
            self.actor,
            self.operation,
            self.object_kind,
            self.object_namespace,
            self.object_name,
            self.object_uid,
            self.ca,
            self.serial,
            self.outcome,
            self.details,
        );
        // Serialising strings, integers and nulls into a Vec cannot fail.
        serde_json::to_vec(&c).unwrap_or_default()
    }

    /// `SHA-256(prev || canonical(self))`.
    pub fn chain_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(prev);
        ctx.update(&self.canonical());
        let d = ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// Id of the first row that does not verify.
    pub id: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// Result of [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows checked (up to and including the broken one).
    pub rows_checked: u64,
    /// Id and hash of the last row, when the chain is intact.
    pub head_id: Option<i64>,
    /// Hex hash of the last row, when the chain is intact.
    pub head_hash: Option<String>,
    /// The first broken row, if any.
    pub broken: Option<BrokenLink>,
}

impl VerifyReport {
    /// True when every row verified.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Recompute the whole chain in one read transaction (a consistent snapshot,
/// safe while the operator writes).
pub fn verify_chain(conn: &Connection) -> rusqlite::Result<VerifyReport> {
    let mut stmt = conn.prepare(
        "SELECT id, time_ms, actor, operation, object_kind, object_namespace, object_name,
                object_uid, ca, serial, outcome, details, hash
           FROM audit_log ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev = GENESIS;
    let mut prev_id: Option<i64> = None;
    let mut checked = 0u64;
    while let Some(r) = rows.next()? {
        checked += 1;
        let id: i64 = r.get(0)?;
        let actor: String = r.get(2)?;
        let operation: String = r.get(3)?;
        let object_kind: String = r.get(4)?;
        let ns: Option<String> = r.get(5)?;
        let name: Option<String> = r.get(6)?;
        let uid: Option<String> = r.get(7)?;
        let ca: Option<String> = r.get(8)?;
        let serial: Option<String> = r.get(9)?;
        let outcome: String = r.get(10)?;
        let details: String = r.get(11)?;
        let stored: String = r.get(12)?;
        let expected_id = prev_id.map_or(1, |p| p + 1);
        if id != expected_id {
            return Ok(broken(
                checked,
                id,
                format!(
                    "row ids jump from {} to {id}: rows were deleted or inserted",
                    expected_id - 1
                ),
            ));
        }
        let row = ChainedRow {
            id,
            time_ms: r.get(1)?,
            actor: &actor,
            operation: &operation,
            object_kind: &object_kind,
            object_namespace: ns.as_deref(),
            object_name: name.as_deref(),
            object_uid: uid.as_deref(),
            ca: ca.as_deref(),
            serial: serial.as_deref(),
            outcome: &outcome,
            details: &details,
        };
        let h = row.chain_hash(&prev);
        if hex::encode(h) != stored.to_ascii_lowercase() {
            return Ok(broken(
                checked,
                id,
                "stored hash does not match the row's content chained to the verified \
                 previous row: this row was modified (or its hash rewritten)"
                    .to_owned(),
            ));
        }
        prev = h;
        prev_id = Some(id);
    }
    Ok(VerifyReport {
        rows_checked: checked,
        head_id: prev_id,
        head_hash: prev_id.map(|_| hex::encode(prev)),
        broken: None,
    })
}

fn broken(checked: u64, id: i64, problem: String) -> VerifyReport {
    VerifyReport {
        rows_checked: checked,
        head_id: None,
        head_hash: None,
        broken: Some(BrokenLink { id, problem }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, actor: &str) -> ChainedRow<'_> {
        ChainedRow {
            id,
            time_ms: 1,
            actor,
            operation: "ca_issued",
            object_kind: "CertificateAuthority",
            object_namespace: None,
            object_name: Some("root"),
            object_uid: None,
            ca: Some("root"),
            serial: None,
            outcome: "success",
            details: "{}",
        }
    }

    #[test]
    fn hash_depends_on_every_input() {
        let a = row(1, "x").chain_hash(&GENESIS);
        assert_ne!(a, row(1, "y").chain_hash(&GENESIS));
        assert_ne!(a, row(2, "x").chain_hash(&GENESIS));
        assert_ne!(a, row(1, "x").chain_hash(&[1u8; 32]));
        assert_eq!(a, row(1, "x").chain_hash(&GENESIS));
    }

    #[test]
    fn none_and_empty_string_differ() {
        let mut r = row(1, "x");
        let none = r.chain_hash(&GENESIS);
        r.serial = Some("");
        assert_ne!(none, r.chain_hash(&GENESIS));
    }
}
