//! The one builder per mirror row. Live reconciles and the rebuild from
//! the cluster both call these, so a rebuilt mirror says what the live one
//! said (a test compares them).

use kube::ResourceExt;

use crate::api::{Certificate, CertificateAuthority, Usage};
use crate::clock::parse_rfc3339;
use crate::pki::CertFacts;
use crate::store::{CaRecord, CaStatus, CertRecord, CertStatus};

/// The SANs of a Certificate spec, typed as the mirror stores them
/// (`DNS:…`, `IP:…`, `URI:…`, `email:…`).
pub fn typed_sans(c: &Certificate) -> Vec<String> {
    let s = &c.spec;
    let mut sans: Vec<String> = s.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
    sans.extend(s.ip_addresses.iter().map(|d| format!("IP:{d}")));
    sans.extend(s.uris.iter().map(|d| format!("URI:{d}")));
    sans.extend(s.email_addresses.iter().map(|d| format!("email:{d}")));
    sans
}

/// The usages of a Certificate spec after defaults, cert-manager spelling.
pub fn usages(c: &Certificate) -> Vec<String> {
    let list = if c.spec.usages.is_empty() {
        vec![Usage::ServerAuth, Usage::ClientAuth]
    } else {
        c.spec.usages.clone()
    };
    list.iter()
        .filter_map(|u| serde_json::to_value(u).ok())
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// The row of certificate `facts` issued for `cert` as revision `revision`.
/// A revocation recorded in the object's status makes it `Revoked`.
pub fn certificate_row(cert: &Certificate, facts: &CertFacts, revision: i64) -> CertRecord {
    let revoked = cert.status.as_ref().and_then(|st| {
        st.revocations
            .iter()
            .find(|r| r.serial_number == facts.serial_hex)
    });
    CertRecord {
        ca: cert.spec.issuer_ref.name.clone(),
        namespace: cert.namespace().unwrap_or_default(),
        name: cert.name_any(),
        uid: cert.uid().unwrap_or_default(),
        serial: facts.serial_hex.clone(),
        subject: cert.spec.common_name.clone().unwrap_or_default(),
        sans: typed_sans(cert),
        usages: usages(cert),
        status: if revoked.is_some() {
            CertStatus::Revoked
        } else {
            CertStatus::Active
        },
        not_before: facts.not_before.unix_timestamp(),
        not_after: facts.not_after.unix_timestamp(),
        revision,
        revoked_at: revoked
            .and_then(|r| parse_rfc3339(&r.revocation_time))
            .map(|t| t.unix_timestamp()),
        revocation_reason: revoked.map(|r| r.reason.as_str().to_string()),
        certificate_pem: Some(facts.pem()),
        secret_name: Some(cert.spec.secret_name.clone()),
        issued_at: facts.not_before.unix_timestamp(),
    }
}

/// The row of CA `ca` with its current certificate `facts` (when it has
/// one) and key `key_arn`.
pub fn ca_row(
    ca: &CertificateAuthority,
    key_arn: Option<&str>,
    facts: Option<&CertFacts>,
    now: time::OffsetDateTime,
) -> CaRecord {
    CaRecord {
        name: ca.name_any(),
        uid: ca.uid(),
        kms_key_arn: key_arn.map(String::from),
        key_spec: facts
            .and_then(|f| crate::pki::parse::spki_key_spec(&f.spki_der))
            .map(|k| k.as_str().to_string()),
        subject: Some(ca.spec.common_name.clone()),
        serial: facts.map(|f| f.serial_hex.clone()),
        parent: ca.spec.issuer_ref.as_ref().map(|r| r.name.clone()),
        status: Some(if facts.is_some() {
            CaStatus::Active
        } else {
            CaStatus::Pending
        }),
        not_before: facts.map(|f| f.not_before.unix_timestamp()),
        not_after: facts.map(|f| f.not_after.unix_timestamp()),
        certificate_pem: facts.map(CertFacts::pem),
        updated_at: now.unix_timestamp(),
    }
}

/// cert-manager spelling of a PKI usage.
fn usage_name(u: crate::pki::Usage) -> &'static str {
    use crate::pki::Usage as U;
    match u {
        U::ServerAuth => "server auth",
        U::ClientAuth => "client auth",
        U::CodeSigning => "code signing",
        U::EmailProtection => "email protection",
        U::OcspSigning => "ocsp signing",
    }
}

/// The row of certificate `facts` issued by CA `ca` for the cert-manager
/// CertificateRequest `ns/name` (uid `uid`) asking for `req`. The row's
/// uid is what a restarted reconcile looks the issuance up by.
pub fn certificate_request_row(
    (ns, name, uid): (&str, &str, &str),
    ca: &str,
    req: &crate::pki::LeafRequest,
    facts: &CertFacts,
) -> CertRecord {
    let mut sans: Vec<String> = req.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
    sans.extend(req.ip_addresses.iter().map(|d| format!("IP:{d}")));
    sans.extend(req.uris.iter().map(|d| format!("URI:{d}")));
    sans.extend(req.email_addresses.iter().map(|d| format!("email:{d}")));
    CertRecord {
        ca: ca.to_string(),
        namespace: ns.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        serial: facts.serial_hex.clone(),
        subject: req.subject.common_name.clone().unwrap_or_default(),
        sans,
        usages: req
            .effective_usages()
            .into_iter()
            .map(|u| usage_name(u).to_string())
            .collect(),
        status: CertStatus::Active,
        not_before: facts.not_before.unix_timestamp(),
        not_after: facts.not_after.unix_timestamp(),
        revision: 1,
        revoked_at: None,
        revocation_reason: None,
        certificate_pem: Some(facts.pem()),
        secret_name: None,
        issued_at: facts.not_before.unix_timestamp(),
    }
}
