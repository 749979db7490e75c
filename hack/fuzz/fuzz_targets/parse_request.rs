//! Fuzzes the OCSP request parser: `parse_request` on the input as DER,
//! and `decode_get` + `parse_request` on the input as a GET path.
//!
//! Beyond "no panic, no hang, no unbounded allocation", every accepted
//! request must respect the documented bounds, and each CertID's DER (which
//! responses echo) must be bytes the client sent.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/pki/ocsp/request.rs"]
mod request;

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Ok(path) = std::str::from_utf8(data)
        && let Ok(der) = request::decode_get(path)
    {
        assert!(!der.is_empty() && der.len() <= request::MAX_REQUEST_LEN);
        check(&der);
    }
});

fn check(der: &[u8]) {
    let Ok(req) = request::parse_request(der) else {
        return;
    };
    assert!(der.len() <= request::MAX_REQUEST_LEN);
    assert!((1..=request::MAX_CERTS).contains(&req.certs.len()));
    for id in &req.certs {
        let len = id.hash_algorithm().output_len();
        assert_eq!(id.issuer_name_hash().len(), len);
        assert_eq!(id.issuer_key_hash().len(), len);
        assert!(!id.serial().is_empty());
        assert!(
            der.windows(id.der().len()).any(|w| w == id.der()),
            "CertID DER is not a part of the request"
        );
    }
    if let Some(nonce) = &req.nonce {
        assert!(!nonce.is_empty() && nonce.len() <= request::MAX_NONCE_LEN + 2);
        assert!(der.windows(nonce.len()).any(|w| w == nonce.as_slice()));
    }
}
