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

use crate::clock::SystemClock;
use crate::controller::{self, Context, ContextParts, leader, rebuild};
use crate::http::{self, HttpState, Limits, Site};
use crate::kms::{AwsKms, KmsSettings};
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

async fn context(args: &RunArgs) -> anyhow::Result<Context> {
    let default_key_spec = controller::parse_key_spec(&args.default_key_spec)?;
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
    Ok(Context::new(ContextParts {
        client,
        keys: Arc::new(kms),
        store,
        namespace: args.namespace.clone(),
        default_key_spec,
        clock: Arc::new(SystemClock),
        instance: args.pod_name.clone(),
    })
    .with_public_base_url(public_base_url(args)?)
    .with_success_events(args.success_events))
}

/// Runs the operator.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    public_base_url(&args)?;
    let (admin, pki) = bind_listeners(&args).await?;
    let ctx = Arc::new(context(&args).await?);
    let state = HttpState {
        published: ctx.published.clone(),
        metrics: ctx.metrics.clone(),
        store: ctx.store.clone(),
    };
    let limits = Limits::default();
    let servers = [
        tokio::spawn(http::serve(admin, Site::Admin, state.clone(), limits)),
        tokio::spawn(http::serve(pki, Site::Pki, state, limits)),
    ];
    info!(
        admin = %args.http_addr,
        pki = %args.pki_addr,
        public_base_url = ctx.public_base_url.as_deref().unwrap_or(""),
        namespace = %args.namespace,
        "signet starting"
    );

    if args.leader_election {
        let identity = args
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("signet-{}", std::process::id()));
        leader::acquire(ctx.client.clone(), &args.namespace, &identity).await?;
        tokio::spawn(leader::hold(
            ctx.client.clone(),
            args.namespace.clone(),
            identity,
        ));
    }
    ctx.published.set_leader(true);
    if let Err(e) = rebuild::rebuild_if_empty(&ctx).await {
        warn!(error = %e, "mirror rebuild failed; continuing (the mirror catches up as objects reconcile)");
    }
    tokio::spawn(rebuild::keep_rebuilt(ctx.clone()));
    tokio::spawn(controller::anchor::keep_anchored(ctx.clone()));

    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    ctx.published.set_ready(true);
    tokio::select! {
        _ = controller::run_all(ctx.clone(), args.concurrency.max(1)) => {},
        _ = shutdown => info!("shutting down"),
    }
    ctx.published.set_ready(false);
    // Bounded: a degraded store would wait for the disk forever.
    match tokio::time::timeout(Duration::from_secs(10), ctx.store.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "could not flush the database on shutdown"),
        Err(_) => warn!("database flush timed out on shutdown; queued audit rows were not written"),
    }
    for server in servers {
        server.abort();
    }
    Ok(())
}
