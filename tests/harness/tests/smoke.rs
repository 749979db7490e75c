//! Smoke tests of the test environment itself: the real API server, local-kms
//! and the PKI linters behave as the rest of the suite assumes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use signet_testenv::tools;
use x509_parser::prelude::FromDer;

#[tokio::test]
async fn namespace_and_secret_round_trip_through_the_api_server() {
    let env = signet_testenv::env();
    let ns = env.namespace("smoke").await;
    let client = env.client().await;
    let secrets: Api<Secret> = Api::namespaced(client, ns.name());
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "round-trip"},
        "type": "Opaque",
        "stringData": {"hello": "world"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let got = secrets.get("round-trip").await.unwrap();
    let value = got.data.unwrap().remove("hello").unwrap();
    assert_eq!(value.0, b"world");
    // kubectl and the generated kubeconfig work too.
    let out = env
        .kubectl_ok(&["get", "ns", ns.name(), "-o", "name"])
        .unwrap();
    assert_eq!(out.trim(), format!("namespace/{}", ns.name()));
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.signet.dev
spec:
  group: smoke.signet.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
            x-kubernetes-validations:
            - rule: "self.size >= 0"
              message: "spec.size must not be negative"
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

#[tokio::test]
async fn custom_resource_with_status_subresource_round_trips() {
    let env = signet_testenv::env();
    let file = tools::artifact("widget-crd.yaml", WIDGET_CRD.as_bytes());
    env.kubectl_ok(&["apply", "--server-side", "-f", &file.display().to_string()])
        .unwrap();
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.smoke.signet.dev",
        "--timeout=60s",
    ])
    .unwrap();
    let ns = env.namespace("smoke-crd").await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("smoke.signet.dev", "v1", "Widget"),
        "widgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(env.client().await, ns.name(), &ar);
    let obj: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "smoke.signet.dev/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 3}
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    // Status goes through the subresource and leaves the spec alone...
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"ready": true}, "spec": {"size": 99}})),
    )
    .await
    .unwrap();
    let got = api.get("w").await.unwrap();
    assert_eq!(got.data["status"]["ready"], true);
    assert_eq!(
        got.data["spec"]["size"], 3,
        "status patch must not change spec"
    );
    // ...and CEL validation rejects a bad object at admission.
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "smoke.signet.dev/v1", "kind": "Widget",
        "metadata": {"name": "bad"}, "spec": {"size": -1}
    }))
    .unwrap();
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
    assert!(
        err.to_string().contains("spec.size must not be negative"),
        "{err}"
    );
}

async fn kms_client() -> aws_sdk_kms::Client {
    let kms = signet_testenv::kms();
    let creds = aws_sdk_kms::config::Credentials::new(
        signet_testenv::KMS_ACCESS_KEY_ID,
        signet_testenv::KMS_SECRET_ACCESS_KEY,
        None,
        None,
        "signet-test",
    );
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(kms.region.clone()))
        .endpoint_url(&kms.endpoint)
        .credentials_provider(creds)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

#[tokio::test]
async fn local_kms_signs_digests_that_verify_against_its_public_key() {
    use aws_lc_rs::digest;
    use aws_lc_rs::signature::{self, UnparsedPublicKey};
    let kms = kms_client().await;
    let message = b"signet smoke test";
    let digest = digest::digest(&digest::SHA256, message);
    for (spec, alg, verify_alg) in [
        (
            KeySpec::EccNistP256,
            SigningAlgorithmSpec::EcdsaSha256,
            &signature::ECDSA_P256_SHA256_ASN1 as &dyn signature::VerificationAlgorithm,
        ),
        (
            KeySpec::Rsa2048,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
    ] {
        let key = kms
            .create_key()
            .key_usage(KeyUsageType::SignVerify)
            .key_spec(spec.clone())
            .send()
            .await
            .unwrap();
        let key_id = key.key_metadata.unwrap().key_id;
        let public = kms.get_public_key().key_id(&key_id).send().await.unwrap();
        let spki = public.public_key.unwrap().into_inner();
        let signed = kms
            .sign()
            .key_id(&key_id)
            .message(Blob::new(digest.as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(alg)
            .send()
            .await
            .unwrap();
        let sig = signed.signature.unwrap().into_inner();
        // aws-lc-rs wants the raw key inside the SPKI.
        let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki)
            .map_err(|e| e.to_string())
            .unwrap();
        let raw = parsed.subject_public_key.data.to_vec();
        UnparsedPublicKey::new(verify_alg, &raw)
            .verify(message, &sig)
            .unwrap_or_else(|_| panic!("{spec:?} signature does not verify"));
        // A different message must not verify (the check can fail).
        assert!(
            UnparsedPublicKey::new(verify_alg, &raw)
                .verify(b"another message", &sig)
                .is_err()
        );
    }
}

fn test_cert(ca_without_key_usage: bool) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["smoke.example.com".to_string()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "smoke.example.com");
    // zlint only runs lints effective at notBefore, so use a current date.
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(30);
    if ca_without_key_usage {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![];
    } else {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    p.self_signed(&key).unwrap().pem()
}

#[test]
fn pkilint_and_zlint_run_and_their_findings_are_parsed() {
    // A CA certificate without keyUsage is an RFC 5280 error pkilint reports.
    let bad = tools::pkilint_cert(test_cert(true).as_bytes());
    assert!(
        bad.iter()
            .any(|f| f.is_error() && f.code == "pkix.ca_certificate_no_ku_extension"),
        "expected pkix.ca_certificate_no_ku_extension in {bad:#?}"
    );
    let good = tools::pkilint_cert(test_cert(false).as_bytes());
    assert!(
        !good
            .iter()
            .any(|f| f.code == "pkix.ca_certificate_no_ku_extension"),
        "{good:#?}"
    );
    // zlint reports results per lint; a self-signed leaf without AIA trips
    // some of them, and none is a pass/NA leaking through the filter.
    let z = tools::zlint(&test_cert(false));
    assert!(!z.is_empty(), "zlint returned no findings");
    assert!(
        z.iter()
            .all(|r| !matches!(r.result.as_str(), "pass" | "NA" | "NE"))
    );
    assert!(
        z.iter()
            .all(|r| r.lint.contains('_') && !r.result.is_empty()),
        "{z:#?}"
    );
}

#[test]
fn a_missing_binary_fails_at_once_with_the_setup_command() {
    let harness = testenv_binary();
    let state = tempdir("missing-bin");
    let start = Instant::now();
    let out = Command::new(harness)
        .args(["serve", "--state"])
        .arg(&state)
        .env("SIGNET_TESTENV_BIN", state.join("nowhere"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("hack/testenv.sh setup"), "{stderr}");
}

#[test]
fn a_component_that_cannot_bind_fails_with_its_log_tail() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let err = signet_testenv::start_kms_on(&tempdir("port-taken"), &addr).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("local-kms exited during startup"), "{msg}");
    assert!(msg.contains("address already in use"), "{msg}");
}

#[test]
fn killing_the_harness_leaves_no_process_behind() {
    let state = tempdir("leak");
    let mut child = Command::new(testenv_binary())
        .args(["serve", "--state"])
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !state.join("env").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "control plane did not come up"
        );
        assert!(child.try_wait().unwrap().is_none(), "harness exited early");
        std::thread::sleep(Duration::from_millis(200));
    }
    let marker = state.display().to_string();
    assert!(
        pgrep(&marker) >= 3,
        "etcd, kube-apiserver and local-kms run"
    );
    // The harshest exit: SIGKILL, no destructor or signal handler runs.
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    while pgrep(&marker) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "processes leaked after SIGKILL of the harness"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pgrep(pattern: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", "--", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = signet_testenv::run_dir().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn testenv_binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_signet-testenv"))
}
