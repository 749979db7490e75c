//! The admin listener: liveness, readiness, metrics.

use hyper::StatusCode;

use super::reply::Reply;
use super::{HttpState, Route};
use crate::store::StoreHealth;

/// The admin route `path` names.
pub fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/healthz" => Some(Route::Healthz),
        "/readyz" => Some(Route::Readyz),
        "/metrics" => Some(Route::Metrics),
        _ => None,
    }
}

/// Alive as long as the process answers.
pub fn healthz() -> Reply {
    Reply::text(StatusCode::OK, "ok\n")
}

/// Ready while the controllers run and the audit trail can be written.
pub fn readyz(ctx: &HttpState) -> Reply {
    if !ctx.published.is_ready() {
        return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "controllers not running\n");
    }
    match ctx.store.health() {
        StoreHealth::Ok => Reply::text(StatusCode::OK, "ok\n"),
        // Not ready: nothing is signed until the audit trail can be written
        // again. (Readiness, not liveness: a restart would not fix a full
        // disk; the store catches up by itself.)
        StoreHealth::Degraded { reason } => Reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit trail unavailable, not signing: {reason}\n"),
        ),
    }
}

/// Prometheus text exposition.
pub fn metrics(ctx: &HttpState) -> Reply {
    let degraded = !ctx.store.health().is_ok();
    let queued = ctx.store.stats().queued;
    Reply::new(
        StatusCode::OK,
        crate::metrics::CONTENT_TYPE,
        ctx.metrics.render(&ctx.published, degraded, queued),
    )
}
