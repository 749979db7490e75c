//! Bridging rcgen's synchronous `SigningKey` to the async [`Signer`].
//!
//! rcgen builds the to-be-signed (TBS) bytes and calls `SigningKey::sign`
//! synchronously. Instead of blocking a thread on KMS inside that callback,
//! [`TbsCapture`] records the TBS and returns a placeholder; the real
//! signature is then fetched asynchronously (one KMS `Sign` per artifact)
//! and spliced into the DER in place of the placeholder. No blocking thread,
//! no nested runtime, and the TBS that is signed is exactly the one rcgen
//! produced (checked during splicing).

use std::cell::RefCell;

use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use x509_parser::prelude::FromDer;

use super::der;
use super::error::PkiError;
use crate::kms::{SigAlg, Signer};

/// rcgen signature algorithm for a KMS signing algorithm.
pub(crate) fn rcgen_alg(alg: SigAlg) -> &'static SignatureAlgorithm {
    match alg {
        SigAlg::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        SigAlg::EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        SigAlg::RsaPkcs1Sha256 => &rcgen::PKCS_RSA_SHA256,
    }
}

/// Key identifier per RFC 7093 method 1: the leftmost 160 bits of the
/// SHA-256 hash of the subjectPublicKey BIT STRING value. Used for the
/// subjectKeyIdentifier (and thus the children's authorityKeyIdentifier).
pub(crate) fn key_id(key: &impl PublicKeyData) -> Vec<u8> {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.der_bytes());
    d.as_ref()[..20].to_vec()
}

/// A public key given as DER SubjectPublicKeyInfo, usable as rcgen's
/// subject key: EC P-256/P-384 and RSA keys (what KMS CA keys are), and
/// Ed25519 (a leaf key from a CSR).
#[derive(Debug, Clone)]
pub(crate) struct SpkiKey {
    alg: &'static SignatureAlgorithm,
    raw: Vec<u8>,
}

impl SpkiKey {
    /// Parses `spki` and checks that rcgen re-encodes it byte for byte, so
    /// the certificate carries exactly the KMS key.
    pub(crate) fn from_spki(spki: &[u8]) -> Result<Self, PkiError> {
        let bad = |m: String| PkiError::InvalidIssuer(format!("public key: {m}"));
        let (rest, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
            .map_err(|e| bad(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes".into()));
        }
        let raw = info.subject_public_key.data.to_vec();
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_RSA_SHA256,
            &rcgen::PKCS_ED25519,
        ] {
            let k = SpkiKey {
                alg,
                raw: raw.clone(),
            };
            if k.subject_public_key_info() == spki {
                return Ok(k);
            }
        }
        Err(bad(
            "unsupported key type (expected EC P-256, EC P-384 or RSA)".into(),
        ))
    }
}

impl PublicKeyData for SpkiKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// A stand-in for the CA key inside rcgen: remembers the TBS it is asked to
/// sign and returns an empty placeholder signature.
pub(crate) struct TbsCapture {
    key: SpkiKey,
    tbs: RefCell<Option<Vec<u8>>>,
}

impl TbsCapture {
    /// A capture for `signer`'s key, signing with `signer`'s algorithm.
    pub(crate) fn for_signer(signer: &dyn Signer) -> Result<Self, PkiError> {
        let mut key = SpkiKey::from_spki(signer.public_key_spki_der())?;
        key.alg = rcgen_alg(signer.algorithm());
        Ok(TbsCapture {
            key,
            tbs: RefCell::new(None),
        })
    }

    /// The captured TBS (once rcgen has "signed").
    pub(crate) fn take(&self) -> Result<Vec<u8>, PkiError> {
        self.tbs
            .borrow_mut()
            .take()
            .ok_or_else(|| PkiError::Encoding("rcgen did not produce a TBS".into()))
    }
}

impl PublicKeyData for TbsCapture {
    fn der_bytes(&self) -> &[u8] {
        &self.key.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.alg
    }
}

impl SigningKey for TbsCapture {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        *self.tbs.borrow_mut() = Some(msg.to_vec());
        Ok(Vec::new())
    }
}

/// Signs `tbs` with one KMS call and splices the signature into
/// `placeholder` (the structure rcgen produced around `tbs`).
pub(crate) async fn finish(
    signer: &dyn Signer,
    placeholder: &[u8],
    tbs: &[u8],
) -> Result<Vec<u8>, PkiError> {
    let digest = signer.algorithm().digest(tbs);
    let signature = signer.sign_digest(&digest).await?;
    der::splice_signature(placeholder, tbs, &signature)
        .ok_or_else(|| PkiError::Encoding("could not splice the signature into the DER".into()))
}

/// Checks that `signer` holds the key of the issuer certificate.
pub(crate) fn check_issuer_key(issuer_spki: &[u8], signer: &dyn Signer) -> Result<(), PkiError> {
    if issuer_spki != signer.public_key_spki_der() {
        return Err(PkiError::IssuerKeyMismatch {
            key: signer.key_arn().to_string(),
        });
    }
    Ok(())
}
