//! The OCSP responder over real sockets: the controllers in this process
//! against the real API server and local-kms (every KMS call counted by
//! the project's `Observed` wrapper), queried by `openssl ocsp` (POST) and
//! by hand (RFC 5019 GET), answers linted by pkilint.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use signet::kms::{AwsKms, KeySpec, KmsSettings, Observed, SignCounter, StaticCredentials};
use signet_testenv::tools;

struct Op {
    namespace: String,
    pki: SocketAddr,
    signs: Arc<SignCounter>,
}

static OP: std::sync::OnceLock<Op> = std::sync::OnceLock::new();

/// The controllers and the PKI listener, on local-kms, started once.
fn op() -> &'static Op {
    OP.get_or_init(|| {
        let env = signet_testenv::env();
        let ns = "signet-ocsp".to_string();
        env.kubectl_ok(&["create", "namespace", &ns]).ok();
        let signs = Arc::new(SignCounter::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (ns2, signs2) = (ns.clone(), signs.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let pki = signet::http::bind("127.0.0.1:0".parse().unwrap(), "pki")
                    .await
                    .expect("PKI listener");
                let addr = pki.local_addr().expect("address");
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
                .await
                .expect("KMS client for local-kms");
                let db = signet_testenv::run_dir().join("ocsp.db");
                let ctx = signet::controller::Context::new(signet::controller::ContextParts {
                    client: env.client().await,
                    keys: Arc::new(Observed::new(Arc::new(kms), signs2)),
                    store: signet::store::Store::open(&db).expect("mirror"),
                    namespace: ns2,
                    default_key_spec: KeySpec::EccNistP256,
                    clock: Arc::new(signet::clock::SystemClock),
                    instance: Some("ocsp-test".into()),
                })
                .with_public_base_url(Some(format!("http://{addr}")));
                let ctx = Arc::new(ctx);
                let state = signet::http::HttpState {
                    published: ctx.published.clone(),
                    metrics: ctx.metrics.clone(),
                    store: ctx.store.clone().into(),
                };
                tokio::spawn(signet::http::serve(
                    pki,
                    signet::http::Site::Pki,
                    state,
                    signet::http::Limits::default(),
                ));
                tx.send(addr).expect("address handed over");
                signet::controller::run_all(ctx, 4).await;
            });
        });
        let pki = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("operator did not start");
        Op {
            namespace: ns,
            pki,
            signs,
        }
    })
}

/// One HTTP exchange: (status, lower-cased headers, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    ctype: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    if !ctype.is_empty() {
        head.push_str(&format!("Content-Type: {ctype}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = tools::openssl(args);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A root CA with a CRL object and two leaves, once OCSP answers for it.
struct Pki {
    ca: String,
    crl: String,
    ns: String,
    ca_pem: std::path::PathBuf,
    good: String,
    good_pem: std::path::PathBuf,
    _ns: signet_testenv::TestNamespace,
}

async fn pki(prefix: &str) -> Pki {
    let o = op();
    let env = signet_testenv::env();
    let client = env.client().await;
    let guard = env.namespace(prefix).await;
    let ns = guard.name().to_string();
    let (ca, crl_name) = (unique(prefix), unique(&format!("{prefix}-crl")));
    apply(env, &root_ca(&ca, "")).unwrap();
    apply(env, &crl(&crl_name, &ca, &o.namespace)).unwrap();
    wait_crl(&client, &crl_name, 1, None).await;
    apply(
        env,
        &certificate(&ns, "good", &ca, "  dnsNames: [good.example]\n"),
    )
    .unwrap();
    let c = wait_cert(&client, &ns, "good", ("True", None), None).await;
    let good = c.status.unwrap().serial_number.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s = secrets.get("good-tls").await.unwrap();
    let good_pem = tools::artifact("good.pem", secret_text(&s, "tls.crt").as_bytes());
    let (_, _, ca_body) = http(o.pki, "GET", &format!("/ca/{ca}.pem"), "", b"");
    let ca_pem = tools::artifact("ca.pem", &ca_body);
    // The responder is issued with the CRL; wait until it answers.
    let path = ca_pem.display().to_string();
    let url = format!("http://{}/ocsp/{ca}", o.pki);
    eventually("OCSP answering", || {
        let (path, url, good) = (path.clone(), url.clone(), good.clone());
        async move {
            let (_, text) = openssl(&[
                "ocsp",
                "-issuer",
                &path,
                "-serial",
                &format!("0x{good}"),
                "-url",
                &url,
                "-CAfile",
                &path,
            ]);
            text.contains(": good").then_some(())
        }
    })
    .await;
    Pki {
        ca,
        crl: crl_name,
        ns,
        ca_pem,
        good,
        good_pem,
        _ns: guard,
    }
}

/// `openssl ocsp` POST for `serial` under `p`'s CA at `url`: its output.
fn ask(p: &Pki, serial: &str, url: &str) -> String {
    let ca = p.ca_pem.display().to_string();
    let (_, text) = openssl(&[
        "ocsp",
        "-issuer",
        &ca,
        "-serial",
        &format!("0x{serial}"),
        "-url",
        url,
        "-CAfile",
        &ca,
        "-resp_text",
    ]);
    text
}

async fn revoke(p: &Pki, name: &str) {
    let client = signet_testenv::env().client().await;
    let certs: Api<signet::api::Certificate> = Api::namespaced(client.clone(), &p.ns);
    certs
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"revocation": {"reason": "keyCompromise"}}})),
        )
        .await
        .unwrap();
    wait_cert(&client, &p.ns, name, ("False", Some("Revoked")), None).await;
}

#[tokio::test]
async fn openssl_gets_good_then_revoked_with_reason_and_time_after_revocation_and_unknown_and_unauthorized()
 {
    let p = pki("ocsp-status").await;
    let o = op();
    let url = format!("http://{}/ocsp/{}", o.pki, p.ca);
    let good = ask(&p, &p.good, &url);
    assert!(good.contains("Response verify OK"), "{good}");
    assert!(good.contains(&format!("0x{}: good", p.good)), "{good}");
    assert!(good.contains("OCSP Nonce"), "the nonce is echoed: {good}");

    let unknown = ask(&p, "7e57000000000001", &url);
    assert!(unknown.contains(": unknown"), "{unknown}");

    // Another CA Signet does not run: unauthorized.
    let other = ask(&p, &p.good, &format!("http://{}/ocsp/no-such-ca", o.pki));
    assert!(other.contains("unauthorized"), "{other}");

    // The cached good answer turns revoked once the revocation lands.
    let before = cached_get(&p, o.pki).await;
    assert!(before.contains(": good"), "{before}");
    revoke(&p, "good").await;
    let client = signet_testenv::env().client().await;
    wait_crl(&client, &p.crl, 2, None).await;
    let revoked = eventually("OCSP says revoked", || {
        let url = url.clone();
        let p = &p;
        async move {
            let t = ask(p, &p.good, &url);
            t.contains(": revoked").then_some(t)
        }
    })
    .await;
    assert!(revoked.contains("Reason: keyCompromise"), "{revoked}");
    assert!(revoked.contains("Revocation Time:"), "{revoked}");
    let after = cached_get(&p, o.pki).await;
    assert!(
        after.contains(": revoked"),
        "the GET cache was invalidated: {after}"
    );
}

/// A GET (RFC 5019, no nonce) for the good serial; openssl reads the answer.
async fn cached_get(p: &Pki, addr: SocketAddr) -> String {
    use base64::Engine as _;
    let ca = p.ca_pem.display().to_string();
    let req = tools::artifact("get-req.der", b"");
    let (ok, t) = openssl(&[
        "ocsp",
        "-issuer",
        &ca,
        "-cert",
        &p.good_pem.display().to_string(),
        "-no_nonce",
        "-reqout",
        &req.display().to_string(),
    ]);
    assert!(ok, "{t}");
    let der = std::fs::read(&req).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let path = format!(
        "/ocsp/{}/{}",
        p.ca,
        b64.replace('/', "%2F").replace('+', "%2B")
    );
    let (status, head, body) = http(addr, "GET", &path, "", b"");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("content-type: application/ocsp-response"),
        "{head}"
    );
    assert!(
        head.contains("public, no-transform, must-revalidate") && head.contains("expires:"),
        "RFC 5019 caching headers: {head}"
    );
    let findings = tools::pkilint_ocsp(&body);
    assert!(
        !findings
            .iter()
            .any(|f| matches!(f.severity.as_str(), "ERROR" | "FATAL")),
        "pkilint lint_ocsp_response: {findings:#?}"
    );
    let resp = tools::artifact("get-resp.der", &body);
    let (ok, t) = openssl(&[
        "ocsp",
        "-respin",
        &resp.display().to_string(),
        "-issuer",
        &ca,
        "-cert",
        &p.good_pem.display().to_string(),
        "-CAfile",
        &ca,
        "-no_nonce",
    ]);
    assert!(ok && t.contains("Response verify OK"), "{t}");
    t
}

#[tokio::test]
async fn garbage_posts_and_gets_are_malformed_request_never_a_crash() {
    let p = pki("ocsp-garbage").await;
    let o = op();
    let malformed = ocsp_error(1);
    for (method, path, body) in [
        (
            "POST",
            format!("/ocsp/{}", p.ca),
            b"not DER at all".to_vec(),
        ),
        (
            "POST",
            format!("/ocsp/{}", p.ca),
            vec![0x30, 0x82, 0xff, 0xff, 0],
        ),
        ("GET", format!("/ocsp/{}/%%%", p.ca), vec![]),
        ("GET", format!("/ocsp/{}/AAAA", p.ca), vec![]),
    ] {
        let ctype = if method == "POST" {
            "application/ocsp-request"
        } else {
            ""
        };
        let (status, head, got) = http(o.pki, method, &path, ctype, &body);
        assert_eq!(status, 400, "{method} {path}: {head}");
        assert_eq!(got, malformed, "{method} {path}");
    }
    let (status, _, _) = http(
        o.pki,
        "POST",
        &format!("/ocsp/{}", p.ca),
        "text/plain",
        b"x",
    );
    assert_eq!(status, 415);
    // The server still answers.
    let url = format!("http://{}/ocsp/{}", o.pki, p.ca);
    assert!(ask(&p, &p.good, &url).contains(": good"));
}

fn ocsp_error(code: u8) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, code]
}

/// 10,000 queries for 1,000 serials (one issued, the rest unknown) sign
/// nothing through KMS: the delegated responder's key is in memory.
#[tokio::test]
async fn a_burst_of_10000_queries_for_1000_serials_costs_no_kms_sign() {
    let p = pki("ocsp-burst").await;
    let o = op();
    let ca = p.ca_pem.display().to_string();
    let mut requests = Vec::new();
    for i in 0..1000u32 {
        let serial = if i == 0 {
            p.good.clone()
        } else {
            format!("5e{i:08x}")
        };
        let req = tools::artifact("burst.der", b"");
        let (ok, t) = openssl(&[
            "ocsp",
            "-issuer",
            &ca,
            "-serial",
            &format!("0x{serial}"),
            "-no_nonce",
            "-reqout",
            &req.display().to_string(),
        ]);
        assert!(ok, "{t}");
        requests.push(std::fs::read(&req).unwrap());
    }
    let before = o.signs.count();
    let started = std::time::Instant::now();
    let path = format!("/ocsp/{}", p.ca);
    let answered = tokio::task::spawn_blocking(move || {
        let mut ok = 0;
        for round in 0..10 {
            for r in &requests {
                let (status, _, body) = http(o.pki, "POST", &path, "application/ocsp-request", r);
                ok += usize::from(status == 200 && body.len() > 5);
                let _ = round;
            }
        }
        ok
    })
    .await
    .unwrap();
    let signs = o.signs.count() - before;
    eprintln!(
        "OCSP burst: 10000 queries for 1000 serials in {:?}, {signs} KMS Sign calls",
        started.elapsed()
    );
    assert_eq!(answered, 10_000);
    assert_eq!(signs, 0, "answers must not cost KMS signatures");
}

/// `openssl s_server` serving `cert`/`key` on loopback for one connection,
/// stapling the OCSP response in `staple`; returns its port once it
/// accepts.
fn s_server(cert: &str, key: &str, staple: &str) -> (std::process::Child, u16) {
    let port = signet_testenv::free_port();
    let log = tools::artifact("s_server.log", b"");
    let out = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let child = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            cert,
            "-key",
            key,
            "-status_file",
            staple,
            "-naccept",
            "1",
            "-quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("openssl s_server");
    let start = std::time::Instant::now();
    // Up once the port cannot be bound any more (a probe connection would
    // use up the one accepted session).
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "s_server did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// `openssl s_client -status -crl_check` against `port`, trusting `ca`
/// and checking `crl`: (handshake verified, output).
fn s_client(port: u16, ca: &str, crl: &str) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "good.example",
            "-CAfile",
            ca,
            "-CRL",
            crl,
            "-crl_check",
            "-status",
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The OCSP response for `cert_pem` (DER file) and the served CRL (PEM
/// file), as a relying party fetches them from the PKI endpoints.
fn fetch_staple_and_crl(p: &Pki, addr: SocketAddr, tag: &str) -> (String, String) {
    let ca = p.ca_pem.display().to_string();
    let resp = tools::artifact(&format!("staple-{tag}.der"), b"");
    let (ok, text) = openssl(&[
        "ocsp",
        "-issuer",
        &ca,
        "-cert",
        &p.good_pem.display().to_string(),
        "-url",
        &format!("http://{addr}/ocsp/{}", p.ca),
        "-CAfile",
        &ca,
        "-respout",
        &resp.display().to_string(),
    ]);
    assert!(ok, "{text}");
    let (status, _, crl) = http(addr, "GET", &format!("/crl/{}.pem", p.crl), "", b"");
    assert_eq!(status, 200);
    let crl = tools::artifact(&format!("crl-{tag}.pem"), &crl);
    (resp.display().to_string(), crl.display().to_string())
}

#[tokio::test]
async fn tls_handshake_with_stapled_ocsp_and_crl_check_succeeds_when_good_and_fails_once_revoked() {
    let p = pki("ocsp-tls").await;
    let o = op();
    let client = signet_testenv::env().client().await;
    let secret = Api::<Secret>::namespaced(client.clone(), &p.ns)
        .get("good-tls")
        .await
        .unwrap();
    let key = tools::artifact("good.key", secret_text(&secret, "tls.key").as_bytes());
    let (cert, key) = (p.good_pem.display().to_string(), key.display().to_string());
    let ca = p.ca_pem.display().to_string();

    let (staple, crl) = fetch_staple_and_crl(&p, o.pki, "good");
    let (mut server, port) = s_server(&cert, &key, &staple);
    let (ok, text) = s_client(port, &ca, &crl);
    let _ = server.kill();
    let _ = server.wait();
    assert!(ok, "a good certificate must pass -crl_check:\n{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("OCSP Response Status: successful"), "{text}");
    assert!(text.contains("Cert Status: good"), "{text}");

    revoke(&p, "good").await;
    wait_crl(&client, &p.crl, 2, None).await;
    let (staple, crl) = fetch_staple_and_crl(&p, o.pki, "revoked");
    let (mut server, port) = s_server(&cert, &key, &staple);
    let (ok, text) = s_client(port, &ca, &crl);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        !ok,
        "a revoked certificate must fail the handshake:\n{text}"
    );
    assert!(text.contains("certificate revoked"), "{text}");
    let (_, staple_text) = openssl(&["ocsp", "-respin", &staple, "-resp_text", "-noverify"]);
    assert!(
        staple_text.contains("Cert Status: revoked"),
        "the stapled answer says so too:\n{staple_text}"
    );
}
