//! Signet's custom resources (`signet.dev/v1alpha1`): pure types, no I/O.
//!
//! Doc comments on fields become the `kubectl explain` text. Rules that the
//! API server can check (enums, formats, CEL) live in the schema so invalid
//! objects are rejected at admission; the rest is checked by
//! [`validate`](crate::api::validate) and reported as `Ready=False` with
//! reason `InvalidSpec`.

pub mod duration;
pub mod validate;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Signet resource.
pub const GROUP: &str = "signet.dev";
/// Field manager used for every server-side apply Signet makes.
pub const FIELD_MANAGER: &str = "signet";

/// CEL rule: a Go-style duration ("90m", "2160h", "1h30m") that is positive.
const DURATION_RULE: &str =
    "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')";
const DURATION_MSG: &str = "must be a positive Go duration such as \"2160h\" (90 days), \"30m\" or \"1h30m\"; units: h, m, s, ms";

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/// Reference to a cluster-scoped CertificateAuthority.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaReference {
    /// Name of the CertificateAuthority.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Kind of the issuer; only `CertificateAuthority` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self == 'CertificateAuthority'").message("kind must be CertificateAuthority"))]
    #[schemars(length(max = 64))]
    pub kind: Option<String>,
    /// API group of the issuer; only `signet.dev` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self == 'signet.dev'").message("group must be signet.dev"))]
    #[schemars(length(max = 64))]
    pub group: Option<String>,
}

/// X.509 subject fields (the common name is set separately).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Organizations (O).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// Organizational units (OU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    /// Two-letter ISO 3166 country codes (C).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// States or provinces (ST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<String>,
    /// Cities or localities (L).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub localities: Vec<String>,
    /// Street addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub street_addresses: Vec<String>,
    /// Postal codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postal_codes: Vec<String>,
    /// Subject serial number attribute (not the certificate serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// Key algorithm, shared with KMS key specs where it applies.
#[allow(clippy::upper_case_acronyms)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KeyAlgorithm {
    /// ECDSA (P-256 by default, P-384 with `size: 384`).
    ECDSA,
    /// RSA (2048 by default; 3072 or 4096 with `size`).
    RSA,
    /// Ed25519 (no size).
    Ed25519,
}

/// Private key encoding inside the Secret.
#[allow(clippy::upper_case_acronyms)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum KeyEncoding {
    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`), the default.
    #[default]
    PKCS8,
    /// PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`); RSA keys only.
    PKCS1,
}

/// Whether a new private key is generated on each issuance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum RotationPolicy {
    /// Generate a new key on every issuance (renewal, reissue), the default.
    #[default]
    Always,
    /// Reuse the key in the Secret while it still matches the spec.
    Never,
}

/// Standard condition type: the object is usable.
pub const CONDITION_READY: &str = "Ready";
/// Certificate condition type: an issuance is in progress.
pub const CONDITION_ISSUING: &str = "Issuing";

// ---------------------------------------------------------------------------
// CertificateAuthority
// ---------------------------------------------------------------------------

/// KMS key spec Signet creates for a CA.
#[allow(non_camel_case_types)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum KmsKeySpec {
    /// ECDSA on NIST P-256 (signatures ECDSA-SHA256), the default.
    #[default]
    ECC_NIST_P256,
    /// ECDSA on NIST P-384 (signatures ECDSA-SHA384).
    ECC_NIST_P384,
    /// RSA 2048 (signatures RSA PKCS#1 v1.5 SHA-256).
    RSA_2048,
    /// RSA 3072.
    RSA_3072,
    /// RSA 4096.
    RSA_4096,
}

/// What happens to a KMS key Signet created when its CA is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum KeyDeletionPolicy {
    /// Keep the key (default): certificates it signed stay verifiable and the
    /// CA can be adopted again by key ARN.
    #[default]
    Retain,
    /// Schedule the key for deletion (30-day KMS waiting period). Only for
    /// keys Signet created, never for adopted keys.
    ScheduleDeletion,
}

/// Where the CA key lives.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.keyId) && has(self.keySpec))").message("set either keyId (adopt an existing KMS key) or keySpec (Signet creates a key), not both"))]
pub struct CaKms {
    /// Adopt an existing asymmetric SIGN_VERIFY KMS key: key id, key ARN,
    /// alias name (`alias/...`) or alias ARN. Leave empty to let Signet create
    /// a key. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("keyId is immutable; create a new CertificateAuthority to change keys"))]
    pub key_id: Option<String>,
    /// Key spec for a key Signet creates (default ECC_NIST_P256). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("keySpec is immutable; create a new CertificateAuthority to change keys"))]
    pub key_spec: Option<KmsKeySpec>,
    /// What to do with a key Signet created when the CA is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<KeyDeletionPolicy>,
}

/// Names a CA allows (permitted) or forbids (excluded) below it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameList {
    /// DNS domains; `example.com` matches it and every subdomain,
    /// `.example.com` only its subdomains (as OpenSSL and Go read it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_domains: Vec<String>,
    /// IP ranges in CIDR notation, e.g. `10.0.0.0/8`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<String>,
    /// Email addresses, domains (`example.com`) or subdomains (`.example.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
}

/// RFC 5280 name constraints, enforced by Signet before signing and encoded
/// (critical) in the CA certificate so relying parties enforce them too.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameConstraints {
    /// Names certificates below this CA may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted: Option<NameList>,
    /// Names certificates below this CA must not use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<NameList>,
}

/// Which namespaces may request certificates from a CA. Empty means all.
/// A namespace is allowed when it is listed in `names` OR matches `selector`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespace label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A root or intermediate certificate authority whose key lives in AWS KMS.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "signet.dev",
    version = "v1alpha1",
    kind = "CertificateAuthority",
    plural = "certificateauthorities",
    shortname = "sca",
    category = "signet",
    status = "CertificateAuthorityStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".spec.issuerRef.name","description":"Parent CA; empty for a root"}"#,
    printcolumn = r#"{"name":"Key","type":"string","priority":1,"jsonPath":".status.kmsKeyArn"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.notAfter"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = kube::core::Rule::new("!has(self.spec.issuerRef) || self.spec.issuerRef.name != self.metadata.name").message("spec.issuerRef names this CertificateAuthority itself; an intermediate needs another CA as its parent (omit issuerRef for a root)")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.issuerRef) == has(oldSelf.issuerRef)").message("a CA cannot change between root and intermediate; create a new CertificateAuthority"))]
pub struct CertificateAuthoritySpec {
    /// Parent CA for an intermediate. Absent for a self-signed root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<CaReference>,
    /// The KMS key that signs for this CA.
    #[serde(default)]
    pub kms: CaKms,
    /// Common name of the CA certificate.
    #[schemars(length(min = 1, max = 64))]
    pub common_name: String,
    /// Other subject fields of the CA certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// Validity of the CA certificate (Go duration). Default 87600h (10
    /// years) for a root, 43800h (5 years) for an intermediate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub duration: Option<String>,
    /// Renew the CA certificate this long before it expires (default a third
    /// of the duration). The key stays the same, so certificates issued under
    /// the old CA certificate keep verifying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub renew_before: Option<String>,
    /// basicConstraints pathLenConstraint: how many intermediate CAs may
    /// follow this one. Absent means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub max_path_length: Option<u8>,
    /// Name constraints for everything issued below this CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_constraints: Option<NameConstraints>,
    /// Namespaces whose Certificates this CA signs. Empty means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<AllowedNamespaces>,
    /// Longest validity a Certificate may request from this CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub max_certificate_duration: Option<String>,
    /// CRL distribution point URLs written into certificates this CA issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl_distribution_points: Vec<String>,
    /// OCSP responder URLs (AIA) written into certificates this CA issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ocsp_servers: Vec<String>,
    /// certificatePolicies OIDs (dotted, e.g. `2.23.140.1.2.1`) written into
    /// every certificate this CA issues. Some TLS clients and linters
    /// (zlint's CA/B Forum lints) expect at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self.all(o, o.matches('^[0-2](\\\\.[0-9]+)+$'))").message("certificatePolicies entries must be dotted OIDs such as 2.23.140.1.2.1"))]
    #[schemars(length(max = 16), inner(length(max = 128)))]
    pub certificate_policies: Vec<String>,
    /// CA issuers URLs (AIA) where this CA's certificate can be downloaded.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "issuingCertificateURLs"
    )]
    pub issuing_certificate_urls: Vec<String>,
    /// Base URL of Signet's public PKI endpoints as relying parties reach
    /// them, e.g. `http://pki.example.com` (plain http is usual: clients
    /// fetch CRLs and CA certificates to check TLS, so those fetches cannot
    /// depend on it). Certificates this CA issues then point at Signet
    /// without anyone writing URLs: crlDistributionPoints gets
    /// `<base>/crl/<crl>.crl` for the CRL object that publishes this CA
    /// (the oldest, if several do; none while no CRL object names it),
    /// issuingCertificateURLs `<base>/ca/<this CA>.crt` and ocspServers
    /// `<base>/ocsp/<this CA>` — each only when that field is left empty.
    /// Default: the operator's `--public-base-url` (chart value
    /// `pki.publicBaseURL`). Applies to certificates issued from then on.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "publicBaseURL"
    )]
    #[schemars(length(max = 512))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^/?#\\\\s]+(/[^?#\\\\s]*)?$')").message("publicBaseURL must be an absolute http:// or https:// URL without query or fragment, e.g. http://pki.example.com"))]
    pub public_base_url: Option<String>,
    /// What Certificates this CA signs beyond namespaces, names and
    /// duration: usages, subject attributes, URI SANs. Safe by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuance_policy: Option<IssuancePolicy>,
}

/// Per-CA issuance rules, checked before any KMS call. The defaults are
/// safe for a CA shared by many namespaces.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuancePolicy {
    /// Usages a Certificate may request. Default: `server auth`, `client
    /// auth` and `email protection`. `code signing` and `ocsp signing` are
    /// granted only when listed (a leaf with `ocsp signing` could answer
    /// OCSP for every certificate of this CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_usages: Option<Vec<Usage>>,
    /// Subject attributes besides commonName that Certificates may carry.
    /// Default: none, so no namespace can claim e.g. `O=system:masters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectPolicy>,
    /// Rules for URI subject alternative names. Default: any URI, but a
    /// SPIFFE ID's path must start with `/ns/<the Certificate's namespace>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<UriPolicy>,
}

/// Subject attribute values Certificates may use; `*` allows any value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubjectPolicy {
    /// Allowed organizations (O).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// Allowed organizational units (OU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    /// Allowed countries (C).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// Allowed states or provinces (ST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<String>,
    /// Allowed localities (L).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub localities: Vec<String>,
    /// Allowed street addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub street_addresses: Vec<String>,
    /// Allowed postal codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postal_codes: Vec<String>,
    /// Whether the subject serialNumber attribute may be set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serial_number: bool,
}

/// Rules for URI SANs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UriPolicy {
    /// URI schemes allowed, e.g. `spiffe`, `https`. Empty: any scheme.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_schemes: Vec<String>,
    /// SPIFFE IDs (`spiffe://<trust domain>/<path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<SpiffePolicy>,
}

/// What SPIFFE IDs may say.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpiffePolicy {
    /// The only trust domain allowed (empty: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub trust_domain: Option<String>,
    /// Whether the path must start with `/ns/<the Certificate's
    /// namespace>/` (default true), so no namespace can claim another's
    /// workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_namespace: Option<bool>,
}

/// Observed state of a CertificateAuthority.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthorityStatus {
    /// `Ready` tells whether the CA can sign.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ARN of the KMS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// Whether Signet created the key (and may schedule its deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_created: Option<bool>,
    /// The CA certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The chain from this CA's certificate up to the root (PEM, this CA
    /// first, root last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Serial number of the CA certificate (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Start of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// End of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// When Signet renews the CA certificate (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    /// SHA-256 fingerprint of the CA certificate (hex, colon separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "fingerprintSHA256")]
    pub fingerprint_sha256: Option<String>,
    /// Hash of the spec fields that shape the CA certificate; a change
    /// triggers reissuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// Consecutive failed attempts (reset on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// Time of the last failed attempt (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
}

// ---------------------------------------------------------------------------
// Certificate
// ---------------------------------------------------------------------------

/// What a certificate may be used for.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum Usage {
    /// TLS server authentication.
    #[serde(rename = "server auth")]
    ServerAuth,
    /// TLS client authentication (mTLS).
    #[serde(rename = "client auth")]
    ClientAuth,
    /// Code signing.
    #[serde(rename = "code signing")]
    CodeSigning,
    /// S/MIME email protection.
    #[serde(rename = "email protection")]
    EmailProtection,
    /// OCSP response signing.
    #[serde(rename = "ocsp signing")]
    OcspSigning,
}

/// Private key settings of a Certificate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.size) || !has(self.algorithm) || (self.algorithm == 'ECDSA' && (self.size == 256 || self.size == 384)) || (self.algorithm == 'RSA' && (self.size == 2048 || self.size == 3072 || self.size == 4096))").message("size must be 256 or 384 for ECDSA, 2048, 3072 or 4096 for RSA, and unset for Ed25519"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.encoding) || self.encoding != 'PKCS1' || (has(self.algorithm) && self.algorithm == 'RSA')").message("encoding PKCS1 is only valid with algorithm RSA"))]
pub struct PrivateKeySpec {
    /// Key algorithm (default ECDSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<KeyAlgorithm>,
    /// Key size: 256/384 for ECDSA (default 256), 2048/3072/4096 for RSA
    /// (default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Encoding of `tls.key` (default PKCS8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<KeyEncoding>,
    /// Whether each issuance generates a new key (default Always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicy>,
}

/// Labels and annotations copied onto the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels to add to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to add to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// RFC 5280 revocation reasons (§5.3.1), the one type used from the CRD
/// through the revocation register to the CRL and OCSP.
///
/// Names are camelCase (`keyCompromise`, `caCompromise`); the RFC's
/// `cACompromise` spelling is accepted when reading. `removeFromCRL` (delta
/// CRLs) and `aACompromise` (attribute certificates) do not apply to Signet.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// No reason given (code 0; written without a reason code extension).
    #[default]
    Unspecified,
    /// The private key is known or suspected to be compromised (1).
    KeyCompromise,
    /// The issuing CA's key was compromised (2).
    #[serde(alias = "cACompromise")]
    CaCompromise,
    /// The subject's affiliation changed (3).
    AffiliationChanged,
    /// The certificate was replaced (4).
    Superseded,
    /// The service no longer operates (5).
    CessationOfOperation,
    /// Temporarily on hold (6). Signet never takes a certificate off hold.
    CertificateHold,
    /// Privileges were withdrawn (9).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The RFC 5280 CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// The reason of a CRLReason code; `None` for codes Signet never writes
    /// (7 is unused, 8 removeFromCRL, 10 aACompromise).
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The camelCase name used in the API, the CLI and the register.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "caCompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Every reason, for help texts.
    pub const ALL: [RevocationReason; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = String;
    /// Case-insensitive, so the RFC spelling `cACompromise` parses too.
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|r| r.as_str()).collect();
                format!(
                    "unknown revocation reason {s:?}; use one of {}",
                    all.join(", ")
                )
            })
    }
}

/// Declarative revocation: once set, the current certificate is revoked,
/// listed in the CA's CRL, and no new certificate is issued. Permanent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationSetting {
    /// Why the certificate is revoked.
    pub reason: RevocationReason,
}

/// A certificate and private key written to a Secret, signed by a
/// CertificateAuthority and renewed before it expires.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "signet.dev",
    version = "v1alpha1",
    kind = "Certificate",
    namespaced,
    shortname = "scert",
    category = "signet",
    status = "CertificateStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".spec.issuerRef.name"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretName"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.notAfter"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.commonName) || (has(self.dnsNames) && size(self.dnsNames) > 0) || (has(self.ipAddresses) && size(self.ipAddresses) > 0) || (has(self.uris) && size(self.uris) > 0) || (has(self.emailAddresses) && size(self.emailAddresses) > 0)").message("set commonName or at least one of dnsNames, ipAddresses, uris, emailAddresses"))]
#[x_kube(validation = kube::core::Rule::new("!has(oldSelf.revocation) || has(self.revocation)").message("revocation is permanent and cannot be removed"))]
pub struct CertificateSpec {
    /// The CertificateAuthority that signs this certificate.
    pub issuer_ref: CaReference,
    /// Name of the `kubernetes.io/tls` Secret to write (same namespace).
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("secretName must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"))]
    pub secret_name: String,
    /// Subject common name. Prefer dnsNames; CN is informational for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub common_name: Option<String>,
    /// DNS subject alternative names; a leading `*.` makes a wildcard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(max = 253)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(n, size(n) > 0 && size(n) <= 253)").message("dnsNames entries must be non-empty and at most 253 characters"))]
    pub dns_names: Vec<String>,
    /// IP address subject alternative names (IPv4 or IPv6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 64)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, isIP(a))").message("ipAddresses entries must be IPv4 or IPv6 addresses"))]
    pub ip_addresses: Vec<String>,
    /// URI subject alternative names (e.g. SPIFFE IDs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 2048)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(u, size(u) > 0 && size(u) <= 2048)").message("uris entries must be non-empty and at most 2048 characters"))]
    pub uris: Vec<String>,
    /// Email subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 320)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(e, size(e) <= 320 && e.matches('^[^@ ]+@[^@ ]+$'))").message("emailAddresses entries must look like user@example.com"))]
    pub email_addresses: Vec<String>,
    /// Other subject fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// Key usages (default: server auth and client auth).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<Usage>,
    /// Requested validity (Go duration, default 2160h = 90 days). Clamped
    /// to the issuer's notAfter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub duration: Option<String>,
    /// Renew this long before expiry (default a third of the duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub renew_before: Option<String>,
    /// Private key settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKeySpec>,
    /// Labels and annotations for the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,
    /// Set to revoke the certificate. Permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationSetting>,
}

/// Observed state of a Certificate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// `Ready` and `Issuing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Serial number of the current certificate (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Start of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// End of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// When Signet renews the certificate (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    /// Number of certificates issued for this object so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Consecutive failed issuance attempts (reset on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<u32>,
    /// Time of the last failed issuance attempt (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    /// When the certificate was revoked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_time: Option<String>,
    /// Hash of the spec fields that shape the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The CertificateAuthority that issued the current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Earlier certificates of this object that have not expired yet, newest
    /// first (at most 20): what a revocation of the object covers besides
    /// the current one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_certificates: Vec<IssuedSerial>,
    /// Serials of this object that Signet revoked, as confirmed by the CA's
    /// revocation register (entries leave when the certificate expires).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocations: Vec<RevokedSerial>,
}

/// A certificate Signet issued for a Certificate object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedSerial {
    /// Serial number (hex).
    pub serial_number: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// The CertificateAuthority that issued it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
}

/// A revocation Signet recorded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedSerial {
    /// Serial number (hex).
    pub serial_number: String,
    /// Why.
    pub reason: RevocationReason,
    /// When (RFC 3339).
    pub revocation_time: String,
    /// End of validity of the revoked certificate (RFC 3339).
    pub not_after: String,
}

// ---------------------------------------------------------------------------
// CRL
// ---------------------------------------------------------------------------

/// Where the CRL is published.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrlPublish {
    /// ConfigMap name (default `<crl name>-crl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub config_map_name: Option<String>,
    /// ConfigMap namespace (default the operator's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// The certificate revocation list of one CA, re-signed on every revocation
/// and before `nextUpdate`, published to a ConfigMap and over HTTP.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "signet.dev",
    version = "v1alpha1",
    kind = "CRL",
    plural = "crls",
    shortname = "scrl",
    category = "signet",
    status = "CrlStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"CA","type":"string","jsonPath":".spec.caRef.name"}"#,
    printcolumn = r#"{"name":"Number","type":"integer","jsonPath":".status.crlNumber"}"#,
    printcolumn = r#"{"name":"Revoked","type":"integer","jsonPath":".status.revokedCount"}"#,
    printcolumn = r#"{"name":"Next Update","type":"string","jsonPath":".status.nextUpdate"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CrlSpec {
    /// The CertificateAuthority whose revocations this CRL lists.
    pub ca_ref: CaReference,
    /// nextUpdate − thisUpdate (Go duration, default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub validity: Option<String>,
    /// Re-sign this long before nextUpdate (default a third of validity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub refresh_before: Option<String>,
    /// Where to publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<CrlPublish>,
    /// How long a revoked certificate stays listed after its own notAfter
    /// (Go duration; default: it leaves at notAfter, as RFC 5280 allows).
    /// The revocation register drops it then too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MSG))]
    pub expired_retention: Option<String>,
}

/// Observed state of a CRL.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrlStatus {
    /// `Ready` tells whether a current CRL is published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Number of the last published CRL; strictly increasing, never reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_number: Option<i64>,
    /// thisUpdate of the published CRL (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub this_update: Option<String>,
    /// nextUpdate of the published CRL (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update: Option<String>,
    /// Number of revoked certificates listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_count: Option<i64>,
    /// Where the CRL is published (`namespace/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Consecutive failed attempts (reset on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// Time of the last failed attempt (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
}

// ---------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------

/// A revocation a cluster administrator makes directly at a CA: of a serial
/// whose Certificate object is gone (or never existed, e.g. signed through
/// another front door), or of an intermediate CA's certificate (listed in
/// its parent's CRL). Cluster-scoped, so namespace editors cannot create
/// one. Permanent: the spec cannot change.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "signet.dev",
    version = "v1alpha1",
    kind = "Revocation",
    plural = "revocations",
    shortname = "srev",
    category = "signet",
    status = "RevocationStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"CA","type":"string","jsonPath":".spec.issuerRef.name"}"#,
    printcolumn = r#"{"name":"Serial","type":"string","jsonPath":".status.serialNumber"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("a Revocation is permanent: its spec cannot change"))]
#[x_kube(validation = kube::core::Rule::new("has(self.serialNumber) != has(self.certificateAuthority)").message("set exactly one of serialNumber (a certificate the CA issued) or certificateAuthority (an intermediate CA under it)"))]
pub struct RevocationSpec {
    /// The CA that issued what is revoked; its CRL lists the revocation.
    pub issuer_ref: CaReference,
    /// Serial number (hex, colons allowed) of a certificate the CA issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^(0[xX])?[0-9a-fA-F:]+$')").message("serialNumber must be hexadecimal, e.g. 0a:1b:2c or 0a1b2c"))]
    pub serial_number: Option<String>,
    /// An intermediate CertificateAuthority issued by issuerRef whose
    /// current certificate is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub certificate_authority: Option<String>,
    /// Why.
    pub reason: RevocationReason,
    /// When the revoked certificate expires (RFC 3339), if known; the entry
    /// leaves the CRL after it. Default: the certificate's own notAfter if
    /// Signet knows it, else the issuing CA's notAfter (nothing it signs
    /// outlives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub not_after: Option<String>,
}

/// Observed state of a Revocation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationStatus {
    /// `Ready=True` once the revocation is in the CA's revocation register.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The serial revoked (normal form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// When it was revoked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_time: Option<String>,
    /// Consecutive failed attempts (reset on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// Time of the last failed attempt (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
}

/// All CRDs, in apply order.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        CertificateAuthority::crd(),
        Certificate::crd(),
        CRL::crd(),
        Revocation::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// Annotation naming who asked for a revocation; the admission policy
/// below only admits the requesting user's own name.
pub const REVOKED_BY_ANNOTATION: &str = "signet.dev/revoked-by";
/// Name of the ValidatingAdmissionPolicy (and its binding) that vouches
/// for [`REVOKED_BY_ANNOTATION`].
pub const REVOKED_BY_POLICY: &str = "signet-revoked-by";

/// The ValidatingAdmissionPolicy and its binding that make
/// `signet.dev/revoked-by` something the API server vouches for: on a
/// Certificate or Revocation it may only be set to (or changed to) the name
/// of the user making the request. Shipped in `crds/` and by the chart.
pub fn admission_policies() -> Vec<serde_json::Value> {
    let by = format!(
        "has(object.metadata.annotations) && '{a}' in object.metadata.annotations ? object.metadata.annotations['{a}'] : ''",
        a = REVOKED_BY_ANNOTATION
    );
    let was = format!(
        "oldObject != null && has(oldObject.metadata.annotations) && '{a}' in oldObject.metadata.annotations ? oldObject.metadata.annotations['{a}'] : ''",
        a = REVOKED_BY_ANNOTATION
    );
    vec![
        serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": REVOKED_BY_POLICY},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [GROUP], "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["certificates", "revocations"]
                }]},
                "variables": [
                    {"name": "by", "expression": by},
                    {"name": "was", "expression": was}
                ],
                "validations": [{
                    "expression": "variables.by == '' || variables.by == variables.was || variables.by == request.userInfo.username",
                    "messageExpression": format!("'{REVOKED_BY_ANNOTATION} may only name the user making the request (' + request.userInfo.username + '); signet revoke sets it for you'"),
                    "reason": "Forbidden"
                }]
            }
        }),
        serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": REVOKED_BY_POLICY},
            "spec": {"policyName": REVOKED_BY_POLICY, "validationActions": ["Deny"]}
        }),
    ]
}

/// One `(file name, YAML)` per CRD, as checked in under `crds/` and the
/// chart's `crds/`, plus the admission policy (under `crds/` only: the
/// chart templates it).
pub fn crd_files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    const HEAD: &str =
        "# Generated by `signet crds` from src/api; do not edit. Regenerate with `make crds`.\n";
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = format!("{HEAD}{}", serde_yaml::to_string(&crd)?);
            Ok((format!("{name}.yaml"), yaml))
        })
        .collect()
}

/// The admission policy file of `crds/`.
pub fn admission_policy_file() -> Result<(String, String), serde_yaml::Error> {
    let mut yaml = String::from(
        "# Generated by `signet crds` from src/api; do not edit. Regenerate with `make crds`.\n",
    );
    for (i, doc) in admission_policies().into_iter().enumerate() {
        if i > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(&serde_yaml::to_string(&doc)?);
    }
    Ok((format!("{REVOKED_BY_POLICY}.admission.yaml"), yaml))
}

/// Markdown reference of every spec field, generated from the same doc
/// comments `kubectl explain` shows. The README embeds it between
/// `<!-- crd-reference:start -->` and `<!-- crd-reference:end -->`; a test
/// keeps them equal (`signet crds --reference` prints it).
pub fn reference_markdown() -> String {
    fn walk(v: &serde_json::Value, path: &str, required: &[String], out: &mut Vec<String>) {
        let Some(props) = v.get("properties").and_then(|p| p.as_object()) else {
            return;
        };
        let req: Vec<String> = v
            .get("required")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let _ = required;
        for (k, child) in props {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let mut ty = child
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("object")
                .to_string();
            if let Some(e) = child.get("enum").and_then(|e| e.as_array()) {
                let vals: Vec<String> = e
                    .iter()
                    .filter_map(|x| x.as_str().map(|s| format!("`{s}`")))
                    .collect();
                ty = vals.join(", ");
            }
            if ty == "array"
                && let Some(it) = child
                    .get("items")
                    .and_then(|i| i.get("type"))
                    .and_then(|t| t.as_str())
            {
                ty = format!("[]{it}");
            }
            let desc = child
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .replace('\n', " ")
                .replace('|', "\\|");
            let mark = if req.contains(k) { " (required)" } else { "" };
            out.push(format!("| `{p}`{mark} | {ty} | {desc} |"));
            if p.ends_with("selector") {
                continue;
            }
            walk(child, &p, &req, out);
            if let Some(items) = child.get("items") {
                walk(items, &format!("{p}[]"), &[], out);
            }
        }
    }
    let mut md = String::new();
    for crd in crds() {
        let v = serde_json::to_value(&crd).unwrap_or_default();
        let kind = v["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let scope = v["spec"]["scope"].as_str().unwrap_or("?").to_string();
        let short = v["spec"]["names"]["shortNames"][0]
            .as_str()
            .unwrap_or("")
            .to_string();
        let schema = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        md.push_str(&format!(
            "#### {kind} (`signet.dev/v1alpha1`, {scope}, short name `{short}`)\n\n| field | type | description |\n|---|---|---|\n"
        ));
        let mut rows = Vec::new();
        walk(&schema["spec"], "spec", &[], &mut rows);
        walk(&schema["status"], "status", &[], &mut rows);
        md.push_str(&rows.join("\n"));
        md.push_str("\n\n");
    }
    md
}
