//! The admin and public PKI listeners over real sockets, serving what the
//! in-process operator signed against the real API server: HEAD answers
//! like GET without a body, caches revalidate with 304, CRL lifetimes stop
//! at nextUpdate, wrong methods and paths get 405/404 that say what to do,
//! oversize requests are refused without taking the server down, and a
//! certificate issued with the default public base URL points at a CRL and
//! an issuer certificate that this server serves and openssl verifies.
//! Plus: a listener that cannot bind stops `signet run` with the address
//! and the flag named.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use signet_testenv::tools;

/// One HTTP answer as it came off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lower-cased names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` with `headers` and `body` on a fresh connection
/// (`Connection: close`) and reads the whole answer.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: signet.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    // A server that refuses a request may close before reading all of it:
    // a failed write still leaves its answer to read.
    let wrote = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let raw = read_answer(&mut s);
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "no HTTP answer to {method} {path} (write: {wrote:?}): {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// Everything the server sent until it closed (a reset after the answer,
/// as when it closes with our request unread, ends the read too).
fn read_answer(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("reading the answer: {e}"),
            Err(_) => return raw,
        }
    }
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    send(addr, "GET", path, &[], &[])
}

/// `http://host:port/path` → GET on it (the URLs stamped into certificates).
fn fetch(url: &str) -> Answer {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not http://"));
    let (host, path) = rest.split_once('/').unwrap();
    get(host.parse().unwrap(), &format!("/{path}"))
}

/// A root CA with a CRL object, once both are served.
async fn served_root(prefix: &str) -> (String, String) {
    let op = in_process_with_base_url();
    let client = signet_testenv::env().client().await;
    let (root, crl_name) = (unique(prefix), unique(&format!("{prefix}-crl")));
    apply(signet_testenv::env(), &root_ca(&root, "")).unwrap();
    apply(signet_testenv::env(), &crl(&crl_name, &root, &op.namespace)).unwrap();
    wait_crl(&client, &crl_name, 1, None).await;
    let path = format!("/crl/{crl_name}.crl");
    eventually(&format!("{path} served"), || {
        let path = path.clone();
        async move { (get(op.pki, &path).status == 200).then_some(()) }
    })
    .await;
    eventually(&format!("/ca/{root}.crt served"), || {
        let path = format!("/ca/{root}.crt");
        async move { (get(op.pki, &path).status == 200).then_some(()) }
    })
    .await;
    (root, crl_name)
}

#[tokio::test]
async fn head_answers_every_get_route_with_the_same_headers_and_no_body() {
    let op = in_process_with_base_url();
    op.ctx.published.set_ready(true);
    let (root, crl_name) = served_root("head").await;
    let pki_paths = [
        format!("/crl/{crl_name}.crl"),
        format!("/crl/{crl_name}.pem"),
        format!("/ca/{root}.crt"),
        format!("/ca/{root}.pem"),
        format!("/ca/{root}/chain.pem"),
    ];
    let routes = ["/healthz", "/readyz"]
        .iter()
        .map(|p| (op.admin, p.to_string()))
        .chain(pki_paths.into_iter().map(|p| (op.pki, p)));
    for (addr, path) in routes {
        let g = get(addr, &path);
        let h = send(addr, "HEAD", &path, &[], &[]);
        assert_eq!(h.status, g.status, "{path}");
        assert!(h.body.is_empty(), "HEAD {path} sent a body: {:?}", h.text());
        assert!(!g.body.is_empty(), "GET {path} sent no body");
        assert_eq!(
            h.header("content-length"),
            g.body.len().to_string(),
            "{path}"
        );
        for name in ["content-type", "etag", "last-modified"] {
            assert_eq!(h.header(name), g.header(name), "{name} of {path}");
        }
        // (max-age counts down, so it may differ by the second between the two.)
        assert_eq!(
            h.header("cache-control").is_empty(),
            g.header("cache-control").is_empty(),
            "{path}"
        );
    }
    // /metrics changes between two reads; HEAD still sends no body.
    let h = send(op.admin, "HEAD", "/metrics", &[], &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert!(h.header("content-type").starts_with("text/plain"));
}

#[tokio::test]
async fn a_client_with_the_current_crl_or_certificate_gets_304_without_a_body() {
    let op = in_process_with_base_url();
    let (root, crl_name) = served_root("etag").await;
    for path in [
        format!("/crl/{crl_name}.crl"),
        format!("/crl/{crl_name}.pem"),
        format!("/ca/{root}.crt"),
        format!("/ca/{root}/chain.pem"),
    ] {
        let first = get(op.pki, &path);
        let etag = first.header("etag").to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong ETag on {path}: {etag:?}"
        );
        let again = send(
            op.pki,
            "GET",
            &path,
            &[("If-None-Match", etag.as_str())],
            &[],
        );
        assert_eq!(again.status, 304, "{path}: {}", again.text());
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), etag);
        assert!(
            again
                .header("cache-control")
                .starts_with("public, max-age="),
            "a 304 carries the cache lifetime too: {:?}",
            again.headers
        );
        let other = send(
            op.pki,
            "GET",
            &path,
            &[("If-None-Match", "\"something-else\"")],
            &[],
        );
        assert_eq!(other.status, 200, "{path}");
        assert_eq!(other.body, first.body);
    }
    // The DER and PEM forms are different representations: different tags.
    let der = get(op.pki, &format!("/crl/{crl_name}.crl"));
    let pem = get(op.pki, &format!("/crl/{crl_name}.pem"));
    assert_ne!(der.header("etag"), pem.header("etag"));
    // If-Modified-Since: Last-Modified (thisUpdate) or later is current.
    let modified = der.header("last-modified").to_string();
    assert!(modified.ends_with(" GMT"), "{modified:?}");
    let path = format!("/crl/{crl_name}.crl");
    let since = send(
        op.pki,
        "GET",
        &path,
        &[("If-Modified-Since", modified.as_str())],
        &[],
    );
    assert_eq!(since.status, 304);
    let old = send(
        op.pki,
        "GET",
        &path,
        &[("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")],
        &[],
    );
    assert_eq!(old.status, 200);
}

#[tokio::test]
async fn the_crl_cache_lifetime_runs_up_to_next_update_and_never_past_it() {
    let op = in_process_with_base_url();
    let (_, crl_name) = served_root("maxage").await;
    let client = signet_testenv::env().client().await;
    let status = wait_crl(&client, &crl_name, 1, None).await.status.unwrap();
    let next_update = signet::clock::parse_rfc3339(status.next_update.as_deref().unwrap()).unwrap();
    let before = time::OffsetDateTime::now_utc();
    let a = get(op.pki, &format!("/crl/{crl_name}.crl"));
    let after = time::OffsetDateTime::now_utc();
    let cc = a.header("cache-control");
    let max_age: i64 = cc
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .unwrap_or_else(|| panic!("no max-age in {cc:?}"))
        .parse()
        .unwrap();
    // One second of slack each way: the status and the header round
    // differently.
    let upper = (next_update - before).whole_seconds() + 1;
    let lower = (next_update - after).whole_seconds() - 1;
    assert!(
        (lower..=upper).contains(&max_age),
        "max-age {max_age} should be the seconds left until nextUpdate ({lower}..={upper})"
    );
    assert!(max_age > 0);
    // The DER is the CRL the API server holds, served as application/pkix-crl.
    assert_eq!(a.header("content-type"), "application/pkix-crl");
    assert_eq!(crl_entries(&a.body).len(), 0);
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_unknown_names_get_404_listing_what_exists() {
    let op = in_process_with_base_url();
    let (root, crl_name) = served_root("methods").await;
    for (addr, method, path, allow) in [
        (op.pki, "POST", format!("/crl/{crl_name}.crl"), "GET, HEAD"),
        (op.pki, "DELETE", format!("/ca/{root}.crt"), "GET, HEAD"),
        (op.pki, "GET", format!("/ocsp/{root}"), "POST"),
        (op.pki, "PUT", format!("/ocsp/{root}/MEMwQTA"), "GET, HEAD"),
        (op.admin, "POST", "/healthz".to_string(), "GET, HEAD"),
    ] {
        let a = send(addr, method, &path, &[], b"x");
        assert_eq!(a.status, 405, "{method} {path}: {}", a.text());
        assert_eq!(a.header("allow"), allow, "{method} {path}");
    }
    let missing = get(op.pki, "/crl/no-such-crl.crl");
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("no-such-crl") && missing.text().contains(&crl_name),
        "the 404 names what was asked for and what is published: {}",
        missing.text()
    );
    let missing = get(op.pki, "/ca/no-such-ca/chain.pem");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains(&root), "{}", missing.text());
    // Each listener points at the other for the other's paths.
    let a = get(op.pki, "/metrics");
    assert_eq!(a.status, 404);
    assert!(a.text().contains("--http-addr"), "{}", a.text());
    let a = get(op.admin, &format!("/crl/{crl_name}.crl"));
    assert_eq!(a.status, 404);
    assert!(a.text().contains("--pki-addr"), "{}", a.text());
}

#[tokio::test]
async fn oversize_heads_and_bodies_are_refused_and_the_server_keeps_serving() {
    let op = in_process_with_base_url();
    let (root, _) = served_root("limits").await;
    let big = "a".repeat(32 * 1024);
    let a = send(
        op.pki,
        "GET",
        &format!("/ca/{root}.pem"),
        &[("X-Padding", big.as_str())],
        &[],
    );
    assert!(
        a.status == 431 || a.status == 400,
        "a 32 KiB header is refused, got {}",
        a.status
    );
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = send(op.admin, "GET", "/healthz", &many, &[]);
    assert!(
        a.status == 431 || a.status == 400,
        "200 header fields are refused, got {}",
        a.status
    );

    // A body over 64 KiB is refused from its Content-Length, before the
    // client sends it (Expect: 100-continue).
    let mut s = TcpStream::connect(op.pki).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /ocsp/{root} HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let a = parse(&read_answer(&mut s)).unwrap();
    assert_eq!(a.status, 413, "{}", a.text());
    // A small body reaches the OCSP responder, which calls it malformed.
    let a = send(
        op.pki,
        "POST",
        &format!("/ocsp/{root}"),
        &[("Content-Type", "application/ocsp-request")],
        &[0x30, 0x00],
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.body, [0x30, 0x03, 0x0a, 0x01, 0x01], "malformedRequest");

    // Still serving, on both listeners.
    assert_eq!(get(op.pki, &format!("/ca/{root}.pem")).status, 200);
    assert_eq!(get(op.admin, "/healthz").status, 200);
}

#[tokio::test]
async fn the_der_ca_certificate_is_what_openssl_reads_and_the_pem_forms_agree() {
    let op = in_process_with_base_url();
    let (root, _) = served_root("der").await;
    let client = signet_testenv::env().client().await;
    let ca = wait_ca(&client, &root, ("True", None), None).await;
    let pem = ca.status.unwrap().certificate.unwrap();

    let der = get(op.pki, &format!("/ca/{root}.crt"));
    assert_eq!(der.status, 200);
    assert_eq!(der.header("content-type"), "application/pkix-cert");
    let file = tools::artifact("ca.der", &der.body);
    let out = tools::openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        &file.display().to_string(),
        "-noout",
        "-subject",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{root} Root")));
    let out = tools::openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        &file.display().to_string(),
        "-outform",
        "PEM",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pem.trim());
    assert_eq!(
        get(op.pki, &format!("/ca/{root}.pem")).text().trim(),
        pem.trim()
    );
    assert!(
        get(op.pki, &format!("/ca/{root}/chain.pem"))
            .text()
            .contains(pem.trim())
    );
}

/// The URLs in `pem`'s CRL distribution points and AIA, from openssl:
/// (CDP, caIssuers, OCSP).
fn stamped_urls(pem: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let file = tools::artifact("stamped.pem", pem.as_bytes());
    let out = tools::openssl(&[
        "x509",
        "-in",
        &file.display().to_string(),
        "-noout",
        "-ext",
        "crlDistributionPoints,authorityInfoAccess",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (mut cdp, mut issuers, mut ocsp) = (vec![], vec![], vec![]);
    for line in text.lines().map(str::trim) {
        if let Some(u) = line.strip_prefix("CA Issuers - URI:") {
            issuers.push(u.to_string());
        } else if let Some(u) = line.strip_prefix("OCSP - URI:") {
            ocsp.push(u.to_string());
        } else if let Some(u) = line.strip_prefix("URI:") {
            cdp.push(u.to_string());
        }
    }
    (cdp, issuers, ocsp)
}

#[tokio::test]
async fn certificates_issued_with_the_default_base_url_point_at_a_crl_and_issuer_that_verify() {
    let op = in_process_with_base_url();
    let env = signet_testenv::env();
    let client = env.client().await;
    let base = format!("http://{}", op.pki);
    let (root, root_crl) = served_root("aia").await;
    let inter = unique("aia-int");
    let inter_crl = unique("aia-int-crl");
    apply(env, &intermediate_ca(&inter, &root, "")).unwrap();
    let inter_ca = wait_ca(&client, &inter, ("True", None), None).await;
    apply(env, &crl(&inter_crl, &inter, &op.namespace)).unwrap();
    wait_crl(&client, &inter_crl, 1, None).await;
    let ns = env.namespace("http-aia").await;
    apply(
        env,
        &certificate(ns.name(), "web", &inter, "  dnsNames: [web.example.com]\n"),
    )
    .unwrap();
    wait_cert(&client, ns.name(), "web", ("True", None), None).await;
    let secret = Api::<Secret>::namespaced(client.clone(), ns.name())
        .get("web-tls")
        .await
        .unwrap();
    let leaf = secret_text(&secret, "tls.crt");

    // The intermediate carries its parent's URLs; the leaf its issuer's.
    let inter_pem = inter_ca.status.unwrap().certificate.unwrap();
    assert_eq!(
        stamped_urls(&inter_pem),
        (
            vec![format!("{base}/crl/{root_crl}.crl")],
            vec![format!("{base}/ca/{root}.crt")],
            vec![format!("{base}/ocsp/{root}")],
        )
    );
    let (cdp, issuers, ocsp) = stamped_urls(&leaf);
    assert_eq!(cdp, [format!("{base}/crl/{inter_crl}.crl")]);
    assert_eq!(issuers, [format!("{base}/ca/{inter}.crt")]);
    assert_eq!(ocsp, [format!("{base}/ocsp/{inter}")]);

    // Fetched from the running server: the issuer, then the CRL it signed.
    let issuer = fetch(&issuers[0]);
    assert_eq!(issuer.status, 200);
    let issuer_der = tools::artifact("issuer.der", &issuer.body);
    let issuer_pem = tools::openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        &issuer_der.display().to_string(),
    ]);
    let issuer_pem = String::from_utf8_lossy(&issuer_pem.stdout).into_owned();
    assert_eq!(
        issuer_pem.trim(),
        inter_pem.trim(),
        "caIssuers serves the issuing CA"
    );
    let issuer_file = tools::artifact("issuer.pem", issuer_pem.as_bytes());
    let cdp_url = cdp[0].clone();
    let crl = eventually("the leaf's CDP answering", || {
        let url = cdp_url.clone();
        async move {
            let a = fetch(&url);
            (a.status == 200).then_some(a)
        }
    })
    .await;
    let crl_file = tools::artifact("leaf-cdp.crl", &crl.body);
    let out = tools::openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &crl_file.display().to_string(),
        "-CAfile",
        &issuer_file.display().to_string(),
        "-noout",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.contains("verify OK"),
        "openssl crl -CAfile: {said}"
    );

    // And the whole chain with the served CRL checked.
    let root_pem = get(op.pki, &format!("/ca/{root}.pem")).text();
    let crl_pem = fetch(&format!("{}.pem", cdp[0].strip_suffix(".crl").unwrap())).text();
    let files = [
        ("root.pem", root_pem.as_bytes()),
        ("crl.pem", crl_pem.as_bytes()),
        ("inter.pem", inter_pem.as_bytes()),
        ("leaf.pem", leaf.as_bytes()),
    ]
    .map(|(n, b)| tools::artifact(n, b).display().to_string());
    let out = tools::openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &files[0],
        "-CRLfile",
        &files[1],
        "-untrusted",
        &files[2],
        &files[3],
    ]);
    assert!(
        out.status.success(),
        "openssl verify -crl_check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `signet run` with the given listener addresses; returns (exit code,
/// stderr). It must exit by itself within 30 s.
fn run_with(admin: &str, pki: &str) -> (Option<i32>, String) {
    let dir = signet_testenv::run_dir().join(format!("bind-{}", signet_testenv::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_signet"))
        .arg("run")
        .env("SIGNET_HTTP_ADDR", admin)
        .env("SIGNET_PKI_ADDR", pki)
        .env("SIGNET_DB", dir.join("signet.db"))
        .env("SIGNET_LOG_FORMAT", "text")
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env_remove("SIGNET_PUBLIC_BASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("signet run kept running with {admin} / {pki}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_listener_that_cannot_bind_stops_startup_naming_the_address_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let free = || format!("127.0.0.1:{}", signet_testenv::free_port());
    for (admin, pki, flag) in [
        (taken.clone(), free(), "--http-addr"),
        (free(), taken.clone(), "--pki-addr"),
    ] {
        let (code, stderr) = run_with(&admin, &pki);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on {taken}")) && stderr.contains(flag),
            "the error names {taken} and {flag}: {stderr}"
        );
    }
    let same = free();
    let (code, stderr) = run_with(&same, &same);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("need different addresses"), "{stderr}");
}
