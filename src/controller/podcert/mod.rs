//! Signet as a PodCertificateRequest signer (KEP-4317): requests whose
//! `spec.signerName` is `<signer domain>/<ca>` get a certificate for the
//! pod's identity from that CA.
//!
//! The identity rule: the certificate carries exactly one SAN, the URI
//! `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, where
//! the trust domain is the CA's `issuancePolicy.uris.spiffe.trustDomain`
//! (default `cluster.local`); no subject, no DNS names; client auth (a
//! server certificate needs a DNS name or IP address). The CA restricts it with its usual policy (allowed namespaces,
//! URI rules, name constraints, maximum duration).
//!
//! The API server checks the pod, ServiceAccount and node only for
//! requests a node makes, so Signet checks them itself: the pod must exist
//! with that uid, run as that ServiceAccount (same uid) on that node (same
//! uid). Status (through `/status` with the resourceVersion) is exactly
//! one of `Issued` (with `certificateChain`, `notBefore`, `notAfter`,
//! `beginRefreshAt`), `Denied` or `Failed`, set once. Served as `v1`, or
//! `v1beta1` where that is what the API server serves; without either the
//! signer stays off and keeps looking.

pub mod decide;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::json;
use time::OffsetDateTime;
use tracing::{Instrument, info, warn};

use super::{Context, Error, ca, driver, mirror, requests};
use crate::api::{CertificateAuthority, duration};
use crate::clock::{rfc3339, unix_ms};
use crate::pki;
use crate::store::{AuditEvent, AuditOperation, ObjectRef, Outcome};
use decide::Step;
pub use types::PodCertificateRequest;

/// Kind name.
pub const KIND: &str = "PodCertificateRequest";
/// How often Signet looks for the API while it is not served.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

fn resource(version: &str) -> ApiResource {
    ApiResource {
        group: "certificates.k8s.io".into(),
        version: version.into(),
        api_version: format!("certificates.k8s.io/{version}"),
        kind: KIND.into(),
        plural: "podcertificaterequests".into(),
    }
}

/// The version of the API the server serves (`v1` preferred).
async fn served(client: &kube::Client) -> Option<ApiResource> {
    for version in ["v1", "v1beta1"] {
        let ar = resource(version);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        if api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .is_ok()
        {
            return Some(ar);
        }
    }
    None
}

/// Runs the signer once the API is served (or until a stop).
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let mut said = false;
    let ar = loop {
        if let Some(ar) = served(&ctx.client).await {
            break ar;
        }
        if !said {
            info!(
                "PodCertificateRequest is not served (or not readable); the pod certificate signer stays off and starts when it is"
            );
            said = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(DISCOVERY_INTERVAL) => {}
            _ = ctx.stop.wait() => return,
        }
    };
    info!(version = %ar.api_version, "the pod certificate signer is running");
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    let stream = Controller::new_with(api, watcher::Config::default(), ar)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(ctx.stop.wait())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(30)),
            ctx,
        );
    driver::drain("podcertificaterequest", stream).await;
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ctx.may_write().is_err() {
        return Ok(Action::requeue(driver::NOT_LEADER_RETRY));
    }
    let pcr: PodCertificateRequest = serde_json::to_value(obj.as_ref())
        .and_then(serde_json::from_value)
        .map_err(|e| Error::Other(format!("reading a PodCertificateRequest: {e}")))?;
    let Step::Sign { ca } = decide::step(&pcr, &ctx.signer_domain) else {
        return Ok(Action::await_change());
    };
    let name = format!(
        "{}/{}",
        pcr.metadata.namespace.clone().unwrap_or_default(),
        pcr.metadata.name.clone().unwrap_or_default()
    );
    let span = tracing::info_span!("reconcile", kind = KIND, object = %name);
    run(&ctx, &pcr, &ca).instrument(span).await
}

async fn run(ctx: &Context, pcr: &PodCertificateRequest, ca: &str) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let Err(err) = sign(ctx, pcr, ca, now).await else {
        return Ok(Action::await_change());
    };
    if err.is_retryable() || matches!(err, Error::IssuerNotReady(_)) {
        warn!(reason = err.reason(), error = %err, "not signed yet");
        return Ok(Action::requeue(if err.is_not_leader() {
            driver::NOT_LEADER_RETRY
        } else {
            Duration::from_secs(15)
        }));
    }
    // Policy and identity refusals are Denied; anything else that cannot
    // be retried (a broken CA) is Failed.
    let type_ = if matches!(err, Error::Policy { .. }) {
        "Denied"
    } else {
        "Failed"
    };
    warn!(reason = err.reason(), error = %err, "{}", type_.to_lowercase());
    answer(ctx, pcr, refused(pcr, type_, &err, now)).await?;
    ctx.store.audit(
        audit(pcr, AuditOperation::PolicyDenied, Outcome::Denied, now)
            .with_ca(ca)
            .with_details(
                json!({"condition": type_, "reason": err.reason(), "message": err.to_string()}),
            ),
    );
    Ok(Action::await_change())
}

fn deny(reason: &'static str, message: String) -> Error {
    Error::Policy { reason, message }
}

/// Checks that the pod, its ServiceAccount and its node are what the
/// request says (the API server does so only for requests from nodes).
async fn verify_identity(ctx: &Context, pcr: &PodCertificateRequest) -> Result<(), Error> {
    let s = &pcr.spec;
    let ns = pcr.metadata.namespace.clone().unwrap_or_default();
    let mismatch = |what: String| deny("IdentityMismatch", what);
    let pod = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&s.pod_name)
        .await?
        .ok_or_else(|| mismatch(format!("pod {ns}/{} does not exist", s.pod_name)))?;
    if pod.metadata.uid.as_deref() != Some(s.pod_uid.as_str()) {
        return Err(mismatch(format!(
            "pod {ns}/{} has another uid than spec.podUID",
            s.pod_name
        )));
    }
    let spec = pod.spec.unwrap_or_default();
    let pod_sa = spec
        .service_account_name
        .unwrap_or_else(|| "default".into());
    if pod_sa != s.service_account_name {
        return Err(mismatch(format!(
            "pod {ns}/{} runs as ServiceAccount {pod_sa:?}, not spec.serviceAccountName {:?}",
            s.pod_name, s.service_account_name
        )));
    }
    if spec.node_name.as_deref() != Some(s.node_name.as_str()) {
        return Err(mismatch(format!(
            "pod {ns}/{} is not on node {:?} (spec.nodeName)",
            s.pod_name, s.node_name
        )));
    }
    let sa = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&s.service_account_name)
        .await?;
    if sa.and_then(|a| a.metadata.uid).as_deref() != Some(s.service_account_uid.as_str()) {
        return Err(mismatch(format!(
            "ServiceAccount {ns}/{} does not exist with spec.serviceAccountUID",
            s.service_account_name
        )));
    }
    let node = Api::<Node>::all(ctx.client.clone())
        .get_opt(&s.node_name)
        .await?;
    if node.and_then(|n| n.metadata.uid).as_deref() != Some(s.node_uid.as_str()) {
        return Err(mismatch(format!(
            "node {} does not exist with spec.nodeUID",
            s.node_name
        )));
    }
    Ok(())
}

/// The public key the request carries: the stub PKCS#10 request's, or (the
/// older form) `pkixPublicKey`, whose proof of possession the API server
/// verified at admission.
fn public_key(pcr: &PodCertificateRequest) -> Result<pki::CsrContents, Error> {
    let s = &pcr.spec;
    let parsed = match (&s.stub_pkcs10_request, &s.pkix_public_key) {
        (Some(csr), _) if !csr.0.is_empty() => pki::parse_csr_der(&csr.0),
        (_, Some(key)) if !key.0.is_empty() => pki::contents_of_spki(&key.0),
        _ => {
            return Err(deny(
                "InvalidRequest",
                "neither spec.stubPKCS10Request nor spec.pkixPublicKey is set".into(),
            ));
        }
    };
    parsed.map_err(|e| {
        deny(
            "UnsupportedKeyType",
            format!("{e}; use an ECDSAP256 or ECDSAP384 key (or RSA3072/RSA4096)"),
        )
    })
}

/// Everything before the one KMS Sign, then the Sign, the records and the
/// Issued status. An issuance already recorded for this uid is reused.
async fn sign(
    ctx: &Context,
    pcr: &PodCertificateRequest,
    ca_name: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    if pcr
        .spec
        .unverified_user_annotations
        .as_ref()
        .is_some_and(|a| !a.is_empty())
    {
        return Err(deny(
            "UnsupportedAnnotation",
            "spec.unverifiedUserAnnotations: Signet's pod certificate signer supports no annotations; remove them".into(),
        ));
    }
    let ca = Api::<CertificateAuthority>::all(ctx.client.clone())
        .get_opt(ca_name)
        .await?
        .ok_or_else(|| {
            deny(
                "IssuerNotFound",
                format!("spec.signerName {:?} names CertificateAuthority {ca_name:?}, which does not exist", pcr.spec.signer_name),
            )
        })?;
    if let Some(facts) = recorded(ctx, pcr, now).await? {
        let issuer = ca::issuer_of(&ca, false)?;
        info!(serial = %facts.serial_hex, "request was signed before its status was written; reusing that certificate");
        return answer(ctx, pcr, issued(pcr, &issuer, &facts, now)).await;
    }
    verify_identity(ctx, pcr).await?;
    let mut contents = public_key(pcr)?;
    let issuer = ca::issuer_with_urls(&ca, true, ca::urls::observe(ctx, &ca).await?.as_ref())?;
    let ca_max = duration::optional(
        "spec.maxCertificateDuration",
        ca.spec.max_certificate_duration.as_deref(),
    )
    .map_err(Error::InvalidSpec)?;
    let lifetime = decide::lifetime(pcr.spec.max_expiration_seconds, ca_max)
        .map_err(|m| deny("DurationNotAllowed", m))?;
    let trust_domain = ca
        .spec
        .issuance_policy
        .as_ref()
        .and_then(|p| p.uris.as_ref())
        .and_then(|u| u.spiffe.as_ref())
        .and_then(|s| s.trust_domain.clone())
        .unwrap_or_else(|| decide::DEFAULT_TRUST_DOMAIN.into());
    let ns = pcr.metadata.namespace.clone().unwrap_or_default();
    // The identity rule: only the SPIFFE ID, whatever the stub CSR says.
    contents.subject = Default::default();
    contents.dns_names.clear();
    contents.ip_addresses.clear();
    contents.email_addresses.clear();
    contents.uris = vec![decide::spiffe_id(
        &trust_domain,
        &ns,
        &pcr.spec.service_account_name,
    )];
    contents.is_ca = None;
    // Client auth only: a server certificate needs a DNS name or IP, and a
    // pod's identity has neither.
    let usages = ["digital signature".to_string(), "client auth".to_string()];
    let plan = super::certmanager::decide::plan_for(false, &usages, lifetime, &contents)?;
    requests::check_policy(ctx, &ca, &ns, &plan).await?;
    let facts = requests::sign_leaf(ctx, &issuer, &plan, &contents.spki_der, now).await?;
    record(ctx, pcr, &issuer.name, &plan.request, &facts, now).await?;
    answer(ctx, pcr, issued(pcr, &issuer, &facts, now)).await?;
    info!(serial = %facts.serial_hex, ca = %issuer.name, "pod certificate issued");
    Ok(())
}

fn uid(pcr: &PodCertificateRequest) -> String {
    pcr.metadata.uid.clone().unwrap_or_default()
}

/// What an earlier reconcile signed for this request (same uid).
async fn recorded(
    ctx: &Context,
    pcr: &PodCertificateRequest,
    now: OffsetDateTime,
) -> Result<Option<pki::CertFacts>, Error> {
    let ns = pcr.metadata.namespace.clone().unwrap_or_default();
    let name = pcr.metadata.name.clone().unwrap_or_default();
    requests::recorded(ctx, (&ns, &name, &uid(pcr)), now).await
}

fn audit(
    pcr: &PodCertificateRequest,
    op: AuditOperation,
    outcome: Outcome,
    now: OffsetDateTime,
) -> AuditEvent {
    let obj = ObjectRef::namespaced(
        KIND,
        pcr.metadata.namespace.clone().unwrap_or_default(),
        pcr.metadata.name.clone().unwrap_or_default(),
    )
    .with_uid(uid(pcr));
    // The kubelet of the pod's node makes the request.
    let actor = format!("system:node:{}", pcr.spec.node_name);
    AuditEvent::new(unix_ms(now), actor, op, obj).with_outcome(outcome)
}

async fn record(
    ctx: &Context,
    pcr: &PodCertificateRequest,
    ca: &str,
    req: &pki::LeafRequest,
    facts: &pki::CertFacts,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let ns = pcr.metadata.namespace.clone().unwrap_or_default();
    let name = pcr.metadata.name.clone().unwrap_or_default();
    ctx.store
        .upsert_certificate(mirror::certificate_request_row(
            (&ns, &name, &uid(pcr)),
            ca,
            req,
            facts,
        ));
    let row = audit(
        pcr,
        AuditOperation::CertificateIssued,
        Outcome::Success,
        now,
    )
    .with_ca(ca)
    .with_serial(&facts.serial_hex)
    .with_details(json!({
        "notAfter": rfc3339(facts.not_after),
        "pod": pcr.spec.pod_name, "podUID": pcr.spec.pod_uid,
        "serviceAccount": pcr.spec.service_account_name, "node": pcr.spec.node_name,
        "uris": req.uris,
    }));
    ctx.audit_committed(row, &facts.serial_hex).await?;
    ctx.metrics.certificate_issued(false);
    Ok(())
}

fn condition(
    pcr: &PodCertificateRequest,
    type_: &str,
    reason: &str,
    message: String,
    now: OffsetDateTime,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: "True".into(),
        reason: reason.into(),
        message,
        last_transition_time: Time(super::conditions::jiff_ts(now)),
        observed_generation: pcr.metadata.generation,
    }
}

fn time_of(t: OffsetDateTime) -> Time {
    Time(super::conditions::jiff_ts(t))
}

/// The Issued status: chain (leaf first), validity, refresh time.
fn issued(
    pcr: &PodCertificateRequest,
    issuer: &ca::ReadyIssuer,
    facts: &pki::CertFacts,
    now: OffsetDateTime,
) -> PodCertificateRequest {
    let (intermediates, _root) = pki::split_chain(&issuer.chain_pem);
    let mut next = pcr.clone();
    next.status = Some(types::PodCertificateRequestStatus {
        conditions: vec![condition(
            pcr,
            "Issued",
            "Issued",
            format!(
                "issued by CertificateAuthority {}, serial {}",
                issuer.name, facts.serial_hex
            ),
            now,
        )],
        certificate_chain: Some(format!("{}{intermediates}", facts.pem())),
        not_before: Some(time_of(facts.not_before)),
        not_after: Some(time_of(facts.not_after)),
        begin_refresh_at: Some(time_of(decide::begin_refresh_at(
            facts.not_before,
            facts.not_after,
        ))),
    });
    next
}

fn refused(
    pcr: &PodCertificateRequest,
    type_: &str,
    err: &Error,
    now: OffsetDateTime,
) -> PodCertificateRequest {
    let mut next = pcr.clone();
    next.status = Some(types::PodCertificateRequestStatus {
        conditions: vec![condition(pcr, type_, err.reason(), err.to_string(), now)],
        ..Default::default()
    });
    next
}

/// Writes `next`'s status through `/status` with its resourceVersion.
async fn answer(
    ctx: &Context,
    pcr: &PodCertificateRequest,
    next: PodCertificateRequest,
) -> Result<(), Error> {
    ctx.may_write()?;
    let version = pcr.api_version.rsplit('/').next().unwrap_or("v1");
    let ar = resource(version);
    let ns = pcr.metadata.namespace.clone().unwrap_or_default();
    let name = pcr.metadata.name.clone().unwrap_or_default();
    let body: DynamicObject = serde_json::to_value(&next)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::Other(format!("encoding a PodCertificateRequest status: {e}")))?;
    Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &ns, &ar)
        .replace_status(&name, &PostParams::default(), &body)
        .await
        .map_err(|e| {
            Error::from_write(
                &format!("PodCertificateRequest {ns}/{name} status"),
                "grant the operator update on podcertificaterequests/status and sign on its signers (see the chart's RBAC)",
                e,
            )
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn request(stub: Option<Vec<u8>>, pkix: Option<Vec<u8>>) -> PodCertificateRequest {
        let mut p = PodCertificateRequest::default();
        p.spec.stub_pkcs10_request = stub.map(ByteString);
        p.spec.pkix_public_key = pkix.map(ByteString);
        p
    }

    #[test]
    fn pod_certificate_key_comes_from_the_stub_csr_or_the_older_pkix_form() {
        let key = rcgen::KeyPair::generate().unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        // The older v1beta1 form: the bare public key.
        let got = public_key(&request(None, Some(spki.clone()))).unwrap();
        assert_eq!(got.spki_der, spki);
        // The newer form: a stub CSR made with the same key.
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let got = public_key(&request(Some(csr.der().to_vec()), None)).unwrap();
        assert_eq!(got.spki_der, spki);
        // Neither, or garbage: refused with a reason.
        assert_eq!(
            public_key(&request(None, None)).unwrap_err().reason(),
            "InvalidRequest"
        );
        let e = public_key(&request(None, Some(vec![1, 2, 3]))).unwrap_err();
        assert_eq!(e.reason(), "UnsupportedKeyType");
        assert!(e.to_string().contains("ECDSAP256"), "{e}");
    }
}
