//! The approved path: observe the CA, plan, check the policy, sign once,
//! record, write the issued status. A recorded issuance is reused.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;
use serde_json::json;
use time::OffsetDateTime;
use tracing::info;

use super::super::{Context, Error, ca, mirror, requests};
use super::decide::{self, reason};
use super::status::{apply_status, audit, event, ready};
use super::types::CertificateRequest;
use crate::api::{CertificateAuthority, duration};
use crate::clock::rfc3339;
use crate::pki;
use crate::store::{AuditOperation, Outcome};

/// What the request's policy decision depends on.
struct World {
    issuer: CertificateAuthority,
    ancestors: Vec<CertificateAuthority>,
    namespace_labels: BTreeMap<String, String>,
}

async fn observe(ctx: &Context, cr: &CertificateRequest) -> Result<World, Error> {
    let name = &cr.spec.issuer_ref.name;
    let cas: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    let issuer = cas
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::IssuerNotFound(name.clone()))?;
    let ancestors = ca::observe::ancestry(ctx, &issuer).await?.parents;
    let by_label = issuer
        .spec
        .allowed_namespaces
        .as_ref()
        .is_some_and(|a| a.selector.is_some());
    let namespace_labels = if by_label {
        let ns = cr.namespace().unwrap_or_default();
        Api::<Namespace>::all(ctx.client.clone())
            .get_opt(&ns)
            .await?
            .map(|n| n.labels().clone())
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    Ok(World {
        issuer,
        ancestors,
        namespace_labels,
    })
}

/// The approved path: a recorded issuance is reused; otherwise every check
/// runs before the one KMS Sign, and the issuance is on record before the
/// status says so.
pub(super) async fn sign(
    ctx: &Context,
    cr: &CertificateRequest,
    now: OffsetDateTime,
) -> Result<(), Error> {
    if let Some(facts) = recorded(ctx, cr, now).await? {
        let ca = Api::<CertificateAuthority>::all(ctx.client.clone())
            .get_opt(&cr.spec.issuer_ref.name)
            .await?
            .ok_or_else(|| Error::IssuerNotFound(cr.spec.issuer_ref.name.clone()))?;
        let issuer = ca::issuer_of(&ca, false)?;
        info!(serial = %facts.serial_hex, "certificate request was signed before its status was written; reusing that certificate");
        return issued(ctx, cr, &issuer, &facts, now).await;
    }
    let (issuer, facts) = sign_and_record(ctx, cr, now).await?;
    issued(ctx, cr, &issuer, &facts, now).await
}

/// Everything up to the status write, for a request taken as approved:
/// CSR, CA, plan, policy, one KMS Sign, then the mirror row and the
/// committed audit row. Public so a test can stop exactly where a crash
/// would (signed and recorded, status not written).
pub async fn sign_and_record(
    ctx: &Context,
    cr: &CertificateRequest,
    now: OffsetDateTime,
) -> Result<(ca::ReadyIssuer, pki::CertFacts), Error> {
    let csr = pki::parse_csr(&cr.spec.request.0).map_err(|e| Error::Policy {
        reason: "InvalidCSR",
        message: e.to_string(),
    })?;
    let world = observe(ctx, cr).await?;
    // The CRL distribution point and AIA URLs of the public base URL, as
    // for Signet Certificates.
    let urls = ca::urls::observe(ctx, &world.issuer).await?;
    let issuer = ca::issuer_with_urls(&world.issuer, true, urls.as_ref())?;
    let ca_max = duration::optional(
        "spec.maxCertificateDuration",
        world.issuer.spec.max_certificate_duration.as_deref(),
    )
    .map_err(Error::InvalidSpec)?;
    let plan = decide::plan(cr, &csr, ca_max)?;
    check_policy(cr, &world, &plan)?;
    let facts = requests::sign_leaf(ctx, &issuer, &plan, &csr.spki_der, now).await?;
    record(ctx, cr, &issuer.name, &plan.request, &facts, now).await?;
    Ok((issuer, facts))
}

/// The CA policy every front door shares, applied to this request.
fn check_policy(cr: &CertificateRequest, world: &World, plan: &decide::Plan) -> Result<(), Error> {
    let chain: Vec<&CertificateAuthority> = std::iter::once(&world.issuer)
        .chain(world.ancestors.iter())
        .collect();
    let ns = cr.namespace().unwrap_or_default();
    requests::check_chain(&chain, &ns, plan, &world.namespace_labels)
}

/// The certificate an earlier reconcile signed for this request (same
/// uid), if the mirror has it.
async fn recorded(
    ctx: &Context,
    cr: &CertificateRequest,
    now: OffsetDateTime,
) -> Result<Option<pki::CertFacts>, Error> {
    let (ns, name, uid) = (
        cr.namespace().unwrap_or_default(),
        cr.name_any(),
        cr.uid().unwrap_or_default(),
    );
    requests::recorded(ctx, (&ns, &name, &uid), now).await
}

/// Mirror row and audit row of a certificate just signed for `cr`, before
/// its status: waits (bounded) until the audit row is committed, and the
/// mirror row queued ahead of it with it.
async fn record(
    ctx: &Context,
    cr: &CertificateRequest,
    ca: &str,
    req: &pki::LeafRequest,
    facts: &pki::CertFacts,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let ns = cr.namespace().unwrap_or_default();
    let uid = cr.uid().unwrap_or_default();
    ctx.store
        .upsert_certificate(mirror::certificate_request_row(
            (&ns, &cr.name_any(), &uid),
            ca,
            req,
            facts,
        ));
    let row = audit(cr, AuditOperation::CertificateIssued, Outcome::Success, now)
        .with_ca(ca)
        .with_serial(&facts.serial_hex)
        .with_details(json!({
            "notAfter": rfc3339(facts.not_after),
            "actorSource": "spec.username of the CertificateRequest, set by cert-manager's webhook (as trustworthy as the API server's admission chain)",
            "groups": cr.spec.groups,
        }));
    ctx.audit_committed(row, &facts.serial_hex).await?;
    ctx.metrics.certificate_issued(false);
    Ok(())
}

/// Writes the issued status: the leaf and the intermediates, the root.
async fn issued(
    ctx: &Context,
    cr: &CertificateRequest,
    issuer: &ca::ReadyIssuer,
    facts: &pki::CertFacts,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let (intermediates, root) = pki::split_chain(&issuer.chain_pem);
    let msg = format!(
        "Certificate issued by CertificateAuthority {}, serial {}",
        issuer.name, facts.serial_hex
    );
    let status = json!({
        "conditions": [ready(cr, "True", reason::ISSUED, &msg, now)],
        "certificate": ByteString(format!("{}{intermediates}", facts.pem()).into_bytes()),
        "ca": ByteString(root.into_bytes()),
    });
    apply_status(ctx, cr, status).await?;
    info!(serial = %facts.serial_hex, "certificate request issued");
    event(ctx, cr, EventType::Normal, reason::ISSUED, msg).await;
    Ok(())
}
