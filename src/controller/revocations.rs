//! The durable revocation register of each CA.
//!
//! A revocation is written here — a ConfigMap `signet-revocations-<ca>` in
//! the operator's namespace — before anything else reports it, so it
//! survives operator restarts, deletion of the Certificate and loss of the
//! SQLite volume. The CRL controller watches these ConfigMaps and re-signs
//! the CA's CRL within seconds; it also folds the entries of the last
//! published CRL back in, so the signed CRL is a second durable copy.
//! Entries are never removed while the certificate is unexpired.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use super::Error;

/// Label carrying the CA name on every register ConfigMap.
pub const LABEL_CA: &str = "signet.dev/revocations-for";
/// Data key holding the JSON list.
pub const DATA_KEY: &str = "revocations.json";

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    /// Serial number (lower-case hex, no leading zeros).
    pub serial: String,
    /// Revocation time (unix seconds).
    pub revoked_at: i64,
    /// RFC 5280 reason name (`keyCompromise`, ...).
    pub reason: String,
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

/// Name of the register ConfigMap of CA `ca`.
pub fn config_map_name(ca: &str) -> String {
    format!("signet-revocations-{ca}")
}

/// Reads the register of `ca` (empty when it does not exist yet).
pub async fn list(client: &kube::Client, namespace: &str, ca: &str) -> Result<Vec<Revoked>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(match api.get_opt(&config_map_name(ca)).await? {
        Some(cm) => parse(&cm)?,
        None => Vec::new(),
    })
}

/// Parses a register ConfigMap.
pub fn parse(cm: &ConfigMap) -> Result<Vec<Revoked>, Error> {
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(DATA_KEY)) else {
        return Ok(Vec::new());
    };
    serde_json::from_str(text).map_err(|e| {
        Error::Other(format!(
            "revocation register {} is not valid JSON ({e}); restore it from the last CRL or a backup",
            cm.metadata.name.clone().unwrap_or_default()
        ))
    })
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
        let mut list = match &existing {
            Some(cm) => parse(cm)?,
            None => Vec::new(),
        };
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
        let data = serde_json::to_string_pretty(&list)
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
