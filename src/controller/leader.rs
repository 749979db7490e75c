//! Lease-based leader election for `replicas > 1`: only the holder of the
//! `signet-leader` Lease reconciles. A leader that cannot renew exits, so a
//! standby takes over after the lease expires.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{error, info};

/// Lease name.
pub const LEASE: &str = "signet-leader";
/// How long a lease is valid without renewal.
pub const LEASE_SECONDS: i32 = 30;

fn now_micro() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(super::conditions::jiff_ts(
        time::OffsetDateTime::now_utc(),
    ))
}

/// Tries once to take or renew the lease; true when we hold it.
async fn try_take(api: &Api<Lease>, identity: &str) -> Result<bool, kube::Error> {
    let now = time::OffsetDateTime::now_utc();
    match api.get_opt(LEASE).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE.into()),
                    ..Default::default()
                },
                spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                    holder_identity: Some(identity.into()),
                    lease_duration_seconds: Some(LEASE_SECONDS),
                    acquire_time: Some(now_micro()),
                    renew_time: Some(now_micro()),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let renewed = spec
                .renew_time
                .as_ref()
                .map(|t| t.0.as_second())
                .unwrap_or(0);
            let expired = now.unix_timestamp()
                > renewed + i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
            if holder != identity && !expired {
                return Ok(false);
            }
            let mut s = spec;
            if holder != identity {
                s.acquire_time = Some(now_micro());
                s.lease_transitions = Some(s.lease_transitions.unwrap_or(0) + 1);
            }
            s.holder_identity = Some(identity.into());
            s.renew_time = Some(now_micro());
            s.lease_duration_seconds = Some(LEASE_SECONDS);
            lease.spec = Some(s);
            // resourceVersion makes this a compare-and-swap.
            match api.replace(LEASE, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Blocks until this replica holds the lease.
pub async fn acquire(client: Client, namespace: &str, identity: &str) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    info!(identity, "waiting for leadership");
    loop {
        match try_take(&api, identity).await {
            Ok(true) => {
                info!(identity, "became leader");
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => error!(error = %e, "leader election"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Renews the lease forever; exits the process when leadership is lost.
pub async fn hold(client: Client, namespace: String, identity: String) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let mut failures = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        match try_take(&api, &identity).await {
            Ok(true) => failures = 0,
            Ok(false) => {
                error!("lost leadership; exiting so a standby takes over");
                std::process::exit(1);
            }
            Err(e) => {
                failures += 1;
                error!(error = %e, failures, "could not renew the leader lease");
                if failures >= 2 {
                    std::process::exit(1);
                }
            }
        }
    }
}
