//! Prometheus metrics, built with `prometheus-client` and rendered in the
//! Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).
//!
//! Two kinds of series:
//!
//! * **Events** (reconciles, KMS calls, OCSP answers, issuances): counters
//!   and histograms whose labels are bounded — controller names, operation
//!   names, key specs and error reasons, never object names.
//! * **Objects** (one Certificate's expiry, one CA's readiness, one CRL's
//!   nextUpdate): gauges labelled with the object's namespace and name, as
//!   cert-manager does, so an alert can say which certificate is about to
//!   expire. The controllers set them from every status they write and
//!   remove them when the object goes ([`Metrics::retain_certificates`] and
//!   friends), so their number follows the number of objects and deleted
//!   objects leave nothing behind.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::kms::{KeySpec, KmsObserver, SignError};
use crate::published::Published;
use crate::store::Store;

/// `Content-Type` of [`Metrics::render`]'s output: the Prometheus text
/// format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Reconcile latency buckets (seconds).
const RECONCILE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// KMS Sign latency buckets (seconds): a regional call takes tens of
/// milliseconds; retries with backoff take up to seconds.
const SIGN_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// The `result`/`outcome` label of something that worked.
pub const SUCCESS: &str = "Success";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    controller: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KmsLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeySpecLabels {
    key_spec: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    namespace: String,
    name: String,
    issuer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertReadyLabels {
    namespace: String,
    name: String,
    issuer: String,
    condition: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameReadyLabels {
    name: String,
    condition: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrlLabels {
    name: String,
    ca: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

fn sign_histogram() -> Histogram {
    Histogram::new(SIGN_BUCKETS)
}

/// How an OCSP request was answered: a certificate status (RFC 6960
/// `CertStatus`) or an error response status (`OCSPResponseStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcspOutcome {
    /// `good`.
    Good,
    /// `revoked`.
    Revoked,
    /// `unknown` (a serial this CA never issued, or one Signet has no
    /// record of).
    Unknown,
    /// `unauthorized`: a CA Signet does not run.
    Unauthorized,
    /// `malformedRequest`: the request could not be parsed.
    MalformedRequest,
    /// `internalError`.
    InternalError,
    /// `tryLater`: no answer could be signed right now.
    TryLater,
}

impl OcspOutcome {
    /// Every outcome (their series start at 0).
    pub const ALL: [OcspOutcome; 7] = [
        OcspOutcome::Good,
        OcspOutcome::Revoked,
        OcspOutcome::Unknown,
        OcspOutcome::Unauthorized,
        OcspOutcome::MalformedRequest,
        OcspOutcome::InternalError,
        OcspOutcome::TryLater,
    ];

    /// The label value: RFC 6960's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspOutcome::Good => "good",
            OcspOutcome::Revoked => "revoked",
            OcspOutcome::Unknown => "unknown",
            OcspOutcome::Unauthorized => "unauthorized",
            OcspOutcome::MalformedRequest => "malformedRequest",
            OcspOutcome::InternalError => "internalError",
            OcspOutcome::TryLater => "tryLater",
        }
    }
}

/// What one Certificate's series show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSeries {
    /// The CA named by `spec.issuerRef`.
    pub issuer: String,
    /// notAfter of the certificate in its Secret (Unix seconds).
    pub not_after: Option<i64>,
    /// When Signet renews it (Unix seconds).
    pub renewal: Option<i64>,
    /// The `Ready` condition: `Some(true)`, `Some(false)`, or unknown.
    pub ready: Option<bool>,
}

/// What one CertificateAuthority's series show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSeries {
    /// notAfter of the CA certificate (Unix seconds).
    pub not_after: Option<i64>,
    /// When Signet renews it (Unix seconds).
    pub renewal: Option<i64>,
    /// The `Ready` condition.
    pub ready: Option<bool>,
}

/// What one CRL's series show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSeries {
    /// The CA whose CRL it is.
    pub ca: String,
    /// nextUpdate of the published CRL (Unix seconds).
    pub next_update: Option<i64>,
}

/// The per-object state, keyed by (namespace, name) or name.
#[derive(Debug, Default)]
struct Objects {
    certificates: BTreeMap<(String, String), CertificateSeries>,
    cas: BTreeMap<String, CaSeries>,
    crls: BTreeMap<String, CrlSeries>,
}

/// All of Signet's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// The event metrics (the families below, registered once).
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ReasonLabels, Counter>,
    reconcile_seconds: Histograms<ControllerLabels>,
    kms_requests: Family<KmsLabels, Counter>,
    kms_sign_seconds: Histograms<KeySpecLabels>,
    ocsp_requests: Family<OutcomeLabels, Counter>,
    issued: Counter,
    renewed: Counter,
    revoked: Counter,
    crls_published: Counter,
    /// Per-object state, turned into gauges at each scrape.
    objects: Mutex<Objects>,
    /// The store whose write failures are reported.
    store: OnceLock<Store>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, every counter at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_seconds: Family::new_with_constructor(
                reconcile_histogram as fn() -> Histogram,
            ),
            kms_requests: Family::default(),
            kms_sign_seconds: Family::new_with_constructor(sign_histogram as fn() -> Histogram),
            ocsp_requests: Family::default(),
            issued: Counter::default(),
            renewed: Counter::default(),
            revoked: Counter::default(),
            crls_published: Counter::default(),
            objects: Mutex::new(Objects::default()),
            store: OnceLock::new(),
        };
        for o in OcspOutcome::ALL {
            m.ocsp_requests.get_or_create_owned(&OutcomeLabels {
                outcome: o.as_str(),
            });
        }
        registry.register(
            "signet_reconcile",
            "Reconciles by controller and result (Success or the failure reason)",
            m.reconciles.clone(),
        );
        registry.register(
            "signet_reconcile_errors",
            "Failed reconciles by controller and reason (the Ready condition's reason)",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "signet_reconcile_duration_seconds",
            "Reconcile latency by controller",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "signet_kms_requests",
            "KMS calls by operation (Sign, CreateKey, AdoptKey, ScheduleKeyDeletion) and outcome (Success or the error reason); a call includes its bounded retries",
            m.kms_requests.clone(),
        );
        registry.register(
            "signet_kms_sign_duration_seconds",
            "Latency of KMS Sign calls that returned a verified signature, by key spec",
            m.kms_sign_seconds.clone(),
        );
        registry.register(
            "signet_ocsp_requests",
            "OCSP requests by outcome (good, revoked, unknown, or the error response status)",
            m.ocsp_requests.clone(),
        );
        registry.register(
            "signet_certificates_issued",
            "Certificates issued for the first time",
            m.issued.clone(),
        );
        registry.register(
            "signet_certificates_renewed",
            "Certificates renewed or reissued",
            m.renewed.clone(),
        );
        registry.register(
            "signet_certificates_revoked",
            "Certificates revoked",
            m.revoked.clone(),
        );
        registry.register(
            "signet_crls_published",
            "CRLs signed and published",
            m.crls_published.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Reports the write failures of `store` (the first store given wins).
    pub fn watch_store(&self, store: Store) {
        let _ = self.store.set(store);
    }

    /// Records one reconcile of `controller` and its outcome (`None` for
    /// success, else the bounded failure reason).
    pub fn observe_reconcile(
        &self,
        controller: &'static str,
        took: Duration,
        failure: Option<&'static str>,
    ) {
        let result = failure.unwrap_or(SUCCESS);
        self.reconciles
            .get_or_create(&ResultLabels { controller, result })
            .inc();
        if let Some(reason) = failure {
            self.reconcile_errors
                .get_or_create(&ReasonLabels { controller, reason })
                .inc();
        }
        self.reconcile_seconds
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
    }

    /// Counts an issued (or renewed) certificate.
    pub fn certificate_issued(&self, renewed: bool) {
        if renewed {
            self.renewed.inc();
        } else {
            self.issued.inc();
        }
    }

    /// Counts a revocation.
    pub fn certificate_revoked(&self) {
        self.revoked.inc();
    }

    /// Counts a published CRL.
    pub fn crl_published(&self) {
        self.crls_published.inc();
    }

    /// Counts one OCSP request and how it was answered.
    pub fn ocsp_request(&self, outcome: OcspOutcome) {
        self.ocsp_requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the series of Certificate `namespace/name`.
    pub fn set_certificate(&self, namespace: &str, name: &str, s: CertificateSeries) {
        self.objects()
            .certificates
            .insert((namespace.to_string(), name.to_string()), s);
    }

    /// Keeps only the Certificates `keep(namespace, name)` accepts.
    pub fn retain_certificates(&self, keep: impl Fn(&str, &str) -> bool) {
        self.objects()
            .certificates
            .retain(|(ns, name), _| keep(ns, name));
    }

    /// Sets the series of CertificateAuthority `name`.
    pub fn set_ca(&self, name: &str, s: CaSeries) {
        self.objects().cas.insert(name.to_string(), s);
    }

    /// Keeps only the CAs whose names `keep` accepts.
    pub fn retain_cas(&self, keep: impl Fn(&str) -> bool) {
        self.objects().cas.retain(|name, _| keep(name));
    }

    /// Sets the series of CRL `name`.
    pub fn set_crl(&self, name: &str, s: CrlSeries) {
        self.objects().crls.insert(name.to_string(), s);
    }

    /// Keeps only the CRLs whose names `keep` accepts.
    pub fn retain_crls(&self, keep: impl Fn(&str) -> bool) {
        self.objects().crls.retain(|name, _| keep(name));
    }

    /// Renders every metric in the Prometheus text format
    /// ([`CONTENT_TYPE`]). `store_degraded` and `store_queued` come from
    /// the store's health.
    pub fn render(&self, state: &Published, store_degraded: bool, store_queued: u64) -> String {
        let snapshot = self.snapshot(state, store_degraded, store_queued);
        let mut out = String::new();
        for registry in [&self.registry, &snapshot] {
            // Writing into a String cannot fail; an error here would be a
            // bug in the encoder, and half a page is still worth serving.
            if let Err(e) = prometheus_text::encode(&mut out, registry) {
                tracing::warn!(error = %e, "encoding metrics failed");
            }
        }
        out
    }

    /// A registry of this moment's state: readiness, the store, and the
    /// per-object gauges.
    fn snapshot(&self, state: &Published, store_degraded: bool, store_queued: u64) -> Registry {
        let mut r = Registry::default();
        let gauge = |v: i64| {
            let g: Gauge = Gauge::default();
            g.set(v);
            g
        };
        r.register(
            "signet_ready",
            "1 when the controllers run",
            gauge(i64::from(state.is_ready())),
        );
        r.register(
            "signet_leader",
            "1 when this replica reconciles",
            gauge(i64::from(state.is_leader())),
        );
        r.register(
            "signet_store_degraded",
            "1 when the SQLite mirror and audit trail cannot be written (writes are queued and nothing is signed)",
            gauge(i64::from(store_degraded)),
        );
        r.register(
            "signet_store_queued_writes",
            "Mirror and audit writes waiting for the database",
            gauge(i64::try_from(store_queued).unwrap_or(i64::MAX)),
        );
        let failures: Counter = Counter::default();
        if let Some(store) = self.store.get() {
            failures.inc_by(store.stats().write_failures_total);
        }
        r.register(
            "signet_audit_write_failures",
            "Failed attempts to commit queued audit and mirror rows to SQLite (the rows stay queued and are retried)",
            failures,
        );
        self.objects().register(&mut r);
        r
    }
}

/// The label value of a `Ready` condition.
fn condition(ready: Option<bool>) -> &'static str {
    match ready {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
}

/// A gauge family with one series per `(labels, value)`.
fn gauges<L>(series: impl IntoIterator<Item = (L, i64)>) -> Family<L, Gauge>
where
    L: Clone + std::hash::Hash + Eq,
{
    let f: Family<L, Gauge> = Family::default();
    for (labels, v) in series {
        f.get_or_create(&labels).set(v);
    }
    f
}

/// cert-manager's shape of a ready status: one series per condition
/// value, 1 on the current one.
fn ready_series<L>(ready: Option<bool>, labels: impl Fn(&'static str) -> L) -> Vec<(L, i64)> {
    let current = condition(ready);
    ["True", "False", "Unknown"]
        .into_iter()
        .map(|c| (labels(c), i64::from(c == current)))
        .collect()
}

impl Objects {
    fn register(&self, r: &mut Registry) {
        let certs = || {
            self.certificates.iter().map(|((ns, name), s)| {
                let l = CertLabels {
                    namespace: ns.clone(),
                    name: name.clone(),
                    issuer: s.issuer.clone(),
                };
                (l, s)
            })
        };
        r.register(
            "signet_certificate_expiration_timestamp_seconds",
            "notAfter of the certificate in a Certificate's Secret, as a Unix time",
            gauges(certs().filter_map(|(l, s)| Some((l, s.not_after?)))),
        );
        r.register(
            "signet_certificate_renewal_timestamp_seconds",
            "When Signet renews a Certificate, as a Unix time",
            gauges(certs().filter_map(|(l, s)| Some((l, s.renewal?)))),
        );
        r.register(
            "signet_certificate_ready_status",
            "The Ready condition of a Certificate (1 on the current condition value)",
            gauges(certs().flat_map(|(l, s)| {
                ready_series(s.ready, |condition| CertReadyLabels {
                    namespace: l.namespace.clone(),
                    name: l.name.clone(),
                    issuer: l.issuer.clone(),
                    condition,
                })
            })),
        );
        let cas = || {
            self.cas
                .iter()
                .map(|(name, s)| (NameLabels { name: name.clone() }, s))
        };
        r.register(
            "signet_ca_expiration_timestamp_seconds",
            "notAfter of a CertificateAuthority's certificate, as a Unix time",
            gauges(cas().filter_map(|(l, s)| Some((l, s.not_after?)))),
        );
        r.register(
            "signet_ca_renewal_timestamp_seconds",
            "When Signet renews a CertificateAuthority's certificate, as a Unix time",
            gauges(cas().filter_map(|(l, s)| Some((l, s.renewal?)))),
        );
        r.register(
            "signet_ca_ready_status",
            "The Ready condition of a CertificateAuthority (1 on the current condition value)",
            gauges(cas().flat_map(|(l, s)| {
                ready_series(s.ready, |condition| NameReadyLabels {
                    name: l.name.clone(),
                    condition,
                })
            })),
        );
        r.register(
            "signet_crl_next_update_timestamp_seconds",
            "nextUpdate of a CRL object's published CRL, as a Unix time",
            gauges(self.crls.iter().filter_map(|(name, s)| {
                let l = CrlLabels {
                    name: name.clone(),
                    ca: s.ca.clone(),
                };
                Some((l, s.next_update?))
            })),
        );
    }
}

impl KmsObserver for Metrics {
    fn kms_call(
        &self,
        operation: &'static str,
        spec: Option<KeySpec>,
        took: Duration,
        result: Result<(), &SignError>,
    ) {
        let outcome = match result {
            Ok(()) => SUCCESS,
            Err(e) => e.reason(),
        };
        self.kms_requests
            .get_or_create(&KmsLabels { operation, outcome })
            .inc();
        if let (crate::kms::SIGN, Some(spec), Ok(())) = (operation, spec, result) {
            self.kms_sign_seconds
                .get_or_create(&KeySpecLabels {
                    key_spec: spec.as_str(),
                })
                .observe(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &Metrics) -> String {
        m.render(&Published::new(), false, 0)
    }

    fn cert(issuer: &str, not_after: i64, ready: Option<bool>) -> CertificateSeries {
        CertificateSeries {
            issuer: issuer.into(),
            not_after: Some(not_after),
            renewal: Some(not_after - 100),
            ready,
        }
    }

    #[test]
    fn a_certificate_has_expiry_renewal_and_one_ready_series_per_condition() {
        let m = Metrics::new();
        m.set_certificate("demo", "web", cert("root", 2_000_000_000, Some(true)));
        let out = render(&m);
        for line in [
            r#"signet_certificate_expiration_timestamp_seconds{namespace="demo",name="web",issuer="root"} 2000000000"#,
            r#"signet_certificate_renewal_timestamp_seconds{namespace="demo",name="web",issuer="root"} 1999999900"#,
            r#"signet_certificate_ready_status{namespace="demo",name="web",issuer="root",condition="True"} 1"#,
            r#"signet_certificate_ready_status{namespace="demo",name="web",issuer="root",condition="False"} 0"#,
            r#"signet_certificate_ready_status{namespace="demo",name="web",issuer="root",condition="Unknown"} 0"#,
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
    }

    #[test]
    fn a_removed_or_reissued_object_leaves_no_series_behind() {
        let m = Metrics::new();
        m.set_certificate("demo", "a", cert("root", 1, None));
        m.set_certificate("demo", "b", cert("root", 2, None));
        // The issuer changes: the series under the old issuer go.
        m.set_certificate("demo", "b", cert("other", 3, None));
        m.set_ca(
            "root",
            CaSeries {
                not_after: Some(9),
                renewal: None,
                ready: Some(true),
            },
        );
        m.set_crl(
            "root",
            CrlSeries {
                ca: "root".into(),
                next_update: Some(7),
            },
        );
        m.retain_certificates(|_, name| name == "b");
        m.retain_cas(|_| false);
        m.retain_crls(|_| false);
        let out = render(&m);
        assert!(!out.contains(r#"name="a""#), "{out}");
        assert!(!out.contains(r#"issuer="root""#), "{out}");
        assert!(out.contains(r#"name="b",issuer="other"} 3"#), "{out}");
        assert!(!out.contains("signet_ca_expiration"), "{out}");
        assert!(!out.contains("signet_crl_next_update"), "{out}");
    }

    #[test]
    fn reconcile_errors_are_counted_by_reason_beside_the_total() {
        let m = Metrics::new();
        let t = Duration::from_millis(3);
        m.observe_reconcile("certificate", t, None);
        m.observe_reconcile("certificate", t, Some("InvalidSpec"));
        m.observe_reconcile("certificate", t, Some("InvalidSpec"));
        let out = render(&m);
        for line in [
            r#"signet_reconcile_total{controller="certificate",result="Success"} 1"#,
            r#"signet_reconcile_total{controller="certificate",result="InvalidSpec"} 2"#,
            r#"signet_reconcile_errors_total{controller="certificate",reason="InvalidSpec"} 2"#,
            r#"signet_reconcile_duration_seconds_count{controller="certificate"} 3"#,
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
    }

    #[test]
    fn only_successful_signs_enter_the_latency_histogram() {
        let m = Metrics::new();
        let spec = Some(KeySpec::EccNistP384);
        let t = Duration::from_millis(20);
        m.kms_call(crate::kms::SIGN, spec, t, Ok(()));
        let down = SignError::Unavailable {
            key: "k".into(),
            detail: "down".into(),
        };
        m.kms_call(crate::kms::SIGN, spec, t, Err(&down));
        let out = render(&m);
        for line in [
            r#"signet_kms_requests_total{operation="Sign",outcome="Success"} 1"#,
            r#"signet_kms_requests_total{operation="Sign",outcome="KMSUnavailable"} 1"#,
            r#"signet_kms_sign_duration_seconds_count{key_spec="ECC_NIST_P384"} 1"#,
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
    }

    #[test]
    fn every_ocsp_outcome_starts_at_zero_and_counts() {
        let m = Metrics::new();
        m.ocsp_request(OcspOutcome::Revoked);
        let out = render(&m);
        for o in OcspOutcome::ALL {
            let want = i32::from(o == OcspOutcome::Revoked);
            let line = format!(
                "signet_ocsp_requests_total{{outcome=\"{}\"}} {want}",
                o.as_str()
            );
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
    }

    #[test]
    fn help_text_ends_with_one_period_and_counters_with_one_total() {
        let out = render(&Metrics::new());
        assert!(out.contains("# TYPE signet_certificates_issued_total counter"));
        assert!(!out.contains("_total_total"), "{out}");
        assert!(!out.contains(".."), "{out}");
        assert!(out.contains("# TYPE signet_audit_write_failures_total counter"));
    }
}
