//! Signet's test environment: a real etcd + kube-apiserver and a real local-kms,
//! started by the tests themselves on random loopback ports.
//!
//! * [`env()`] starts (once per test binary) etcd, kube-apiserver and
//!   local-kms, installs the CRDs from `crds/`, and returns a [`TestEnv`].
//! * [`kms()`] starts only local-kms, for tests that need no API server.
//! * [`node_env()`] (or [`env()`] with `SIGNET_TESTENV_NODE=1`) adds a node:
//!   containerd + runc, kubelet, kube-scheduler and kube-controller-manager,
//!   so tests can run the image, the chart's Deployment and its probes
//!   ([`node`] says how it fits this sandbox).
//! * [`tools`] runs `openssl`, pkilint and zlint on artifacts and parses
//!   their findings.
//!
//! The binaries come from `hack/testenv.sh setup` (`make testenv`). When they
//! are missing every test fails at once with one line naming that command.
//!
//! Every child process runs in its own process group and is registered with
//! a watchdog process that kills them all as soon as the test binary exits —
//! normally, by panic, by Ctrl-C or by SIGKILL — so nothing leaks.
#![forbid(unsafe_code)]

pub mod node;
pub mod tools;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

/// The command a human runs to build the test environment.
pub const SETUP_COMMAND: &str = "make testenv   (or: hack/testenv.sh setup)";
/// AWS region local-kms pretends to be.
pub const KMS_REGION: &str = "us-east-1";
/// Static credentials local-kms accepts (it does not check them).
pub const KMS_ACCESS_KEY_ID: &str = "test";
/// Static secret local-kms accepts.
pub const KMS_SECRET_ACCESS_KEY: &str = "test";
/// How long any component may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (this crate lives in `tests/harness`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root exists")
}

/// The folder holding the test environment's binaries.
///
/// `SIGNET_TESTENV_BIN` wins; otherwise `hack/testenv.sh dir` computes the
/// cache folder keyed by the hash of `hack/testenv/go.sum`.
pub fn bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("SIGNET_TESTENV_BIN") {
            return Ok(PathBuf::from(dir));
        }
        let out = Command::new("bash")
            .arg(repo_root().join("hack/testenv.sh"))
            .arg("dir")
            .output()
            .map_err(|e| format!("running hack/testenv.sh dir: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "hack/testenv.sh dir failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Path of one test-environment binary, or a one-line error naming the setup
/// command when it was never built.
pub fn bin(name: &str) -> Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "signet test environment is not set up ({} missing): run `{SETUP_COMMAND}`",
            path.display()
        )
    }
}

/// Like [`bin`], but panics with the one-line setup message.
pub fn require_bin(name: &str) -> PathBuf {
    match bin(name) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------
// Process supervision
// ---------------------------------------------------------------------------

struct Supervisor {
    /// Name and log file of every child, for failure reports.
    logs: Vec<(String, PathBuf)>,
    children: Vec<Child>,
}

fn supervisor() -> &'static Mutex<Supervisor> {
    static SUP: OnceLock<Mutex<Supervisor>> = OnceLock::new();
    SUP.get_or_init(|| {
        let dir = watchdog_dir();
        let _ = fs::create_dir_all(&dir);
        // The watchdog polls our pid; when we are gone (however we died) it
        // kills what we started.
        // The watchdog kills exactly the processes that carry this binary's
        // token in their environment (children and their descendants). PIDs
        // wrap quickly on small machines (pid_max 32768), so it never kills
        // by a remembered pid or process group. After the sweep it runs the
        // cleanup hooks components left in its folder (`cleanup-*.sh`).
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.3; done; \
             sweep() {{ for d in /proc/[0-9]*; do \
               if grep -qzx 'SIGNET_WATCHDOG_TOKEN={token}' \"$d/environ\" 2>/dev/null; then \
                 kill -$1 \"${{d#/proc/}}\" 2>/dev/null; fi; done; }}; \
             sweep TERM; sleep 1; sweep KILL; \
             for f in '{dir}'/cleanup-*.sh; do [ -f \"$f\" ] && sh \"$f\"; done; \
             rm -rf '{dir}' {cleanup}",
            me = std::process::id(),
            token = watchdog_token(),
            dir = dir.display(),
            cleanup = if std::env::var("SIGNET_TEST_KEEP").as_deref() == Ok("1") {
                String::new()
            } else {
                format!(
                    "'{}'",
                    state_root()
                        .join(format!("run-{}", std::process::id()))
                        .display()
                )
            },
        );
        let spawned = {
            use std::os::unix::process::CommandExt;
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
        };
        if let Err(e) = spawned {
            panic!("cannot start the test watchdog (sh): {e}");
        }
        install_panic_hook();
        Mutex::new(Supervisor {
            logs: Vec::new(),
            children: Vec::new(),
        })
    })
}

/// The watchdog's folder; components put cleanup hooks (`cleanup-*.sh`,
/// run after the sweep) there.
fn watchdog_dir() -> PathBuf {
    state_root().join(format!("watchdog-{}", std::process::id()))
}

/// This test binary's token, set in the environment of every child.
pub fn watchdog_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}-{nanos}", std::process::id())
    })
}

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if let Some(sup) = SUPERVISOR_LOGS.get()
            && let Ok(logs) = sup.lock()
        {
            {
                for (name, path) in logs.iter() {
                    eprintln!("----- last lines of {name} ({}) -----", path.display());
                    eprintln!("{}", tail(path, 25));
                }
            }
        }
    }));
}

static SUPERVISOR_LOGS: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Where per-run state (data dirs, certificates, logs) goes.
fn state_root() -> PathBuf {
    std::env::var("SIGNET_TEST_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("signet-test"))
}

/// Spawns a supervised child (killed when the test binary exits, however
/// it exits) whose stdout+stderr go to `log`. Returns its pid.
pub fn spawn_supervised(name: &str, cmd: Command, log: &Path) -> Result<u32> {
    spawn(name, cmd, log)
}

/// Whether a supervised child is still running.
pub fn is_running(pid: u32) -> bool {
    alive(pid)
}

/// Spawns a supervised child whose stdout+stderr go to `log`.
fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("SIGNET_WATCHDOG_TOKEN", watchdog_token())
        .process_group(0);
    let sup = supervisor();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
    let pid = child.id();
    let mut guard = sup.lock().map_err(|_| anyhow!("supervisor poisoned"))?;
    guard.logs.push((name.to_string(), log.to_path_buf()));
    guard.children.push(child);
    SUPERVISOR_LOGS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .map_err(|_| anyhow!("log registry poisoned"))?
        .push((name.to_string(), log.to_path_buf()));
    Ok(pid)
}

/// Whether the supervised child with `pid` is still running.
fn alive(pid: u32) -> bool {
    let Ok(mut sup) = supervisor().lock() else {
        return false;
    };
    sup.children
        .iter_mut()
        .find(|c| c.id() == pid)
        .map(|c| matches!(c.try_wait(), Ok(None)))
        .unwrap_or(false)
}

/// The exit code of a supervised child that has exited (`None` while it
/// runs, or when a signal ended it).
pub fn exit_code(pid: u32) -> Option<i32> {
    let mut sup = supervisor().lock().ok()?;
    let c = sup.children.iter_mut().find(|c| c.id() == pid)?;
    c.try_wait().ok().flatten()?.code()
}

/// Sends `sig` (e.g. "STOP", "CONT", "TERM") to a supervised child that
/// has not been reaped (so its pid cannot have been reused).
pub fn signal(pid: u32, sig: &str) {
    if alive(pid) {
        let _ = Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .status();
    }
}

/// Stops the supervised child with `pid` (SIGKILL to its process group).
/// Only a child that has not been reaped yet is signalled: until then its
/// pid (and group id) cannot have been reused by an unrelated process.
pub fn kill(pid: u32) {
    let Ok(mut sup) = supervisor().lock() else {
        return;
    };
    let Some(c) = sup.children.iter_mut().find(|c| c.id() == pid) else {
        return;
    };
    if matches!(c.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .status();
        let _ = c.kill();
    }
    let _ = c.wait();
}

/// A free loopback port (the kernel's choice; the caller retries on a race).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// Polls `ready` until it returns true, the process dies, or the timeout.
fn wait_ready(name: &str, pid: u32, log: &Path, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if ready() {
            return Ok(());
        }
        if !alive(pid) {
            bail!(
                "{name} exited during startup; last lines of {}:\n{}",
                log.display(),
                tail(log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    kill(pid);
    bail!(
        "{name} did not become ready in {}s; last lines of {}:\n{}",
        READY_TIMEOUT.as_secs(),
        log.display(),
        tail(log, 30)
    )
}

/// A plain HTTP/1.0 GET on loopback; returns (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

// ---------------------------------------------------------------------------
// local-kms
// ---------------------------------------------------------------------------

/// A running local-kms.
#[derive(Debug, Clone)]
pub struct KmsEnv {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The region local-kms reports in ARNs.
    pub region: String,
    /// Process id (and process group) of local-kms.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
}

/// Starts a new local-kms with its own data dir (not shared). Most tests
/// want the shared [`kms()`]; this is for tests that stop and restart KMS.
pub fn start_kms(dir: &Path) -> Result<KmsEnv> {
    start_kms_on(dir, "127.0.0.1:0")
}

/// Starts local-kms bound to `addr` (e.g. to restart on the same port).
pub fn start_kms_on(dir: &Path, addr: &str) -> Result<KmsEnv> {
    let exe = bin("local-kms")?;
    fs::create_dir_all(dir.join("data"))?;
    let log = dir.join(format!("local-kms-{}.log", free_port()));
    let mut cmd = Command::new(exe);
    cmd.arg(format!("-addr={addr}"))
        .arg(format!("-data={}", dir.join("data").display()))
        .env("LOCAL_KMS_ADDR", addr)
        .env("KMS_REGION", KMS_REGION)
        .env("KMS_ACCOUNT_ID", "111122223333")
        .env("KMS_DATA_PATH", dir.join("data"));
    let pid = spawn("local-kms", cmd, &log)?;
    let mut port = None;
    wait_ready("local-kms", pid, &log, || {
        if port.is_none() {
            port = fs::read_to_string(&log).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("listening on "))
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.trim().parse::<u16>().ok())
            });
        }
        port.is_some_and(|p| TcpStream::connect(("127.0.0.1", p)).is_ok())
    })?;
    let port = port.ok_or_else(|| anyhow!("local-kms printed no port"))?;
    Ok(KmsEnv {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: KMS_REGION.to_string(),
        pid,
        log,
    })
}

/// The shared local-kms of this test binary (started on first use).
pub fn kms() -> &'static KmsEnv {
    // A failed start is remembered: every test fails at once with the same
    // message instead of each retrying for a minute.
    static KMS: OnceLock<Result<KmsEnv, String>> = OnceLock::new();
    match KMS.get_or_init(|| start_kms(&run_dir().join("kms")).map_err(|e| format!("{e:#}"))) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    }
}

/// A fresh folder for this test binary's state.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = state_root().join(format!("run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("creating the test state folder");
        d
    })
}

// ---------------------------------------------------------------------------
// Control plane
// ---------------------------------------------------------------------------

/// A running etcd + kube-apiserver (+ local-kms).
#[derive(Debug)]
pub struct TestEnv {
    /// Kubeconfig for the admin identity (group `system:masters`).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`
    pub server: String,
    /// The shared local-kms.
    pub kms: KmsEnv,
    /// CA certificate (PEM) that signed the API server's serving certificate
    /// and the client certificates.
    pub ca_pem: String,
    /// Where the certificates and logs live.
    pub dir: PathBuf,
    /// PEM private key of the CA above, so tests can mint client certificates
    /// for other identities (e.g. an operator's ServiceAccount-like user).
    ca_key_pem: String,
    /// kube-apiserver process id.
    pub apiserver_pid: u32,
    /// kube-apiserver log file.
    pub apiserver_log: PathBuf,
    /// etcd process id.
    pub etcd_pid: u32,
    /// The node, in node mode ([`node_env()`], `SIGNET_TESTENV_NODE=1`).
    pub node: Option<node::Node>,
}

/// The shared control plane of this test binary (started on first use),
/// with a node when `SIGNET_TESTENV_NODE=1`.
pub fn env() -> &'static TestEnv {
    shared_env(false)
}

/// The shared control plane of this test binary in node mode (started on
/// first use): as [`env()`] with `SIGNET_TESTENV_NODE=1`. When the host
/// cannot run a node, every caller fails at once with one line naming what
/// is missing and the command that sets it up.
pub fn node_env() -> &'static TestEnv {
    shared_env(true)
}

/// Whether `SIGNET_TESTENV_NODE=1` asks for node mode.
pub fn node_mode_requested() -> bool {
    std::env::var("SIGNET_TESTENV_NODE").as_deref() == Ok("1")
}

fn shared_env(with_node: bool) -> &'static TestEnv {
    static ENV: OnceLock<Result<TestEnv, String>> = OnceLock::new();
    let started = ENV.get_or_init(|| {
        let with_node = with_node || node_mode_requested();
        if with_node {
            // Before anything starts: one line naming what is missing.
            node::preflight().map_err(|e| format!("{e:#}"))?;
        }
        start_cluster(&run_dir().join("cp"), kms().clone(), with_node).map_err(|e| format!("{e:#}"))
    });
    match started {
        Ok(e) if with_node && e.node.is_none() => panic!(
            "this test binary's control plane was started without a node: call \
             signet_testenv::node_env() first (or set SIGNET_TESTENV_NODE=1)"
        ),
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    }
}

struct Pki {
    ca_pem: String,
    ca_key_pem: String,
    serving_cert: String,
    serving_key: String,
    admin_cert: String,
    admin_key: String,
    kubelet_client_cert: String,
    kubelet_client_key: String,
    sa_key: String,
    sa_pub: String,
}

fn make_pki() -> Result<Pki> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let now = time_now();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "signet-testenv-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(30);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.not_before = now - time::Duration::hours(1);
    serving.not_after = now + time::Duration::days(30);
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let (admin_cert, admin_key) = client_cert(&issuer, "signet-test-admin", &["system:masters"])?;
    // The API server's identity towards kubelets (logs, exec) in node mode.
    let (kubelet_client_cert, kubelet_client_key) = client_cert(
        &issuer,
        "kube-apiserver-kubelet-client",
        &["system:masters"],
    )?;

    let sa = KeyPair::generate()?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        serving_cert: serving_cert.pem(),
        serving_key: serving_key.serialize_pem(),
        admin_cert,
        admin_key,
        kubelet_client_cert,
        kubelet_client_key,
        sa_key: sa.serialize_pem(),
        sa_pub: sa.public_key_pem(),
    })
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn client_cert<S: rcgen::SigningKey>(
    issuer: &rcgen::Issuer<'_, S>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String)> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let now = time_now();
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, user);
    for g in groups {
        p.distinguished_name.push(DnType::OrganizationName, *g);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(30);
    let cert = p.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Starts etcd and kube-apiserver in `dir`, pairs them with `kms`, and
/// installs the CRDs. (Only the shared [`env()`] honours
/// `SIGNET_TESTENV_NODE`: one node per test binary.)
pub fn start_control_plane(dir: &Path, kms: KmsEnv) -> Result<TestEnv> {
    start_cluster(dir, kms, false)
}

/// [`start_control_plane`], with a [`node::Node`] when `with_node`.
pub fn start_cluster(dir: &Path, kms: KmsEnv, with_node: bool) -> Result<TestEnv> {
    // Fail fast, with the setup command, before starting anything.
    for b in ["etcd", "kube-apiserver", "kubectl", "local-kms"] {
        bin(b)?;
    }
    if with_node {
        node::preflight()?;
    }
    fs::create_dir_all(dir)?;
    let pki = make_pki()?;
    let f = |n: &str| dir.join(n);
    write(&f("ca.crt"), &pki.ca_pem)?;
    write(&f("ca.key"), &pki.ca_key_pem)?;
    write(&f("serving.crt"), &pki.serving_cert)?;
    write(&f("serving.key"), &pki.serving_key)?;
    write(&f("sa.key"), &pki.sa_key)?;
    write(&f("sa.pub"), &pki.sa_pub)?;
    write(&f("kubelet-client.crt"), &pki.kubelet_client_cert)?;
    write(&f("kubelet-client.key"), &pki.kubelet_client_key)?;

    let (etcd_pid, etcd_port) = start_etcd(dir)?;
    let (apiserver_pid, port, apiserver_log) = start_apiserver(dir, etcd_port, &pki, with_node)?;
    let server = format!("https://127.0.0.1:{port}");
    let kubeconfig = f("kubeconfig");
    let mut env = TestEnv {
        kubeconfig,
        server,
        kms,
        ca_pem: pki.ca_pem,
        dir: dir.to_path_buf(),
        ca_key_pem: pki.ca_key_pem,
        apiserver_pid,
        apiserver_log,
        etcd_pid,
        node: None,
    };
    env.wait_apiserver_ready()?;
    env.install_crds()?;
    if with_node {
        env.node = Some(node::start(&env)?);
    }
    Ok(env)
}

fn start_etcd(dir: &Path) -> Result<(u32, u16)> {
    let mut last = None;
    for attempt in 0..3 {
        let (client, peer) = (free_port(), free_port());
        let data = dir.join(format!("etcd-data-{attempt}"));
        let log = dir.join(format!("etcd-{attempt}.log"));
        let mut cmd = Command::new(bin("etcd")?);
        cmd.arg("--name=signet-test")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!(
                "--initial-cluster=signet-test=http://127.0.0.1:{peer}"
            ))
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        let pid = spawn("etcd", cmd, &log)?;
        match wait_ready("etcd", pid, &log, || {
            http_get(client, "/health").is_some_and(|(s, b)| s == 200 && b.contains("true"))
        }) {
            Ok(()) => return Ok((pid, client)),
            Err(e) => {
                kill(pid);
                // A port taken between our probe and etcd's bind: try others.
                if tail(&log, 50).contains("address already in use") {
                    last = Some(e);
                    continue;
                }
                return Err(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("etcd did not start")))
}

fn start_apiserver(
    dir: &Path,
    etcd_port: u16,
    pki: &Pki,
    with_node: bool,
) -> Result<(u32, u16, PathBuf)> {
    let f = |n: &str| dir.join(n).display().to_string();
    let mut last = None;
    for attempt in 0..3 {
        let port = free_port();
        let log = dir.join(format!("kube-apiserver-{attempt}.log"));
        let mut cmd = Command::new(bin("kube-apiserver")?);
        cmd.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--etcd-prefix=/signet-{attempt}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            // No kube-controller-manager or Service network here: do not
            // reconcile the `kubernetes` Endpoints (it rejects loopback).
            .arg("--endpoint-reconciler-type=none")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", f("apiserver-certs")))
            .arg(format!("--tls-cert-file={}", f("serving.crt")))
            .arg(format!("--tls-private-key-file={}", f("serving.key")))
            .arg(format!("--client-ca-file={}", f("ca.crt")))
            .arg(format!("--service-account-key-file={}", f("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                f("sa.key")
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg("--api-audiences=https://kubernetes.default.svc")
            .arg(format!(
                "--kubelet-client-certificate={}",
                f("kubelet-client.crt")
            ))
            .arg(format!("--kubelet-client-key={}", f("kubelet-client.key")))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--allow-privileged=true")
            .arg("--enable-priority-and-fairness=false")
            .arg("--profiling=false")
            .arg("--v=0");
        if with_node {
            // Pods get their ServiceAccount token (the controller manager
            // creates the accounts), and kubelet is a restricted node.
            cmd.arg("--authorization-mode=Node,RBAC")
                .arg("--enable-admission-plugins=NodeRestriction");
        } else {
            // No controller manager: no `default` ServiceAccounts to admit
            // pods with.
            cmd.arg("--authorization-mode=RBAC")
                .arg("--disable-admission-plugins=ServiceAccount");
        }
        let pid = spawn("kube-apiserver", cmd, &log)?;
        let kubectl = bin("kubectl")?;
        let kubeconfig = dir.join("kubeconfig");
        write(
            &kubeconfig,
            &kubeconfig_yaml(
                &format!("https://127.0.0.1:{port}"),
                &pki.ca_pem,
                &pki.admin_cert,
                &pki.admin_key,
            ),
        )?;
        let ready = wait_ready("kube-apiserver", pid, &log, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && Command::new(&kubectl)
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "--raw=/livez"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        match ready {
            Ok(()) => return Ok((pid, port, log)),
            Err(e) => {
                kill(pid);
                if tail(&log, 50).contains("address already in use") {
                    last = Some(e);
                    continue;
                }
                return Err(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("kube-apiserver did not start")))
}

fn kubeconfig_yaml(server: &str, ca: &str, cert: &str, key: &str) -> String {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: signet-test\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: signet-test\n  context:\n    cluster: signet-test\n    user: admin\ncurrent-context: signet-test\n",
        b(ca),
        b(cert),
        b(key)
    )
}

/// Output of a finished command, with a readable error on failure.
fn run_checked(mut cmd: Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} {:?} failed ({}):\n{}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl TestEnv {
    /// The node (node mode only; panics otherwise, naming [`node_env()`]).
    pub fn node(&self) -> &node::Node {
        self.node.as_ref().unwrap_or_else(|| {
            panic!("this control plane has no node: use signet_testenv::node_env()")
        })
    }

    /// The API server's port (for in-cluster clients on the host network,
    /// via KUBERNETES_SERVICE_HOST/PORT).
    pub fn apiserver_port(&self) -> u16 {
        self.server
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server URL ends with a port")
    }

    /// A `kubectl` command bound to this environment's kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(require_bin("kubectl"));
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }

    /// Runs kubectl with `args`; returns stdout or an error with stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let mut c = self.kubectl();
        c.args(args);
        run_checked(c)
    }

    /// A `helm` command bound to this environment's kubeconfig.
    pub fn helm(&self) -> Command {
        let mut c = Command::new(require_bin("helm"));
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"));
        c
    }

    fn wait_apiserver_ready(&self) -> Result<()> {
        let start = Instant::now();
        let log = self.apiserver_log.clone();
        loop {
            let ok = self
                .kubectl()
                .args(["get", "--raw=/readyz"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            // The default namespace is created by a post-start hook shortly
            // after /readyz; tests expect it.
            if ok
                && self
                    .kubectl()
                    .args(["get", "namespace", "default", "-o", "name"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            {
                return Ok(());
            }
            if !alive(self.apiserver_pid) {
                bail!(
                    "kube-apiserver exited during startup; last lines of {}:\n{}",
                    log.display(),
                    tail(&log, 30)
                );
            }
            if start.elapsed() > READY_TIMEOUT {
                bail!(
                    "kube-apiserver /readyz not ok after {}s; last lines:\n{}",
                    READY_TIMEOUT.as_secs(),
                    tail(&log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Applies every YAML file in `crds/` and waits until each CRD is
    /// Established. A repository without CRDs yet is fine.
    pub fn install_crds(&self) -> Result<()> {
        let dir = repo_root().join("crds");
        let files: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                    .collect()
            })
            .unwrap_or_default();
        if files.is_empty() {
            return Ok(());
        }
        for file in &files {
            self.kubectl_ok(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &file.display().to_string(),
            ])?;
        }
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])?;
        Ok(())
    }

    /// A fresh `kube::Client` for the calling test's runtime.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("reading kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig is valid");
        kube::Client::try_from(cfg).expect("building the kube client")
    }

    /// A kubeconfig for another identity, with a client certificate signed by
    /// the cluster CA (CN = user, O = groups). Used to test RBAC.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let key = rcgen::KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.ca_pem, key)?;
        let (cert, key) = client_cert(&issuer, user, groups)?;
        let safe: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = self.dir.join(format!("kubeconfig-{safe}"));
        write(
            &path,
            &kubeconfig_yaml(&self.server, &self.ca_pem, &cert, &key),
        )?;
        Ok(path)
    }

    /// Creates a fresh namespace `<prefix>-<n>`; it is deleted when the guard
    /// drops unless `SIGNET_TEST_KEEP=1`.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id() % 100_000);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"signet.dev/test": "true"}}
        }))
        .expect("namespace json");
        let api: Api<Namespace> = Api::all(self.client().await);
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace {
            name,
            kubeconfig: self.kubeconfig.clone(),
        }
    }

    /// Environment variables that point a child process (the operator, the
    /// CLI, kubectl) at this environment.
    pub fn child_env(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        m.insert("KUBECONFIG", self.kubeconfig.display().to_string());
        m.insert("SIGNET_KMS_ENDPOINT", self.kms.endpoint.clone());
        m.insert("AWS_REGION", self.kms.region.clone());
        m.insert("AWS_ACCESS_KEY_ID", KMS_ACCESS_KEY_ID.to_string());
        m.insert("AWS_SECRET_ACCESS_KEY", KMS_SECRET_ACCESS_KEY.to_string());
        m
    }
}

/// A namespace that lives as long as the guard.
#[derive(Debug)]
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var("SIGNET_TEST_KEEP").as_deref() == Ok("1") {
            eprintln!("SIGNET_TEST_KEEP=1: keeping namespace {}", self.name);
            return;
        }
        if let Ok(kubectl) = bin("kubectl") {
            let _ = Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", "namespace", &self.name, "--wait=false"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Long-lived mode for humans (`hack/testenv.sh up [--node]`): starts
/// everything in `state` (a node too when `with_node`), writes `state/env`
/// with the exports, and blocks until killed.
pub fn serve(state: &Path, with_node: bool) -> Result<()> {
    let kms = start_kms(&state.join("kms"))?;
    let env = start_cluster(&state.join("cp"), kms, with_node || node_mode_requested())?;
    let mut exports = String::new();
    exports.push_str(&format!("export KUBECONFIG={}\n", env.kubeconfig.display()));
    exports.push_str(&format!(
        "export SIGNET_KMS_ENDPOINT={}\n",
        env.kms.endpoint
    ));
    exports.push_str(&format!("export AWS_REGION={}\n", env.kms.region));
    exports.push_str(&format!("export AWS_ACCESS_KEY_ID={KMS_ACCESS_KEY_ID}\n"));
    exports.push_str(&format!(
        "export AWS_SECRET_ACCESS_KEY={KMS_SECRET_ACCESS_KEY}\n"
    ));
    exports.push_str(&format!("export PATH={}:$PATH\n", bin_dir()?.display()));
    if let Some(node) = &env.node {
        // `ctr images import` (the node's images live in namespace k8s.io).
        exports.push_str(&format!(
            "export CONTAINERD_ADDRESS={}\nexport CONTAINERD_NAMESPACE=k8s.io\n",
            node.containerd_address.display()
        ));
    }
    let tmp = state.join("env.tmp");
    write(&tmp, &exports)?;
    fs::rename(&tmp, state.join("env"))?;
    eprintln!("test environment ready:\n{exports}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
