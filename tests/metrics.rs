//! The metrics page after a known sequence of events, read back with a
//! Prometheus text-format parser (`prometheus-parse`), against the real API
//! server with the reconcilers in-process and the in-memory key store that
//! counts its signatures:
//!
//! * a Certificate's expiration series carries the certificate's real
//!   notAfter, its ready series follow its `Ready` condition (revoked →
//!   False, and no renewal time), and a deleted Certificate's series
//!   disappear; so do a deleted CRL's and CA's;
//! * the CA's expiration and the CRL's nextUpdate match their statuses;
//! * the KMS Sign histogram counts exactly the signatures the key store
//!   made; a KMS outage shows as failed Sign requests and reconcile errors,
//!   and failed signs stay out of the histogram;
//! * an invalid spec counts a reconcile error with its reason;
//! * only the per-object series carry object names.

mod common;

use std::collections::BTreeMap;

use common::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use prometheus_parse::{LineInfo, Sample, Scrape, Value};
use serde_json::json;
use signet::api::{CRL, Certificate, CertificateAuthority};

/// The in-process operator's metrics page, parsed. Every line must be a
/// HELP, TYPE or sample line the parser understands.
fn scrape() -> Scrape {
    let op = in_process();
    let text = op.ctx.metrics.render(
        &op.ctx.published,
        !op.ctx.store.health().is_ok(),
        op.ctx.store.stats().queued,
    );
    for line in text.lines() {
        assert!(
            matches!(
                LineInfo::parse(line),
                LineInfo::Doc { .. } | LineInfo::Type { .. } | LineInfo::Sample { .. }
            ),
            "not Prometheus text format: {line:?}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parsing the metrics page")
}

/// Samples of `metric` whose labels include `labels`.
fn samples<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one sample of `metric` with `labels` (counter, gauge
/// or untyped, e.g. a histogram's `_count`).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = samples(s, metric, labels);
    assert!(found.len() <= 1, "{metric} {labels:?}: {found:?}");
    match &found.first()?.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        other => panic!("{metric}: not a plain value: {other:?}"),
    }
}

fn unix(rfc3339: Option<&String>) -> f64 {
    let t = signet::clock::parse_rfc3339(rfc3339.expect("a timestamp in status"))
        .expect("an RFC 3339 timestamp");
    t.unix_timestamp() as f64
}

/// The ready series of Certificate `ns/name`: condition → value.
fn ready_series(s: &Scrape, ns: &str, name: &str) -> BTreeMap<String, f64> {
    samples(
        s,
        "signet_certificate_ready_status",
        &[("namespace", ns), ("name", name)],
    )
    .into_iter()
    .map(|x| {
        let Value::Gauge(v) = x.value else {
            panic!("ready status is a gauge: {x:?}")
        };
        (x.labels.get("condition").unwrap_or("").to_string(), v)
    })
    .collect()
}

fn ready_is(s: &Scrape, ns: &str, name: &str, condition: &str) -> bool {
    let got = ready_series(s, ns, name);
    got.len() == 3 && got.iter().all(|(c, v)| *v == f64::from(c == condition))
}

#[tokio::test]
async fn the_metrics_page_follows_issuance_revocation_deletion_and_kms_outages() {
    let env = signet_testenv::env();
    let op = in_process();
    let ns = env.namespace("metrics").await;
    let ns = ns.name();
    let client = env.client().await;
    let (root, crl_name) = (unique("mroot"), unique("mcrl"));
    let (root, crl_name) = (root.as_str(), crl_name.as_str());
    // The only P-384 key of this test binary: its histogram series counts
    // this CA's signatures and nothing else.
    apply(env, &root_ca(root, "  kms: {keySpec: ECC_NIST_P384}\n")).unwrap();
    let ca = wait_ca(&client, root, ("True", None), None).await;
    let ca_status = ca.status.unwrap();
    let arn = ca_status.kms_key_arn.clone().unwrap();
    let arn = arn.as_str();
    apply(env, &crl(crl_name, root, &op.namespace)).unwrap();
    for name in ["a", "b"] {
        let dns = format!("  dnsNames: [{name}.example.com]\n");
        apply(env, &certificate(ns, name, root, &dns)).unwrap();
    }
    let a = wait_cert(&client, ns, "a", ("True", Some("Issued")), None).await;
    wait_cert(&client, ns, "b", ("True", Some("Issued")), None).await;
    let crl1 = wait_crl(&client, crl_name, 1, None).await;

    // Per-object series: the real notAfter, renewal time, readiness.
    let a_status = a.status.unwrap();
    let cert_labels = [("namespace", ns), ("name", "a"), ("issuer", root)];
    let s = eventually("the series of Certificates a and b", move || async move {
        let s = scrape();
        (ready_is(&s, ns, "a", "True") && ready_is(&s, ns, "b", "True")).then_some(s)
    })
    .await;
    assert_eq!(
        value(
            &s,
            "signet_certificate_expiration_timestamp_seconds",
            &cert_labels
        ),
        Some(unix(a_status.not_after.as_ref()))
    );
    assert_eq!(
        value(
            &s,
            "signet_certificate_renewal_timestamp_seconds",
            &cert_labels
        ),
        Some(unix(a_status.renewal_time.as_ref()))
    );
    assert_eq!(
        value(
            &s,
            "signet_ca_expiration_timestamp_seconds",
            &[("name", root)]
        ),
        Some(unix(ca_status.not_after.as_ref()))
    );
    assert_eq!(
        value(
            &s,
            "signet_ca_ready_status",
            &[("name", root), ("condition", "True")]
        ),
        Some(1.0)
    );
    let crl_labels = [("name", crl_name), ("ca", root)];
    let next1 = unix(crl1.status.unwrap().next_update.as_ref());
    assert!(
        value(&s, "signet_crl_next_update_timestamp_seconds", &crl_labels)
            .is_some_and(|v| v >= next1),
        "{:?}",
        samples(&s, "signet_crl_next_update_timestamp_seconds", &[])
    );

    // An invalid spec (renewBefore longer than duration) is a reconcile
    // error with its reason.
    let invalid = [("controller", "certificate"), ("reason", "InvalidSpec")];
    let errors_before = value(&s, "signet_reconcile_errors_total", &invalid).unwrap_or(0.0);
    apply(
        env,
        &certificate(
            ns,
            "bad",
            root,
            "  dnsNames: [bad.example.com]\n  duration: 1h\n  renewBefore: 2h\n",
        ),
    )
    .unwrap();
    wait_cert(&client, ns, "bad", ("False", Some("InvalidSpec")), None).await;
    let s = eventually("an InvalidSpec reconcile error", move || async move {
        let s = scrape();
        (value(&s, "signet_reconcile_errors_total", &invalid)? > errors_before).then_some(s)
    })
    .await;
    assert!(
        value(
            &s,
            "signet_reconcile_total",
            &[("controller", "certificate"), ("result", "InvalidSpec")]
        )
        .is_some_and(|v| v > errors_before)
    );
    assert!(ready_is(&s, ns, "bad", "False"));

    // Revoke a, delete b.
    let certs: Api<Certificate> = Api::namespaced(client.clone(), ns);
    certs
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revocation": {"reason": "keyCompromise"}}})),
        )
        .await
        .unwrap();
    certs.delete("b", &DeleteParams::default()).await.unwrap();
    wait_cert(&client, ns, "a", ("False", Some("Revoked")), None).await;
    let crl2 = wait_crl(&client, crl_name, 2, None).await;
    let next2 = unix(crl2.status.unwrap().next_update.as_ref());
    let s = eventually("a revoked, b gone, the CRL re-signed", move || async move {
        let s = scrape();
        let b_gone = s
            .samples
            .iter()
            .all(|x| !(x.labels.get("namespace") == Some(ns) && x.labels.get("name") == Some("b")));
        let next = value(&s, "signet_crl_next_update_timestamp_seconds", &crl_labels)?;
        let a_false = ready_is(&s, ns, "a", "False");
        (b_gone && a_false && next >= next2).then_some(s)
    })
    .await;
    assert_eq!(
        value(
            &s,
            "signet_certificate_expiration_timestamp_seconds",
            &cert_labels
        ),
        Some(unix(a_status.not_after.as_ref())),
        "a revoked certificate still has its notAfter"
    );
    assert_eq!(
        value(
            &s,
            "signet_certificate_renewal_timestamp_seconds",
            &cert_labels
        ),
        None,
        "a revoked certificate is never renewed, so no renewal series alerts"
    );
    assert!(value(&s, "signet_certificates_revoked_total", &[]).is_some_and(|v| v >= 1.0));

    // The Sign histogram counts what the key store signed: the CA
    // certificate, two leaves, two CRLs at least.
    let p384 = [("key_spec", "ECC_NIST_P384")];
    let counted = eventually(
        "Sign histogram == the key store's count",
        move || async move {
            let s = scrape();
            let n = value(&s, "signet_kms_sign_duration_seconds_count", &p384)?;
            (n == op.keys.signatures_of(arn) as f64).then_some(n)
        },
    )
    .await;
    assert!(counted >= 5.0, "{counted} signatures");
    let s = scrape();
    let sign_ok = [("operation", "Sign"), ("outcome", "Success")];
    assert!(value(&s, "signet_kms_requests_total", &sign_ok).is_some_and(|v| v >= counted));
    assert!(
        value(
            &s,
            "signet_kms_requests_total",
            &[("operation", "CreateKey"), ("outcome", "Success")]
        )
        .is_some_and(|v| v >= 1.0)
    );

    // A KMS outage for the CA's key: failed Sign requests and reconcile
    // errors by reason; failed signs stay out of the histogram.
    let sign_down = [("operation", "Sign"), ("outcome", "KMSUnavailable")];
    let down_errors = [("controller", "certificate"), ("reason", "KMSUnavailable")];
    let down_before = value(&s, "signet_kms_requests_total", &sign_down).unwrap_or(0.0);
    op.keys.set_unavailable(arn, true);
    apply(
        env,
        &certificate(ns, "c", root, "  dnsNames: [c.example.com]\n"),
    )
    .unwrap();
    let s = eventually(
        "failed Sign requests during the outage",
        move || async move {
            let s = scrape();
            let failed = value(&s, "signet_kms_requests_total", &sign_down)? > down_before;
            let errors = value(&s, "signet_reconcile_errors_total", &down_errors)? >= 1.0;
            (failed && errors).then_some(s)
        },
    )
    .await;
    assert_eq!(
        value(&s, "signet_kms_sign_duration_seconds_count", &p384),
        Some(op.keys.signatures_of(arn) as f64)
    );
    op.keys.set_unavailable(arn, false);
    wait_cert(&client, ns, "c", ("True", Some("Issued")), None).await;

    // Only the per-object series name objects.
    let s = scrape();
    for x in &s.samples {
        if x.labels
            .values()
            .any(|v| [ns, root, crl_name].contains(&v.as_str()))
        {
            assert!(
                ["signet_certificate_", "signet_ca_", "signet_crl_"]
                    .iter()
                    .any(|p| x.metric.starts_with(p)),
                "an object name in the labels of {x:?}"
            );
        }
    }
    assert_eq!(
        value(&s, "signet_audit_write_failures_total", &[]),
        Some(op.ctx.store.stats().write_failures_total as f64)
    );

    // Deleting the CRL and the CA removes their series too.
    let crls: Api<CRL> = Api::all(client.clone());
    crls.delete(crl_name, &DeleteParams::default())
        .await
        .unwrap();
    let cas: Api<CertificateAuthority> = Api::all(client.clone());
    cas.delete(root, &DeleteParams::default()).await.unwrap();
    eventually("the CRL's and the CA's series gone", move || async move {
        let s = scrape();
        let left = s.samples.iter().any(|x| {
            (x.metric.starts_with("signet_crl_") && x.labels.get("name") == Some(crl_name))
                || (x.metric.starts_with("signet_ca_") && x.labels.get("name") == Some(root))
        });
        (!left).then_some(())
    })
    .await;
}
