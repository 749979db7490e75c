//! Shared pieces: flags, the in-process operator, memory readings.

use std::sync::Arc;
use std::time::Duration;

use signet::controller::{Context, ContextParts};
use signet::kms::{AwsKms, KeyManager, KeySpec, KmsSettings, StaticCredentials};

/// The value after `--name`, parsed, or `default`.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value")),
    }
}

/// A Context against the test environment (AWS KMS client on local-kms).
pub async fn context(namespace: &str) -> anyhow::Result<Arc<Context>> {
    context_with_keys(namespace, |k| k).await
}

/// As [`context`], with the key manager wrapped by `wrap`.
pub async fn context_with_keys(
    namespace: &str,
    wrap: impl FnOnce(Arc<dyn KeyManager>) -> Arc<dyn KeyManager>,
) -> anyhow::Result<Arc<Context>> {
    let env = signet_testenv::env();
    env.kubectl_ok(&["create", "namespace", namespace]).ok();
    let kms = AwsKms::with_static_credentials(
        KmsSettings {
            region: Some(env.kms.region.clone()),
            endpoint: Some(env.kms.endpoint.clone()),
            attempt_timeout: Duration::from_secs(30),
            ..Default::default()
        },
        StaticCredentials {
            access_key_id: signet_testenv::KMS_ACCESS_KEY_ID.into(),
            secret_access_key: signet_testenv::KMS_SECRET_ACCESS_KEY.into(),
            session_token: None,
        },
    )
    .await?;
    let db = signet_testenv::run_dir().join(format!("{namespace}.db"));
    Ok(Arc::new(Context::new(ContextParts {
        client: env.client().await,
        keys: wrap(Arc::new(kms)),
        store: signet::store::Store::open(&db)?,
        namespace: namespace.to_string(),
        default_key_spec: KeySpec::EccNistP256,
        clock: Arc::new(signet::clock::SystemClock),
        instance: Some("bench".into()),
    })))
}

/// `VmHWM` (peak resident set) of this process, in KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// `VmRSS` of this process, in KiB.
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak resident set to the current one.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Polls `f` until it returns Some (or gives up after `limit`).
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            anyhow::bail!("gave up waiting for {what} after {}s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates root CA `name` (common name `cn`) and waits until it is Ready.
pub async fn ready_root_ca(client: &kube::Client, name: &str, cn: &str) -> anyhow::Result<()> {
    use kube::api::{Api, PostParams};
    use signet::api::CertificateAuthority;
    let root: CertificateAuthority = serde_json::from_value(serde_json::json!({
        "apiVersion": "signet.dev/v1alpha1", "kind": "CertificateAuthority",
        "metadata": {"name": name}, "spec": {"commonName": cn}
    }))?;
    let api: Api<CertificateAuthority> = Api::all(client.clone());
    api.create(&PostParams::default(), &root).await?;
    until("the CA", Duration::from_secs(120), || {
        let api = api.clone();
        async move {
            let c = api.get(name).await.ok()?;
            c.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        }
    })
    .await
}
