//! Whether and why a Certificate needs a new certificate: pure functions of
//! (Certificate, observations, now). Every check that could refuse runs
//! here, before a key is generated or KMS signs anything.

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;
use time::OffsetDateTime;

use super::super::ca::{ReadyIssuer, issuer_with_urls};
use super::super::{Error, policy};
use super::observe::{SecretSeen, World};
use super::{
    ANN_CERTIFICATE_UID, ANN_ISSUER, ANN_SERIAL, ANN_SPEC_HASH, DEFAULT_DURATION,
    LABEL_CERTIFICATE, SECRET_TYPE,
};
use crate::api::duration::{self, Lifetime};
use crate::api::{Certificate, RotationPolicy};
use crate::pki::{self, CertFacts, KeyState, LeafRequest, PrivateKeyPem};

/// The inputs that shape the certificate; a change triggers reissuance.
/// (Unchanged since v0.1: changing it would reissue everything on upgrade.)
pub fn spec_hash(c: &Certificate) -> String {
    let s = &c.spec;
    let v = json!({
        "issuer": s.issuer_ref.name, "cn": s.common_name, "dns": s.dns_names,
        "ip": s.ip_addresses, "uri": s.uris, "email": s.email_addresses,
        "subject": s.subject, "usages": s.usages, "duration": s.duration,
        "key": s.private_key.as_ref().map(|p| (p.algorithm, p.size, p.encoding)),
    });
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.to_string().as_bytes());
    hex::encode(&d.as_ref()[..12])
}

/// The validated spec.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What to ask the PKI for.
    pub request: LeafRequest,
    /// Duration and renewBefore.
    pub lifetime: Lifetime,
    /// [`spec_hash`].
    pub hash: String,
}

/// Duration and renewBefore. Without `spec.duration` the certificate gets
/// the shorter of Signet's default (90 days) and the CA's
/// `maxCertificateDuration`.
pub fn lifetime(c: &Certificate, ca_max: Option<Duration>) -> Result<Lifetime, Error> {
    let default = ca_max.map_or(DEFAULT_DURATION, |m| m.min(DEFAULT_DURATION));
    duration::lifetime(
        ("spec.duration", c.spec.duration.as_deref()),
        ("spec.renewBefore", c.spec.renew_before.as_deref()),
        default,
    )
    .map_err(Error::InvalidSpec)
}

/// Validates what the schema cannot and builds the request.
pub fn plan(c: &Certificate, ca_max: Option<Duration>) -> Result<Plan, Error> {
    let lifetime = lifetime(c, ca_max)?;
    let total = time::Duration::try_from(lifetime.total)
        .map_err(|_| Error::InvalidSpec("spec.duration is too large".into()))?;
    Ok(Plan {
        request: LeafRequest::from_api(&c.spec, total),
        lifetime,
        hash: spec_hash(c),
    })
}

/// What the Secret holds, as the renewal policy sees it.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// The leaf, when it parses.
    pub cert: Option<CertFacts>,
    /// Whether `tls.key` belongs to it.
    pub key_matches: bool,
    /// The key, when it matches (kept for rotationPolicy Never).
    pub key: Option<PrivateKeyPem>,
    /// `signet.dev/spec-hash`.
    pub spec_hash: Option<String>,
    /// `signet.dev/serial`: what Signet wrote next to the certificate.
    pub annotated_serial: Option<String>,
    /// The Secret was written for an earlier Certificate of this name.
    pub predecessor: bool,
}

impl Current {
    /// Reads a Secret as seen by observe, for `cert`.
    pub fn of(cert: &Certificate, secret: Option<&SecretSeen>) -> Current {
        let predecessor = owner(cert, secret) == Owner::Predecessor;
        let Some(s) = secret else {
            return Current::default();
        };
        let (key_matches, key) = match &s.contents.key {
            KeyState::Matches(k) => (true, Some(k.clone())),
            _ => (false, None),
        };
        Current {
            cert: s.contents.cert.clone(),
            key_matches,
            key,
            spec_hash: s.annotations.get(ANN_SPEC_HASH).cloned(),
            annotated_serial: s
                .annotations
                .get(ANN_SERIAL)
                .and_then(|v| pki::normalize_serial(v)),
            predecessor,
        }
    }
}

/// Why a new certificate is needed — the renewal policy chain, in order —
/// or `None` when the one in the Secret is current.
pub fn needs_issuance(
    cur: &Current,
    hash: &str,
    renew_before: Duration,
    revoked: &[String],
    now: OffsetDateTime,
) -> Option<(&'static str, &'static str)> {
    let Some(cert) = &cur.cert else {
        return Some((
            "SecretMissing",
            "the Secret does not exist or holds no certificate",
        ));
    };
    if !cur.key_matches {
        return Some((
            "SecretInvalid",
            "the Secret's key does not match its certificate",
        ));
    }
    if cur.predecessor {
        return Some((
            "SecretInvalid",
            "the Secret holds the certificate of an earlier Certificate of this name",
        ));
    }
    if revoked.contains(&cert.serial_hex) {
        return Some(("Revoked", "the certificate in the Secret was revoked"));
    }
    if cur.spec_hash.as_deref() != Some(hash) {
        return Some((
            "SpecChanged",
            "the spec changed since the certificate was issued",
        ));
    }
    // Someone replaced the certificate (and key) with another pair.
    if cur.annotated_serial.as_deref() != Some(cert.serial_hex.as_str()) {
        return Some((
            "SecretInvalid",
            "the Secret holds a certificate Signet did not issue for it",
        ));
    }
    if now >= duration::act_at(cert.not_before, cert.not_after, renew_before) {
        return Some(("Renewing", "the certificate is due for renewal"));
    }
    None
}

/// What to do.
#[derive(Debug)]
pub enum Decision {
    /// The certificate in the Secret is current.
    UpToDate {
        /// It.
        cert: CertFacts,
        /// When to renew it.
        renewal: OffsetDateTime,
    },
    /// Issue a new certificate.
    Issue {
        /// Bounded reason (`SecretMissing`, `Renewing`, ...).
        reason: &'static str,
        /// Why, for people.
        why: &'static str,
        /// The issuer.
        issuer: Box<ReadyIssuer>,
        /// The key to reuse (rotationPolicy Never and it still matches).
        reuse: Option<PrivateKeyPem>,
    },
}

/// A reissue someone asked for (`signet revoke --reissue`).
pub const REISSUE: (&str, &str) = ("Reissue", "revoked and reissued on request");

/// Decides. `revoked` lists the serials of this object Signet revoked.
pub fn decide(
    cert: &Certificate,
    world: &World,
    revoked: &[String],
    forced: Option<(&'static str, &'static str)>,
    now: OffsetDateTime,
) -> Result<(Plan, Decision), Error> {
    lifetime(cert, None)?;
    let ca = world
        .issuer
        .as_ref()
        .ok_or_else(|| Error::IssuerNotFound(cert.spec.issuer_ref.name.clone()))?;
    let issuer = issuer_with_urls(ca, true, world.issuer_urls.as_ref())?;
    let ca_max = duration::optional(
        "spec.maxCertificateDuration",
        ca.spec.max_certificate_duration.as_deref(),
    )
    .map_err(Error::InvalidSpec)?;
    let plan = plan(cert, ca_max)?;
    let chain: Vec<&crate::api::CertificateAuthority> =
        std::iter::once(ca).chain(world.ancestors.iter()).collect();
    policy::check_certificate(&chain, cert, plan.lifetime.total, &world.namespace_labels)?;
    check_secret(cert, world.secret.as_ref())?;
    pki::check_leaf_request(&issuer.info, &plan.request, now)?;
    let cur = Current::of(cert, world.secret.as_ref());
    let why =
        forced.or_else(|| needs_issuance(&cur, &plan.hash, plan.lifetime.before_end, revoked, now));
    let decision = match (why, cur.cert) {
        (None, Some(c)) => Decision::UpToDate {
            renewal: duration::act_at(c.not_before, c.not_after, plan.lifetime.before_end),
            cert: c,
        },
        (why, _) => {
            let (reason, why) = why.unwrap_or(("SecretMissing", "no certificate"));
            let never = cert
                .spec
                .private_key
                .as_ref()
                .and_then(|p| p.rotation_policy)
                == Some(RotationPolicy::Never);
            Decision::Issue {
                reason,
                why,
                issuer: Box::new(issuer),
                reuse: cur.key.filter(|_| never && forced.is_none()),
            }
        }
    };
    Ok((plan, decision))
}

/// Whose a Secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Nobody's yet (it does not exist).
    Nobody,
    /// This Certificate's (its uid is recorded, or an older Signet wrote it
    /// for a Certificate of this name before uids were recorded).
    This,
    /// An earlier Certificate of the same name (deleted and re-created):
    /// this one takes it over and issues its own certificate.
    Predecessor,
    /// Another Certificate's, or another tool's.
    Other,
}

/// Who owns `secret`, from the uid annotation Signet writes and the label
/// naming the Certificate.
pub fn owner(cert: &Certificate, secret: Option<&SecretSeen>) -> Owner {
    let Some(s) = secret else {
        return Owner::Nobody;
    };
    let named_for_us = s.labels.get(LABEL_CERTIFICATE) == Some(&cert.name_any());
    match (s.annotations.get(ANN_CERTIFICATE_UID), cert.uid()) {
        (Some(uid), Some(ours)) if *uid == ours => Owner::This,
        (Some(_), _) if named_for_us => Owner::Predecessor,
        (Some(_), _) => Owner::Other,
        // Written by a Signet that did not record uids yet.
        (None, _) if named_for_us && s.annotations.contains_key(ANN_ISSUER) => Owner::This,
        (None, _) => Owner::Other,
    }
}

/// A Secret Signet may write: absent, or created by Signet for this
/// Certificate (or its predecessor of the same name), of type
/// `kubernetes.io/tls`. Anything else is refused before anything is
/// signed: Signet never takes over a Secret another tool or another
/// Certificate owns, so two Certificates naming one Secret cannot reissue
/// each other forever.
fn check_secret(cert: &Certificate, secret: Option<&SecretSeen>) -> Result<(), Error> {
    let Some(s) = secret else {
        return Ok(());
    };
    let name = format!(
        "{}/{}",
        cert.namespace().unwrap_or_default(),
        cert.spec.secret_name
    );
    if let Some(other) = s.type_.as_deref().filter(|t| *t != SECRET_TYPE) {
        return Err(Error::Refused {
            reason: "SecretTypeMismatch",
            message: format!(
                "Secret {name} has type {other}, but Signet writes {SECRET_TYPE} Secrets and a Secret's type cannot change; delete that Secret or set another spec.secretName"
            ),
        });
    }
    if owner(cert, Some(s)) == Owner::Other {
        let whose = match s.labels.get(LABEL_CERTIFICATE) {
            Some(c) => format!("belongs to Certificate {c}"),
            None => "was not created by Signet for this Certificate".to_string(),
        };
        return Err(Error::Refused {
            reason: "SecretConflict",
            message: format!(
                "Secret {name} {whose}; Signet does not overwrite Secrets it does not own: set another spec.secretName, or delete that Secret if nothing else uses it"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn facts(serial: &str, nb: i64, na: i64) -> CertFacts {
        CertFacts {
            der: vec![1],
            serial_hex: serial.into(),
            not_before: t(nb),
            not_after: t(na),
            spki_der: vec![],
            subject: String::new(),
            issuer: String::new(),
        }
    }

    fn current(nb: i64, na: i64, hash: &str) -> Current {
        Current {
            cert: Some(facts("01", nb, na)),
            key_matches: true,
            key: None,
            spec_hash: Some(hash.into()),
            annotated_serial: Some("01".into()),
            predecessor: false,
        }
    }

    #[test]
    fn renewal_policy_chain() {
        let rb = Duration::from_secs(100);
        let none: &[String] = &[];
        let revoked = ["01".to_string()];
        type Case<'a> = (&'a str, Current, &'a [String], i64, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "a missing secret is issued",
                Current::default(),
                none,
                0,
                Some("SecretMissing"),
            ),
            (
                "a key that does not match is reissued",
                Current {
                    key_matches: false,
                    ..current(0, 1000, "h")
                },
                none,
                10,
                Some("SecretInvalid"),
            ),
            (
                "a revoked certificate is replaced",
                current(0, 1000, "h"),
                &revoked,
                10,
                Some("Revoked"),
            ),
            (
                "a changed spec is reissued",
                current(0, 1000, "old"),
                none,
                10,
                Some("SpecChanged"),
            ),
            (
                "a certificate swapped in by someone else is reissued",
                Current {
                    annotated_serial: Some("02".into()),
                    ..current(0, 1000, "h")
                },
                none,
                10,
                Some("SecretInvalid"),
            ),
            (
                "a fresh certificate is left alone",
                current(0, 1000, "h"),
                none,
                10,
                None,
            ),
            (
                "a certificate at its renewal time is renewed",
                current(0, 1000, "h"),
                none,
                900,
                Some("Renewing"),
            ),
            (
                "a certificate just before renewal is left alone",
                current(0, 1000, "h"),
                none,
                899,
                None,
            ),
        ];
        for (name, cur, revoked, now, want) in cases {
            let got = needs_issuance(&cur, "h", rb, revoked, t(now)).map(|(r, _)| r);
            assert_eq!(got, want, "{name}");
        }
    }

    fn cert(spec: serde_json::Value) -> Certificate {
        let mut base =
            json!({"issuerRef": {"name": "ca"}, "secretName": "s", "dnsNames": ["a.example"]});
        base.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "x", "namespace": "y"}, "spec": base
        }))
        .unwrap()
    }

    #[test]
    fn lifetimes_follow_the_spec_and_default_to_the_ca_maximum() {
        let day = Duration::from_secs(86400);
        let cases = [
            (
                "no duration and no CA maximum gives 90 days",
                json!({}),
                None,
                Ok(90 * day),
            ),
            (
                "no duration under a 30-day CA gives 30 days",
                json!({}),
                Some(30 * day),
                Ok(30 * day),
            ),
            (
                "no duration under a 1-year CA gives 90 days",
                json!({}),
                Some(365 * day),
                Ok(90 * day),
            ),
            (
                "an explicit duration is kept",
                json!({"duration": "48h"}),
                Some(30 * day),
                Ok(2 * day),
            ),
            (
                "renewBefore not shorter than duration is invalid",
                json!({"duration": "1h", "renewBefore": "2h"}),
                None,
                Err("InvalidSpec"),
            ),
        ];
        for (name, spec, max, want) in cases {
            let got = lifetime(&cert(spec), max)
                .map(|l| l.total)
                .map_err(|e| e.reason());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_secret_of_another_type_is_refused_naming_the_fix() {
        let c = cert(json!({}));
        let seen = SecretSeen {
            type_: Some("Opaque".into()),
            ..SecretSeen::default()
        };
        let e = check_secret(&c, Some(&seen)).unwrap_err();
        assert_eq!(e.reason(), "SecretTypeMismatch");
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("y/s") && e.to_string().contains("spec.secretName"),
            "{e}"
        );
        let ours = SecretSeen {
            type_: Some(SECRET_TYPE.into()),
            labels: [(LABEL_CERTIFICATE.to_string(), "x".to_string())].into(),
            annotations: [(ANN_ISSUER.to_string(), "ca".to_string())].into(),
            ..SecretSeen::default()
        };
        assert!(check_secret(&c, Some(&ours)).is_ok());
        assert!(check_secret(&c, None).is_ok());
    }
}

#[cfg(test)]
mod decision_table {
    use std::collections::BTreeMap;

    use super::*;
    use crate::controller::certificate::observe::{SecretSeen, World};
    use crate::controller::testing::{key, now, ready_root};
    use crate::pki::IssuerInfo;

    fn cert(spec: serde_json::Value) -> Certificate {
        let mut base = json!({"issuerRef": {"name": "root"}, "secretName": "web-tls", "dnsNames": ["web.example.com"]});
        base.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "team-a", "uid": "uid-web"}, "spec": base
        }))
        .unwrap()
    }

    /// A Secret as Signet would have written it for `c`, issued at `at`.
    async fn written(
        c: &Certificate,
        ca: &crate::api::CertificateAuthority,
        k: &crate::kms::LocalSigner,
        at: OffsetDateTime,
    ) -> SecretSeen {
        let info = IssuerInfo::from_pem(
            ca.status.as_ref().unwrap().certificate.as_ref().unwrap(),
            Default::default(),
        )
        .unwrap();
        let p = plan(c, None).unwrap();
        let leaf = pki::issue_leaf(&info, k, &p.request, at).await.unwrap();
        SecretSeen {
            type_: Some(SECRET_TYPE.into()),
            contents: pki::read_tls(
                Some(leaf.cert_pem.as_bytes()),
                Some(leaf.key.expose_secret().as_bytes()),
            ),
            annotations: BTreeMap::from([
                (ANN_SPEC_HASH.to_string(), spec_hash(c)),
                (ANN_SERIAL.to_string(), leaf.serial_hex.clone()),
                (ANN_CERTIFICATE_UID.to_string(), "uid-web".to_string()),
            ]),
            labels: BTreeMap::from([(LABEL_CERTIFICATE.to_string(), "web".to_string())]),
        }
    }

    fn outcome(r: Result<(Plan, Decision), Error>) -> String {
        match r {
            Ok((_, Decision::UpToDate { .. })) => "UpToDate".into(),
            Ok((_, Decision::Issue { reason, reuse, .. })) => {
                format!(
                    "Issue {reason}{}",
                    if reuse.is_some() {
                        " reusing the key"
                    } else {
                        ""
                    }
                )
            }
            Err(e) => format!("Err {}", e.reason()),
        }
    }

    #[tokio::test]
    async fn certificate_decisions() {
        let k = key("arn:root");
        let root = ready_root("root", json!({}), &k).await;
        let strict = ready_root(
            "root",
            json!({
                "allowedNamespaces": {"names": ["team-b"]},
                "maxCertificateDuration": "720h",
                "nameConstraints": {"permitted": {"dnsDomains": ["example.org"]}}
            }),
            &k,
        )
        .await;
        let mut unready = root.clone();
        unready.status.as_mut().unwrap().conditions.clear();
        let plain = cert(json!({}));
        let never = cert(json!({"privateKey": {"rotationPolicy": "Never"}}));
        let current = written(&plain, &root, &k, now()).await;
        let old_never = written(&never, &root, &k, now() - time::Duration::days(80)).await;
        let foreign = SecretSeen {
            type_: Some(SECRET_TYPE.into()),
            contents: current.contents.clone(),
            ..SecretSeen::default()
        };
        let mut theirs = current.clone();
        theirs
            .labels
            .insert(LABEL_CERTIFICATE.into(), "other-app".into());
        theirs
            .annotations
            .insert(ANN_CERTIFICATE_UID.into(), "uid-other".into());
        let mut predecessor = current.clone();
        predecessor
            .annotations
            .insert(ANN_CERTIFICATE_UID.into(), "uid-before".into());
        let opaque = SecretSeen {
            type_: Some("Opaque".into()),
            ..SecretSeen::default()
        };
        let w = |issuer: Option<&crate::api::CertificateAuthority>, secret: Option<&SecretSeen>| {
            World {
                issuer: issuer.cloned(),
                ancestors: vec![],
                issuer_urls: None,
                secret: secret.cloned(),
                namespace_labels: BTreeMap::new(),
            }
        };
        let forced = Some(REISSUE);
        type Case<'a> = (
            &'static str,
            &'a Certificate,
            World,
            Option<(&'static str, &'static str)>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "a missing CA is waited for",
                &plain,
                w(None, None),
                None,
                "Err IssuerNotFound",
            ),
            (
                "a CA that is not Ready is waited for",
                &plain,
                w(Some(&unready), None),
                None,
                "Err IssuerNotReady",
            ),
            (
                "a namespace the CA does not allow is denied",
                &plain,
                w(Some(&strict), None),
                None,
                "Err NamespaceNotAllowed",
            ),
            (
                "a Secret of another type is refused before signing",
                &plain,
                w(Some(&root), Some(&opaque)),
                None,
                "Err SecretTypeMismatch",
            ),
            (
                "a TLS Secret another tool wrote is never taken over",
                &plain,
                w(Some(&root), Some(&foreign)),
                None,
                "Err SecretConflict",
            ),
            (
                "a Secret of another Certificate is never taken over",
                &plain,
                w(Some(&root), Some(&theirs)),
                None,
                "Err SecretConflict",
            ),
            (
                "a Secret of an earlier Certificate of this name gets a new certificate",
                &plain,
                w(Some(&root), Some(&predecessor)),
                None,
                "Issue SecretInvalid",
            ),
            (
                "no Secret is issued",
                &plain,
                w(Some(&root), None),
                None,
                "Issue SecretMissing",
            ),
            (
                "a current certificate is left alone",
                &plain,
                w(Some(&root), Some(&current)),
                None,
                "UpToDate",
            ),
            (
                "a reissue on request issues even when current",
                &plain,
                w(Some(&root), Some(&current)),
                forced,
                "Issue Reissue",
            ),
            (
                "rotationPolicy Never renews with the same key",
                &never,
                w(Some(&root), Some(&old_never)),
                None,
                "Issue Renewing reusing the key",
            ),
        ];
        for (name, c, world, forced, want) in cases {
            assert_eq!(
                outcome(decide(c, &world, &[], forced, now())),
                want,
                "{name}"
            );
        }
        let long = cert(json!({"duration": "2160h"}));
        let mut strict_ns = w(Some(&strict), None);
        let in_b: Certificate = serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "team-b"}, "spec": long.spec
        }))
        .unwrap();
        strict_ns.namespace_labels.clear();
        assert_eq!(
            outcome(decide(&in_b, &strict_ns, &[], None, now())),
            "Err DurationExceedsMax",
            "an explicit duration above the maximum is denied"
        );
        let mut short = in_b.clone();
        short.spec.duration = None;
        assert_eq!(
            outcome(decide(&short, &strict_ns, &[], None, now())),
            "Err NameConstraintViolation",
            "without a duration the CA maximum applies; then the names are checked"
        );
    }
}
