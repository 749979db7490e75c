//! Rebuilds the SQLite mirror from the cluster when the database is new or
//! was lost: CA status, Certificate status + Secrets, published CRLs.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tracing::info;

use super::ca::unix_ms;
use super::certificate::{ANN_SERIAL, LABEL_CERTIFICATE, inspect_secret};
use super::crl::{ANN_NUMBER, LABEL_CRL};
use super::{Context, Error};
use crate::api::{Certificate, CertificateAuthority};
use crate::store::{CaRecord, CaStatus, CertRecord, CertStatus, CrlRecord, RebuildSummary};

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
    let cas: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    for ca in cas.list(&ListParams::default()).await? {
        let Some(st) = ca.status.clone() else {
            continue;
        };
        let t = |s: &Option<String>| {
            s.as_deref()
                .and_then(super::conditions::parse_rfc3339)
                .map(|t| t.unix_timestamp())
        };
        ctx.store.upsert_ca(CaRecord {
            name: ca.name_any(),
            uid: ca.uid(),
            kms_key_arn: st.kms_key_arn.clone(),
            key_spec: None,
            subject: Some(ca.spec.common_name.clone()),
            serial: st.serial_number.clone(),
            parent: ca.spec.issuer_ref.as_ref().map(|r| r.name.clone()),
            status: Some(if st.certificate.is_some() {
                CaStatus::Active
            } else {
                CaStatus::Pending
            }),
            not_before: t(&st.not_before),
            not_after: t(&st.not_after),
            certificate_pem: st.certificate.clone(),
            updated_at: now.unix_timestamp(),
        });
        summary.cas += 1;
    }
    let certs: Api<Certificate> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let secret_list = secrets
        .list(&ListParams::default().labels(LABEL_CERTIFICATE))
        .await?;
    for c in certs.list(&ListParams::default()).await? {
        let ns = c.namespace().unwrap_or_default();
        let secret = secret_list
            .iter()
            .find(|s| s.namespace().as_deref() == Some(&ns) && s.name_any() == c.spec.secret_name);
        let cur = inspect_secret(secret);
        let st = c.status.clone().unwrap_or_default();
        let Some(serial) = cur
            .serial
            .clone()
            .or_else(|| secret.and_then(|s| s.annotations().get(ANN_SERIAL).cloned()))
            .or(st.serial_number.clone())
        else {
            continue;
        };
        let revoked = st
            .revocation_time
            .as_deref()
            .and_then(super::conditions::parse_rfc3339);
        ctx.store.upsert_certificate(CertRecord {
            ca: c.spec.issuer_ref.name.clone(),
            namespace: ns,
            name: c.name_any(),
            uid: c.uid().unwrap_or_default(),
            serial,
            subject: c.spec.common_name.clone().unwrap_or_default(),
            sans: c.spec.dns_names.clone(),
            usages: Vec::new(),
            status: if revoked.is_some() {
                CertStatus::Revoked
            } else {
                CertStatus::Active
            },
            not_before: cur.not_before.map(|t| t.unix_timestamp()).unwrap_or(0),
            not_after: cur.not_after.map(|t| t.unix_timestamp()).unwrap_or(0),
            revision: st.revision.unwrap_or(1),
            revoked_at: revoked.map(|t| t.unix_timestamp()),
            revocation_reason: c
                .spec
                .revocation
                .as_ref()
                .map(|r| r.reason.as_str().to_string()),
            certificate_pem: cur
                .cert_der
                .as_ref()
                .map(|d| pem::encode(&pem::Pem::new("CERTIFICATE", d.clone()))),
            secret_name: Some(c.spec.secret_name.clone()),
            issued_at: cur.not_before.map(|t| t.unix_timestamp()).unwrap_or(0),
        });
        summary.certificates += 1;
    }
    // Only the ConfigMaps CRLs publish to (RBAC grants no cluster-wide
    // ConfigMap access).
    let crls: Api<crate::api::CRL> = Api::all(ctx.client.clone());
    for crl in crls.list(&ListParams::default()).await? {
        let (ns, name) = super::crl::target(&crl, &ctx.namespace);
        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
        let Some(cm) = cms.get_opt(&name).await? else {
            continue;
        };
        if !cm.labels().contains_key(LABEL_CRL) {
            continue;
        }
        let Some(der) = cm.binary_data.as_ref().and_then(|b| b.get("ca.crl")) else {
            continue;
        };
        let Some(ca) = cm
            .annotations()
            .get("signet.dev/certificate-authority")
            .cloned()
        else {
            continue;
        };
        let number: i64 = cm
            .annotations()
            .get(ANN_NUMBER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let entries = super::crl::entries_of(&der.0);
        let (this_update, next_update) = crl_times(&der.0).unwrap_or((0, 0));
        ctx.store.record_crl(CrlRecord {
            ca: ca.clone(),
            number,
            this_update,
            next_update,
            revoked_count: entries.len() as i64,
            der: der.0.clone(),
            published_at: this_update,
        });
        for (serial, at, reason) in entries {
            ctx.store.record_revocation(crate::store::RevocationRecord {
                ca: ca.clone(),
                serial,
                revoked_at: at,
                reason: Some(reason),
            });
        }
        summary.crls += 1;
    }
    info!(
        cas = summary.cas,
        certificates = summary.certificates,
        crls = summary.crls,
        "mirror rebuilt from the cluster"
    );
    ctx.store.record_rebuild(summary);
    Ok(())
}

fn crl_times(der: &[u8]) -> Option<(i64, i64)> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    Some((
        crl.last_update().timestamp(),
        crl.next_update().map(|t| t.timestamp()).unwrap_or(0),
    ))
}
