//! What callers ask for. Field names in errors follow cert-manager spelling.

use rcgen::{
    CidrSubnet, DistinguishedName, DnType, DnValue, GeneralSubtree, NameConstraints, SanType,
};
use time::{Duration, OffsetDateTime};

use super::keys::PrivateKeySpec;
use super::validate::{self, FieldErrors};

/// Subject distinguished name. Each attribute may appear at most once
/// (lists exist to mirror cert-manager's `subject` and are checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// `commonName` (≤ 64 characters).
    pub common_name: Option<String>,
    /// `subject.organizations` (O).
    pub organizations: Vec<String>,
    /// `subject.organizationalUnits` (OU).
    pub organizational_units: Vec<String>,
    /// `subject.countries` (C, two-letter ISO 3166 code).
    pub countries: Vec<String>,
    /// `subject.provinces` (ST).
    pub provinces: Vec<String>,
    /// `subject.localities` (L).
    pub localities: Vec<String>,
    /// `subject.streetAddresses` (street).
    pub street_addresses: Vec<String>,
    /// `subject.postalCodes` (postalCode).
    pub postal_codes: Vec<String>,
    /// `subject.serialNumber` (serialNumber, printable characters).
    pub serial_number: Option<String>,
}

impl Subject {
    /// A subject with only a common name.
    pub fn cn(cn: impl Into<String>) -> Self {
        Subject {
            common_name: Some(cn.into()),
            ..Default::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.common_name.is_none()
            && self.organizations.is_empty()
            && self.organizational_units.is_empty()
            && self.countries.is_empty()
            && self.provinces.is_empty()
            && self.localities.is_empty()
            && self.street_addresses.is_empty()
            && self.postal_codes.is_empty()
            && self.serial_number.is_none()
    }

    /// Validates and converts to an rcgen name (C, ST, L, street, postalCode,
    /// O, OU, CN, serialNumber order).
    pub(crate) fn to_dn(&self, errs: &mut FieldErrors) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        let single = |errs: &mut FieldErrors, field: &str, values: &[String]| -> Option<String> {
            if values.len() > 1 {
                errs.push(
                    field,
                    values.join(", "),
                    "only one value is supported; keep a single entry",
                );
                return None;
            }
            values.first().cloned()
        };

        if let Some(c) = single(errs, "subject.countries", &self.countries) {
            if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()) {
                match rcgen::string::PrintableString::try_from(c.as_str()) {
                    Ok(p) => dn.push(DnType::CountryName, DnValue::PrintableString(p)),
                    Err(_) => errs.push("subject.countries[0]", c, "not printable"),
                }
            } else {
                errs.push(
                    "subject.countries[0]",
                    c,
                    "must be a two-letter upper-case ISO 3166 code, e.g. DE",
                );
            }
        }
        let utf8_fields: [(&str, &[String], DnType, usize); 6] = [
            (
                "subject.provinces",
                &self.provinces,
                DnType::StateOrProvinceName,
                128,
            ),
            (
                "subject.localities",
                &self.localities,
                DnType::LocalityName,
                128,
            ),
            (
                "subject.streetAddresses",
                &self.street_addresses,
                DnType::CustomDnType(vec![2, 5, 4, 9]),
                128,
            ),
            (
                "subject.postalCodes",
                &self.postal_codes,
                DnType::CustomDnType(vec![2, 5, 4, 17]),
                40,
            ),
            (
                "subject.organizations",
                &self.organizations,
                DnType::OrganizationName,
                64,
            ),
            (
                "subject.organizationalUnits",
                &self.organizational_units,
                DnType::OrganizationalUnitName,
                64,
            ),
        ];
        for (field, values, ty, max) in utf8_fields {
            if let Some(v) = single(errs, field, values) {
                match validate::dn_value_problem(&v, max) {
                    Some(p) => errs.push(format!("{field}[0]"), v, p),
                    None => dn.push(ty, DnValue::Utf8String(v)),
                }
            }
        }
        if let Some(cn) = &self.common_name {
            match validate::dn_value_problem(cn, 64) {
                Some(p) => errs.push("commonName", cn.clone(), p),
                None => dn.push(DnType::CommonName, DnValue::Utf8String(cn.clone())),
            }
        }
        if let Some(sn) = &self.serial_number {
            match validate::dn_value_problem(sn, 64).or_else(|| {
                rcgen::string::PrintableString::try_from(sn.as_str())
                    .err()
                    .map(|_| "only letters, digits, space and '()+,-./:=? are allowed".to_string())
            }) {
                Some(p) => errs.push("subject.serialNumber", sn.clone(), p),
                None => {
                    if let Ok(p) = rcgen::string::PrintableString::try_from(sn.as_str()) {
                        dn.push(
                            DnType::CustomDnType(vec![2, 5, 4, 5]),
                            DnValue::PrintableString(p),
                        );
                    }
                }
            }
        }
        dn
    }
}

/// What an end-entity certificate is for. Key usages follow from these and
/// the key type (digitalSignature always; keyEncipherment for RSA TLS/email).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Usage {
    /// TLS server (`server auth`, id-kp-serverAuth).
    ServerAuth,
    /// TLS client (`client auth`, id-kp-clientAuth).
    ClientAuth,
    /// Code signing (`code signing`, id-kp-codeSigning).
    CodeSigning,
    /// S/MIME (`email protection`, id-kp-emailProtection).
    EmailProtection,
    /// OCSP responder (`ocsp signing`, id-kp-OCSPSigning).
    OcspSigning,
}

impl Usage {
    /// Parses cert-manager spelling (`server auth`, `client auth`, `code
    /// signing`, `email protection`, `ocsp signing`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "server auth" => Some(Usage::ServerAuth),
            "client auth" => Some(Usage::ClientAuth),
            "code signing" => Some(Usage::CodeSigning),
            "email protection" => Some(Usage::EmailProtection),
            "ocsp signing" => Some(Usage::OcspSigning),
            _ => None,
        }
    }

    pub(crate) fn eku(self) -> rcgen::ExtendedKeyUsagePurpose {
        use rcgen::ExtendedKeyUsagePurpose as E;
        match self {
            Usage::ServerAuth => E::ServerAuth,
            Usage::ClientAuth => E::ClientAuth,
            Usage::CodeSigning => E::CodeSigning,
            Usage::EmailProtection => E::EmailProtection,
            Usage::OcspSigning => E::OcspSigning,
        }
    }
}

/// An end-entity certificate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRequest {
    /// Subject (CN optional when SANs are present).
    pub subject: Subject,
    /// `dnsNames` (wildcards allowed as the whole leftmost label).
    pub dns_names: Vec<String>,
    /// `ipAddresses` (IPv4/IPv6).
    pub ip_addresses: Vec<String>,
    /// `uris` (e.g. SPIFFE IDs).
    pub uris: Vec<String>,
    /// `emailAddresses`.
    pub email_addresses: Vec<String>,
    /// `usages`; empty means server auth + client auth.
    pub usages: Vec<Usage>,
    /// `duration`: requested lifetime; clamped to the issuer's notAfter.
    pub duration: Duration,
    /// `privateKey`.
    pub private_key: PrivateKeySpec,
}

impl Default for LeafRequest {
    fn default() -> Self {
        LeafRequest {
            subject: Subject::default(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            email_addresses: Vec::new(),
            usages: Vec::new(),
            duration: Duration::days(90),
            private_key: PrivateKeySpec::default(),
        }
    }
}

impl LeafRequest {
    /// Usages after defaults, deduplicated in order.
    pub fn effective_usages(&self) -> Vec<Usage> {
        let mut out: Vec<Usage> = Vec::new();
        let src = if self.usages.is_empty() {
            &[Usage::ServerAuth, Usage::ClientAuth][..]
        } else {
            &self.usages[..]
        };
        for u in src {
            if !out.contains(u) {
                out.push(*u);
            }
        }
        out
    }

    /// Validates SANs and returns them as rcgen values.
    pub(crate) fn sans(&self, errs: &mut FieldErrors) -> Vec<SanType> {
        let mut sans = Vec::new();
        for (i, n) in self.dns_names.iter().enumerate() {
            match validate::dns_name_problem(n, true) {
                Some(p) => errs.push(format!("dnsNames[{i}]"), n.clone(), p),
                None => match rcgen::string::Ia5String::try_from(n.as_str()) {
                    Ok(s) => sans.push(SanType::DnsName(s)),
                    Err(_) => errs.push(format!("dnsNames[{i}]"), n.clone(), "not ASCII"),
                },
            }
        }
        for (i, ip) in self.ip_addresses.iter().enumerate() {
            match validate::parse_ip(ip) {
                Ok(a) => sans.push(SanType::IpAddress(a)),
                Err(p) => errs.push(format!("ipAddresses[{i}]"), ip.clone(), p),
            }
        }
        for (i, u) in self.uris.iter().enumerate() {
            match validate::uri_problem(u) {
                Some(p) => errs.push(format!("uris[{i}]"), u.clone(), p),
                None => match rcgen::string::Ia5String::try_from(u.as_str()) {
                    Ok(s) => sans.push(SanType::URI(s)),
                    Err(_) => errs.push(format!("uris[{i}]"), u.clone(), "not ASCII"),
                },
            }
        }
        for (i, e) in self.email_addresses.iter().enumerate() {
            match validate::email_problem(e) {
                Some(p) => errs.push(format!("emailAddresses[{i}]"), e.clone(), p),
                None => match rcgen::string::Ia5String::try_from(e.as_str()) {
                    Ok(s) => sans.push(SanType::Rfc822Name(s)),
                    Err(_) => errs.push(format!("emailAddresses[{i}]"), e.clone(), "not ASCII"),
                },
            }
        }
        sans
    }
}

/// Permitted or excluded name subtrees (cert-manager `nameConstraints`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSubtrees {
    /// `dnsDomains`: a domain and all its subdomains (`example.com`), or
    /// only its subdomains (`.example.com`).
    pub dns_domains: Vec<String>,
    /// `ipRanges`: CIDR ranges, e.g. `10.0.0.0/8`.
    pub ip_ranges: Vec<String>,
    /// `emailAddresses`: a mailbox, a host (`example.com`) or a domain
    /// (`.example.com`).
    pub email_addresses: Vec<String>,
}

impl NameSubtrees {
    fn is_empty(&self) -> bool {
        self.dns_domains.is_empty() && self.ip_ranges.is_empty() && self.email_addresses.is_empty()
    }

    fn to_subtrees(&self, prefix: &str, errs: &mut FieldErrors) -> Vec<GeneralSubtree> {
        let mut out = Vec::new();
        for (i, d) in self.dns_domains.iter().enumerate() {
            let field = format!("{prefix}.dnsDomains[{i}]");
            // `example.com` covers the domain and its subdomains;
            // `.example.com` only the subdomains (as OpenSSL and Go read it).
            if let Some(p) = validate::dns_name_problem(d.strip_prefix('.').unwrap_or(d), false) {
                errs.push(field, d.clone(), p);
            } else {
                out.push(GeneralSubtree::DnsName(d.clone()));
            }
        }
        for (i, r) in self.ip_ranges.iter().enumerate() {
            match validate::parse_cidr(r) {
                Ok((addr, prefix_len)) => out.push(GeneralSubtree::IpAddress(
                    CidrSubnet::from_addr_prefix(addr, prefix_len),
                )),
                Err(p) => errs.push(format!("{prefix}.ipRanges[{i}]"), r.clone(), p),
            }
        }
        for (i, e) in self.email_addresses.iter().enumerate() {
            let field = format!("{prefix}.emailAddresses[{i}]");
            let problem = if e.contains('@') {
                validate::email_problem(e)
            } else {
                validate::dns_name_problem(e.strip_prefix('.').unwrap_or(e), false)
            };
            match problem {
                Some(p) => errs.push(field, e.clone(), p),
                None => out.push(GeneralSubtree::Rfc822Name(e.clone())),
            }
        }
        out
    }
}

/// Name constraints for a CA (critical extension).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraintsSpec {
    /// `permitted` subtrees.
    pub permitted: NameSubtrees,
    /// `excluded` subtrees.
    pub excluded: NameSubtrees,
}

impl NameConstraintsSpec {
    pub(crate) fn to_rcgen(&self, errs: &mut FieldErrors) -> Option<NameConstraints> {
        if self.permitted.is_empty() && self.excluded.is_empty() {
            return None;
        }
        Some(NameConstraints {
            permitted_subtrees: self
                .permitted
                .to_subtrees("nameConstraints.permitted", errs),
            excluded_subtrees: self.excluded.to_subtrees("nameConstraints.excluded", errs),
        })
    }
}

/// A root or intermediate CA certificate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRequest {
    /// Subject; `commonName` is required for a CA.
    pub subject: Subject,
    /// `duration`: lifetime; an intermediate is clamped to its parent.
    pub duration: Duration,
    /// `pathLen`: how many CAs may follow below this one (`None` =
    /// unlimited for a root, parent's limit − 1 for an intermediate).
    pub path_len: Option<u8>,
    /// `nameConstraints` (optional, critical).
    pub name_constraints: Option<NameConstraintsSpec>,
}

impl Default for CaRequest {
    fn default() -> Self {
        CaRequest {
            subject: Subject::default(),
            duration: Duration::days(3650),
            path_len: None,
            name_constraints: None,
        }
    }
}

pub use crate::api::RevocationReason;

/// rcgen's spelling of a reason.
pub(crate) fn rcgen_reason(r: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match r {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
    }
}

/// One revoked certificate in a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number as hex (as in [`super::IssuedLeaf::serial_hex`]; colons
    /// and a `0x` prefix are accepted).
    pub serial_hex: String,
    /// When the CA processed the revocation.
    pub revoked_at: OffsetDateTime,
    /// Reason code (unspecified → no extension).
    pub reason: RevocationReason,
    /// When the key was known or suspected compromised (optional).
    pub invalidity_date: Option<OffsetDateTime>,
}

/// A CRL to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRequest {
    /// `cRLNumber`; must grow with every CRL of the same CA.
    pub number: u64,
    /// `thisUpdate`.
    pub this_update: OffsetDateTime,
    /// `nextUpdate`; after `this_update`.
    pub next_update: OffsetDateTime,
    /// Revoked certificates.
    pub entries: Vec<RevokedEntry>,
    /// URL this CRL is published at, written as the issuing distribution
    /// point (optional).
    pub distribution_point: Option<String>,
}

/// Parses a hex serial (`0a:1b...`, `0x0a1b`, `0A1B`) into big-endian bytes
/// without leading zeros.
pub(crate) fn parse_serial_hex(s: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if cleaned.is_empty() {
        return Err("empty serial number".into());
    }
    let padded = if cleaned.len() % 2 == 1 {
        format!("0{cleaned}")
    } else {
        cleaned
    };
    let bytes = hex::decode(&padded).map_err(|_| "not a hexadecimal serial number".to_string())?;
    let first = bytes.iter().position(|b| *b != 0);
    let Some(first) = first else {
        return Err("serial number 0 is not allowed".into());
    };
    let trimmed = bytes[first..].to_vec();
    if trimmed.len() > 20 || (trimmed.len() == 20 && trimmed[0] & 0x80 != 0) {
        return Err("longer than 20 bytes when DER-encoded (RFC 5280 limit)".into());
    }
    Ok(trimmed)
}
