//! The CRL in the cluster: one ConfigMap (`ca.crl` DER, `ca.crl.pem`,
//! `ca.crt`) while the CRL is small; beyond [`INLINE_MAX`] the DER is split
//! into part ConfigMaps `<name>-part-<i>` of at most [`PART_MAX`] bytes,
//! and the main ConfigMap says how many (`signet.dev/crl-parts`) with the
//! SHA-256 of the whole (`signet.dev/crl-sha256`). Concatenating the parts
//! in order gives the DER. Over HTTP the CRL is always served whole.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta};

use super::super::{Context, Error, driver};
use super::{ANN_CA, ANN_NEXT_UPDATE, ANN_NUMBER, DER_KEY, LABEL_CRL};
use crate::api::CRL;
use crate::clock::rfc3339;
use crate::pki::SignedCrl;

/// Largest DER kept in the main ConfigMap (with its PEM copy it stays well
/// under the 1 MiB object limit).
pub const INLINE_MAX: usize = 350 * 1024;
/// Largest DER part in one part ConfigMap.
pub const PART_MAX: usize = 900 * 1024;
/// Main ConfigMap annotation: number of parts (absent: inline).
pub const ANN_PARTS: &str = "signet.dev/crl-parts";
/// Main ConfigMap annotation: SHA-256 (hex) of the whole DER.
pub const ANN_SHA256: &str = "signet.dev/crl-sha256";
/// Part ConfigMap key.
pub const PART_KEY: &str = "ca.crl.part";

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref())
}

fn part_name(name: &str, i: usize) -> String {
    format!("{name}-part-{i}")
}

fn meta(name: &str, ns: &str, crl: &CRL, annotations: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        labels: Some(BTreeMap::from([
            (LABEL_CRL.to_string(), crl.name_any()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "signet".to_string(),
            ),
        ])),
        annotations: Some(annotations),
        ..Default::default()
    }
}

/// The ConfigMaps that publish `signed`: the parts (if any), then the main
/// one. Pure.
pub fn config_maps(
    crl: &CRL,
    ca: &str,
    ca_pem: &str,
    signed: &SignedCrl,
    ns: &str,
    name: &str,
) -> Vec<ConfigMap> {
    let mut annotations = BTreeMap::from([
        (ANN_NUMBER.to_string(), signed.number.to_string()),
        (ANN_NEXT_UPDATE.to_string(), rfc3339(signed.next_update)),
        (ANN_CA.to_string(), ca.to_string()),
        (ANN_SHA256.to_string(), sha256_hex(&signed.der)),
    ]);
    let mut out = Vec::new();
    let mut data = BTreeMap::from([("ca.crt".to_string(), ca_pem.to_string())]);
    let mut binary = BTreeMap::new();
    if signed.der.len() <= INLINE_MAX {
        data.insert("ca.crl.pem".to_string(), signed.pem.clone());
        binary.insert(DER_KEY.to_string(), ByteString(signed.der.clone()));
    } else {
        let parts: Vec<&[u8]> = signed.der.chunks(PART_MAX).collect();
        annotations.insert(ANN_PARTS.to_string(), parts.len().to_string());
        for (i, chunk) in parts.into_iter().enumerate() {
            out.push(ConfigMap {
                metadata: meta(
                    &part_name(name, i),
                    ns,
                    crl,
                    BTreeMap::from([(ANN_NUMBER.to_string(), signed.number.to_string())]),
                ),
                binary_data: Some(BTreeMap::from([(
                    PART_KEY.to_string(),
                    ByteString(chunk.to_vec()),
                )])),
                ..Default::default()
            });
        }
    }
    out.push(ConfigMap {
        metadata: meta(name, ns, crl, annotations),
        data: Some(data),
        binary_data: Some(binary),
        ..Default::default()
    });
    out
}

/// Applies the parts, then the main ConfigMap (which names them), so
/// readers never see a main ConfigMap pointing at parts not yet written.
pub async fn publish(ctx: &Context, objects: Vec<ConfigMap>, ns: &str) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for cm in objects {
        let name = cm.name_any();
        driver::apply_object(
            ctx,
            &api,
            &name,
            &cm,
            &format!("ConfigMap {ns}/{name}"),
            "fix spec.publish or the namespace",
        )
        .await?;
    }
    Ok(())
}

/// The DER the cluster holds for `ns/name` (reassembled from its parts),
/// not yet trusted: the caller verifies it. `None` when there is none or it
/// is incomplete.
pub async fn read(ctx: &Context, ns: &str, name: &str) -> Result<Option<Vec<u8>>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let Some(main) = api.get_opt(name).await? else {
        return Ok(None);
    };
    if let Some(der) = main.binary_data.as_ref().and_then(|b| b.get(DER_KEY)) {
        return Ok(Some(der.0.clone()));
    }
    let ann = main.annotations();
    let Some(n) = ann.get(ANN_PARTS).and_then(|n| n.parse::<usize>().ok()) else {
        return Ok(None);
    };
    let mut der = Vec::new();
    for i in 0..n.min(64) {
        let Some(part) = api.get_opt(&part_name(name, i)).await? else {
            return Ok(None);
        };
        match part.binary_data.and_then(|mut b| b.remove(PART_KEY)) {
            Some(b) => der.extend(b.0),
            None => return Ok(None),
        }
    }
    let whole = ann.get(ANN_SHA256).is_some_and(|h| *h == sha256_hex(&der));
    Ok(whole.then_some(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(len: usize) -> SignedCrl {
        SignedCrl {
            der: (0..len).map(|i| (i % 251) as u8).collect(),
            pem: "PEM".into(),
            number: 3,
            this_update: time::OffsetDateTime::UNIX_EPOCH,
            next_update: time::OffsetDateTime::UNIX_EPOCH,
            entries: 0,
        }
    }

    fn crl() -> CRL {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "CRL",
            "metadata": {"name": "big"}, "spec": {"caRef": {"name": "ca"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_small_crl_is_one_config_map_and_a_big_one_is_split_in_order() {
        let small = config_maps(&crl(), "ca", "CA", &signed(1000), "ns", "big-crl");
        assert_eq!(small.len(), 1);
        assert!(small[0].binary_data.as_ref().unwrap().contains_key(DER_KEY));
        let s = signed(2 * PART_MAX + 10);
        let big = config_maps(&crl(), "ca", "CA", &s, "ns", "big-crl");
        assert_eq!(big.len(), 4, "three parts, then the main ConfigMap");
        let main = big.last().unwrap();
        assert_eq!(main.annotations()[ANN_PARTS], "3");
        assert!(
            main.binary_data.as_ref().unwrap().is_empty()
                && !main.data.as_ref().unwrap().contains_key("ca.crl.pem")
        );
        let joined: Vec<u8> = big[..3]
            .iter()
            .flat_map(|p| p.binary_data.as_ref().unwrap()[PART_KEY].0.clone())
            .collect();
        assert_eq!(joined, s.der);
        assert_eq!(main.annotations()[ANN_SHA256], sha256_hex(&s.der));
        for p in &big[..3] {
            assert!(p.binary_data.as_ref().unwrap()[PART_KEY].0.len() <= PART_MAX);
        }
    }
}
