//! No cap on revocations: a CA holds 100,000 of them (the register is
//! sharded), the CRL that lists them is bigger than a ConfigMap and is
//! still published (split into parts in the cluster, whole over HTTP), and
//! expired certificates leave both the CRL and the register.

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use signet::api::RevocationReason;
use signet::controller::crl::publish::{ANN_PARTS, PART_KEY};
use signet::controller::revocations::{self, Revoked, SHARD_ENTRIES};
use signet::http::{HttpState, Site, route};

const LIVE: usize = 100_000;
const EXPIRED: usize = 1_000;

fn entry(i: usize, not_after: i64) -> Revoked {
    Revoked {
        serial: format!("{:032x}", 0x1000_0000_0000_0000_0000_u128 + i as u128),
        revoked_at: 1_790_000_000,
        reason: RevocationReason::KeyCompromise,
        not_after,
        certificate: None,
        actor: Some("test".into()),
    }
}

/// Writes the shards as the register would hold them.
async fn fill_register(client: &kube::Client, ns: &str, ca: &str, entries: &[Revoked]) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for (n, chunk) in entries.chunks(SHARD_ENTRIES).enumerate() {
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(revocations::shard_name(ca, n)),
                labels: Some(BTreeMap::from([
                    (revocations::LABEL_CA.to_string(), revocations::ca_label(ca)),
                    (revocations::LABEL_SHARD.to_string(), n.to_string()),
                ])),
                annotations: Some(BTreeMap::from([(
                    revocations::ANN_CA.to_string(),
                    ca.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                revocations::DATA_KEY.to_string(),
                serde_json::to_string(chunk).unwrap(),
            )])),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
}

#[tokio::test]
async fn a_ca_holds_100000_revocations_and_its_crl_outgrows_a_config_map_but_is_published() {
    let env = signet_testenv::env();
    let op = in_process();
    let client = env.client().await;
    let (root, crl_name) = (unique("big"), unique("crl"));
    apply(env, &root_ca(&root, "")).unwrap();
    wait_ca(&client, &root, ("True", None), None).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut entries: Vec<Revoked> = (0..LIVE).map(|i| entry(i, now + 86_400 * 30)).collect();
    entries.extend((LIVE..LIVE + EXPIRED).map(|i| entry(i, now - 60)));
    fill_register(&client, &op.namespace, &root, &entries).await;
    apply(env, &crl(&crl_name, &root, &op.namespace)).unwrap();
    let c = wait_crl(&client, &crl_name, 1, None).await;
    assert_eq!(
        c.status.unwrap().revoked_count,
        Some(LIVE as i64),
        "expired certificates left the CRL"
    );

    // In the cluster: the main ConfigMap names its parts; together they
    // are the signed CRL.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &op.namespace);
    let main = cms.get(&format!("{crl_name}-crl")).await.unwrap();
    let parts: usize = main.metadata.annotations.as_ref().unwrap()[ANN_PARTS]
        .parse()
        .unwrap();
    assert!(
        parts >= 2,
        "a {LIVE}-entry CRL needs more than one ConfigMap"
    );
    let mut der = Vec::new();
    for i in 0..parts {
        let p = cms.get(&format!("{crl_name}-crl-part-{i}")).await.unwrap();
        der.extend(
            p.binary_data
                .unwrap()
                .remove(PART_KEY)
                .map(|b: ByteString| b.0)
                .unwrap(),
        );
    }
    let facts = signet::pki::crl_facts(&der).unwrap();
    assert_eq!(facts.entries.len(), LIVE);
    // openssl agrees it is a CRL signed by the CA.
    let dir = signet_testenv::run_dir().join(&crl_name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("crl.der"), &der).unwrap();
    let ca_pem = main.data.unwrap()["ca.crt"].clone();
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(dir.join("crl.der"))
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify OK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Over HTTP: whole.
    let http = HttpState {
        published: op.ctx.published.clone(),
        metrics: op.ctx.metrics.clone(),
        store: op.ctx.store.clone().into(),
    };
    let served = route(&http, Site::Pki, &format!("/crl/{crl_name}.crl")).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, der);

    // Expired certificates left the register; the live ones are all there.
    let register = revocations::list(&client, &op.namespace, &root)
        .await
        .unwrap();
    assert_eq!(register.entries.len(), LIVE);
    let shards = cms
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            revocations::LABEL_CA,
            revocations::ca_label(&root)
        )))
        .await
        .unwrap();
    assert!(shards.items.len() >= LIVE / SHARD_ENTRIES);

    // One more revocation on top goes into a shard of its own and reaches
    // the CRL.
    let one = entry(LIVE + EXPIRED + 1, now + 86_400);
    assert_eq!(
        revocations::add(&client, &op.namespace, &root, std::slice::from_ref(&one))
            .await
            .unwrap(),
        1
    );
    eventually("the CRL with one more entry", || {
        let client = client.clone();
        let name = crl_name.clone();
        async move {
            let c: signet::api::CRL = Api::all(client).get(&name).await.ok()?;
            (c.status?.revoked_count? == LIVE as i64 + 1).then_some(())
        }
    })
    .await;
}
