//! Runs the real PKI validators on artifacts and parses their findings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

use crate::{require_bin, run_dir};

/// One pkilint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// FATAL, ERROR, WARNING, NOTICE, INFO or DEBUG.
    pub severity: String,
    /// pkilint's finding code, e.g. `pkix.ca_certificate_no_ku_extension`.
    pub code: String,
    /// Optional message.
    pub message: String,
    /// Where in the document the finding points.
    pub node_path: String,
}

impl Finding {
    /// Whether this finding fails a lint run (ERROR or FATAL).
    pub fn is_error(&self) -> bool {
        matches!(self.severity.as_str(), "ERROR" | "FATAL")
    }
}

/// One zlint result that is not `pass`/`NA`/`NE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZlintResult {
    /// Lint name, e.g. `e_sub_cert_aia_missing`.
    pub lint: String,
    /// `info`, `warn`, `error`, `fatal`, ...
    pub result: String,
    /// zlint's details text, if any.
    pub details: String,
}

impl ZlintResult {
    /// Whether this result fails a lint run (`error` or `fatal`).
    pub fn is_error(&self) -> bool {
        matches!(self.result.as_str(), "error" | "fatal")
    }
}

fn scratch(name: &str, data: &[u8]) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = run_dir().join("artifacts");
    std::fs::create_dir_all(&dir).expect("creating the artifacts folder");
    let path = dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, data).expect("writing an artifact");
    path
}

/// Writes `data` to a fresh file in this test binary's artifact folder.
pub fn artifact(name: &str, data: &[u8]) -> PathBuf {
    scratch(name, data)
}

/// Runs `openssl` with `args` (output captured, never fails by itself).
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (apt-get install openssl): {e}"))
}

/// `openssl verify` of `leaf` against `root` with `untrusted` intermediates and
/// an optional `-purpose`. Returns Ok(stdout) or Err(stdout+stderr).
pub fn openssl_verify(
    root_pem: &str,
    intermediates_pem: &str,
    leaf_pem: &str,
    purpose: Option<&str>,
) -> Result<String, String> {
    let root = scratch("root.pem", root_pem.as_bytes());
    let leaf = scratch("leaf.pem", leaf_pem.as_bytes());
    let mut args: Vec<String> = vec!["verify".into(), "-CAfile".into(), path(&root)];
    if !intermediates_pem.trim().is_empty() {
        let inter = scratch("intermediates.pem", intermediates_pem.as_bytes());
        args.push("-untrusted".into());
        args.push(path(&inter));
    }
    if let Some(p) = purpose {
        args.push("-purpose".into());
        args.push(p.into());
    }
    args.push(path(&leaf));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = openssl(&refs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[derive(Deserialize)]
struct PkilintOutput {
    results: Vec<PkilintResult>,
}

#[derive(Deserialize)]
struct PkilintResult {
    node_path: String,
    finding_descriptions: Vec<PkilintFinding>,
}

#[derive(Deserialize)]
struct PkilintFinding {
    severity: String,
    code: String,
    message: Option<String>,
}

fn pkilint(tool: &str, extra: &[&str], doc: &[u8]) -> Vec<Finding> {
    let exe = require_bin(tool);
    let file = scratch(&format!("{tool}.in"), doc);
    let out = Command::new(&exe)
        .arg("lint")
        .args(extra)
        .args(["-f", "JSON", "-s", "DEBUG"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: PkilintOutput = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{tool} printed no JSON ({e}); exit {}; stdout: {stdout}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    parsed
        .results
        .into_iter()
        .flat_map(|r| {
            let node = r.node_path;
            r.finding_descriptions.into_iter().map(move |f| Finding {
                severity: f.severity,
                code: f.code,
                message: f.message.unwrap_or_default(),
                node_path: node.clone(),
            })
        })
        .collect()
}

/// `lint_pkix_cert` (RFC 5280) on a PEM or DER certificate.
pub fn pkilint_cert(cert: &[u8]) -> Vec<Finding> {
    pkilint("lint_pkix_cert", &[], cert)
}

/// `lint_crl` (PKIX profile, type CRL) on a PEM or DER CRL.
pub fn pkilint_crl(crl: &[u8]) -> Vec<Finding> {
    pkilint("lint_crl", &["-t", "CRL", "-p", "PKIX"], crl)
}

/// `lint_ocsp_response` on a DER OCSP response.
pub fn pkilint_ocsp(resp: &[u8]) -> Vec<Finding> {
    pkilint("lint_ocsp_response", &[], resp)
}

#[derive(Deserialize)]
struct ZlintEntry {
    result: String,
    #[serde(default)]
    details: Option<String>,
}

/// zlint on a PEM certificate; returns every result other than pass/NA/NE.
pub fn zlint(cert_pem: &str) -> Vec<ZlintResult> {
    let exe = require_bin("zlint");
    let file = scratch("zlint.pem", cert_pem.as_bytes());
    let out = Command::new(&exe)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: std::collections::BTreeMap<String, ZlintEntry> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| {
            panic!(
                "zlint printed no JSON ({e}); exit {}; stdout: {stdout}; stderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    parsed
        .into_iter()
        .filter(|(_, e)| !matches!(e.result.as_str(), "pass" | "NA" | "NE"))
        .map(|(lint, e)| ZlintResult {
            lint,
            result: e.result,
            details: e.details.unwrap_or_default(),
        })
        .collect()
}
