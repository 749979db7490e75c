//! Input validation. Every problem names the field (cert-manager spelling,
//! with an index for lists), shows the offending value, and says what to do.

use std::fmt;
use std::net::IpAddr;

/// One invalid input: `dnsNames[2] "a..b": empty label between two dots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `dnsNames[2]`, `privateKey.size`, `duration`.
    pub field: String,
    /// The offending value as the user wrote it (may be empty).
    pub value: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            return write!(f, "{}: {}", self.field, self.problem);
        }
        // Long values (e.g. a 300-character DNS name) are shortened.
        let shown: String = if self.value.chars().count() > 64 {
            let head: String = self.value.chars().take(60).collect();
            format!("{head}…")
        } else {
            self.value.clone()
        };
        write!(f, "{} {:?}: {}", self.field, shown, self.problem)
    }
}

/// All problems found in one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub(crate) fn push(
        &mut self,
        field: impl Into<String>,
        value: impl Into<String>,
        problem: impl Into<String>,
    ) {
        self.0.push(FieldError {
            field: field.into(),
            value: value.into(),
            problem: problem.into(),
        });
    }

    /// `true` when there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// Whether some problem is about `field` (exact path, e.g. `dnsNames[2]`).
    pub fn mentions(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Checks a DNS name for a certificate SAN (RFC 5280 preferred name syntax,
/// RFC 1034 lengths). `*` is allowed only as the whole leftmost label when
/// `allow_wildcard`. Returns the problem, phrased as a fix.
pub(crate) fn dns_name_problem(name: &str, allow_wildcard: bool) -> Option<String> {
    if name.is_empty() {
        return Some("empty; remove the entry or give a DNS name".into());
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii()) {
        return Some(format!(
            "non-ASCII character {c:?}; write internationalized names in punycode (xn--...)"
        ));
    }
    if name.chars().any(|c| c.is_ascii_whitespace()) {
        return Some("contains whitespace; DNS names cannot contain spaces".into());
    }
    if name.ends_with('.') {
        return Some("trailing dot; write the name without the final '.'".into());
    }
    if name.len() > 253 {
        return Some(format!(
            "{} characters long; a DNS name has at most 253",
            name.len()
        ));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Some("is an IP address; put it in ipAddresses instead".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Some("empty label (two dots in a row or a leading dot)".into());
        }
        if label.contains('*') {
            if !allow_wildcard {
                return Some("'*' is not allowed here".into());
            }
            if i != 0 || *label != "*" {
                return Some(
                    "a wildcard '*' is only allowed as the entire leftmost label, e.g. *.example.com"
                        .into(),
                );
            }
            if labels.len() < 3 {
                return Some(
                    "a wildcard needs at least two labels after '*', e.g. *.example.com".into(),
                );
            }
            continue;
        }
        if label.len() > 63 {
            return Some(format!(
                "label {label:?} is {} characters; a label has at most 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "character {c:?} not allowed; use letters, digits and '-'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label {label:?} starts or ends with '-'"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Some("the last label is all digits; that is not a DNS name".into());
    }
    None
}

/// Parses an IP address SAN; returns the address or the problem.
pub(crate) fn parse_ip(value: &str) -> Result<IpAddr, String> {
    value.trim().parse::<IpAddr>().map_err(|_| {
        if value.contains('%') {
            "IPv6 zone identifiers ('%eth0') cannot be put in a certificate".into()
        } else if value.contains('/') {
            "a single address is needed here, not a CIDR range".into()
        } else {
            "not a valid IPv4 or IPv6 address".into()
        }
    })
}

/// Parses a CIDR range (`10.0.0.0/8`, `fd00::/8`) for name constraints.
pub(crate) fn parse_cidr(value: &str) -> Result<(IpAddr, u8), String> {
    let Some((addr, prefix)) = value.split_once('/') else {
        return Err("expected a CIDR range like 10.0.0.0/8 or fd00::/8".into());
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| "the address part is not a valid IPv4 or IPv6 address".to_string())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("prefix length must be a number from 0 to {max}"))?;
    Ok((addr, prefix))
}

/// Checks a URI SAN / URL (ASCII, has a scheme, no whitespace).
pub(crate) fn uri_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("empty; remove the entry or give a URI".into());
    }
    if !value.is_ascii() {
        return Some("non-ASCII characters; percent-encode them (and punycode the host)".into());
    }
    if value
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Some("contains whitespace or control characters".into());
    }
    let Some((scheme, rest)) = value.split_once(':') else {
        return Some("no scheme; write it like spiffe://cluster.local/ns/x or https://...".into());
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Some(format!("invalid scheme {scheme:?}"));
    }
    if rest.is_empty() {
        return Some("nothing after the scheme".into());
    }
    None
}

/// Checks an http(s) URL used for CRL distribution points and AIA.
pub(crate) fn http_url_problem(value: &str) -> Option<String> {
    if let Some(p) = uri_problem(value) {
        return Some(p);
    }
    let lower = value.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return Some("must be an http:// or https:// URL".into());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Some("missing host".into());
    }
    None
}

/// What is wrong with `value` as a base URL that Signet appends paths such
/// as `/crl/<name>.crl` to (`spec.publicBaseURL`, `--public-base-url`).
pub fn base_url_problem(value: &str) -> Option<String> {
    if let Some(p) = http_url_problem(value) {
        return Some(p);
    }
    if value.contains(['?', '#']) {
        return Some(
            "has a query or fragment; give the scheme, host and optional path prefix only, e.g. http://pki.example.com".into(),
        );
    }
    None
}

/// Checks an email address SAN (ASCII `local@domain`).
pub(crate) fn email_problem(value: &str) -> Option<String> {
    if !value.is_ascii() {
        return Some("non-ASCII characters; internationalized mailboxes are not supported".into());
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Some("missing '@'; write it like user@example.com".into());
    };
    if local.is_empty() {
        return Some("empty local part before '@'".into());
    }
    if local.len() > 64 {
        return Some("local part longer than 64 characters".into());
    }
    if local
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control() || matches!(c, '@' | '"' | '\\'))
    {
        return Some("local part contains spaces, quotes or '@'".into());
    }
    dns_name_problem(domain, false).map(|p| format!("domain part: {p}"))
}

/// Checks a printable directory string for the subject (CN, O, OU, ...).
pub(crate) fn dn_value_problem(value: &str, max_len: usize) -> Option<String> {
    if value.trim().is_empty() {
        return Some("empty; remove the field or give a value".into());
    }
    if value.chars().count() > max_len {
        return Some(format!(
            "{} characters; at most {max_len} allowed (RFC 5280 upper bound)",
            value.chars().count()
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Some("contains control characters".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_dns_names() {
        for n in [
            "example.com",
            "a.b.c.example.com",
            "*.example.com",
            "xn--bcher-kva.example",
            "svc-1.ns.svc.cluster.local",
            "localhost",
            "Example.COM",
        ] {
            assert_eq!(dns_name_problem(n, true), None, "{n}");
        }
    }

    #[test]
    fn bad_dns_names_say_why() {
        let long_label = format!("{}.example.com", "a".repeat(64));
        let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        let cases: &[(&str, &str)] = &[
            ("a b.example.com", "whitespace"),
            ("a..b", "empty label"),
            (".example.com", "empty label"),
            ("*.*.example.com", "entire leftmost label"),
            ("f*o.example.com", "entire leftmost label"),
            ("*.com", "two labels after"),
            (&long_label, "at most 63"),
            (&long_name, "at most 253"),
            ("bücher.example", "punycode"),
            ("under_score.example", "not allowed"),
            ("-a.example", "starts or ends"),
            ("10.0.0.1", "ipAddresses"),
            ("example.com.", "trailing dot"),
            ("", "empty"),
        ];
        for (name, expect) in cases {
            let p = dns_name_problem(name, true).unwrap_or_default();
            assert!(p.contains(expect), "{name:?}: got {p:?}, want {expect:?}");
        }
        assert!(dns_name_problem("*.example.com", false).is_some());
    }

    #[test]
    fn ips() {
        assert!(parse_ip("10.0.0.1").is_ok());
        assert!(parse_ip("2001:db8::1").is_ok());
        assert!(parse_ip("10.0.0.256").is_err());
        assert!(parse_ip("fe80::1%eth0").unwrap_err().contains("zone"));
        assert!(parse_ip("10.0.0.0/8").unwrap_err().contains("CIDR"));
        assert_eq!(
            parse_cidr("10.0.0.0/8").ok(),
            Some(("10.0.0.0".parse().expect("ip"), 8))
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("fd00::/129").is_err());
    }

    #[test]
    fn uris_and_emails() {
        assert_eq!(uri_problem("spiffe://cluster.local/ns/a/sa/b"), None);
        assert!(uri_problem("no-scheme").is_some());
        assert!(uri_problem("https://exa mple.com").is_some());
        assert_eq!(http_url_problem("http://ca.example/crl"), None);
        assert!(http_url_problem("ldap://x").is_some());
        assert_eq!(email_problem("ops@example.com"), None);
        assert!(email_problem("ops").is_some());
        assert!(email_problem("ops@exa mple.com").is_some());
    }

    #[test]
    fn field_error_display_names_field_and_value() {
        let mut errs = FieldErrors::default();
        errs.push("dnsNames[2]", "a..b", "empty label");
        assert_eq!(errs.to_string(), r#"dnsNames[2] "a..b": empty label"#);
        let mut long = FieldErrors::default();
        long.push("dnsNames[0]", "a".repeat(300), "too long");
        assert!(long.to_string().len() < 120);
    }
}
