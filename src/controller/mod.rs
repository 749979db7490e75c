//! The controllers: one [`driver`] runs a small pipeline per kind, all
//! sharing a [`Context`].
//!
//! Every reconcile reads like a table of contents:
//!
//! * **observe** — read the object's world (its issuer, its Secret, the
//!   published CRL); no decisions, no spending;
//! * **decide** — a pure function of (object, observations, `now`) that
//!   returns what to do: up to date until *t*, revoke, issue because *r*,
//!   wait for *x*, or refuse with a reason. Decisions have table tests;
//! * **act** — the only step that spends: a KMS call, a Secret or ConfigMap
//!   write. Nothing is spent before every check that could refuse passed;
//! * **status** — one server-side apply of the whole status the kind owns;
//! * **effects** — mirror row and audit row (written as soon as what they
//!   record is real), Event and metrics.
//!
//! One failure path serves all kinds ([`driver`]): a `Ready=False`
//! condition with the error's bounded [`Error::reason`], a growing backoff
//! with the attempt count in status for errors worth retrying, an Event only
//! when the reason or message changes.

pub mod anchor;
pub mod ca;
pub mod certificate;
pub mod certmanager;
pub mod cli;
pub mod conditions;
pub mod crl;
pub mod csr;
pub mod driver;
pub mod leader;
pub mod mirror;
pub mod podcert;
pub mod policy;
pub mod rebuild;
pub mod requests;
pub mod revocation;
pub mod revocations;
#[cfg(test)]
pub(crate) mod testing;
pub mod watches;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};

use crate::clock::Clock;
use crate::kms::{KeyManager, KeySpec, Observed, SignError, Signer};
use crate::metrics::Metrics;
use crate::pki::PkiError;
use crate::published::Published;
use crate::store::Store;

/// Everything the reconcilers share.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Where CA keys live (AWS KMS in production, in memory in some tests),
    /// wrapped so that every call is counted in the metrics.
    pub keys: Arc<dyn KeyManager>,
    /// Signers by key ARN/id/alias, so each key is adopted once.
    signers: Mutex<HashMap<String, Arc<dyn Signer>>>,
    /// SQLite mirror + audit trail.
    pub store: Store,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder (reporter "signet").
    pub recorder: Recorder,
    /// The operator's namespace (revocation registers, default CRL target).
    pub namespace: String,
    /// Key spec used when a CA names none.
    pub default_key_spec: KeySpec,
    /// CRLs and CA certificates the HTTP side serves.
    pub published: Arc<Published>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Base URL of the public PKI listener for CAs that set none
    /// (`--public-base-url`); checked, without a trailing `/`.
    pub public_base_url: Option<String>,
    /// Whether the revoked-by admission policy is in place (and since when
    /// we know).
    vouched: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
    /// Versions of our own writes, so their watch echoes wake nothing.
    pub echoes: watches::Echoes,
    /// The Certificate controller's watch stores.
    pub caches: watches::Caches,
    /// Whether successful issuances also publish an Event (failures always
    /// do). Off by default: an Event is one more API write per issuance.
    pub success_events: bool,
    /// Whether this process may write now (the leader lease; always open
    /// without leader election). Checked before every API write here and
    /// by the KMS wrapper and the store writer.
    pub fence: crate::fence::Fence,
    /// Asks the controllers to stop taking work and finish what runs.
    pub stop: driver::Stop,
    /// Signer names this install answers: `<signer_domain>/<ca>`
    /// (Kubernetes CSRs).
    pub signer_domain: String,
    /// Whether the Kubernetes CSR signer runs.
    pub csr_signer: bool,
    /// Whether the PodCertificateRequest signer runs (once the API is
    /// served).
    pub pod_certificate_signer: bool,
}

/// The parts a [`Context`] is made of.
pub struct ContextParts {
    /// Kubernetes client.
    pub client: Client,
    /// Key manager.
    pub keys: Arc<dyn KeyManager>,
    /// Mirror + audit.
    pub store: Store,
    /// The operator's namespace.
    pub namespace: String,
    /// Default CA key spec.
    pub default_key_spec: KeySpec,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Identity in Events (the pod name).
    pub instance: Option<String>,
}

impl Context {
    /// A context with fresh metrics and published state. Every KMS call
    /// through `keys` is reported to the metrics.
    pub fn new(p: ContextParts) -> Self {
        Self::new_with(p, Arc::new(Published::new()), Arc::new(Metrics::new()))
    }

    /// [`Context::new`] around published state and metrics that already
    /// exist (the HTTP side serves them while a standby waits).
    pub fn new_with(p: ContextParts, published: Arc<Published>, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "signet".into(),
            instance: p.instance,
        };
        metrics.watch_store(p.store.clone());
        Context {
            recorder: Recorder::new(p.client.clone(), reporter),
            client: p.client,
            keys: Arc::new(Observed::new(p.keys, metrics.clone())),
            signers: Mutex::new(HashMap::new()),
            store: p.store,
            metrics,
            namespace: p.namespace,
            default_key_spec: p.default_key_spec,
            published,
            clock: p.clock,
            public_base_url: None,
            vouched: tokio::sync::Mutex::new(None),
            echoes: watches::Echoes::default(),
            caches: watches::Caches::default(),
            success_events: false,
            fence: crate::fence::Fence::open(),
            stop: driver::Stop::default(),
            signer_domain: DEFAULT_SIGNER_DOMAIN.into(),
            csr_signer: true,
            pod_certificate_signer: true,
        }
    }

    /// This context with the PodCertificateRequest signer on or off.
    pub fn with_pod_certificate_signer(mut self, on: bool) -> Self {
        self.pod_certificate_signer = on;
        self
    }

    /// This context answering signer names `<domain>/<ca>`, with the
    /// Kubernetes CSR signer on or off.
    pub fn with_csr_signer(mut self, domain: &str, on: bool) -> Self {
        self.signer_domain = domain.to_string();
        self.csr_signer = on;
        self
    }

    /// This context behind `fence`: KMS calls and API writes need it open
    /// (give the store the same fence through its options).
    pub fn with_fence(mut self, fence: crate::fence::Fence) -> Self {
        self.keys = Arc::new(crate::kms::Fenced::new(self.keys, fence.clone()));
        self.fence = fence;
        self
    }

    /// Ok while this process may write (see [`crate::fence`]).
    pub fn may_write(&self) -> Result<(), Error> {
        self.fence
            .check()
            .map_err(|e| Error::NotLeader(e.to_string()))
    }

    /// This context with `url` as the default public base URL (see
    /// [`ca::urls`]); `url` must have passed [`crate::pki::base_url_problem`].
    pub fn with_public_base_url(mut self, url: Option<String>) -> Self {
        self.public_base_url = url.map(|u| u.trim_end_matches('/').to_string());
        self
    }

    /// This context with Events for successful issuances on or off.
    pub fn with_success_events(mut self, on: bool) -> Self {
        self.success_events = on;
        self
    }

    /// Whether the API server vouches for `signet.dev/revoked-by`: the
    /// admission policy and its binding exist (checked once a minute).
    pub async fn revoked_by_vouched(&self) -> bool {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let mut cached = self.vouched.lock().await;
        if let Some((at, v)) = *cached
            && at.elapsed() < std::time::Duration::from_secs(60)
        {
            return v;
        }
        let name = crate::api::REVOKED_BY_POLICY;
        let policy = Api::<ValidatingAdmissionPolicy>::all(self.client.clone())
            .get_opt(name)
            .await;
        let binding = Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone())
            .get_opt(name)
            .await;
        let v = matches!((policy, binding), (Ok(Some(_)), Ok(Some(_))));
        *cached = Some((std::time::Instant::now(), v));
        v
    }

    fn cached_signer(&self, key: &str) -> Option<Arc<dyn Signer>> {
        self.signers.lock().ok()?.get(key).cloned()
    }

    /// Remembers `signer` under its ARN and `also` (the name it was asked by).
    pub fn remember_signer(&self, signer: Arc<dyn Signer>, also: Option<&str>) {
        if let Ok(mut map) = self.signers.lock() {
            if let Some(k) = also {
                map.insert(k.to_string(), signer.clone());
            }
            map.insert(signer.key_arn().to_string(), signer);
        }
    }

    /// Nothing is signed while the audit trail cannot be written: an
    /// issuance without its audit row is what the trail exists to rule out.
    /// Clears by itself when the database is writable again.
    pub fn audit_ready(&self) -> Result<(), Error> {
        match self.store.health() {
            crate::store::StoreHealth::Ok => Ok(()),
            crate::store::StoreHealth::Degraded { reason } => Err(Error::AuditUnavailable(reason)),
        }
    }

    /// Queues the audit row of issuance `serial` and waits (bounded) until
    /// it is committed, so no issuance is reported before its row is
    /// durable (a mirror row queued before it is committed with it).
    pub async fn audit_committed(
        &self,
        row: crate::store::AuditEvent,
        serial: &str,
    ) -> Result<(), Error> {
        match tokio::time::timeout(AUDIT_COMMIT_WAIT, self.store.audit_committed(row)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::AuditUnavailable(e.to_string())),
            Err(_) => Err(Error::AuditUnavailable(format!(
                "the audit row of serial {serial} was not committed within {}s (it stays queued)",
                AUDIT_COMMIT_WAIT.as_secs()
            ))),
        }
    }

    /// The signer for a key ARN/id/alias, adopting it on first use.
    pub async fn signer(&self, key: &str) -> Result<Arc<dyn Signer>, SignError> {
        if let Some(s) = self.cached_signer(key) {
            return Ok(s);
        }
        let signer = self.keys.adopt_key(key).await?;
        self.remember_signer(signer.clone(), Some(key));
        Ok(signer)
    }
}

/// Default signer domain: CSRs for `signet.dev/<ca>` are Signet's.
pub const DEFAULT_SIGNER_DOMAIN: &str = "signet.dev";

/// How long an issuance waits for its audit row to be committed.
pub const AUDIT_COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a reconcile did not finish. [`Error::reason`] is bounded: it is the
/// condition reason, the Event reason and the metric label at once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is wrong in a way the schema cannot catch.
    #[error("{0}")]
    InvalidSpec(String),
    /// The referenced CertificateAuthority does not exist.
    #[error("CertificateAuthority {0:?} not found; create it or fix issuerRef.name")]
    IssuerNotFound(String),
    /// The referenced CertificateAuthority exists but cannot sign yet.
    #[error("CertificateAuthority {0:?} is not Ready yet; this clears once it is")]
    IssuerNotReady(String),
    /// A CA policy forbids the request.
    #[error("{message}")]
    Policy {
        /// Bounded reason, e.g. `NamespaceNotAllowed`.
        reason: &'static str,
        /// What was denied and how to fix it.
        message: String,
    },
    /// Something in the cluster is in the way and retrying cannot help (a
    /// Secret of the wrong type, a write the API server refuses as
    /// invalid, a permission Signet lacks).
    #[error("{message}")]
    Refused {
        /// Bounded reason, e.g. `SecretTypeMismatch`.
        reason: &'static str,
        /// What is in the way and how to fix it, in one sentence.
        message: String,
    },
    /// The audit trail cannot be written, so nothing is signed.
    #[error(
        "the audit trail cannot be written ({0}); Signet signs nothing until it can and resumes by itself"
    )]
    AuditUnavailable(String),
    /// KMS failed.
    #[error("KMS: {0}")]
    Kms(#[from] SignError),
    /// Building or signing failed.
    #[error("{0}")]
    Pki(PkiError),
    /// The Kubernetes API failed in a way worth retrying.
    #[error("{}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// This replica's leader lease is not valid by its own clock: it
    /// writes nothing (the leader does the work).
    #[error("{0}")]
    NotLeader(String),
    /// Anything else (retryable).
    #[error("{0}")]
    Other(String),
}

/// A kube error in one readable sentence (no `Debug` dump).
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!(
            "Kubernetes API: {} ({} {})",
            s.message.trim_end_matches('.'),
            s.code,
            s.reason
        ),
        other => format!("Kubernetes API: {other}"),
    }
}

impl From<PkiError> for Error {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::Sign(s) => Error::Kms(s),
            other => Error::Pki(other),
        }
    }
}

impl Error {
    /// Bounded CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::IssuerNotFound(_) => "IssuerNotFound",
            Error::IssuerNotReady(_) => "IssuerNotReady",
            Error::Policy { reason, .. } | Error::Refused { reason, .. } => reason,
            Error::Kms(e) => e.reason(),
            Error::Pki(PkiError::Invalid(_)) => "InvalidSpec",
            Error::Pki(e) => e.reason(),
            Error::AuditUnavailable(_) => "AuditUnavailable",
            Error::Kube(_) => "KubernetesAPIError",
            Error::NotLeader(_) => "NotLeader",
            Error::Other(_) => "InternalError",
        }
    }

    /// Whether retrying without a change can help. Waiting on another object
    /// (`IssuerNotFound`, `IssuerNotReady`) is not retrying: that object's
    /// watch wakes us.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::InvalidSpec(_)
            | Error::Policy { .. }
            | Error::Refused { .. }
            | Error::IssuerNotFound(_)
            | Error::IssuerNotReady(_) => false,
            Error::Kms(e) => e.is_retryable(),
            Error::Pki(e) => e.is_retryable(),
            Error::AuditUnavailable(_) | Error::Kube(_) | Error::NotLeader(_) | Error::Other(_) => {
                true
            }
        }
    }

    /// Whether this failure is the fence refusing (nothing to record: the
    /// leader does the work).
    pub fn is_not_leader(&self) -> bool {
        matches!(
            self,
            Error::NotLeader(_) | Error::Kms(SignError::NotLeader { .. })
        )
    }

    /// Classifies a failed write of `what` (e.g. `Secret demo/web-tls`): a
    /// refusal that retrying cannot fix becomes [`Error::Refused`] with
    /// `fix`; conflicts, throttling and outages stay retryable.
    pub fn from_write(what: &str, fix: &str, e: kube::Error) -> Error {
        let kube::Error::Api(s) = &e else {
            return Error::Kube(e);
        };
        let (reason, hint) = match s.code {
            400 | 422 => ("WriteRefused", fix),
            403 => (
                "Forbidden",
                "grant the operator's ServiceAccount this permission (see the chart's RBAC)",
            ),
            _ => return Error::Kube(e),
        };
        Error::Refused {
            reason,
            message: format!(
                "the API server refused to write {what}: {}; {hint}",
                s.message.trim_end_matches('.')
            ),
        }
    }
}

/// Parses a key spec name (`--default-key-spec`).
pub fn parse_key_spec(s: &str) -> anyhow::Result<KeySpec> {
    KeySpec::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
        anyhow::anyhow!(
            "--default-key-spec {s:?} is not supported; use ECC_NIST_P256, ECC_NIST_P384, RSA_2048, RSA_3072 or RSA_4096"
        )
    })
}

/// Runs the controllers until all of them have stopped: after
/// [`Context::stop`] is requested each stops taking work and finishes the
/// reconciles it runs, so nothing half-done (signed but not written, written
/// but not recorded) is dropped. Tests run this in-process with their own
/// [`Context`].
pub async fn run_all(ctx: Arc<Context>, concurrency: u16) {
    tokio::join!(
        ca::controller(ctx.clone(), concurrency),
        certificate::controller(ctx.clone(), concurrency),
        crl::controller(ctx.clone(), concurrency),
        revocation::controller(ctx.clone(), concurrency),
        // Stays off until cert-manager's CRDs appear (or a stop).
        certmanager::controller(ctx.clone(), concurrency),
        async {
            if ctx.csr_signer {
                csr::controller(ctx.clone(), concurrency).await;
            }
        },
        async {
            if ctx.pod_certificate_signer {
                podcert::controller(ctx.clone(), concurrency).await;
            }
        },
    );
}

/// The objects in a controller's cache that `pred` selects, as reconcile
/// requests: the mapper of every `watches` (a CA wakes its Certificates, a
/// Secret its Certificate, a register its CRLs).
pub fn refs_where<K>(
    store: &kube::runtime::reflector::Store<K>,
    pred: impl Fn(&K) -> bool,
) -> Vec<kube::runtime::reflector::ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .into_iter()
        .filter(|o| pred(o))
        .map(|o| kube::runtime::reflector::ObjectRef::from_obj(&*o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_refusals_read_as_one_sentence_without_debug_dumps() {
        let status = kube::core::Status::failure("Secret \"x\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable", "Invalid")
            .with_code(422);
        let e = Error::from_write(
            "Secret demo/x",
            "delete it or choose another secretName",
            kube::Error::Api(Box::new(status)),
        );
        assert_eq!(e.reason(), "WriteRefused");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("Secret demo/x") && text.contains("choose another secretName"),
            "{text}"
        );
        assert!(!text.contains("Status {"), "{text}");
        let conflict = kube::core::Status::failure("conflict", "Conflict").with_code(409);
        assert!(Error::from_write("x", "y", kube::Error::Api(Box::new(conflict))).is_retryable());
    }
}
