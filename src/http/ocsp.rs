//! `/ocsp/<ca>`: the OCSP responder (RFC 6960, RFC 5019 for GET).
//!
//! * `POST /ocsp/<ca>` with the DER request as body
//!   (`Content-Type: application/ocsp-request`, or none);
//! * `GET /ocsp/<ca>/<url-encoded base64 of the DER request>`.
//!
//! Answers come from the CA's published OCSP view (see
//! [`crate::published::PublishedOcsp`]): `revoked` (time and reason) for a
//! serial the CA's last signed CRL lists, `good` for one the mirror
//! records as issued by the CA, `unknown` otherwise. They are signed with
//! the CA's delegated responder key in memory, so no answer costs a KMS
//! call, and answers to requests without a nonce are kept until their
//! nextUpdate or until a new CRL replaces the view.
//!
//! | outcome | OCSP status | HTTP |
//! |---|---|---|
//! | good / revoked / unknown | successful | 200 |
//! | a CA Signet does not run, or CertID issuer hashes of another CA | unauthorized | 200 |
//! | garbage, bad base64, over-long, unsupported | malformedRequest | 400 |
//! | CA known but no view yet, revocation data stale, mirror unreadable | tryLater | 503 + `Retry-After` |
//! | signing failed | internalError | 500 |
//!
//! GET answers without a nonce carry the RFC 5019 §6.2 caching headers
//! (`Cache-Control: max-age=<until nextUpdate>, public, no-transform,
//! must-revalidate`, `Last-Modified` = producedAt, `Expires` = nextUpdate,
//! `ETag`); `If-None-Match` answers 304.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, EXPIRES, IF_NONE_MATCH, LAST_MODIFIED};
use hyper::{HeaderMap, StatusCode};
use time::{Duration, OffsetDateTime};
use tracing::{debug, warn};

use super::HttpState;
use super::pki::{etag_listed, http_date, not_modified};
use super::reply::Reply;
use crate::metrics::OcspOutcome;
use crate::pki::normalize_serial;
use crate::pki::ocsp::{
    self, CertStatus, ErrorStatus, OcspRequest, SingleAnswer, decode_get, parse_request,
};
use crate::published::{OcspAnswer, PublishedOcsp};
use crate::store::CertQuery;

/// `application/ocsp-response`.
pub const RESPONSE_TYPE: &str = "application/ocsp-response";
/// `application/ocsp-request`.
pub const REQUEST_TYPE: &str = "application/ocsp-request";
/// How long an `unknown` answer is valid (the certificate may just have
/// been issued and not be in the mirror yet).
const UNKNOWN_VALIDITY: Duration = Duration::minutes(5);
/// Revocation data this close to its nextUpdate is not vouched for.
const STALE_MARGIN: Duration = Duration::minutes(1);
/// `Retry-After` of a tryLater, seconds.
const RETRY_AFTER_SECONDS: &str = "10";

/// Answers one OCSP request for CA `ca`: `get` is the request part of a
/// GET path, else `body` is the POSTed request.
pub async fn answer(
    state: &HttpState,
    ca: &str,
    get: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    now: OffsetDateTime,
) -> Reply {
    if get.is_none() && !content_type_ok(headers) {
        return Reply::text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("OCSP requests are POSTed as {REQUEST_TYPE}\n"),
        );
    }
    let (reply, outcome) = respond(state, ca, get, headers, body, now).await;
    state.metrics.ocsp_request(outcome);
    reply
}

/// A POST without Content-Type is accepted; one with another type is not.
fn content_type_ok(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_none_or(|v| {
        v.to_str().is_ok_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(REQUEST_TYPE))
        })
    })
}

async fn respond(
    state: &HttpState,
    ca: &str,
    get: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    now: OffsetDateTime,
) -> (Reply, OcspOutcome) {
    let der = match get {
        Some(segment) => decode_get(segment),
        None => Ok(body.to_vec()),
    };
    let req = match der.and_then(|d| parse_request(&d)) {
        Ok(r) => r,
        Err(e) => {
            debug!(ca, reason = e.reason(), error = %e, "malformed OCSP request");
            return refuse(ErrorStatus::MalformedRequest);
        }
    };
    let Some(view) = state.published.ocsp(ca) else {
        // A CA Signet runs whose view is not there (yet): no CRL object
        // publishes it, or the CRL controller has not got to it.
        return if state.published.ca(ca).is_some() {
            refuse(ErrorStatus::TryLater)
        } else {
            refuse(ErrorStatus::Unauthorized)
        };
    };
    if !req
        .certs
        .iter()
        .all(|c| c.matches_issuer(view.responder.issuer()))
    {
        return refuse(ErrorStatus::Unauthorized);
    }
    if now + STALE_MARGIN >= view.next_update {
        warn!(
            ca,
            crl = view.crl_number,
            "OCSP asked while the CA's CRL is at its nextUpdate; answering tryLater"
        );
        return refuse(ErrorStatus::TryLater);
    }
    let key = cache_key(&req);
    let cached = match req.nonce {
        None => view.answer(&key, now),
        Some(_) => None,
    };
    let answer = match cached {
        Some(a) => a,
        None => match sign(state, ca, &view, &req, now).await {
            Ok(a) => {
                if req.nonce.is_none() && a.outcome != OcspOutcome::Unknown.as_str() {
                    view.keep_answer(key, a.clone());
                }
                a
            }
            Err(status) => return refuse(status),
        },
    };
    let outcome = outcome_of(answer.outcome);
    let reply = Reply::new(StatusCode::OK, RESPONSE_TYPE, answer.der.clone());
    if get.is_some() && req.nonce.is_none() {
        return (cacheable(reply, &answer, headers, now), outcome);
    }
    (reply, outcome)
}

/// The cache key: the request's CertIDs as the client encoded them.
fn cache_key(req: &OcspRequest) -> Vec<u8> {
    req.certs.iter().flat_map(|c| c.der().to_vec()).collect()
}

/// Looks the serials up and signs the answer (no KMS call: the key is the
/// delegated responder's, in memory).
async fn sign(
    state: &HttpState,
    ca: &str,
    view: &PublishedOcsp,
    req: &OcspRequest,
    now: OffsetDateTime,
) -> Result<Arc<OcspAnswer>, ErrorStatus> {
    let this_update = now;
    let valid_until = view.next_update.min(view.responder.not_after());
    let mut answers = Vec::with_capacity(req.certs.len());
    let mut outcome = OcspOutcome::Good;
    for id in &req.certs {
        let status = status_of(state, ca, view, &id.serial_hex(), now).await?;
        let next_update = match status {
            CertStatus::Unknown => valid_until.min(now + UNKNOWN_VALIDITY),
            _ => valid_until,
        };
        outcome = match (outcome, status) {
            (_, CertStatus::Revoked { .. }) | (OcspOutcome::Revoked, _) => OcspOutcome::Revoked,
            (_, CertStatus::Unknown) | (OcspOutcome::Unknown, _) => OcspOutcome::Unknown,
            _ => OcspOutcome::Good,
        };
        answers.push(SingleAnswer {
            cert_id: id.clone(),
            status,
            this_update,
            next_update: Some(next_update),
        });
    }
    let next_update = answers
        .iter()
        .filter_map(|a| a.next_update)
        .min()
        .unwrap_or(valid_until);
    let der = ocsp::sign_response(
        &view.responder.responder(),
        &answers,
        req.nonce.as_deref(),
        now,
    )
    .await
    .map_err(|e| {
        warn!(ca, error = %e, "signing an OCSP response failed");
        ErrorStatus::InternalError
    })?;
    Ok(Arc::new(OcspAnswer {
        der,
        produced_at: now,
        next_update,
        outcome: outcome.as_str(),
    }))
}

/// The status of `serial`: revoked if the CRL lists it, good if the
/// mirror records it as issued by `ca`, else unknown.
async fn status_of(
    state: &HttpState,
    ca: &str,
    view: &PublishedOcsp,
    serial: &str,
    now: OffsetDateTime,
) -> Result<CertStatus, ErrorStatus> {
    let Some(serial) = normalize_serial(serial) else {
        return Ok(CertStatus::Unknown);
    };
    if let Some((at, reason)) = view.revoked.get(&serial) {
        return Ok(CertStatus::Revoked {
            at: *at,
            reason: *reason,
        });
    }
    if view.is_known_issued(&serial) {
        return Ok(CertStatus::Good);
    }
    let Some(store) = state.store.get() else {
        // A replica that does not lead has nothing published to answer from.
        return Err(ErrorStatus::TryLater);
    };
    let rows = store
        .list_certificates(CertQuery {
            ca: Some(ca.to_string()),
            serial: Some(serial.clone()),
            now: now.unix_timestamp(),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            warn!(ca, error = %e, "the mirror cannot be read for OCSP; answering tryLater");
            ErrorStatus::TryLater
        })?;
    if rows.is_empty() {
        return Ok(CertStatus::Unknown);
    }
    view.remember_issued(&serial);
    Ok(CertStatus::Good)
}

fn outcome_of(label: &str) -> OcspOutcome {
    OcspOutcome::ALL
        .into_iter()
        .find(|o| o.as_str() == label)
        .unwrap_or(OcspOutcome::InternalError)
}

/// An unsuccessful OCSP response with its HTTP status.
fn refuse(status: ErrorStatus) -> (Reply, OcspOutcome) {
    let (http, outcome) = match status {
        ErrorStatus::MalformedRequest => (StatusCode::BAD_REQUEST, OcspOutcome::MalformedRequest),
        ErrorStatus::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            OcspOutcome::InternalError,
        ),
        ErrorStatus::TryLater => (StatusCode::SERVICE_UNAVAILABLE, OcspOutcome::TryLater),
        ErrorStatus::Unauthorized => (StatusCode::OK, OcspOutcome::Unauthorized),
    };
    let reply = Reply::new(http, RESPONSE_TYPE, ocsp::error_response(status));
    let reply = match status {
        ErrorStatus::TryLater => reply.header(hyper::header::RETRY_AFTER, RETRY_AFTER_SECONDS),
        _ => reply.header(CACHE_CONTROL, "no-store"),
    };
    (reply, outcome)
}

/// The RFC 5019 §6.2 headers of a cacheable GET answer; 304 when the
/// client's copy is this one.
fn cacheable(reply: Reply, a: &OcspAnswer, req: &HeaderMap, now: OffsetDateTime) -> Reply {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &a.der);
    let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
    let fresh = req
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| etag_listed(list, &etag));
    let max_age = (a.next_update - now).whole_seconds().max(0);
    let reply = if fresh { not_modified() } else { reply };
    reply
        .header(ETAG, &etag)
        .header(LAST_MODIFIED, &http_date(a.produced_at))
        .header(EXPIRES, &http_date(a.next_update))
        .header(
            CACHE_CONTROL,
            &format!("max-age={max_age}, public, no-transform, must-revalidate"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn a_post_is_accepted_without_content_type_or_as_ocsp_request_only() {
        let mut h = HeaderMap::new();
        assert!(content_type_ok(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/ocsp-request"),
        );
        assert!(content_type_ok(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/OCSP-Request; x=y"),
        );
        assert!(content_type_ok(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert!(!content_type_ok(&h));
    }

    #[test]
    fn every_refusal_is_an_ocsp_response_with_a_matching_http_status() {
        for (status, http) in [
            (ErrorStatus::MalformedRequest, 400),
            (ErrorStatus::InternalError, 500),
            (ErrorStatus::TryLater, 503),
            (ErrorStatus::Unauthorized, 200),
        ] {
            let (r, _) = refuse(status);
            assert_eq!(r.status.as_u16(), http, "{status:?}");
            assert_eq!(r.headers[CONTENT_TYPE], RESPONSE_TYPE);
            assert_eq!(r.body.as_ref(), ocsp::error_response(status).as_slice());
        }
    }
}
