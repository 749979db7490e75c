//! The part of `PodCertificateRequest` (KEP-4317, `certificates.k8s.io`
//! `v1`, and `v1beta1` behind its runtime config) Signet reads and writes.
//! Both versions share these field names; `v1beta1` of older API servers
//! also has `pkixPublicKey` + `proofOfPossession` instead of
//! `stubPKCS10Request`. Read as whatever version the API server serves
//! (a `DynamicObject`, converted here).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// A PodCertificateRequest.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodCertificateRequest {
    /// `certificates.k8s.io/v1` or `certificates.k8s.io/v1beta1`.
    pub api_version: String,
    /// `PodCertificateRequest`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// What the kubelet asks for (immutable).
    pub spec: PodCertificateRequestSpec,
    /// What the signer answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodCertificateRequestStatus>,
}

/// `spec`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodCertificateRequestSpec {
    /// The signer asked for: `<domain>/<ca>`.
    pub signer_name: String,
    /// The pod the certificate is for.
    pub pod_name: String,
    /// Its uid.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// Its ServiceAccount.
    pub service_account_name: String,
    /// That ServiceAccount's uid.
    #[serde(rename = "serviceAccountUID")]
    pub service_account_uid: String,
    /// The node the pod runs on.
    pub node_name: String,
    /// Its uid.
    #[serde(rename = "nodeUID")]
    pub node_uid: String,
    /// Longest lifetime the kubelet accepts (the API server defaults it to
    /// 86400 and allows 3600..=7862400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expiration_seconds: Option<i32>,
    /// A PKCS#10 request (DER) made with the pod's key; the API server
    /// verified its signature at admission.
    #[serde(
        default,
        rename = "stubPKCS10Request",
        skip_serializing_if = "Option::is_none"
    )]
    pub stub_pkcs10_request: Option<ByteString>,
    /// Older form: the public key (DER SubjectPublicKeyInfo)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkix_public_key: Option<ByteString>,
    /// ...and a signature over the pod uid, which the API server verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_of_possession: Option<ByteString>,
    /// Pod authors' hints to the signer; Signet supports none, so any
    /// entry is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified_user_annotations: Option<BTreeMap<String, String>>,
}

/// `status`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodCertificateRequestStatus {
    /// `Issued`, `Denied` or `Failed` (exactly one, set once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Leaf first, then the intermediates (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
    /// The leaf's notBefore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    /// The leaf's notAfter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// When the kubelet should start asking for a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin_refresh_at: Option<Time>,
}
