//! Whether a CA's CRL must be re-signed: a pure function of (CRL,
//! observations, now). The published CRL counts only once its signature
//! verifies against the CA's key; its annotations are never trusted.

use time::OffsetDateTime;

use super::super::Error;
use super::super::ca::{ReadyIssuer, issuer_of};
use super::super::revocations::Revoked;
use super::DEFAULT_VALIDITY;
use super::observe::World;
use crate::api::duration::{self, Lifetime};
use crate::api::{CRL, RevocationReason};
use crate::pki::{self, CrlFacts, RevokedEntry};

/// What to do.
#[derive(Debug)]
pub enum Decision {
    /// The published CRL is current and verified.
    UpToDate {
        /// What it says.
        facts: CrlFacts,
        /// Its DER.
        der: Vec<u8>,
        /// When to re-sign it.
        refresh_at: OffsetDateTime,
        /// Entries only this CRL still has: put back into the register.
        restore: Vec<Revoked>,
    },
    /// Sign a new CRL.
    Sign {
        /// The issuer.
        issuer: Box<ReadyIssuer>,
        /// cRLNumber: above every number seen for this CA.
        number: u64,
        /// The entries.
        entries: Vec<RevokedEntry>,
        /// Entries only the last signed CRL still had: put back into the
        /// register first, so losing the register un-revokes nothing.
        restore: Vec<Revoked>,
        /// validity and refreshBefore.
        lifetime: Lifetime,
        /// Why (`NoCRL`, `Changed`, `SpecChanged`, `Refresh`).
        why: &'static str,
    },
}

/// validity and refreshBefore.
pub fn lifetime(crl: &CRL) -> Result<Lifetime, Error> {
    duration::lifetime(
        ("spec.validity", crl.spec.validity.as_deref()),
        ("spec.refreshBefore", crl.spec.refresh_before.as_deref()),
        DEFAULT_VALIDITY,
    )
    .map_err(Error::InvalidSpec)
}

/// What the CRL keeps listing, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// Entries stay this long after their certificate's notAfter.
    pub retention: time::Duration,
    /// notAfter assumed for entries only the signed CRL knows (the CA's own
    /// notAfter: nothing it signed outlives it).
    pub unknown_not_after: i64,
}

/// The revocations the CRL must list at `now`: the register plus what only
/// the trusted published CRL still lists, minus certificates expired longer
/// than the retention; ordered by time then serial. Returns (entries, to
/// restore).
pub fn wanted(
    register: &[Revoked],
    published: Option<&CrlFacts>,
    keep: Keep,
    now: OffsetDateTime,
) -> (Vec<Revoked>, Vec<Revoked>) {
    let known: std::collections::HashSet<&str> =
        register.iter().map(|r| r.serial.as_str()).collect();
    let restore: Vec<Revoked> = published
        .map(|f| f.entries.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|e| !known.contains(e.serial_hex.as_str()))
        .map(|e| Revoked {
            serial: e.serial_hex.clone(),
            revoked_at: e.revoked_at.unix_timestamp(),
            reason: e.reason.unwrap_or_default(),
            not_after: keep.unknown_not_after,
            certificate: None,
            actor: Some("crl-recovery".into()),
        })
        .collect();
    let cutoff = (now - keep.retention).unix_timestamp();
    let mut all: Vec<Revoked> = register
        .iter()
        .chain(restore.iter())
        .filter(|e| e.not_after > cutoff)
        .cloned()
        .collect();
    all.sort_by(|a, b| {
        a.revoked_at
            .cmp(&b.revoked_at)
            .then(a.serial.cmp(&b.serial))
    });
    (all, restore)
}

/// How long entries stay after their certificate expired (`spec.expiredRetention`).
pub fn retention(crl: &CRL) -> Result<time::Duration, Error> {
    let d = duration::optional(
        "spec.expiredRetention",
        crl.spec.expired_retention.as_deref(),
    )
    .map_err(Error::InvalidSpec)?
    .unwrap_or_default();
    time::Duration::try_from(d)
        .map_err(|_| Error::InvalidSpec("spec.expiredRetention is too large".into()))
}

fn to_entry(r: &Revoked, now: OffsetDateTime) -> RevokedEntry {
    RevokedEntry {
        serial_hex: r.serial.clone(),
        revoked_at: OffsetDateTime::from_unix_timestamp(r.revoked_at)
            .unwrap_or(now)
            .min(now),
        reason: r.reason,
        invalidity_date: None,
    }
}

/// Whether `facts` lists exactly `want` (serial and reason).
fn lists_exactly(facts: &CrlFacts, want: &[Revoked]) -> bool {
    let mut have: Vec<(&str, Option<RevocationReason>)> = facts
        .entries
        .iter()
        .map(|e| (e.serial_hex.as_str(), e.reason))
        .collect();
    let mut need: Vec<(&str, Option<RevocationReason>)> = want
        .iter()
        .map(|r| (r.serial.as_str(), Some(r.reason)))
        .collect();
    have.sort();
    need.sort();
    have == need
}

/// Decides.
pub fn decide(crl: &CRL, world: &World, now: OffsetDateTime) -> Result<Decision, Error> {
    let lifetime = lifetime(crl)?;
    if let Some(first) = &world.publisher {
        return Err(Error::Refused {
            reason: "DuplicateCRL",
            message: format!(
                "CRL {first} already publishes the revocations of CertificateAuthority {:?}; two CRL objects would sign competing CRL numbers, so this one waits: delete it or point spec.caRef at another CA",
                crl.spec.ca_ref.name
            ),
        });
    }
    let ca = world
        .ca
        .as_ref()
        .ok_or_else(|| Error::IssuerNotFound(crl.spec.ca_ref.name.clone()))?;
    let issuer = issuer_of(ca, false)?;
    let trusted = world
        .published_der
        .as_ref()
        .and_then(|der| pki::verify_crl(der, &issuer.info).ok().map(|f| (f, der)));
    let keep = Keep {
        retention: retention(crl)?,
        unknown_not_after: issuer.info.not_after().unix_timestamp(),
    };
    let (want, restore) = wanted(
        &world.register.entries,
        trusted.as_ref().map(|t| &t.0),
        keep,
        now,
    );
    let refresh = time::Duration::try_from(lifetime.before_end).unwrap_or_default();
    let spec_changed =
        crl.status.as_ref().and_then(|s| s.observed_generation) != crl.metadata.generation;
    let why = match &trusted {
        None => Some("NoCRL"),
        Some((f, _)) if !lists_exactly(f, &want) => Some("Changed"),
        Some(_) if spec_changed => Some("SpecChanged"),
        Some((f, _)) if f.next_update.is_none_or(|n| now >= n - refresh) => Some("Refresh"),
        Some(_) => None,
    };
    match (why, trusted) {
        (None, Some((facts, der))) => Ok(Decision::UpToDate {
            refresh_at: facts.next_update.map_or(now, |n| n - refresh),
            der: der.clone(),
            facts,
            restore,
        }),
        (why, trusted) => {
            let seen = [
                trusted.as_ref().map_or(0, |t| t.0.number),
                crl.status
                    .as_ref()
                    .and_then(|s| s.crl_number)
                    .unwrap_or(0)
                    .max(0) as u64,
                world.store_number.max(0) as u64,
            ];
            Ok(Decision::Sign {
                number: seen.into_iter().max().unwrap_or(0) + 1,
                entries: want.iter().map(|r| to_entry(r, now)).collect(),
                issuer: Box::new(issuer),
                restore,
                lifetime,
                why: why.unwrap_or("NoCRL"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CrlEntryFacts;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn rev(serial: &str, at: i64, not_after: i64) -> Revoked {
        Revoked {
            serial: serial.into(),
            revoked_at: at,
            reason: RevocationReason::KeyCompromise,
            not_after,
            certificate: None,
            actor: None,
        }
    }

    fn facts(serials: &[&str]) -> CrlFacts {
        CrlFacts {
            number: 7,
            this_update: t(0),
            next_update: Some(t(1000)),
            entries: serials
                .iter()
                .map(|s| CrlEntryFacts {
                    serial_hex: s.to_string(),
                    revoked_at: t(5),
                    reason: Some(RevocationReason::KeyCompromise),
                })
                .collect(),
        }
    }

    #[test]
    fn what_the_crl_must_list() {
        type Case<'a> = (
            &'a str,
            Vec<Revoked>,
            Option<CrlFacts>,
            Vec<&'a str>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "the register is listed",
                vec![rev("0a", 1, 500)],
                None,
                vec!["0a"],
                vec![],
            ),
            (
                "expired certificates leave the CRL",
                vec![rev("0a", 1, 50), rev("0b", 2, 500)],
                None,
                vec!["0b"],
                vec![],
            ),
            (
                "a lost register is restored from the signed CRL",
                vec![],
                Some(facts(&["0c"])),
                vec!["0c"],
                vec!["0c"],
            ),
            (
                "entries in both are listed once",
                vec![rev("0c", 1, 500)],
                Some(facts(&["0c"])),
                vec!["0c"],
                vec![],
            ),
            (
                "entries are ordered by time then serial",
                vec![rev("0b", 2, 500), rev("0a", 2, 500), rev("0c", 1, 500)],
                None,
                vec!["0c", "0a", "0b"],
                vec![],
            ),
        ];
        for (name, reg, published, want, restore) in cases {
            let keep = Keep {
                retention: time::Duration::ZERO,
                unknown_not_after: 10_000,
            };
            let (got, got_restore) = wanted(&reg, published.as_ref(), keep, t(100));
            let got: Vec<&str> = got.iter().map(|r| r.serial.as_str()).collect();
            let got_restore: Vec<&str> = got_restore.iter().map(|r| r.serial.as_str()).collect();
            assert_eq!((got, got_restore), (want, restore), "{name}");
        }
    }

    #[test]
    fn a_crl_is_current_only_when_it_lists_exactly_the_wanted_entries() {
        assert!(lists_exactly(&facts(&["0a"]), &[rev("0a", 5, 500)]));
        assert!(!lists_exactly(&facts(&[]), &[rev("0a", 5, 500)]));
        assert!(!lists_exactly(&facts(&["0a", "0b"]), &[rev("0a", 5, 500)]));
        let mut other_reason = rev("0a", 5, 500);
        other_reason.reason = RevocationReason::Superseded;
        assert!(!lists_exactly(&facts(&["0a"]), &[other_reason]));
    }
}

#[cfg(test)]
mod decision_table {
    use serde_json::json;

    use super::*;
    use crate::api::CrlStatus;
    use crate::controller::revocations::Register;
    use crate::controller::testing::{key, now, ready_root};
    use crate::pki::{CrlRequest, IssuerInfo};

    fn crl(generation: i64, observed: Option<i64>, number: Option<i64>) -> CRL {
        let mut c: CRL = serde_json::from_value(json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "CRL",
            "metadata": {"name": "root-crl", "generation": generation},
            "spec": {"caRef": {"name": "root"}}
        }))
        .unwrap();
        c.status = Some(CrlStatus {
            observed_generation: observed,
            crl_number: number,
            ..Default::default()
        });
        c
    }

    fn rev(serial: &str) -> Revoked {
        Revoked {
            serial: serial.into(),
            revoked_at: now().unix_timestamp() - 60,
            reason: RevocationReason::KeyCompromise,
            not_after: now().unix_timestamp() + 86400,
            certificate: None,
            actor: None,
        }
    }

    async fn signed(
        ca: &crate::api::CertificateAuthority,
        k: &crate::kms::LocalSigner,
        number: u64,
        entries: &[Revoked],
        at: OffsetDateTime,
    ) -> Vec<u8> {
        let info = IssuerInfo::from_pem(
            ca.status.as_ref().unwrap().certificate.as_ref().unwrap(),
            Default::default(),
        )
        .unwrap();
        let req = CrlRequest {
            number,
            this_update: at,
            next_update: at + time::Duration::hours(24),
            entries: entries.iter().map(|r| to_entry(r, at)).collect(),
            distribution_point: None,
        };
        pki::sign_crl(&info, k, &req, at).await.unwrap().der
    }

    fn outcome(d: Result<Decision, Error>) -> String {
        match d {
            Ok(Decision::UpToDate { facts, restore, .. }) if !restore.is_empty() => {
                format!("UpToDate {} (restores {})", facts.number, restore.len())
            }
            Ok(Decision::UpToDate { facts, .. }) => format!("UpToDate {}", facts.number),
            Ok(Decision::Sign {
                number,
                why,
                entries,
                ..
            }) => format!("Sign {why} {number} ({} entries)", entries.len()),
            Err(e) => format!("Err {}", e.reason()),
        }
    }

    #[tokio::test]
    async fn crl_decisions() {
        let k = key("arn:root");
        let root = ready_root("root", json!({}), &k).await;
        let mut unready = root.clone();
        unready.status.as_mut().unwrap().conditions.clear();
        let mut keyless = root.clone();
        keyless.status.as_mut().unwrap().certificate = None;
        let forger = key("arn:forger");
        let forged_ca = ready_root("root", json!({}), &forger).await;
        let reg = |e: Vec<Revoked>| Register {
            unreadable: vec![],
            entries: e,
            skipped: vec![],
        };
        let current = signed(&root, &k, 4, &[rev("0a")], now()).await;
        let stale = signed(
            &root,
            &k,
            4,
            &[rev("0a")],
            now() - time::Duration::hours(20),
        )
        .await;
        let forged = signed(&forged_ca, &forger, 1000, &[], now()).await;
        let w = |ca: &crate::api::CertificateAuthority,
                 e: Vec<Revoked>,
                 der: Option<&Vec<u8>>,
                 store: i64| World {
            ca: Some(ca.clone()),
            register: reg(e),
            published_der: der.cloned(),
            store_number: store,
            publisher: None,
        };
        let cases: Vec<(&str, CRL, World, &str)> = vec![
            (
                "a missing CA is waited for",
                crl(1, Some(1), None),
                World::default(),
                "Err IssuerNotFound",
            ),
            (
                "a second CRL object for the same CA is refused, never competes on numbers",
                crl(1, Some(1), None),
                World {
                    publisher: Some("older-crl".into()),
                    ..w(&root, vec![], None, 0)
                },
                "Err DuplicateCRL",
            ),
            (
                "a CA without a certificate is waited for",
                crl(1, Some(1), None),
                w(&keyless, vec![], None, 0),
                "Err IssuerNotReady",
            ),
            (
                "the first CRL gets a number above status and mirror",
                crl(1, Some(1), Some(2)),
                w(&root, vec![rev("0a")], None, 5),
                "Sign NoCRL 6 (1 entries)",
            ),
            (
                "a CA that is not Ready still signs CRLs",
                crl(1, Some(1), None),
                w(&unready, vec![], None, 0),
                "Sign NoCRL 1 (0 entries)",
            ),
            (
                "a verified CRL listing exactly the register is current",
                crl(1, Some(1), Some(4)),
                w(&root, vec![rev("0a")], Some(&current), 4),
                "UpToDate 4",
            ),
            (
                "a new revocation re-signs",
                crl(1, Some(1), Some(4)),
                w(&root, vec![rev("0a"), rev("0b")], Some(&current), 4),
                "Sign Changed 5 (2 entries)",
            ),
            (
                "a lost register is restored from the signed CRL, not un-revoked",
                crl(1, Some(1), Some(4)),
                w(&root, vec![], Some(&current), 4),
                "UpToDate 4 (restores 1)",
            ),
            (
                "a spec change re-signs",
                crl(2, Some(1), Some(4)),
                w(&root, vec![rev("0a")], Some(&current), 4),
                "Sign SpecChanged 5 (1 entries)",
            ),
            (
                "a CRL within refreshBefore of nextUpdate is refreshed",
                crl(1, Some(1), Some(4)),
                w(&root, vec![rev("0a")], Some(&stale), 4),
                "Sign Refresh 5 (1 entries)",
            ),
            (
                "a CRL that does not verify is not trusted: its number and entries count for nothing",
                crl(1, Some(1), Some(4)),
                w(&root, vec![rev("0a")], Some(&forged), 4),
                "Sign NoCRL 5 (1 entries)",
            ),
        ];
        for (name, c, world, want) in cases {
            assert_eq!(outcome(decide(&c, &world, now())), want, "{name}");
        }
    }
}
