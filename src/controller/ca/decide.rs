//! What to do with a CA: a pure function of (CA, observations, now).
//! Every check that could refuse runs here, before any key is created or
//! anything is signed.

use std::sync::Arc;

use kube::ResourceExt;
use serde_json::json;
use time::OffsetDateTime;

use super::super::Error;
use super::super::conditions;
use super::observe::World;
use super::urls::PublicUrls;
use super::{INTERMEDIATE_DURATION, ROOT_DURATION};
use crate::api::duration::{self, Lifetime};
use crate::api::{CONDITION_READY, CertificateAuthority, KmsKeySpec};
use crate::clock::parse_rfc3339;
use crate::kms::{KeySpec, Signer};
use crate::pki::{self, CaRequest, CertFacts, IssuerInfo, IssuerProfile};

/// A CA as an issuer: its certificate with the profile it stamps into what
/// it issues, its chain, and the key that signs for it.
#[derive(Debug, Clone)]
pub struct ReadyIssuer {
    /// CA name.
    pub name: String,
    /// Parsed certificate + profile.
    pub info: IssuerInfo,
    /// Chain up to the root (PEM, this CA first).
    pub chain_pem: String,
    /// KMS key ARN.
    pub key_arn: String,
}

/// The issuer a CA object describes. With `require_ready`, the CA must be
/// `Ready=True` (issuing leaves and intermediates); without it, a CA that
/// has a certificate and a key is enough (signing CRLs, which must go on
/// while a CA is not Ready for other reasons).
pub fn issuer_of(ca: &CertificateAuthority, require_ready: bool) -> Result<ReadyIssuer, Error> {
    issuer_with_urls(ca, require_ready, None)
}

/// [`issuer_of`], stamping the CRL distribution point and AIA URLs of
/// `urls` where the CA's spec names none (what issuance should use).
pub fn issuer_with_urls(
    ca: &CertificateAuthority,
    require_ready: bool,
    urls: Option<&PublicUrls>,
) -> Result<ReadyIssuer, Error> {
    let name = ca.name_any();
    let not_ready = || Error::IssuerNotReady(name.clone());
    let st = ca.status.as_ref().ok_or_else(not_ready)?;
    let (Some(cert), Some(arn)) = (st.certificate.as_ref(), st.kms_key_arn.as_ref()) else {
        return Err(not_ready());
    };
    if require_ready && !conditions::is_true(&st.conditions, CONDITION_READY) {
        return Err(not_ready());
    }
    let max = duration::optional(
        "spec.maxCertificateDuration",
        ca.spec.max_certificate_duration.as_deref(),
    )
    .map_err(Error::InvalidSpec)?
    .map(|d| time::Duration::try_from(d).unwrap_or(time::Duration::MAX));
    let mut profile = IssuerProfile::from_api(&ca.spec, max);
    if let Some(urls) = urls {
        super::urls::stamp(&mut profile, &name, urls);
    }
    let info = IssuerInfo::from_pem(cert, profile)?;
    Ok(ReadyIssuer {
        name,
        info,
        chain_pem: st.chain.clone().unwrap_or_else(|| cert.clone()),
        key_arn: arn.clone(),
    })
}

/// The inputs that shape the CA certificate; a change triggers reissuance.
/// (Unchanged since v0.1: changing it would reissue every CA on upgrade.)
pub fn spec_hash(ca: &CertificateAuthority) -> String {
    let s = &ca.spec;
    let v = json!({
        "cn": s.common_name, "subject": s.subject, "duration": s.duration,
        "pathLen": s.max_path_length, "nc": s.name_constraints,
        "issuer": s.issuer_ref.as_ref().map(|r| &r.name),
    });
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.to_string().as_bytes());
    hex::encode(&digest.as_ref()[..12])
}

/// Where the key comes from.
#[derive(Clone)]
pub enum KeyPlan {
    /// The key the CA already has.
    Existing(Arc<dyn Signer>),
    /// Create one of this spec (nothing else can refuse any more).
    Create(KeySpec),
}

impl std::fmt::Debug for KeyPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPlan::Existing(s) => write!(f, "Existing({})", s.key_arn()),
            KeyPlan::Create(spec) => write!(f, "Create({spec})"),
        }
    }
}

/// What to do with a CA. (One per reconcile: the variants' size difference
/// costs nothing worth boxing for.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// The certificate is current.
    UpToDate {
        /// The current certificate.
        facts: CertFacts,
        /// Its key.
        key: Arc<dyn Signer>,
        /// When to renew.
        renewal: OffsetDateTime,
        /// The parent, for an intermediate.
        parent: Option<ReadyIssuer>,
    },
    /// Issue the CA certificate.
    Issue {
        /// Why (`Issuing`, `SpecChanged`, `KeyChanged`, `Renewing`, ...).
        why: &'static str,
        /// The key.
        key: KeyPlan,
        /// The request.
        request: CaRequest,
        /// The parent, for an intermediate.
        parent: Option<ReadyIssuer>,
        /// Duration and renewBefore.
        lifetime: Lifetime,
    },
}

/// Validity and renewBefore of the CA certificate.
pub fn lifetime(ca: &CertificateAuthority) -> Result<Lifetime, Error> {
    let default = if ca.spec.issuer_ref.is_some() {
        INTERMEDIATE_DURATION
    } else {
        ROOT_DURATION
    };
    let s = &ca.spec;
    duration::optional(
        "spec.maxCertificateDuration",
        s.max_certificate_duration.as_deref(),
    )
    .map_err(Error::InvalidSpec)?;
    duration::lifetime(
        ("spec.duration", s.duration.as_deref()),
        ("spec.renewBefore", s.renew_before.as_deref()),
        default,
    )
    .map_err(Error::InvalidSpec)
}

/// The parent as an issuer, after the chain checks: no loop, every name
/// resolves, the parent is Ready.
fn parent(ca: &CertificateAuthority, world: &World) -> Result<Option<ReadyIssuer>, Error> {
    let a = &world.ancestry;
    if let Some(cycle) = &a.cycle {
        return Err(Error::InvalidSpec(format!(
            "spec.issuerRef forms a loop ({}); an issuer chain must end at a root CA (one without issuerRef)",
            cycle.join(" → ")
        )));
    }
    if ca.spec.issuer_ref.is_none() {
        return Ok(None);
    }
    match (a.parents.first(), &a.missing) {
        (Some(p), _) => issuer_with_urls(p, true, world.parent_urls.as_ref()).map(Some),
        (None, Some(name)) => Err(Error::IssuerNotFound(name.clone())),
        (None, None) => Err(Error::Other("issuer chain not observed".into())),
    }
}

fn key_spec(spec: Option<KmsKeySpec>, default: KeySpec) -> KeySpec {
    match spec {
        None => default,
        Some(KmsKeySpec::ECC_NIST_P256) => KeySpec::EccNistP256,
        Some(KmsKeySpec::ECC_NIST_P384) => KeySpec::EccNistP384,
        Some(KmsKeySpec::RSA_2048) => KeySpec::Rsa2048,
        Some(KmsKeySpec::RSA_3072) => KeySpec::Rsa3072,
        Some(KmsKeySpec::RSA_4096) => KeySpec::Rsa4096,
    }
}

/// Why the certificate must be (re)issued, or its facts when it is current.
/// The renewal policy of a CA, in order.
pub fn needs_issuance(
    ca: &CertificateAuthority,
    key_spki: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<CertFacts, &'static str> {
    let st = ca.status.as_ref().ok_or("Issuing")?;
    let pem = st.certificate.as_ref().ok_or("Issuing")?;
    if st.spec_hash.as_deref() != Some(spec_hash(ca).as_str()) {
        return Err("SpecChanged");
    }
    let facts = pki::parse::first_cert_facts(pem.as_bytes()).ok_or("InvalidCertificate")?;
    if key_spki.is_some_and(|k| k != facts.spki_der) {
        return Err("KeyChanged");
    }
    match st.renewal_time.as_deref().and_then(parse_rfc3339) {
        Some(t) if now < t => Ok(facts),
        _ => Err("Renewing"),
    }
}

/// Decides. Refusals (bad spec, broken chain, parent not Ready, a request
/// the parent cannot sign) come out as errors before any key exists.
pub fn decide(
    ca: &CertificateAuthority,
    world: &World,
    default_key_spec: KeySpec,
    now: OffsetDateTime,
) -> Result<Decision, Error> {
    let lifetime = lifetime(ca)?;
    let parent = parent(ca, world)?;
    let request = CaRequest::from_api(
        &ca.spec,
        time::Duration::try_from(lifetime.total)
            .map_err(|_| Error::InvalidSpec("spec.duration is too large".into()))?,
    );
    pki::check_ca_request(&request, parent.as_ref().map(|p| &p.info), now)?;
    let spki = world.key.as_ref().map(|k| k.public_key_spki_der());
    match (needs_issuance(ca, spki, now), &world.key) {
        (Ok(facts), Some(key)) => {
            let renewal = duration::act_at(facts.not_before, facts.not_after, lifetime.before_end);
            Ok(Decision::UpToDate {
                facts,
                key: key.clone(),
                renewal,
                parent,
            })
        }
        (why, key) => Ok(Decision::Issue {
            why: why.err().unwrap_or("Issuing"),
            key: match key {
                Some(k) => KeyPlan::Existing(k.clone()),
                None => KeyPlan::Create(key_spec(ca.spec.kms.key_spec, default_key_spec)),
            },
            request,
            parent,
            lifetime,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::observe::Ancestry;
    use super::*;
    use crate::kms::LocalSigner;

    use crate::controller::testing::{ca, now};

    async fn ready_root(
        name: &str,
        path_len: Option<u8>,
        key: &LocalSigner,
    ) -> CertificateAuthority {
        crate::controller::testing::ready_root(name, json!({"maxPathLength": path_len}), key).await
    }

    fn world(
        parents: Vec<CertificateAuthority>,
        missing: Option<&str>,
        cycle: Option<&[&str]>,
    ) -> World {
        World {
            ancestry: Ancestry {
                parents,
                missing: missing.map(String::from),
                cycle: cycle.map(|c| c.iter().map(|s| s.to_string()).collect()),
            },
            key: None,
            parent_urls: None,
        }
    }

    fn key() -> LocalSigner {
        crate::controller::testing::key("k")
    }

    #[tokio::test]
    async fn ca_decisions() {
        let root_key = key();
        let root = ready_root("root", None, &root_key).await;
        let root_pathlen0 = ready_root("tight", Some(0), &root_key).await;
        let mut unready = root.clone();
        unready.status.as_mut().unwrap().conditions.clear();
        let inter = |parent: &str| ca("inter", json!({"issuerRef": {"name": parent}}));
        let d = KeySpec::EccNistP256;
        type Want = Result<&'static str, &'static str>;
        let cases: Vec<(&str, CertificateAuthority, World, Want)> = vec![
            (
                "a new root creates a key and issues",
                ca("r", json!({})),
                world(vec![], None, None),
                Ok("Create/Issuing"),
            ),
            (
                "an intermediate under a Ready parent issues",
                inter("root"),
                world(vec![root.clone()], None, None),
                Ok("Create/Issuing"),
            ),
            (
                "a CA naming itself is an invalid spec, before any key",
                inter("inter"),
                world(vec![], None, Some(&["inter", "inter"])),
                Err("InvalidSpec"),
            ),
            (
                "a loop a → b → a is an invalid spec",
                inter("b"),
                world(vec![], None, Some(&["inter", "b", "inter"])),
                Err("InvalidSpec"),
            ),
            (
                "a missing parent waits for it",
                inter("nope"),
                world(vec![], Some("nope"), None),
                Err("IssuerNotFound"),
            ),
            (
                "a parent that is not Ready is waited for",
                inter("root"),
                world(vec![unready], None, None),
                Err("IssuerNotReady"),
            ),
            (
                "a parent with pathLen 0 refuses before a key is created",
                inter("tight"),
                world(vec![root_pathlen0], None, None),
                Err("IssuerNotAllowed"),
            ),
            (
                "bad name constraints refuse before a key is created",
                ca(
                    "r",
                    json!({"nameConstraints": {"permitted": {"dnsDomains": ["bad domain"]}}}),
                ),
                world(vec![], None, None),
                Err("InvalidSpec"),
            ),
            (
                "renewBefore not shorter than duration is an invalid spec",
                ca("r", json!({"duration": "10h", "renewBefore": "20h"})),
                world(vec![], None, None),
                Err("InvalidSpec"),
            ),
        ];
        for (name, c, w, want) in cases {
            let got = match decide(&c, &w, d, now()) {
                Ok(Decision::Issue {
                    why,
                    key: KeyPlan::Create(_),
                    ..
                }) => Ok(if why == "Issuing" {
                    "Create/Issuing"
                } else {
                    why
                }),
                Ok(Decision::Issue { why, .. }) => Ok(why),
                Ok(Decision::UpToDate { .. }) => Ok("UpToDate"),
                Err(e) => Err(e.reason()),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[tokio::test]
    async fn an_issued_root_is_up_to_date_until_renewal_and_reissued_on_change() {
        let k = key();
        let mut root = ready_root("root", None, &k).await;
        let signer: Arc<dyn Signer> = Arc::new(k);
        let w = World {
            key: Some(signer.clone()),
            ..world(vec![], None, None)
        };
        assert!(matches!(
            decide(&root, &w, KeySpec::EccNistP256, now()),
            Ok(Decision::UpToDate { .. })
        ));
        let later = now() + time::Duration::days(1001);
        assert!(matches!(
            decide(&root, &w, KeySpec::EccNistP256, later),
            Ok(Decision::Issue {
                why: "Renewing",
                ..
            })
        ));
        let other: Arc<dyn Signer> = Arc::new(key());
        let w2 = World {
            key: Some(other),
            ..world(vec![], None, None)
        };
        assert!(matches!(
            decide(&root, &w2, KeySpec::EccNistP256, now()),
            Ok(Decision::Issue {
                why: "KeyChanged",
                ..
            })
        ));
        root.spec.common_name = "Renamed".into();
        assert!(matches!(
            decide(&root, &w, KeySpec::EccNistP256, now()),
            Ok(Decision::Issue {
                why: "SpecChanged",
                ..
            })
        ));
    }

    #[test]
    fn spec_hash_changes_with_shaping_fields_only() {
        let a = ca("a", json!({"duration": "10h"}));
        let mut b = a.clone();
        b.spec.renew_before = Some("1h".into());
        assert_eq!(spec_hash(&a), spec_hash(&b));
        b.spec.common_name = "Other".into();
        assert_ne!(spec_hash(&a), spec_hash(&b));
    }
}
