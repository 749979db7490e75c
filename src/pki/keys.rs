//! End-entity private keys: generated in-process, held in a type that never
//! prints its contents.

use std::fmt;

use rcgen::{KeyPair, RsaKeySize};

use super::error::PkiError;
use super::validate::FieldErrors;

/// Key algorithm of an end-entity key (cert-manager `privateKey.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlgorithm {
    /// ECDSA; size 256 (default) or 384.
    #[default]
    Ecdsa,
    /// RSA; size 2048 (default), 3072 or 4096.
    Rsa,
    /// Ed25519; no size.
    Ed25519,
}

impl KeyAlgorithm {
    /// Parses cert-manager spelling (`RSA`, `ECDSA`, `Ed25519`), case-insensitive.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa" => Some(KeyAlgorithm::Ecdsa),
            "rsa" => Some(KeyAlgorithm::Rsa),
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }
}

/// Encoding of the private key PEM (cert-manager `privateKey.encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyEncoding {
    /// PKCS#8 `PRIVATE KEY` (default, every algorithm).
    #[default]
    Pkcs8,
    /// PKCS#1 `RSA PRIVATE KEY` (RSA only).
    Pkcs1,
}

/// What key to generate for an end-entity certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PrivateKeySpec {
    /// Algorithm.
    pub algorithm: KeyAlgorithm,
    /// Size in bits (RSA) or curve size (ECDSA 256/384); `None` = default.
    pub size: Option<u32>,
    /// PEM encoding.
    pub encoding: KeyEncoding,
}

/// The concrete key type after defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeafKeyType {
    /// ECDSA P-256.
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
    /// Ed25519.
    Ed25519,
}

impl LeafKeyType {
    /// `true` for RSA keys.
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            LeafKeyType::Rsa2048 | LeafKeyType::Rsa3072 | LeafKeyType::Rsa4096
        )
    }
}

impl PrivateKeySpec {
    /// Resolves defaults and checks the size/encoding; problems are reported
    /// under `privateKey.size` / `privateKey.encoding`.
    pub(crate) fn resolve(&self, errs: &mut FieldErrors) -> Option<LeafKeyType> {
        let size_str = self.size.map(|s| s.to_string()).unwrap_or_default();
        let ty = match (self.algorithm, self.size) {
            (KeyAlgorithm::Ecdsa, None | Some(256)) => Some(LeafKeyType::EcdsaP256),
            (KeyAlgorithm::Ecdsa, Some(384)) => Some(LeafKeyType::EcdsaP384),
            (KeyAlgorithm::Ecdsa, Some(_)) => {
                errs.push(
                    "privateKey.size",
                    size_str,
                    "unsupported ECDSA size; use 256 (default) or 384",
                );
                None
            }
            (KeyAlgorithm::Rsa, None | Some(2048)) => Some(LeafKeyType::Rsa2048),
            (KeyAlgorithm::Rsa, Some(3072)) => Some(LeafKeyType::Rsa3072),
            (KeyAlgorithm::Rsa, Some(4096)) => Some(LeafKeyType::Rsa4096),
            (KeyAlgorithm::Rsa, Some(_)) => {
                errs.push(
                    "privateKey.size",
                    size_str,
                    "unsupported RSA size; use 2048 (default), 3072 or 4096",
                );
                None
            }
            (KeyAlgorithm::Ed25519, None) => Some(LeafKeyType::Ed25519),
            (KeyAlgorithm::Ed25519, Some(_)) => {
                errs.push(
                    "privateKey.size",
                    size_str,
                    "Ed25519 keys have a fixed size; remove privateKey.size",
                );
                None
            }
        };
        if self.encoding == KeyEncoding::Pkcs1 && self.algorithm != KeyAlgorithm::Rsa {
            errs.push(
                "privateKey.encoding",
                "PKCS1",
                "PKCS#1 is only defined for RSA keys; use PKCS8",
            );
            return None;
        }
        ty
    }
}

/// A PEM private key. `Debug` and `Display` print `<redacted>`; read it
/// with [`PrivateKeyPem::expose_secret`] only to write it into a Secret.
/// The buffer is overwritten when dropped (best effort).
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// Wraps a PEM string.
    pub fn new(pem: String) -> Self {
        PrivateKeyPem(pem)
    }

    /// The PEM text. Do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for PrivateKeyPem {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        for b in bytes.iter_mut() {
            *b = 0;
        }
        std::hint::black_box(&bytes);
    }
}

/// Generates a key pair of `ty`. RSA generation is slow (tens to hundreds
/// of milliseconds); callers on an async runtime run it on a blocking thread.
pub(crate) fn generate(ty: LeafKeyType) -> Result<KeyPair, PkiError> {
    let r = match ty {
        LeafKeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        LeafKeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        LeafKeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        LeafKeyType::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        }
        LeafKeyType::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)
        }
        LeafKeyType::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)
        }
    };
    r.map_err(|e| PkiError::KeyGeneration(e.to_string()))
}

/// Parses an existing PEM key (PKCS#8 or PKCS#1 RSA) and checks it is of
/// type `ty`; a mismatch is reported under `privateKey`.
pub(crate) fn parse_matching(
    pem_key: &PrivateKeyPem,
    ty: LeafKeyType,
) -> Result<KeyPair, PkiError> {
    let mismatch = |why: &str| {
        let mut errs = FieldErrors::default();
        errs.push("privateKey", "<existing key>", why.to_string());
        PkiError::Invalid(errs)
    };
    let kp = parse_pem(pem_key.expose_secret())?
        .map_err(|_| mismatch("the existing key cannot be parsed"))?;
    let raw_len = kp.public_key_raw().len();
    let ok = match ty {
        LeafKeyType::EcdsaP256 => kp.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256,
        LeafKeyType::EcdsaP384 => kp.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384,
        LeafKeyType::Ed25519 => kp.algorithm() == &rcgen::PKCS_ED25519,
        // RSAPublicKey DER length tracks the modulus size.
        LeafKeyType::Rsa2048 => {
            kp.algorithm() == &rcgen::PKCS_RSA_SHA256 && (260..300).contains(&raw_len)
        }
        LeafKeyType::Rsa3072 => {
            kp.algorithm() == &rcgen::PKCS_RSA_SHA256 && (390..430).contains(&raw_len)
        }
        LeafKeyType::Rsa4096 => {
            kp.algorithm() == &rcgen::PKCS_RSA_SHA256 && (520..560).contains(&raw_len)
        }
    };
    if ok {
        Ok(kp)
    } else {
        Err(mismatch(
            "the existing key does not match privateKey.algorithm/size; a new key is needed",
        ))
    }
}

/// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`, EC/RSA/Ed25519) or
/// PKCS#1 (`RSA PRIVATE KEY`). The outer error says the text is not a PEM
/// key of a supported type; the inner one that its contents do not parse.
/// The one parser for keys Signet reads back (a Secret's `tls.key`).
pub(crate) fn parse_pem(text: &str) -> Result<Result<KeyPair, rcgen::Error>, PkiError> {
    let bad = |why: &str| {
        let mut errs = FieldErrors::default();
        errs.push("privateKey", "<existing key>", why.to_string());
        PkiError::Invalid(errs)
    };
    let parsed = pem::parse(text).map_err(|_| bad("the existing key is not PEM"))?;
    Ok(match parsed.tag() {
        "PRIVATE KEY" => KeyPair::try_from(parsed.contents()),
        "RSA PRIVATE KEY" => {
            let der = rustls_pki_types::PrivateKeyDer::Pkcs1(parsed.contents().to_vec().into());
            KeyPair::from_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
        }
        _ => return Err(bad("unsupported PEM type for the existing key")),
    })
}

/// Encodes the private key of `kp` as PEM in `encoding`.
pub(crate) fn encode(kp: &KeyPair, encoding: KeyEncoding) -> Result<PrivateKeyPem, PkiError> {
    use super::der;
    // A key pair parsed from an existing `RSA PRIVATE KEY` holds PKCS#1;
    // generated ones hold PKCS#8.
    let held = kp.serialized_der();
    let held_pkcs1 = der::is_pkcs1_rsa(held);
    match encoding {
        KeyEncoding::Pkcs8 => {
            // aws-lc writes Ed25519 keys as PKCS#8 v2 (with the public key),
            // which OpenSSL 3.0 cannot load; write the v1 form for all.
            let p8 = if held_pkcs1 {
                Some(der::pkcs1_to_pkcs8(held))
            } else {
                der::pkcs8_v1(held)
            };
            let p8 =
                p8.ok_or_else(|| PkiError::KeyGeneration("unexpected PKCS#8 structure".into()))?;
            Ok(PrivateKeyPem(crate::pki::to_pem("PRIVATE KEY", p8)))
        }
        KeyEncoding::Pkcs1 => {
            let pkcs1 = if held_pkcs1 {
                Some(held.to_vec())
            } else {
                der::pkcs8_private_key(held)
            };
            let pkcs1 = pkcs1.ok_or_else(|| {
                PkiError::KeyGeneration("cannot unwrap PKCS#8 into PKCS#1".into())
            })?;
            Ok(PrivateKeyPem(crate::pki::to_pem("RSA PRIVATE KEY", pkcs1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_never_prints() {
        let k = PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nsecret".into());
        assert_eq!(format!("{k:?}"), "<redacted>");
        assert_eq!(format!("{k}"), "<redacted>");
        assert!(k.expose_secret().contains("secret"));
    }

    #[test]
    fn sizes_are_checked_with_the_field_named() {
        let mut errs = FieldErrors::default();
        let spec = PrivateKeySpec {
            algorithm: KeyAlgorithm::Rsa,
            size: Some(1024),
            ..Default::default()
        };
        assert_eq!(spec.resolve(&mut errs), None);
        assert!(errs.mentions("privateKey.size"), "{errs}");
        assert!(errs.to_string().contains("2048"));

        let mut errs = FieldErrors::default();
        let spec = PrivateKeySpec {
            algorithm: KeyAlgorithm::Ecdsa,
            size: Some(521),
            ..Default::default()
        };
        assert_eq!(spec.resolve(&mut errs), None);
        assert!(errs.mentions("privateKey.size"));

        let mut errs = FieldErrors::default();
        let spec = PrivateKeySpec {
            algorithm: KeyAlgorithm::Ecdsa,
            encoding: KeyEncoding::Pkcs1,
            ..Default::default()
        };
        assert_eq!(spec.resolve(&mut errs), None);
        assert!(errs.mentions("privateKey.encoding"));

        let mut errs = FieldErrors::default();
        assert_eq!(
            PrivateKeySpec::default().resolve(&mut errs),
            Some(LeafKeyType::EcdsaP256)
        );
    }

    #[test]
    fn pkcs1_encoding_for_rsa() {
        let kp = generate(LeafKeyType::Rsa2048).expect("rsa");
        let pem = encode(&kp, KeyEncoding::Pkcs1).expect("pkcs1");
        assert!(
            pem.expose_secret()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );
        let p8 = encode(&kp, KeyEncoding::Pkcs8).expect("pkcs8");
        assert!(
            p8.expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        // A key read back from PKCS#1 re-encodes to the same PKCS#8 and PKCS#1.
        let back = parse_matching(&pem, LeafKeyType::Rsa2048).expect("parse PKCS#1");
        assert!(encode(&back, KeyEncoding::Pkcs8).expect("p8") == p8);
        assert!(encode(&back, KeyEncoding::Pkcs1).expect("p1") == pem);
    }
}
