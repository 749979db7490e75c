//! `signet revoke`: three targets.
//!
//! * `signet revoke <namespace>/<name> --reason R [--reissue] [--serial S]`
//!   — a Certificate. Without `--reissue`/`--serial` it sets
//!   `spec.revocation` (the declarative, permanent path); otherwise it asks
//!   the controller, through an annotation, to revoke one serial (and
//!   reissue).
//! * `signet revoke --issuer <ca> --serial S --reason R` — any serial a CA
//!   issued, whether or not a Certificate object still exists.
//! * `signet revoke --authority <ca> --reason R` — an intermediate CA; it is
//!   listed in its parent's CRL.
//!
//! * `signet revoke certificaterequest/<namespace>/<name> --reason R` — the
//!   certificate Signet signed for a cert-manager CertificateRequest.
//!
//! The last three create a cluster-scoped `Revocation`, which namespace
//! editors cannot. Every path names the user in `signet.dev/revoked-by`
//! (which the admission policy only admits as the requesting user) and
//! prints what the operator confirmed, not what it asked for.

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
    /// The Certificate, as `<namespace>/<name>`, or a cert-manager
    /// CertificateRequest as `certificaterequest/<namespace>/<name>`.
    pub certificate: Option<String>,
    /// Revoke a serial of this CertificateAuthority directly (with
    /// --serial), without a Certificate object.
    #[arg(long, value_name = "CA", conflicts_with = "certificate")]
    pub issuer: Option<String>,
    /// Revoke this intermediate CertificateAuthority's certificate (listed
    /// in its parent's CRL).
    #[arg(long, value_name = "CA", conflicts_with_all = ["certificate", "issuer", "reissue", "serial"])]
    pub authority: Option<String>,
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

/// The user name the API server knows us by (SelfSubjectReview): the only
/// value the admission policy admits in `signet.dev/revoked-by`.
pub async fn whoami(client: &kube::Client) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&Default::default(), &SelfSubjectReview::default())
        .await
        .context("asking the API server who we are (SelfSubjectReview)")?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .context("the API server did not say who we are (SelfSubjectReview has no user name)")
}

/// Runs `signet revoke`.
pub async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (set KUBECONFIG)")?;
    let me = whoami(&client).await?;
    match (&args.certificate, &args.issuer, &args.authority) {
        (Some(target), None, None) => match target.strip_prefix(REQUEST_PREFIX) {
            Some(request) => revoke_request(&args, client, me, request).await,
            None => revoke_certificate(&args, client, me, target).await,
        },
        (None, Some(ca), None) => {
            let serial = args
                .serial
                .as_deref()
                .context("--issuer needs --serial <hex>: the serial to revoke")?;
            let serial = crate::pki::normalize_serial(serial).with_context(|| {
                format!("--serial {serial:?} is not a hexadecimal serial number")
            })?;
            let spec =
                json!({"issuerRef": {"name": ca}, "serialNumber": serial, "reason": args.reason});
            revoke_directly(&args, client, me, &format!("{ca}-{serial}"), spec).await
        }
        (None, None, Some(inter)) => {
            let cas: Api<crate::api::CertificateAuthority> = Api::all(client.clone());
            let ca = cas
                .get_opt(inter)
                .await?
                .with_context(|| format!("CertificateAuthority {inter} not found"))?;
            let parent = ca
                .spec
                .issuer_ref
                .as_ref()
                .map(|r| r.name.clone())
                .with_context(|| format!("CertificateAuthority {inter} is a root: nothing above it can list it in a CRL; remove it from trust stores instead"))?;
            let serial = ca.status.and_then(|s| s.serial_number).unwrap_or_default();
            let spec = json!({"issuerRef": {"name": parent}, "certificateAuthority": inter, "reason": args.reason});
            revoke_directly(&args, client, me, &format!("{inter}-{serial}"), spec).await
        }
        _ => bail!(
            "name what to revoke: <namespace>/<name> (a Certificate), --issuer <ca> --serial <hex>, or --authority <ca>"
        ),
    }
}

/// Target prefix of a cert-manager CertificateRequest Signet signed.
pub const REQUEST_PREFIX: &str = "certificaterequest/";

/// `signet revoke certificaterequest/<namespace>/<name>`: the serial in
/// the request's `status.certificate`, revoked through a Revocation of its
/// CA (the request itself is cert-manager's and one-shot).
async fn revoke_request(
    args: &RevokeArgs,
    client: kube::Client,
    me: String,
    target: &str,
) -> anyhow::Result<()> {
    use super::certmanager::CertificateRequest;
    if args.reissue || args.serial.is_some() {
        bail!(
            "--reissue and --serial do not apply to a CertificateRequest; cert-manager reissues by creating a new request"
        );
    }
    let (ns, name) = parse_target(target)?;
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), &ns);
    let cr = api
        .get_opt(&name)
        .await?
        .with_context(|| format!("CertificateRequest {ns}/{name} not found"))?;
    if !cr.is_for_signet() {
        bail!(
            "CertificateRequest {ns}/{name} is not for a Signet CertificateAuthority (spec.issuerRef)"
        );
    }
    let pem = cr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .with_context(|| {
            format!("CertificateRequest {ns}/{name} has no certificate yet; nothing to revoke")
        })?;
    let facts = crate::pki::parse::first_cert_facts(&pem.0).with_context(|| {
        format!("the status.certificate of CertificateRequest {ns}/{name} does not parse")
    })?;
    let ca = cr.spec.issuer_ref.name.clone();
    let serial = facts.serial_hex;
    let spec = json!({"issuerRef": {"name": ca}, "serialNumber": serial, "reason": args.reason});
    revoke_directly(args, client, me, &format!("{ca}-{serial}"), spec).await
}

/// Creates a cluster-scoped Revocation named after what it revokes, and
/// waits for the operator to confirm it.
async fn revoke_directly(
    args: &RevokeArgs,
    client: kube::Client,
    me: String,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<()> {
    use crate::api::Revocation;
    let name: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    let api: Api<Revocation> = Api::all(client);
    let obj: Revocation = serde_json::from_value(json!({
        "apiVersion": "signet.dev/v1alpha1", "kind": "Revocation",
        "metadata": {"name": name, "annotations": {REVOKED_BY_ANNOTATION: me}},
        "spec": spec,
    }))?;
    match api.create(&Default::default(), &obj).await {
        Ok(_) => println!("Revocation {name} created"),
        Err(kube::Error::Api(s)) if s.code == 409 => println!("Revocation {name} exists already"),
        Err(e) => return Err(anyhow::anyhow!(crate::controller::kube_message(&e))),
    }
    if args.wait.is_zero() {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        let r = api.get(&name).await?;
        let st = r.status.clone().unwrap_or_default();
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready");
        match (ready, &st.serial_number) {
            (Some(c), Some(serial)) if c.status == "True" => {
                println!(
                    "revoked serial {serial} of {}; listed in its CRL",
                    r.spec.issuer_ref.name
                );
                return Ok(());
            }
            (Some(c), _) if c.status == "False" && c.reason != "IssuerNotReady" => {
                bail!("the operator refused the Revocation: {}", c.message)
            }
            _ => {}
        }
        if start.elapsed() > args.wait {
            bail!(
                "the operator did not confirm within {}s; check `kubectl describe revocation.signet.dev {name}`",
                args.wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `signet revoke <namespace>/<name>`.
async fn revoke_certificate(
    args: &RevokeArgs,
    client: kube::Client,
    me: String,
    target: &str,
) -> anyhow::Result<()> {
    let (ns, name) = parse_target(target)?;
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
            actor: None,
            serial: Some(serial.clone()),
            id: Some(request_id.clone()),
        };
        api.patch(
            &name,
            &pp,
            &Patch::Merge(json!({"metadata": {"annotations": {
                REVOKE_ANNOTATION: serde_json::to_string(&req)?,
                REVOKED_BY_ANNOTATION: me,
            }}})),
        )
        .await?;
    } else {
        api.patch(
            &name,
            &pp,
            &Patch::Merge(json!({
                "metadata": {"annotations": {REVOKED_BY_ANNOTATION: me}},
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
