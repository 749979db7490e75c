//! Unit tests of the OCSP building blocks with in-memory keys. The same
//! paths against `openssl ocsp` and pkilint are in `tests/pki_ocsp.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};

use ::time::{Duration, OffsetDateTime};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::kms::{KeySpec, LocalSigner, SigAlg, SignError, Signer};
use crate::pki::{CaRequest, IssuerProfile, PkiError, Subject, issue_intermediate, issue_root};

/// 2026-11-27T12:00:00Z.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_780_800).expect("valid timestamp")
}

fn key(id: &str) -> LocalSigner {
    LocalSigner::generate(KeySpec::EccNistP256, id).expect("key")
}

struct Ca {
    signer: LocalSigner,
    info: IssuerInfo,
}

async fn root(cn: &str) -> Ca {
    let signer = key("soft:root");
    let req = CaRequest {
        subject: Subject {
            common_name: Some(cn.into()),
            organizations: vec!["Signet".into()],
            countries: vec!["DE".into()],
            ..Default::default()
        },
        duration: Duration::days(3650),
        path_len: Some(1),
        name_constraints: None,
    };
    let cert = issue_root(&signer, &req, now()).await.expect("root");
    let info = IssuerInfo::from_der(&cert.cert_der, IssuerProfile::default()).expect("root info");
    Ca { signer, info }
}

async fn intermediate(parent: &Ca) -> Ca {
    let signer = key("soft:int");
    let req = CaRequest {
        subject: Subject::cn("Signet Test Intermediate"),
        duration: Duration::days(1000),
        path_len: None,
        name_constraints: None,
    };
    let cert = issue_intermediate(
        &parent.info,
        &parent.signer,
        &req,
        signer.public_key_spki_der(),
        now(),
    )
    .await
    .expect("intermediate");
    let info = IssuerInfo::from_der(&cert.cert_der, IssuerProfile::default()).expect("int info");
    Ca { signer, info }
}

fn hash_oid(alg: HashAlgorithm) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(match alg {
        HashAlgorithm::Sha1 => "1.3.14.3.2.26",
        HashAlgorithm::Sha256 => "2.16.840.1.101.3.4.2.1",
        HashAlgorithm::Sha384 => "2.16.840.1.101.3.4.2.2",
        HashAlgorithm::Sha512 => "2.16.840.1.101.3.4.2.3",
    })
}

/// The CertID a client computes for `serial` under `issuer`.
fn asn1_cert_id(issuer: &IssuerInfo, serial: &[u8], alg: HashAlgorithm) -> x509_ocsp::CertId {
    x509_ocsp::CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: hash_oid(alg),
            parameters: (alg == HashAlgorithm::Sha1).then(der::Any::null),
        },
        issuer_name_hash: OctetString::new(hash(alg, issuer.subject_der())).expect("hash"),
        issuer_key_hash: OctetString::new(hash(alg, issuer.public_key_bits())).expect("hash"),
        serial_number: SerialNumber::new(serial).expect("serial"),
    }
}

fn nonce_extension(value: &[u8], critical: bool) -> Extension {
    Extension {
        extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
        critical,
        extn_value: OctetString::new(value).expect("nonce"),
    }
}

/// DER of an unsigned request for `ids` with `extensions`.
fn request_der(ids: Vec<x509_ocsp::CertId>, extensions: Option<Vec<Extension>>) -> Vec<u8> {
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| x509_ocsp::Request {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .expect("request encodes")
}

fn cert_id(issuer: &IssuerInfo, serial: &[u8], alg: HashAlgorithm) -> CertId {
    let der = request_der(vec![asn1_cert_id(issuer, serial, alg)], None);
    parse_request(&der).expect("parses").certs.remove(0)
}

/// A signer that counts its signatures.
struct Counting {
    inner: LocalSigner,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Signer for Counting {
    fn public_key_spki_der(&self) -> &[u8] {
        self.inner.public_key_spki_der()
    }
    fn algorithm(&self) -> SigAlg {
        self.inner.algorithm()
    }
    fn key_arn(&self) -> &str {
        self.inner.key_arn()
    }
    fn key_spec(&self) -> KeySpec {
        self.inner.key_spec()
    }
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.sign_digest(digest).await
    }
}

/// The decoded BasicOCSPResponse of a successful response.
fn basic(der: &[u8]) -> x509_ocsp::BasicOcspResponse {
    let resp = x509_ocsp::OcspResponse::from_der(der).expect("OCSPResponse decodes");
    assert_eq!(
        resp.response_status,
        x509_ocsp::OcspResponseStatus::Successful
    );
    let bytes = resp.response_bytes.expect("responseBytes");
    assert_eq!(
        bytes.response_type,
        ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1")
    );
    x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic decodes")
}

fn good(id: CertId) -> SingleAnswer {
    SingleAnswer {
        cert_id: id,
        status: CertStatus::Good,
        this_update: now(),
        next_update: Some(now() + Duration::hours(12)),
    }
}

#[tokio::test]
async fn a_cert_id_parses_back_with_either_hash_algorithm_and_matches_only_its_issuer() {
    let root = root("Signet Test Root").await;
    let int = intermediate(&root).await;
    for alg in [
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ] {
        let asn1 = asn1_cert_id(&int.info, &[0x0a, 0x1b, 0x2c], alg);
        let der = request_der(vec![asn1.clone()], None);
        let req = parse_request(&der).expect("parses");
        assert_eq!(req.certs.len(), 1);
        assert_eq!(req.nonce, None);
        let id = &req.certs[0];
        assert_eq!(id.hash_algorithm(), alg);
        assert_eq!(id.serial(), &[0x0a, 0x1b, 0x2c]);
        assert_eq!(id.serial_hex(), "0a1b2c");
        assert_eq!(id.issuer_name_hash().len(), alg.output_len());
        assert_eq!(id.der(), asn1.to_der().expect("encodes").as_slice());
        assert!(
            der.windows(id.der().len()).any(|w| w == id.der()),
            "the CertID DER is the client's bytes"
        );
        assert!(id.matches_issuer(&int.info), "{alg:?}: its issuer");
        assert!(!id.matches_issuer(&root.info), "{alg:?}: the parent CA");
    }
}

#[tokio::test]
async fn a_serial_with_the_high_bit_set_keeps_its_sign_byte_but_not_in_serial_hex() {
    let root = root("Signet Test Root").await;
    let id = cert_id(&root.info, &[0x00, 0x80, 0x01], HashAlgorithm::Sha1);
    assert_eq!(id.serial(), &[0x00, 0x80, 0x01]);
    assert_eq!(id.serial_hex(), "8001");
}

#[tokio::test]
async fn a_cert_id_of_another_ca_with_the_same_name_does_not_match() {
    let a = root("Signet Twin Root").await;
    let b = root("Signet Twin Root").await;
    assert_eq!(a.info.subject_der(), b.info.subject_der());
    let id = cert_id(&a.info, &[1], HashAlgorithm::Sha256);
    assert!(id.matches_issuer(&a.info));
    assert!(!id.matches_issuer(&b.info), "same name, other key");
}

#[tokio::test]
async fn the_nonce_is_kept_as_sent_and_echoed_in_the_signed_response() {
    let root = root("Signet Test Root").await;
    let nonce = OctetString::new(vec![7u8; 16])
        .expect("nonce")
        .to_der()
        .expect("encodes");
    let der = request_der(
        vec![asn1_cert_id(&root.info, &[5], HashAlgorithm::Sha1)],
        Some(vec![nonce_extension(&nonce, false)]),
    );
    let req = parse_request(&der).expect("parses");
    assert_eq!(req.nonce.as_deref(), Some(nonce.as_slice()));

    let responder = Responder::ca(&root.info, &root.signer).expect("responder");
    let answers = [good(req.certs[0].clone())];
    let resp = sign_response(&responder, &answers, req.nonce.as_deref(), now())
        .await
        .expect("signs");
    let exts = basic(&resp)
        .tbs_response_data
        .response_extensions
        .expect("extensions");
    assert_eq!(exts.len(), 1);
    assert_eq!(exts[0].extn_id, nonce_extension(&[], false).extn_id);
    assert!(!exts[0].critical);
    assert_eq!(exts[0].extn_value.as_bytes(), nonce.as_slice());

    let without = sign_response(&responder, &answers, None, now())
        .await
        .expect("signs");
    assert!(
        basic(&without)
            .tbs_response_data
            .response_extensions
            .is_none()
    );
}

#[tokio::test]
async fn a_nonce_of_more_than_32_bytes_is_refused() {
    let root = root("Signet Test Root").await;
    let id = asn1_cert_id(&root.info, &[5], HashAlgorithm::Sha1);
    let long = OctetString::new(vec![1u8; 33])
        .expect("nonce")
        .to_der()
        .expect("der");
    let der = request_der(vec![id.clone()], Some(vec![nonce_extension(&long, false)]));
    assert!(matches!(
        parse_request(&der),
        Err(OcspError::NonceLength { len: 33, max: 32 })
    ));
    // A pre-RFC 8954 nonce (bare bytes) is accepted within the same limit.
    let der = request_der(vec![id], Some(vec![nonce_extension(&[9u8; 8], false)]));
    assert_eq!(
        parse_request(&der).expect("parses").nonce,
        Some(vec![9u8; 8])
    );
}

#[tokio::test]
async fn a_signed_response_costs_one_signature_that_verifies_with_the_responder_key() {
    let root = root("Signet Test Root").await;
    let int = intermediate(&root).await;
    let responder_key = Counting {
        inner: key("soft:ocsp"),
        calls: AtomicUsize::new(0),
    };
    let cert = issue_responder(
        &int.info,
        &int.signer,
        responder_key.public_key_spki_der(),
        Duration::days(7),
        now(),
    )
    .await
    .expect("responder certificate");
    let responder =
        Responder::delegated(&int.info, &responder_key, &cert.cert_der).expect("responder");
    let answers = [
        good(cert_id(&int.info, &[1], HashAlgorithm::Sha1)),
        SingleAnswer {
            status: CertStatus::Revoked {
                at: now() - Duration::hours(1),
                reason: Some(RevocationReason::KeyCompromise),
            },
            ..good(cert_id(&int.info, &[2], HashAlgorithm::Sha256))
        },
        SingleAnswer {
            status: CertStatus::Unknown,
            ..good(cert_id(&root.info, &[3], HashAlgorithm::Sha1))
        },
    ];
    let resp = sign_response(
        &responder,
        &answers,
        None,
        now() + Duration::milliseconds(400),
    )
    .await
    .expect("signs");
    assert_eq!(responder_key.calls.load(Ordering::Relaxed), 1);

    let b = basic(&resp);
    let tbs = b.tbs_response_data.to_der().expect("tbs");
    let sig = b.signature.as_bytes().expect("whole bytes");
    let alg = responder_key.algorithm();
    assert!(crate::kms::verify_digest_signature(
        responder_key.public_key_spki_der(),
        alg,
        &alg.digest(&tbs),
        sig
    ));
    assert_eq!(
        b.signature_algorithm.oid,
        ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2")
    );
    let certs = b.certs.expect("certs");
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().expect("der"), cert.cert_der);

    let data = &b.tbs_response_data;
    let (_, parsed) = X509Certificate::from_der(&cert.cert_der).expect("parses");
    let key_hash = hash(
        HashAlgorithm::Sha1,
        &parsed.public_key().subject_public_key.data,
    );
    assert_eq!(
        data.responder_id,
        x509_ocsp::ResponderId::ByKey(OctetString::new(key_hash).expect("hash"))
    );
    assert_eq!(
        data.produced_at.0.to_unix_duration().as_secs(),
        now().unix_timestamp() as u64,
        "producedAt is cut to whole seconds"
    );
    assert_eq!(data.responses.len(), 3);
    for (answer, single) in answers.iter().zip(&data.responses) {
        assert_eq!(single.cert_id.to_der().expect("der"), answer.cert_id.der());
        assert!(single.next_update.is_some());
    }
    assert_eq!(data.responses[0].cert_status, x509_ocsp::CertStatus::good());
    let x509_ocsp::CertStatus::Revoked(info) = data.responses[1].cert_status else {
        panic!("second answer is not revoked");
    };
    assert_eq!(
        info.revocation_reason,
        Some(x509_cert::ext::pkix::CrlReason::KeyCompromise)
    );
    assert_eq!(
        info.revocation_time.0.to_unix_duration().as_secs(),
        (now() - Duration::hours(1)).unix_timestamp() as u64
    );
    assert_eq!(
        data.responses[2].cert_status,
        x509_ocsp::CertStatus::unknown()
    );
}

#[tokio::test]
async fn a_revocation_without_reason_or_with_unspecified_carries_no_reason_code() {
    let root = root("Signet Test Root").await;
    let responder = Responder::ca(&root.info, &root.signer).expect("responder");
    for reason in [None, Some(RevocationReason::Unspecified)] {
        let answer = SingleAnswer {
            status: CertStatus::Revoked { at: now(), reason },
            ..good(cert_id(&root.info, &[4], HashAlgorithm::Sha1))
        };
        let resp = sign_response(&responder, &[answer], None, now())
            .await
            .expect("signs");
        let b = basic(&resp);
        assert!(b.certs.is_none(), "the CA signs itself: no certs");
        let x509_ocsp::CertStatus::Revoked(info) = b.tbs_response_data.responses[0].cert_status
        else {
            panic!("not revoked");
        };
        assert_eq!(info.revocation_reason, None, "{reason:?}");
    }
}

#[tokio::test]
async fn the_responder_refuses_to_vouch_for_a_certificate_of_another_ca() {
    let root = root("Signet Test Root").await;
    let int = intermediate(&root).await;
    let responder = Responder::ca(&int.info, &int.signer).expect("responder");
    let foreign = cert_id(&root.info, &[1], HashAlgorithm::Sha1);
    for status in [
        CertStatus::Good,
        CertStatus::Revoked {
            at: now(),
            reason: None,
        },
    ] {
        let answer = SingleAnswer {
            status,
            ..good(foreign.clone())
        };
        let err = sign_response(&responder, &[answer], None, now())
            .await
            .expect_err("refused");
        let errs = err.field_errors().expect("field errors");
        assert!(errs.mentions("answers[0].certId"), "{err}");
    }
    let unknown = SingleAnswer {
        status: CertStatus::Unknown,
        ..good(foreign)
    };
    sign_response(&responder, &[unknown], None, now())
        .await
        .expect("unknown is always honest");
}

#[tokio::test]
async fn inconsistent_answers_are_refused_naming_the_field() {
    let root = root("Signet Test Root").await;
    let responder = Responder::ca(&root.info, &root.signer).expect("responder");
    let id = cert_id(&root.info, &[1], HashAlgorithm::Sha1);
    let cases: [(&str, Vec<SingleAnswer>); 4] = [
        ("answers", vec![]),
        (
            "answers[0].nextUpdate",
            vec![SingleAnswer {
                next_update: Some(now()),
                ..good(id.clone())
            }],
        ),
        (
            "answers[0].thisUpdate",
            vec![SingleAnswer {
                this_update: now() + Duration::hours(1),
                next_update: None,
                ..good(id.clone())
            }],
        ),
        (
            "answers[0].revocationTime",
            vec![SingleAnswer {
                status: CertStatus::Revoked {
                    at: now() + Duration::seconds(1),
                    reason: None,
                },
                ..good(id.clone())
            }],
        ),
    ];
    for (field, answers) in cases {
        let err = sign_response(&responder, &answers, None, now())
            .await
            .expect_err(field);
        assert!(
            err.field_errors().is_some_and(|e| e.mentions(field)),
            "{field}: {err}"
        );
    }
}

#[tokio::test]
async fn the_responder_certificate_is_for_ocsp_signing_only_with_nocheck_and_the_cas_aki() {
    let root = root("Signet Test Root").await;
    let int = intermediate(&root).await;
    let responder_key = key("soft:ocsp");
    let cert = issue_responder(
        &int.info,
        &int.signer,
        responder_key.public_key_spki_der(),
        Duration::days(7),
        now() + Duration::milliseconds(250),
    )
    .await
    .expect("responder certificate");
    assert_eq!(cert.not_before, now());
    assert_eq!(cert.not_after, now() + Duration::days(7));
    assert!(!cert.clamped);
    let (_, c) = X509Certificate::from_der(&cert.cert_der).expect("parses");
    assert_eq!(
        c.subject().to_string(),
        "CN=Signet Test Intermediate OCSP Responder"
    );
    assert_eq!(c.issuer().as_raw(), int.info.subject_der());
    assert_eq!(c.public_key().raw, responder_key.public_key_spki_der());
    let eku = c.extended_key_usage().expect("eku").expect("present").value;
    assert!(eku.ocsp_signing);
    assert!(
        !(eku.any
            || eku.server_auth
            || eku.client_auth
            || eku.code_signing
            || eku.email_protection
            || eku.time_stamping)
            && eku.other.is_empty(),
        "only OCSP signing: {eku:?}"
    );
    let ku = c.key_usage().expect("ku").expect("present");
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert_eq!(ku.value.flags, 1, "digitalSignature only");
    let bc = c.basic_constraints().expect("bc").expect("present");
    assert!(!bc.value.ca);
    assert!(c.subject_alternative_name().expect("san").is_none());
    let nocheck: Vec<_> = c
        .extensions()
        .iter()
        .filter(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5")
        .collect();
    let [nocheck] = nocheck.as_slice() else {
        panic!("id-pkix-ocsp-nocheck exactly once: {nocheck:?}");
    };
    assert!(!nocheck.critical);
    assert_eq!(nocheck.value, &[0x05, 0x00]);
    let aki = c
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("AKI");
    assert_eq!(aki, int.info.ski());
    for oid in [
        x509_parser::oid_registry::OID_X509_EXT_CRL_DISTRIBUTION_POINTS,
        x509_parser::oid_registry::OID_PKIX_AUTHORITY_INFO_ACCESS,
    ] {
        assert!(c.get_extension_unique(&oid).expect("unique").is_none());
    }
    Responder::delegated(&int.info, &responder_key, &cert.cert_der).expect("usable");
}

#[tokio::test]
async fn a_responder_certificate_is_refused_for_the_wrong_key_ca_or_usage() {
    let root = root("Signet Test Root").await;
    let int = intermediate(&root).await;
    let responder_key = key("soft:ocsp");
    let cert = issue_responder(
        &int.info,
        &int.signer,
        responder_key.public_key_spki_der(),
        Duration::days(1),
        now(),
    )
    .await
    .expect("responder certificate");
    let other_key = key("soft:other");
    let refused = |r: Result<Responder<'_>, PkiError>, what: &str| match r {
        Err(PkiError::InvalidResponder(m)) => eprintln!("{what}: {m}"),
        other => panic!("{what}: {other:?}"),
    };
    refused(
        Responder::delegated(&int.info, &other_key, &cert.cert_der),
        "another key",
    );
    refused(
        Responder::delegated(&root.info, &responder_key, &cert.cert_der),
        "another CA",
    );
    refused(
        Responder::delegated(&int.info, &int.signer, int.info.cert_der()),
        "a CA certificate (no OCSPSigning)",
    );
    assert!(matches!(
        Responder::ca(&int.info, &root.signer),
        Err(PkiError::IssuerKeyMismatch { .. })
    ));
}

#[tokio::test]
async fn a_long_lived_responder_certificate_is_refused_and_an_expired_one_cannot_sign() {
    let root = root("Signet Test Root").await;
    let responder_key = key("soft:ocsp");
    let err = issue_responder(
        &root.info,
        &root.signer,
        responder_key.public_key_spki_der(),
        Duration::days(31),
        now(),
    )
    .await
    .expect_err("too long");
    assert!(err.field_errors().is_some_and(|e| e.mentions("duration")));
    let err = issue_responder(
        &root.info,
        &root.signer,
        root.signer.public_key_spki_der(),
        Duration::days(1),
        now(),
    )
    .await
    .expect_err("the CA's own key");
    assert!(
        err.field_errors()
            .is_some_and(|e| e.mentions("responderPublicKey"))
    );

    let cert = issue_responder(
        &root.info,
        &root.signer,
        responder_key.public_key_spki_der(),
        Duration::days(1),
        now(),
    )
    .await
    .expect("responder certificate");
    let responder =
        Responder::delegated(&root.info, &responder_key, &cert.cert_der).expect("responder");
    assert_eq!(responder.not_after(), now() + Duration::days(1));
    let answer = good(cert_id(&root.info, &[1], HashAlgorithm::Sha1));
    let late = now() + Duration::days(1);
    let err = sign_response(&responder, &[answer], None, late)
        .await
        .expect_err("expired");
    assert!(matches!(err, PkiError::InvalidResponder(_)), "{err}");
}

#[test]
fn a_long_ca_common_name_is_shortened_to_fit_the_responder_common_name() {
    let long = "A".repeat(64);
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "DE");
    dn.push(rcgen::DnType::CommonName, long.as_str());
    let out = responder::responder_subject(&dn);
    let cn = match out.get(&rcgen::DnType::CommonName) {
        Some(rcgen::DnValue::Utf8String(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(cn.chars().count(), 64);
    assert!(cn.ends_with(" OCSP Responder"));
    assert!(out.get(&rcgen::DnType::CountryName).is_some());
}

#[tokio::test]
async fn too_many_certs_no_certs_and_oversized_requests_are_refused() {
    let root = root("Signet Test Root").await;
    let id = asn1_cert_id(&root.info, &[1], HashAlgorithm::Sha1);
    let sixteen = request_der(vec![id.clone(); MAX_CERTS], None);
    assert_eq!(parse_request(&sixteen).expect("16 parse").certs.len(), 16);
    let seventeen = request_der(vec![id; MAX_CERTS + 1], None);
    assert!(matches!(
        parse_request(&seventeen),
        Err(OcspError::TooManyCerts { count: 17, max: 16 })
    ));
    assert!(matches!(
        parse_request(&request_der(vec![], None)),
        Err(OcspError::NoCerts)
    ));
    assert!(matches!(parse_request(&[]), Err(OcspError::Empty)));
    let huge = vec![0x30; MAX_REQUEST_LEN + 1];
    assert!(matches!(
        parse_request(&huge),
        Err(OcspError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn an_unsupported_or_malformed_cert_id_hash_is_refused() {
    let root = root("Signet Test Root").await;
    let mut md5 = asn1_cert_id(&root.info, &[1], HashAlgorithm::Sha1);
    md5.hash_algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
    assert!(matches!(
        parse_request(&request_der(vec![md5], None)),
        Err(OcspError::UnsupportedHash { .. })
    ));
    let mut short = asn1_cert_id(&root.info, &[1], HashAlgorithm::Sha256);
    short.issuer_key_hash = OctetString::new(vec![0u8; 20]).expect("hash");
    assert!(matches!(
        parse_request(&request_der(vec![short], None)),
        Err(OcspError::HashLength {
            field: "issuerKeyHash",
            len: 20,
            expected: 32,
            ..
        })
    ));
    let mut params = asn1_cert_id(&root.info, &[1], HashAlgorithm::Sha1);
    params.hash_algorithm.parameters = Some(der::Any::encode_from(&5u8).expect("any"));
    assert!(matches!(
        parse_request(&request_der(vec![params], None)),
        Err(OcspError::HashParameters { .. })
    ));
}

#[tokio::test]
async fn unknown_critical_extensions_duplicates_and_long_lists_are_refused_and_others_ignored() {
    let root = root("Signet Test Root").await;
    let id = asn1_cert_id(&root.info, &[1], HashAlgorithm::Sha1);
    let other = |critical| Extension {
        extn_id: ObjectIdentifier::new_unwrap("1.2.3.4"),
        critical,
        extn_value: OctetString::new(vec![1]).expect("value"),
    };
    let der = request_der(vec![id.clone()], Some(vec![other(false)]));
    assert_eq!(parse_request(&der).expect("ignored").nonce, None);
    let der = request_der(vec![id.clone()], Some(vec![other(true)]));
    assert!(matches!(
        parse_request(&der),
        Err(OcspError::UnsupportedCriticalExtension { .. })
    ));
    // A critical nonce is understood.
    let der = request_der(vec![id.clone()], Some(vec![nonce_extension(&[1], true)]));
    assert_eq!(parse_request(&der).expect("parses").nonce, Some(vec![1]));
    let many: Vec<Extension> = (0..=MAX_EXTENSIONS as u32)
        .map(|i| Extension {
            extn_id: ObjectIdentifier::new(&format!("1.2.3.{i}")).expect("oid"),
            ..other(false)
        })
        .collect();
    assert!(matches!(
        parse_request(&request_der(vec![id.clone()], Some(many))),
        Err(OcspError::TooManyExtensions { count: 17, max: 16 })
    ));
    let der = request_der(
        vec![id],
        Some(vec![
            nonce_extension(&[1], false),
            nonce_extension(&[2], false),
        ]),
    );
    assert!(matches!(
        parse_request(&der),
        Err(OcspError::DuplicateExtension { .. })
    ));
}

/// A small deterministic generator (xorshift), so failures reproduce.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test]
async fn garbage_truncations_and_bit_flips_are_errors_not_panics() {
    let root = root("Signet Test Root").await;
    let nonce = OctetString::new(vec![3u8; 16])
        .expect("nonce")
        .to_der()
        .expect("der");
    let valid = request_der(
        vec![
            asn1_cert_id(&root.info, &[1, 2, 3], HashAlgorithm::Sha1),
            asn1_cert_id(&root.info, &[4, 5, 6], HashAlgorithm::Sha256),
        ],
        Some(vec![nonce_extension(&nonce, false)]),
    );
    parse_request(&valid).expect("the original parses");
    for len in 0..valid.len() {
        assert!(parse_request(&valid[..len]).is_err(), "truncated to {len}");
    }
    let mut extended = valid.clone();
    extended.push(0);
    assert!(parse_request(&extended).is_err(), "trailing byte");
    let mut seed = 0x5eed_0f0c_5b00_u64;
    for _ in 0..20_000 {
        let mut m = valid.clone();
        for _ in 0..1 + xorshift(&mut seed) % 4 {
            let i = (xorshift(&mut seed) as usize) % m.len();
            m[i] ^= 1 << (xorshift(&mut seed) % 8);
        }
        if let Ok(req) = parse_request(&m) {
            for id in &req.certs {
                assert!(m.windows(id.der().len()).any(|w| w == id.der()));
            }
        }
    }
    for _ in 0..5_000 {
        let len = (xorshift(&mut seed) % 300) as usize;
        let junk: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
        let _ = parse_request(&junk);
        let _ = decode_get(&String::from_utf8_lossy(&junk));
    }
}

#[tokio::test]
async fn a_get_path_decodes_with_or_without_percent_encoding_and_padding() {
    let root = root("Signet Test Root").await;
    // Serials of 2 and 3 bytes (one of the two lengths needs padding),
    // varied until the base64 text contains '+', '/' and '='.
    let der = (0x0100u16..=0xffff)
        .flat_map(|n| {
            let [a, b] = n.to_be_bytes();
            [vec![a, b], vec![a, b, 1]]
        })
        .map(|serial| {
            request_der(
                vec![asn1_cert_id(&root.info, &serial, HashAlgorithm::Sha1)],
                None,
            )
        })
        .find(|d| {
            let b = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, d);
            b.contains('+') && b.contains('/') && b.ends_with('=')
        })
        .expect("some request encodes with + / =");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2f")
        .replace('=', "%3D");
    for path in [b64.clone(), encoded, b64.trim_end_matches('=').to_string()] {
        assert_eq!(decode_get(&path).expect(&path), der, "{path}");
    }
    parse_request(&decode_get(&b64).expect("decodes")).expect("parses");
    for bad in ["", "%", "%2", "%zz", "ab-_", "a b"] {
        assert!(decode_get(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn error_responses_carry_only_their_status() {
    use x509_ocsp::OcspResponseStatus as S;
    for (status, code, want) in [
        (ErrorStatus::MalformedRequest, 1, S::MalformedRequest),
        (ErrorStatus::InternalError, 2, S::InternalError),
        (ErrorStatus::TryLater, 3, S::TryLater),
        (ErrorStatus::Unauthorized, 6, S::Unauthorized),
    ] {
        assert_eq!(status.code(), code);
        let resp = x509_ocsp::OcspResponse::from_der(&error_response(status)).expect("decodes");
        assert_eq!(resp.response_status, want);
        assert!(resp.response_bytes.is_none());
    }
}
