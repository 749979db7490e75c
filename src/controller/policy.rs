//! CA policies checked before any KMS call: allowed namespaces, maximum
//! duration and name constraints. Pure functions of (CA spec, request).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use kube::ResourceExt;

use super::Error;
use crate::api::{
    Certificate, CertificateAuthority, CertificateAuthoritySpec, IssuancePolicy, NameList, Subject,
    Usage, duration,
};

/// What a leaf request asks for, whichever front door it came through (a
/// Signet Certificate, a cert-manager CertificateRequest).
#[derive(Debug, Clone, Copy)]
pub struct LeafAsk<'a> {
    /// The requester's namespace.
    pub namespace: &'a str,
    /// Usages (empty: the default server auth + client auth).
    pub usages: &'a [Usage],
    /// Subject attributes besides the common name.
    pub subject: Option<&'a Subject>,
    /// URI SANs.
    pub uris: &'a [String],
    /// DNS, IP and email SANs.
    pub names: Names<'a>,
    /// Requested validity.
    pub duration: Duration,
}

/// Every policy that applies to Certificate `cert` asking for `requested`
/// validity from `chain` (the issuing CA first, then its parents): see
/// [`check_leaf`]. `ns_labels` are the labels of the Certificate's
/// namespace (read only when the CA selects by label).
pub fn check_certificate(
    chain: &[&CertificateAuthority],
    cert: &Certificate,
    requested: Duration,
    ns_labels: &BTreeMap<String, String>,
) -> Result<(), Error> {
    if chain.is_empty() {
        return Err(Error::IssuerNotFound(cert.spec.issuer_ref.name.clone()));
    }
    let ns = cert.namespace().unwrap_or_default();
    let ask = LeafAsk {
        namespace: &ns,
        usages: &cert.spec.usages,
        subject: cert.spec.subject.as_ref(),
        uris: &cert.spec.uris,
        names: Names {
            dns: &cert.spec.dns_names,
            ips: &cert.spec.ip_addresses,
            emails: &cert.spec.email_addresses,
        },
        duration: requested,
    };
    check_leaf(chain, &ask, ns_labels)
}

/// Every policy that applies to a leaf request `ask` to `chain` (the
/// issuing CA first, then its parents): namespaces, duration, usages,
/// subject and URIs of the issuing CA, and the name constraints of every CA
/// in the chain.
pub fn check_leaf(
    chain: &[&CertificateAuthority],
    ask: &LeafAsk<'_>,
    ns_labels: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let Some(ca) = chain.first() else {
        return Err(Error::Other(
            "no issuing CA to check the request against".into(),
        ));
    };
    let name = ca.name_any();
    namespace_allowed(&name, &ca.spec, ask.namespace, ns_labels)?;
    duration_allowed(&name, &ca.spec, ask.duration)?;
    let policy = ca.spec.issuance_policy.clone().unwrap_or_default();
    usages_allowed(&name, &policy, ask.usages)?;
    subject_allowed(&name, &policy, ask.subject)?;
    uris_allowed(&name, &policy, ask.namespace, ask.uris)?;
    for ca in chain {
        names_allowed(&ca.name_any(), &ca.spec, &ask.names)?;
    }
    Ok(())
}

fn deny(reason: &'static str, message: String) -> Error {
    Error::Policy { reason, message }
}

/// Usages: by default server auth, client auth and email protection; code
/// signing and OCSP signing only when the CA lists them.
pub fn usages_allowed(ca: &str, policy: &IssuancePolicy, usages: &[Usage]) -> Result<(), Error> {
    let allowed = policy
        .allowed_usages
        .clone()
        .unwrap_or_else(|| vec![Usage::ServerAuth, Usage::ClientAuth, Usage::EmailProtection]);
    let requested = if usages.is_empty() {
        &[Usage::ServerAuth, Usage::ClientAuth][..]
    } else {
        usages
    };
    match requested.iter().find(|u| !allowed.contains(u)) {
        None => Ok(()),
        Some(u) => {
            let name = serde_json::to_value(u)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            Err(deny(
                "UsageNotAllowed",
                format!(
                    "usage {name:?} is not allowed by CertificateAuthority {ca:?} (spec.issuancePolicy.allowedUsages); drop it from spec.usages or ask the CA's owner to allow it"
                ),
            ))
        }
    }
}

/// Subject attributes: only values the CA lists (`*` for any).
pub fn subject_allowed(
    ca: &str,
    policy: &IssuancePolicy,
    subject: Option<&Subject>,
) -> Result<(), Error> {
    let Some(s) = subject else {
        return Ok(());
    };
    let p = policy.subject.clone().unwrap_or_default();
    let lists: [(&str, &str, &Vec<String>, &Vec<String>); 7] = [
        ("organizations", "O", &s.organizations, &p.organizations),
        (
            "organizationalUnits",
            "OU",
            &s.organizational_units,
            &p.organizational_units,
        ),
        ("countries", "C", &s.countries, &p.countries),
        ("provinces", "ST", &s.provinces, &p.provinces),
        ("localities", "L", &s.localities, &p.localities),
        (
            "streetAddresses",
            "street",
            &s.street_addresses,
            &p.street_addresses,
        ),
        (
            "postalCodes",
            "postalCode",
            &s.postal_codes,
            &p.postal_codes,
        ),
    ];
    for (field, attr, asked, allowed) in lists {
        for (i, v) in asked.iter().enumerate() {
            if !allowed.iter().any(|a| a == "*" || a == v) {
                return Err(deny(
                    "SubjectNotAllowed",
                    format!(
                        "spec.subject.{field}[{i}] {attr}={v:?} is not allowed by CertificateAuthority {ca:?} (spec.issuancePolicy.subject.{field}); remove it or ask the CA's owner to allow it"
                    ),
                ));
            }
        }
    }
    if s.serial_number.is_some() && !p.serial_number {
        return Err(deny(
            "SubjectNotAllowed",
            format!(
                "spec.subject.serialNumber is not allowed by CertificateAuthority {ca:?} (spec.issuancePolicy.subject.serialNumber)"
            ),
        ));
    }
    Ok(())
}

/// URI SANs: allowed schemes; SPIFFE IDs in the CA's trust domain and, by
/// default, under `/ns/<namespace>/`.
pub fn uris_allowed(
    ca: &str,
    policy: &IssuancePolicy,
    ns: &str,
    uris: &[String],
) -> Result<(), Error> {
    let p = policy.uris.clone().unwrap_or_default();
    let spiffe = p.spiffe.clone().unwrap_or_default();
    for (i, u) in uris.iter().enumerate() {
        let scheme = u
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        if !p.allowed_schemes.is_empty()
            && !p
                .allowed_schemes
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&scheme))
        {
            return Err(deny(
                "URINotAllowed",
                format!(
                    "spec.uris[{i}] {u:?}: scheme {scheme:?} is not allowed by CertificateAuthority {ca:?} (spec.issuancePolicy.uris.allowedSchemes)"
                ),
            ));
        }
        if scheme != "spiffe" {
            continue;
        }
        let rest = &u["spiffe://".len().min(u.len())..];
        let (domain, path) = rest
            .split_once('/')
            .map(|(d, p)| (d, format!("/{p}")))
            .unwrap_or((rest, String::new()));
        if let Some(td) = &spiffe.trust_domain
            && !td.eq_ignore_ascii_case(domain)
        {
            return Err(deny(
                "URINotAllowed",
                format!(
                    "spec.uris[{i}] {u:?} is outside the trust domain {td:?} of CertificateAuthority {ca:?} (spec.issuancePolicy.uris.spiffe.trustDomain)"
                ),
            ));
        }
        let prefix = format!("/ns/{ns}/");
        if spiffe.bind_namespace.unwrap_or(true) && !path.starts_with(&prefix) {
            return Err(deny(
                "URINotAllowed",
                format!(
                    "spec.uris[{i}] {u:?}: a SPIFFE ID from namespace {ns:?} must have a path starting with {prefix:?} (CertificateAuthority {ca:?}, spec.issuancePolicy.uris.spiffe.bindNamespace)"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that namespace `ns` (with `labels`) may use the CA.
pub fn namespace_allowed(
    ca_name: &str,
    spec: &CertificateAuthoritySpec,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let Some(allowed) = &spec.allowed_namespaces else {
        return Ok(());
    };
    if allowed.names.is_empty() && allowed.selector.is_none() {
        return Ok(());
    }
    if allowed.names.iter().any(|n| n == ns) {
        return Ok(());
    }
    if let Some(sel) = &allowed.selector
        && selector_matches(sel, labels)
    {
        return Ok(());
    }
    Err(Error::Policy {
        reason: "NamespaceNotAllowed",
        message: format!(
            "namespace {ns:?} is not allowed by CertificateAuthority {ca_name:?} (spec.allowedNamespaces); add it there or use another CA"
        ),
    })
}

/// Label selector semantics (matchLabels AND matchExpressions).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels
        && !ml.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    for e in sel.match_expressions.iter().flatten() {
        let val = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" => val.is_some_and(|v| values.contains(v)),
            "NotIn" => val.is_none_or(|v| !values.contains(v)),
            "Exists" => val.is_some(),
            "DoesNotExist" => val.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Checks the requested duration against `spec.maxCertificateDuration`.
pub fn duration_allowed(
    ca_name: &str,
    spec: &CertificateAuthoritySpec,
    requested: Duration,
) -> Result<(), Error> {
    let Some(max) = &spec.max_certificate_duration else {
        return Ok(());
    };
    let max = duration::parse("spec.maxCertificateDuration", max).map_err(Error::InvalidSpec)?;
    if requested > max {
        return Err(Error::Policy {
            reason: "DurationExceedsMax",
            message: format!(
                "spec.duration {} exceeds the maximum {} allowed by CertificateAuthority {ca_name:?} (spec.maxCertificateDuration); request at most that",
                duration::format(requested),
                duration::format(max)
            ),
        });
    }
    Ok(())
}

/// A DNS constraint as OpenSSL and Go read it: `example.com` is the domain
/// and all its subdomains, `.example.com` its subdomains only.
fn dns_covers(constraint: &str, host: &str) -> bool {
    let c = constraint.trim_end_matches('.').to_ascii_lowercase();
    match c.strip_prefix('.') {
        Some(sub) => host.ends_with(&format!(".{sub}")),
        None => host == c || host.ends_with(&format!(".{c}")),
    }
}

/// Whether every name `name` stands for is inside `constraint`. A wildcard
/// `*.d` stands for every `x.d` with one label `x`.
fn dns_within(name: &str, constraint: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match name.strip_prefix("*.") {
        // Every x.d is a (strict) subdomain of c exactly when d is c or
        // below it, for both forms of the constraint.
        Some(base) => {
            let c = constraint.trim_end_matches('.').to_ascii_lowercase();
            let c = c.trim_start_matches('.');
            base == c || base.ends_with(&format!(".{c}"))
        }
        None => dns_covers(constraint, &name),
    }
}

/// Whether some name `name` stands for is inside `constraint` — what an
/// excluded subtree must rule out. `*.example.com` hits an excluded
/// `secret.example.com`, which it can stand for, even though TLS clients
/// comparing the literal `*` label would not notice.
fn dns_may_hit(name: &str, constraint: &str) -> bool {
    if dns_within(name, constraint) {
        return true;
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let Some(base) = name.strip_prefix("*.") else {
        return false;
    };
    let c = constraint.trim_end_matches('.').to_ascii_lowercase();
    if c.starts_with('.') {
        return false;
    }
    c.strip_suffix(&format!(".{base}"))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

fn ip_in(ip: &IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(*a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(*a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

fn email_in(email: &str, c: &str) -> bool {
    let email = email.to_ascii_lowercase();
    let c = c.to_ascii_lowercase();
    if c.contains('@') {
        return email == c;
    }
    let host = email.rsplit('@').next().unwrap_or("");
    if let Some(sub) = c.strip_prefix('.') {
        host.ends_with(&format!(".{sub}"))
    } else {
        host == c
    }
}

/// The names a request carries.
#[derive(Debug, Default, Clone, Copy)]
pub struct Names<'a> {
    /// DNS names.
    pub dns: &'a [String],
    /// IP addresses.
    pub ips: &'a [String],
    /// Email addresses.
    pub emails: &'a [String],
}

/// Checks names against the CA's name constraints (RFC 5280 semantics: a
/// name of a type with permitted subtrees must match one; no name may match
/// an excluded subtree).
pub fn names_allowed(
    ca_name: &str,
    spec: &CertificateAuthoritySpec,
    names: &Names<'_>,
) -> Result<(), Error> {
    let Some(nc) = &spec.name_constraints else {
        return Ok(());
    };
    let empty = NameList::default();
    let permitted = nc.permitted.as_ref().unwrap_or(&empty);
    let excluded = nc.excluded.as_ref().unwrap_or(&empty);
    let deny = |what: String| Error::Policy {
        reason: "NameConstraintViolation",
        message: format!(
            "{what} is outside the name constraints of CertificateAuthority {ca_name:?} (spec.nameConstraints); use a permitted name or another CA"
        ),
    };
    for (i, d) in names.dns.iter().enumerate() {
        if let Some(x) = excluded.dns_domains.iter().find(|x| dns_may_hit(d, x)) {
            return Err(deny(format!(
                "dnsNames[{i}] {d:?} (covers the excluded {x:?})"
            )));
        }
        if !permitted.dns_domains.is_empty()
            && !permitted.dns_domains.iter().any(|x| dns_within(d, x))
        {
            return Err(deny(format!("dnsNames[{i}] {d:?}")));
        }
    }
    for (i, s) in names.ips.iter().enumerate() {
        let Ok(ip) = s.parse::<IpAddr>() else {
            continue;
        };
        if excluded.ip_ranges.iter().any(|x| ip_in(&ip, x)) {
            return Err(deny(format!("ipAddresses[{i}] {s:?} (excluded)")));
        }
        if !permitted.ip_ranges.is_empty() && !permitted.ip_ranges.iter().any(|x| ip_in(&ip, x)) {
            return Err(deny(format!("ipAddresses[{i}] {s:?}")));
        }
    }
    for (i, e) in names.emails.iter().enumerate() {
        if excluded.email_addresses.iter().any(|x| email_in(e, x)) {
            return Err(deny(format!("emailAddresses[{i}] {e:?} (excluded)")));
        }
        if !permitted.email_addresses.is_empty()
            && !permitted.email_addresses.iter().any(|x| email_in(e, x))
        {
            return Err(deny(format!("emailAddresses[{i}] {e:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> CertificateAuthoritySpec {
        let mut base = json!({"commonName": "CA"});
        base.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_namespace_not_listed_and_not_selected_is_denied() {
        let s = spec(json!({"allowedNamespaces": {"names": ["prod"],
            "selector": {"matchLabels": {"team": "a"}}}}));
        let none = BTreeMap::new();
        assert!(namespace_allowed("ca", &s, "prod", &none).is_ok());
        let team_a = BTreeMap::from([("team".to_string(), "a".to_string())]);
        assert!(namespace_allowed("ca", &s, "dev", &team_a).is_ok());
        let e = namespace_allowed("ca", &s, "dev", &none).unwrap_err();
        assert_eq!(e.reason(), "NamespaceNotAllowed");
        assert!(e.to_string().contains("spec.allowedNamespaces"));
    }

    #[test]
    fn an_empty_allow_list_allows_every_namespace() {
        let s = spec(json!({}));
        assert!(namespace_allowed("ca", &s, "anything", &BTreeMap::new()).is_ok());
    }

    #[test]
    fn a_duration_above_the_maximum_is_denied() {
        let s = spec(json!({"maxCertificateDuration": "720h"}));
        assert!(duration_allowed("ca", &s, Duration::from_secs(3600)).is_ok());
        let e = duration_allowed("ca", &s, Duration::from_secs(721 * 3600)).unwrap_err();
        assert_eq!(e.reason(), "DurationExceedsMax");
    }

    fn policy(v: serde_json::Value) -> IssuancePolicy {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn usages_default_to_tls_and_email_and_need_the_ca_for_the_rest() {
        let none = policy(json!({}));
        let cases = [
            ("the default usages are allowed", vec![], &none, None),
            (
                "server and client auth are allowed",
                vec![Usage::ServerAuth, Usage::ClientAuth],
                &none,
                None,
            ),
            (
                "ocsp signing needs the CA's consent",
                vec![Usage::OcspSigning],
                &none,
                Some("UsageNotAllowed"),
            ),
            (
                "code signing needs the CA's consent",
                vec![Usage::CodeSigning],
                &none,
                Some("UsageNotAllowed"),
            ),
        ];
        for (what, usages, p, want) in cases {
            assert_eq!(
                usages_allowed("ca", p, &usages).err().map(|e| e.reason()),
                want,
                "{what}"
            );
        }
        let signing = policy(json!({"allowedUsages": ["code signing"]}));
        assert!(usages_allowed("ca", &signing, &[Usage::CodeSigning]).is_ok());
        assert!(
            usages_allowed("ca", &signing, &[Usage::ServerAuth]).is_err(),
            "a list replaces the default"
        );
    }

    #[test]
    fn subject_attributes_need_the_ca_to_list_them() {
        let subj = |v: serde_json::Value| -> Subject { serde_json::from_value(v).unwrap() };
        let none = policy(json!({}));
        let e = subject_allowed(
            "ca",
            &none,
            Some(&subj(json!({"organizations": ["system:masters"]}))),
        )
        .unwrap_err();
        assert_eq!(e.reason(), "SubjectNotAllowed");
        assert!(
            e.to_string().contains("spec.subject.organizations[0]")
                && e.to_string().contains("system:masters"),
            "{e}"
        );
        let acme = policy(json!({"subject": {"organizations": ["Acme"], "countries": ["*"]}}));
        assert!(
            subject_allowed(
                "ca",
                &acme,
                Some(&subj(
                    json!({"organizations": ["Acme"], "countries": ["DE"]})
                ))
            )
            .is_ok()
        );
        assert!(
            subject_allowed("ca", &acme, Some(&subj(json!({"organizations": ["Evil"]})))).is_err()
        );
        assert!(subject_allowed("ca", &none, None).is_ok());
    }

    #[test]
    fn spiffe_ids_are_bound_to_the_namespace_and_trust_domain() {
        let none = policy(json!({}));
        let cases = [
            (
                "the own namespace is allowed",
                &none,
                "spiffe://example.org/ns/team-a/sa/web",
                None,
            ),
            (
                "another namespace's identity is refused",
                &none,
                "spiffe://example.org/ns/team-b/sa/web",
                Some("URINotAllowed"),
            ),
            (
                "a path outside /ns/ is refused",
                &none,
                "spiffe://example.org/admin",
                Some("URINotAllowed"),
            ),
            (
                "a prefix trick is refused",
                &none,
                "spiffe://example.org/ns/team-ab/sa/web",
                Some("URINotAllowed"),
            ),
            (
                "other schemes are not namespaced",
                &none,
                "https://example.org/x",
                None,
            ),
        ];
        for (what, p, uri, want) in cases {
            assert_eq!(
                uris_allowed("ca", p, "team-a", &[uri.to_string()])
                    .err()
                    .map(|e| e.reason()),
                want,
                "{what}"
            );
        }
        let td = policy(
            json!({"uris": {"allowedSchemes": ["spiffe"], "spiffe": {"trustDomain": "example.org", "bindNamespace": false}}}),
        );
        assert!(
            uris_allowed(
                "ca",
                &td,
                "team-a",
                &["spiffe://example.org/anything".into()]
            )
            .is_ok()
        );
        assert!(
            uris_allowed(
                "ca",
                &td,
                "team-a",
                &["spiffe://evil.org/ns/team-a/x".into()]
            )
            .is_err()
        );
        assert!(uris_allowed("ca", &td, "team-a", &["https://example.org/".into()]).is_err());
    }

    #[test]
    fn dns_constraints_hold_for_wildcards_and_leading_dots() {
        let cases = [
            (
                "a name in the domain",
                "a.example.com",
                "example.com",
                true,
                true,
            ),
            (
                "the domain itself",
                "example.com",
                "example.com",
                true,
                true,
            ),
            (
                "a look-alike suffix",
                "badexample.com",
                "example.com",
                false,
                false,
            ),
            (
                "a leading dot excludes the domain itself",
                "example.com",
                ".example.com",
                false,
                false,
            ),
            (
                "a leading dot keeps subdomains",
                "a.example.com",
                ".example.com",
                true,
                true,
            ),
            (
                "a wildcard under the domain",
                "*.example.com",
                "example.com",
                true,
                true,
            ),
            (
                "a wildcard under a leading-dot domain",
                "*.example.com",
                ".example.com",
                true,
                true,
            ),
            (
                "a wildcard is not inside one of its instances",
                "*.example.com",
                "secret.example.com",
                false,
                true,
            ),
            (
                "a wildcard two levels up cannot be the name",
                "*.example.com",
                "a.b.example.com",
                false,
                false,
            ),
            (
                "a wildcard cannot be a leading-dot subtree of an instance",
                "*.example.com",
                ".secret.example.com",
                false,
                false,
            ),
            (
                "case and a trailing dot do not matter",
                "A.Example.COM.",
                "example.com",
                true,
                true,
            ),
        ];
        for (what, name, constraint, within, hit) in cases {
            assert_eq!(dns_within(name, constraint), within, "within: {what}");
            assert_eq!(dns_may_hit(name, constraint), hit, "may hit: {what}");
        }
    }

    #[test]
    fn names_outside_permitted_or_inside_excluded_subtrees_are_denied() {
        let s = spec(json!({"nameConstraints": {
            "permitted": {"dnsDomains": ["example.com"], "ipRanges": ["10.0.0.0/8"]},
            "excluded": {"dnsDomains": ["secret.example.com"]}}}));
        let ok = vec!["a.example.com".to_string(), "*.b.example.com".to_string()];
        let ips = vec!["10.1.2.3".to_string()];
        assert!(
            names_allowed(
                "ca",
                &s,
                &Names {
                    dns: &ok,
                    ips: &ips,
                    emails: &[]
                }
            )
            .is_ok()
        );
        for bad in [
            "evil.com",
            "x.secret.example.com",
            "example.com.evil.org",
            "*.example.com",
        ] {
            let d = vec![bad.to_string()];
            let e = names_allowed(
                "ca",
                &s,
                &Names {
                    dns: &d,
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert_eq!(e.reason(), "NameConstraintViolation", "{bad}");
        }
        let bad_ip = vec!["192.168.1.1".to_string()];
        assert!(
            names_allowed(
                "ca",
                &s,
                &Names {
                    ips: &bad_ip,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }
}
