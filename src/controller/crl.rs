//! CRL reconciler: collect revocations → decide → sign → publish → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};
use x509_parser::prelude::FromDer;

use super::ca::{self, unix_ms};
use super::conditions::{self, Cond, rfc3339};
use super::revocations::{self, Revoked};
use super::{Context, Error};
use crate::api::{CONDITION_READY, CRL, CertificateAuthority, CrlStatus, FIELD_MANAGER, duration};
use crate::pki::{self, CrlRequest, RevocationReason, RevokedEntry};
use crate::store::{AuditEvent, AuditOperation, CrlRecord, ObjectRef};

/// Default CRL validity.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Annotation on the published ConfigMap: the CRL number.
pub const ANN_NUMBER: &str = "signet.dev/crl-number";
/// Annotation: hash of the revoked set + issuer certificate.
pub const ANN_CONTENT: &str = "signet.dev/crl-content-hash";
/// Annotation: nextUpdate.
pub const ANN_NEXT_UPDATE: &str = "signet.dev/next-update";
/// Label naming the CRL object on its ConfigMap.
pub const LABEL_CRL: &str = "signet.dev/crl";

/// Runs the CRL controller.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let client = ctx.client.clone();
    let crls: Api<CRL> = Api::all(client.clone());
    let ctl = Controller::new(crls, watcher::Config::default());
    let store = ctl.store();
    let store2 = store.clone();
    let cas: Api<CertificateAuthority> = Api::all(client.clone());
    let registers: Api<ConfigMap> = Api::namespaced(client.clone(), &ctx.namespace);
    let stream = ctl
        .watches(cas, watcher::Config::default(), move |ca| {
            let name = ca.name_any();
            super::refs_where(&store, |c| c.spec.ca_ref.name == name)
        })
        // A revocation (register change) re-signs within seconds.
        .watches(
            registers,
            watcher::Config::default().labels(revocations::LABEL_CA),
            move |cm| {
                let ca = cm
                    .labels()
                    .get(revocations::LABEL_CA)
                    .cloned()
                    .unwrap_or_default();
                super::refs_where(&store2, |c| c.spec.ca_ref.name == ca)
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drain("crl", stream).await;
}

fn error_policy(_c: Arc<CRL>, _e: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(15))
}

/// Where the CRL of `crl` is published: (namespace, name).
pub fn target(crl: &CRL, operator_ns: &str) -> (String, String) {
    let p = crl.spec.publish.clone().unwrap_or_default();
    (
        p.namespace.unwrap_or_else(|| operator_ns.to_string()),
        p.config_map_name
            .unwrap_or_else(|| format!("{}-crl", crl.name_any())),
    )
}

/// Parses the entries of a DER CRL (used to fold the last published CRL
/// back into the register: the signed CRL is a durable record).
pub fn entries_of(der: &[u8]) -> Vec<(String, i64, String)> {
    let Ok((_, crl)) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
    else {
        return Vec::new();
    };
    crl.iter_revoked_certificates()
        .map(|r| {
            let serial = crate::store::normalize_serial(&hex::encode(r.raw_serial()));
            let reason = r
                .reason_code()
                .map(|(_, rc)| reason_name(rc.0))
                .unwrap_or("unspecified")
                .to_string();
            (serial, r.revocation_date.timestamp(), reason)
        })
        .collect()
}

fn reason_name(code: u8) -> &'static str {
    match code {
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unspecified",
    }
}

/// Hash of what the CRL says (entries + issuer certificate).
fn content_hash(entries: &[Revoked], issuer_pem: &str) -> String {
    let mut s = String::from(issuer_pem);
    for e in entries {
        s.push_str(&format!("|{}:{}:{}", e.serial, e.revoked_at, e.reason));
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    hex::encode(&d.as_ref()[..12])
}

#[instrument(skip(ctx, crl), fields(name = %crl.name_any()))]
async fn reconcile(crl: Arc<CRL>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = std::time::Instant::now();
    let res = reconcile_inner(&crl, &ctx).await;
    ctx.metrics
        .observe_reconcile("crl", start.elapsed(), res.as_ref().err());
    match res {
        Ok(a) => Ok(a),
        Err(e) => fail(&crl, &ctx, e).await,
    }
}

async fn reconcile_inner(crl: &CRL, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let name = crl.name_any();
    let validity = match &crl.spec.validity {
        Some(v) => duration::parse("spec.validity", v).map_err(Error::InvalidSpec)?,
        None => DEFAULT_VALIDITY,
    };
    let refresh = match &crl.spec.refresh_before {
        Some(v) => duration::parse("spec.refreshBefore", v).map_err(Error::InvalidSpec)?,
        None => validity / 3,
    };
    if refresh >= validity {
        return Err(Error::InvalidSpec(format!(
            "spec.refreshBefore ({}) must be shorter than spec.validity ({})",
            duration::format(refresh),
            duration::format(validity)
        )));
    }
    let ca_name = crl.spec.ca_ref.name.clone();
    let (ca_obj, ca) = ca::ready_ca(ctx, &ca_name).await?;
    let (cm_ns, cm_name) = target(crl, &ctx.namespace);
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &cm_ns);
    let published = cms.get_opt(&cm_name).await?;
    let published_der = published
        .as_ref()
        .and_then(|cm| cm.binary_data.as_ref())
        .and_then(|b| b.get("ca.crl"))
        .map(|b| b.0.clone());

    // Revocations: the register, plus anything the last signed CRL listed
    // (so losing the register never un-revokes), minus expired entries.
    let mut entries = revocations::list(&ctx.client, &ctx.namespace, &ca_name).await?;
    if let Some(der) = &published_der {
        let missing: Vec<Revoked> = entries_of(der)
            .into_iter()
            .filter(|(s, _, _)| !entries.iter().any(|e| &e.serial == s))
            .map(|(serial, at, reason)| Revoked {
                serial,
                revoked_at: at,
                reason,
                not_after: i64::MAX,
                certificate: None,
                actor: Some("crl-recovery".into()),
            })
            .collect();
        if !missing.is_empty() {
            warn!(
                count = missing.len(),
                "restoring revocations from the last signed CRL into the register"
            );
            revocations::add(&ctx.client, &ctx.namespace, &ca_name, &missing).await?;
            entries.extend(missing);
        }
    }
    entries.retain(|e| e.not_after > now.unix_timestamp());
    entries.sort_by(|a, b| {
        a.revoked_at
            .cmp(&b.revoked_at)
            .then(a.serial.cmp(&b.serial))
    });
    let hash = content_hash(&entries, &ca.info.cert_pem());

    let ann = |k: &str| {
        published
            .as_ref()
            .and_then(|cm| cm.annotations().get(k).cloned())
    };
    let prev_number: i64 = ann(ANN_NUMBER).and_then(|n| n.parse().ok()).unwrap_or(0);
    let status_number = crl.status.as_ref().and_then(|s| s.crl_number).unwrap_or(0);
    let store_number = ctx
        .store
        .latest_crl_number(&ca_name)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let next_update = ann(ANN_NEXT_UPDATE).and_then(|s| conditions::parse_rfc3339(&s));
    let refresh_at = next_update.map(|n| n - time::Duration::try_from(refresh).unwrap_or_default());
    let spec_changed =
        crl.status.as_ref().and_then(|s| s.observed_generation) != crl.meta().generation;
    let due = published_der.is_none()
        || spec_changed
        || ann(ANN_CONTENT).as_deref() != Some(&hash)
        || refresh_at.is_none_or(|t| now >= t);

    if !due {
        let at = refresh_at.unwrap_or(now);
        if let Some(der) = &published_der {
            ctx.published_crls
                .write()
                .await
                .insert(name.clone(), der.clone());
        }
        let status = crl.status.clone().unwrap_or_default();
        let new_status = CrlStatus {
            conditions: conditions::merge(
                &status.conditions,
                &[Cond::yes(
                    CONDITION_READY,
                    "Published",
                    format!("CRL {prev_number} published to {cm_ns}/{cm_name}"),
                )],
                crl.meta().generation,
                now,
            ),
            observed_generation: crl.meta().generation,
            crl_number: Some(prev_number.max(status_number)),
            config_map: Some(format!("{cm_ns}/{cm_name}")),
            revoked_count: Some(entries.len() as i64),
            ..status.clone()
        };
        if crl.status.as_ref() != Some(&new_status) {
            patch_status(ctx, &name, json!({ "status": new_status })).await?;
        }
        return Ok(ca::requeue_at(now, at));
    }

    // Never reuse a number: one more than anything seen anywhere.
    let number = prev_number.max(status_number).max(store_number) + 1;
    let this_update = now;
    let next = now + time::Duration::try_from(validity).unwrap_or(time::Duration::DAY);
    let req = CrlRequest {
        number: number as u64,
        this_update,
        next_update: next,
        entries: entries
            .iter()
            .map(|e| RevokedEntry {
                serial_hex: e.serial.clone(),
                revoked_at: time::OffsetDateTime::from_unix_timestamp(e.revoked_at).unwrap_or(now),
                reason: RevocationReason::parse(&e.reason).unwrap_or_default(),
                invalidity_date: None,
            })
            .collect(),
        distribution_point: None,
    };
    let signed = pki::sign_crl(&ca.info, ca.signer.as_ref(), &req, now).await?;

    // Publish (server-side apply), then status.
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(cm_name.clone()),
            namespace: Some(cm_ns.clone()),
            labels: Some(BTreeMap::from([
                (LABEL_CRL.to_string(), name.clone()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "signet".to_string(),
                ),
            ])),
            annotations: Some(BTreeMap::from([
                (ANN_NUMBER.to_string(), number.to_string()),
                (ANN_CONTENT.to_string(), hash),
                (ANN_NEXT_UPDATE.to_string(), rfc3339(signed.next_update)),
                (
                    "signet.dev/certificate-authority".to_string(),
                    ca_name.clone(),
                ),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("ca.crl.pem".to_string(), signed.pem.clone()),
            ("ca.crt".to_string(), ca.info.cert_pem()),
        ])),
        binary_data: Some(BTreeMap::from([(
            "ca.crl".to_string(),
            ByteString(signed.der.clone()),
        )])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&cm).map_err(|e| Error::Other(e.to_string()))?;
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("ConfigMap");
    cms.patch(
        &cm_name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await?;
    ctx.published_crls
        .write()
        .await
        .insert(name.clone(), signed.der.clone());

    let status = crl.status.clone().unwrap_or_default();
    let new_status = CrlStatus {
        conditions: conditions::merge(
            &status.conditions,
            &[Cond::yes(
                CONDITION_READY,
                "Published",
                format!("CRL {number} published to {cm_ns}/{cm_name}"),
            )],
            crl.meta().generation,
            now,
        ),
        observed_generation: crl.meta().generation,
        crl_number: Some(number),
        this_update: Some(rfc3339(signed.this_update)),
        next_update: Some(rfc3339(signed.next_update)),
        revoked_count: Some(signed.entries as i64),
        config_map: Some(format!("{cm_ns}/{cm_name}")),
    };
    patch_status(ctx, &name, json!({ "status": new_status })).await?;
    ctx.store.record_crl(CrlRecord {
        ca: ca_name.clone(),
        number,
        this_update: signed.this_update.unix_timestamp(),
        next_update: signed.next_update.unix_timestamp(),
        revoked_count: signed.entries as i64,
        der: signed.der.clone(),
        published_at: now.unix_timestamp(),
    });
    let mut obj = ObjectRef::cluster("CRL", name.clone());
    if let Some(uid) = crl.uid() {
        obj = obj.with_uid(uid);
    }
    ctx.store.audit(
        AuditEvent::new(
            unix_ms(now),
            "controller",
            AuditOperation::CrlPublished,
            obj,
        )
        .with_ca(ca_obj.name_any())
        .with_details(json!({
            "number": number, "revoked": signed.entries,
            "nextUpdate": rfc3339(signed.next_update),
            "configMap": format!("{cm_ns}/{cm_name}"),
        })),
    );
    ctx.metrics.crl_published();
    info!(number, revoked = signed.entries, "CRL published");
    let refresh_at = signed.next_update - time::Duration::try_from(refresh).unwrap_or_default();
    Ok(ca::requeue_at(now, refresh_at))
}

async fn patch_status(ctx: &Context, name: &str, body: serde_json::Value) -> Result<(), Error> {
    super::patch_status(&Api::<CRL>::all(ctx.client.clone()), name, body).await
}

async fn fail(crl: &CRL, ctx: &Context, err: Error) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let status = crl.status.clone().unwrap_or_default();
    let reason = err.reason();
    let message = err.to_string();
    let changed = conditions::find(&status.conditions, CONDITION_READY)
        .is_none_or(|c| c.reason != reason || c.message != message);
    warn!(reason, error = %message, "CRL not published");
    if changed {
        super::publish_event(
            ctx,
            crl,
            EventType::Warning,
            "Publish",
            reason,
            message.clone(),
        )
        .await;
        let conds = conditions::merge(
            &status.conditions,
            &[Cond::no(CONDITION_READY, reason, message)],
            crl.meta().generation,
            now,
        );
        patch_status(
            ctx,
            &crl.name_any(),
            json!({"status": {
                "conditions": conds, "observedGeneration": crl.meta().generation
            }}),
        )
        .await?;
    }
    Ok(if err.is_retryable() {
        Action::requeue(super::backoff(3))
    } else {
        Action::await_change()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_changes_with_entries() {
        let e = |s: &str| Revoked {
            serial: s.into(),
            revoked_at: 1,
            reason: "keyCompromise".into(),
            not_after: 10,
            certificate: None,
            actor: None,
        };
        assert_eq!(content_hash(&[e("a")], "x"), content_hash(&[e("a")], "x"));
        assert_ne!(
            content_hash(&[e("a")], "x"),
            content_hash(&[e("a"), e("b")], "x")
        );
        assert_ne!(content_hash(&[e("a")], "x"), content_hash(&[e("a")], "y"));
    }
}
