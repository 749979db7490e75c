//! Local verification of signatures with aws-lc-rs.

use aws_lc_rs::digest::Digest;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};

use super::SigAlg;

fn verification_algorithm(alg: SigAlg) -> &'static dyn VerificationAlgorithm {
    match alg {
        SigAlg::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        SigAlg::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
        SigAlg::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
    }
}

/// A public key parsed once, for verifying many signatures.
pub(crate) struct Verifier {
    key: ParsedPublicKey,
    alg: SigAlg,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("alg", &self.alg).finish()
    }
}

impl Verifier {
    /// Parses a DER SubjectPublicKeyInfo for `alg`; `None` when it does not
    /// parse or does not match the algorithm (e.g. an RSA key under 2048 bits).
    pub(crate) fn new(spki_der: &[u8], alg: SigAlg) -> Option<Self> {
        let key = ParsedPublicKey::new(verification_algorithm(alg), spki_der).ok()?;
        Some(Verifier { key, alg })
    }

    /// `true` when `sig` is a valid signature of `digest`.
    pub(crate) fn verify(&self, digest: &[u8], sig: &[u8]) -> bool {
        let Ok(d) = Digest::import_less_safe(digest, self.alg.digest_algorithm()) else {
            return false;
        };
        self.key.verify_digest_sig(&d, sig).is_ok()
    }
}

/// Verifies `sig` over `digest` with the key in `spki_der` (DER
/// SubjectPublicKeyInfo) for `alg`. `true` only for a valid signature.
pub fn verify_digest_signature(spki_der: &[u8], alg: SigAlg, digest: &[u8], sig: &[u8]) -> bool {
    Verifier::new(spki_der, alg).is_some_and(|v| v.verify(digest, sig))
}
