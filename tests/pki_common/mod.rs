//! Helpers shared by the `tests/pki*.rs` integration tests: a KMS client for
//! the harness's local-kms, unique aliases, and lint reporting.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use signet::kms::{AwsKms, KmsSettings, StaticCredentials};
use signet_testenv::tools::{Finding, ZlintResult};
use signet_testenv::{KMS_ACCESS_KEY_ID, KMS_SECRET_ACCESS_KEY, KmsEnv};

/// A client for `env` with the static test credentials. local-kms
/// generates RSA-4096 keys on the spot (AWS has them ready), which can take
/// seconds on a loaded 2-core machine: attempts may take up to 30 s.
pub async fn client_for(env: &KmsEnv) -> AwsKms {
    AwsKms::with_static_credentials(
        KmsSettings {
            region: Some(env.region.clone()),
            endpoint: Some(env.endpoint.clone()),
            attempt_timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        },
        StaticCredentials {
            access_key_id: KMS_ACCESS_KEY_ID.into(),
            secret_access_key: KMS_SECRET_ACCESS_KEY.into(),
            session_token: None,
        },
    )
    .await
    .expect("KMS client for local-kms")
}

/// A client for the shared local-kms of this test binary.
pub async fn client() -> AwsKms {
    let env = tokio::task::spawn_blocking(signet_testenv::kms)
        .await
        .expect("starting local-kms");
    client_for(env).await
}

/// An alias name unique within this test run.
pub fn unique_alias(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        what
    )
}

/// pkilint findings below ERROR that we accept, with the reason printed
/// next to them.
const TOLERATED_PKILINT: &[(&str, &str)] = &[];

/// zlint warnings/notices we accept on TLS server certificates of a
/// private CA, and why.
const TOLERATED_ZLINT: &[(&str, &str)] = &[
    (
        "n_ct_sct_policy_count_unsatisfied",
        "a private CA does not log to Certificate Transparency",
    ),
    (
        "w_ext_subject_key_identifier_not_recommended_subscriber",
        "RFC 5280 4.2.1.2 says end-entity certificates SHOULD carry a subjectKeyIdentifier; \
         the CA/B BR 2.0 NOT RECOMMENDED is for the public Web PKI",
    ),
    (
        "w_subject_common_name_included",
        "the request set commonName (cert-manager users do); it is also the first dnsName",
    ),
];

fn why(table: &[(&'static str, &'static str)], code: &str) -> &'static str {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, w)| *w)
        .unwrap_or("no explanation recorded; below error so not failing")
}

/// Asserts there is no ERROR/FATAL pkilint finding; prints the rest.
pub fn assert_pkilint_clean(what: &str, findings: &[Finding]) {
    let errors: Vec<&Finding> = findings.iter().filter(|f| f.is_error()).collect();
    for f in findings.iter().filter(|f| !f.is_error()) {
        let reason = TOLERATED_PKILINT
            .iter()
            .find(|(c, _)| *c == f.code)
            .map(|(_, w)| *w)
            .unwrap_or("below WARNING or informational");
        eprintln!(
            "pkilint [{what}] tolerated {} {} at {}: {} — {reason}",
            f.severity, f.code, f.node_path, f.message
        );
    }
    assert!(errors.is_empty(), "pkilint [{what}] errors: {errors:#?}");
}

/// Asserts there is no error/fatal zlint result; prints the rest.
pub fn assert_zlint_clean(what: &str, results: &[ZlintResult]) {
    let errors: Vec<&ZlintResult> = results.iter().filter(|r| r.is_error()).collect();
    for r in results.iter().filter(|r| !r.is_error()) {
        eprintln!(
            "zlint [{what}] tolerated {} {}: {} — {}",
            r.result,
            r.lint,
            r.details,
            why(TOLERATED_ZLINT, &r.lint)
        );
    }
    assert!(errors.is_empty(), "zlint [{what}] errors: {errors:#?}");
}
