//! The statuses a Certificate can end a reconcile in. Pure: each takes the
//! status the pipeline started from (which a revocation earlier in the same
//! reconcile may have updated) and returns the whole next status.

use time::OffsetDateTime;

use super::super::conditions::{self, Cond};
use super::REVOKE_REQUEST_CONDITION;
use crate::api::{
    CONDITION_ISSUING, CONDITION_READY, Certificate, CertificateStatus, IssuedSerial,
    RevocationReason, RevokedSerial,
};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::pki::CertFacts;

/// At most this many earlier certificates are remembered.
pub const MAX_PREVIOUS: usize = 20;

/// Conditions with `set` applied; a malformed revoke request `note` adds
/// its condition, its absence removes it.
fn with_conditions(
    cert: &Certificate,
    prev: &CertificateStatus,
    set: &[Cond],
    note: Option<&Cond>,
    now: OffsetDateTime,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let base = conditions::without(prev.conditions.clone(), REVOKE_REQUEST_CONDITION);
    let mut all = set.to_vec();
    all.extend(note.cloned());
    let existing = if note.is_some() {
        &prev.conditions
    } else {
        &base
    };
    conditions::merge(existing, &all, cert.metadata.generation, now)
}

/// Drops entries whose certificate expired.
fn unexpired<T>(list: Vec<T>, not_after: impl Fn(&T) -> &str, now: OffsetDateTime) -> Vec<T> {
    list.into_iter()
        .filter(|e| parse_rfc3339(not_after(e)).is_none_or(|t| t > now))
        .collect()
}

/// The certificate in the Secret is current.
pub fn up_to_date(
    cert: &Certificate,
    prev: &CertificateStatus,
    facts: &CertFacts,
    renewal: OffsetDateTime,
    hash: &str,
    note: Option<&Cond>,
    now: OffsetDateTime,
) -> CertificateStatus {
    let (ready, issuing) = match as_issued(prev, facts, renewal) {
        Some(kept) => kept,
        None => (
            Cond::yes(
                CONDITION_READY,
                "Issued",
                format!("certificate is up to date; renews at {}", rfc3339(renewal)),
            ),
            Cond::no(CONDITION_ISSUING, "UpToDate", "no issuance in progress"),
        ),
    };
    CertificateStatus {
        conditions: with_conditions(cert, prev, &[ready, issuing], note, now),
        observed_generation: cert.metadata.generation,
        serial_number: Some(facts.serial_hex.clone()),
        not_before: Some(rfc3339(facts.not_before)),
        not_after: Some(rfc3339(facts.not_after)),
        renewal_time: Some(rfc3339(renewal)),
        revision: prev.revision.or(Some(1)),
        failed_issuance_attempts: None,
        last_failure_time: None,
        revocation_time: None,
        spec_hash: Some(hash.to_string()),
        issuer: prev
            .issuer
            .clone()
            .or(Some(cert.spec.issuer_ref.name.clone())),
        previous_certificates: unexpired(prev.previous_certificates.clone(), |e| &e.not_after, now),
        revocations: unexpired(prev.revocations.clone(), |e| &e.not_after, now),
    }
}

/// The Ready and Issuing conditions `prev` already has when they describe
/// this very certificate and renewal: the reconcile after an issuance then
/// writes nothing (its status equals the one the issuance wrote).
fn as_issued(
    prev: &CertificateStatus,
    facts: &CertFacts,
    renewal: OffsetDateTime,
) -> Option<(Cond, Cond)> {
    if prev.serial_number.as_deref() != Some(facts.serial_hex.as_str())
        || prev.renewal_time.as_deref() != Some(rfc3339(renewal).as_str())
    {
        return None;
    }
    let ready =
        conditions::find(&prev.conditions, CONDITION_READY).filter(|c| c.status == "True")?;
    let issuing =
        conditions::find(&prev.conditions, CONDITION_ISSUING).filter(|c| c.status == "False")?;
    Some((
        Cond::yes(CONDITION_READY, &ready.reason, ready.message.clone()),
        Cond::no(CONDITION_ISSUING, &issuing.reason, issuing.message.clone()),
    ))
}

/// What a new issuance records.
pub struct NewCertificate<'a> {
    /// The certificate.
    pub facts: &'a CertFacts,
    /// Its issuer.
    pub issuer: &'a str,
    /// When it renews.
    pub renewal: OffsetDateTime,
    /// The spec hash it was issued for.
    pub hash: &'a str,
    /// The Ready message.
    pub message: String,
    /// Why it was issued.
    pub why: &'a str,
}

/// A new certificate was written to the Secret. The one it replaced joins
/// `previousCertificates` while it is unexpired.
pub fn issued(
    cert: &Certificate,
    prev: &CertificateStatus,
    new: &NewCertificate<'_>,
    note: Option<&Cond>,
    now: OffsetDateTime,
) -> CertificateStatus {
    let mut previous = prev.previous_certificates.clone();
    if let (Some(serial), Some(na)) = (&prev.serial_number, &prev.not_after)
        && serial != &new.facts.serial_hex
    {
        previous.insert(
            0,
            IssuedSerial {
                serial_number: serial.clone(),
                not_after: na.clone(),
                issuer: prev
                    .issuer
                    .clone()
                    .unwrap_or_else(|| cert.spec.issuer_ref.name.clone()),
            },
        );
    }
    let mut previous = unexpired(previous, |e| &e.not_after, now);
    previous.truncate(MAX_PREVIOUS);
    let ready = Cond::yes(CONDITION_READY, "Issued", new.message.clone());
    let issuing = Cond::no(CONDITION_ISSUING, "Issued", new.why);
    CertificateStatus {
        conditions: with_conditions(cert, prev, &[ready, issuing], note, now),
        observed_generation: cert.metadata.generation,
        serial_number: Some(new.facts.serial_hex.clone()),
        not_before: Some(rfc3339(new.facts.not_before)),
        not_after: Some(rfc3339(new.facts.not_after)),
        renewal_time: Some(rfc3339(new.renewal)),
        revision: Some(prev.revision.unwrap_or(0) + 1),
        failed_issuance_attempts: None,
        last_failure_time: None,
        revocation_time: None,
        spec_hash: Some(new.hash.to_string()),
        issuer: Some(new.issuer.to_string()),
        previous_certificates: previous,
        revocations: unexpired(prev.revocations.clone(), |e| &e.not_after, now),
    }
}

/// `prev` with `revocations` confirmed (a revoke-and-reissue request, before
/// the reissue).
pub fn with_revocations(
    prev: &CertificateStatus,
    revocations: Vec<RevokedSerial>,
) -> CertificateStatus {
    CertificateStatus {
        revocations,
        ..prev.clone()
    }
}

/// `spec.revocation` is set: the object is done.
pub fn revoked(
    cert: &Certificate,
    prev: &CertificateStatus,
    revocations: Vec<RevokedSerial>,
    reason: RevocationReason,
    now: OffsetDateTime,
) -> CertificateStatus {
    let serials: Vec<&str> = revocations
        .iter()
        .map(|r| r.serial_number.as_str())
        .collect();
    let message = if serials.is_empty() {
        format!("revoked ({reason}) before any certificate was issued; none will be")
    } else {
        format!(
            "certificate serial {} revoked ({reason}); listed in the CA's CRL and never renewed",
            serials.join(", ")
        )
    };
    let set = [
        Cond::no(CONDITION_READY, "Revoked", message),
        Cond::no(
            CONDITION_ISSUING,
            "Revoked",
            "revoked certificates are not reissued",
        ),
    ];
    CertificateStatus {
        conditions: with_conditions(cert, prev, &set, None, now),
        observed_generation: cert.metadata.generation,
        revocation_time: prev.revocation_time.clone().or_else(|| {
            revocations
                .iter()
                .map(|r| r.revocation_time.clone())
                .min()
                .or(Some(rfc3339(now)))
        }),
        failed_issuance_attempts: None,
        last_failure_time: None,
        revocations,
        ..prev.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn cert() -> Certificate {
        serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "x", "namespace": "y", "generation": 2},
            "spec": {"issuerRef": {"name": "ca"}, "secretName": "s", "dnsNames": ["a.example"]}
        }))
        .unwrap()
    }

    fn facts(serial: &str, na: i64) -> CertFacts {
        CertFacts {
            der: vec![],
            serial_hex: serial.into(),
            not_before: t(0),
            not_after: t(na),
            spki_der: vec![],
            subject: String::new(),
            issuer: String::new(),
        }
    }

    #[test]
    fn a_new_certificate_remembers_the_unexpired_one_it_replaced() {
        let c = cert();
        let prev = CertificateStatus {
            serial_number: Some("01".into()),
            not_after: Some(rfc3339(t(5000))),
            revision: Some(1),
            previous_certificates: vec![IssuedSerial {
                serial_number: "00aa".into(),
                not_after: rfc3339(t(50)),
                issuer: "ca".into(),
            }],
            ..Default::default()
        };
        let f = facts("02", 9000);
        let new = NewCertificate {
            facts: &f,
            issuer: "ca",
            renewal: t(6000),
            hash: "h",
            message: "ok".into(),
            why: "renewing",
        };
        let st = issued(&c, &prev, &new, None, t(100));
        assert_eq!(st.revision, Some(2));
        assert_eq!(st.serial_number.as_deref(), Some("02"));
        let prevs: Vec<&str> = st
            .previous_certificates
            .iter()
            .map(|p| p.serial_number.as_str())
            .collect();
        assert_eq!(prevs, ["01"], "the expired 00aa is dropped, 01 kept");
        assert_eq!(st.observed_generation, Some(2));
    }

    #[test]
    fn a_malformed_request_adds_its_condition_and_a_fixed_one_removes_it() {
        let c = cert();
        let note = Cond::no(REVOKE_REQUEST_CONDITION, "InvalidRevokeRequest", "fix it");
        let f = facts("01", 9000);
        let st = up_to_date(
            &c,
            &CertificateStatus::default(),
            &f,
            t(6000),
            "h",
            Some(&note),
            t(1),
        );
        assert!(conditions::find(&st.conditions, REVOKE_REQUEST_CONDITION).is_some());
        assert!(conditions::is_true(&st.conditions, CONDITION_READY));
        let st = up_to_date(&c, &st, &f, t(6000), "h", None, t(2));
        assert!(conditions::find(&st.conditions, REVOKE_REQUEST_CONDITION).is_none());
    }

    #[test]
    fn the_reconcile_after_an_issuance_writes_nothing_unless_something_changed() {
        let c = cert();
        let f = facts("02", 9000);
        let new = NewCertificate {
            facts: &f,
            issuer: "root",
            renewal: t(6000),
            hash: "h",
            message: "certificate issued by root, serial 02".into(),
            why: "a missing secret is issued",
        };
        let after_issue = issued(&c, &CertificateStatus::default(), &new, None, t(100));
        let next = up_to_date(&c, &after_issue, &f, t(6000), "h", None, t(101));
        assert_eq!(
            next, after_issue,
            "the echo of the issuance is not a change"
        );
        let renews_later = up_to_date(&c, &after_issue, &f, t(7000), "h", None, t(102));
        let ready = conditions::find(&renews_later.conditions, CONDITION_READY).unwrap();
        assert!(ready.message.contains("renews at"), "{}", ready.message);
        let other = facts("03", 9000);
        let replaced = up_to_date(&c, &after_issue, &other, t(6000), "h", None, t(103));
        assert_ne!(replaced.conditions, after_issue.conditions);
    }
}
