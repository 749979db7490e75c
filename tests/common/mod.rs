//! Shared helpers of the controller tests: run the real operator binary
//! against the test control plane, apply YAML, wait for conditions.
#![allow(dead_code)]

use std::io::{Read as _, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use signet::api::{CRL, Certificate, CertificateAuthority};
use signet_testenv::TestEnv;

/// A running `signet run` process.
pub struct Operator {
    /// Process id.
    pub pid: u32,
    /// Its log.
    pub log: PathBuf,
    /// Its database file.
    pub db: PathBuf,
    /// Its namespace.
    pub namespace: String,
    /// Admin HTTP port (/metrics /healthz /readyz).
    pub port: u16,
    /// Public PKI HTTP port (/crl /ca /ocsp).
    pub pki_port: u16,
}

impl Operator {
    /// Starts the operator with namespace `ns`, database `db` and KMS at
    /// `kms_endpoint`.
    pub fn start(env: &TestEnv, ns: &str, db: &Path, kms_endpoint: &str) -> Operator {
        Self::start_with(env, ns, db, kms_endpoint, &[])
    }

    /// [`Operator::start`] with extra environment (flags), e.g.
    /// `SIGNET_LEADER_ELECTION=true`.
    pub fn start_with(
        env: &TestEnv,
        ns: &str,
        db: &Path,
        kms_endpoint: &str,
        extra: &[(&str, &str)],
    ) -> Operator {
        let port = signet_testenv::free_port();
        let pki_port = signet_testenv::free_port();
        let log = db.with_extension(format!("op-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
        cmd.arg("run");
        for (k, v) in env.child_env() {
            cmd.env(k, v);
        }
        cmd.env("SIGNET_KMS_ENDPOINT", kms_endpoint)
            .env("SIGNET_NAMESPACE", ns)
            .env("SIGNET_DB", db)
            .env("SIGNET_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("SIGNET_PKI_ADDR", format!("127.0.0.1:{pki_port}"))
            .env("SIGNET_LOG_FORMAT", "text")
            .env("SIGNET_LOG_LEVEL", "info")
            .env("SIGNET_CONCURRENCY", "4")
            // The tests check the Issued/Renewed Events (off by default).
            .env("SIGNET_SUCCESS_EVENTS", "true");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let pid = signet_testenv::spawn_supervised("signet-operator", cmd, &log)
            .expect("starting the operator");
        let op = Operator {
            pid,
            log,
            db: db.to_path_buf(),
            namespace: ns.to_string(),
            port,
            pki_port,
        };
        let start = Instant::now();
        while op.http_get("/readyz").is_none_or(|(s, _)| s != 200) {
            assert!(
                signet_testenv::is_running(pid),
                "operator exited:\n{}",
                op.log_tail()
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "operator not ready in 60s:\n{}",
                op.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        op
    }

    /// Stops the operator (SIGKILL: the harshest restart).
    pub fn kill(&self) {
        signet_testenv::kill(self.pid);
    }

    /// Last lines of the operator's log.
    pub fn log_tail(&self) -> String {
        signet_testenv::tail(&self.log, 40)
    }

    /// GET on the operator's admin listener.
    pub fn http_get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        get_status_body(self.port, path)
    }

    /// GET on the operator's public PKI listener.
    pub fn pki_get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        get_status_body(self.pki_port, path)
    }
}

/// A one-shot HTTP/1.1 GET on a loopback port: (status, body).
fn get_status_body(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf[split + 4..].to_vec()))
}

/// `kubectl apply -f -` with `yaml`; returns Ok(stdout) or Err(stderr).
pub fn apply(env: &TestEnv, yaml: &str) -> Result<String, String> {
    let mut child = env
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("writing yaml");
    let out = child.wait_with_output().expect("kubectl output");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Polls `f` until it returns Some or `timeout` passes (then panics with
/// `what` and the operator's log).
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    op: Option<&Operator>,
    mut f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            let log = op.map(|o| o.log_tail()).unwrap_or_default();
            panic!(
                "timed out after {}s waiting for {what}\noperator log:\n{log}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `Ready` condition of a status's conditions: (status, reason, message).
pub fn ready(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String, String)> {
    conds
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until `api.get(name)` has Ready=`want.0` (and reason `want.1`),
/// reading the conditions with `conds`.
async fn wait_ready<K>(
    api: Api<K>,
    what: String,
    name: &str,
    want: (&str, Option<&str>),
    op: Option<&Operator>,
    conds: fn(&K) -> Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(
        &format!("{what} Ready={want:?}"),
        Duration::from_secs(60),
        op,
        || {
            let api = api.clone();
            async move {
                let obj = api.get_opt(name).await.ok()??;
                let (s, r, _) = ready(&conds(&obj)?)?;
                (s == want.0 && want.1.is_none_or(|w| w == r)).then_some(obj)
            }
        },
    )
    .await
}

/// Waits until CA `name` has Ready=`want.0` (and reason, if given).
pub async fn wait_ca<'a>(
    client: &kube::Client,
    name: &str,
    want: (&str, Option<&str>),
    op: impl Into<Option<&'a Operator>>,
) -> CertificateAuthority {
    let api = Api::all(client.clone());
    wait_ready(
        api,
        format!("CertificateAuthority {name}"),
        name,
        want,
        op.into(),
        |c: &CertificateAuthority| Some(c.status.clone()?.conditions),
    )
    .await
}

/// Waits until Certificate `ns/name` has Ready=`want.0` (and reason).
pub async fn wait_cert<'a>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: (&str, Option<&str>),
    op: impl Into<Option<&'a Operator>>,
) -> Certificate {
    let api = Api::namespaced(client.clone(), ns);
    wait_ready(
        api,
        format!("Certificate {ns}/{name}"),
        name,
        want,
        op.into(),
        |c: &Certificate| Some(c.status.clone()?.conditions),
    )
    .await
}

/// Waits until CRL `name` is Ready with number >= `min_number`.
pub async fn wait_crl<'a>(
    client: &kube::Client,
    name: &str,
    min_number: i64,
    op: impl Into<Option<&'a Operator>>,
) -> CRL {
    let api: Api<CRL> = Api::all(client.clone());
    wait_for(
        &format!("CRL {name} number >= {min_number}"),
        Duration::from_secs(60),
        op.into(),
        || {
            let api = api.clone();
            async move {
                let c = api.get_opt(name).await.ok()??;
                let st = c.status.clone()?;
                let (s, _, _) = ready(&st.conditions)?;
                (s == "True" && st.crl_number.unwrap_or(0) >= min_number).then_some(c)
            }
        },
    )
    .await
}

/// The Secret's `key` as text.
pub fn secret_text(s: &Secret, key: &str) -> String {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

/// A root CA manifest.
pub fn root_ca(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: signet.dev/v1alpha1\nkind: CertificateAuthority\nmetadata: {{name: {name}}}\nspec:\n  commonName: {name} Root\n  subject: {{organizations: [Signet Tests]}}\n{extra}"
    )
}

/// An intermediate CA manifest.
pub fn intermediate_ca(name: &str, parent: &str, extra: &str) -> String {
    format!(
        "apiVersion: signet.dev/v1alpha1\nkind: CertificateAuthority\nmetadata: {{name: {name}}}\nspec:\n  issuerRef: {{name: {parent}}}\n  commonName: {name} Intermediate\n  maxPathLength: 0\n{extra}"
    )
}

/// A Certificate manifest.
pub fn certificate(ns: &str, name: &str, issuer: &str, extra: &str) -> String {
    format!(
        "apiVersion: signet.dev/v1alpha1\nkind: Certificate\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  issuerRef: {{name: {issuer}}}\n  secretName: {name}-tls\n{extra}"
    )
}

/// A CRL manifest publishing into `ns`.
pub fn crl(name: &str, ca: &str, ns: &str) -> String {
    format!(
        "apiVersion: signet.dev/v1alpha1\nkind: CRL\nmetadata: {{name: {name}}}\nspec:\n  caRef: {{name: {ca}}}\n  publish: {{namespace: {ns}}}\n"
    )
}

/// Unique suffix for cluster-scoped names in this test binary.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 10000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A raw aws-sdk-kms client for local-kms (static test credentials), for
/// tests that manage keys behind Signet's back.
pub fn kms_sdk(kms: &signet_testenv::KmsEnv) -> aws_sdk_kms::Client {
    let creds = aws_sdk_kms::config::Credentials::new(
        signet_testenv::KMS_ACCESS_KEY_ID,
        signet_testenv::KMS_SECRET_ACCESS_KEY,
        None,
        None,
        "signet-test",
    );
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new(kms.region.clone()))
            .endpoint_url(&kms.endpoint)
            .credentials_provider(creds)
            .build(),
    )
}

/// The entries of a DER CRL as (serial, revocation time, reason name).
pub fn crl_entries(der: &[u8]) -> Vec<(String, i64, String)> {
    signet::pki::crl_facts(der)
        .map(|f| f.entries)
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.serial_hex,
                e.revoked_at.unix_timestamp(),
                e.reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// The reconcilers running inside the test process (no binary), on a
/// runtime of their own, against the test API server: with an in-memory
/// key store that counts keys and signatures and can be switched off like
/// a KMS outage, and a clock the tests can read.
pub struct InProcess {
    /// The context the controllers run with (its store is the mirror).
    pub ctx: std::sync::Arc<signet::controller::Context>,
    /// The key store behind it.
    pub keys: std::sync::Arc<signet::kms::LocalKms>,
    /// The operator's namespace (registers, CRL ConfigMaps).
    pub namespace: String,
    /// Its admin listener (/metrics /healthz /readyz), on loopback.
    pub admin: std::net::SocketAddr,
    /// Its public PKI listener (/crl /ca /ocsp), on loopback.
    pub pki: std::net::SocketAddr,
}

static IN_PROCESS: std::sync::OnceLock<InProcess> = std::sync::OnceLock::new();

/// The in-process operator of this test binary (started on first use).
pub fn in_process() -> &'static InProcess {
    IN_PROCESS.get_or_init(|| start_in_process(false))
}

/// The in-process operator of this test binary, with its PKI listener's
/// URL as the default public base URL (`--public-base-url`), so issued
/// certificates point at it. A binary uses this or [`in_process`]: the
/// first call decides.
pub fn in_process_with_base_url() -> &'static InProcess {
    IN_PROCESS.get_or_init(|| start_in_process(true))
}

fn start_in_process(with_base_url: bool) -> InProcess {
    let env = signet_testenv::env();
    let ns = "signet-inproc".to_string();
    env.kubectl_ok(&["create", "namespace", &ns]).ok();
    let (tx, rx) = std::sync::mpsc::channel();
    let ns2 = ns.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime for the in-process operator");
        rt.block_on(async move {
            let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().expect("an address");
            let admin = signet::http::bind(loopback, "admin")
                .await
                .expect("admin listener");
            let pki = signet::http::bind(loopback, "pki")
                .await
                .expect("PKI listener");
            let addrs = (
                admin.local_addr().expect("admin address"),
                pki.local_addr().expect("PKI address"),
            );
            let keys = std::sync::Arc::new(signet::kms::LocalKms::new());
            let db = signet_testenv::run_dir().join("inproc.db");
            let ctx = signet::controller::Context::new(signet::controller::ContextParts {
                client: env.client().await,
                keys: keys.clone(),
                store: signet::store::Store::open(&db).expect("opening the mirror"),
                namespace: ns2,
                default_key_spec: signet::kms::KeySpec::EccNistP256,
                clock: std::sync::Arc::new(signet::clock::SystemClock),
                instance: Some("in-process".into()),
            })
            .with_public_base_url(with_base_url.then(|| format!("http://{}", addrs.1)))
            .with_success_events(true);
            let ctx = std::sync::Arc::new(ctx);
            let state = signet::http::HttpState {
                published: ctx.published.clone(),
                metrics: ctx.metrics.clone(),
                store: ctx.store.clone().into(),
            };
            let limits = signet::http::Limits::default();
            use signet::http::{Site, serve};
            tokio::spawn(serve(admin, Site::Admin, state.clone(), limits));
            tokio::spawn(serve(pki, Site::Pki, state, limits));
            tx.send((ctx.clone(), keys, addrs))
                .expect("handing the context over");
            tokio::spawn(signet::controller::anchor::keep_anchored(ctx.clone()));
            signet::controller::run_all(ctx, 4).await;
        });
    });
    let (ctx, keys, (admin, pki)) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("in-process operator did not start");
    InProcess {
        ctx,
        keys,
        namespace: ns,
        admin,
        pki,
    }
}

/// Polls `f` (in-process operator: no log to show) until Some or 60 s.
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for(what, Duration::from_secs(60), None, f).await
}

/// A TCP proxy in front of local-kms that counts `Sign` requests
/// (`X-Amz-Target: TrentService.Sign`) as they arrive from the operator.
pub struct SignProxy {
    /// `http://127.0.0.1:PORT`, for `SIGNET_KMS_ENDPOINT`.
    pub endpoint: String,
    signs: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl SignProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: &str) -> SignProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let signs = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let (counter, conns) = (signs.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                conns.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let counter = counter.clone();
                std::thread::spawn(move || pipe(client, server, Some(counter)));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        SignProxy {
            endpoint,
            signs,
            connections,
        }
    }

    /// `Sign` requests that reached KMS so far.
    pub fn signs(&self) -> u64 {
        self.signs.load(Ordering::SeqCst)
    }

    /// Connections the operator opened so far (also those that found KMS
    /// down).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to`, counting `Sign` targets when `count` is given.
fn pipe(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
    const NEEDLE: &[u8] = b"TrentService.Sign\r\n";
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(c) = &count {
            carry.extend_from_slice(&buf[..n]);
            let hits = carry.windows(NEEDLE.len()).filter(|w| w == &NEEDLE).count();
            c.fetch_add(hits as u64, Ordering::SeqCst);
            let keep = carry.len().min(NEEDLE.len() - 1);
            carry.drain(..carry.len() - keep);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// `range` Certificates `<prefix>-<i>` for `ca` in `ns` (DNS name
/// `<prefix>-<i>.example.com`), as one multi-document YAML.
pub fn certificates(ns: &str, prefix: &str, range: std::ops::Range<usize>, ca: &str) -> String {
    range
        .map(|i| {
            certificate(
                ns,
                &format!("{prefix}-{i}"),
                ca,
                &format!("  dnsNames: [{prefix}-{i}.example.com]\n"),
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Whether a Certificate is `Ready=True`.
pub fn is_ready(c: &Certificate) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Waits until `ns` holds exactly `n` Certificates, all Ready; returns
/// them. Past `limit` it fails with `logs()` (the operators' log tails).
pub async fn all_certificates_ready(
    client: &kube::Client,
    ns: &str,
    n: usize,
    limit: Duration,
    logs: impl Fn() -> String,
) -> Vec<Certificate> {
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    loop {
        let list = api
            .list(&kube::api::ListParams::default())
            .await
            .unwrap()
            .items;
        let ready = list.iter().filter(|c| is_ready(c)).count();
        if list.len() == n && ready == n {
            return list;
        }
        assert!(
            start.elapsed() < limit,
            "{ready}/{n} Certificates Ready in {ns} after {limit:?}:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
