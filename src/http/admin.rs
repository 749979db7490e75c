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

/// Ready while the controllers run and the audit trail can be written,
/// or while this replica stands by for the leader lease (ready to take
/// over; the PKI Service routes by the leader label, not by readiness).
pub fn readyz(ctx: &HttpState) -> Reply {
    if !ctx.published.is_ready() {
        if ctx.published.is_standby() {
            return Reply::text(StatusCode::OK, "standby: waiting for the leader lease\n");
        }
        return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "controllers not running\n");
    }
    match ctx.store.get().map(|s| s.health()) {
        Some(StoreHealth::Ok) => Reply::text(StatusCode::OK, "ok\n"),
        // Not ready: nothing is signed until the audit trail can be written
        // again. (Readiness, not liveness: a restart would not fix a full
        // disk; the store catches up by itself.)
        Some(StoreHealth::Degraded { reason }) => Reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit trail unavailable, not signing: {reason}\n"),
        ),
        None => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "database not open\n"),
    }
}

/// Prometheus text exposition.
pub fn metrics(ctx: &HttpState) -> Reply {
    let store = ctx.store.get();
    let degraded = store.is_some_and(|s| !s.health().is_ok());
    let queued = store.map_or(0, |s| s.stats().queued);
    Reply::new(
        StatusCode::OK,
        crate::metrics::CONTENT_TYPE,
        ctx.metrics.render(&ctx.published, degraded, queued),
    )
}
