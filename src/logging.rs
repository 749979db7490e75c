//! Tracing setup: JSON or text, level from the flag (RUST_LOG overrides).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(level: &str, format: &str) -> anyhow::Result<()> {
    let level = match level {
        "error" | "warn" | "info" | "debug" | "trace" => level,
        other => anyhow::bail!(
            "--log-level {other:?} is not valid; use error, warn, info, debug or trace"
        ),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{level},kube=warn,aws=warn,hyper=warn,tower=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("--log-format {other:?} is not valid; use json or text"),
    }
    Ok(())
}
