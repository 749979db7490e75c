//! The public PKI listener: CRLs and CA certificates with HTTP caching
//! headers (so a CDN or proxy in front can serve them), and the place the
//! OCSP responder answers.
//!
//! | path | body | type |
//! |---|---|---|
//! | `/crl/<crl>.crl` | the CRL, DER | `application/pkix-crl` |
//! | `/crl/<crl>.pem` | the CRL, PEM | `application/x-pem-file` |
//! | `/ca/<ca>.crt` | the CA certificate, DER (AIA caIssuers) | `application/pkix-cert` |
//! | `/ca/<ca>.pem` | the CA certificate, PEM | `application/x-pem-file` |
//! | `/ca/<ca>/chain.pem` | the CA certificate and its parents, PEM | `application/x-pem-file` |
//! | `/ocsp/<ca>` | OCSP (POST; GET with the request in the path; see `ocsp.rs`) | `application/ocsp-response` |
//!
//! CRLs carry `Cache-Control: max-age` up to their nextUpdate,
//! `Last-Modified` (thisUpdate) and a strong `ETag` (cRLNumber and
//! thisUpdate, so every newly signed CRL has a new one); CA certificates an
//! `ETag` from their digest. `If-None-Match` (or, without it,
//! `If-Modified-Since`) answers 304.

use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use hyper::{HeaderMap, StatusCode};
use time::OffsetDateTime;

use super::Route;
use super::reply::Reply;
use crate::published::Published;

/// PEM files.
const PEM: &str = "application/x-pem-file";
/// How long caches may keep a CA certificate (it changes only on renewal,
/// and the renewed one has the same key).
const CA_MAX_AGE_SECONDS: i64 = 3600;
/// At most this many names are listed in a 404.
const LISTED: usize = 50;

/// The PKI route `path` names.
pub fn route(path: &str) -> Option<Route<'_>> {
    if let Some(file) = path.strip_prefix("/crl/") {
        let (name, pem) = split_ext(file, ".crl")?;
        return Some(Route::Crl { name, pem });
    }
    if let Some(rest) = path.strip_prefix("/ca/") {
        if let Some(name) = rest.strip_suffix("/chain.pem") {
            return is_name(name).then_some(Route::CaChain { name });
        }
        let (name, pem) = split_ext(rest, ".crt")?;
        return Some(Route::CaCert { name, pem });
    }
    if let Some(rest) = path.strip_prefix("/ocsp/") {
        // RFC 6960 A.1: GET carries the base64 request, which may itself
        // contain '/', after the responder's path.
        let (ca, get) = match rest.split_once('/') {
            Some((ca, req)) => (ca, Some(req)),
            None => (rest, None),
        };
        return is_name(ca).then_some(Route::Ocsp { ca, get });
    }
    None
}

/// `<name><der_ext>` → (name, false); `<name>.pem` → (name, true).
fn split_ext<'a>(file: &'a str, der_ext: &str) -> Option<(&'a str, bool)> {
    let (name, pem) = match file.strip_suffix(der_ext) {
        Some(n) => (n, false),
        None => (file.strip_suffix(".pem")?, true),
    };
    is_name(name).then_some((name, pem))
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/')
}

/// `GET /crl/<name>.crl|.pem`.
pub fn crl(p: &Published, name: &str, pem: bool, req: &HeaderMap, now: OffsetDateTime) -> Reply {
    let Some(crl) = p.crl(name) else {
        return missing("CRL", name, p.crl_names(), "/crl/<name>.crl");
    };
    let cache = Cache {
        etag: format!(
            "\"{}-{}{}\"",
            crl.number,
            crl.this_update.unix_timestamp(),
            if pem { "-pem" } else { "" }
        ),
        last_modified: Some(crl.this_update),
        max_age: max_age(crl.next_update, now),
    };
    if cache.fresh_for(req) {
        return cache.stamp(not_modified());
    }
    let reply = if pem {
        let text = crate::pki::to_pem("X509 CRL", crl.der.to_vec());
        Reply::new(StatusCode::OK, PEM, text)
    } else {
        Reply::new(StatusCode::OK, "application/pkix-crl", crl.der.to_vec())
    };
    cache.stamp(reply)
}

/// `GET /ca/<name>.crt|.pem`.
pub fn ca_cert(p: &Published, name: &str, pem: bool, req: &HeaderMap) -> Reply {
    let Some(ca) = p.ca(name) else {
        return missing("CertificateAuthority", name, p.ca_names(), "/ca/<name>.crt");
    };
    if pem {
        certificate_file(ca.cert_pem.into_bytes(), PEM, "-pem", req)
    } else {
        certificate_file(ca.cert_der.to_vec(), "application/pkix-cert", "", req)
    }
}

/// `GET /ca/<name>/chain.pem`.
pub fn ca_chain(p: &Published, name: &str, req: &HeaderMap) -> Reply {
    match p.ca(name) {
        Some(ca) => certificate_file(ca.chain_pem.into_bytes(), PEM, "-chain", req),
        None => missing(
            "CertificateAuthority",
            name,
            p.ca_names(),
            "/ca/<name>/chain.pem",
        ),
    }
}

/// A certificate file whose ETag is the digest of `body`.
fn certificate_file(
    body: Vec<u8>,
    content_type: &'static str,
    tag: &str,
    req: &HeaderMap,
) -> Reply {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
    let cache = Cache {
        etag: format!("\"{}{tag}\"", hex::encode(&digest.as_ref()[..16])),
        last_modified: None,
        max_age: CA_MAX_AGE_SECONDS,
    };
    if cache.fresh_for(req) {
        return cache.stamp(not_modified());
    }
    cache.stamp(Reply::new(StatusCode::OK, content_type, body))
}

/// Seconds from `now` until `until`, never negative.
pub fn max_age(until: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (until - now).whole_seconds().max(0)
}

/// The validators and lifetime of one representation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cache {
    /// Strong entity tag, quoted.
    etag: String,
    /// Last-Modified.
    last_modified: Option<OffsetDateTime>,
    /// Cache-Control max-age, seconds.
    max_age: i64,
}

impl Cache {
    /// Whether the client's copy is current (RFC 9110 13.1.2, 13.1.3):
    /// `If-None-Match` decides when present, else `If-Modified-Since`.
    fn fresh_for(&self, req: &HeaderMap) -> bool {
        if let Some(inm) = req.get(IF_NONE_MATCH) {
            return inm.to_str().is_ok_and(|list| etag_listed(list, &self.etag));
        }
        let since = req
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(OffsetDateTime::from);
        match (since, self.last_modified) {
            (Some(since), Some(modified)) => modified.unix_timestamp() <= since.unix_timestamp(),
            _ => false,
        }
    }

    /// Adds ETag, Last-Modified and Cache-Control.
    fn stamp(&self, reply: Reply) -> Reply {
        let reply = reply
            .header(ETAG, &self.etag)
            .header(CACHE_CONTROL, &format!("public, max-age={}", self.max_age));
        match self.last_modified {
            Some(t) => reply.header(LAST_MODIFIED, &http_date(t)),
            None => reply,
        }
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as
/// RFC 9110 13.1.2 prescribes for this header) or is `*`.
pub(super) fn etag_listed(list: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let want = opaque(etag);
    list.split(',')
        .any(|t| t.trim() == "*" || opaque(t) == want)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(super) fn http_date(t: OffsetDateTime) -> String {
    httpdate::fmt_http_date(SystemTime::from(t))
}

pub(super) fn not_modified() -> Reply {
    Reply {
        status: StatusCode::NOT_MODIFIED,
        headers: HeaderMap::new(),
        body: Bytes::new(),
    }
}

/// The 404 for a name nothing is published under, listing what is.
fn missing(kind: &str, name: &str, mut names: Vec<String>, form: &str) -> Reply {
    names.sort();
    let listed = match names.len() {
        0 => "none yet".to_string(),
        n if n > LISTED => format!("{} and {} more", names[..LISTED].join(", "), n - LISTED),
        _ => names.join(", "),
    };
    let shown: String = name.chars().take(128).collect();
    Reply::text(
        StatusCode::NOT_FOUND,
        format!(
            "no {kind} named {shown:?} is published here (paths are {form}); published: {listed}\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use time::Duration;

    fn headers(name: hyper::header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn paths_name_the_resource_and_its_encoding() {
        assert_eq!(
            route("/crl/a.crl"),
            Some(Route::Crl {
                name: "a",
                pem: false
            })
        );
        assert_eq!(
            route("/crl/a.b.pem"),
            Some(Route::Crl {
                name: "a.b",
                pem: true
            })
        );
        assert_eq!(
            route("/ca/r.crt"),
            Some(Route::CaCert {
                name: "r",
                pem: false
            })
        );
        assert_eq!(
            route("/ca/r.pem"),
            Some(Route::CaCert {
                name: "r",
                pem: true
            })
        );
        assert_eq!(route("/ca/r/chain.pem"), Some(Route::CaChain { name: "r" }));
        assert_eq!(route("/ocsp/r"), Some(Route::Ocsp { ca: "r", get: None }));
        assert_eq!(
            route("/ocsp/r/MEow/Q+=="),
            Some(Route::Ocsp {
                ca: "r",
                get: Some("MEow/Q+==")
            })
        );
        for bad in [
            "/crl/.crl",
            "/crl/a",
            "/crl/a/b.crl",
            "/ca/.pem",
            "/ca//chain.pem",
            "/ocsp/",
            "/metrics",
            "/",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }

    #[test]
    fn max_age_counts_down_to_next_update_and_never_goes_negative() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(100);
        assert_eq!(max_age(now + Duration::hours(1), now), 3600);
        assert_eq!(max_age(now, now), 0);
        assert_eq!(max_age(now - Duration::hours(1), now), 0);
    }

    #[test]
    fn if_none_match_decides_before_if_modified_since() {
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(100);
        let c = Cache {
            etag: "\"7-123\"".into(),
            last_modified: Some(t),
            max_age: 10,
        };
        assert!(c.fresh_for(&headers(IF_NONE_MATCH, "\"7-123\"")));
        assert!(c.fresh_for(&headers(IF_NONE_MATCH, "\"1-1\", W/\"7-123\"")));
        assert!(c.fresh_for(&headers(IF_NONE_MATCH, "*")));
        assert!(!c.fresh_for(&headers(IF_NONE_MATCH, "\"6-100\"")));
        assert!(c.fresh_for(&headers(IF_MODIFIED_SINCE, &http_date(t))));
        assert!(c.fresh_for(&headers(
            IF_MODIFIED_SINCE,
            &http_date(t + Duration::hours(1))
        )));
        assert!(!c.fresh_for(&headers(
            IF_MODIFIED_SINCE,
            &http_date(t - Duration::seconds(1))
        )));
        assert!(!c.fresh_for(&headers(IF_MODIFIED_SINCE, "yesterday")));
        let mut both = headers(IF_NONE_MATCH, "\"6-100\"");
        both.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_str(&http_date(t)).unwrap(),
        );
        assert!(
            !c.fresh_for(&both),
            "a non-matching ETag wins over the date"
        );
        assert!(!c.fresh_for(&HeaderMap::new()));
    }

    #[test]
    fn a_missing_name_lists_what_is_published() {
        let r = missing(
            "CRL",
            "nope",
            vec!["b".into(), "a".into()],
            "/crl/<name>.crl",
        );
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert!(
            body.contains("\"nope\"") && body.contains("published: a, b"),
            "{body}"
        );
        let many: Vec<String> = (0..60).map(|i| format!("n{i:02}")).collect();
        let body = String::from_utf8_lossy(&missing("CRL", "x", many, "").body).to_string();
        assert!(body.contains("and 10 more"), "{body}");
    }
}
