//! CRL: observe (CA, register, published CRL) → decide → act (restore,
//! sign, publish) → status → effects.

mod act;
pub mod decide;
pub mod observe;
pub mod ocsp;
pub mod publish;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use time::OffsetDateTime;

use super::driver::{self, Kind, Next};
use super::revocations;
use super::{Context, Error};
use crate::api::{CRL, CertificateAuthority, CrlStatus};
use crate::metrics::{CrlSeries, Metrics};

pub use decide::Decision;

crate::status_fields!(CrlStatus, failed_attempts);

/// Default CRL validity.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// ConfigMap annotation: the CRL number (informational; never trusted).
pub const ANN_NUMBER: &str = "signet.dev/crl-number";
/// ConfigMap annotation: nextUpdate (informational; never trusted).
pub const ANN_NEXT_UPDATE: &str = "signet.dev/next-update";
/// ConfigMap annotation: the CA.
pub const ANN_CA: &str = "signet.dev/certificate-authority";
/// Label naming the CRL object on its ConfigMap.
pub const LABEL_CRL: &str = "signet.dev/crl";
/// binaryData key of the DER CRL.
pub const DER_KEY: &str = "ca.crl";
/// The published CRL is verified again at least this often, so one
/// replaced where Signet does not watch is corrected.
pub const MAX_RECHECK: Duration = Duration::from_secs(600);

/// Where the CRL of `crl` is published: (namespace, name).
pub fn target(crl: &CRL, operator_ns: &str) -> (String, String) {
    let p = crl.spec.publish.clone().unwrap_or_default();
    (
        p.namespace.unwrap_or_else(|| operator_ns.to_string()),
        p.config_map_name
            .unwrap_or_else(|| format!("{}-crl", crl.name_any())),
    )
}

#[async_trait::async_trait]
impl Kind for CRL {
    type Status = CrlStatus;
    const CONTROLLER: &'static str = "crl";
    const ACTION: &'static str = "Publish";

    fn status_of(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }

    async fn reconcile(&self, ctx: &Context, now: OffsetDateTime) -> Result<Next, Error> {
        let world = observe::world(ctx, self).await?;
        if !world.register.skipped.is_empty() {
            tracing::warn!(skipped = ?world.register.skipped, "unreadable revocation register entries skipped");
        }
        let decision = decide::decide(self, &world, now)?;
        act::carry_out(ctx, self, &world, decision, now).await
    }

    fn record_metrics(&self, st: &CrlStatus, metrics: &Metrics) {
        metrics.set_crl(
            &self.name_any(),
            CrlSeries {
                ca: self.spec.ca_ref.name.clone(),
                next_update: driver::unix_seconds(st.next_update.as_deref()),
            },
        );
    }
}

/// Runs the CRL controller.
pub async fn controller(ctx: Arc<Context>, concurrency: u16) {
    let client = ctx.client.clone();
    let ctl = Controller::new(Api::<CRL>::all(client.clone()), watcher::Config::default());
    let store = ctl.store();
    let store2 = store.clone();
    let store3 = store.clone();
    tokio::spawn(prune_published(ctx.clone(), store.clone()));
    let stream = ctl
        .watches(
            Api::<CertificateAuthority>::all(client.clone()),
            watcher::Config::default(),
            move |ca| {
                let name = ca.name_any();
                super::refs_where(&store, |c| c.spec.ca_ref.name == name)
            },
        )
        // A revocation (register change) re-signs within seconds.
        .watches(
            Api::<ConfigMap>::namespaced(client.clone(), &ctx.namespace),
            watcher::Config::default().labels(revocations::LABEL_CA),
            move |cm| {
                let ca = cm
                    .labels()
                    .get(revocations::LABEL_CA)
                    .cloned()
                    .unwrap_or_default();
                super::refs_where(&store2, |c| c.spec.ca_ref.name == ca)
            },
        )
        // A published CRL someone changed (an old one replayed) is checked
        // again at once; in other namespaces within MAX_RECHECK.
        .watches(
            Api::<ConfigMap>::namespaced(client, &ctx.namespace),
            watcher::Config::default().labels(LABEL_CRL),
            move |cm| {
                let name = cm.labels().get(LABEL_CRL).cloned().unwrap_or_default();
                super::refs_where(&store3, |c| c.name_any() == name)
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(ctx.stop.wait())
        .run(driver::reconcile::<CRL>, driver::error_policy::<CRL>, ctx);
    driver::drain("crl", stream).await;
}

/// Removes the published CRLs and the series of deleted CRL objects.
async fn prune_published(ctx: Arc<Context>, store: kube::runtime::reflector::Store<CRL>) {
    // No wait for the store's first list: what is pruned was recorded by a
    // reconcile, and an object is in the store before it is reconciled.
    // (The controller's store never reported ready here, so waiting for it
    // meant never pruning.)
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let names: std::collections::HashSet<String> =
            store.state().iter().map(|c| c.name_any()).collect();
        ctx.published.retain_crls(|n| names.contains(n));
        let cas: std::collections::HashSet<String> = store
            .state()
            .iter()
            .map(|c| c.spec.ca_ref.name.clone())
            .collect();
        ctx.published.retain_ocsp(|ca| cas.contains(ca));
        ctx.metrics.retain_crls(|n| names.contains(n));
    }
}
