//! In-process signer for unit tests of the pure PKI code only (compiled only
//! under `cfg(test)`). Integration tests and the binaries use real KMS.

use aws_lc_rs::digest::Digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};

use super::{SigAlg, SignError, Signer};

enum Key {
    Ec(EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

pub(crate) struct SoftSigner {
    key: Key,
    spki: Vec<u8>,
    alg: SigAlg,
    /// When set, signatures are corrupted (to test the verification path).
    pub(crate) corrupt: bool,
}

impl SoftSigner {
    pub(crate) fn new(alg: SigAlg) -> Self {
        let (key, spki) = match alg {
            SigAlg::EcdsaP256Sha256 | SigAlg::EcdsaP384Sha384 => {
                let a = if alg == SigAlg::EcdsaP256Sha256 {
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let k = EcdsaKeyPair::generate(a).expect("generate EC key");
                let spki = k.public_key().as_der().expect("spki").as_ref().to_vec();
                (Key::Ec(k), spki)
            }
            SigAlg::RsaPkcs1Sha256 => {
                let k = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("generate RSA key");
                let spki = k.public_key().as_der().expect("spki").as_ref().to_vec();
                (Key::Rsa(k), spki)
            }
        };
        SoftSigner {
            key,
            spki,
            alg,
            corrupt: false,
        }
    }
}

#[async_trait::async_trait]
impl Signer for SoftSigner {
    fn public_key_spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn algorithm(&self) -> SigAlg {
        self.alg
    }
    fn key_arn(&self) -> &str {
        "soft:test"
    }
    async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let d = Digest::import_less_safe(digest, self.alg.digest_algorithm()).map_err(|_| {
            SignError::InvalidDigest {
                alg: self.alg.as_str(),
                expected: self.alg.digest_len(),
                got: digest.len(),
            }
        })?;
        let mut sig = match &self.key {
            Key::Ec(k) => k.sign_digest(&d).expect("sign").as_ref().to_vec(),
            Key::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign_digest(&signature::RSA_PKCS1_SHA256, &d, &mut out)
                    .expect("sign");
                out
            }
        };
        if self.corrupt
            && let Some(last) = sig.last_mut()
        {
            *last ^= 1;
        }
        if !super::verify_digest_signature(&self.spki, self.alg, digest, &sig) {
            return Err(SignError::SignatureMismatch {
                key: "soft:test".into(),
            });
        }
        Ok(sig)
    }
}
