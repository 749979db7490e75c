//! The PodCertificateRequest signer (KEP-4317) against the real API server
//! (1.37 serves `certificates.k8s.io/v1`): there is no kubelet here, so the
//! test creates the Node, ServiceAccount, Pod and PodCertificateRequest
//! objects itself and checks the issued chain with openssl; and every
//! request that must be refused is, with Denied and a reason.

mod common;

use common::*;
use kube::api::{Api, ApiResource, DynamicObject};
use signet_testenv::tools;

fn resource() -> ApiResource {
    ApiResource {
        group: "certificates.k8s.io".into(),
        version: "v1".into(),
        api_version: "certificates.k8s.io/v1".into(),
        kind: "PodCertificateRequest".into(),
        plural: "podcertificaterequests".into(),
    }
}

/// A key of `alg` (openssl genpkey args) and the DER stub CSR made with it.
fn stub_csr(tag: &str, alg: &[&str]) -> (std::path::PathBuf, Vec<u8>) {
    let key = tools::artifact(&format!("{tag}.key"), b"");
    let der = tools::artifact(&format!("{tag}.der"), b"");
    let mut args = vec!["genpkey"];
    args.extend_from_slice(alg);
    let k = key.display().to_string();
    args.extend_from_slice(&["-out", &k]);
    let out = tools::openssl(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tools::openssl(&[
        "req",
        "-new",
        "-key",
        &k,
        "-subj",
        "/CN=stub",
        "-outform",
        "DER",
        "-out",
        &der.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, std::fs::read(&der).unwrap())
}

fn uid_of(env: &signet_testenv::TestEnv, args: &[&str]) -> String {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "jsonpath={.metadata.uid}"]);
    env.kubectl_ok(&a).unwrap().trim().to_string()
}

/// A pod `pod` running as ServiceAccount `sa` on node `node` in `ns`;
/// returns (pod uid, sa uid, node uid).
fn workload(ns: &str, pod: &str, sa: &str, node: &str) -> (String, String, String) {
    let env = signet_testenv::env();
    apply(
        env,
        &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n"),
    )
    .unwrap();
    apply(
        env,
        &format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {ns}}}\nautomountServiceAccountToken: false\n"),
    )
    .unwrap();
    apply(
        env,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}}}\nspec:\n  serviceAccountName: {sa}\n  automountServiceAccountToken: false\n  nodeName: {node}\n  containers: [{{name: c, image: registry.invalid/pause:1}}]\n"
        ),
    )
    .unwrap();
    (
        uid_of(env, &["pod", "-n", ns, pod]),
        uid_of(env, &["serviceaccount", "-n", ns, sa]),
        uid_of(env, &["node", node]),
    )
}

struct Ask<'a> {
    ns: &'a str,
    name: &'a str,
    signer: String,
    pod: &'a str,
    ids: (String, String, String),
    sa: &'a str,
    node: &'a str,
    stub: &'a [u8],
    max_seconds: Option<i64>,
}

fn create(a: &Ask<'_>) {
    use base64::Engine;
    let mut spec = serde_json::json!({
        "signerName": a.signer, "podName": a.pod, "podUID": a.ids.0,
        "serviceAccountName": a.sa, "serviceAccountUID": a.ids.1,
        "nodeName": a.node, "nodeUID": a.ids.2,
        "stubPKCS10Request": base64::engine::general_purpose::STANDARD.encode(a.stub),
    });
    if let Some(m) = a.max_seconds {
        spec["maxExpirationSeconds"] = m.into();
    }
    let obj = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
        "metadata": {"name": a.name, "namespace": a.ns}, "spec": spec,
    });
    apply(signet_testenv::env(), &serde_json::to_string(&obj).unwrap()).unwrap();
}

/// Waits until `ns/name` has an Issued, Denied or Failed condition;
/// returns (type, reason, message, status object).
async fn answered(ns: &str, name: &str) -> (String, String, String, serde_json::Value) {
    let (ns, name) = (ns.to_string(), name.to_string());
    eventually(
        &format!("PodCertificateRequest {ns}/{name} answered"),
        || {
            let (ns, name) = (ns.clone(), name.clone());
            async move {
                let client = signet_testenv::env().client().await;
                let o = Api::<DynamicObject>::namespaced_with(client, &ns, &resource())
                    .get(&name)
                    .await
                    .ok()?;
                let status = o.data.get("status")?.clone();
                let c = status["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| matches!(c["type"].as_str(), Some("Issued" | "Denied" | "Failed")))?
                    .clone();
                Some((
                    c["type"].as_str()?.to_string(),
                    c["reason"].as_str().unwrap_or("").to_string(),
                    c["message"].as_str().unwrap_or("").to_string(),
                    status,
                ))
            }
        },
    )
    .await
}

fn secs(rfc: &str) -> i64 {
    time::OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

#[tokio::test]
async fn pod_certificate_carries_the_pods_spiffe_id_for_its_key_and_the_kep_times() {
    let _op = in_process();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns_guard = env.namespace("podcert").await;
    let ns = ns_guard.name();
    let ca = unique("pod-root");
    apply(env, &root_ca(&ca, "")).unwrap();
    let ca_pem = wait_ca(&client, &ca, ("True", None), None)
        .await
        .status
        .unwrap()
        .certificate
        .unwrap();
    let node = unique("node");
    let ids = workload(ns, "web-0", "web", &node);
    let (key, stub) = stub_csr(
        "pod-p256",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    create(&Ask {
        ns,
        name: "web-0-cert",
        signer: format!("signet.dev/{ca}"),
        pod: "web-0",
        ids,
        sa: "web",
        node: &node,
        stub: &stub,
        max_seconds: Some(7200),
    });
    let (type_, reason, message, status) = answered(ns, "web-0-cert").await;
    assert_eq!(type_, "Issued", "{reason}: {message}");
    let chain = status["certificateChain"].as_str().unwrap().to_string();
    let verified = tools::openssl_verify(&ca_pem, "", &chain, Some("sslclient"));
    assert!(verified.is_ok(), "{verified:?}");
    let f = tools::artifact("pod-leaf.pem", chain.as_bytes());
    let text = tools::openssl(&["x509", "-in", &f.display().to_string(), "-noout", "-text"]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains(&format!("URI:spiffe://cluster.local/ns/{ns}/sa/web")),
        "{text}"
    );
    assert!(
        !text.contains("DNS:"),
        "no DNS names by the identity rule: {text}"
    );
    let pub_cert = tools::openssl(&["x509", "-in", &f.display().to_string(), "-noout", "-pubkey"]);
    let pub_key = tools::openssl(&["pkey", "-in", &key.display().to_string(), "-pubout"]);
    assert_eq!(pub_cert.stdout, pub_key.stdout, "issued to the pod's key");
    let (nb, na, refresh) = (
        secs(status["notBefore"].as_str().unwrap()),
        secs(status["notAfter"].as_str().unwrap()),
        secs(status["beginRefreshAt"].as_str().unwrap()),
    );
    assert_eq!(na - nb, 7200, "lifetime = maxExpirationSeconds");
    assert!(
        refresh >= nb + 600 && refresh <= na - 600,
        "beginRefreshAt inside the margins"
    );
    for finding in tools::pkilint_cert(chain.as_bytes()) {
        assert!(
            !finding.is_error() || finding.message.contains("spiffe://"),
            "pkilint: {finding:?}"
        );
    }
}

#[tokio::test]
async fn pod_certificate_requests_with_a_wrong_identity_key_ca_or_namespace_are_denied() {
    let _op = in_process();
    let env = signet_testenv::env();
    let client = env.client().await;
    let ns_guard = env.namespace("podcert-deny").await;
    let ns = ns_guard.name();
    let ca = unique("pod-deny");
    apply(env, &root_ca(&ca, "")).unwrap();
    wait_ca(&client, &ca, ("True", None), None).await;
    let fenced = unique("pod-fenced");
    apply(
        env,
        &root_ca(&fenced, "  allowedNamespaces: {names: [somewhere-else]}\n"),
    )
    .unwrap();
    wait_ca(&client, &fenced, ("True", None), None).await;
    let node = unique("node");
    let ids = workload(ns, "app-0", "app", &node);
    workload(ns, "other-0", "other", &node);
    let (_, stub) = stub_csr(
        "deny-p256",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let (_, p521) = stub_csr(
        "deny-p521",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    );
    let ours = format!("signet.dev/{ca}");
    let base = |name: &'static str| Ask {
        ns,
        name,
        signer: ours.clone(),
        pod: "app-0",
        ids: ids.clone(),
        sa: "app",
        node: &node,
        stub: &stub,
        max_seconds: None,
    };

    // Another pod's uid: someone asking for a pod it is not.
    let mut a = base("wrong-uid");
    a.ids.0 = "0b6e1f4c-1111-4222-8333-944455556666".into();
    create(&a);
    // The pod runs as "app", the request claims "other" (a real SA).
    let mut b = base("wrong-sa");
    b.sa = "other";
    b.ids.1 = uid_of(env, &["serviceaccount", "-n", ns, "other"]);
    create(&b);
    // A key the signer cannot sign for.
    let mut c = base("p521");
    c.stub = &p521;
    create(&c);
    // A CA that does not exist, and one that does not serve this namespace.
    let mut d = base("no-ca");
    d.signer = "signet.dev/no-such-ca".into();
    create(&d);
    let mut e = base("fenced");
    e.signer = format!("signet.dev/{fenced}");
    create(&e);

    for (name, reason, says) in [
        ("wrong-uid", "IdentityMismatch", "uid"),
        ("wrong-sa", "IdentityMismatch", "runs as ServiceAccount"),
        ("p521", "UnsupportedKeyType", "ECDSAP256"),
        ("no-ca", "IssuerNotFound", "no-such-ca"),
        ("fenced", "NamespaceNotAllowed", ns),
    ] {
        let (type_, got, message, status) = answered(ns, name).await;
        assert_eq!(
            (type_.as_str(), got.as_str()),
            ("Denied", reason),
            "{name}: {message}"
        );
        assert!(message.contains(says), "{name}: {message}");
        assert!(
            status.get("certificateChain").is_none(),
            "{name} got a certificate"
        );
    }
}
