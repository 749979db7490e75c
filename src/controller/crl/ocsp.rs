//! The OCSP responder of the CA a CRL object publishes, kept by the CRL
//! controller (which already signs with the CA key and knows the signed
//! revocations): observe (the view the HTTP side answers from, in memory)
//! → decide (pure: keep it, republish it with a new CRL, or issue a new
//! responder certificate) → act (one KMS `Sign` for a new responder
//! certificate; none otherwise) → publish the view.
//!
//! The responder key is generated in memory and lives only in the
//! published view: never in a Secret, the mirror, a status or a log. A
//! restart issues a new one. Answering costs no KMS call.

use std::collections::HashMap;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tracing::info;

use super::super::ca::issuer_of;
use super::super::{Context, Error};
use crate::api::CertificateAuthority;
use crate::kms::{KeySpec, LocalSigner, Signer};
use crate::pki::ocsp::{DelegatedResponder, issue_responder};
use crate::pki::{CrlFacts, normalize_serial};
use crate::published::PublishedOcsp;

/// Validity of a delegated responder certificate. It carries
/// id-pkix-ocsp-nocheck (clients cannot learn of its revocation), so it is
/// kept short.
pub const RESPONDER_VALIDITY: Duration = Duration::hours(48);
/// A responder certificate is replaced once less than this is left.
pub const RENEW_BEFORE: Duration = Duration::hours(16);

/// What the current view says (observed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The CA certificate its responder was issued under.
    pub ca_cert_der: Vec<u8>,
    /// The responder certificate's notAfter.
    pub not_after: OffsetDateTime,
    /// The cRLNumber it answers from.
    pub crl_number: u64,
}

/// What to do with the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Up to date: keep it (and its cached answers).
    Keep,
    /// Same responder, newer CRL: publish a new view (drops the cache).
    Republish,
    /// Issue a new responder certificate, then publish.
    Issue(&'static str),
}

/// Observes the view of `ca`.
pub fn observe(ctx: &Context, ca: &str) -> Option<Current> {
    ctx.published.ocsp(ca).map(|v| Current {
        ca_cert_der: v.responder.issuer().cert_der().to_vec(),
        not_after: v.responder.not_after(),
        crl_number: v.crl_number,
    })
}

/// Decides. Pure.
pub fn decide(
    current: Option<&Current>,
    ca_cert_der: &[u8],
    crl_number: u64,
    now: OffsetDateTime,
) -> Plan {
    match current {
        None => Plan::Issue("NoResponder"),
        Some(c) if c.ca_cert_der != ca_cert_der => Plan::Issue("CaChanged"),
        Some(c) if now >= c.not_after - RENEW_BEFORE => Plan::Issue("Renew"),
        Some(c) if c.crl_number != crl_number => Plan::Republish,
        Some(_) => Plan::Keep,
    }
}

/// When the responder of `ca` must be looked at again: its renewal time.
pub fn renew_at(ctx: &Context, ca: &str) -> Option<OffsetDateTime> {
    observe(ctx, ca).map(|c| c.not_after - RENEW_BEFORE)
}

/// Brings the OCSP view of `ca` in line with the CRL `facts` just
/// published (signature already verified by the caller).
pub async fn refresh(
    ctx: &Context,
    ca: &CertificateAuthority,
    ca_name: &str,
    facts: &CrlFacts,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let issuer = issuer_of(ca, false)?;
    let current = observe(ctx, ca_name);
    let plan = decide(current.as_ref(), issuer.info.cert_der(), facts.number, now);
    let responder = match plan {
        Plan::Keep => return Ok(()),
        Plan::Republish => match ctx.published.ocsp(ca_name) {
            Some(v) => DelegatedResponder::new(
                v.responder.issuer().clone(),
                v.responder.key(),
                v.responder.cert_der().to_vec(),
            )?,
            None => return Ok(()),
        },
        Plan::Issue(why) => {
            let key: Arc<dyn Signer> = Arc::new(LocalSigner::generate(
                KeySpec::EccNistP256,
                format!("memory:ocsp-responder:{ca_name}"),
            )?);
            ctx.audit_ready()?;
            let ca_signer = ctx.signer(&issuer.key_arn).await?;
            let cert = issue_responder(
                &issuer.info,
                ca_signer.as_ref(),
                key.public_key_spki_der(),
                RESPONDER_VALIDITY,
                now,
            )
            .await?;
            info!(
                ca = ca_name,
                why,
                serial = cert.serial_hex,
                "OCSP responder certificate issued"
            );
            DelegatedResponder::new(issuer.info.clone(), key, cert.cert_der)?
        }
    };
    let next_update = facts.next_update.unwrap_or(now + Duration::hours(1));
    ctx.published.put_ocsp(
        ca_name,
        Arc::new(PublishedOcsp::new(
            responder,
            revoked(facts),
            facts.number,
            next_update,
        )),
    );
    Ok(())
}

/// The revocations of a CRL by serial (normal form).
fn revoked(
    facts: &CrlFacts,
) -> HashMap<String, (OffsetDateTime, Option<crate::pki::RevocationReason>)> {
    facts
        .entries
        .iter()
        .filter_map(|e| Some((normalize_serial(&e.serial_hex)?, (e.revoked_at, e.reason))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::hours(h)
    }

    fn current(not_after_h: i64, number: u64) -> Current {
        Current {
            ca_cert_der: vec![1, 2, 3],
            not_after: t(not_after_h),
            crl_number: number,
        }
    }

    #[test]
    fn a_responder_is_issued_when_missing_for_a_new_ca_certificate_and_before_expiry() {
        assert_eq!(
            decide(None, &[1, 2, 3], 1, t(0)),
            Plan::Issue("NoResponder")
        );
        assert_eq!(
            decide(Some(&current(48, 1)), &[9], 1, t(0)),
            Plan::Issue("CaChanged")
        );
        assert_eq!(
            decide(Some(&current(48, 1)), &[1, 2, 3], 1, t(32)),
            Plan::Issue("Renew"),
            "16 hours before notAfter"
        );
        assert_eq!(
            decide(Some(&current(48, 1)), &[1, 2, 3], 1, t(31)),
            Plan::Keep
        );
    }

    #[test]
    fn a_new_crl_number_republishes_without_a_new_responder() {
        assert_eq!(
            decide(Some(&current(48, 1)), &[1, 2, 3], 2, t(0)),
            Plan::Republish
        );
    }
}
