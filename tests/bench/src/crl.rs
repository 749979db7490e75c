//! `crl`: the CRL of a CA with N revocations, signed and published.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use signet::api::{CRL, RevocationReason};
use signet::controller::revocations::{self, Revoked, SHARD_ENTRIES};

use crate::util;

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let n: usize = util::flag(args, "--entries", 100_000)?;
    let ns = "signet-bench";
    let ctx = util::context(ns).await?;
    let client = ctx.client.clone();
    let controllers = tokio::spawn(signet::controller::run_all(ctx.clone(), 4));

    let ca = format!("bench-{}", std::process::id());
    util::ready_root_ca(&client, &ca, "Bench Root").await?;

    // The register, written directly (not timed).
    let not_after = time::OffsetDateTime::now_utc().unix_timestamp() + 30 * 86_400;
    let entries: Vec<Revoked> = (0..n)
        .map(|i| Revoked {
            serial: format!("{:032x}", 0x1000_0000_0000_0000_0000_u128 + i as u128),
            revoked_at: 1_790_000_000,
            reason: RevocationReason::KeyCompromise,
            not_after,
            certificate: None,
            actor: Some("bench".into()),
        })
        .collect();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for (i, chunk) in entries.chunks(SHARD_ENTRIES).enumerate() {
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(revocations::shard_name(&ca, i)),
                labels: Some(BTreeMap::from([
                    (
                        revocations::LABEL_CA.to_string(),
                        revocations::ca_label(&ca),
                    ),
                    (revocations::LABEL_SHARD.to_string(), i.to_string()),
                ])),
                annotations: Some(BTreeMap::from([(
                    revocations::ANN_CA.to_string(),
                    ca.clone(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                revocations::DATA_KEY.to_string(),
                serde_json::to_string(chunk)?,
            )])),
            ..Default::default()
        };
        cms.create(&PostParams::default(), &cm).await?;
    }
    drop(entries);
    let rss_before = util::rss_kib();
    util::reset_peak_rss();

    let crl: CRL = serde_json::from_value(serde_json::json!({
        "apiVersion": "signet.dev/v1alpha1", "kind": "CRL",
        "metadata": {"name": format!("{ca}-crl")}, "spec": {"caRef": {"name": ca}}
    }))?;
    let start = Instant::now();
    Api::<CRL>::all(client.clone())
        .create(&PostParams::default(), &crl)
        .await?;
    let count = util::until("the CRL", Duration::from_secs(600), || {
        let api: Api<CRL> = Api::all(client.clone());
        let name = format!("{ca}-crl");
        async move {
            let st = api.get(&name).await.ok()?.status?;
            st.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(st.revoked_count?)
        }
    })
    .await?;
    let took = start.elapsed();
    let peak = util::peak_rss_kib();
    let der = ctx
        .published
        .crl(&format!("{ca}-crl"))
        .map(|c| c.der.len())
        .unwrap_or(0);
    println!(
        "{{\"scenario\":\"crl\",\"entries\":{count},\"seconds\":{:.2},\"crlBytes\":{der},\"rssBeforeKiB\":{rss_before},\"peakRssKiB\":{peak},\"peakExtraKiB\":{}}}",
        took.as_secs_f64(),
        peak.saturating_sub(rss_before)
    );
    controllers.abort();
    Ok(())
}
