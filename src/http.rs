//! The operator's HTTP server: `/metrics`, `/healthz`, `/readyz`,
//! `/crl/<crl-name>.crl` (DER), `/crl/<crl-name>.pem` and
//! `/ca/<ca-name>.pem`. A deliberately small HTTP/1.1 GET-only server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::published::Published;
use crate::store::{Store, StoreHealth};

/// What the HTTP side reads: published state, metrics, store health.
#[derive(Clone)]
pub struct HttpState {
    /// CRLs, CA certificates, readiness.
    pub published: Arc<Published>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The mirror (health and queue depth only).
    pub store: Store,
}

/// A response: status, content type, body.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

/// Routes a GET request path.
pub async fn route(ctx: &HttpState, path: &str) -> Response {
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => {
            if !ctx.published.is_ready() {
                return Response::text(503, "controllers not running\n");
            }
            match ctx.store.health() {
                StoreHealth::Ok => Response::text(200, "ok\n"),
                // Not ready: nothing is signed until the audit trail can be
                // written again. (Readiness, not liveness: a restart would not
                // fix a full disk; the store catches up by itself.)
                StoreHealth::Degraded { reason } => Response::text(
                    503,
                    format!("audit trail unavailable, not signing: {reason}\n"),
                ),
            }
        }
        "/metrics" => {
            let degraded = !ctx.store.health().is_ok();
            let queued = ctx.store.stats().queued;
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4",
                body: ctx
                    .metrics
                    .render(&ctx.published, degraded, queued)
                    .into_bytes(),
            }
        }
        p if p.starts_with("/crl/") => {
            let file = &p["/crl/".len()..];
            let (name, pem) = match (file.strip_suffix(".crl"), file.strip_suffix(".pem")) {
                (Some(n), _) => (n, false),
                (_, Some(n)) => (n, true),
                _ => return Response::text(404, "use /crl/<name>.crl or /crl/<name>.pem\n"),
            };
            match ctx.published.crl(name) {
                Some(crl) if pem => Response {
                    status: 200,
                    content_type: "application/x-pem-file",
                    body: pem::encode(&pem::Pem::new("X509 CRL", crl.der.to_vec())).into_bytes(),
                },
                Some(crl) => Response {
                    status: 200,
                    content_type: "application/pkix-crl",
                    body: crl.der.to_vec(),
                },
                None => Response::text(404, format!("no published CRL named {name:?}\n")),
            }
        }
        p if p.starts_with("/ca/") => {
            let Some(name) = p["/ca/".len()..].strip_suffix(".pem") else {
                return Response::text(404, "use /ca/<name>.pem\n");
            };
            match ctx.published.ca(name) {
                Some(ca) => Response {
                    status: 200,
                    content_type: "application/x-pem-file",
                    body: ca.cert_pem.into_bytes(),
                },
                None => Response::text(404, format!("no CertificateAuthority named {name:?}\n")),
            }
        }
        _ => Response::text(404, "not found\n"),
    }
}

async fn handle(mut stream: TcpStream, ctx: HttpState) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    // Read the request head (bounded size and time).
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || len == buf.len() {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if read.is_err() {
        return Ok(());
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let resp = if method == "GET" || method == "HEAD" {
        route(&ctx, path).await
    } else {
        Response::text(405, "only GET\n")
    };
    let reason = match resp.status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let header = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        resp.content_type,
        resp.body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(&resp.body).await?;
    }
    stream.shutdown().await
}

/// Serves until the task is aborted.
pub async fn serve(addr: SocketAddr, ctx: HttpState) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "cannot bind the HTTP server; metrics and probes are unavailable");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, ctx).await {
                        debug!(error = %e, "http connection");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
