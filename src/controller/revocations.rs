//! The durable revocation register of each CA.
//!
//! A revocation is written here — a ConfigMap `signet-revocations-<ca>` in
//! the operator's namespace — before anything else reports it, so it
//! survives operator restarts, deletion of the Certificate and loss of the
//! SQLite volume. The CRL controller watches these ConfigMaps and re-signs
//! the CA's CRL within seconds; it also folds the entries of the last
//! published CRL back in, so the signed CRL is a second durable copy.
//! Entries are never removed while the certificate is unexpired.
//!
//! An entry that cannot be read (hand-edited, written by something else) is
//! reported and skipped; it never stops the other revocations from being
//! listed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use super::Error;
use crate::api::RevocationReason;

/// Label carrying the CA name on every register ConfigMap.
pub const LABEL_CA: &str = "signet.dev/revocations-for";
/// Data key holding the JSON list.
pub const DATA_KEY: &str = "revocations.json";

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
    /// notAfter of the revoked certificate (unix seconds); the entry may be
    /// dropped from CRLs after it.
    pub not_after: i64,
    /// `namespace/name` of the Certificate, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Who revoked it (`controller`, `cli:<user>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// A register as read: the usable entries and a description of the ones
/// that were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Register {
    /// Usable entries.
    pub entries: Vec<Revoked>,
    /// One line per skipped entry.
    pub skipped: Vec<String>,
    /// The skipped entries as found; kept verbatim whenever the register
    /// is rewritten, so nothing anyone wrote is lost.
    pub unreadable: Vec<serde_json::Value>,
}

/// Name of the register ConfigMap of CA `ca`.
pub fn config_map_name(ca: &str) -> String {
    format!("signet-revocations-{ca}")
}

/// Reads the register of `ca` (empty when it does not exist yet).
pub async fn list(client: &kube::Client, namespace: &str, ca: &str) -> Result<Register, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(match api.get_opt(&config_map_name(ca)).await? {
        Some(cm) => parse(&cm),
        None => Register::default(),
    })
}

/// Parses a register ConfigMap entry by entry. Serials are normalised, so
/// two spellings of one serial are one entry.
pub fn parse(cm: &ConfigMap) -> Register {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let mut out = Register::default();
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(DATA_KEY)) else {
        return out;
    };
    let items: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.skipped
                .push(format!("{name}: {DATA_KEY} is not a JSON list ({e})"));
            return out;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let problem = match serde_json::from_value::<Revoked>(item.clone()) {
            Ok(mut r) => match crate::pki::normalize_serial(&r.serial) {
                Some(s) => {
                    if !out.entries.iter().any(|e| e.serial == s) {
                        r.serial = s;
                        out.entries.push(r);
                    }
                    continue;
                }
                None => format!("serial {:?} is not a valid serial", r.serial),
            },
            Err(e) => e.to_string(),
        };
        out.skipped.push(format!("{name}[{i}]: {problem}"));
        out.unreadable.push(item);
    }
    out
}

/// Adds entries to the register of `ca` (idempotent by serial). Uses the
/// resourceVersion for optimistic concurrency and retries on conflicts.
/// Returns how many entries were new.
pub async fn add(
    client: &kube::Client,
    namespace: &str,
    ca: &str,
    entries: &[Revoked],
) -> Result<usize, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let name = config_map_name(ca);
    for _attempt in 0..8 {
        let existing = api.get_opt(&name).await?;
        let current = existing.as_ref().map(parse).unwrap_or_default();
        let mut list = current.entries;
        let before = list.len();
        for e in entries {
            if !list.iter().any(|x| x.serial == e.serial) {
                list.push(e.clone());
            }
        }
        let added = list.len() - before;
        if added == 0 {
            return Ok(0);
        }
        list.sort_by(|a, b| {
            a.revoked_at
                .cmp(&b.revoked_at)
                .then(a.serial.cmp(&b.serial))
        });
        let mut items: Vec<serde_json::Value> = list
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Other(format!("encoding revocations: {e}")))?;
        items.extend(current.unreadable);
        let data = serde_json::to_string_pretty(&items)
            .map_err(|e| Error::Other(format!("encoding revocations: {e}")))?;
        let res = match existing {
            Some(mut cm) => {
                cm.data
                    .get_or_insert_with(BTreeMap::new)
                    .insert(DATA_KEY.into(), data);
                api.replace(&name, &PostParams::default(), &cm).await
            }
            None => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.to_string()),
                        labels: Some(BTreeMap::from([
                            (LABEL_CA.to_string(), ca.to_string()),
                            ("app.kubernetes.io/managed-by".into(), "signet".into()),
                        ])),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([(DATA_KEY.to_string(), data)])),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &cm).await
            }
        };
        match res {
            Ok(_) => return Ok(added),
            Err(kube::Error::Api(ae)) if ae.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Other(format!(
        "revocation register {name}: too many concurrent updates; will retry"
    )))
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
