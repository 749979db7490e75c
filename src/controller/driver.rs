//! The one driver every kind runs on: backoff gate → the kind's pipeline →
//! on failure, the one failure path. Also the shared status writer and
//! Event publisher.
//!
//! A kind plugs in by implementing [`Kind`] (its status fields and its
//! pipeline). The driver owns what used to be written three times: the
//! `Ready=False` condition, attempts and growing backoff, Events on change
//! only, the failure audit row, the reconcile metric.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use time::OffsetDateTime;
use tracing::{Instrument, warn};

use super::conditions::{self, Cond};
use super::{Context, Error};
use crate::api::{CONDITION_READY, FIELD_MANAGER};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::metrics::Metrics;
use crate::store::AuditEvent;

/// A stop request every controller waits on: once requested, each stops
/// taking work and finishes the reconciles it is running
/// (kube-runtime's graceful shutdown), so `run_all` returns with nothing
/// half-done. Cloneable; all clones share one request.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    rx: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
}

impl Default for Stop {
    fn default() -> Self {
        use futures::FutureExt;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        Stop {
            tx: Arc::new(std::sync::Mutex::new(Some(tx))),
            rx: rx.map(|_| ()).boxed().shared(),
        }
    }
}

impl Stop {
    /// Asks every controller to stop (idempotent).
    pub fn request(&self) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(());
        }
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// Resolves once a stop is requested (the controllers' shutdown
    /// trigger).
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        self.rx.clone()
    }
}

/// What a successful reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Up to date until this time (renewal, CRL refresh): requeue then.
    Until(OffsetDateTime),
    /// Nothing to do until the object or something it watches changes.
    AwaitChange,
    /// Look again after this long.
    After(Duration),
}

impl Next {
    fn action(self, now: OffsetDateTime) -> Action {
        match self {
            Next::Until(t) => {
                let secs = (t - now).whole_seconds().max(1) as u64;
                Action::requeue(Duration::from_secs(secs))
            }
            Next::AwaitChange => Action::await_change(),
            Next::After(d) => Action::requeue(d),
        }
    }
}

/// The status fields the driver manages for every kind.
pub trait StatusFields: Default + Clone + PartialEq + Serialize + Debug + Send + Sync {
    /// Conditions.
    fn conditions(&self) -> &[Condition];
    /// Replaces the conditions.
    fn set_conditions(&mut self, c: Vec<Condition>);
    /// observedGeneration.
    fn observed_generation(&self) -> Option<i64>;
    /// Sets observedGeneration.
    fn set_observed_generation(&mut self, g: Option<i64>);
    /// Consecutive failed attempts.
    fn attempts(&self) -> Option<u32>;
    /// Time of the last failure (RFC 3339).
    fn last_failure(&self) -> Option<&str>;
    /// Sets (or clears) the failure bookkeeping.
    fn set_failure(&mut self, attempts: Option<u32>, at: Option<String>);
}

/// A kind the driver reconciles.
#[async_trait::async_trait]
pub trait Kind:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static
{
    /// Its status type.
    type Status: StatusFields;
    /// Controller name: metric label and log field.
    const CONTROLLER: &'static str;
    /// The Event action (`Issue`, `Reconcile`, `Publish`).
    const ACTION: &'static str;

    /// The current status.
    fn status_of(&self) -> Option<&Self::Status>;

    /// The API of this object (namespaced or cluster-wide).
    fn api(&self, client: kube::Client) -> Api<Self>;

    /// The pipeline: observe → decide → act → status → effects.
    async fn reconcile(&self, ctx: &Context, now: OffsetDateTime) -> Result<Next, Error>;

    /// Conditions besides `Ready=False` to set on failure.
    fn failure_conditions(&self, _err: &Error, _attempts: u32, _now: OffsetDateTime) -> Vec<Cond> {
        Vec::new()
    }

    /// An audit row for a failure worth keeping (policy denial, signing
    /// failure); written when the reason or message changes.
    fn failure_audit(&self, _err: &Error, _now: OffsetDateTime) -> Option<AuditEvent> {
        None
    }

    /// True when a request is waiting that must not sit out a backoff (a
    /// valid revocation request).
    fn urgent(&self, _now: OffsetDateTime) -> bool {
        false
    }

    /// Sets this object's own series (expiry, readiness) from `status`.
    /// Called with every status written and with the status found at the
    /// start of each reconcile; the series go when the object goes.
    fn record_metrics(&self, _status: &Self::Status, _metrics: &Metrics) {}
}

/// Backoff after `attempts` consecutive failures: 5 s doubling to 5 min,
/// with up to 20% jitter.
pub fn backoff(attempts: u32) -> Duration {
    let capped = backoff_base(attempts).as_secs();
    let jitter = rand::random::<u64>() % (capped * 200 + 1);
    Duration::from_millis(capped * 1000 + jitter)
}

/// Base backoff (no jitter) after `attempts` consecutive failures.
pub fn backoff_base(attempts: u32) -> Duration {
    Duration::from_secs(
        5u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(6))
            .min(300),
    )
}

/// The backoff gate: a failure's status write wakes the controller at once;
/// without this, a failing object would be retried in a hot loop. Returns
/// how long to wait while the last failure is recent and the spec did not
/// change since.
pub fn backoff_gate(
    status: &impl StatusFields,
    generation: Option<i64>,
    now: OffsetDateTime,
) -> Option<Duration> {
    let attempts = status.attempts().filter(|a| *a > 0)?;
    if status.observed_generation() != generation {
        return None;
    }
    let last = parse_rfc3339(status.last_failure()?)?;
    let wait = time::Duration::try_from(backoff_base(attempts)).ok()? - (now - last);
    (wait > time::Duration::ZERO).then(|| Duration::from_secs(wait.whole_seconds().max(1) as u64))
}

/// An RFC 3339 status field as Unix seconds (a metric value).
pub fn unix_seconds(field: Option<&str>) -> Option<i64> {
    parse_rfc3339(field?).map(OffsetDateTime::unix_timestamp)
}

/// The `Ready` condition as a metric sees it: true, false or unknown.
pub fn ready_state(conds: &[Condition]) -> Option<bool> {
    match conditions::find(conds, CONDITION_READY)?.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

/// `namespace/name` or `name`.
pub fn display_name<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", obj.meta().name.as_deref().unwrap_or("")),
        None => obj.meta().name.clone().unwrap_or_default(),
    }
}

/// Writes `status` with server-side apply (field manager `signet`), unless
/// it equals what the object already has. Fields Signet no longer sets are
/// removed by the apply itself; statuses written by older versions with a
/// merge patch get those fields cleared once.
pub async fn apply_status<K: Kind>(
    ctx: &Context,
    obj: &K,
    status: &K::Status,
) -> Result<(), Error> {
    obj.record_metrics(status, &ctx.metrics);
    if obj.status_of() == Some(status) {
        return Ok(());
    }
    ctx.may_write()?;
    let api = obj.api(ctx.client.clone());
    let name = obj.name_any();
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name},
        "status": status,
    });
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    ctx.echoes.wrote(&written);
    if let Some(clear) = legacy_leftovers(obj, status) {
        let written = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(clear))
            .await?;
        ctx.echoes.wrote(&written);
    }
    Ok(())
}

/// For a status once written with a merge patch (manager `signet`,
/// operation `Update`): a merge patch nulling the fields the new status no
/// longer has, which the apply cannot remove because it does not own them.
fn legacy_leftovers<K: Kind>(obj: &K, status: &K::Status) -> Option<serde_json::Value> {
    let legacy = obj.meta().managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.operation.as_deref() == Some("Update")
            && m.subresource.as_deref() == Some("status")
    });
    if !legacy {
        return None;
    }
    let old = serde_json::to_value(obj.status_of()?).ok()?;
    let new = serde_json::to_value(status).ok()?;
    let mut nulls = serde_json::Map::new();
    for key in old.as_object()?.keys() {
        if new.get(key).is_none() {
            nulls.insert(key.clone(), serde_json::Value::Null);
        }
    }
    (!nulls.is_empty()).then(|| json!({ "status": nulls }))
}

/// Server-side applies `obj` (field manager `signet`, forced) as `name`
/// through `api`. A refusal retrying cannot fix names `what` and `fix`.
pub async fn apply_object<K>(
    ctx: &Context,
    api: &Api<K>,
    name: &str,
    obj: &K,
    what: &str,
    fix: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize,
{
    ctx.may_write()?;
    let mut value = serde_json::to_value(obj).map_err(|e| Error::Other(e.to_string()))?;
    value["apiVersion"] = json!(K::api_version(&()));
    value["kind"] = json!(K::kind(&()));
    let written = api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(value),
        )
        .await
        .map_err(|e| Error::from_write(what, fix, e))?;
    ctx.echoes.wrote(&written);
    Ok(())
}

/// Publishes an Event about `obj`; a failure to publish is logged, never
/// fatal. Callers emit only on changes, so failures do not storm.
pub async fn event<K: Kind>(ctx: &Context, obj: &K, type_: EventType, reason: &str, note: String) {
    if ctx.may_write().is_err() {
        return;
    }
    let ev = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: K::ACTION.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

/// When a replica whose fence is closed looks at an object again.
pub const NOT_LEADER_RETRY: Duration = Duration::from_secs(10);

/// The reconcile function handed to kube-runtime for every kind.
pub async fn reconcile<K: Kind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        kind = K::CONTROLLER,
        object = %display_name(obj.as_ref())
    );
    run(obj, ctx).instrument(span).await
}

async fn run<K: Kind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Not the writer (lease lost, or paused past it): touch nothing, look
    // again later; the leader reconciles this object meanwhile.
    if ctx.may_write().is_err() {
        return Ok(Action::requeue(NOT_LEADER_RETRY));
    }
    let now = ctx.clock.now();
    if let Some(st) = obj.status_of() {
        obj.record_metrics(st, &ctx.metrics);
    }
    if let Some(st) = obj.status_of()
        && !obj.urgent(now)
        && let Some(wait) = backoff_gate(st, obj.meta().generation, now)
    {
        return Ok(Action::requeue(wait));
    }
    let start = std::time::Instant::now();
    let res = obj.reconcile(&ctx, now).await;
    ctx.metrics.observe_reconcile(
        K::CONTROLLER,
        start.elapsed(),
        res.as_ref().err().map(Error::reason),
    );
    match res {
        Ok(next) => Ok(next.action(now)),
        Err(e) => fail(&ctx, obj.as_ref(), e, now).await,
    }
}

/// The status a failure leaves: `Ready=False` with the reason, attempts and
/// last failure time for retryable errors (cleared for the others), the
/// kind's extra conditions. Pure.
pub fn failed_status<K: Kind>(obj: &K, err: &Error, now: OffsetDateTime) -> (K::Status, u32) {
    let prev = obj.status_of().cloned().unwrap_or_default();
    let attempts = if err.is_retryable() {
        prev.attempts().unwrap_or(0).saturating_add(1)
    } else {
        0
    };
    let mut set = vec![Cond::no(CONDITION_READY, err.reason(), err.to_string())];
    set.extend(obj.failure_conditions(err, attempts, now));
    let generation = obj.meta().generation;
    let mut next = prev.clone();
    next.set_conditions(conditions::merge(prev.conditions(), &set, generation, now));
    next.set_observed_generation(generation);
    if attempts > 0 {
        next.set_failure(Some(attempts), Some(rfc3339(now)));
    } else {
        next.set_failure(None, None);
    }
    (next, attempts)
}

/// The one failure path.
async fn fail<K: Kind>(
    ctx: &Context,
    obj: &K,
    err: Error,
    now: OffsetDateTime,
) -> Result<Action, Error> {
    if err.is_not_leader() {
        // Nothing to record: writing it is what the fence forbids.
        warn!(error = %err, "not the leader; leaving this object to the replica that is");
        return Ok(Action::requeue(NOT_LEADER_RETRY));
    }
    let (reason, message) = (err.reason(), err.to_string());
    let changed = obj
        .status_of()
        .and_then(|s| conditions::find(s.conditions(), CONDITION_READY))
        .is_none_or(|c| c.reason != reason || c.message != message);
    warn!(reason, error = %message, "not ready");
    let (status, attempts) = failed_status(obj, &err, now);
    apply_status(ctx, obj, &status).await?;
    if changed {
        event(ctx, obj, EventType::Warning, reason, message).await;
        if let Some(row) = obj.failure_audit(&err, now) {
            ctx.store.audit(row);
        }
    }
    Ok(if err.is_retryable() {
        Action::requeue(backoff(attempts))
    } else {
        Action::await_change()
    })
}

/// kube-runtime's error policy: only reached when the failure path itself
/// could not write status (the API is down); retry with backoff.
pub fn error_policy<K: Kind>(obj: Arc<K>, _err: &Error, _ctx: Arc<Context>) -> Action {
    let attempts = obj.status_of().and_then(|s| s.attempts()).unwrap_or(0);
    Action::requeue(backoff(attempts.saturating_add(1)))
}

/// Drains a controller stream, logging (never dropping) each result.
pub async fn drain<S, T, E>(name: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    T: Debug,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    stream
        .for_each(|res| async move {
            match res {
                Ok(obj) => tracing::debug!(controller = name, object = ?obj, "reconciled"),
                Err(e) => tracing::debug!(controller = name, error = %e, "reconcile error"),
            }
        })
        .await;
}

/// Implements [`StatusFields`] for a status type with the usual field names.
#[macro_export]
macro_rules! status_fields {
    ($t:ty, $attempts:ident) => {
        impl $crate::controller::driver::StatusFields for $t {
            fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                &self.conditions
            }
            fn set_conditions(
                &mut self,
                c: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
            ) {
                self.conditions = c;
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
            fn set_observed_generation(&mut self, g: Option<i64>) {
                self.observed_generation = g;
            }
            fn attempts(&self) -> Option<u32> {
                self.$attempts
            }
            fn last_failure(&self) -> Option<&str> {
                self.last_failure_time.as_deref()
            }
            fn set_failure(&mut self, attempts: Option<u32>, at: Option<String>) {
                self.$attempts = attempts;
                self.last_failure_time = at;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CRL, CrlStatus};

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn failing(attempts: Option<u32>, last: i64, observed: i64) -> CrlStatus {
        CrlStatus {
            failed_attempts: attempts,
            last_failure_time: Some(rfc3339(t(last))),
            observed_generation: Some(observed),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_base(1), Duration::from_secs(5));
        assert_eq!(backoff_base(2), Duration::from_secs(10));
        assert_eq!(backoff_base(3), Duration::from_secs(20));
        assert_eq!(backoff_base(30), Duration::from_secs(300));
        let b = backoff(2);
        assert!(b >= Duration::from_secs(10) && b <= Duration::from_secs(12));
    }

    #[test]
    fn the_gate_holds_a_recent_failure_and_releases_on_time_or_a_spec_change() {
        let cases = [
            (
                "a failure 3 s ago waits the rest of 10 s",
                failing(Some(2), 1000, 1),
                Some(1),
                1003,
                Some(7),
            ),
            (
                "a failure past its backoff goes ahead",
                failing(Some(2), 1000, 1),
                Some(1),
                1010,
                None,
            ),
            (
                "a spec change goes ahead at once",
                failing(Some(2), 1000, 1),
                Some(2),
                1003,
                None,
            ),
            (
                "no attempts recorded goes ahead",
                failing(None, 1000, 1),
                Some(1),
                1003,
                None,
            ),
        ];
        for (name, st, generation, now, want) in cases {
            assert_eq!(
                backoff_gate(&st, generation, t(now)),
                want.map(Duration::from_secs),
                "{name}"
            );
        }
    }

    fn crl_object() -> CRL {
        serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "CRL",
            "metadata": {"name": "c", "generation": 3},
            "spec": {"caRef": {"name": "ca"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_retryable_failure_counts_attempts_and_a_terminal_one_clears_them() {
        let mut obj = crl_object();
        let (st, n) = failed_status(&obj, &Error::Other("api down".into()), t(100));
        assert_eq!((n, st.failed_attempts), (1, Some(1)));
        assert_eq!(st.observed_generation, Some(3));
        obj.status = Some(st);
        let (st, n) = failed_status(&obj, &Error::Other("api down".into()), t(110));
        assert_eq!((n, st.failed_attempts), (2, Some(2)));
        obj.status = Some(st);
        let (st, n) = failed_status(&obj, &Error::InvalidSpec("bad".into()), t(120));
        assert_eq!(
            (n, st.failed_attempts, st.last_failure_time),
            (0, None, None)
        );
        let ready = conditions::find(&st.conditions, CONDITION_READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
    }
}
