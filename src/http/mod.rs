//! The operator's two HTTP listeners, on hyper's HTTP/1.1 server:
//!
//! * **admin** (`--http-addr`): `/metrics`, `/healthz`, `/readyz` — for
//!   the kubelet and Prometheus, never exposed outside the cluster;
//! * **public PKI** (`--pki-addr`): `/crl/<name>.crl|.pem`,
//!   `/ca/<name>.crt|.pem`, `/ca/<name>/chain.pem` and `/ocsp/<ca>` — what
//!   relying parties fetch through the URLs stamped into certificates.
//!
//! Both run with the same [`Limits`]: a cap on open connections, on the
//! request head and body sizes, and on how long a client may take to send
//! its head or body or to read the answer. GET routes answer HEAD with the
//! same headers and no body; other methods get 405 with `Allow`.
//!
//! Each listener is bound before anything else starts ([`bind`]), so an
//! address that is taken is a startup error naming the flag, not a server
//! that silently is not there.

mod admin;
mod io;
mod ocsp;
mod pki;
mod reply;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::published::Published;
use crate::store::Store;

pub use reply::Reply;

/// What the HTTP side reads: published state, metrics, store health.
#[derive(Clone)]
pub struct HttpState {
    /// CRLs, CA certificates, readiness.
    pub published: Arc<Published>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The mirror, once this replica opened it (a standby does not).
    pub store: StoreSlot,
}

/// The store as the HTTP side sees it: empty until the replica leads and
/// opens the database. Cloneable; clones share the slot.
#[derive(Clone, Default)]
pub struct StoreSlot(Arc<std::sync::OnceLock<Store>>);

impl StoreSlot {
    /// Fills the slot (once; later calls are ignored).
    pub fn set(&self, store: Store) {
        let _ = self.0.set(store);
    }

    /// The store, when open.
    pub fn get(&self) -> Option<&Store> {
        self.0.get()
    }
}

impl From<Store> for StoreSlot {
    fn from(store: Store) -> Self {
        let slot = StoreSlot::default();
        slot.set(store);
        slot
    }
}

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `/metrics`, `/healthz`, `/readyz`.
    Admin,
    /// `/crl/...`, `/ca/...`, `/ocsp/...`.
    Pki,
}

/// Bounds every connection lives within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections per listener; further clients wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
    /// Largest request head (request line + headers), bytes; larger heads
    /// get 431. hyper's floor is 8 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in one request (more get 431).
    pub max_headers: usize,
    /// Largest request body (OCSP POST), bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Time to send a complete request head, and how long a kept-alive
    /// connection may sit idle before the next one.
    pub head_timeout: Duration,
    /// Time to send a complete request body.
    pub body_timeout: Duration,
    /// How long a write of the answer may make no progress (a client that
    /// stops reading) before the connection is dropped.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A listener address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} (set by {flag}): {error}; stop the process that holds it or choose another address with {flag}"
)]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The flag (and environment variable) that set it.
    pub flag: &'static str,
    /// What the OS said.
    pub error: std::io::Error,
}

/// Binds `addr`, set by `flag` (named in the error).
pub async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| BindError { addr, flag, error })
}

/// Serves `site` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, site: Site, state: HttpState, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(limits.max_head_bytes.max(8192))
        .max_headers(limits.max_headers)
        .header_read_timeout(limits.head_timeout);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, never spin.
                warn!(error = %e, ?site, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let io = TokioIo::new(io::WriteDeadline::new(stream, limits.write_timeout));
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(req, site, &state, &limits).await) }
        });
        let conn = http.serve_connection(io, service);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, ?site, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// One request: route, check the method, read a body only where a route
/// takes one, answer.
async fn handle(
    req: Request<Incoming>,
    site: Site,
    state: &HttpState,
    limits: &Limits,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let Some(route) = Route::of(site, parts.uri.path()) else {
        return reply::unknown_path(site, parts.uri.path()).into_response();
    };
    let allowed = route.methods();
    if !allowed.contains(&parts.method) {
        return Reply::method_not_allowed(allowed).into_response();
    }
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        // Refused before reading: a client that sent `Expect: 100-continue`
        // never has to send the body at all.
        return body_too_large(limits).into_response();
    }
    let body = if parts.method == Method::POST {
        match read_body(body, limits).await {
            Ok(b) => b,
            Err(reply) => return (*reply).into_response(),
        }
    } else {
        Bytes::new()
    };
    answer(state, &route, &parts.headers, &body)
        .await
        .into_response()
}

/// The request body, within the size and time limits.
async fn read_body(body: Incoming, limits: &Limits) -> Result<Bytes, Box<Reply>> {
    let limited = Limited::new(body, limits.max_body_bytes);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err(Box::new(Reply::text(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {}s\n",
                limits.body_timeout.as_secs()
            ),
        ))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Box::new(body_too_large(limits)))
        }
        Ok(Err(e)) => Err(Box::new(Reply::text(
            StatusCode::BAD_REQUEST,
            format!("reading the request body failed: {e}\n"),
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn body_too_large(limits: &Limits) -> Reply {
    Reply::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request bodies are limited to {} bytes\n",
            limits.max_body_bytes
        ),
    )
}

/// The resources each listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/healthz`.
    Healthz,
    /// `/readyz`.
    Readyz,
    /// `/metrics`.
    Metrics,
    /// `/crl/<name>.crl` (DER) or `/crl/<name>.pem`.
    Crl {
        /// CRL object name.
        name: &'a str,
        /// PEM instead of DER.
        pem: bool,
    },
    /// `/ca/<name>.crt` (DER) or `/ca/<name>.pem`.
    CaCert {
        /// CertificateAuthority name.
        name: &'a str,
        /// PEM instead of DER.
        pem: bool,
    },
    /// `/ca/<name>/chain.pem`.
    CaChain {
        /// CertificateAuthority name.
        name: &'a str,
    },
    /// `/ocsp/<ca>` (POST) or `/ocsp/<ca>/<base64 request>` (GET).
    Ocsp {
        /// CertificateAuthority name.
        ca: &'a str,
        /// The base64 request of a GET.
        get: Option<&'a str>,
    },
}

impl<'a> Route<'a> {
    /// The route `path` names on `site`.
    pub fn of(site: Site, path: &'a str) -> Option<Route<'a>> {
        match site {
            Site::Admin => admin::route(path),
            Site::Pki => pki::route(path),
        }
    }

    /// The methods this route answers.
    pub fn methods(&self) -> &'static [Method] {
        const GET: &[Method] = &[Method::GET, Method::HEAD];
        const POST: &[Method] = &[Method::POST];
        match self {
            Route::Ocsp { get: None, .. } => POST,
            _ => GET,
        }
    }
}

/// The answer to a request for `route` (method already checked).
async fn answer(
    state: &HttpState,
    route: &Route<'_>,
    headers: &hyper::HeaderMap,
    body: &Bytes,
) -> Reply {
    let p = &state.published;
    match *route {
        Route::Healthz => admin::healthz(),
        Route::Readyz => admin::readyz(state),
        Route::Metrics => admin::metrics(state),
        // The request's moment, read at the edge.
        Route::Crl { name, pem } => pki::crl(p, name, pem, headers, OffsetDateTime::now_utc()),
        Route::CaCert { name, pem } => pki::ca_cert(p, name, pem, headers),
        Route::CaChain { name } => pki::ca_chain(p, name, headers),
        Route::Ocsp { ca, get } => {
            ocsp::answer(state, ca, get, headers, body, OffsetDateTime::now_utc()).await
        }
    }
}

/// What a GET of `path` on `site` answers, without request headers (for
/// tests and tools that read the served state without a socket).
pub async fn route(state: &HttpState, site: Site, path: &str) -> Reply {
    match Route::of(site, path) {
        Some(r) => answer(state, &r, &hyper::HeaderMap::new(), &Bytes::new()).await,
        None => reply::unknown_path(site, path),
    }
}
