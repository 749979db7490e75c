//! The test node (opt-in): containerd + runc from Debian, and kubelet,
//! kube-scheduler and kube-controller-manager from the pinned Kubernetes
//! module, registered with the test API server as the node `127.0.0.1`.
//!
//! [`crate::node_env()`] (or `SIGNET_TESTENV_NODE=1` with [`crate::env()`])
//! starts it with the shared control plane. How it fits this sandbox:
//!
//! * **Namespaces.** containerd and kubelet run in one private mount + PID
//!   namespace whose init is the `pause` binary. Every mount they make
//!   (overlay root filesystems, tmpfs volumes, bind-mounted local volumes)
//!   exists only there, and when that init dies the kernel kills every
//!   process of the namespace, containers and shims included — so the
//!   watchdog's sweep (which finds the init by the run token in its
//!   environment) tears the node down even after a SIGKILL of the test binary.
//! * **Kernel settings.** kubelet insists on vm.overcommit_memory=1,
//!   kernel.panic=10, kernel.panic_on_oops=1, ... and would write them
//!   host-wide. In the node's namespace those `/proc/sys` files are
//!   bind-mounted over with files holding the expected values, so the host's
//!   settings stay as they are.
//! * **Cgroups.** cgroupfs driver, no QoS hierarchy (`cgroupsPerQOS: false`,
//!   `enforceNodeAllocatable: []`) and `failCgroupV1: false`, so it runs on
//!   cgroup v1 (this sandbox) and v2. Root here lacks CAP_SYS_RESOURCE, so
//!   containerd restricts `oom_score_adj` to its own. runc puts containers in
//!   `/k8s.io/<container id>`; the watchdog removes those cgroups of this
//!   node's containers after the sweep.
//! * **Network.** No CNI: pods must use `hostNetwork: true`. containerd gets
//!   a placeholder CNI network `host-network-only` (no plugin binaries) so
//!   the node reports Ready; a pod without host networking fails at sandbox
//!   creation with an event naming that network. The node's name and
//!   InternalIP are `127.0.0.1` (kubelet refuses a loopback `--node-ip` but
//!   takes an IP as `--hostname-override`), so host-network pods get pod IP
//!   127.0.0.1 and their probes stay on loopback. kubelet, containerd's
//!   streaming server, the scheduler and the controller manager bind
//!   127.0.0.1 on kernel-chosen or free ports.
//! * **Images.** No registry: the sandbox image `localhost/pause:3.10` is
//!   built by `hack/image.sh pause` and imported with
//!   `ctr -n k8s.io images import`; tests import theirs the same way
//!   ([`Node::import_image`], [`signet_image`]) and use
//!   `imagePullPolicy: Never`.
//! * **Storage.** No provisioner: [`Node::local_volume`] creates a `local`
//!   PersistentVolume in a folder of the node, pre-bound to one claim;
//!   kubelet applies the pod's `fsGroup` to it.
//! * **Controllers.** kube-controller-manager runs only what pods of a Helm
//!   release need: Deployments, ReplicaSets, ServiceAccounts and the
//!   `kube-root-ca.crt` ConfigMap, the garbage collector, namespaces,
//!   PersistentVolume binding/protection and node lifecycle (the not-ready
//!   taint).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use crate::{TestEnv, alive, bin, free_port, kill, repo_root, run_checked, spawn, tail, write};

/// The node's name (and its InternalIP, which pods on it report).
pub const NODE_NAME: &str = "127.0.0.1";
/// The sandbox image containerd is configured with.
pub const PAUSE_IMAGE: &str = "localhost/pause:3.10";
/// How long kubelet may take to report the node Ready.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The command that installs what the node needs from Debian.
const NODE_PACKAGES: &str = "`make testenv` (it runs `apt-get install -y containerd runc`)";

/// Values kubelet checks (and would otherwise write host-wide), from
/// `k8s.io/component-helpers/node/util/sysctl`.
const KUBELET_SYSCTLS: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
];

/// The kube-controller-manager controllers the node runs.
const CONTROLLERS: &[&str] = &[
    "deployment-controller",
    "replicaset-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    // Lifts the node.kubernetes.io/not-ready taint the API server puts on a
    // new Node once kubelet reports Ready.
    "node-lifecycle-controller",
];

/// A running test node.
#[derive(Debug)]
pub struct Node {
    /// The Node object's name (`127.0.0.1`).
    pub name: String,
    /// Where its state, configuration and logs live.
    pub dir: PathBuf,
    /// containerd's socket (`ctr --address`, `CONTAINERD_ADDRESS`).
    pub containerd_address: PathBuf,
    /// containerd's log.
    pub containerd_log: PathBuf,
    /// kubelet's log.
    pub kubelet_log: PathBuf,
    /// kubelet's pod log folder (`<namespace>_<pod>_<uid>/<container>/N.log`).
    pub pod_logs: PathBuf,
    /// The process (`unshare`) holding the node's namespaces.
    holder_pid: u32,
}

// ---------------------------------------------------------------------------
// Preflight: one line naming what is missing and the command that sets it up
// ---------------------------------------------------------------------------

/// What the node needs from the host, as observed.
#[derive(Debug, Clone)]
pub(crate) struct HostFacts {
    /// Effective UID 0.
    pub root: bool,
    /// Host programs that were not found on PATH.
    pub missing_programs: Vec<&'static str>,
    /// Contents of /proc/filesystems.
    pub filesystems: String,
    /// A cgroup filesystem (v1 or v2) is mounted at /sys/fs/cgroup.
    pub cgroups: bool,
}

/// Host programs the node runs, and the package each comes from.
const HOST_PROGRAMS: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("mount", "mount"),
];

impl HostFacts {
    fn probe() -> HostFacts {
        let root = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
            })
            .unwrap_or(false);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let missing_programs = HOST_PROGRAMS
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !std::env::split_paths(&path).any(|d| d.join(p).is_file()))
            .collect();
        HostFacts {
            root,
            missing_programs,
            filesystems: fs::read_to_string("/proc/filesystems").unwrap_or_default(),
            cgroups: Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
                || Path::new("/sys/fs/cgroup/memory").is_dir(),
        }
    }
}

/// The first thing the host lacks for a node, as one line naming the
/// command that sets it up.
pub(crate) fn check_host(facts: &HostFacts) -> Result<(), String> {
    if !facts.root {
        return Err(
            "signet test node: needs root (kubelet, containerd and runc manage mounts, \
             namespaces and cgroups): run the node tests as root, e.g. \
             `sudo -E cargo test --release --test node`"
                .to_string(),
        );
    }
    if let Some(p) = facts.missing_programs.first() {
        let package = HOST_PROGRAMS
            .iter()
            .find(|(name, _)| name == p)
            .map(|(_, pkg)| *pkg)
            .unwrap_or("containerd");
        let fix = match package {
            "containerd" | "runc" => NODE_PACKAGES.to_string(),
            other => format!("`apt-get install -y {other}`"),
        };
        return Err(format!(
            "signet test node: `{p}` (Debian package {package}) not found on PATH: run {fix}"
        ));
    }
    if !facts
        .filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Err(
            "signet test node: the kernel has no overlay filesystem (containerd's \
             snapshotter): run `modprobe overlay`"
                .to_string(),
        );
    }
    if !facts.cgroups {
        return Err(
            "signet test node: no cgroup filesystem at /sys/fs/cgroup: run \
             `mount -t cgroup2 none /sys/fs/cgroup`"
                .to_string(),
        );
    }
    Ok(())
}

/// Checks everything the node needs before anything starts.
pub fn preflight() -> Result<()> {
    for b in [
        "kubelet",
        "kube-scheduler",
        "kube-controller-manager",
        "pause",
    ] {
        bin(b)?;
    }
    check_host(&HostFacts::probe()).map_err(|e| anyhow!(e))
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

/// Starts the node's components against the running control plane `env`.
pub(crate) fn start(env: &TestEnv) -> Result<Node> {
    preflight()?;
    let dir = env.dir.join("node");
    fs::create_dir_all(&dir)?;
    let holder_pid = start_holder(&dir)?;
    let containerd_address = dir.join("containerd/containerd.sock");
    let containerd_log = start_containerd(&dir, holder_pid, &containerd_address)?;
    let pause_tar = dir.join("pause-image.tar");
    run_checked({
        let mut c = Command::new("bash");
        c.arg(repo_root().join("hack/image.sh"))
            .args(["pause", "--binary"])
            .arg(bin("pause")?)
            .arg("--out")
            .arg(&pause_tar);
        c
    })
    .context("signet test node: building the pause image (hack/image.sh pause)")?;
    let node = Node {
        name: NODE_NAME.to_string(),
        dir: dir.clone(),
        containerd_address,
        containerd_log,
        kubelet_log: PathBuf::new(),
        pod_logs: dir.join("pod-logs"),
        holder_pid,
    };
    node.import_image(&pause_tar)?;
    start_scheduler(env, &dir)?;
    start_controller_manager(env, &dir)?;
    let kubelet_log = start_kubelet(env, &node)?;
    Ok(Node {
        kubelet_log,
        ..node
    })
}

/// The program `exe` run inside the node's mount and PID namespaces.
fn in_node(holder_pid: u32, exe: &Path) -> Result<Command> {
    // The holder is our own unreaped child, so its pid still names it.
    if !alive(holder_pid) {
        bail!("signet test node: the node's namespace holder exited");
    }
    let mut c = Command::new("nsenter");
    c.arg(format!("--mount=/proc/{holder_pid}/ns/mnt"))
        .arg(format!("--pid=/proc/{holder_pid}/ns/pid_for_children"))
        .arg("--")
        .arg(exe);
    Ok(c)
}

/// Starts the namespace holder: `unshare` a private mount + PID namespace,
/// mask the kernel settings kubelet checks, give containerd and kubelet
/// private tmpfs for their fixed paths, then exec `pause` as the init.
fn start_holder(dir: &Path) -> Result<u32> {
    let sysctls = dir.join("sysctl");
    fs::create_dir_all(&sysctls)?;
    let ready = dir.join("namespace.ready");
    let mut script = String::from("set -e\n");
    for (key, value) in KUBELET_SYSCTLS {
        let file = sysctls.join(key.replace('/', "."));
        write(&file, &format!("{value}\n"))?;
        script.push_str(&format!(
            "mount --bind '{}' /proc/sys/{key}\n",
            file.display()
        ));
    }
    // Fixed paths: containerd's shim sockets and runc state, kubelet's
    // container log symlinks. Created on the host if absent (empty folders).
    script.push_str("mkdir -p /run/containerd /var/log/containers\n");
    script.push_str("mount -t tmpfs -o mode=0711 signet-testenv /run/containerd\n");
    script.push_str("mount -t tmpfs -o mode=0755 signet-testenv /var/log/containers\n");
    script.push_str(&format!(
        ": > '{}'\nexec '{}' '{}'\n",
        ready.display(),
        bin("pause")?.display(),
        dir.display()
    ));
    let log = dir.join("namespace.log");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let pid = spawn("node namespace", cmd, &log)?;
    let start = Instant::now();
    while !ready.exists() {
        if !alive(pid) || start.elapsed() > Duration::from_secs(10) {
            kill(pid);
            bail!(
                "signet test node: cannot create the node's mount+PID namespace ({}): the node \
                 needs root on a host that allows namespaces and mounts",
                first_line(&tail(&log, 5))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pid)
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_string()
}

fn containerd_config(dir: &Path, address: &Path) -> String {
    let d = |p: &str| dir.join(p).display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{address}"
[ttrpc]
  address = "{address}.ttrpc"
[debug]
  address = "{debug}"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        address = address.display(),
        debug = d("containerd/debug.sock"),
        opt = d("containerd/opt"),
        cni_bin = d("cni/bin"),
        cni_conf = d("cni/net.d"),
    )
}

fn start_containerd(dir: &Path, holder_pid: u32, address: &Path) -> Result<PathBuf> {
    for sub in ["containerd", "cni/bin", "cni/net.d"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    // A network without plugins: enough for the runtime to report its
    // network ready; only host-network pods can run (see the module docs).
    write(
        &dir.join("cni/net.d/10-host-network-only.conflist"),
        r#"{"cniVersion":"1.0.0","name":"host-network-only","plugins":[{"type":"loopback"}]}"#,
    )?;
    let config = dir.join("containerd/config.toml");
    write(&config, &containerd_config(dir, address))?;
    // The watchdog removes the cgroups runc made for this node's containers
    // (containerd keeps one state folder per task).
    // (Processes still exiting after the sweep keep a cgroup busy: retry.)
    write(
        &crate::watchdog_dir().join("cleanup-node-cgroups.sh"),
        &format!(
            r#"ids=$(ls '{}' 2>/dev/null)
for _ in 1 2 3 4 5 6 7 8 9 10; do
  left=
  for id in $ids; do for d in /sys/fs/cgroup/*/k8s.io/$id /sys/fs/cgroup/k8s.io/$id; do
    if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || left=1; fi
  done; done
  [ -z "$left" ] && break
  sleep 0.5
done
"#,
            dir.join("containerd/state/io.containerd.runtime.v2.task/k8s.io")
                .display()
        ),
    )?;
    let log = dir.join("containerd.log");
    let mut cmd = in_node(holder_pid, Path::new("containerd"))?;
    cmd.arg("--config").arg(&config);
    let pid = spawn("containerd", cmd, &log)?;
    let start = Instant::now();
    loop {
        let plugins = Command::new("ctr")
            .arg("--address")
            .arg(address)
            .args(["plugins", "ls"])
            .output();
        if let Ok(out) = plugins
            && out.status.success()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            let cri = text
                .lines()
                .find(|l| l.starts_with("io.containerd.grpc.v1") && l.contains(" cri "));
            match cri {
                Some(l) if l.trim_end().ends_with("ok") => return Ok(log),
                Some(_) => {
                    kill(pid);
                    let why = fs::read_to_string(&log)
                        .unwrap_or_default()
                        .lines()
                        .find(|l| l.contains("failed to load plugin io.containerd.grpc.v1.cri"))
                        .map(str::to_string)
                        .unwrap_or_else(|| tail(&log, 5));
                    bail!("signet test node: containerd's CRI plugin did not load: {why}");
                }
                None => {}
            }
        }
        if !alive(pid) {
            bail!(
                "signet test node: containerd exited during startup: {}",
                first_line(&tail(&log, 3))
            );
        }
        if start.elapsed() > crate::READY_TIMEOUT {
            kill(pid);
            bail!(
                "signet test node: containerd not ready in {}s; last lines of {}:\n{}",
                crate::READY_TIMEOUT.as_secs(),
                log.display(),
                tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Starts `name` with a fresh loopback port from `cmd(port)`, retrying
/// when the port was taken between our probe and the bind. Returns the log.
fn start_on_free_port(
    dir: &Path,
    name: &str,
    mut cmd: impl FnMut(u16) -> Result<Command>,
    settle: Duration,
) -> Result<PathBuf> {
    let mut last = String::new();
    for attempt in 0..3 {
        let log = dir.join(format!("{name}-{attempt}.log"));
        let pid = spawn(name, cmd(free_port())?, &log)?;
        let start = Instant::now();
        while start.elapsed() < settle && alive(pid) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(pid) {
            return Ok(log);
        }
        last = tail(&log, 20);
        if !last.contains("address already in use") {
            break;
        }
    }
    bail!("signet test node: {name} exited during startup:\n{last}")
}

fn start_scheduler(env: &TestEnv, dir: &Path) -> Result<PathBuf> {
    let kubeconfig = env.kubeconfig_for("system:kube-scheduler", &[])?;
    start_on_free_port(
        dir,
        "kube-scheduler",
        |port| {
            let mut c = Command::new(bin("kube-scheduler")?);
            c.arg(format!("--kubeconfig={}", kubeconfig.display()))
                .arg(format!(
                    "--authentication-kubeconfig={}",
                    kubeconfig.display()
                ))
                .arg(format!(
                    "--authorization-kubeconfig={}",
                    kubeconfig.display()
                ))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={port}"))
                .arg(format!(
                    "--cert-dir={}",
                    dir.join("kube-scheduler-certs").display()
                ))
                .arg("--leader-elect=false")
                .arg("--v=1");
            Ok(c)
        },
        Duration::from_secs(2),
    )
}

fn start_controller_manager(env: &TestEnv, dir: &Path) -> Result<PathBuf> {
    let kubeconfig = env.kubeconfig_for("system:kube-controller-manager", &[])?;
    start_on_free_port(
        dir,
        "kube-controller-manager",
        |port| {
            let mut c = Command::new(bin("kube-controller-manager")?);
            c.arg(format!("--kubeconfig={}", kubeconfig.display()))
                .arg(format!(
                    "--authentication-kubeconfig={}",
                    kubeconfig.display()
                ))
                .arg(format!(
                    "--authorization-kubeconfig={}",
                    kubeconfig.display()
                ))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={port}"))
                .arg(format!(
                    "--cert-dir={}",
                    dir.join("kube-controller-manager-certs").display()
                ))
                .arg("--leader-elect=false")
                // Each controller acts as its own ServiceAccount (the
                // bootstrap RBAC roles), as in a real cluster.
                .arg("--use-service-account-credentials=true")
                .arg(format!("--controllers={}", CONTROLLERS.join(",")))
                .arg(format!(
                    "--root-ca-file={}",
                    env.dir.join("ca.crt").display()
                ))
                .arg("--v=1");
            Ok(c)
        },
        Duration::from_secs(2),
    )
}

fn kubelet_config(env: &TestEnv, node: &Node, port: u16) -> String {
    let d = |p: &str| node.dir.join(p).display().to_string();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: "{ca}"}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: "unix://{containerd}"
podLogsDir: "{pod_logs}"
volumePluginDir: "{plugins}"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}}
maxPods: 16
serializeImagePulls: false
"#,
        ca = env.dir.join("ca.crt").display(),
        containerd = node.containerd_address.display(),
        pod_logs = node.pod_logs.display(),
        plugins = d("kubelet-volume-plugins"),
    )
}

fn start_kubelet(env: &TestEnv, node: &Node) -> Result<PathBuf> {
    let kubeconfig =
        env.kubeconfig_for(&format!("system:node:{}", node.name), &["system:nodes"])?;
    let log = start_on_free_port(
        &node.dir,
        "kubelet",
        |port| {
            let config = node.dir.join("kubelet.yaml");
            write(&config, &kubelet_config(env, node, port))?;
            let mut c = in_node(node.holder_pid, &bin("kubelet")?)?;
            c.arg(format!("--config={}", config.display()))
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .arg(format!("--root-dir={}", node.dir.join("kubelet").display()))
                .arg(format!("--hostname-override={}", node.name))
                .arg("--v=1");
            Ok(c)
        },
        Duration::from_secs(1),
    )?;
    let start = Instant::now();
    loop {
        let ready = env
            .kubectl_ok(&[
                "get",
                "node",
                &node.name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .unwrap_or_default();
        if ready.trim() == "True" {
            return Ok(log);
        }
        if start.elapsed() > NODE_READY_TIMEOUT {
            let conditions = env
                .kubectl_ok(&[
                    "get",
                    "node",
                    &node.name,
                    "-o",
                    "jsonpath={range .status.conditions[*]}{.type}={.status} {.message}{\"\\n\"}{end}",
                ])
                .unwrap_or_else(|e| format!("{e:#}"));
            bail!(
                "signet test node: node {} not Ready after {}s:\n{conditions}\nlast lines of {}:\n{}",
                node.name,
                NODE_READY_TIMEOUT.as_secs(),
                log.display(),
                tail(&log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

// ---------------------------------------------------------------------------
// What tests do with the node
// ---------------------------------------------------------------------------

/// An OCI image archive built by `hack/image.sh`.
#[derive(Debug, Clone)]
pub struct Image {
    /// The archive (`ctr images import` input).
    pub archive: PathBuf,
    /// Repository, e.g. `localhost/signet`.
    pub repository: String,
    /// Tag, e.g. `dev-0123456789ab`.
    pub tag: String,
}

impl Image {
    /// `repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// Builds the operator image around `binary` with `hack/image.sh signet`
/// into `out` (the archive).
pub fn signet_image(binary: &Path, out: &Path) -> Result<Image> {
    let mut c = Command::new("bash");
    c.arg(repo_root().join("hack/image.sh"))
        .args(["signet", "--binary"])
        .arg(binary)
        .arg("--out")
        .arg(out);
    let stdout = run_checked(c).context("hack/image.sh signet")?;
    let mut lines = stdout.lines();
    let archive = PathBuf::from(lines.next().unwrap_or_default());
    let reference = lines.next().unwrap_or_default();
    let (repository, tag) = reference
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("hack/image.sh printed no image reference: {stdout}"))?;
    Ok(Image {
        archive,
        repository: repository.to_string(),
        tag: tag.to_string(),
    })
}

impl Node {
    /// `ctr -n k8s.io images import` of an OCI archive into the node.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.containerd_address)
            .args(["--namespace", "k8s.io", "images", "import"])
            .arg(archive);
        run_checked(c)
            .with_context(|| format!("signet test node: importing {}", archive.display()))?;
        Ok(())
    }

    /// Creates a `local` PersistentVolume of `size` (e.g. `1Gi`) in a fresh
    /// folder of the node, pre-bound to the claim `namespace/claim`, and
    /// returns the folder. Its reclaim policy is Retain.
    pub fn local_volume(
        &self,
        env: &TestEnv,
        namespace: &str,
        claim: &str,
        size: &str,
    ) -> Result<PathBuf> {
        let name = format!("{namespace}-{claim}");
        let path = self.dir.join("volumes").join(&name);
        fs::create_dir_all(&path)?;
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"signet.dev/test": "true"}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": claim},
                "local": {"path": path.display().to_string()},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [self.name]}
                ]}]}}
            }
        });
        let file = self.dir.join(format!("pv-{name}.json"));
        write(&file, &manifest.to_string())?;
        env.kubectl_ok(&["apply", "-f", &file.display().to_string()])?;
        Ok(path)
    }

    /// The node's own logs (containerd, kubelet), last lines, for reports.
    pub fn logs_tail(&self, n: usize) -> String {
        format!(
            "----- containerd ({}) -----\n{}\n----- kubelet ({}) -----\n{}",
            self.containerd_log.display(),
            tail(&self.containerd_log, n),
            self.kubelet_log.display(),
            tail(&self.kubelet_log, n)
        )
    }
}

/// Container states that will not fix themselves: waiting for a change.
const STUCK_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Why the pods matching `selector` in `namespace` will not become ready by
/// waiting (a crash loop, an image that is not on the node, a bad config),
/// or None while they may still.
pub fn pods_stuck(env: &TestEnv, namespace: &str, selector: &str) -> Option<String> {
    let pods = env
        .kubectl_ok(&["get", "pods", "-n", namespace, "-l", selector, "-o", "json"])
        .ok()?;
    let pods: Value = serde_json::from_str(&pods).ok()?;
    for pod in pods["items"].as_array()? {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        for cs in pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let waiting = &cs["state"]["waiting"];
            let reason = waiting["reason"].as_str().unwrap_or_default();
            let restarts = cs["restartCount"].as_u64().unwrap_or(0);
            if STUCK_REASONS.contains(&reason) || restarts >= 2 {
                return Some(format!(
                    "pod {name}: container {} {} (restarts: {restarts})",
                    cs["name"].as_str().unwrap_or_default(),
                    if reason.is_empty() {
                        "keeps restarting"
                    } else {
                        reason
                    }
                ));
            }
        }
    }
    None
}

/// A readable account of the pods matching `selector` in `namespace`: their
/// phase and container states, the last lines of each container's current
/// and previous log, and the namespace's Events.
pub fn pods_report(env: &TestEnv, namespace: &str, selector: &str) -> String {
    let mut out = String::new();
    let pods = env
        .kubectl_ok(&["get", "pods", "-n", namespace, "-l", selector, "-o", "json"])
        .map_err(|e| format!("{e:#}"))
        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
    match pods {
        Err(e) => out.push_str(&format!("(cannot list pods: {e})\n")),
        Ok(pods) => {
            let items = pods["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                out.push_str(&format!("no pods match {selector} in {namespace}\n"));
            }
            for pod in items {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                out.push_str(&format!(
                    "pod {name}: phase {}\n",
                    pod["status"]["phase"].as_str().unwrap_or("?")
                ));
                for cs in pod["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let c = cs["name"].as_str().unwrap_or_default();
                    out.push_str(&format!(
                        "  container {c}: ready={} restarts={} state={} last={}\n",
                        cs["ready"], cs["restartCount"], cs["state"], cs["lastState"]
                    ));
                    for previous in [true, false] {
                        let mut args = vec!["logs", "-n", namespace, name, "-c", c, "--tail=20"];
                        if previous {
                            args.push("--previous");
                        }
                        if let Ok(log) = env.kubectl_ok(&args)
                            && !log.trim().is_empty()
                        {
                            out.push_str(&format!(
                                "  ----- log of {c}{} -----\n{}\n",
                                if previous { " (previous run)" } else { "" },
                                log.trim_end()
                            ));
                        }
                    }
                }
            }
        }
    }
    let events = env
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            namespace,
            "--sort-by=.lastTimestamp",
            "-o",
            "custom-columns=LAST:.lastTimestamp,TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message",
        ])
        .unwrap_or_else(|e| format!("(cannot list events: {e:#})"));
    let lines: Vec<&str> = events.lines().collect();
    out.push_str("----- events -----\n");
    out.push_str(&lines[lines.len().saturating_sub(25)..].join("\n"));
    out
}

/// Waits until Deployment `namespace/name` is Available with all replicas
/// updated and ready. Fails early, with [`pods_report`], when its pods are
/// stuck (crash loop, missing image, bad config) rather than only timing out.
pub fn wait_deployment_available(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    selector: &str,
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let mut stuck_since: Option<Instant> = None;
    loop {
        let dep = env
            .kubectl_ok(&["get", "deployment", "-n", namespace, name, "-o", "json"])
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if let Some(d) = &dep {
            let want = d["spec"]["replicas"].as_u64().unwrap_or(1);
            let st = &d["status"];
            let available = st["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Available" && c["status"] == "True");
            if available
                && st["observedGeneration"] == d["metadata"]["generation"]
                && st["updatedReplicas"].as_u64() == Some(want)
                && st["readyReplicas"].as_u64() == Some(want)
                && st["replicas"].as_u64() == Some(want)
            {
                return Ok(());
            }
        }
        if let Some(why) = pods_stuck(env, namespace, selector) {
            // Give a crash loop a moment to write its log, then report.
            let since = *stuck_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                return Err(format!(
                    "Deployment {namespace}/{name} will not become Available: {why}\n{}",
                    pods_report(env, namespace, selector)
                ));
            }
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "Deployment {namespace}/{name} not Available after {}s\n{}",
                timeout.as_secs(),
                pods_report(env, namespace, selector)
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> HostFacts {
        HostFacts {
            root: true,
            missing_programs: vec![],
            filesystems: "nodev\ttmpfs\nnodev\toverlay\n\text4\n".to_string(),
            cgroups: true,
        }
    }

    #[test]
    fn a_host_with_everything_passes_the_preflight() {
        assert_eq!(check_host(&good()), Ok(()));
    }

    #[test]
    fn not_being_root_is_one_line_naming_how_to_run_as_root() {
        let e = check_host(&HostFacts {
            root: false,
            ..good()
        })
        .unwrap_err();
        assert!(
            !e.contains('\n') && e.contains("needs root") && e.contains("sudo"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_containerd_names_the_setup_command_and_the_packages() {
        let e = check_host(&HostFacts {
            missing_programs: vec!["containerd"],
            ..good()
        })
        .unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("`containerd`") && e.contains("make testenv"),
            "{e}"
        );
        assert!(e.contains("apt-get install -y containerd runc"), "{e}");
    }

    #[test]
    fn a_missing_runc_names_the_same_setup_command() {
        let e = check_host(&HostFacts {
            missing_programs: vec!["runc"],
            ..good()
        })
        .unwrap_err();
        assert!(e.contains("`runc`") && e.contains("make testenv"), "{e}");
    }

    #[test]
    fn a_kernel_without_overlayfs_names_modprobe() {
        let e = check_host(&HostFacts {
            filesystems: "nodev\ttmpfs\n\text4\n".to_string(),
            ..good()
        })
        .unwrap_err();
        assert!(!e.contains('\n') && e.contains("modprobe overlay"), "{e}");
    }

    #[test]
    fn a_host_without_cgroups_names_the_mount_command() {
        let e = check_host(&HostFacts {
            cgroups: false,
            ..good()
        })
        .unwrap_err();
        assert!(e.contains("mount -t cgroup2"), "{e}");
    }
}
