//! The part of cert-manager's `CertificateRequest` (`cert-manager.io/v1`)
//! Signet reads and writes. cert-manager owns the CRD; Signet never
//! installs or prints it. Field names and meanings follow
//! `pkg/apis/certmanager/v1/types_certificaterequest.go`.

use k8s_openapi::ByteString;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// `spec` of a cert-manager CertificateRequest (immutable after creation).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "CertificateRequest",
    namespaced,
    status = "CertificateRequestStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// Requested validity (Go duration); cert-manager's default is 90 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The issuer: Signet answers `group: signet.dev`,
    /// `kind: CertificateAuthority`.
    pub issuer_ref: IssuerRef,
    /// The PEM CSR (base64 in the API).
    #[serde(default)]
    pub request: ByteString,
    /// Requested basicConstraints cA.
    #[serde(default, rename = "isCA")]
    pub is_ca: bool,
    /// Requested key usages and extended key usages (cert-manager spelling).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    /// Who created the request, set by cert-manager's webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Their groups, set by cert-manager's webhook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// `spec.issuerRef`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// Kind (cert-manager defaults it to `Issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Group (cert-manager defaults it to `cert-manager.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `status` of a CertificateRequest.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    /// Conditions (a map keyed by `type`: Signet owns only `Ready`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RequestCondition>,
    /// The signed certificate and its intermediates, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ByteString>,
    /// The root CA certificate, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<ByteString>,
    /// When the request failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_time: Option<String>,
}

/// One condition (cert-manager's `CertificateRequestCondition`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestCondition {
    /// `Ready`, `InvalidRequest`, `Approved` or `Denied`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed. (cert-manager's condition has no
    /// `observedGeneration`: a request's spec is immutable.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl CertificateRequest {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&RequestCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }

    /// Whether condition `type_` is `True`.
    pub fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }

    /// Whether `spec.issuerRef` names a Signet CertificateAuthority.
    pub fn is_for_signet(&self) -> bool {
        let r = &self.spec.issuer_ref;
        r.group.as_deref() == Some(crate::api::GROUP) && r.kind.as_deref() == Some(KIND)
    }
}

/// The issuer kind Signet answers in `spec.issuerRef.kind`.
pub const KIND: &str = "CertificateAuthority";
