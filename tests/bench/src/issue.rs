//! `issue`: N leaf Certificates from one CA, as a user applies them.
//!
//! * backlog: the Certificates are created while no controller runs, then
//!   the controllers start; the time until all are Ready is pure operator
//!   throughput.
//! * live: the controllers run and Certificates are created at a fixed rate;
//!   p50/p99 of create → Ready.
//!
//! What it reports besides time: API requests per certificate by verb and
//! resource (the difference of the API server's `apiserver_request_total`
//! over the measured window; the benchmark's own requests are one watch),
//! KMS Sign calls per certificate (counted by a wrapper around the key
//! manager), CPU per certificate of this process (the controllers plus the
//! benchmark's watch) and of the API server, peak RSS, and an idle window
//! after everything is Ready.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use signet::api::Certificate;
use signet::kms::{Observed, SignCounter};

use crate::util;

/// What one run is asked to do.
struct Plan {
    count: usize,
    live: bool,
    rate: f64,
    rsa: bool,
    concurrency: u16,
    idle: Duration,
}

fn plan(args: &[String]) -> anyhow::Result<Plan> {
    let mode: String = util::flag(args, "--mode", "backlog".to_string())?;
    let key: String = util::flag(args, "--key", "p256".to_string())?;
    anyhow::ensure!(
        mode == "backlog" || mode == "live",
        "--mode is backlog or live, not {mode:?}"
    );
    anyhow::ensure!(
        key == "p256" || key == "rsa2048",
        "--key is p256 or rsa2048, not {key:?}"
    );
    Ok(Plan {
        count: util::flag(args, "--count", 1000)?,
        live: mode == "live",
        rate: util::flag(args, "--rate", 50.0)?,
        rsa: key == "rsa2048",
        concurrency: util::flag(args, "--concurrency", 8)?,
        idle: Duration::from_secs(util::flag(args, "--idle", 60)?),
    })
}

/// CPU seconds (user + system) of process `pid` ("self" for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// `apiserver_request_total` summed by (verb, resource).
fn api_requests() -> BTreeMap<(String, String), f64> {
    let env = signet_testenv::env();
    let text = env
        .kubectl_ok(&["get", "--raw", "/metrics"])
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let v: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry((label("verb"), label("resource"))).or_default() += v;
    }
    out
}

fn diff(
    after: &BTreeMap<(String, String), f64>,
    before: &BTreeMap<(String, String), f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0 && !k.1.is_empty()).then(|| (format!("{} {}", k.0, k.1), d))
        })
        .collect()
}

fn is_write(verb_resource: &str) -> bool {
    ["POST", "PUT", "PATCH", "DELETE", "APPLY"]
        .iter()
        .any(|v| verb_resource.starts_with(v))
}

fn certificate(name: &str, ns: &str, ca: &str, rsa: bool) -> anyhow::Result<Certificate> {
    let key = if rsa {
        serde_json::json!({"algorithm": "RSA", "size": 2048})
    } else {
        serde_json::json!({"algorithm": "ECDSA", "size": 256})
    };
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "signet.dev/v1alpha1", "kind": "Certificate",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "issuerRef": {"name": ca}, "secretName": format!("{name}-tls"),
            "commonName": format!("{name}.bench.example"),
            "dnsNames": [format!("{name}.bench.example")],
            "privateKey": key,
        }
    }))?)
}

/// Watches the namespace's Certificates and records when each first reports
/// Ready=True; prints a progress line every second.
fn watch_ready(
    api: Api<Certificate>,
    total: usize,
) -> (
    tokio::task::JoinHandle<HashMap<String, Instant>>,
    Arc<AtomicU64>,
) {
    let ready_count = Arc::new(AtomicU64::new(0));
    let counter = ready_count.clone();
    let task = tokio::spawn(async move {
        let mut ready: HashMap<String, Instant> = HashMap::new();
        let mut last_print = Instant::now();
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let objs = match ev {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => vec![o],
                _ => continue,
            };
            for c in objs {
                let is_ready = c.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if let (true, Some(name)) = (is_ready, c.metadata.name.clone()) {
                    ready.entry(name).or_insert_with(Instant::now);
                }
            }
            counter.store(ready.len() as u64, Ordering::Relaxed);
            if last_print.elapsed() > Duration::from_secs(1) {
                eprintln!("ready {}/{total}", ready.len());
                last_print = Instant::now();
            }
            if ready.len() >= total {
                break;
            }
        }
        ready
    });
    (task, ready_count)
}

async fn create_all(
    api: &Api<Certificate>,
    names: &[String],
    ns: &str,
    ca: &str,
    plan: &Plan,
) -> anyhow::Result<HashMap<String, Instant>> {
    let mut created = HashMap::new();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        if plan.live {
            let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let cert = certificate(name, ns, ca, plan.rsa)?;
        let api = api.clone();
        let name = name.clone();
        set.spawn(async move {
            let at = Instant::now();
            api.create(&PostParams::default(), &cert)
                .await
                .map(|_| (name, at))
        });
        while set.len() >= 32 {
            let (n, at) = set.join_next().await.expect("a task")??;
            created.insert(n, at);
        }
    }
    while let Some(r) = set.join_next().await {
        let (n, at) = r??;
        created.insert(n, at);
    }
    Ok(created)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let plan = plan(args)?;
    let id = std::process::id();
    let ns = format!("signet-bench-issue-{id}");
    let ca = format!("bench-issue-{id}");
    let env = signet_testenv::env();
    let client = env.client().await;

    // The CA, made Ready by a first set of controllers that then stops.
    let boot = util::context(&format!("{ns}-boot")).await?;
    let boot_task = tokio::spawn(signet::controller::run_all(boot.clone(), 4));
    util::ready_root_ca(&client, &ca, "Bench Issuing Root").await?;
    boot_task.abort();
    let _ = boot_task.await;
    drop(boot);

    env.kubectl_ok(&["create", "namespace", &ns]).ok();
    let api: Api<Certificate> = Api::namespaced(client.clone(), &ns);
    let names: Vec<String> = (0..plan.count).map(|i| format!("c{i:05}")).collect();

    let signs = Arc::new(SignCounter::default());
    let observer = signs.clone();
    let ctx =
        util::context_with_keys(&ns, |inner| Arc::new(Observed::new(inner, observer))).await?;

    let mut created = HashMap::new();
    if !plan.live {
        eprintln!(
            "creating {} Certificates (no controller running)",
            plan.count
        );
        created = create_all(&api, &names, &ns, &ca, &plan).await?;
    }
    let (watch, _) = watch_ready(api.clone(), plan.count);
    let requests_before = api_requests();
    let cpu_before = cpu_seconds("self");
    let api_cpu_before = cpu_seconds(&env.apiserver_pid.to_string());
    util::reset_peak_rss();
    let start = Instant::now();
    let controllers = tokio::spawn(signet::controller::run_all(ctx.clone(), plan.concurrency));
    if plan.live {
        eprintln!(
            "creating {} Certificates at {}/s (controllers running)",
            plan.count, plan.rate
        );
        created = create_all(&api, &names, &ns, &ca, &plan).await?;
    }
    let ready = tokio::time::timeout(Duration::from_secs(3600), watch).await??;
    let took = start.elapsed();
    let requests = diff(&api_requests(), &requests_before);
    let cpu = cpu_seconds("self") - cpu_before;
    let api_cpu = cpu_seconds(&env.apiserver_pid.to_string()) - api_cpu_before;
    let peak = util::peak_rss_kib();
    let sign_calls = signs.count();

    // Idle: everything Ready, nothing changes.
    let idle_requests_before = api_requests();
    let idle_cpu_before = cpu_seconds("self");
    tokio::time::sleep(plan.idle).await;
    let idle_requests = diff(&api_requests(), &idle_requests_before);
    let idle_cpu = cpu_seconds("self") - idle_cpu_before;
    let idle_rss = util::rss_kib();
    controllers.abort();

    let mut latencies: Vec<f64> = ready
        .iter()
        .filter_map(|(n, r)| {
            let c = created.get(n)?;
            Some(r.saturating_duration_since(*c).as_secs_f64())
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let n = plan.count as f64;
    let writes: f64 = requests
        .iter()
        .filter(|(k, _)| is_write(k))
        .map(|(_, v)| v)
        .sum();
    let reads: f64 = requests
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") || k.starts_with("LIST "))
        .map(|(_, v)| v)
        .sum();
    let idle_writes: f64 = idle_requests
        .iter()
        .filter(|(k, _)| is_write(k))
        .map(|(_, v)| v)
        .sum();
    let per_cert: BTreeMap<&String, f64> = requests.iter().map(|(k, v)| (k, v / n)).collect();
    let summary = serde_json::json!({
        "scenario": "issue",
        "mode": if plan.live { "live" } else { "backlog" },
        "key": if plan.rsa { "rsa2048" } else { "p256" },
        "count": plan.count,
        "concurrency": plan.concurrency,
        "rate": plan.live.then_some(plan.rate),
        "allReadySeconds": took.as_secs_f64(),
        "certsPerSecond": n / took.as_secs_f64(),
        "latencyP50Seconds": percentile(&latencies, 0.50),
        "latencyP99Seconds": percentile(&latencies, 0.99),
        "apiWritesPerCert": writes / n,
        "apiReadsPerCert": reads / n,
        "apiRequestsPerCert": per_cert,
        "kmsSignPerCert": sign_calls as f64 / n,
        "operatorCpuMsPerCert": cpu * 1000.0 / n,
        "apiserverCpuMsPerCert": api_cpu * 1000.0 / n,
        "peakRssMiB": peak as f64 / 1024.0,
        "idleSeconds": plan.idle.as_secs(),
        "idleApiWrites": idle_writes,
        "idleCpuPercent": idle_cpu * 100.0 / plan.idle.as_secs_f64().max(1.0),
        "idleRssMiB": idle_rss as f64 / 1024.0,
    });
    println!("{summary}");
    env.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"])
        .ok();
    Ok(())
}
