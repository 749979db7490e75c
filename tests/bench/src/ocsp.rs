//! `ocsp [--serials N] [--clients C] [--seconds S]`: OCSP answers per
//! second from the responder's cache.
//!
//! One CA with a CRL object (so its delegated responder exists), N issued
//! serials in the mirror, one RFC 5019 request (no nonce) per serial made
//! by `openssl ocsp -reqout`. Every serial is asked once to warm the cache;
//! then C clients, each on one keep-alive loopback connection, POST the
//! requests round robin for S seconds. Prints answers/s, latency p50/p99
//! and the KMS `Sign` calls made while measuring, as one JSON line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use signet::api::CRL;
use signet::http::{HttpState, Limits, Site};
use signet::kms::{Observed, SignCounter};
use signet::store::{CertRecord, CertStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util;

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let serials: usize = util::flag(args, "--serials", 1000)?;
    let clients: usize = util::flag(args, "--clients", 8)?;
    let seconds: u64 = util::flag(args, "--seconds", 10)?;
    let ns = "signet-bench-ocsp";
    let signs = Arc::new(SignCounter::default());
    let counter = signs.clone();
    let ctx = util::context_with_keys(ns, move |k| Arc::new(Observed::new(k, counter))).await?;
    let client = ctx.client.clone();
    let pki = signet::http::bind("127.0.0.1:0".parse()?, "pki").await?;
    let addr = pki.local_addr()?;
    let state = HttpState {
        published: ctx.published.clone(),
        metrics: ctx.metrics.clone(),
        store: ctx.store.clone().into(),
    };
    tokio::spawn(signet::http::serve(
        pki,
        Site::Pki,
        state,
        Limits::default(),
    ));
    tokio::spawn(signet::controller::run_all(ctx.clone(), 4));

    let ca = format!("ocsp-bench-{}", std::process::id());
    util::ready_root_ca(&client, &ca, "OCSP Bench Root").await?;
    let crl: CRL = serde_json::from_value(serde_json::json!({
        "apiVersion": "signet.dev/v1alpha1", "kind": "CRL",
        "metadata": {"name": format!("{ca}-crl")},
        "spec": {"caRef": {"name": ca}, "publish": {"namespace": ns}}
    }))?;
    Api::<CRL>::all(client.clone())
        .create(&PostParams::default(), &crl)
        .await?;
    mirror_serials(&ctx, &ca, ns, serials).await?;
    let requests = Arc::new(make_requests(addr, &ca, serials).await?);
    let probe = requests[0].clone();
    util::until("the OCSP responder", Duration::from_secs(120), || {
        let probe = probe.clone();
        let ca = ca.clone();
        async move { answer_ok(addr, &ca, &probe).await.then_some(()) }
    })
    .await?;
    // Warm: every serial once (these answers are signed and cached).
    for r in requests.iter() {
        anyhow::ensure!(answer_ok(addr, &ca, r).await, "warm-up query failed");
    }

    let before = signs.count();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (requests, ca) = (requests.clone(), ca.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(addr, &ca, &requests, c, deadline).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    for t in tasks {
        let (l, e) = t.await??;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let answers = latencies.len() as u64;
    let line = serde_json::json!({
        "scenario": "ocsp",
        "serials": serials,
        "clients": clients,
        "seconds": seconds,
        "answers": answers,
        "answers_per_second": (answers as f64 / seconds as f64).round(),
        "latency_p50_us": pct(0.50),
        "latency_p99_us": pct(0.99),
        "errors": errors,
        "kms_sign_calls": signs.count() - before,
    });
    println!("{line}");
    Ok(())
}

/// N active certificates of `ca` in the mirror, as issuances leave them.
async fn mirror_serials(
    ctx: &signet::controller::Context,
    ca: &str,
    ns: &str,
    n: usize,
) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for i in 0..n {
        ctx.store.upsert_certificate(CertRecord {
            ca: ca.to_string(),
            namespace: ns.to_string(),
            name: format!("bench-{i}"),
            uid: String::new(),
            serial: serial(i),
            subject: format!("CN=bench-{i}"),
            sans: vec![format!("DNS:bench-{i}.example")],
            usages: vec!["server auth".into()],
            status: CertStatus::Active,
            not_before: now - 60,
            not_after: now + 86_400,
            revision: 1,
            revoked_at: None,
            revocation_reason: None,
            certificate_pem: None,
            secret_name: None,
            issued_at: now,
        });
    }
    ctx.store.flush().await?;
    Ok(())
}

fn serial(i: usize) -> String {
    format!("5eb0{i:012x}")
}

/// One DER OCSP request (no nonce) per serial, made by openssl against
/// the CA certificate the PKI listener serves.
async fn make_requests(addr: SocketAddr, ca: &str, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let (status, ca_pem) = get(addr, &format!("/ca/{ca}.pem")).await?;
    anyhow::ensure!(status == 200, "GET /ca/{ca}.pem: {status}");
    let dir = signet_testenv::run_dir().join("ocsp-bench");
    std::fs::create_dir_all(&dir)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let req = dir.join("req.der");
        let o = std::process::Command::new("openssl")
            .args(["ocsp", "-issuer"])
            .arg(&ca_file)
            .args([
                "-serial",
                &format!("0x{}", serial(i)),
                "-no_nonce",
                "-reqout",
            ])
            .arg(&req)
            .output()?;
        anyhow::ensure!(o.status.success(), "openssl ocsp -reqout failed");
        out.push(std::fs::read(&req)?);
    }
    Ok(out)
}

fn request_bytes(ca: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /ocsp/{ca} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Reads one HTTP/1.1 response (Content-Length framed): (status, body).
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<(u16, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no status line"))?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                read_more(s, buf).await?;
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok((status, body));
        }
        read_more(s, buf).await?;
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = s.read(&mut chunk).await?;
    anyhow::ensure!(n > 0, "connection closed");
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .await?;
    read_response(&mut s, &mut Vec::new()).await
}

/// Whether one POST of `req` gets a successful OCSP answer (status 0).
async fn answer_ok(addr: SocketAddr, ca: &str, req: &[u8]) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    if s.write_all(&request_bytes(ca, req)).await.is_err() {
        return false;
    }
    matches!(read_response(&mut s, &mut Vec::new()).await, Ok((200, body)) if successful(&body))
}

/// Whether `body` is a signed OCSP answer: `OCSPResponse ::= SEQUENCE {
/// responseStatus ENUMERATED (0 = successful), responseBytes .. }` (error
/// answers such as unauthorized are 5 bytes and carry no signature).
fn successful(body: &[u8]) -> bool {
    body.len() > 64 && body.windows(3).take(6).any(|w| w == [0x0a, 0x01, 0x00])
}

/// One client on one keep-alive connection until `deadline`: latencies in
/// microseconds, and the number of failed answers.
async fn client_loop(
    addr: SocketAddr,
    ca: &str,
    requests: &[Vec<u8>],
    offset: usize,
    deadline: Instant,
) -> anyhow::Result<(Vec<u64>, u64)> {
    let wire: Vec<Vec<u8>> = requests.iter().map(|r| request_bytes(ca, r)).collect();
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut buf = Vec::new();
    let (mut latencies, mut errors) = (Vec::new(), 0u64);
    let mut i = offset * 97;
    while Instant::now() < deadline {
        let start = Instant::now();
        s.write_all(&wire[i % wire.len()]).await?;
        let (status, body) = read_response(&mut s, &mut buf).await?;
        if status == 200 && successful(&body) {
            latencies.push(start.elapsed().as_micros() as u64);
        } else {
            errors += 1;
        }
        i += 1;
    }
    Ok((latencies, errors))
}
