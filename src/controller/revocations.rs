//! The durable revocation register of each CA.
//!
//! A revocation is written here before anything else reports it, so it
//! survives operator restarts, deletion of the Certificate and loss of the
//! SQLite volume. The CRL controller watches the register and re-signs the
//! CA's CRL within seconds; it also folds the entries of the last published
//! CRL back in, so the signed CRL is a second durable copy.
//!
//! The register of a CA is a set of ConfigMap *shards* in the operator's
//! namespace, labelled with the CA: `signet-revocations-<ca>` (shard 0, the
//! name older versions used) and `signet-revocations-<ca>-shard-<n>`, each
//! holding at most [`SHARD_ENTRIES`] entries (a few hundred KB, well under
//! the 1 MiB object limit), so a CA holds any number of revocations.
//! Entries leave once their certificate has expired (plus the CRL's
//! retention); nothing else removes them.
//!
//! An entry that cannot be read (hand-edited, written by something else) is
//! reported, skipped, and kept verbatim: it never stops the other
//! revocations from being listed, and nobody's data is dropped.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use super::Error;
use crate::api::RevocationReason;

/// Label carrying the CA on every register shard (the CA name, or a hash of
/// it when the name is not a valid label value).
pub const LABEL_CA: &str = "signet.dev/revocations-for";
/// Label carrying the shard number.
pub const LABEL_SHARD: &str = "signet.dev/revocations-shard";
/// Annotation carrying the full CA name.
pub const ANN_CA: &str = "signet.dev/certificate-authority";
/// Data key holding the JSON list.
pub const DATA_KEY: &str = "revocations.json";
/// Most entries one shard holds (compact JSON, about 200 bytes an entry).
pub const SHARD_ENTRIES: usize = 2000;

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    /// Serial number (normal form: even-length lower-case hex).
    pub serial: String,
    /// Revocation time (unix seconds).
    pub revoked_at: i64,
    /// Why.
    pub reason: RevocationReason,
    /// notAfter of the revoked certificate (unix seconds); the entry leaves
    /// the register and the CRL after it (plus the CRL's retention).
    pub not_after: i64,
    /// `namespace/name` of the Certificate, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Who revoked it (`user:<name>`, `controller`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// One shard as read.
#[derive(Debug, Clone, Default)]
pub struct Shard {
    /// Shard number.
    pub number: usize,
    /// Its ConfigMap (with resourceVersion, for safe updates).
    pub config_map: ConfigMap,
    /// Its usable entries.
    pub entries: Vec<Revoked>,
    /// Its unreadable entries, verbatim.
    pub unreadable: Vec<serde_json::Value>,
}

/// A register as read: the usable entries of all shards and a description
/// of the ones that were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Register {
    /// Usable entries, one per serial.
    pub entries: Vec<Revoked>,
    /// One line per skipped entry.
    pub skipped: Vec<String>,
    /// The skipped entries as found.
    pub unreadable: Vec<serde_json::Value>,
}

/// The label value naming CA `ca`.
pub fn ca_label(ca: &str) -> String {
    let valid = !ca.is_empty()
        && ca.len() <= 63
        && ca
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && ca.starts_with(|c: char| c.is_ascii_alphanumeric())
        && ca.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return ca.to_string();
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ca.as_bytes());
    format!("h-{}", &hex::encode(d.as_ref())[..40])
}

/// Name of shard `n` of CA `ca`.
pub fn shard_name(ca: &str, n: usize) -> String {
    if n == 0 {
        format!("signet-revocations-{ca}")
    } else {
        format!("signet-revocations-{ca}-shard-{n}")
    }
}

/// Name of the first shard of CA `ca` (the register older versions wrote).
pub fn config_map_name(ca: &str) -> String {
    shard_name(ca, 0)
}

/// Parses one shard ConfigMap entry by entry (serials normalised).
pub fn parse_shard(
    cm: &ConfigMap,
    skipped: &mut Vec<String>,
) -> (Vec<Revoked>, Vec<serde_json::Value>) {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let (mut entries, mut unreadable) = (Vec::new(), Vec::new());
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(DATA_KEY)) else {
        return (entries, unreadable);
    };
    let items: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            skipped.push(format!("{name}: {DATA_KEY} is not a JSON list ({e})"));
            return (entries, unreadable);
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let problem = match serde_json::from_value::<Revoked>(item.clone()) {
            Ok(mut r) => match crate::pki::normalize_serial(&r.serial) {
                Some(s) => {
                    r.serial = s;
                    entries.push(r);
                    continue;
                }
                None => format!("serial {:?} is not a valid serial", r.serial),
            },
            Err(e) => e.to_string(),
        };
        skipped.push(format!("{name}[{i}]: {problem}"));
        unreadable.push(item);
    }
    (entries, unreadable)
}

/// Parses one register ConfigMap (a shard) into a register.
pub fn parse(cm: &ConfigMap) -> Register {
    let mut out = Register::default();
    let (entries, unreadable) = parse_shard(cm, &mut out.skipped);
    out.unreadable = unreadable;
    for e in entries {
        if !out.entries.iter().any(|x| x.serial == e.serial) {
            out.entries.push(e);
        }
    }
    out
}

fn shard_number(cm: &ConfigMap) -> usize {
    cm.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SHARD))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The shards of `ca`, by number.
pub async fn shards(
    client: &kube::Client,
    namespace: &str,
    ca: &str,
) -> Result<(Vec<Shard>, Vec<String>), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("{LABEL_CA}={}", ca_label(ca)));
    let mut skipped = Vec::new();
    let mut out: Vec<Shard> = api
        .list(&lp)
        .await?
        .into_iter()
        .filter(|cm| {
            // Another CA whose label hashes the same, or a name clash.
            cm.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_CA))
                .is_none_or(|c| c == ca)
        })
        .map(|cm| {
            let (entries, unreadable) = parse_shard(&cm, &mut skipped);
            Shard {
                number: shard_number(&cm),
                config_map: cm,
                entries,
                unreadable,
            }
        })
        .collect();
    out.sort_by_key(|s| s.number);
    Ok((out, skipped))
}

/// Reads the register of `ca` (empty when it has no shard yet).
pub async fn list(client: &kube::Client, namespace: &str, ca: &str) -> Result<Register, Error> {
    let (shards, skipped) = shards(client, namespace, ca).await?;
    let mut out = Register {
        skipped,
        ..Default::default()
    };
    let mut seen = std::collections::HashSet::new();
    for s in shards {
        out.unreadable.extend(s.unreadable);
        for e in s.entries {
            if seen.insert(e.serial.clone()) {
                out.entries.push(e);
            }
        }
    }
    Ok(out)
}

fn shard_config_map(ca: &str, namespace: &str, n: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(shard_name(ca, n)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (LABEL_CA.to_string(), ca_label(ca)),
                (LABEL_SHARD.to_string(), n.to_string()),
                ("app.kubernetes.io/managed-by".into(), "signet".into()),
            ])),
            annotations: Some(BTreeMap::from([(ANN_CA.to_string(), ca.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Writes `entries` (and the unreadable ones, verbatim) into `cm`: replace
/// with its resourceVersion, or create it. `Ok(false)` on a conflict.
async fn write_shard(
    api: &Api<ConfigMap>,
    mut cm: ConfigMap,
    entries: &[Revoked],
    unreadable: &[serde_json::Value],
) -> Result<bool, Error> {
    let mut items: Vec<serde_json::Value> = entries
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Other(format!("encoding revocations: {e}")))?;
    items.extend(unreadable.iter().cloned());
    let data = serde_json::to_string(&items)
        .map_err(|e| Error::Other(format!("encoding revocations: {e}")))?;
    cm.data
        .get_or_insert_with(BTreeMap::new)
        .insert(DATA_KEY.into(), data);
    let name = cm.metadata.name.clone().unwrap_or_default();
    let res = if cm.metadata.resource_version.is_some() {
        api.replace(&name, &PostParams::default(), &cm).await
    } else {
        api.create(&PostParams::default(), &cm).await
    };
    match res {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(ae)) if ae.code == 409 => Ok(false),
        Err(e) => Err(Error::from_write(
            &format!("ConfigMap {name}"),
            "check the operator's RBAC in its namespace",
            e,
        )),
    }
}

/// Adds entries to the register of `ca` (idempotent by serial): into the
/// last shard while it has room, then into new shards. resourceVersion
/// makes concurrent writers safe; conflicts are retried. Returns how many
/// entries were new.
pub async fn add(
    client: &kube::Client,
    namespace: &str,
    ca: &str,
    entries: &[Revoked],
) -> Result<usize, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut added = 0;
    for _attempt in 0..16 {
        let (shards, _) = shards(client, namespace, ca).await?;
        let known: std::collections::HashSet<&str> = shards
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.serial.as_str()))
            .collect();
        let mut fresh: Vec<Revoked> = Vec::new();
        for e in entries {
            if !known.contains(e.serial.as_str()) && !fresh.iter().any(|f| f.serial == e.serial) {
                fresh.push(e.clone());
            }
        }
        if fresh.is_empty() {
            return Ok(added);
        }
        let (cm, mut list, unreadable) = match shards.last() {
            Some(s) if s.entries.len() < SHARD_ENTRIES => (
                s.config_map.clone(),
                s.entries.clone(),
                s.unreadable.clone(),
            ),
            last => {
                let n = last.map_or(0, |s| s.number + 1);
                (shard_config_map(ca, namespace, n), Vec::new(), Vec::new())
            }
        };
        let room = SHARD_ENTRIES.saturating_sub(list.len()).max(1);
        let take = fresh.len().min(room);
        list.extend(fresh.drain(..take));
        list.sort_by(|a, b| {
            a.revoked_at
                .cmp(&b.revoked_at)
                .then(a.serial.cmp(&b.serial))
        });
        if write_shard(&api, cm, &list, &unreadable).await? {
            added += take;
            if fresh.is_empty() {
                return Ok(added);
            }
        }
    }
    Err(Error::Other(format!(
        "revocation register of {ca}: too many concurrent updates; will retry"
    )))
}

/// Removes the entries whose certificate expired before `before` (unix
/// seconds) from every shard of `ca`. Returns how many left.
pub async fn prune(
    client: &kube::Client,
    namespace: &str,
    ca: &str,
    before: i64,
) -> Result<usize, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let (shards, _) = shards(client, namespace, ca).await?;
    let mut removed = 0;
    for s in shards {
        let keep: Vec<Revoked> = s
            .entries
            .iter()
            .filter(|e| e.not_after >= before)
            .cloned()
            .collect();
        let gone = s.entries.len() - keep.len();
        if gone > 0 && write_shard(&api, s.config_map, &keep, &s.unreadable).await? {
            removed += gone;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(text: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("signet-revocations-ca".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.to_string(), text.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn bad_entries_are_reported_and_skipped_never_fatal() {
        let r = parse(&cm(r#"[
            {"serial": "0a1b", "revokedAt": 1, "reason": "keyCompromise", "notAfter": 9},
            {"serial": "not-hex", "revokedAt": 1, "reason": "keyCompromise", "notAfter": 9},
            {"serial": "A1B", "revokedAt": 2, "reason": "superseded", "notAfter": 9},
            {"serial": "0c", "revokedAt": 3, "reason": "stolen", "notAfter": 9},
            {"serial": "0d", "revokedAt": 3, "reason": "cACompromise", "notAfter": 9}
        ]"#));
        let serials: Vec<&str> = r.entries.iter().map(|e| e.serial.as_str()).collect();
        assert_eq!(
            serials,
            ["0a1b", "0d"],
            "the second spelling of 0a1b is the same entry"
        );
        assert_eq!(r.entries[1].reason, RevocationReason::CaCompromise);
        assert_eq!(r.skipped.len(), 2, "{:?}", r.skipped);
        let r = parse(&cm("{not json"));
        assert!(r.entries.is_empty() && r.skipped.len() == 1);
    }
}

#[cfg(test)]
mod keep_tests {
    use super::*;

    #[test]
    fn unreadable_entries_are_kept_verbatim() {
        let cm = ConfigMap {
            metadata: ObjectMeta::default(),
            data: Some(BTreeMap::from([(
                DATA_KEY.to_string(),
                serde_json::json!([
                    {"serial": "not-hex", "revokedAt": 1, "reason": "keyCompromise", "notAfter": 4102444800i64},
                    {"serial": "0a1b", "revokedAt": 1, "reason": "stolen", "notAfter": 4102444800i64}
                ])
                .to_string(),
            )])),
            ..Default::default()
        };
        let r = parse(&cm);
        assert_eq!(r.unreadable.len(), 2, "{r:?}");
    }
}
