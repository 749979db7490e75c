//! What the request-based front doors share (cert-manager
//! CertificateRequests, Kubernetes CSRs, PodCertificateRequests): the
//! issuance already recorded for a request's uid, and the CA policy check
//! of a planned leaf.

use std::collections::BTreeMap;

use kube::api::Api;
use time::OffsetDateTime;

use super::certmanager::decide::Plan;
use super::policy::{self, LeafAsk, Names};
use super::{Context, Error, ca};
use crate::api::CertificateAuthority;
use crate::pki;
use crate::store::CertQuery;

/// The certificate an earlier reconcile signed for the request
/// `namespace/name` with `uid` (`""` namespace for cluster-scoped ones),
/// if the mirror has it: signing is never repeated for one request.
pub async fn recorded(
    ctx: &Context,
    (namespace, name, uid): (&str, &str, &str),
    now: OffsetDateTime,
) -> Result<Option<pki::CertFacts>, Error> {
    if uid.is_empty() {
        return Ok(None);
    }
    let rows = ctx
        .store
        .list_certificates(CertQuery {
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            now: now.unix_timestamp(),
            include_pem: true,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::AuditUnavailable(e.to_string()))?;
    let Some(pem) = rows
        .into_iter()
        .find(|r| r.uid == uid)
        .and_then(|r| r.certificate_pem)
    else {
        return Ok(None);
    };
    let der = pki::parse::pem_certificates(pem.as_bytes())
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Other(format!(
                "the mirrored certificate of request {uid} does not parse"
            ))
        })?;
    Ok(Some(pki::cert_facts(&der)?))
}

/// The policy of `ca` and its ancestors for `plan`, requested from
/// namespace `ns` (labels read only when a selector needs them).
pub async fn check_policy(
    ctx: &Context,
    ca: &CertificateAuthority,
    ns: &str,
    plan: &Plan,
) -> Result<(), Error> {
    let ancestors = ca::observe::ancestry(ctx, ca).await?.parents;
    let chain: Vec<&CertificateAuthority> = std::iter::once(ca).chain(ancestors.iter()).collect();
    let by_label = chain.iter().any(|c| {
        c.spec
            .allowed_namespaces
            .as_ref()
            .is_some_and(|a| a.selector.is_some())
    });
    let labels = if by_label && !ns.is_empty() {
        Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
            .get_opt(ns)
            .await?
            .and_then(|n| n.metadata.labels)
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    check_chain(&chain, ns, plan, &labels)
}

/// [`check_policy`] with the chain and the namespace's labels in hand.
pub fn check_chain(
    chain: &[&CertificateAuthority],
    ns: &str,
    plan: &Plan,
    labels: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let req = &plan.request;
    let ask = LeafAsk {
        namespace: ns,
        usages: &plan.usages,
        subject: Some(&plan.subject),
        uris: &req.uris,
        names: Names {
            dns: &req.dns_names,
            ips: &req.ip_addresses,
            emails: &req.email_addresses,
        },
        duration: plan.duration,
    };
    policy::check_leaf(chain, &ask, labels)
}

/// The one KMS Sign of a request's leaf for `spki`, after the last checks
/// (the leaf fits under the CA; the audit trail can be written).
pub async fn sign_leaf(
    ctx: &Context,
    issuer: &ca::ReadyIssuer,
    plan: &Plan,
    spki_der: &[u8],
    now: OffsetDateTime,
) -> Result<pki::CertFacts, Error> {
    pki::check_leaf_request(&issuer.info, &plan.request, now)?;
    ctx.audit_ready()?;
    let signer = ctx.signer(&issuer.key_arn).await?;
    let cert = pki::issue_leaf_for_key(&issuer.info, signer.as_ref(), &plan.request, spki_der, now)
        .await?;
    Ok(pki::cert_facts(&cert.cert_der)?)
}
