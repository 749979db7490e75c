//! Lease-based leader election with fencing, for `replicas > 1`.
//!
//! Only the holder of the `signet-leader` Lease reconciles, and only while
//! the lease is valid *by its own monotonic clock*: each successful renewal
//! opens the [`Fence`] until the moment the request was sent plus the renew
//! deadline (two thirds of the lease duration). The remaining third is the
//! margin for clock-rate differences between nodes and for a write already
//! on the wire. A standby takes over only after it has watched the
//! holder's record stay unchanged for a whole lease duration by *its own*
//! clock, so the two replicas never compare wall clocks.
//!
//! A leader paused past its lease (SIGSTOP, a frozen VM) wakes with its
//! fence closed: its in-flight reconciles, KMS calls and database writes
//! are refused, and its next renewal finds the Lease taken, so it stops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{info, warn};

use crate::fence::Fence;

/// Lease name.
pub const LEASE: &str = "signet-leader";
/// Default lease duration (`--lease-duration`).
pub const LEASE_SECONDS: u64 = 15;
/// Pod label the leader sets to `"true"` (and every other replica to
/// `"false"`) with `--leader-label`; the chart's PKI Service selects on it.
pub const LEADER_LABEL: &str = "signet.dev/leader";

/// Who competes for which Lease, and how fast.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the operator's).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
}

impl LeaseConfig {
    /// How long after sending a successful renewal this replica may act.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Pause between attempts to take or renew.
    pub fn retry_period(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(500))
    }
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Another replica holds the Lease now.
    TakenBy(String),
    /// Renewals kept failing until the fence closed.
    RenewFailed(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::TakenBy(h) => write!(f, "the Lease is held by {h:?} now"),
            Lost::RenewFailed(e) => write!(f, "could not renew it before it ran out: {e}"),
        }
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    fence: Fence,
    /// The other holder's record as last seen, and when we first saw it.
    observed: Option<(String, Instant)>,
}

fn now_micro() -> MicroTime {
    MicroTime(super::conditions::jiff_ts(time::OffsetDateTime::now_utc()))
}

impl Elector {
    /// An elector for `cfg` that opens and closes `fence`.
    pub fn new(client: Client, cfg: LeaseConfig, fence: Fence) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            fence,
            observed: None,
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.cfg.identity
    }

    fn spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let mut s = previous.cloned().unwrap_or_default();
        if s.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            s.acquire_time = Some(now_micro());
            s.lease_transitions = Some(s.lease_transitions.unwrap_or(0) + 1);
        }
        s.holder_identity = Some(self.cfg.identity.clone());
        s.renew_time = Some(now_micro());
        s.lease_duration_seconds = Some(self.cfg.duration.as_secs().max(1) as i32);
        s
    }

    /// Whether another holder's lease has run out, by our own clock: its
    /// record (resourceVersion) has not changed for its whole duration.
    fn expired(&mut self, lease: &Lease, spec: &LeaseSpec) -> bool {
        let record = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        match &self.observed {
            Some((seen, since)) if *seen == record => since.elapsed() > duration,
            _ => {
                self.observed = Some((record, Instant::now()));
                false
            }
        }
    }

    /// One attempt to take or renew; `Ok(None)` when we hold the Lease
    /// (the fence is open until the renew deadline), `Ok(Some(holder))`
    /// when another replica does.
    async fn try_once(&mut self) -> Result<Option<String>, kube::Error> {
        let sent = Instant::now();
        let written = match self.api.get_opt(LEASE).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE.into()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                if holder != self.cfg.identity && !holder.is_empty() && !self.expired(&lease, &spec)
                {
                    return Ok(Some(holder));
                }
                lease.spec = Some(self.spec(Some(&spec)));
                // With its resourceVersion this is a compare-and-swap.
                self.api
                    .replace(LEASE, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => {
                self.fence.extend_until(sent + self.cfg.renew_deadline());
                self.observed = None;
                Ok(None)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some("another replica".into())),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&mut self) {
        info!(identity = %self.cfg.identity, lease = LEASE, "standing by for the leader lease");
        loop {
            match self.try_once().await {
                Ok(None) => {
                    info!(identity = %self.cfg.identity, "became leader");
                    return;
                }
                Ok(Some(_)) => {}
                Err(e) => warn!(error = %super::kube_message(&e), "leader election"),
            }
            tokio::time::sleep(self.cfg.retry_period()).await;
        }
    }

    /// Renews the Lease until it is lost; then the fence is closed.
    pub async fn hold(&mut self) -> Lost {
        loop {
            tokio::time::sleep(self.cfg.retry_period()).await;
            match self.try_once().await {
                Ok(None) => {}
                Ok(Some(holder)) => {
                    self.fence.close();
                    return Lost::TakenBy(holder);
                }
                Err(e) => {
                    let msg = super::kube_message(&e);
                    if !self.fence.is_open() {
                        self.fence.close();
                        return Lost::RenewFailed(msg);
                    }
                    warn!(error = %msg, "could not renew the leader lease; retrying while it is still valid");
                }
            }
        }
    }

    /// Hands the Lease over at shutdown (a standby takes it at once) if we
    /// still hold it; closes the fence first.
    pub async fn release(&mut self) {
        self.fence.close();
        let Ok(Some(mut lease)) = self.api.get_opt(LEASE).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        lease.spec = Some(spec);
        match self
            .api
            .replace(LEASE, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("released the leader lease"),
            Err(e) => {
                warn!(error = %super::kube_message(&e), "could not release the leader lease; a standby takes over when it runs out")
            }
        }
    }
}

/// Sets this pod's [`LEADER_LABEL`] (best effort: a failure is logged, and
/// only routing of the PKI Service depends on it).
pub async fn label_pod(client: Client, namespace: &str, pod: &str, leader: bool) {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let labels = BTreeMap::from([(LEADER_LABEL, leader.to_string())]);
    let patch = json!({"metadata": {"labels": labels}});
    if let Err(e) = api
        .patch(pod, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        warn!(error = %super::kube_message(&e), pod, "could not set the pod's {LEADER_LABEL} label (the PKI Service routes by it; grant patch on pods in the release namespace)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_timing_leaves_a_third_of_the_lease_as_margin() {
        let cfg = LeaseConfig {
            namespace: "x".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        assert_eq!(cfg.renew_deadline(), Duration::from_secs(10));
        assert_eq!(cfg.retry_period(), Duration::from_secs(3));
        assert!(cfg.retry_period() * 3 <= cfg.renew_deadline());
    }
}
