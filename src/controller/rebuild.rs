//! Rebuilds the SQLite mirror from the cluster when the database is new or
//! was lost: CA status, Certificate status + Secrets, published CRLs. Rows
//! come from the same builders live reconciles use ([`super::mirror`]).

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tracing::info;

use super::ca::issuer_of;
use super::certificate::LABEL_CERTIFICATE;
use super::certificate::observe::SecretSeen;
use super::crl::{DER_KEY, LABEL_CRL, target};
use super::{Context, Error, mirror};
use crate::api::{CRL, Certificate, CertificateAuthority};
use crate::clock::unix_ms;
use crate::pki;
use crate::store::{CrlRecord, RebuildSummary, RevocationRecord};

/// Rebuilds the mirror when it is empty; records that it did.
pub async fn rebuild_if_empty(ctx: &Context) -> Result<bool, Error> {
    let empty = ctx
        .store
        .is_empty_mirror()
        .await
        .map_err(|e| Error::Other(e.to_string()))?;
    if !empty && !ctx.store.needs_rebuild() {
        return Ok(false);
    }
    rebuild(ctx).await?;
    Ok(true)
}

/// Watches for a database that appears empty while running (a volume
/// mounted late, a file deleted or replaced) and rebuilds it.
pub async fn keep_rebuilt(ctx: std::sync::Arc<Context>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        if ctx.store.needs_rebuild()
            && let Err(e) = rebuild(&ctx).await
        {
            tracing::warn!(error = %e, "mirror rebuild failed; will retry");
        }
    }
}

/// Rebuilds the CA / certificate / CRL tables from the cluster.
pub async fn rebuild(ctx: &Context) -> Result<(), Error> {
    let now = ctx.clock.now();
    let mut summary = RebuildSummary {
        time_ms: unix_ms(now),
        actor: "controller".into(),
        reason: "empty or missing database at startup".into(),
        ..Default::default()
    };
    let cas = Api::<CertificateAuthority>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    for ca in &cas {
        let st = ca.status.clone().unwrap_or_default();
        let facts = st
            .certificate
            .as_deref()
            .and_then(|p| pki::parse::first_cert_facts(p.as_bytes()));
        ctx.store.upsert_ca(mirror::ca_row(
            ca,
            st.kms_key_arn.as_deref(),
            facts.as_ref(),
            now,
        ));
        summary.cas += 1;
    }
    summary.certificates = rebuild_certificates(ctx).await?;
    summary.crls = rebuild_crls(ctx, &cas.items).await?;
    info!(
        cas = summary.cas,
        certificates = summary.certificates,
        crls = summary.crls,
        "mirror rebuilt from the cluster"
    );
    ctx.store.record_rebuild(summary);
    Ok(())
}

async fn rebuild_certificates(ctx: &Context) -> Result<u64, Error> {
    let secrets = Api::<Secret>::all(ctx.client.clone())
        .list(&ListParams::default().labels(LABEL_CERTIFICATE))
        .await?;
    let certs = Api::<Certificate>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let mut n = 0;
    for c in &certs {
        let ns = c.namespace().unwrap_or_default();
        let Some(secret) = secrets
            .iter()
            .find(|s| s.namespace().as_deref() == Some(&ns) && s.name_any() == c.spec.secret_name)
        else {
            continue;
        };
        let Some(facts) = SecretSeen::of(secret).contents.cert else {
            continue;
        };
        let revision = c.status.as_ref().and_then(|s| s.revision).unwrap_or(1);
        ctx.store
            .upsert_certificate(mirror::certificate_row(c, &facts, revision));
        n += 1;
    }
    Ok(n)
}

/// Only the ConfigMaps CRLs publish to (RBAC grants no cluster-wide
/// ConfigMap access), and only CRLs that verify against their CA.
async fn rebuild_crls(ctx: &Context, cas: &[CertificateAuthority]) -> Result<u64, Error> {
    let crls = Api::<CRL>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let mut n = 0;
    for crl in &crls {
        let (ns, name) = target(crl, &ctx.namespace);
        let Some(cm) = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await?
        else {
            continue;
        };
        let ca_name = &crl.spec.ca_ref.name;
        let issuer = cas
            .iter()
            .find(|c| &c.name_any() == ca_name)
            .and_then(|c| issuer_of(c, false).ok());
        let der = cm.binary_data.as_ref().and_then(|b| b.get(DER_KEY));
        let (Some(issuer), Some(der), true) = (issuer, der, cm.labels().contains_key(LABEL_CRL))
        else {
            continue;
        };
        let Ok(facts) = pki::verify_crl(&der.0, &issuer.info) else {
            continue;
        };
        ctx.store.record_crl(CrlRecord {
            ca: ca_name.clone(),
            number: facts.number as i64,
            this_update: facts.this_update.unix_timestamp(),
            next_update: facts.next_update.map_or(0, |t| t.unix_timestamp()),
            revoked_count: facts.entries.len() as i64,
            der: der.0.clone(),
            published_at: facts.this_update.unix_timestamp(),
        });
        for e in facts.entries {
            ctx.store.record_revocation(RevocationRecord {
                ca: ca_name.clone(),
                serial: e.serial_hex,
                revoked_at: e.revoked_at.unix_timestamp(),
                reason: Some(e.reason.unwrap_or_default().as_str().to_string()),
            });
        }
        n += 1;
    }
    Ok(n)
}
