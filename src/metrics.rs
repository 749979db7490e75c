//! Prometheus metrics, rendered in the text exposition format. Labels are
//! bounded: controller names and error reasons only — never object names.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::published::Published;

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// All of Signet's metrics.
#[derive(Default)]
pub struct Metrics {
    reconciles: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    issued: AtomicU64,
    renewed: AtomicU64,
    revoked: AtomicU64,
    crls: AtomicU64,
}

impl Metrics {
    /// Records one reconcile of `controller` and its outcome (`None` for
    /// success, else the bounded failure reason).
    pub fn observe_reconcile(
        &self,
        controller: &'static str,
        took: Duration,
        failure: Option<&'static str>,
    ) {
        let result = failure.unwrap_or("Success");
        if let Ok(mut m) = self.reconciles.lock() {
            *m.entry((controller, result)).or_default() += 1;
        }
        if let Ok(mut h) = self.durations.lock() {
            let h = h.entry(controller).or_default();
            let secs = took.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    /// Counts an issued (or renewed) certificate.
    pub fn certificate_issued(&self, renewed: bool) {
        if renewed {
            self.renewed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.issued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a revocation.
    pub fn certificate_revoked(&self) {
        self.revoked.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a published CRL.
    pub fn crl_published(&self) {
        self.crls.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the text exposition format. `store_degraded` comes from the
    /// store's health.
    pub fn render(&self, state: &Published, store_degraded: bool, store_queued: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP signet_reconcile_total Reconciles by controller and result (Success or a condition reason).\n# TYPE signet_reconcile_total counter\n");
        if let Ok(m) = self.reconciles.lock() {
            for ((c, r), n) in m.iter() {
                out.push_str(&format!(
                    "signet_reconcile_total{{controller=\"{c}\",result=\"{r}\"}} {n}\n"
                ));
            }
        }
        out.push_str("# HELP signet_reconcile_duration_seconds Reconcile latency.\n# TYPE signet_reconcile_duration_seconds histogram\n");
        if let Ok(m) = self.durations.lock() {
            for (c, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    out.push_str(&format!(
                        "signet_reconcile_duration_seconds_bucket{{controller=\"{c}\",le=\"{b}\"}} {}\n",
                        h.counts[i]
                    ));
                }
                out.push_str(&format!(
                    "signet_reconcile_duration_seconds_bucket{{controller=\"{c}\",le=\"+Inf\"}} {}\n",
                    h.count
                ));
                out.push_str(&format!(
                    "signet_reconcile_duration_seconds_sum{{controller=\"{c}\"}} {}\n",
                    h.sum
                ));
                out.push_str(&format!(
                    "signet_reconcile_duration_seconds_count{{controller=\"{c}\"}} {}\n",
                    h.count
                ));
            }
        }
        let counters = [
            (
                "signet_certificates_issued_total",
                "Certificates issued for the first time.",
                &self.issued,
            ),
            (
                "signet_certificates_renewed_total",
                "Certificates renewed or reissued.",
                &self.renewed,
            ),
            (
                "signet_certificates_revoked_total",
                "Certificates revoked.",
                &self.revoked,
            ),
            (
                "signet_crls_published_total",
                "CRLs signed and published.",
                &self.crls,
            ),
        ];
        for (name, help, v) in counters {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        let gauges = [
            (
                "signet_ready",
                "1 when the controllers run.",
                u64::from(state.is_ready()),
            ),
            (
                "signet_leader",
                "1 when this replica reconciles.",
                u64::from(state.is_leader()),
            ),
            (
                "signet_store_degraded",
                "1 when the SQLite mirror cannot be written (writes are queued).",
                u64::from(store_degraded),
            ),
            (
                "signet_store_queued_writes",
                "Mirror/audit writes waiting for the database.",
                store_queued,
            ),
        ];
        for (name, help, v) in gauges {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            ));
        }
        out
    }
}
