//! Signet as users run it: the image built here (`hack/image.sh signet`),
//! installed with the chart onto a real kubelet + containerd (the harness's
//! node mode). This is the only place the image, the Deployment, its probes,
//! the read-only root filesystem, UID 65532 writing its database on a
//! PersistentVolume (through the chart's fsGroup), in-cluster config with the
//! chart's ServiceAccount token and `helm upgrade` are exercised.
//!
//! The node has no pod network, so the release runs with `hostNetwork: true`
//! bound to 127.0.0.1, reaches local-kms on 127.0.0.1 and the API server
//! through KUBERNETES_SERVICE_HOST/PORT (the `kubernetes` Service's cluster
//! IP has no proxy behind it here).
//!
//! Needs root and `make testenv` (which installs containerd and runc); where
//! either is missing every test here fails at once with one line saying what
//! and how to set it up.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_testenv::node::{Image, pods_report, signet_image, wait_deployment_available};
use signet_testenv::{TestEnv, node_env, repo_root, run_dir, tools};

/// How long a release may take to become Available (image already on the
/// node; a 2-core machine shared with compilers).
const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(180);

/// The operator image, built from the binary under test and imported into
/// the node once per test binary.
fn image(env: &TestEnv) -> &'static Image {
    static IMAGE: OnceLock<Result<Image, String>> = OnceLock::new();
    let built = IMAGE.get_or_init(|| {
        let started = Instant::now();
        let image = signet_image(
            Path::new(env!("CARGO_BIN_EXE_signet")),
            &run_dir().join("signet-image.tar"),
        )
        .map_err(|e| format!("{e:#}"))?;
        env.node()
            .import_image(&image.archive)
            .map_err(|e| format!("{e:#}"))?;
        eprintln!(
            "built and imported {} in {:.1}s",
            image.reference(),
            started.elapsed().as_secs_f64()
        );
        Ok(image)
    });
    match built {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Helm values for a release on the test node (JSON is YAML).
fn values(env: &TestEnv, image: &Image, port: u16, extra_env: &[(&str, &str)]) -> Value {
    let api_port = env.apiserver_port().to_string();
    let mut vars = vec![
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", api_port.as_str()),
        ("AWS_ACCESS_KEY_ID", signet_testenv::KMS_ACCESS_KEY_ID),
        (
            "AWS_SECRET_ACCESS_KEY",
            signet_testenv::KMS_SECRET_ACCESS_KEY,
        ),
    ];
    vars.extend_from_slice(extra_env);
    json!({
        "image": {"repository": image.repository, "tag": image.tag, "pullPolicy": "Never"},
        "hostNetwork": true,
        "httpBindAddress": "127.0.0.1",
        "httpPort": port,
        "pki": {"port": signet_testenv::free_port()},
        "kms": {"region": env.kms.region},
        "persistence": {"storageClass": "-"},
        // The harness installed the same policy from crds/ already.
        "admissionPolicy": {"enabled": false},
        "extraEnv": vars.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
    })
}

fn write_values(name: &str, values: &Value) -> PathBuf {
    let dir = run_dir().join("node-values");
    std::fs::create_dir_all(&dir).expect("creating the values folder");
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, values.to_string()).expect("writing values");
    path
}

/// `helm <args>` against the test cluster; panics with helm's output.
fn helm(env: &TestEnv, args: &[&str]) -> String {
    let mut c = env.helm();
    c.args(args);
    let out = c.output().expect("running helm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "helm {args:?} failed:\n{text}");
    text
}

fn chart() -> String {
    repo_root().join("charts/signet").display().to_string()
}

fn kubectl_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let text = env
        .kubectl_ok(&all)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e:#}"));
    serde_json::from_str(&text).expect("kubectl printed JSON")
}

/// Names of the pods of `selector` in `ns` that are not terminating.
fn running_pods(env: &TestEnv, ns: &str, selector: &str) -> Vec<(String, bool)> {
    let pods = kubectl_json(env, &["get", "pods", "-n", ns, "-l", selector]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ready,
            )
        })
        .collect()
}

/// Polls `f` until Some, or panics after `timeout` with `what` and the pods'
/// report (state, logs, events).
fn wait<T>(
    env: &TestEnv,
    ns: &str,
    selector: &str,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {}s waiting for {what}\n{}",
                timeout.as_secs(),
                pods_report(env, ns, selector)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn available_or_panic(env: &TestEnv, ns: &str, name: &str, selector: &str) {
    if let Err(report) = wait_deployment_available(env, ns, name, selector, AVAILABLE_TIMEOUT) {
        panic!("{report}\n{}", env.node().logs_tail(15));
    }
}

/// Pods of `selector` alive at the same time, from a `kubectl get -w` log of
/// watch events: the largest number seen at once, and the pods seen.
fn max_concurrent_pods(watch_log: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(watch_log).unwrap_or_default();
    let mut live = std::collections::BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut max = 0;
    for event in serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map_while(Result::ok)
    {
        let pod = &event["object"];
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        seen.insert(name.clone());
        if event["type"] == "DELETED" || phase == "Succeeded" || phase == "Failed" {
            live.remove(&name);
        } else {
            live.insert(name, ());
        }
        max = max.max(live.len());
    }
    (max, seen.into_iter().collect())
}

/// The image archive's config and layer listing, read back from the archive.
fn archive_facts(archive: &Path) -> (Value, String) {
    let read = |member: &str| -> Vec<u8> {
        let out = Command::new("tar")
            .arg("-xOf")
            .arg(archive)
            .arg(member)
            .output()
            .expect("running tar");
        assert!(out.status.success(), "{member} missing from the archive");
        out.stdout
    };
    let index: Value = serde_json::from_slice(&read("index.json")).unwrap();
    let digest = |d: &Value| {
        format!(
            "blobs/sha256/{}",
            d.as_str().unwrap().trim_start_matches("sha256:")
        )
    };
    let manifest: Value =
        serde_json::from_slice(&read(&digest(&index["manifests"][0]["digest"]))).unwrap();
    let config: Value =
        serde_json::from_slice(&read(&digest(&manifest["config"]["digest"]))).unwrap();
    let layer = read(&digest(&manifest["layers"][0]["digest"]));
    let layer_file = run_dir().join("signet-image-layer.tar");
    std::fs::write(&layer_file, layer).unwrap();
    let listing = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&layer_file)
        .output()
        .expect("listing the layer");
    (
        config,
        String::from_utf8_lossy(&listing.stdout).into_owned(),
    )
}

/// A consistent copy (`sqlite3 .backup`) of the database on the release's
/// volume, taken while the pod writes it.
fn audit_copy(db: &Path, ns: &str) -> PathBuf {
    let copy = run_dir().join(format!("{ns}-audit-copy.db"));
    let _ = std::fs::remove_file(&copy);
    let backup = Command::new("sqlite3")
        .arg(db)
        .arg(format!(".backup '{}'", copy.display()))
        .output()
        .expect("running sqlite3 (apt-get install sqlite3)");
    assert!(
        backup.status.success(),
        "sqlite3 .backup of {}: {}",
        db.display(),
        String::from_utf8_lossy(&backup.stderr)
    );
    copy
}

/// The audit rows about `ns` in a copy of the database.
fn audit_rows(copy: &Path, ns: &str) -> Vec<Value> {
    let list = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["audit", "--json", "--namespace", ns, "--db"])
        .arg(copy)
        .output()
        .expect("running signet audit");
    assert!(list.status.success(), "signet audit --json failed");
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("signet audit --json prints JSON lines"))
        .collect()
}

/// `signet audit verify --anchor` on a fresh copy of the volume's database.
/// The pod may write a row (and move the anchor) between the copy and the
/// check, so a failure is retried on a newer copy a few times; a broken chain
/// fails every time.
fn audit_chain_verifies(env: &TestEnv, db: &Path, ns: &str) {
    let anchor = format!("{ns}/signet-audit-anchor");
    let mut last = String::new();
    for _ in 0..5 {
        let copy = audit_copy(db, ns);
        let verify = Command::new(env!("CARGO_BIN_EXE_signet"))
            .envs(env.child_env())
            .args(["audit", "verify", "--anchor", &anchor, "--db"])
            .arg(&copy)
            .output()
            .expect("running signet audit verify");
        if verify.status.success() {
            return;
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!("signet audit verify on the volume's database failed:\n{last}");
}

/// `kubectl apply -f examples/` as a user does it, served by the pod: every
/// object becomes Ready and the issuing CA's CRL fetched from the pod's PKI
/// listener (`pki_port`) verifies against that CA.
fn examples_are_issued_and_their_crl_is_served_by_the_pod(
    env: &TestEnv,
    ns: &str,
    selector: &str,
    port: u16,
) {
    let examples = repo_root().join("examples").display().to_string();
    env.kubectl_ok(&["apply", "-f", &examples])
        .expect("applying examples/");
    for args in [
        &["certificateauthorities.signet.dev", "--all"][..],
        &["crls.signet.dev", "--all"][..],
        &["-n", "demo", "certificates.signet.dev", "--all"][..],
    ] {
        let mut all = vec!["wait", "--for=condition=Ready", "--timeout=120s"];
        all.extend_from_slice(args);
        if let Err(e) = env.kubectl_ok(&all) {
            panic!(
                "examples/ not Ready: {e:#}\n{}",
                pods_report(env, ns, selector)
            );
        }
    }
    let ca = kubectl_json(env, &["get", "certificateauthority", "example-issuing"]);
    let chain = ca["status"]["chain"]
        .as_str()
        .expect("the issuing CA's chain");
    let chain = tools::artifact("node-example-chain.pem", chain.as_bytes());
    let crl = wait(
        env,
        ns,
        selector,
        "the CRL over HTTP",
        Duration::from_secs(60),
        || http_get(port, "/crl/example-issuing.crl"),
    );
    let crl = tools::artifact("node-example-issuing.crl", &crl);
    let out = tools::openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &crl.display().to_string(),
        "-CAfile",
        &chain.display().to_string(),
        "-noout",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("verify OK"),
        "the CRL the pod serves does not verify against example-issuing: {text}"
    );
}

/// The body of a 200 answer to `GET path` on a loopback port of the pod.
fn http_get(port: u16, path: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: signet\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    (head.split_whitespace().nth(1)? == "200").then(|| buf[split + 4..].to_vec())
}

#[test]
fn the_built_image_declares_the_dockerfile_layout_and_holds_the_binary() {
    let env = node_env();
    let image = image(env);
    let (config, listing) = archive_facts(&image.archive);
    let declared: Value = serde_json::from_slice(
        &Command::new("bash")
            .arg(repo_root().join("hack/image.sh"))
            .arg("config")
            .output()
            .expect("hack/image.sh config")
            .stdout,
    )
    .unwrap();
    // tests/dockerfile.rs compares `declared` with the Dockerfile.
    assert_eq!(config["config"], declared["config"]);
    assert_eq!(config["config"]["User"], "65532:65532");
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" ./{path}")) || l.ends_with(&format!(" ./{path}/")))
            .unwrap_or_else(|| panic!("{path} is not in the layer:\n{listing}"))
            .to_string()
    };
    let binary = entry("signet");
    assert!(binary.starts_with("-rwxr-xr-x 0/0 "), "{binary}");
    assert!(entry("home/nonroot").contains(" 65532/65532 "));
    assert!(entry("tmp").starts_with("drwxrwxrwt"));
    entry("etc/ssl/certs/ca-certificates.crt");
    entry("etc/passwd");
}

#[test]
fn the_chart_runs_the_image_on_a_node_through_upgrade_pod_loss_and_uninstall() {
    let env = node_env();
    let image = image(env);
    let rt = runtime();
    let ns = rt.block_on(env.namespace("node"));
    let ns = ns.name().to_string();
    let release = "signet";
    let selector = format!("app.kubernetes.io/instance={release}");
    let volume = env
        .node()
        .local_volume(env, &ns, "signet-data", "1Gi")
        .expect("creating the database volume");

    let port = signet_testenv::free_port();
    let mut vals = values(env, image, port, &[]);
    vals["kms"]["endpoint"] = json!(env.kms.endpoint);
    let file = write_values("release", &vals);
    let file = file.display().to_string();
    let started = Instant::now();
    helm(env, &["install", release, &chart(), "-n", &ns, "-f", &file]);
    available_or_panic(env, &ns, release, &selector);
    eprintln!(
        "install → Available in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The database was written by UID 65532 on the claim's volume, whose
    // group kubelet set to the chart's fsGroup.
    let db = volume.join("signet.db");
    let meta = std::fs::metadata(&db).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\n{}",
            db.display(),
            pods_report(env, &ns, &selector)
        )
    });
    assert_eq!((meta.uid(), meta.gid()), (65532, 65532), "database owner");
    assert_eq!(std::fs::metadata(&volume).unwrap().gid(), 65532, "fsGroup");

    // A root CA and a server certificate, signed through local-kms by the
    // operator in the pod.
    let ca = common::unique("node-root");
    common::apply(env, &common::root_ca(&ca, "")).expect("applying the CA");
    common::apply(
        env,
        &common::certificate(
            &ns,
            "web",
            &ca,
            "  commonName: web.example\n  dnsNames: [web.example]\n  usages: [server auth]\n",
        ),
    )
    .expect("applying the Certificate");
    let secret = |env: &TestEnv| -> Option<(String, String)> {
        let s = env
            .kubectl_ok(&["get", "secret", "-n", &ns, "web-tls", "-o", "json"])
            .ok()?;
        let s: Value = serde_json::from_str(&s).ok()?;
        let field = |k: &str| -> Option<String> {
            use base64::Engine;
            let b = s["data"][k].as_str()?;
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).ok()?).ok()
        };
        Some((field("tls.crt")?, field("ca.crt")?))
    };
    let (leaf, ca_pem) = wait(
        env,
        &ns,
        &selector,
        "the Secret web-tls",
        Duration::from_secs(90),
        || secret(env),
    );
    tools::openssl_verify(&ca_pem, "", &leaf, Some("sslserver"))
        .unwrap_or_else(|e| panic!("openssl verify of web-tls failed: {e}"));
    let pki_port = vals["pki"]["port"].as_u64().expect("the PKI port") as u16;
    examples_are_issued_and_their_crl_is_served_by_the_pod(env, &ns, &selector, pki_port);
    let ca_obj = kubectl_json(env, &["get", "certificateauthority", &ca]);
    let key_arn = ca_obj["status"]["kmsKeyArn"]
        .as_str()
        .expect("the CA reports its KMS key")
        .to_string();

    // helm upgrade with a changed value: Recreate never runs two pods.
    let (before, _) = running_pods(env, &ns, &selector)
        .into_iter()
        .next()
        .expect("a pod before the upgrade");
    let watch_log = run_dir().join(format!("{ns}-pods-watch.json"));
    let watch = signet_testenv::spawn_supervised(
        "kubectl get pods -w",
        {
            let mut c = env.kubectl();
            c.args([
                "get",
                "pods",
                "-n",
                &ns,
                "-l",
                &selector,
                "--watch",
                "--output-watch-events",
                "-o",
                "json",
            ]);
            c
        },
        &watch_log,
    )
    .expect("watching pods");
    // The watch must have listed the current pod before the upgrade starts.
    wait(
        env,
        &ns,
        &selector,
        "the pod watch to start",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&watch_log)
                .ok()?
                .contains(&before)
                .then_some(())
        },
    );
    helm(
        env,
        &[
            "upgrade",
            release,
            &chart(),
            "-n",
            &ns,
            "-f",
            &file,
            "--set",
            "logLevel=debug",
        ],
    );
    available_or_panic(env, &ns, release, &selector);
    let after = wait(
        env,
        &ns,
        &selector,
        "one ready pod after the upgrade",
        Duration::from_secs(60),
        || match running_pods(env, &ns, &selector).as_slice() {
            [(name, true)] if *name != before => Some(name.clone()),
            _ => None,
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    signet_testenv::kill(watch);
    let (max, seen) = max_concurrent_pods(&watch_log);
    assert!(
        seen.contains(&before) && seen.contains(&after),
        "the watch saw {seen:?}"
    );
    assert_eq!(max, 1, "Recreate ran two pods at once: {seen:?}");
    let pod = kubectl_json(env, &["get", "pod", "-n", &ns, &after]);
    let args = pod["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--log-level=debug"), "{args}");
    assert_eq!(
        secret(env).map(|s| s.0),
        Some(leaf.clone()),
        "the upgrade reissued web-tls"
    );

    // Losing the pod: the ReplicaSet's replacement becomes ready.
    env.kubectl_ok(&["delete", "pod", "-n", &ns, &after, "--wait=false"])
        .expect("deleting the pod");
    let replacement = wait(
        env,
        &ns,
        &selector,
        "a ready replacement pod",
        AVAILABLE_TIMEOUT,
        || match running_pods(env, &ns, &selector).as_slice() {
            [(name, true)] if *name != after => Some(name.clone()),
            _ => None,
        },
    );
    available_or_panic(env, &ns, release, &selector);
    eprintln!("replacement pod {replacement} ready");

    // The replacement continues the audit chain on the volume: it signs a
    // new Certificate and the chain (rows of both pods) verifies, anchor
    // included.
    common::apply(
        env,
        &common::certificate(
            &ns,
            "after-loss",
            &ca,
            "  commonName: after.example\n  dnsNames: [after.example]\n  usages: [server auth]\n",
        ),
    )
    .expect("applying a Certificate after the pod loss");
    wait(
        env,
        &ns,
        &selector,
        "the replacement pod to issue after-loss",
        Duration::from_secs(90),
        || {
            let rows = audit_rows(&audit_copy(&db, &ns), &ns);
            let issued = |name: &str| {
                rows.iter()
                    .any(|r| r["operation"] == "certificate_issued" && r["object_name"] == name)
            };
            (issued("web") && issued("after-loss")).then_some(())
        },
    );
    audit_chain_verifies(env, &db, &ns);

    // helm uninstall keeps the claim (and the database) and the KMS key.
    helm(env, &["uninstall", release, "-n", &ns, "--wait"]);
    wait(
        env,
        &ns,
        &selector,
        "the release's pods to go",
        Duration::from_secs(60),
        || running_pods(env, &ns, &selector).is_empty().then_some(()),
    );
    let claim = kubectl_json(env, &["get", "pvc", "-n", &ns, "signet-data"]);
    assert_eq!(claim["status"]["phase"], "Bound", "the claim is kept");
    assert!(db.exists(), "the database is kept");
    let state = rt.block_on(async {
        common::kms_sdk(&env.kms)
            .describe_key()
            .key_id(&key_arn)
            .send()
            .await
            .map(|k| k.key_metadata().and_then(|m| m.key_state().cloned()))
    });
    assert_eq!(
        state
            .expect("describing the CA's key")
            .map(|s| s.as_str().to_string()),
        Some("Enabled".to_string()),
        "the CA's KMS key is kept"
    );
}

#[test]
fn a_crash_looping_operator_fails_the_wait_with_its_own_error_message() {
    let env = node_env();
    let image = image(env);
    let rt = runtime();
    let ns = rt.block_on(env.namespace("node-crash"));
    let ns = ns.name().to_string();
    let release = "signet-crash";
    let selector = format!("app.kubernetes.io/instance={release}");
    // A KMS endpoint without its scheme, set the way a user might (through
    // extraEnv, past the chart's schema): the operator refuses to start.
    let bad = env.kms.endpoint.trim_start_matches("http://").to_string();
    let mut vals = values(
        env,
        image,
        signet_testenv::free_port(),
        &[("SIGNET_KMS_ENDPOINT", bad.as_str())],
    );
    vals["persistence"] = json!({"enabled": false});
    let file = write_values("crash", &vals);
    helm(
        env,
        &[
            "install",
            release,
            &chart(),
            "-n",
            &ns,
            "-f",
            &file.display().to_string(),
        ],
    );
    let started = Instant::now();
    let err = wait_deployment_available(env, &ns, release, &selector, AVAILABLE_TIMEOUT)
        .expect_err("a crash-looping operator must not become Available");
    assert!(
        started.elapsed() < AVAILABLE_TIMEOUT,
        "the wait only timed out:\n{err}"
    );
    assert!(
        err.contains("must start with http:// or https://"),
        "the failure should quote the operator's own error:\n{err}"
    );
    assert!(err.contains(&bad), "and name the bad value:\n{err}");
    eprintln!("the wait failed as it should:\n{err}");
    helm(env, &["uninstall", release, "-n", &ns]);
}
