//! An answer before it becomes a hyper response: status, headers, body.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Response, StatusCode};

use super::Site;

/// Plain text.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Status, headers and body of an answer. HEAD requests get the same
/// status and headers; hyper leaves the body out (and keeps its length in
/// `Content-Length`).
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers (Content-Length is added from the body).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// `status` with `body` of type `content_type`.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Reply {
            status,
            headers,
            body: body.into(),
        }
    }

    /// `status` with a plain-text body.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Reply::new(status, TEXT, body.into())
    }

    /// 405 with the methods the resource does answer.
    pub fn method_not_allowed(allowed: &[Method]) -> Self {
        let list = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut r = Reply::text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("this resource answers {list}\n"),
        );
        if let Ok(v) = HeaderValue::from_str(&list) {
            r.headers.insert(ALLOW, v);
        }
        r
    }

    /// Sets header `name` (values Signet builds are always valid; one that
    /// is not is left out rather than failing the answer).
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// The hyper response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp
    }
}

/// The 404 for a path neither route table knows: what this listener
/// serves, and where the other listener's paths are.
pub fn unknown_path(site: Site, path: &str) -> Reply {
    let (here, there) = match site {
        Site::Admin => (
            "/metrics, /healthz, /readyz",
            "CRLs, CA certificates and OCSP are on the PKI listener (--pki-addr)",
        ),
        Site::Pki => (
            "/crl/<name>.crl, /crl/<name>.pem, /ca/<name>.crt, /ca/<name>.pem, /ca/<name>/chain.pem, /ocsp/<ca>",
            "/metrics, /healthz and /readyz are on the admin listener (--http-addr)",
        ),
    };
    let shown: String = path.chars().take(128).collect();
    Reply::text(
        StatusCode::NOT_FOUND,
        format!("nothing at {shown:?}; this listener serves {here}; {there}\n"),
    )
}
