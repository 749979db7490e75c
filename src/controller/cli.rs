//! `signet revoke <namespace>/<name> --reason R [--reissue]`.
//!
//! Without `--reissue` it sets `spec.revocation` (the declarative,
//! permanent path). With `--reissue` it asks the controller, through an
//! annotation, to revoke the current serial and issue a fresh key and
//! certificate. Either way the operator records the revocation durably,
//! audits it with the CLI user as actor, and re-signs the CRL.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::certificate::{
    REVOKE_ANNOTATION, REVOKE_REQUEST_CONDITION, REVOKED_BY_ANNOTATION, RevokeRequest,
};
use crate::api::{Certificate, CertificateStatus, RevocationReason};

/// Arguments of `signet revoke`.
#[derive(clap::Args, Debug, Clone)]
pub struct RevokeArgs {
    /// The Certificate, as `<namespace>/<name>`.
    pub certificate: String,
    /// RFC 5280 reason: unspecified, keyCompromise, caCompromise,
    /// affiliationChanged, superseded, cessationOfOperation,
    /// certificateHold, privilegeWithdrawn.
    #[arg(long, value_parser = parse_reason)]
    pub reason: RevocationReason,
    /// Issue a fresh key and certificate after revoking.
    #[arg(long)]
    pub reissue: bool,
    /// Revoke this one serial (hex) instead: any unexpired certificate
    /// Signet issued for this Certificate, e.g. the one in a Secret that was
    /// deleted and replaced. Without it and without --reissue, the
    /// Certificate is revoked for good (spec.revocation), with every
    /// unexpired certificate it had.
    #[arg(long)]
    pub serial: Option<String>,
    /// How long to wait for the operator to confirm (0 = do not wait).
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    pub wait: Duration,
}

fn parse_reason(s: &str) -> Result<RevocationReason, String> {
    s.parse()
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    if s == "0" || s == "0s" {
        return Ok(Duration::ZERO);
    }
    crate::api::duration::parse("--wait", s)
}

/// Splits `<namespace>/<name>`.
pub fn parse_target(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => bail!("certificate {s:?}: expected <namespace>/<name>, e.g. demo/web-tls"),
    }
}

/// Runs `signet revoke` on a fresh runtime.
pub fn revoke_blocking(args: RevokeArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(revoke(args))
}

fn actor() -> String {
    crate::store::cli::cli_actor()
}

/// Runs `signet revoke`.
pub async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let (ns, name) = parse_target(&args.certificate)?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (set KUBECONFIG)")?;
    let api: Api<Certificate> = Api::namespaced(client, &ns);
    let cert = api
        .get_opt(&name)
        .await?
        .with_context(|| format!("Certificate {ns}/{name} not found"))?;
    let status = cert.status.clone().unwrap_or_default();
    if cert.spec.revocation.is_some() {
        bail!("Certificate {ns}/{name} is already revoked (spec.revocation is set)");
    }
    let serial = match &args.serial {
        Some(s) => crate::pki::normalize_serial(s)
            .with_context(|| format!("--serial {s:?} is not a hexadecimal serial number"))?,
        None => status.serial_number.clone().with_context(|| {
            format!("Certificate {ns}/{name} has no issued certificate yet; nothing to revoke")
        })?,
    };
    let serial = crate::pki::normalize_serial(&serial).unwrap_or(serial);
    let pp = PatchParams::default();
    let request_id = format!("{:016x}", rand::random::<u64>());
    if args.reissue || args.serial.is_some() {
        let req = RevokeRequest {
            reason: args.reason,
            reissue: args.reissue,
            actor: Some(actor()),
            serial: Some(serial.clone()),
            id: Some(request_id.clone()),
        };
        api.patch(
            &name,
            &pp,
            &Patch::Merge(json!({"metadata": {"annotations": {
                REVOKE_ANNOTATION: serde_json::to_string(&req)?
            }}})),
        )
        .await?;
    } else {
        api.patch(
            &name,
            &pp,
            &Patch::Merge(json!({
                "metadata": {"annotations": {REVOKED_BY_ANNOTATION: actor()}},
                "spec": {"revocation": {"reason": args.reason}}
            })),
        )
        .await?;
    }
    println!(
        "revocation of {ns}/{name} serial {serial} ({}) requested",
        args.reason.as_str()
    );
    if args.wait.is_zero() {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        let c = api.get(&name).await?;
        if let Some(done) = confirmed(&c, &serial, args.reissue, &request_id)? {
            println!("{done}");
            return Ok(());
        }
        if start.elapsed() > args.wait {
            bail!(
                "the operator did not confirm within {}s; check `kubectl describe certificate.signet.dev -n {ns} {name}`",
                args.wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the controller confirmed about revoking `serial`: `Some(message)`
/// once the revocation is in status (and, with `reissue`, a new serial is),
/// an error when it refused the request, `None` while pending.
pub fn confirmed(
    c: &Certificate,
    serial: &str,
    reissue: bool,
    request_id: &str,
) -> anyhow::Result<Option<String>> {
    let st: CertificateStatus = c.status.clone().unwrap_or_default();
    if let Some(cond) = st.conditions.iter().find(|x| {
        x.type_ == REVOKE_REQUEST_CONDITION
            && x.status == "False"
            && x.message.contains(&format!("(request {request_id})"))
    }) {
        bail!("the operator refused the request: {}", cond.message);
    }
    let revoked: Vec<&str> = st
        .revocations
        .iter()
        .map(|r| r.serial_number.as_str())
        .collect();
    if !revoked.contains(&serial) {
        return Ok(None);
    }
    if !reissue {
        return Ok(Some(format!(
            "revoked serial {}; listed in the CA's CRL",
            revoked.join(", ")
        )));
    }
    match st.serial_number.as_deref() {
        Some(new) if new != serial && !c.annotations_contains(REVOKE_ANNOTATION) => Ok(Some(
            format!("revoked serial {serial}; reissued as serial {new}"),
        )),
        _ => Ok(None),
    }
}

trait HasAnnotation {
    fn annotations_contains(&self, key: &str) -> bool;
}

impl HasAnnotation for Certificate {
    fn annotations_contains(&self, key: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_must_be_namespace_slash_name() {
        assert_eq!(parse_target("a/b").unwrap(), ("a".into(), "b".into()));
        for bad in ["ab", "/b", "a/", "a/b/c"] {
            assert!(
                parse_target(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("<namespace>/<name>")
            );
        }
    }

    #[test]
    fn unknown_reason_lists_the_valid_ones() {
        let e = parse_reason("stolen").unwrap_err();
        assert!(e.contains("keyCompromise"), "{e}");
    }
}
