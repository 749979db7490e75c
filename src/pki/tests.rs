//! Unit tests of the pure PKI core with an in-process signer. The same
//! paths are exercised against local-kms and real validators in
//! `tests/pki.rs`.

use ::time::{Duration, OffsetDateTime};
use x509_parser::prelude::*;

use super::*;
use crate::kms::{KeySpec, LocalSigner};
use crate::kms::{SigAlg, Signer};

fn soft(alg: SigAlg) -> LocalSigner {
    let spec = match alg {
        SigAlg::EcdsaP256Sha256 => KeySpec::EccNistP256,
        SigAlg::EcdsaP384Sha384 => KeySpec::EccNistP384,
        SigAlg::RsaPkcs1Sha256 => KeySpec::Rsa2048,
    };
    LocalSigner::generate(spec, "soft:test").expect("key")
}

/// 2026-11-27T12:00:00Z.
const NOW_UNIX: i64 = 1_795_780_800;

fn now_whole() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW_UNIX).expect("valid timestamp")
}

/// `now` with a sub-second part, to check truncation.
fn now_at() -> OffsetDateTime {
    now_whole() + Duration::milliseconds(500)
}

fn root_req() -> CaRequest {
    CaRequest {
        subject: Subject {
            common_name: Some("Signet Test Root".into()),
            organizations: vec!["Signet".into()],
            countries: vec!["DE".into()],
            ..Default::default()
        },
        duration: Duration::days(3650),
        path_len: Some(1),
        name_constraints: None,
    }
}

struct Chain {
    root_signer: LocalSigner,
    root: IssuerInfo,
    int_signer: LocalSigner,
    int: IssuerInfo,
}

async fn chain(alg: SigAlg) -> Chain {
    let root_signer = soft(alg);
    let root_cert = issue_root(&root_signer, &root_req(), now_at())
        .await
        .expect("root");
    let root = IssuerInfo::from_der(
        &root_cert.cert_der,
        IssuerProfile {
            crl_distribution_points: vec!["http://pki.example/root.crl".into()],
            issuing_certificate_urls: vec!["http://pki.example/root.crt".into()],
            ..Default::default()
        },
    )
    .expect("root info");
    let int_signer = soft(SigAlg::EcdsaP256Sha256);
    let int_req = CaRequest {
        subject: Subject::cn("Signet Test Intermediate"),
        duration: Duration::days(5000),
        path_len: None,
        name_constraints: Some(NameConstraintsSpec {
            permitted: NameSubtrees {
                dns_domains: vec!["example.com".into()],
                ip_ranges: vec!["10.0.0.0/8".into()],
                email_addresses: vec![".example.com".into()],
            },
            excluded: NameSubtrees::default(),
        }),
    };
    let int_cert = issue_intermediate(
        &root,
        &root_signer,
        &int_req,
        int_signer.public_key_spki_der(),
        now_at(),
    )
    .await
    .expect("intermediate");
    assert!(int_cert.clamped, "5000 days is past the root's 3650 days");
    assert_eq!(int_cert.not_after, root.not_after());
    let int = IssuerInfo::from_der(
        &int_cert.cert_der,
        IssuerProfile {
            crl_distribution_points: vec!["http://pki.example/int.crl".into()],
            ocsp_servers: vec!["http://ocsp.pki.example".into()],
            issuing_certificate_urls: vec!["http://pki.example/int.crt".into()],
            policy_oids: vec!["2.23.140.1.2.1".into()],
            max_duration: Some(Duration::days(398)),
        },
    )
    .expect("int info");
    assert_eq!(int.path_len(), Some(0), "pathLen defaults to parent - 1");
    Chain {
        root_signer,
        root,
        int_signer,
        int,
    }
}

fn server_req() -> LeafRequest {
    LeafRequest {
        subject: Subject::cn("www.example.com"),
        dns_names: vec!["www.example.com".into(), "*.api.example.com".into()],
        ip_addresses: vec!["10.1.2.3".into(), "2001:db8::1".into()],
        usages: vec![Usage::ServerAuth],
        ..Default::default()
    }
}

fn verify_signed_by(child_der: &[u8], parent_der: &[u8]) {
    let (_, child) = X509Certificate::from_der(child_der).expect("child parses");
    let (_, parent) = X509Certificate::from_der(parent_der).expect("parent parses");
    child
        .verify_signature(Some(parent.public_key()))
        .expect("signature verifies");
    assert_eq!(child.issuer(), parent.subject());
}

#[tokio::test]
async fn chain_for_every_ca_algorithm() {
    for alg in [
        SigAlg::EcdsaP256Sha256,
        SigAlg::EcdsaP384Sha384,
        SigAlg::RsaPkcs1Sha256,
    ] {
        let c = chain(alg).await;
        verify_signed_by(c.root.cert_der(), c.root.cert_der());
        verify_signed_by(c.int.cert_der(), c.root.cert_der());
        let leaf = issue_leaf(&c.int, &c.int_signer, &server_req(), now_at())
            .await
            .expect("leaf");
        verify_signed_by(&leaf.cert_der, c.int.cert_der());
        let _ = &c.root_signer;
    }
}

#[tokio::test]
async fn leaf_has_the_expected_extensions() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    let leaf = issue_leaf(&c.int, &c.int_signer, &server_req(), now_at())
        .await
        .expect("leaf");
    let (_, cert) = X509Certificate::from_der(&leaf.cert_der).expect("parses");
    // Serial: 128-bit random, positive, reported as hex.
    assert!(leaf.serial_hex.len() <= 32 && leaf.serial_hex.len() >= 16);
    assert_eq!(
        cert.tbs_certificate.serial.to_str_radix(16),
        leaf.serial_hex.trim_start_matches('0')
    );
    assert_eq!(leaf.serial_hex.len() % 2, 0);
    assert!(cert.tbs_certificate.raw_serial().len() <= 17);
    // Validity starts at now (whole seconds).
    assert_eq!(leaf.not_before, now_whole());
    assert_eq!(leaf.not_after, leaf.not_before + Duration::days(90));
    assert!(!leaf.clamped);
    let bc = cert.basic_constraints().expect("bc").expect("present");
    assert!(bc.critical && !bc.value.ca);
    let ku = cert.key_usage().expect("ku").expect("present");
    assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_encipherment());
    let eku = cert.extended_key_usage().expect("eku").expect("present");
    assert!(eku.value.server_auth && !eku.value.client_auth);
    let san = cert
        .subject_alternative_name()
        .expect("san")
        .expect("present");
    assert_eq!(san.value.general_names.len(), 4);
    let mut has_aki = false;
    let mut has_ski = false;
    let mut has_aia = false;
    let mut has_cdp = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                has_aki = true;
                assert_eq!(aki.key_identifier.as_ref().map(|k| k.0), Some(c.int.ski()));
            }
            ParsedExtension::SubjectKeyIdentifier(_) => has_ski = true,
            ParsedExtension::AuthorityInfoAccess(aia) => {
                has_aia = true;
                assert_eq!(aia.accessdescs.len(), 2);
            }
            ParsedExtension::CRLDistributionPoints(_) => has_cdp = true,
            _ => {}
        }
    }
    assert!(has_aki && has_ski && has_aia && has_cdp);
    let policies = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::CertificatePolicies(p) => Some(p.len()),
            _ => None,
        });
    assert_eq!(policies, Some(1));
    assert!(!leaf.cert_pem.contains('\r') && !leaf.key.expose_secret().contains('\r'));
    assert_eq!(format!("{:?}", leaf.key), "<redacted>");
    assert!(
        leaf.key
            .expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
}

#[tokio::test]
async fn every_leaf_key_type_issues() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    for (algorithm, size, encoding) in [
        (KeyAlgorithm::Ecdsa, None, KeyEncoding::Pkcs8),
        (KeyAlgorithm::Ecdsa, Some(384), KeyEncoding::Pkcs8),
        (KeyAlgorithm::Ed25519, None, KeyEncoding::Pkcs8),
        (KeyAlgorithm::Rsa, None, KeyEncoding::Pkcs1),
        (KeyAlgorithm::Rsa, Some(3072), KeyEncoding::Pkcs8),
    ] {
        let req = LeafRequest {
            private_key: PrivateKeySpec {
                algorithm,
                size,
                encoding,
            },
            ..server_req()
        };
        let leaf = issue_leaf(&c.int, &c.int_signer, &req, now_at())
            .await
            .unwrap_or_else(|e| panic!("{algorithm:?} {size:?}: {e}"));
        verify_signed_by(&leaf.cert_der, c.int.cert_der());
        let (_, cert) = X509Certificate::from_der(&leaf.cert_der).expect("parses");
        let ku = cert.key_usage().expect("ku").expect("present");
        assert_eq!(
            ku.value.key_encipherment(),
            algorithm == KeyAlgorithm::Rsa,
            "{algorithm:?}"
        );
    }
}

#[tokio::test]
async fn reissue_with_the_existing_key_for_every_key_type() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    for (algorithm, size, encoding) in [
        (KeyAlgorithm::Ecdsa, None, KeyEncoding::Pkcs8),
        (KeyAlgorithm::Ecdsa, Some(384), KeyEncoding::Pkcs8),
        (KeyAlgorithm::Ed25519, None, KeyEncoding::Pkcs8),
        (KeyAlgorithm::Rsa, None, KeyEncoding::Pkcs1),
        (KeyAlgorithm::Rsa, None, KeyEncoding::Pkcs8),
    ] {
        let req = LeafRequest {
            private_key: PrivateKeySpec {
                algorithm,
                size,
                encoding,
            },
            ..server_req()
        };
        let first = issue_leaf(&c.int, &c.int_signer, &req, now_at())
            .await
            .expect("first");
        let again = issue_leaf_with_key(&c.int, &c.int_signer, &req, &first.key, now_at())
            .await
            .unwrap_or_else(|e| panic!("{algorithm:?} {encoding:?}: {e}"));
        let spki = |der: &[u8]| {
            let (_, cert) = X509Certificate::from_der(der).expect("parses");
            cert.public_key().raw.to_vec()
        };
        assert_eq!(spki(&first.cert_der), spki(&again.cert_der));
        assert_ne!(first.serial_hex, again.serial_hex);
        verify_signed_by(&again.cert_der, c.int.cert_der());
    }
    // A key of another type is refused with the field named.
    let p256 = issue_leaf(&c.int, &c.int_signer, &server_req(), now_at())
        .await
        .expect("p256");
    let rsa_req = LeafRequest {
        private_key: PrivateKeySpec {
            algorithm: KeyAlgorithm::Rsa,
            ..Default::default()
        },
        ..server_req()
    };
    let err = issue_leaf_with_key(&c.int, &c.int_signer, &rsa_req, &p256.key, now_at())
        .await
        .expect_err("mismatch");
    assert!(
        err.field_errors().expect("fields").mentions("privateKey"),
        "{err}"
    );
}

#[tokio::test]
async fn validity_is_clamped_to_the_issuer() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    // 397 days before the intermediate expires: a 90-day leaf fits...
    let late = c.int.not_after() - Duration::days(30);
    let leaf = issue_leaf(&c.int, &c.int_signer, &server_req(), late)
        .await
        .expect("leaf");
    assert!(leaf.clamped);
    assert_eq!(leaf.not_after, c.int.not_after());
    // ... and after expiry nothing is issued.
    let err = issue_leaf(&c.int, &c.int_signer, &server_req(), c.int.not_after())
        .await
        .expect_err("expired issuer");
    assert_eq!(err.reason(), "IssuerExpired");
}

async fn leaf_error(req: LeafRequest) -> PkiError {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    issue_leaf(&c.int, &c.int_signer, &req, now_at())
        .await
        .expect_err("must be rejected")
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let long = format!("{}.example.com", vec!["a".repeat(60); 5].join("."));
    let cases: Vec<(LeafRequest, &str, &str)> = vec![
        (
            LeafRequest {
                dns_names: vec!["ok.example.com".into(), "bad name.example.com".into()],
                ..server_req()
            },
            "dnsNames[1]",
            "whitespace",
        ),
        (
            LeafRequest {
                dns_names: vec!["a..b.example.com".into()],
                ..server_req()
            },
            "dnsNames[0]",
            "empty label",
        ),
        (
            LeafRequest {
                dns_names: vec!["*.*.example.com".into()],
                ..server_req()
            },
            "dnsNames[0]",
            "leftmost",
        ),
        (
            LeafRequest {
                dns_names: vec![long],
                ..server_req()
            },
            "dnsNames[0]",
            "253",
        ),
        (
            LeafRequest {
                dns_names: vec!["bücher.example.com".into()],
                ..server_req()
            },
            "dnsNames[0]",
            "punycode",
        ),
        (
            LeafRequest {
                ip_addresses: vec!["10.0.0.256".into()],
                ..server_req()
            },
            "ipAddresses[0]",
            "IPv4 or IPv6",
        ),
        (
            LeafRequest {
                subject: Subject::default(),
                dns_names: vec![],
                ip_addresses: vec![],
                ..server_req()
            },
            "commonName",
            "empty request",
        ),
        (
            LeafRequest {
                duration: Duration::days(400),
                ..server_req()
            },
            "duration",
            "longer than the issuer allows",
        ),
        (
            LeafRequest {
                duration: Duration::ZERO,
                ..server_req()
            },
            "duration",
            "positive",
        ),
        (
            LeafRequest {
                private_key: PrivateKeySpec {
                    algorithm: KeyAlgorithm::Rsa,
                    size: Some(1024),
                    ..Default::default()
                },
                ..server_req()
            },
            "privateKey.size",
            "2048",
        ),
        (
            LeafRequest {
                uris: vec!["not a uri".into()],
                ..server_req()
            },
            "uris[0]",
            "",
        ),
        (
            LeafRequest {
                email_addresses: vec!["nobody".into()],
                ..server_req()
            },
            "emailAddresses[0]",
            "@",
        ),
    ];
    for (req, field, text) in cases {
        let err = leaf_error(req).await;
        assert_eq!(err.reason(), "InvalidRequest");
        assert!(!err.is_retryable());
        let fe = err.field_errors().expect("field errors");
        assert!(fe.mentions(field), "{field}: {err}");
        assert!(err.to_string().contains(text), "{field}: {err}");
    }
}

#[tokio::test]
async fn absurd_durations_are_rejected_not_wrapped() {
    let signer = soft(SigAlg::EcdsaP256Sha256);
    let err = issue_root(
        &signer,
        &CaRequest {
            duration: Duration::days(365 * 9000),
            ..root_req()
        },
        now_at(),
    )
    .await
    .expect_err("year > 9999");
    assert!(
        err.field_errors().expect("fields").mentions("duration"),
        "{err}"
    );
}

#[tokio::test]
async fn ocsp_signing_usage() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    let req = LeafRequest {
        subject: Subject::cn("Signet OCSP Responder"),
        usages: vec![Usage::OcspSigning],
        ..Default::default()
    };
    let leaf = issue_leaf(&c.int, &c.int_signer, &req, now_at())
        .await
        .expect("ocsp leaf");
    let (_, cert) = X509Certificate::from_der(&leaf.cert_der).expect("parses");
    let eku = cert.extended_key_usage().expect("eku").expect("present");
    assert!(eku.value.ocsp_signing && !eku.value.server_auth);
}

#[tokio::test]
async fn a_corrupted_signature_never_reaches_a_certificate() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    let bad = soft(SigAlg::EcdsaP256Sha256).corrupting();
    // Wrong key for the issuer: refused before signing.
    let err = issue_leaf(&c.int, &bad, &server_req(), now_at())
        .await
        .expect_err("key mismatch");
    assert_eq!(err.reason(), "IssuerKeyMismatch");
    // Right key but corrupted output: refused by verification.
    let err = issue_root(&bad, &root_req(), now_at())
        .await
        .expect_err("corrupt");
    assert_eq!(err.reason(), "SignatureMismatch");
}

#[tokio::test]
async fn path_len_is_enforced() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    let sub = soft(SigAlg::EcdsaP256Sha256);
    let err = issue_intermediate(
        &c.int,
        &c.int_signer,
        &CaRequest {
            subject: Subject::cn("too deep"),
            ..Default::default()
        },
        sub.public_key_spki_der(),
        now_at(),
    )
    .await
    .expect_err("pathLen 0");
    assert_eq!(err.reason(), "IssuerNotAllowed");
    let err = issue_intermediate(
        &c.root,
        &c.root_signer,
        &CaRequest {
            subject: Subject::cn("x"),
            path_len: Some(1),
            ..Default::default()
        },
        sub.public_key_spki_der(),
        now_at(),
    )
    .await
    .expect_err("pathLen too big");
    assert!(
        err.field_errors().expect("fields").mentions("pathLen"),
        "{err}"
    );
}

#[tokio::test]
async fn crl_with_entries() {
    let c = chain(SigAlg::EcdsaP384Sha384).await;
    let entries: Vec<RevokedEntry> = (1..=100u32)
        .map(|i| RevokedEntry {
            serial_hex: format!("{:032x}", u128::from(i) << 64),
            revoked_at: now_at() - Duration::hours(i64::from(i)),
            reason: if i % 2 == 0 {
                RevocationReason::KeyCompromise
            } else {
                RevocationReason::Unspecified
            },
            invalidity_date: None,
        })
        .collect();
    let req = CrlRequest {
        number: 42,
        this_update: now_at(),
        next_update: now_at() + Duration::days(1),
        entries,
        distribution_point: Some("http://pki.example/root.crl".into()),
    };
    let crl = sign_crl(&c.root, &c.root_signer, &req, now_at())
        .await
        .expect("crl");
    let (_, parsed) = CertificateRevocationList::from_der(&crl.der).expect("parses");
    assert_eq!(parsed.iter_revoked_certificates().count(), 100);
    assert_eq!(
        parsed.crl_number().map(|n| n.to_string()),
        Some("42".into())
    );
    let (_, root) = X509Certificate::from_der(c.root.cert_der()).expect("root");
    parsed
        .verify_signature(root.public_key())
        .expect("CRL signature verifies");

    let bad = CrlRequest {
        next_update: now_at() - Duration::days(1),
        entries: vec![RevokedEntry {
            serial_hex: "zz".into(),
            revoked_at: now_at(),
            reason: RevocationReason::Superseded,
            invalidity_date: None,
        }],
        ..req
    };
    let err = sign_crl(&c.root, &c.root_signer, &bad, now_at())
        .await
        .expect_err("invalid");
    let fe = err.field_errors().expect("fields");
    assert!(
        fe.mentions("nextUpdate") && fe.mentions("entries[0].serialNumber"),
        "{err}"
    );
}

#[test]
fn human_durations() {
    assert_eq!(human_duration(Duration::days(90)), "2160h");
    assert_eq!(human_duration(Duration::minutes(90)), "90m");
    assert_eq!(human_duration(Duration::seconds(5)), "5s");
}

#[tokio::test]
async fn a_leaf_for_a_csr_carries_exactly_the_requesters_key_for_every_key_type() {
    let c = chain(SigAlg::EcdsaP256Sha256).await;
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let key = rcgen::KeyPair::generate_for(alg).expect("requester key");
        let params = rcgen::CertificateParams::new(vec!["www.example.com".to_string()]).unwrap();
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let parsed = parse_csr(csr.as_bytes()).expect("csr");
        let req = LeafRequest {
            private_key: parsed.key,
            ..server_req()
        };
        let leaf = issue_leaf_for_key(&c.int, &c.int_signer, &req, &parsed.spki_der, now_at())
            .await
            .expect("leaf for the CSR key");
        verify_signed_by(&leaf.cert_der, c.int.cert_der());
        let (_, cert) = X509Certificate::from_der(&leaf.cert_der).unwrap();
        use rcgen::PublicKeyData as _;
        assert_eq!(parsed.spki_der, key.subject_public_key_info());
        assert_eq!(cert.public_key().raw, parsed.spki_der.as_slice());
        assert!(!cert.is_ca());
    }
}
