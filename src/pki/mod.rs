//! X.509 certificate and CRL building, signed by a [`Signer`] (a KMS key).
//!
//! Pure functions of (request, issuer, clock): the current time is always
//! passed in as `now`, never read here. Each artifact costs exactly one
//! `Signer::sign_digest` call.
//!
//! | entry point | produces |
//! |---|---|
//! | [`issue_root`]`(signer, &CaRequest, now)` | self-signed root CA ([`IssuedCert`]) |
//! | [`issue_intermediate`]`(&parent, parent_signer, &CaRequest, subject_spki, now)` | intermediate CA ([`IssuedCert`]) |
//! | [`issue_leaf`]`(&issuer, signer, &LeafRequest, now)` | end-entity cert + new key ([`IssuedLeaf`]) |
//! | [`issue_leaf_for_key`]`(&issuer, signer, &LeafRequest, spki, now)` | end-entity cert for a CSR's key ([`IssuedCert`]) |
//! | [`sign_crl`]`(&issuer, signer, &CrlRequest, now)` | v2 CRL ([`SignedCrl`]) |
//!
//! An issuer is described by [`IssuerInfo`], parsed from the CA certificate
//! plus an [`IssuerProfile`] (CRL/OCSP/caIssuers URLs, maximum duration).
//!
//! Invalid requests fail with [`PkiError::Invalid`], listing every problem
//! as a [`FieldError`] that names the field (cert-manager spelling, e.g.
//! `dnsNames[2]`), shows the value and says how to fix it.
//!
//! [`Signer`]: crate::kms::Signer

mod crl;
mod csr;
mod der;
mod error;
mod from_api;
mod issue;
mod issuer;
mod keys;
pub mod ocsp;
pub mod parse;
mod request;
mod sign;
mod validate;

pub use crl::{SignedCrl, sign_crl};
pub use csr::{CsrContents, CsrError, contents_of_spki, parse_csr, parse_csr_der};
pub use error::PkiError;
pub use issue::{
    IssuedCert, IssuedLeaf, check_ca_request, check_leaf_request, issue_intermediate, issue_leaf,
    issue_leaf_for_key, issue_leaf_with_key, issue_root,
};
pub use issuer::{IssuerInfo, IssuerProfile};
pub use keys::{KeyAlgorithm, KeyEncoding, LeafKeyType, PrivateKeyPem, PrivateKeySpec};
pub use parse::{
    CertFacts, CrlEntryFacts, CrlFacts, KeyState, TlsContents, cert_facts, crl_facts,
    fingerprint_sha256, normalize_serial, read_tls, serial_hex, split_chain, verify_crl,
};
pub use request::{
    CaRequest, CrlRequest, LeafRequest, NameConstraintsSpec, NameSubtrees, RevocationReason,
    RevokedEntry, Subject, Usage,
};
pub use validate::{FieldError, FieldErrors, base_url_problem};

/// PEM with `\n` line endings (the `pem` crate defaults to CRLF).
pub(crate) fn to_pem(tag: &str, der: impl Into<Vec<u8>>) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.into()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Formats a duration the way users write them: `2160h`, `90m`, `30s`.
pub fn human_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    if secs != 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs != 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests;
