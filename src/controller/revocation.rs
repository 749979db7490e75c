//! Revocation (cluster-scoped): a cluster administrator revokes a serial of
//! a CA, or an intermediate CA's certificate, without a Certificate object.
//! observe (the CA, the intermediate, the mirror) → decide (which serial,
//! until when) → act (register, audit) → status.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use serde_json::json;
use time::OffsetDateTime;

use super::conditions::{self, Cond};
use super::driver::{self, Kind, Next};
use super::revocations::{self, Revoked};
use super::{Context, Error};
use crate::api::{CONDITION_READY, CertificateAuthority, Revocation, RevocationStatus};
use crate::clock::{parse_rfc3339, rfc3339, unix_ms};
use crate::pki;
use crate::store::{AuditEvent, AuditOperation, CertQuery, ObjectRef, RevocationRecord};

crate::status_fields!(RevocationStatus, failed_attempts);

/// Observations for one Revocation.
#[derive(Debug, Default)]
pub struct World {
    /// The issuing CA, if it still exists.
    pub issuer: Option<CertificateAuthority>,
    /// The intermediate named by `spec.certificateAuthority`, if any.
    pub intermediate: Option<CertificateAuthority>,
    /// notAfter of the serial as the mirror knows it.
    pub mirrored_not_after: Option<OffsetDateTime>,
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Serial, normal form.
    pub serial: String,
    /// Until when the entry matters.
    pub not_after: OffsetDateTime,
}

async fn observe(ctx: &Context, r: &Revocation) -> Result<World, Error> {
    let cas: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    let issuer = cas.get_opt(&r.spec.issuer_ref.name).await?;
    let intermediate = match &r.spec.certificate_authority {
        Some(name) => cas.get_opt(name).await?,
        None => None,
    };
    let mirrored_not_after = match r
        .spec
        .serial_number
        .as_deref()
        .and_then(pki::normalize_serial)
    {
        Some(serial) => ctx
            .store
            .list_certificates(CertQuery {
                ca: Some(r.spec.issuer_ref.name.clone()),
                serial: Some(serial),
                now: ctx.clock.now().unix_timestamp(),
                ..Default::default()
            })
            .await
            .ok()
            .and_then(|rows| rows.first().map(|c| c.not_after))
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
        None => None,
    };
    Ok(World {
        issuer,
        intermediate,
        mirrored_not_after,
    })
}

fn ca_not_after(ca: &CertificateAuthority) -> Option<OffsetDateTime> {
    ca.status
        .as_ref()?
        .not_after
        .as_deref()
        .and_then(parse_rfc3339)
}

/// Which serial, until when. Pure.
pub fn decide(r: &Revocation, world: &World) -> Result<Target, Error> {
    let issuer = &r.spec.issuer_ref.name;
    let explicit = match r.spec.not_after.as_deref() {
        Some(t) => Some(parse_rfc3339(t).ok_or_else(|| {
            Error::InvalidSpec(format!(
                "spec.notAfter {t:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z"
            ))
        })?),
        None => None,
    };
    if let Some(name) = &r.spec.certificate_authority {
        let ca = world
            .intermediate
            .as_ref()
            .ok_or_else(|| Error::IssuerNotFound(name.clone()))?;
        if ca.spec.issuer_ref.as_ref().map(|p| &p.name) != Some(issuer) {
            return Err(Error::InvalidSpec(format!(
                "CertificateAuthority {name:?} is not issued by {issuer:?}; set spec.issuerRef.name to its parent"
            )));
        }
        let st = ca.status.clone().unwrap_or_default();
        let serial = st
            .serial_number
            .as_deref()
            .and_then(pki::normalize_serial)
            .ok_or_else(|| Error::IssuerNotReady(name.clone()))?;
        let not_after = explicit
            .or_else(|| ca_not_after(ca))
            .ok_or_else(|| Error::IssuerNotReady(name.clone()))?;
        return Ok(Target { serial, not_after });
    }
    let raw = r.spec.serial_number.clone().unwrap_or_default();
    let serial = pki::normalize_serial(&raw).ok_or_else(|| {
        Error::InvalidSpec(format!(
            "spec.serialNumber {raw:?} is not a serial number (hexadecimal, at most 20 bytes, not zero)"
        ))
    })?;
    let not_after = explicit
        .or(world.mirrored_not_after)
        .or_else(|| world.issuer.as_ref().and_then(ca_not_after))
        .ok_or_else(|| {
            Error::InvalidSpec(format!(
                "Signet knows neither the certificate {serial} nor CertificateAuthority {issuer:?}; set spec.notAfter so the entry can leave the CRL once the certificate has expired"
            ))
        })?;
    Ok(Target { serial, not_after })
}

#[async_trait::async_trait]
impl Kind for Revocation {
    type Status = RevocationStatus;
    const CONTROLLER: &'static str = "revocation";
    const ACTION: &'static str = "Revoke";

    fn status_of(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }

    async fn reconcile(&self, ctx: &Context, now: OffsetDateTime) -> Result<Next, Error> {
        if self
            .status
            .as_ref()
            .is_some_and(|s| s.serial_number.is_some())
            && self.status.as_ref().and_then(|s| s.observed_generation) == self.metadata.generation
        {
            return Ok(Next::AwaitChange);
        }
        let world = observe(ctx, self).await?;
        let target = decide(self, &world)?;
        let actor = super::certificate::revoke::actor_of(
            self.annotations(),
            ctx.revoked_by_vouched().await,
        );
        revoke(ctx, self, &target, &actor, now).await?;
        let prev = self.status.clone().unwrap_or_default();
        let message = format!(
            "serial {} is in the revocation register of {}; its CRL lists it within seconds",
            target.serial, self.spec.issuer_ref.name
        );
        let st = RevocationStatus {
            conditions: conditions::merge(
                &prev.conditions,
                &[Cond::yes(CONDITION_READY, "Revoked", message)],
                self.metadata.generation,
                now,
            ),
            observed_generation: self.metadata.generation,
            serial_number: Some(target.serial.clone()),
            revocation_time: prev.revocation_time.or(Some(rfc3339(now))),
            failed_attempts: None,
            last_failure_time: None,
        };
        driver::apply_status(ctx, self, &st).await?;
        Ok(Next::AwaitChange)
    }
}

/// The register first, then mirror, audit, metric.
async fn revoke(
    ctx: &Context,
    r: &Revocation,
    t: &Target,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let ca = &r.spec.issuer_ref.name;
    let entry = Revoked {
        serial: t.serial.clone(),
        revoked_at: now.unix_timestamp(),
        reason: r.spec.reason,
        not_after: t.not_after.unix_timestamp(),
        certificate: r
            .spec
            .certificate_authority
            .as_ref()
            .map(|c| format!("CertificateAuthority/{c}")),
        actor: Some(actor.to_string()),
    };
    // Idempotent; status does not confirm this yet, so record it (again,
    // after a crash between the register and the status write).
    revocations::add(&ctx.client, &ctx.namespace, ca, &[entry]).await?;
    ctx.store.record_revocation(RevocationRecord {
        ca: ca.clone(),
        serial: t.serial.clone(),
        revoked_at: now.unix_timestamp(),
        reason: Some(r.spec.reason.as_str().to_string()),
    });
    let mut obj = ObjectRef::cluster("Revocation", r.name_any());
    if let Some(uid) = r.uid() {
        obj = obj.with_uid(uid);
    }
    ctx.store.audit(
        AuditEvent::new(unix_ms(now), actor, AuditOperation::CertificateRevoked, obj)
            .with_ca(ca.clone())
            .with_serial(&t.serial)
            .with_details(json!({
                "reason": r.spec.reason.as_str(),
                "certificateAuthority": r.spec.certificate_authority,
            })),
    );
    ctx.metrics.certificate_revoked();
    Ok(())
}

/// Runs the Revocation controller.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let stream = Controller::new(
        Api::<Revocation>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
    .graceful_shutdown_on(ctx.stop.wait())
    .run(
        driver::reconcile::<Revocation>,
        driver::error_policy::<Revocation>,
        ctx,
    );
    driver::drain("revocation", stream).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testing::ca;

    fn revocation(spec: serde_json::Value) -> Revocation {
        serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "Revocation",
            "metadata": {"name": "r"}, "spec": spec
        }))
        .unwrap()
    }

    fn with_status(
        mut c: CertificateAuthority,
        serial: &str,
        not_after: &str,
    ) -> CertificateAuthority {
        c.status = Some(crate::api::CertificateAuthorityStatus {
            serial_number: Some(serial.into()),
            not_after: Some(not_after.into()),
            ..Default::default()
        });
        c
    }

    #[test]
    fn revocation_targets() {
        let root = with_status(ca("root", json!({})), "01", "2036-01-01T00:00:00Z");
        let inter = with_status(
            ca("inter", json!({"issuerRef": {"name": "root"}})),
            "0a:bc",
            "2031-01-01T00:00:00Z",
        );
        let stray = with_status(
            ca("stray", json!({"issuerRef": {"name": "other"}})),
            "0d",
            "2031-01-01T00:00:00Z",
        );
        let w = |issuer: Option<&CertificateAuthority>,
                 intermediate: Option<&CertificateAuthority>,
                 mirrored: Option<i64>| World {
            issuer: issuer.cloned(),
            intermediate: intermediate.cloned(),
            mirrored_not_after: mirrored.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
        };
        type Case = (
            &'static str,
            serde_json::Value,
            World,
            Result<(&'static str, &'static str), &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "an intermediate's current certificate, until its notAfter",
                json!({"issuerRef": {"name": "root"}, "certificateAuthority": "inter", "reason": "caCompromise"}),
                w(Some(&root), Some(&inter), None),
                Ok(("0abc", "2031-01-01T00:00:00Z")),
            ),
            (
                "an intermediate of another parent is refused",
                json!({"issuerRef": {"name": "root"}, "certificateAuthority": "stray", "reason": "caCompromise"}),
                w(Some(&root), Some(&stray), None),
                Err("InvalidSpec"),
            ),
            (
                "a serial the mirror knows, until its notAfter",
                json!({"issuerRef": {"name": "root"}, "serialNumber": "0x0F", "reason": "keyCompromise"}),
                w(Some(&root), None, Some(1_900_000_000)),
                Ok(("0f", "2030-03-17T17:46:40Z")),
            ),
            (
                "a serial Signet does not know, until the CA's notAfter",
                json!({"issuerRef": {"name": "root"}, "serialNumber": "0f", "reason": "keyCompromise"}),
                w(Some(&root), None, None),
                Ok(("0f", "2036-01-01T00:00:00Z")),
            ),
            (
                "an explicit notAfter wins",
                json!({"issuerRef": {"name": "root"}, "serialNumber": "0f", "reason": "keyCompromise", "notAfter": "2027-01-01T00:00:00Z"}),
                w(Some(&root), None, Some(1_900_000_000)),
                Ok(("0f", "2027-01-01T00:00:00Z")),
            ),
            (
                "a serial of a deleted CA needs notAfter",
                json!({"issuerRef": {"name": "gone"}, "serialNumber": "0f", "reason": "keyCompromise"}),
                w(None, None, None),
                Err("InvalidSpec"),
            ),
            (
                "a zero serial is refused",
                json!({"issuerRef": {"name": "root"}, "serialNumber": "00", "reason": "keyCompromise"}),
                w(Some(&root), None, None),
                Err("InvalidSpec"),
            ),
        ];
        for (name, spec, world, want) in cases {
            let got = decide(&revocation(spec), &world)
                .map(|t| (t.serial, rfc3339(t.not_after)))
                .map_err(|e| e.reason());
            let want = want.map(|(s, t)| (s.to_string(), t.to_string()));
            assert_eq!(got, want, "{name}");
        }
    }
}
