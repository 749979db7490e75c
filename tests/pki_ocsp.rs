//! OCSP against the real tools: requests are made by `openssl ocsp`, parsed
//! by Signet, answered with a delegated responder (an in-memory key whose
//! certificate the intermediate CA issued), and the responses are verified
//! by `openssl ocsp` and linted by pkilint's `lint_ocsp_response`.
//!
//! The CA keys are in-memory [`LocalSigner`]s: OCSP signing is the same
//! `Signer::sign_digest` contract that `tests/pki_kms.rs` exercises against
//! local-kms.

mod pki_common;

use std::path::PathBuf;

use ::time::{Duration, OffsetDateTime};
use pki_common::assert_pkilint_clean;
use signet::kms::{KeySpec, LocalSigner, Signer};
use signet::pki::ocsp::{
    self, CertStatus, ErrorStatus, OcspRequest, Responder, SingleAnswer, decode_get, parse_request,
};
use signet::pki::{
    self, CaRequest, IssuedLeaf, IssuerInfo, IssuerProfile, LeafRequest, RevocationReason, Subject,
    Usage,
};
use signet_testenv::tools;

/// A root, an intermediate with a delegated OCSP responder, and two leaves
/// of the intermediate; every certificate also written to a PEM file.
struct Pki {
    root_signer: LocalSigner,
    root: IssuerInfo,
    int_signer: LocalSigner,
    int: IssuerInfo,
    responder_key: LocalSigner,
    responder_cert: Vec<u8>,
    good_leaf: IssuedLeaf,
    revoked_leaf: IssuedLeaf,
    root_pem: PathBuf,
    int_pem: PathBuf,
    responder_pem: PathBuf,
    now: OffsetDateTime,
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn ca_request(cn: &str, days: i64) -> CaRequest {
    CaRequest {
        subject: Subject {
            common_name: Some(cn.into()),
            organizations: vec!["Signet Test".into()],
            countries: vec!["DE".into()],
            ..Default::default()
        },
        duration: Duration::days(days),
        path_len: None,
        name_constraints: None,
    }
}

fn profile(name: &str) -> IssuerProfile {
    IssuerProfile {
        crl_distribution_points: vec![format!("http://pki.signet.example.com/crl/{name}.crl")],
        ocsp_servers: vec![format!("http://pki.signet.example.com/ocsp/{name}")],
        issuing_certificate_urls: vec![format!("http://pki.signet.example.com/ca/{name}.crt")],
        ..Default::default()
    }
}

async fn pki() -> Pki {
    let now = OffsetDateTime::now_utc();
    let root_signer = LocalSigner::generate(KeySpec::EccNistP384, "local:root").expect("root key");
    let root_cert = pki::issue_root(
        &root_signer,
        &ca_request("Signet OCSP Test Root", 3650),
        now,
    )
    .await
    .expect("root");
    let root = IssuerInfo::from_der(&root_cert.cert_der, profile("root")).expect("root info");
    let int_signer = LocalSigner::generate(KeySpec::EccNistP256, "local:int").expect("int key");
    let int_cert = pki::issue_intermediate(
        &root,
        &root_signer,
        &ca_request("Signet OCSP Test Intermediate", 1825),
        int_signer.public_key_spki_der(),
        now,
    )
    .await
    .expect("intermediate");
    let int = IssuerInfo::from_der(&int_cert.cert_der, profile("int")).expect("int info");

    let responder_key =
        LocalSigner::generate(KeySpec::EccNistP256, "memory:ocsp-responder").expect("key");
    let responder = ocsp::issue_responder(
        &int,
        &int_signer,
        responder_key.public_key_spki_der(),
        Duration::days(7),
        now,
    )
    .await
    .expect("responder certificate");

    let leaf = |cn: &str| LeafRequest {
        subject: Subject::cn(cn),
        dns_names: vec![cn.to_string()],
        usages: vec![Usage::ServerAuth],
        ..Default::default()
    };
    let good_leaf = pki::issue_leaf(&int, &int_signer, &leaf("good.signet.example.com"), now)
        .await
        .expect("good leaf");
    let revoked_leaf = pki::issue_leaf(&int, &int_signer, &leaf("revoked.signet.example.com"), now)
        .await
        .expect("revoked leaf");
    Pki {
        root_pem: tools::artifact("root.pem", root.cert_pem().as_bytes()),
        int_pem: tools::artifact("int.pem", int.cert_pem().as_bytes()),
        responder_pem: tools::artifact("responder.pem", responder.cert_pem.as_bytes()),
        root_signer,
        root,
        int_signer,
        int,
        responder_key,
        responder_cert: responder.cert_der,
        good_leaf,
        revoked_leaf,
        now,
    }
}

impl Pki {
    fn responder(&self) -> Responder<'_> {
        Responder::delegated(&self.int, &self.responder_key, &self.responder_cert)
            .expect("delegated responder")
    }
}

/// How a request is made.
#[derive(Debug, Clone, Copy)]
struct Ask {
    sha256: bool,
    nonce: bool,
}

const ASKS: [Ask; 2] = [
    Ask {
        sha256: false,
        nonce: true,
    },
    Ask {
        sha256: true,
        nonce: false,
    },
];

fn run_openssl(args: &[String]) -> (bool, String) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tools::openssl(&refs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `openssl ocsp -issuer ISSUER -serial 0xSERIAL -reqout` → the DER request.
fn openssl_request(issuer_pem: &std::path::Path, serial_hex: &str, ask: Ask) -> (Vec<u8>, PathBuf) {
    let req = tools::artifact("request.der", b"");
    let mut a = args(&["ocsp", "-issuer", &path(issuer_pem)]);
    if ask.sha256 {
        a.push("-sha256".into());
    }
    a.extend(args(&[
        "-serial",
        &format!("0x{serial_hex}"),
        "-reqout",
        &path(&req),
    ]));
    if !ask.nonce {
        a.push("-no_nonce".into());
    }
    let (ok, text) = run_openssl(&a);
    assert!(ok, "openssl ocsp -reqout failed: {text}");
    (std::fs::read(&req).expect("request written"), req)
}

/// Parses an openssl request and checks what Signet read from it.
fn parse(der: &[u8], ask: Ask, serial_hex: &str) -> OcspRequest {
    let req = parse_request(der).unwrap_or_else(|e| panic!("parse_request: {e}"));
    assert_eq!(req.certs.len(), 1);
    let id = &req.certs[0];
    assert_eq!(id.serial_hex(), serial_hex);
    let want = if ask.sha256 {
        ocsp::HashAlgorithm::Sha256
    } else {
        ocsp::HashAlgorithm::Sha1
    };
    assert_eq!(id.hash_algorithm(), want);
    assert_eq!(req.nonce.is_some(), ask.nonce, "nonce presence");
    req
}

/// What `openssl ocsp` prints for a response: the verification of the
/// signature, chain and nonce against the original request (`-reqin`,
/// `-resp_text`), then the per-serial summary for a CertID openssl computes
/// itself from `-issuer`/`-serial`.
struct Verified {
    full: String,
    summary: String,
}

fn openssl_verify_response(
    p: &Pki,
    resp: &[u8],
    req_file: &std::path::Path,
    serial_hex: &str,
    ask: Ask,
    trust: &[&str],
) -> Verified {
    let resp_file = tools::artifact("response.der", resp);
    let mut a = args(&[
        "ocsp",
        "-respin",
        &path(&resp_file),
        "-reqin",
        &path(req_file),
        "-no_nonce",
        "-resp_text",
    ]);
    a.extend(args(trust));
    let (ok, full) = run_openssl(&a);
    assert!(ok, "openssl ocsp -respin -reqin failed:\n{full}");
    assert!(full.contains("Response verify OK"), "{full}");
    assert!(
        !full.contains("WARNING") && !full.contains("error"),
        "nonce or verification problem:\n{full}"
    );

    let mut a = args(&[
        "ocsp",
        "-respin",
        &path(&resp_file),
        "-issuer",
        &path(&p.int_pem),
    ]);
    if ask.sha256 {
        a.push("-sha256".into());
    }
    a.extend(args(&["-serial", &format!("0x{serial_hex}"), "-no_nonce"]));
    a.extend(args(trust));
    let (ok, summary) = run_openssl(&a);
    assert!(
        ok,
        "openssl ocsp -respin -issuer -serial failed:\n{summary}"
    );
    assert!(summary.contains("Response verify OK"), "{summary}");
    Verified { full, summary }
}

/// openssl's spelling of a time: `Nov 27 12:00:00 2026 GMT`.
fn openssl_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(::time::UtcOffset::UTC);
    let month = t.month().to_string();
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        &month[..3],
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

/// The trust arguments for a delegated responder: the root is the anchor,
/// the intermediate is known, the responder certificate comes in the
/// response.
fn chain_trust(p: &Pki) -> Vec<String> {
    args(&[
        "-CAfile",
        &path(&p.root_pem),
        "-verify_other",
        &path(&p.int_pem),
    ])
}

fn answer(req: &OcspRequest, status: CertStatus, now: OffsetDateTime) -> SingleAnswer {
    SingleAnswer {
        cert_id: req.certs[0].clone(),
        status,
        this_update: now - Duration::minutes(1),
        next_update: Some(now + Duration::hours(12)),
    }
}

async fn answer_and_verify(p: &Pki, serial_hex: &str, status: CertStatus, ask: Ask) -> Verified {
    let (der, req_file) = openssl_request(&p.int_pem, serial_hex, ask);
    let req = parse(&der, ask, serial_hex);
    assert!(req.certs[0].matches_issuer(&p.int), "{ask:?}: intermediate");
    assert!(!req.certs[0].matches_issuer(&p.root), "{ask:?}: root");
    let single = answer(&req, status, p.now);
    let resp = ocsp::sign_response(&p.responder(), &[single], req.nonce.as_deref(), p.now)
        .await
        .expect("signs");
    assert_pkilint_clean(
        &format!("OCSP {status:?} {ask:?}"),
        &tools::pkilint_ocsp(&resp),
    );
    let trust = chain_trust(p);
    let trust: Vec<&str> = trust.iter().map(String::as_str).collect();
    let v = openssl_verify_response(p, &resp, &req_file, serial_hex, ask, &trust);
    let this_update = openssl_time(p.now - Duration::minutes(1));
    let next_update = openssl_time(p.now + Duration::hours(12));
    for text in [&v.full, &v.summary] {
        assert!(
            text.contains(&format!("This Update: {this_update}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("Next Update: {next_update}")),
            "{text}"
        );
    }
    let nonce_line = v.full.contains("OCSP Nonce");
    assert_eq!(
        nonce_line, ask.nonce,
        "nonce echoed only when asked:\n{}",
        v.full
    );
    v
}

#[tokio::test]
async fn a_good_serial_is_answered_good_and_openssl_verifies_the_delegated_signature() {
    let p = pki().await;
    for ask in ASKS {
        let serial = p.good_leaf.serial_hex.clone();
        let v = answer_and_verify(&p, &serial, CertStatus::Good, ask).await;
        assert!(
            v.summary.contains(&format!("0x{serial}: good")),
            "{ask:?}:\n{}",
            v.summary
        );
        assert!(v.full.contains("Cert Status: good"), "{}", v.full);
    }
}

#[tokio::test]
async fn a_revoked_serial_is_answered_revoked_with_time_and_reason_and_openssl_verifies_it() {
    let p = pki().await;
    let revoked_at = p.now - Duration::hours(3);
    for ask in ASKS {
        let serial = p.revoked_leaf.serial_hex.clone();
        let status = CertStatus::Revoked {
            at: revoked_at,
            reason: Some(RevocationReason::KeyCompromise),
        };
        let v = answer_and_verify(&p, &serial, status, ask).await;
        assert!(
            v.summary.contains(&format!("0x{serial}: revoked")),
            "{ask:?}:\n{}",
            v.summary
        );
        assert!(v.summary.contains("Reason: keyCompromise"), "{}", v.summary);
        assert!(
            v.summary
                .contains(&format!("Revocation Time: {}", openssl_time(revoked_at))),
            "{}",
            v.summary
        );
        assert!(v.full.contains("Cert Status: revoked"), "{}", v.full);
    }
}

#[tokio::test]
async fn an_unknown_serial_is_answered_unknown_and_openssl_verifies_it() {
    let p = pki().await;
    for ask in ASKS {
        // A serial the intermediate never issued.
        let serial = "5e7e0000000000000000000000000001";
        let v = answer_and_verify(&p, serial, CertStatus::Unknown, ask).await;
        assert!(
            v.summary.contains(&format!("0x{serial}: unknown")),
            "{ask:?}:\n{}",
            v.summary
        );
        assert!(v.full.contains("Cert Status: unknown"), "{}", v.full);
    }
}

#[tokio::test]
async fn a_request_made_from_the_certificate_itself_names_its_serial() {
    let p = pki().await;
    let leaf = tools::artifact("leaf.pem", p.good_leaf.cert_pem.as_bytes());
    let req_file = tools::artifact("request.der", b"");
    let (ok, text) = run_openssl(&args(&[
        "ocsp",
        "-issuer",
        &path(&p.int_pem),
        "-cert",
        &path(&leaf),
        "-reqout",
        &path(&req_file),
    ]));
    assert!(ok, "{text}");
    let req = parse_request(&std::fs::read(&req_file).expect("request")).expect("parses");
    assert_eq!(req.certs[0].serial_hex(), p.good_leaf.serial_hex);
    assert!(req.certs[0].matches_issuer(&p.int));
}

#[tokio::test]
async fn a_request_for_a_certificate_of_another_ca_does_not_match_and_is_not_answered_good() {
    let p = pki().await;
    let ask = ASKS[0];
    // Asked about the intermediate's own serial, as a child of the root.
    let (der, _) = openssl_request(&p.root_pem, "01", ask);
    let req = parse(&der, ask, "01");
    assert!(
        !req.certs[0].matches_issuer(&p.int),
        "not the intermediate's"
    );
    assert!(req.certs[0].matches_issuer(&p.root), "the root's");
    let err = ocsp::sign_response(
        &p.responder(),
        &[answer(&req, CertStatus::Good, p.now)],
        req.nonce.as_deref(),
        p.now,
    )
    .await
    .expect_err("the intermediate's responder does not vouch for the root's certificates");
    assert!(
        err.field_errors()
            .is_some_and(|e| e.mentions("answers[0].certId")),
        "{err}"
    );
}

#[tokio::test]
async fn a_response_signed_by_the_ca_key_verifies_without_a_responder_certificate() {
    let p = pki().await;
    let ask = ASKS[0];
    let serial = p.good_leaf.serial_hex.clone();
    let (der, req_file) = openssl_request(&p.int_pem, &serial, ask);
    let req = parse(&der, ask, &serial);
    let responder = Responder::ca(&p.int, &p.int_signer).expect("CA responder");
    let resp = ocsp::sign_response(
        &responder,
        &[answer(&req, CertStatus::Good, p.now)],
        req.nonce.as_deref(),
        p.now,
    )
    .await
    .expect("signs");
    assert_pkilint_clean("OCSP signed by the CA", &tools::pkilint_ocsp(&resp));
    let trust = chain_trust(&p);
    let trust: Vec<&str> = trust.iter().map(String::as_str).collect();
    let v = openssl_verify_response(&p, &resp, &req_file, &serial, ask, &trust);
    assert!(v.summary.contains(": good"), "{}", v.summary);
    let _ = &p.root_signer;
}

#[tokio::test]
async fn a_responder_trusted_directly_with_vafile_verifies() {
    let p = pki().await;
    let ask = ASKS[1];
    let serial = p.good_leaf.serial_hex.clone();
    let (der, req_file) = openssl_request(&p.int_pem, &serial, ask);
    let req = parse(&der, ask, &serial);
    let resp = ocsp::sign_response(
        &p.responder(),
        &[answer(&req, CertStatus::Good, p.now)],
        None,
        p.now,
    )
    .await
    .expect("signs");
    let va = path(&p.responder_pem);
    let v = openssl_verify_response(&p, &resp, &req_file, &serial, ask, &["-VAfile", &va]);
    assert!(v.summary.contains(": good"), "{}", v.summary);
}

#[tokio::test]
async fn the_responder_certificate_chains_to_the_root_for_ocsp_signing_and_is_pkilint_clean() {
    let p = pki().await;
    let responder_pem = std::fs::read_to_string(&p.responder_pem).expect("pem");
    assert_pkilint_clean(
        "OCSP responder certificate",
        &tools::pkilint_cert(responder_pem.as_bytes()),
    );
    let verified = tools::openssl_verify(
        &p.root.cert_pem(),
        &p.int.cert_pem(),
        &responder_pem,
        Some("ocsphelper"),
    );
    if let Err(out) = verified {
        panic!("openssl verify -purpose ocsphelper failed:\n{out}");
    }
    let (ok, text) = run_openssl(&args(&[
        "x509",
        "-in",
        &path(&p.responder_pem),
        "-noout",
        "-text",
    ]));
    assert!(ok, "{text}");
    for want in [
        "Subject: C = DE, O = Signet Test, CN = Signet OCSP Test Intermediate OCSP Responder",
        "OCSP Signing",
        "OCSP No Check",
        "Digital Signature",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    assert!(!text.contains("Subject Alternative Name"), "{text}");
}

#[tokio::test]
async fn error_responses_are_read_by_openssl_with_their_status() {
    for (status, name) in [
        (ErrorStatus::MalformedRequest, "malformedrequest (1)"),
        (ErrorStatus::InternalError, "internalerror (2)"),
        (ErrorStatus::TryLater, "trylater (3)"),
        (ErrorStatus::Unauthorized, "unauthorized (6)"),
    ] {
        let der = ocsp::error_response(status);
        assert_pkilint_clean(&format!("OCSP {status:?}"), &tools::pkilint_ocsp(&der));
        let file = tools::artifact("error.der", &der);
        let (_, text) = run_openssl(&args(&["ocsp", "-respin", &path(&file), "-resp_text"]));
        assert!(
            text.to_lowercase().contains(name),
            "{status:?}: openssl printed:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_get_path_of_an_openssl_request_decodes_to_the_same_request() {
    let p = pki().await;
    let ask = ASKS[0];
    let serial = p.revoked_leaf.serial_hex.clone();
    let (der, _) = openssl_request(&p.int_pem, &serial, ask);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for segment in [b64, encoded] {
        let decoded = decode_get(&segment).expect("decodes");
        assert_eq!(decoded, der);
        parse(&decoded, ask, &serial);
    }
}
