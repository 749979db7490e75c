//! The audit chain's head, anchored outside the database.
//!
//! The hash chain detects edited, reordered or inserted rows, but not the
//! newest rows cut off. So the operator records the head (row id + hash)
//! in a ConfigMap in its own namespace every few seconds, and
//! `signet audit verify --anchor <ns>/<name>` checks that the database
//! still holds that row with that hash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta};
use tracing::warn;

use super::{Context, driver};
use crate::clock::rfc3339;
use crate::store::cli::{Anchor, AuditArgs, AuditCommand};

/// Name of the anchor ConfigMap.
pub const CONFIG_MAP: &str = "signet-audit-anchor";
/// Data key holding the JSON anchor.
pub const DATA_KEY: &str = "anchor.json";
/// How often the head is anchored (when it moved).
pub const EVERY: Duration = Duration::from_secs(5);

/// Anchors the head whenever it moved, until the task is dropped.
pub async fn keep_anchored(ctx: Arc<Context>) {
    let mut last = None;
    loop {
        tokio::time::sleep(EVERY).await;
        let head = match ctx.store.audit_head().await {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) => {
                warn!(error = %e, "cannot read the audit head to anchor it");
                continue;
            }
        };
        if last.as_ref() == Some(&head) {
            continue;
        }
        match write(&ctx, &head).await {
            Ok(()) => last = Some(head),
            Err(e) => warn!(error = %e, "cannot anchor the audit head"),
        }
    }
}

async fn write(ctx: &Context, (row_id, hash): &(i64, String)) -> Result<(), super::Error> {
    let anchor = Anchor {
        row_id: *row_id,
        hash: hash.clone(),
        time: rfc3339(ctx.clock.now()),
    };
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.into()),
            namespace: Some(ctx.namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "signet".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            DATA_KEY.to_string(),
            serde_json::to_string(&anchor).map_err(|e| super::Error::Other(e.to_string()))?,
        )])),
        ..Default::default()
    };
    let what = format!("ConfigMap {}/{CONFIG_MAP}", ctx.namespace);
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.namespace);
    driver::apply_object(
        ctx,
        &api,
        CONFIG_MAP,
        &cm,
        &what,
        "check the operator's RBAC in its namespace",
    )
    .await
}

/// Reads the anchor `<namespace>/<name>` from the cluster (KUBECONFIG).
pub async fn fetch(target: &str) -> anyhow::Result<Anchor> {
    let (ns, name) = target
        .split_once('/')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .with_context(|| format!("--anchor {target:?}: expected <namespace>/<configmap>, e.g. signet-system/{CONFIG_MAP}"))?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API to read the audit anchor (set KUBECONFIG)")?;
    let cm = Api::<ConfigMap>::namespaced(client, ns)
        .get_opt(name)
        .await?
        .with_context(|| format!("ConfigMap {ns}/{name} not found: no anchor to check against"))?;
    let text = cm
        .data
        .and_then(|mut d| d.remove(DATA_KEY))
        .with_context(|| format!("ConfigMap {ns}/{name} has no {DATA_KEY}"))?;
    serde_json::from_str(&text)
        .with_context(|| format!("ConfigMap {ns}/{name}: {DATA_KEY} is not an anchor"))
}

/// `signet audit ...`: the store's commands, plus the anchor check of
/// `verify --anchor`.
pub fn run_audit(args: &AuditArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    crate::store::cli::run_audit(args, out)?;
    if let Some(AuditCommand::Verify {
        anchor: Some(target),
    }) = &args.command
    {
        let anchor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(fetch(target))?;
        crate::store::cli::check_anchor(&args.db, &anchor, out)?;
    }
    Ok(())
}
