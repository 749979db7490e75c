//! The KMS signer against a real local-kms: key lifecycle, typed errors,
//! and bounded failure when KMS is unreachable.

mod pki_common;

use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeySpec as SdkKeySpec, KeyUsageType};
use pki_common::{client, client_for, unique_alias};
use signet::kms::{
    AwsKms, KeySpec, KmsSettings, RetryPolicy, SigAlg, SignError, Signer, StaticCredentials,
};
use signet_testenv::{KMS_ACCESS_KEY_ID, KMS_SECRET_ACCESS_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_adopt_by_alias_arn_and_id() {
    let kms = client().await;
    let alias = unique_alias("adopt");
    let created = kms
        .create_key(
            KeySpec::EccNistP256,
            &alias,
            &[("team".into(), "pki".into())],
        )
        .await
        .expect("create");
    assert_eq!(created.algorithm(), SigAlg::EcdsaP256Sha256);
    assert!(created.key_arn().starts_with("arn:aws:kms:"));
    for id in [
        format!("alias/signet/{alias}"),
        created.key_arn().to_string(),
        created.key_id().to_string(),
    ] {
        let adopted = kms
            .adopt_key(&id)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(adopted.public_key_spki_der(), created.public_key_spki_der());
        assert_eq!(adopted.key_arn(), created.key_arn());
    }
    // The alias is taken now: creating again fails before making a key.
    let err = kms
        .create_key(KeySpec::EccNistP256, &alias, &[])
        .await
        .expect_err("alias exists");
    assert_eq!(err.reason(), "KMSAliasExists", "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_spec_signs_digests_that_verify() {
    let kms = client().await;
    for spec in KeySpec::ALL {
        let signer = kms
            .create_key(spec, &unique_alias(&format!("sign-{spec}")), &[])
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        let alg = signer.algorithm();
        let digest = alg.digest(b"a message larger than nothing");
        let sig = signer.sign_digest(&digest).await.expect("sign");
        assert!(signet::kms::verify_digest_signature(
            signer.public_key_spki_der(),
            alg,
            &digest,
            &sig
        ));
        // A digest of the wrong length is refused locally.
        let err = signer
            .sign_digest(&digest[..10])
            .await
            .expect_err("short digest");
        assert_eq!(err.reason(), "InvalidDigest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_decrypt_key_is_refused() {
    let kms = client().await;
    let out = kms
        .client()
        .create_key()
        .key_usage(KeyUsageType::EncryptDecrypt)
        .key_spec(SdkKeySpec::SymmetricDefault)
        .send()
        .await
        .expect("create symmetric key");
    let key_id = out.key_metadata().expect("metadata").key_id().to_string();
    let err = kms.adopt_key(&key_id).await.expect_err("wrong usage");
    eprintln!("{err}");
    assert!(matches!(err, SignError::WrongKeyUsage { .. }), "{err:?}");
    assert_eq!(err.reason(), "KMSWrongKeyUsage");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("ENCRYPT_DECRYPT") && err.to_string().contains("SIGN_VERIFY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_is_not_found() {
    let kms = client().await;
    for id in [
        "8f1c6e0a-1111-4222-8333-944455556666".to_string(),
        "arn:aws:kms:us-east-1:111122223333:key/8f1c6e0a-1111-4222-8333-944455556666".into(),
        format!("alias/signet/{}", unique_alias("never-created")),
    ] {
        let err = kms.adopt_key(&id).await.expect_err("not found");
        assert_eq!(err.reason(), "KMSKeyNotFound", "{id}: {err}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(&id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_key_is_refused() {
    let kms = client().await;
    let signer = kms
        .create_key(KeySpec::EccNistP256, &unique_alias("disabled"), &[])
        .await
        .expect("create");
    kms.client()
        .disable_key()
        .key_id(signer.key_id())
        .send()
        .await
        .expect("disable");
    let err = kms.adopt_key(signer.key_arn()).await.expect_err("disabled");
    assert_eq!(err.reason(), "KMSKeyDisabled", "{err}");
    assert!(!err.is_retryable());
    // An already adopted signer fails terminally too.
    let digest = signer.algorithm().digest(b"x");
    let err = signer.sign_digest(&digest).await.expect_err("disabled");
    assert_eq!(err.reason(), "KMSKeyDisabled", "{err}");
}

fn refused_endpoint() -> String {
    // Bind, learn the port, close: connecting now gets ECONNREFUSED.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    format!("http://127.0.0.1:{port}")
}

/// Connection refused → a retryable `KMSUnavailable` error after the
/// bounded retries, well within a few seconds; no panic, no hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_kms_is_retryable_and_bounded() {
    let kms = AwsKms::with_static_credentials(
        KmsSettings {
            region: Some("us-east-1".into()),
            endpoint: Some(refused_endpoint()),
            ..Default::default()
        },
        StaticCredentials {
            access_key_id: KMS_ACCESS_KEY_ID.into(),
            secret_access_key: KMS_SECRET_ACCESS_KEY.into(),
            session_token: None,
        },
    )
    .await
    .expect("client builds without contacting KMS");
    let start = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), kms.adopt_key("alias/signet/x"))
        .await
        .expect("no hang")
        .expect_err("unreachable");
    let took = start.elapsed();
    eprintln!("unreachable after {took:?}: {err}");
    assert_eq!(err.reason(), "KMSUnavailable", "{err}");
    assert!(err.is_retryable());
    assert!(took < Duration::from_secs(5), "took {took:?}");

    let err = tokio::time::timeout(
        Duration::from_secs(20),
        kms.create_key(KeySpec::EccNistP256, "x", &[]),
    )
    .await
    .expect("no hang")
    .expect_err("unreachable");
    assert_eq!(err.reason(), "KMSUnavailable", "{err}");
}

/// KMS disappears after the key was adopted: signing fails retryably
/// within the bounded timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_going_away_mid_flight_is_retryable() {
    let dir = signet_testenv::run_dir().join("kms-going-away");
    let env = tokio::task::spawn_blocking(move || signet_testenv::start_kms(&dir))
        .await
        .expect("join")
        .expect("own local-kms");
    let kms = client_for(&env).await;
    let signer = kms
        .create_key(KeySpec::EccNistP256, &unique_alias("going-away"), &[])
        .await
        .expect("create");
    let digest = signer.algorithm().digest(b"before");
    signer.sign_digest(&digest).await.expect("sign while up");
    let pid = env.pid;
    tokio::task::spawn_blocking(move || {
        // local-kms is one process; signal it directly, then let the
        // harness reap it (its group kill alone did not stop it here).
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .status();
        signet_testenv::kill(pid);
    })
    .await
    .expect("kill");
    let start = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), signer.sign_digest(&digest))
        .await
        .expect("no hang")
        .expect_err("KMS is gone");
    let took = start.elapsed();
    eprintln!("sign after KMS died: {took:?}: {err}");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.reason(), "KMSUnavailable");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A blackholed endpoint (accepts TCP, never answers) is cut off by the
/// attempt timeout instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_kms_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let kms = AwsKms::with_static_credentials(
        KmsSettings {
            region: Some("us-east-1".into()),
            endpoint: Some(endpoint),
            attempt_timeout: Duration::from_millis(500),
            retry: RetryPolicy {
                max_attempts: 2,
                ..RetryPolicy::default()
            },
            ..Default::default()
        },
        StaticCredentials {
            access_key_id: KMS_ACCESS_KEY_ID.into(),
            secret_access_key: KMS_SECRET_ACCESS_KEY.into(),
            session_token: None,
        },
    )
    .await
    .expect("client");
    let start = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), kms.adopt_key("alias/signet/x"))
        .await
        .expect("no hang")
        .expect_err("silent");
    let took = start.elapsed();
    eprintln!("silent endpoint after {took:?}: {err}");
    assert!(err.is_retryable(), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(listener);
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let err = AwsKms::new(KmsSettings {
        region: Some("us-east-1".into()),
        endpoint: Some("127.0.0.1:4599".into()),
        ..Default::default()
    })
    .await
    .expect_err("endpoint without scheme");
    assert_eq!(err.reason(), "KMSConfig");
    assert!(err.to_string().contains("http://"));
}
