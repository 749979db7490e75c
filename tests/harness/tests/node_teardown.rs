//! Node mode is torn down with the rest, however the harness dies: after a
//! SIGKILL of `signet-testenv serve --node` no process of the run is left,
//! the containers of the node's pods are gone with their cgroups, and the
//! host's kernel settings were never changed.
//!
//! Needs what node mode needs (root, `make testenv`); otherwise it fails at
//! once with the harness's one-line message.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sysctl(key: &str) -> String {
    std::fs::read_to_string(Path::new("/proc/sys").join(key)).unwrap_or_default()
}

#[test]
fn killing_the_harness_in_node_mode_leaves_no_process_container_or_cgroup_behind() {
    // The one-line reason, when this host cannot run a node.
    if let Err(e) = signet_testenv::node::preflight() {
        panic!("{e:#}");
    }
    let host_sysctls: Vec<String> = [
        "vm/overcommit_memory",
        "kernel/panic",
        "kernel/panic_on_oops",
    ]
    .iter()
    .map(|k| sysctl(k))
    .collect();
    let state = signet_testenv::run_dir().join("node-teardown");
    std::fs::create_dir_all(&state).unwrap();
    let log = state.with_extension("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_signet-testenv"))
        .args(["serve", "--state"])
        .arg(&state)
        .arg("--node")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !state.join("env").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "harness exited early:\n{}",
            signet_testenv::tail(&log, 20)
        );
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "node mode did not come up:\n{}",
            signet_testenv::tail(&log, 20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A pod on the node: a containerd shim and a container outside the
    // harness's process tree.
    let kubectl = signet_testenv::require_bin("kubectl");
    let kubeconfig = state.join("cp/kubeconfig");
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"teardown","namespace":"default"},
        "spec":{"hostNetwork":true,"containers":[{"name":"c","image":"localhost/pause:3.10","imagePullPolicy":"Never"}]}}"#;
    let pod_file = state.join("pod.json");
    std::fs::write(&pod_file, pod).unwrap();
    let start = Instant::now();
    loop {
        // Until the `default` ServiceAccount exists, admission refuses pods.
        let applied = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["apply", "-f"])
            .arg(&pod_file)
            .output()
            .unwrap();
        let phase = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "pod", "teardown", "-o", "jsonpath={.status.phase}"])
            .output()
            .unwrap();
        if applied.status.success() && phase.stdout == b"Running" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "pod not running: {}{}",
            String::from_utf8_lossy(&applied.stderr),
            String::from_utf8_lossy(&phase.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let tasks = state.join("cp/node/containerd/state/io.containerd.runtime.v2.task/k8s.io");
    let ids: Vec<String> = std::fs::read_dir(&tasks)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(ids.len(), 2, "the pod's sandbox and container: {ids:?}");
    let cgroups = |id: &str| -> Vec<String> {
        ["pids", "memory", "unified"]
            .iter()
            .map(|c| format!("/sys/fs/cgroup/{c}/k8s.io/{id}"))
            .chain(std::iter::once(format!("/sys/fs/cgroup/k8s.io/{id}")))
            .filter(|p| Path::new(p).is_dir())
            .collect()
    };
    assert!(
        ids.iter().all(|id| !cgroups(id).is_empty()),
        "the containers run in cgroups /k8s.io/<id>"
    );
    let marker = state.display().to_string();
    assert!(pgrep(&marker) >= 8, "control plane, node and shims run");

    // The harshest exit: SIGKILL, no destructor or signal handler runs.
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    loop {
        let left: Vec<String> = ids.iter().flat_map(|id| cgroups(id)).collect();
        if pgrep(&marker) == 0 && left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left behind after SIGKILL: {} processes, cgroups {left:?}",
            pgrep(&marker)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after: Vec<String> = [
        "vm/overcommit_memory",
        "kernel/panic",
        "kernel/panic_on_oops",
    ]
    .iter()
    .map(|k| sysctl(k))
    .collect();
    assert_eq!(
        after, host_sysctls,
        "the host's kernel settings are unchanged"
    );
}

fn pgrep(pattern: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", "--", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}
