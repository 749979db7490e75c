//! Signet as a cert-manager external issuer: cert-manager
//! `CertificateRequest`s whose `spec.issuerRef` is `{group: signet.dev,
//! kind: CertificateAuthority}` are signed by that CA, under the same
//! policy as Signet Certificates.
//!
//! The contract (cert-manager's `types_certificaterequest.go` and its
//! external-issuer guide): act only on `Approved=True`; a `Denied` request
//! is marked `Ready=False` reason `Denied` with `status.failureTime` and
//! never signed; a refusal is `Ready=False` reason `Failed` with
//! `failureTime` (a request is one-shot: cert-manager makes a new one);
//! waiting (approval, the CA, a retry) is `Ready=False` reason `Pending`;
//! success is `Ready=True` reason `Issued` with `status.certificate` (leaf
//! and intermediates, PEM) and `status.ca` (the root). Signet writes only
//! its `Ready` condition and those fields (server-side apply; `conditions`
//! is a map keyed by type, so the approver's conditions stay its own).
//!
//! Per request: step (pure) → recorded issuance? (crash recovery) → CSR
//! (parse, verify its signature) → CA (Ready) → plan (pure) → policy (the
//! shared checks) → one KMS Sign → mirror + audit row (committed) → status.
//! The mirror row is keyed by the request's uid and written before the
//! status, so a restart between the two reuses the certificate instead of
//! signing again.
//!
//! Without cert-manager's CRDs the controller stays off (one log line) and
//! starts once they are served ([`controller`] polls discovery).

mod act;
pub mod decide;
mod status;
pub mod types;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use serde_json::json;
use time::OffsetDateTime;
use tracing::{Instrument, info, warn};

use super::{Context, Error, driver};
use crate::api::CertificateAuthority;
use crate::store::{AuditOperation, Outcome};
pub use act::sign_and_record;
use decide::{Step, reason};
use status::{ready, write_status};
pub use types::{CertificateRequest, CertificateRequestStatus, RequestCondition};

/// How often Signet looks for cert-manager's CRDs while they are absent.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);

static ACTIVE: AtomicBool = AtomicBool::new(false);
static ABSENT_CHECKS: AtomicU64 = AtomicU64::new(0);

/// Whether this process's cert-manager issuer is running (cert-manager's
/// CRDs were found).
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// How many discovery checks found cert-manager's CRDs absent.
pub fn absent_checks() -> u64 {
    ABSENT_CHECKS.load(Ordering::Relaxed)
}

/// Whether the API server serves `certificaterequests.cert-manager.io/v1`.
async fn served(client: &kube::Client) -> Result<bool, kube::Error> {
    let api: Api<CertificateRequest> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits (bounded polling) until cert-manager's CRDs are served, saying
/// once that the issuer is off meanwhile.
async fn wait_for_crds(client: &kube::Client) {
    let mut said = false;
    loop {
        match served(client).await {
            Ok(true) => return,
            Ok(false) if !said => {
                info!(
                    "cert-manager's CertificateRequest API is not installed; the cert-manager issuer stays off and starts when it appears"
                );
                said = true;
            }
            Err(e) if !said => {
                warn!(error = %super::kube_message(&e), "cannot list cert-manager CertificateRequests; the cert-manager issuer stays off and keeps checking (see the chart's RBAC)");
                said = true;
            }
            _ => {}
        }
        ABSENT_CHECKS.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
    }
}

/// What the CertificateRequest controller shares between reconciles.
struct Runner {
    ctx: Arc<Context>,
    /// Consecutive retryable failures per request uid, and when the next
    /// attempt may start (our own status writes wake the watch at once).
    retries: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Runs the cert-manager issuer once cert-manager's CRDs are served.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let stop = ctx.stop.wait();
    tokio::select! {
        _ = wait_for_crds(&ctx.client) => {}
        _ = ctx.stop.wait() => return,
    }
    info!("cert-manager's CertificateRequest API found; the cert-manager issuer is running");
    ACTIVE.store(true, Ordering::Relaxed);
    let client = ctx.client.clone();
    let ctl = Controller::new(
        Api::<CertificateRequest>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = ctl.store();
    let runner = Arc::new(Runner {
        ctx,
        retries: Mutex::new(HashMap::new()),
    });
    let stream = ctl
        // A CA becoming Ready wakes the requests waiting for it.
        .watches(
            Api::<CertificateAuthority>::all(client),
            watcher::Config::default(),
            move |ca| {
                let name = ca.name_any();
                super::refs_where(&store, |r: &CertificateRequest| {
                    r.is_for_signet() && r.spec.issuer_ref.name == name
                })
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(stop)
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(30)),
            runner,
        );
    driver::drain("certificaterequest", stream).await;
}

async fn reconcile(cr: Arc<CertificateRequest>, r: Arc<Runner>) -> Result<Action, Error> {
    if r.ctx.may_write().is_err() {
        return Ok(Action::requeue(driver::NOT_LEADER_RETRY));
    }
    let step = decide::step(&cr);
    if step == Step::Nothing {
        return Ok(Action::await_change());
    }
    let span = tracing::info_span!(
        "reconcile",
        kind = "certificaterequest",
        object = %driver::display_name(cr.as_ref())
    );
    run(&cr, &r, step).instrument(span).await
}

async fn run(cr: &CertificateRequest, r: &Runner, step: Step) -> Result<Action, Error> {
    let ctx = &r.ctx;
    let now = ctx.clock.now();
    let uid = cr.uid().unwrap_or_default();
    match step {
        Step::Nothing => Ok(Action::await_change()),
        Step::MarkDenied => {
            let msg = "The CertificateRequest was denied by an approval controller";
            write_status(
                ctx,
                cr,
                ready(cr, "False", reason::DENIED, msg, now),
                Some(now),
            )
            .await?;
            Ok(Action::await_change())
        }
        Step::AwaitApproval => {
            let msg = "Waiting for the CertificateRequest to be approved (condition Approved=True; see cert-manager's approver-policy or its default approver)";
            write_status(ctx, cr, ready(cr, "False", reason::PENDING, msg, now), None).await?;
            Ok(Action::await_change())
        }
        Step::Sign => {
            if let Some(wait) = r.wait_for_retry(&uid) {
                return Ok(Action::requeue(wait));
            }
            let start = Instant::now();
            let res = act::sign(ctx, cr, now).await;
            ctx.metrics.observe_reconcile(
                "certificaterequest",
                start.elapsed(),
                res.as_ref().err().map(Error::reason),
            );
            match res {
                Ok(()) => {
                    r.forget(&uid);
                    Ok(Action::await_change())
                }
                Err(e) => r.failed(cr, e, now).await,
            }
        }
    }
}

impl Runner {
    fn wait_for_retry(&self, uid: &str) -> Option<Duration> {
        let map = self.retries.lock().ok()?;
        let (_, next) = map.get(uid)?;
        next.checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    fn forget(&self, uid: &str) {
        if let Ok(mut map) = self.retries.lock() {
            map.remove(uid);
        }
    }

    /// The failure path: waiting on the CA is `Pending` until the CA's
    /// watch wakes us; a retryable error is `Pending` with a growing
    /// backoff; anything else fails the request for good.
    async fn failed(
        &self,
        cr: &CertificateRequest,
        err: Error,
        now: OffsetDateTime,
    ) -> Result<Action, Error> {
        let ctx = &self.ctx;
        let uid = cr.uid().unwrap_or_default();
        let message = err.to_string();
        warn!(reason = err.reason(), error = %message, "certificate request not issued");
        if matches!(err, Error::IssuerNotFound(_) | Error::IssuerNotReady(_)) {
            let cond = ready(cr, "False", reason::PENDING, &message, now);
            write_status(ctx, cr, cond, None).await?;
            return Ok(Action::await_change());
        }
        if err.is_retryable() {
            let attempts = self.bump(&uid);
            let wait = driver::backoff(attempts);
            let msg = format!("retrying after failure {attempts}: {message}");
            write_status(
                ctx,
                cr,
                ready(cr, "False", reason::PENDING, &msg, now),
                None,
            )
            .await?;
            return Ok(Action::requeue(wait));
        }
        self.forget(&uid);
        let msg = format!("{}: {message}", err.reason());
        write_status(
            ctx,
            cr,
            ready(cr, "False", reason::FAILED, &msg, now),
            Some(now),
        )
        .await?;
        let (op, outcome) = match err {
            Error::Kms(_) => (AuditOperation::SigningFailed, Outcome::Failure),
            _ => (AuditOperation::PolicyDenied, Outcome::Denied),
        };
        ctx.store.audit(
            status::audit(cr, op, outcome, now)
                .with_details(json!({"reason": err.reason(), "message": message})),
        );
        status::event(ctx, cr, EventType::Warning, reason::FAILED, msg).await;
        Ok(Action::await_change())
    }

    fn bump(&self, uid: &str) -> u32 {
        let Ok(mut map) = self.retries.lock() else {
            return 1;
        };
        let entry = map.entry(uid.to_string()).or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now() + driver::backoff_base(entry.0);
        entry.0
    }
}
