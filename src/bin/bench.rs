#![forbid(unsafe_code)]
//! `signet-bench`: end-entity issuance throughput and Signet's own CPU per
//! certificate, against a KMS endpoint (local-kms in practice).
//!
//! ```text
//! cargo run --release --bin signet-bench -- --kms-endpoint http://127.0.0.1:PORT
//! ```
//!
//! For each leaf key type (P-256, RSA-2048) and concurrency (1, 16, 64) it
//! issues `--count` certificates through [`signet::pki::issue_leaf`] with a
//! P-256 KMS CA key, and reports:
//!
//! * certificates per second (wall clock);
//! * Signet CPU per certificate: user+system CPU of this process (from
//!   `/proc/self/stat`, which includes threads that have exited) divided by
//!   the number of certificates. KMS runs in another process, so this is
//!   everything Signet does outside KMS: key generation, DER building, the
//!   SDK's HTTP/SigV4/JSON work and the local signature verification;
//! * KMS CPU per certificate when `--kms-pid` is given (from
//!   `/proc/PID/stat`), and the mean `Sign` round trip.
//!
//! A second, KMS-free pass times the pure PKI part alone (key generation,
//! DER building, PEM, plus one local signature verification), single
//! threaded, to separate it from the SDK's share.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use signet::kms::{
    AwsKms, KeySpec, KmsSettings, KmsSigner, SigAlg, SignError, Signer, StaticCredentials,
    verify_digest_signature,
};
use signet::pki::{
    self, CaRequest, IssuerInfo, IssuerProfile, KeyAlgorithm, LeafRequest, PrivateKeySpec, Subject,
    Usage,
};
use time::OffsetDateTime;

#[derive(Parser, Debug)]
#[command(about = "Issue end-entity certificates against KMS and measure throughput and CPU")]
struct Args {
    /// KMS endpoint, e.g. http://127.0.0.1:4599 (local-kms).
    #[arg(long, env = "SIGNET_KMS_ENDPOINT")]
    kms_endpoint: String,
    /// AWS region the endpoint answers for.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Access key id (local-kms accepts anything).
    #[arg(long, default_value = "test")]
    access_key_id: String,
    /// Secret access key (local-kms accepts anything).
    #[arg(long, default_value = "test")]
    secret_access_key: String,
    /// Certificates per run.
    #[arg(long, default_value_t = 2000)]
    count: u64,
    /// Certificates per RSA run (RSA key generation dominates).
    #[arg(long, default_value_t = 300)]
    rsa_count: u64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<u64>,
    /// Leaf key types: p256, p384, rsa2048, ed25519.
    #[arg(long, value_delimiter = ',', default_value = "p256,rsa2048")]
    keys: Vec<String>,
    /// KMS key spec of the issuing CA.
    #[arg(long, default_value = "ECC_NIST_P256")]
    ca_key_spec: String,
    /// PID of local-kms, to report its CPU per certificate.
    #[arg(long)]
    kms_pid: Option<u32>,
}

/// Wraps the KMS signer to measure the time spent in `Sign` round trips.
struct TimedSigner {
    inner: KmsSigner,
    nanos: AtomicU64,
}

#[async_trait::async_trait]
impl Signer for TimedSigner {
    fn public_key_spki_der(&self) -> &[u8] {
        self.inner.public_key_spki_der()
    }
    fn algorithm(&self) -> SigAlg {
        self.inner.algorithm()
    }
    fn key_arn(&self) -> &str {
        self.inner.key_arn()
    }
    fn key_spec(&self) -> KeySpec {
        self.inner.key_spec()
    }
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let start = Instant::now();
        let r = self.inner.sign_digest(digest).await;
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
}

/// Bench-only signer for the KMS-free pass: returns one real signature for
/// every digest (certificates it "signs" are invalid; only timing matters).
struct ReplaySigner {
    spki: Vec<u8>,
    alg: SigAlg,
    spec: KeySpec,
    signature: Vec<u8>,
}

#[async_trait::async_trait]
impl Signer for ReplaySigner {
    fn public_key_spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn algorithm(&self) -> SigAlg {
        self.alg
    }
    fn key_arn(&self) -> &str {
        "bench:replay"
    }
    fn key_spec(&self) -> KeySpec {
        self.spec
    }
    async fn sign_digest(&self, _digest: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.signature.clone())
    }
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process in seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

fn leaf_spec(name: &str) -> Option<PrivateKeySpec> {
    let (algorithm, size) = match name {
        "p256" => (KeyAlgorithm::Ecdsa, Some(256)),
        "p384" => (KeyAlgorithm::Ecdsa, Some(384)),
        "rsa2048" => (KeyAlgorithm::Rsa, Some(2048)),
        "ed25519" => (KeyAlgorithm::Ed25519, None),
        _ => return None,
    };
    Some(PrivateKeySpec {
        algorithm,
        size,
        ..Default::default()
    })
}

fn leaf_request(spec: PrivateKeySpec) -> LeafRequest {
    LeafRequest {
        subject: Subject::cn("svc.bench.signet.example.com"),
        dns_names: vec![
            "svc.bench.signet.example.com".into(),
            "svc.bench.svc.cluster.local".into(),
        ],
        usages: vec![Usage::ServerAuth, Usage::ClientAuth],
        private_key: spec,
        ..Default::default()
    }
}

struct RunResult {
    certs: u64,
    wall: Duration,
    cpu: Option<f64>,
    kms_cpu: Option<f64>,
    sign_nanos: u64,
    errors: u64,
}

async fn run(
    issuer: Arc<IssuerInfo>,
    signer: Arc<TimedSigner>,
    req: Arc<LeafRequest>,
    count: u64,
    concurrency: u64,
    ticks: f64,
    kms_pid: Option<u32>,
) -> RunResult {
    signer.nanos.store(0, Ordering::Relaxed);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds("self", ticks);
    let kms0 = kms_pid.and_then(|p| cpu_seconds(&p.to_string(), ticks));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (issuer, signer, req, next, errors) = (
            issuer.clone(),
            signer.clone(),
            req.clone(),
            next.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let now = OffsetDateTime::now_utc();
                if let Err(e) = pki::issue_leaf(&issuer, signer.as_ref(), &req, now).await
                    && errors.fetch_add(1, Ordering::Relaxed) < 3
                {
                    eprintln!("issue failed: {e}");
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = start.elapsed();
    let cpu = cpu0.and_then(|c0| cpu_seconds("self", ticks).map(|c1| c1 - c0));
    let kms_cpu = kms0.and_then(|k0| {
        kms_pid
            .and_then(|p| cpu_seconds(&p.to_string(), ticks))
            .map(|k1| k1 - k0)
    });
    RunResult {
        certs: count,
        wall,
        cpu,
        kms_cpu,
        sign_nanos: signer.nanos.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Single-threaded KMS-free timing of the pure PKI work per certificate.
async fn pure_pass(
    issuer: &IssuerInfo,
    kms_signer: &KmsSigner,
    req: &LeafRequest,
    count: u64,
    ticks: f64,
) -> Result<(f64, f64), SignError> {
    let digest = kms_signer.algorithm().digest(b"bench");
    let signature = kms_signer.sign_digest(&digest).await?;
    let replay = ReplaySigner {
        spki: kms_signer.public_key_spki_der().to_vec(),
        alg: kms_signer.algorithm(),
        spec: kms_signer.key_spec(),
        signature: signature.clone(),
    };
    let cpu0 = cpu_seconds("self", ticks).unwrap_or(0.0);
    let start = Instant::now();
    for _ in 0..count {
        let now = OffsetDateTime::now_utc();
        if let Err(e) = pki::issue_leaf(issuer, &replay, req, now).await {
            eprintln!("pure pass: {e}");
        }
        // The verification KmsSigner does on every signature.
        let ok = verify_digest_signature(
            kms_signer.public_key_spki_der(),
            kms_signer.algorithm(),
            &digest,
            &signature,
        );
        std::hint::black_box(ok);
    }
    let wall = start.elapsed().as_secs_f64() / count as f64;
    let cpu = (cpu_seconds("self", ticks).unwrap_or(0.0) - cpu0) / count as f64;
    Ok((wall, cpu))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let ticks = clock_ticks_per_second();
    let kms = AwsKms::with_static_credentials(
        KmsSettings {
            region: Some(args.region.clone()),
            endpoint: Some(args.kms_endpoint.clone()),
            ..Default::default()
        },
        StaticCredentials {
            access_key_id: args.access_key_id.clone(),
            secret_access_key: args.secret_access_key.clone(),
            session_token: None,
        },
    )
    .await?;
    let ca_spec: KeySpec = args.ca_key_spec.parse()?;
    let alias = format!(
        "bench-{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp()
    );
    let ca_signer = kms.create_key(ca_spec, &alias, &[]).await?;
    let now = OffsetDateTime::now_utc();
    let ca_cert = pki::issue_root(
        &ca_signer,
        &CaRequest {
            subject: Subject::cn("Signet Bench CA"),
            ..Default::default()
        },
        now,
    )
    .await?;
    let issuer = Arc::new(IssuerInfo::from_der(
        &ca_cert.cert_der,
        IssuerProfile {
            crl_distribution_points: vec!["http://pki.signet.example.com/crl/bench.crl".into()],
            issuing_certificate_urls: vec!["http://pki.signet.example.com/ca/bench.crt".into()],
            ..Default::default()
        },
    )?);
    let signer = Arc::new(TimedSigner {
        inner: ca_signer.clone(),
        nanos: AtomicU64::new(0),
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "signet-bench: CA key {ca_spec} ({}), KMS {}, {cores} cores, CLK_TCK {ticks}",
        ca_signer.key_arn(),
        args.kms_endpoint
    );
    println!();
    println!(
        "| leaf key | concurrency | certs | certs/s | Signet CPU/cert | KMS CPU/cert | mean Sign round trip | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut pure = Vec::new();
    for key in &args.keys {
        let Some(spec) = leaf_spec(key) else {
            anyhow::bail!("unknown leaf key {key:?}; use p256, p384, rsa2048 or ed25519");
        };
        let req = Arc::new(leaf_request(spec));
        let count = if key.starts_with("rsa") {
            args.rsa_count
        } else {
            args.count
        };
        // Warm-up: connections, page faults, lazy statics.
        let _ = run(
            issuer.clone(),
            signer.clone(),
            req.clone(),
            (count / 10).max(10),
            4,
            ticks,
            None,
        )
        .await;
        for &c in &args.concurrency {
            let r = run(
                issuer.clone(),
                signer.clone(),
                req.clone(),
                count,
                c,
                ticks,
                args.kms_pid,
            )
            .await;
            let per_cert = |s: f64| format!("{:.0} µs", s * 1e6 / r.certs as f64);
            println!(
                "| {key} | {c} | {} | {:.0} | {} | {} | {:.2} ms | {} |",
                r.certs,
                r.certs as f64 / r.wall.as_secs_f64(),
                r.cpu.map(per_cert).unwrap_or_else(|| "n/a".into()),
                r.kms_cpu.map(per_cert).unwrap_or_else(|| "n/a".into()),
                r.sign_nanos as f64 / 1e6 / r.certs as f64,
                r.errors
            );
        }
        let (wall, cpu) = pure_pass(&issuer, &ca_signer, &req, count.min(2000), ticks).await?;
        pure.push((key.clone(), wall, cpu));
    }
    println!();
    println!("KMS-free pass (single task: key generation + DER + PEM + one local verification):");
    println!();
    println!("| leaf key | wall/cert | CPU/cert |");
    println!("|---|---|---|");
    for (key, wall, cpu) in pure {
        println!("| {key} | {:.0} µs | {:.0} µs |", wall * 1e6, cpu * 1e6);
    }
    Ok(())
}
