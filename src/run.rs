//! `signet run`: the one place that wires the operator together — KMS
//! client, database, Kubernetes client, the admin and PKI HTTP listeners,
//! leader election, the controllers — and shuts it down in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio::net::TcpListener;
use tracing::{info, warn};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::clock::SystemClock;
use crate::controller::leader::{self, Elector, LeaseConfig};
use crate::controller::{self, Context, ContextParts, rebuild};
use crate::fence::Fence;
use crate::http::{self, HttpState, Limits, Site, StoreSlot};
use crate::kms::{AwsKms, KmsSettings};
use crate::metrics::Metrics;
use crate::published::Published;
use crate::store::{Store, StoreOptions};

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
    /// Address of the admin HTTP listener: /metrics, /healthz, /readyz.
    #[arg(long, env = "SIGNET_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Address of the public PKI HTTP listener: /crl/<name>.crl|.pem,
    /// /ca/<name>.crt|.pem, /ca/<name>/chain.pem, /ocsp/<ca>.
    #[arg(long, env = "SIGNET_PKI_ADDR", default_value = "0.0.0.0:8081")]
    pub pki_addr: SocketAddr,
    /// Base URL of the PKI listener as relying parties reach it, e.g.
    /// http://pki.example.com: certificates get CRL distribution point and
    /// AIA (caIssuers, OCSP) URLs under it unless their CA sets
    /// spec.publicBaseURL or the URL fields itself. Empty: none.
    #[arg(long, env = "SIGNET_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "SIGNET_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: json or text.
    #[arg(long, env = "SIGNET_LOG_FORMAT", default_value = "json")]
    pub log_format: String,
    /// Objects reconciled in parallel per controller.
    #[arg(long, env = "SIGNET_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Also publish an Event for every successful issuance and renewal
    /// (failures always get one). Off by default: one more API write per
    /// issuance, and status already says the same.
    #[arg(long, env = "SIGNET_SUCCESS_EVENTS", default_value_t = false)]
    pub success_events: bool,
    /// Take a Lease before reconciling (needed when replicas > 1).
    #[arg(long, env = "SIGNET_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Identity in the leader Lease (default: the pod's hostname).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// How long the leader Lease is valid without renewal, in seconds. The
    /// leader acts only during the first two thirds after each renewal (by
    /// its own clock); a standby takes over after a whole duration without
    /// one.
    #[arg(long, env = "SIGNET_LEASE_DURATION", default_value_t = leader::LEASE_SECONDS,
          value_parser = clap::value_parser!(u64).range(3..=300))]
    pub lease_duration: u64,
    /// With leader election, label this pod `signet.dev/leader=true|false`
    /// (needs POD_NAME and patch on pods; the chart's PKI Service selects
    /// the leader by it).
    #[arg(long, env = "SIGNET_LEADER_LABEL", default_value_t = false)]
    pub leader_label: bool,
    /// Sign Kubernetes CertificateSigningRequests whose signerName is
    /// `<signer-domain>/<ca>` once approved (needs the chart's CSR RBAC).
    #[arg(long, env = "SIGNET_CSR_SIGNER", default_value_t = true, action = clap::ArgAction::Set)]
    pub csr_signer: bool,
    /// Sign PodCertificateRequests whose signerName is
    /// `<signer-domain>/<ca>` (once the API server serves them; needs the
    /// chart's pod certificate RBAC).
    #[arg(long, env = "SIGNET_POD_CERTIFICATE_SIGNER", default_value_t = true, action = clap::ArgAction::Set)]
    pub pod_certificate_signer: bool,
    /// Domain of the signer names this install answers, e.g. `signet.dev`
    /// (CSRs for `signet.dev/<ca>`); two installs need different ones.
    #[arg(long, env = "SIGNET_SIGNER_DOMAIN", default_value = controller::DEFAULT_SIGNER_DOMAIN)]
    pub signer_domain: String,
    /// On SIGTERM, how long in-flight reconciles may take to finish before
    /// the process exits anyway (keep it below the pod's grace period).
    #[arg(long, env = "SIGNET_SHUTDOWN_TIMEOUT", default_value_t = 20)]
    pub shutdown_timeout: u64,
}

fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "signet-system".to_string())
}

/// Starts a tokio runtime and runs the operator until SIGTERM/SIGINT.
pub fn run_blocking(args: RunArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log_level, &args.log_format)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// `--public-base-url`, checked; empty means unset.
fn public_base_url(args: &RunArgs) -> anyhow::Result<Option<String>> {
    let Some(url) = args.public_base_url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    match crate::pki::base_url_problem(url) {
        Some(problem) => {
            anyhow::bail!("--public-base-url / SIGNET_PUBLIC_BASE_URL {url:?}: {problem}")
        }
        None => Ok(Some(url.to_string())),
    }
}

/// Binds both listeners, before anything else starts: a taken address is a
/// startup error that names its flag.
async fn bind_listeners(args: &RunArgs) -> anyhow::Result<(TcpListener, TcpListener)> {
    if args.http_addr == args.pki_addr && args.http_addr.port() != 0 {
        anyhow::bail!(
            "--http-addr and --pki-addr are both {}; the admin and the public PKI listener need different addresses (SIGNET_HTTP_ADDR, SIGNET_PKI_ADDR)",
            args.http_addr
        );
    }
    let admin = http::bind(args.http_addr, "--http-addr / SIGNET_HTTP_ADDR").await?;
    let pki = http::bind(args.pki_addr, "--pki-addr / SIGNET_PKI_ADDR").await?;
    Ok((admin, pki))
}

/// What the HTTP listeners serve, made before the controllers exist (a
/// standby serves probes and metrics while it waits).
struct Shared {
    published: Arc<Published>,
    metrics: Arc<Metrics>,
    store: StoreSlot,
}

/// The KMS client (configured, not called: a standby checks its settings
/// before it waits).
async fn kms_client(args: &RunArgs, fence: &Fence) -> anyhow::Result<AwsKms> {
    AwsKms::new(KmsSettings {
        region: args.kms_region.clone(),
        endpoint: args.kms_endpoint.clone(),
        alias_prefix: args.kms_alias_prefix.clone(),
        fence: fence.clone(),
        ..KmsSettings::default()
    })
    .await
    .context("configuring the AWS KMS client")
}

/// Opens the database (the leader only) and wires the context.
async fn context(
    args: &RunArgs,
    client: Client,
    kms: AwsKms,
    fence: Fence,
    shared: &Shared,
) -> anyhow::Result<Context> {
    let default_key_spec = controller::parse_key_spec(&args.default_key_spec)?;
    let opts = StoreOptions {
        fence: fence.clone(),
        ..StoreOptions::default()
    };
    let store = Store::open_with(&args.db, opts).with_context(|| {
        format!(
            "opening the database {} (to start over, move the file aside: Signet rebuilds the mirror from the cluster)",
            args.db.display()
        )
    })?;
    shared.store.set(store.clone());
    Ok(Context::new_with(
        ContextParts {
            client,
            keys: Arc::new(kms),
            store,
            namespace: args.namespace.clone(),
            default_key_spec,
            clock: Arc::new(SystemClock),
            instance: args.pod_name.clone(),
        },
        shared.published.clone(),
        shared.metrics.clone(),
    )
    .with_fence(fence)
    .with_public_base_url(public_base_url(args)?)
    .with_success_events(args.success_events)
    .with_csr_signer(&args.signer_domain, args.csr_signer)
    .with_pod_certificate_signer(args.pod_certificate_signer))
}

/// SIGTERM and SIGINT, registered once at start so that none is missed
/// between the phases that wait for them.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}

/// The leader side of `run`: the elector, and how this pod is labelled.
struct Leadership {
    elector: Elector,
    client: Client,
    namespace: String,
    label_pod: Option<String>,
}

impl Leadership {
    fn new(args: &RunArgs, client: Client, fence: Fence) -> Self {
        let identity = args
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("signet-{}", std::process::id()));
        let cfg = LeaseConfig {
            namespace: args.namespace.clone(),
            identity,
            duration: Duration::from_secs(args.lease_duration),
        };
        Leadership {
            elector: Elector::new(client.clone(), cfg, fence),
            client,
            namespace: args.namespace.clone(),
            label_pod: args.pod_name.clone().filter(|_| args.leader_label),
        }
    }

    async fn label(&self, leader: bool) {
        if let Some(pod) = &self.label_pod {
            leader::label_pod(self.client.clone(), &self.namespace, pod, leader).await;
        }
    }
}

/// How the controllers' run ended.
enum Ended {
    Signal,
    Lost(leader::Lost),
    Controllers,
}

/// Runs the operator: listeners first (so probes answer), then — with
/// leader election — stand by until this replica holds the Lease, and only
/// then open the database and start the controllers.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    public_base_url(&args)?;
    if !controller::csr::decide::is_signer_domain(&args.signer_domain) {
        anyhow::bail!(
            "--signer-domain / SIGNET_SIGNER_DOMAIN {:?} is not a DNS domain (lowercase, with a dot, e.g. signet.dev or pki.example.com)",
            args.signer_domain
        );
    }
    controller::parse_key_spec(&args.default_key_spec)?;
    let mut signals = Signals::install()?;
    let (admin, pki) = bind_listeners(&args).await?;
    let shared = Shared {
        published: Arc::new(Published::new()),
        metrics: Arc::new(Metrics::new()),
        store: StoreSlot::default(),
    };
    let state = HttpState {
        published: shared.published.clone(),
        metrics: shared.metrics.clone(),
        store: shared.store.clone(),
    };
    let limits = Limits::default();
    let servers = [
        tokio::spawn(http::serve(admin, Site::Admin, state.clone(), limits)),
        tokio::spawn(http::serve(pki, Site::Pki, state, limits)),
    ];
    info!(
        admin = %args.http_addr,
        pki = %args.pki_addr,
        namespace = %args.namespace,
        leader_election = args.leader_election,
        "signet starting"
    );
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let fence = if args.leader_election {
        Fence::leased()
    } else {
        Fence::open()
    };
    let kms = kms_client(&args, &fence).await?;
    let mut leadership = args
        .leader_election
        .then(|| Leadership::new(&args, client.clone(), fence.clone()));
    if let Some(l) = leadership.as_mut() {
        l.label(false).await;
        shared.published.set_standby(true);
        tokio::select! {
            _ = l.elector.acquire() => {},
            _ = signals.recv() => {
                info!("stopped while standing by; the database was never opened");
                return Ok(());
            }
        }
        shared.published.set_standby(false);
        l.label(true).await;
    }

    let ctx = Arc::new(context(&args, client, kms, fence, &shared).await?);
    ctx.published.set_leader(true);
    let ended = lead(&ctx, &args, &mut signals, leadership.as_mut()).await;
    shut_down(&ctx, leadership.as_mut(), &ended).await;
    for server in servers {
        server.abort();
    }
    match ended {
        Ended::Lost(why) => anyhow::bail!(
            "lost the leader lease ({why}); exiting without signing again, so that this pod restarts as a standby"
        ),
        Ended::Signal | Ended::Controllers => Ok(()),
    }
}

/// Reconciles until a signal, a lost lease, or the controllers ending.
async fn lead(
    ctx: &Arc<Context>,
    args: &RunArgs,
    signals: &mut Signals,
    leadership: Option<&mut Leadership>,
) -> Ended {
    if let Err(e) = rebuild::rebuild_if_empty(ctx).await {
        warn!(error = %e, "mirror rebuild failed; continuing (the mirror catches up as objects reconcile)");
    }
    tokio::spawn(rebuild::keep_rebuilt(ctx.clone()));
    tokio::spawn(controller::anchor::keep_anchored(ctx.clone()));
    let mut controllers = tokio::spawn(controller::run_all(ctx.clone(), args.concurrency.max(1)));
    ctx.published.set_ready(true);
    let hold = async {
        match leadership {
            Some(l) => l.elector.hold().await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        _ = signals.recv() => Ended::Signal,
        lost = hold => Ended::Lost(lost),
        _ = &mut controllers => Ended::Controllers,
    };
    ctx.published.set_ready(false);
    ctx.stop.request();
    info!("stopping: taking no new work, finishing the reconciles in flight");
    let limit = Duration::from_secs(args.shutdown_timeout);
    if !controllers.is_finished() {
        match tokio::time::timeout(limit, controllers).await {
            Ok(_) => info!("controllers stopped; in-flight reconciles finished"),
            Err(_) => warn!(
                timeout_secs = args.shutdown_timeout,
                "in-flight reconciles did not finish in time; exiting anyway (the next leader picks them up)"
            ),
        }
    }
    ended
}

/// After the controllers stopped: flush the audit queue, hand the Lease
/// over (on a signal), unlabel the pod.
async fn shut_down(ctx: &Context, leadership: Option<&mut Leadership>, ended: &Ended) {
    if matches!(ended, Ended::Signal) {
        info!("shutting down");
    }
    if matches!(ended, Ended::Lost(_)) {
        // The fence forbids committing now; an issuance whose audit row is
        // still queued is recorded by the new leader from its Secret.
        warn!(
            queued = ctx.store.stats().queued,
            "not flushing the database: this replica no longer holds the lease"
        );
    } else {
        flush(ctx).await;
    }
    if let Some(l) = leadership {
        if matches!(ended, Ended::Signal | Ended::Controllers) {
            l.elector.release().await;
        }
        l.label(false).await;
    }
}

/// Writes the queued audit and mirror rows, bounded: a degraded store
/// would wait for the disk forever.
async fn flush(ctx: &Context) {
    match tokio::time::timeout(Duration::from_secs(5), ctx.store.flush()).await {
        Ok(Ok(())) => info!("audit queue flushed"),
        Ok(Err(e)) => warn!(error = %e, "could not flush the database on shutdown"),
        Err(_) => warn!("database flush timed out on shutdown; queued audit rows were not written"),
    }
}
