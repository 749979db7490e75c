//! Builders for the decision tables: CA objects with real certificates
//! signed by in-memory keys.

use serde_json::json;
use time::OffsetDateTime;

use super::ca::spec_hash;
use super::conditions::{self, Cond};
use crate::api::{
    CONDITION_READY, CertificateAuthority, CertificateAuthoritySpec, CertificateAuthorityStatus,
};
use crate::clock::rfc3339;
use crate::kms::{KeySpec, LocalSigner, Signer};
use crate::pki::{self, CaRequest};

/// 2026-11-27T12:00:00Z.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_780_800).unwrap()
}

/// A fresh P-256 key.
pub fn key(id: &str) -> LocalSigner {
    LocalSigner::generate(KeySpec::EccNistP256, id).unwrap()
}

/// A CA object with `spec` merged over a common name.
pub fn ca(name: &str, spec: serde_json::Value) -> CertificateAuthority {
    let mut base = json!({"commonName": format!("{name} CA")});
    base.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    let spec: CertificateAuthoritySpec = serde_json::from_value(base).unwrap();
    CertificateAuthority::new(name, spec)
}

/// A Ready root CA with a real certificate signed by `key`, recorded with
/// key ARN = `key`'s id.
pub async fn ready_root(
    name: &str,
    spec: serde_json::Value,
    key: &LocalSigner,
) -> CertificateAuthority {
    let mut c = ca(name, spec);
    let req = CaRequest::from_api(&c.spec, time::Duration::days(3650));
    let issued = pki::issue_root(key, &req, now() - time::Duration::days(365))
        .await
        .unwrap();
    c.status = Some(CertificateAuthorityStatus {
        conditions: conditions::merge(
            &[],
            &[Cond::yes(CONDITION_READY, "Issued", "ok")],
            None,
            now(),
        ),
        certificate: Some(issued.cert_pem.clone()),
        chain: Some(issued.cert_pem),
        kms_key_arn: Some(key.key_arn().to_string()),
        spec_hash: Some(spec_hash(&c)),
        renewal_time: Some(rfc3339(now() + time::Duration::days(1000))),
        ..Default::default()
    });
    c
}
