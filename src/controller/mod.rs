//! The operator: one reconciler per kind sharing a [`Context`].
//!
//! Each reconciler is a small pipeline — validate → plan → sign → apply →
//! status — whose steps are functions in its module. Errors carry a bounded
//! `reason()` that becomes the condition reason, the Event reason and the
//! metric label.

pub mod ca;
pub mod certificate;
pub mod cli;
pub mod conditions;
pub mod crl;
pub mod leader;
pub mod policy;
pub mod rebuild;
pub mod revocations;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::kms::{AwsKms, KeySpec, KmsSettings, KmsSigner, SignError};
use crate::metrics::Metrics;
use crate::pki::PkiError;
use crate::store::Store;

/// `signet run` options; every flag can also come from the environment.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespace the operator runs in (CRL ConfigMaps, revocation records,
    /// leader Lease).
    #[arg(long, env = "SIGNET_NAMESPACE", default_value_t = default_namespace())]
    pub namespace: String,
    /// SQLite database file (mirror + audit trail).
    #[arg(long, env = "SIGNET_DB", default_value = "/var/lib/signet/signet.db")]
    pub db: PathBuf,
    /// KMS endpoint override (local-kms, LocalStack, VPC endpoint).
    #[arg(long, env = "SIGNET_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,
    /// AWS region (default: the SDK's chain, e.g. AWS_REGION).
    #[arg(long, env = "AWS_REGION")]
    pub kms_region: Option<String>,
    /// Prefix of the aliases of keys Signet creates.
    #[arg(long, env = "SIGNET_KMS_ALIAS_PREFIX", default_value = "alias/signet/")]
    pub kms_alias_prefix: String,
    /// Key spec for CA keys when a CertificateAuthority names none.
    #[arg(long, env = "SIGNET_DEFAULT_KEY_SPEC", default_value = "ECC_NIST_P256")]
    pub default_key_spec: String,
    /// Address of the HTTP server (/metrics /healthz /readyz /crl /ca).
    #[arg(long, env = "SIGNET_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "SIGNET_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: json or text.
    #[arg(long, env = "SIGNET_LOG_FORMAT", default_value = "json")]
    pub log_format: String,
    /// Objects reconciled in parallel per controller.
    #[arg(long, env = "SIGNET_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Take a Lease before reconciling (needed when replicas > 1).
    #[arg(long, env = "SIGNET_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Identity in the leader Lease (default: the pod's hostname).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
}

fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "signet-system".to_string())
}

/// Everything the reconcilers share.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// KMS client (key lifecycle).
    pub kms: AwsKms,
    /// Signers by key ARN, so each key's public key is fetched once.
    pub signers: Mutex<HashMap<String, Arc<KmsSigner>>>,
    /// SQLite mirror + audit trail.
    pub store: Store,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Event recorder (reporter "signet").
    pub recorder: Recorder,
    /// The operator's namespace.
    pub namespace: String,
    /// Key spec used when a CA names none.
    pub default_key_spec: KeySpec,
    /// Signed CRLs by CRL object name (DER), served over HTTP.
    pub published_crls: RwLock<HashMap<String, Vec<u8>>>,
    /// CA certificates by CA name (PEM), served over HTTP.
    pub ca_certs: RwLock<HashMap<String, String>>,
    /// The clock; tests of pure functions pass their own `now`.
    pub clock: Clock,
}

/// The clock, injected so nothing deep inside reads the wall time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock;

impl Clock {
    /// Current time.
    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

impl Context {
    /// The signer for a key ARN/id/alias, adopting (DescribeKey +
    /// GetPublicKey) on first use.
    pub async fn signer(&self, key: &str) -> Result<Arc<KmsSigner>, SignError> {
        if let Ok(map) = self.signers.lock()
            && let Some(s) = map.get(key)
        {
            return Ok(s.clone());
        }
        let signer = Arc::new(self.kms.adopt_key(key).await?);
        if let Ok(mut map) = self.signers.lock() {
            map.insert(key.to_string(), signer.clone());
            map.insert(
                crate::kms::Signer::key_arn(signer.as_ref()).to_string(),
                signer.clone(),
            );
        }
        Ok(signer)
    }

    /// Remembers a signer created by `create_key`.
    pub fn remember_signer(&self, signer: Arc<KmsSigner>) {
        if let Ok(mut map) = self.signers.lock() {
            map.insert(
                crate::kms::Signer::key_arn(signer.as_ref()).to_string(),
                signer,
            );
        }
    }
}

/// Why a reconcile did not finish. `reason()` is bounded (condition reason,
/// Event reason, metric label).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is wrong in a way the schema cannot catch.
    #[error("{0}")]
    InvalidSpec(String),
    /// The referenced CertificateAuthority does not exist.
    #[error("CertificateAuthority {0:?} not found; create it or fix issuerRef.name")]
    IssuerNotFound(String),
    /// The referenced CertificateAuthority is not Ready.
    #[error("CertificateAuthority {0:?} is not Ready yet")]
    IssuerNotReady(String),
    /// A CA policy forbids the request.
    #[error("{message}")]
    Policy {
        /// Bounded reason, e.g. `NamespaceNotAllowed`.
        reason: &'static str,
        /// What was denied and how to fix it.
        message: String,
    },
    /// KMS failed.
    #[error("KMS: {0}")]
    Kms(#[from] SignError),
    /// Building or signing failed.
    #[error("{0}")]
    Pki(PkiError),
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Anything else.
    #[error("{0}")]
    Other(String),
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
            Error::Policy { reason, .. } => reason,
            Error::Kms(e) => e.reason(),
            Error::Pki(e) => match e {
                PkiError::Invalid(_) => "InvalidSpec",
                other => other.reason(),
            },
            Error::Kube(_) => "KubernetesAPIError",
            Error::Other(_) => "InternalError",
        }
    }

    /// Whether retrying without a spec change can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::InvalidSpec(_) | Error::Policy { .. } => false,
            // Waiting on another object: its watch wakes us.
            Error::IssuerNotFound(_) | Error::IssuerNotReady(_) => false,
            Error::Kms(e) => e.is_retryable(),
            Error::Pki(e) => e.is_retryable(),
            Error::Kube(_) | Error::Other(_) => true,
        }
    }
}

/// Backoff after `attempts` consecutive failures: 5 s doubling to 5 min,
/// with up to 20% jitter.
pub fn backoff(attempts: u32) -> Duration {
    let capped = backoff_base(attempts).as_secs();
    let jitter = rand::random::<u64>() % (capped * 200 + 1);
    Duration::from_millis(capped * 1000 + jitter)
}

/// Base backoff (no jitter) after `attempts` consecutive failures.
pub fn backoff_base(attempts: u32) -> Duration {
    Duration::from_secs(
        5u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(6))
            .min(300),
    )
}

/// Backoff gate: our own status patch after a failure wakes the controller
/// again at once; without this, a failing object would be retried in a hot
/// loop. Returns how long to wait when the last failure is too recent and
/// the spec did not change since.
pub fn backoff_gate(
    attempts: Option<u32>,
    last_failure: Option<&str>,
    observed_generation: Option<i64>,
    generation: Option<i64>,
    now: time::OffsetDateTime,
) -> Option<Duration> {
    let attempts = attempts.filter(|a| *a > 0)?;
    if observed_generation != generation {
        return None;
    }
    let last = conditions::parse_rfc3339(last_failure?)?;
    let elapsed = now - last;
    let wait = time::Duration::try_from(backoff_base(attempts)).ok()? - elapsed;
    (wait > time::Duration::ZERO).then(|| Duration::from_secs(wait.whole_seconds().max(1) as u64))
}

/// Parses a key spec name.
pub fn parse_key_spec(s: &str) -> anyhow::Result<KeySpec> {
    KeySpec::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
        anyhow::anyhow!(
            "--default-key-spec {s:?} is not supported; use ECC_NIST_P256, ECC_NIST_P384, RSA_2048, RSA_3072 or RSA_4096"
        )
    })
}

/// Starts a tokio runtime and runs the operator until SIGTERM/SIGINT.
pub fn run_blocking(args: RunArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log_level, &args.log_format)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// Runs the operator.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let default_key_spec = parse_key_spec(&args.default_key_spec)?;
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let kms = AwsKms::new(KmsSettings {
        region: args.kms_region.clone(),
        endpoint: args.kms_endpoint.clone(),
        alias_prefix: args.kms_alias_prefix.clone(),
        ..KmsSettings::default()
    })
    .await
    .context("configuring the AWS KMS client")?;
    let store = Store::open(&args.db).with_context(|| {
        format!(
            "opening the database {} (to start over, move the file aside: Signet rebuilds the mirror from the cluster)",
            args.db.display()
        )
    })?;
    let metrics = Metrics::default();
    let reporter = Reporter {
        controller: "signet".into(),
        instance: args.pod_name.clone(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ctx = Arc::new(Context {
        client: client.clone(),
        kms,
        signers: Mutex::new(HashMap::new()),
        store,
        metrics,
        recorder,
        namespace: args.namespace.clone(),
        default_key_spec,
        published_crls: RwLock::new(HashMap::new()),
        ca_certs: RwLock::new(HashMap::new()),
        clock: Clock,
    });

    let http = tokio::spawn(crate::http::serve(args.http_addr, ctx.clone()));
    info!(addr = %args.http_addr, namespace = %args.namespace, "signet starting");

    if args.leader_election {
        let identity = args
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("signet-{}", std::process::id()));
        leader::acquire(client.clone(), &args.namespace, &identity).await?;
        tokio::spawn(leader::hold(
            client.clone(),
            args.namespace.clone(),
            identity,
        ));
    }
    ctx.metrics.set_leader(true);

    if let Err(e) = rebuild::rebuild_if_empty(&ctx).await {
        warn!(error = %e, "mirror rebuild failed; continuing (the mirror catches up as objects reconcile)");
    }

    tokio::spawn(rebuild::keep_rebuilt(ctx.clone()));
    let concurrency = args.concurrency.max(1);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    ctx.metrics.set_ready(true);
    tokio::select! {
        _ = ca::controller(ctx.clone(), concurrency) => {},
        _ = certificate::controller(ctx.clone(), concurrency) => {},
        _ = crl::controller(ctx.clone(), concurrency) => {},
        _ = shutdown => info!("shutting down"),
    }
    ctx.metrics.set_ready(false);
    // Bounded: a degraded store would wait for the disk forever.
    match tokio::time::timeout(Duration::from_secs(10), ctx.store.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "could not flush the database on shutdown"),
        Err(_) => warn!("database flush timed out on shutdown; queued audit rows were not written"),
    }
    http.abort();
    Ok(())
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

/// Merge-patches the status subresource of `name`.
pub async fn patch_status<K>(
    api: &kube::Api<K>,
    name: &str,
    body: serde_json::Value,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(body),
    )
    .await?;
    Ok(())
}

/// Publishes an Event about `obj`; a failure to publish is logged, never
/// fatal. Callers emit only on state changes, so failures do not storm.
pub async fn publish_event<K>(
    ctx: &Context,
    obj: &K,
    type_: kube::runtime::events::EventType,
    action: &str,
    reason: &str,
    note: String,
) where
    K: kube::Resource<DynamicType = ()>,
{
    let ev = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

/// Drains a controller stream, logging (never dropping) each result.
pub async fn drain<S, T, E>(name: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    T: std::fmt::Debug,
    E: std::fmt::Display,
{
    stream
        .for_each(|res| async move {
            match res {
                Ok(obj) => tracing::debug!(controller = name, object = ?obj, "reconciled"),
                Err(e) => tracing::debug!(controller = name, error = %e, "reconcile error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_base(1), Duration::from_secs(5));
        assert_eq!(backoff_base(2), Duration::from_secs(10));
        assert_eq!(backoff_base(3), Duration::from_secs(20));
        assert_eq!(backoff_base(30), Duration::from_secs(300));
        let b = backoff(2);
        assert!(b >= Duration::from_secs(10) && b <= Duration::from_secs(12));
    }

    #[test]
    fn gate_holds_a_recent_failure_and_releases_on_spec_change() {
        let t = |s| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        let last = conditions::rfc3339(t(1000));
        assert_eq!(
            backoff_gate(Some(2), Some(&last), Some(1), Some(1), t(1003)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            backoff_gate(Some(2), Some(&last), Some(1), Some(1), t(1010)),
            None
        );
        assert_eq!(
            backoff_gate(Some(2), Some(&last), Some(1), Some(2), t(1003)),
            None
        );
        assert_eq!(
            backoff_gate(None, Some(&last), Some(1), Some(1), t(1003)),
            None
        );
    }
}
