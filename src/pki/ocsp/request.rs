//! Parsing OCSP requests (RFC 6960 §4.1) and RFC 5019 GET URLs.
//!
//! This file depends only on its ASN.1 crates (`der`, `x509-cert`,
//! `x509-ocsp`), `base64` and `thiserror`, and refers to nothing else in
//! Signet: the fuzz crate under `hack/fuzz` compiles it on its own.
//!
//! Everything here is bounded: a request is at most [`MAX_REQUEST_LEN`]
//! bytes and asks about at most [`MAX_CERTS`] certificates; the ASN.1 types
//! are fixed-shape (no recursive structures), so nesting is bounded by the
//! schema. No input panics.

use base64::Engine as _;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use x509_cert::ext::Extensions;

/// Largest DER request accepted (64 KiB).
pub const MAX_REQUEST_LEN: usize = 64 * 1024;
/// Most certificates one request may ask about.
pub const MAX_CERTS: usize = 16;
/// Longest nonce accepted, in bytes (RFC 8954 §2.1).
pub const MAX_NONCE_LEN: usize = 32;
/// Most extensions one list (of the request, or of one certificate's
/// entry) may carry; clients send one or two.
pub const MAX_EXTENSIONS: usize = 16;

/// `id-pkix-ocsp-nonce` (1.3.6.1.5.5.7.48.1.2).
pub(crate) const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// Request extensions Signet knows (and may therefore see marked critical):
/// nonce, acceptable responses, service locator, preferred signature
/// algorithms. Only the nonce changes the answer; Signet always answers
/// with id-pkix-ocsp-basic, which every client must accept (RFC 6960
/// §4.2.1).
const KNOWN_EXTENSIONS: [ObjectIdentifier; 4] = [
    OID_NONCE,
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.4"),
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.7"),
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.8"),
];

/// Hash algorithm of a [`CertId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1 (1.3.14.3.2.26): what RFC 5019 clients and `openssl ocsp` send.
    Sha1,
    /// SHA-256 (2.16.840.1.101.3.4.2.1).
    Sha256,
    /// SHA-384 (2.16.840.1.101.3.4.2.2).
    Sha384,
    /// SHA-512 (2.16.840.1.101.3.4.2.3).
    Sha512,
}

impl HashAlgorithm {
    /// Every supported algorithm with its OID.
    const ALL: [(HashAlgorithm, ObjectIdentifier); 4] = [
        (
            HashAlgorithm::Sha1,
            ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
        ),
        (
            HashAlgorithm::Sha256,
            ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
        ),
        (
            HashAlgorithm::Sha384,
            ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2"),
        ),
        (
            HashAlgorithm::Sha512,
            ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3"),
        ),
    ];

    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, o)| o == oid)
            .map(|(alg, _)| *alg)
    }

    /// Length of a hash in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// Short name, e.g. for logs: `SHA-1`, `SHA-256`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha384 => "SHA-384",
            HashAlgorithm::Sha512 => "SHA-512",
        }
    }
}

/// One certificate a client asks about (RFC 6960 `CertID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    hash: HashAlgorithm,
    issuer_name_hash: Vec<u8>,
    issuer_key_hash: Vec<u8>,
    serial: Vec<u8>,
    der: Vec<u8>,
}

impl CertId {
    /// Hash algorithm of the two issuer hashes.
    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.hash
    }

    /// Hash of the issuer's subject name (DER).
    pub fn issuer_name_hash(&self) -> &[u8] {
        &self.issuer_name_hash
    }

    /// Hash of the issuer's subjectPublicKey BIT STRING contents.
    pub fn issuer_key_hash(&self) -> &[u8] {
        &self.issuer_key_hash
    }

    /// The serial number's INTEGER content bytes as sent (two's
    /// complement, so a leading `00` when the high bit is set).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial in Signet's spelling (lower-case hex of the minimal
    /// big-endian bytes, no leading `00` byte), for looking it up.
    pub fn serial_hex(&self) -> String {
        let s = match self.serial.as_slice() {
            [0, rest @ ..] if !rest.is_empty() => rest,
            s => s,
        };
        s.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The `CertID` exactly as the client encoded it; a response echoes
    /// these bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    fn from_asn1(id: &x509_ocsp::CertId) -> Result<Self, OcspError> {
        let alg = &id.hash_algorithm;
        let hash = HashAlgorithm::from_oid(&alg.oid).ok_or_else(|| OcspError::UnsupportedHash {
            oid: alg.oid.to_string(),
        })?;
        if alg.parameters.as_ref().is_some_and(|p| !p.is_null()) {
            return Err(OcspError::HashParameters { alg: hash.as_str() });
        }
        for (field, value) in [
            ("issuerNameHash", &id.issuer_name_hash),
            ("issuerKeyHash", &id.issuer_key_hash),
        ] {
            if value.as_bytes().len() != hash.output_len() {
                return Err(OcspError::HashLength {
                    field,
                    alg: hash.as_str(),
                    len: value.as_bytes().len(),
                    expected: hash.output_len(),
                });
            }
        }
        // DER is canonical and `der` decodes strictly, so re-encoding
        // yields the client's bytes (the fuzz target checks this).
        let der = id.to_der().map_err(|e| OcspError::Der(e.to_string()))?;
        Ok(CertId {
            hash,
            issuer_name_hash: id.issuer_name_hash.as_bytes().to_vec(),
            issuer_key_hash: id.issuer_key_hash.as_bytes().to_vec(),
            serial: id.serial_number.as_bytes().to_vec(),
            der,
        })
    }
}

/// A parsed OCSP request: what to answer and the nonce to echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// The certificates asked about, in request order (1 to [`MAX_CERTS`]).
    pub certs: Vec<CertId>,
    /// The `id-pkix-ocsp-nonce` extension value (its extnValue contents,
    /// normally a DER OCTET STRING around 1–32 random bytes), to be echoed
    /// byte for byte in the response. `None` when the request had none.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request could not be read. Every variant is answered with
/// `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    /// Nothing was sent.
    #[error("empty OCSP request")]
    Empty,
    /// The request is larger than Signet reads.
    #[error("OCSP request of {len} bytes is larger than the {max} bytes accepted")]
    TooLarge {
        /// Size of what was sent (for GET, of the encoded path).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a DER `OCSPRequest`.
    #[error("not a DER OCSPRequest: {0}")]
    Der(String),
    /// The request lists no certificate.
    #[error("the OCSP request lists no certificate")]
    NoCerts,
    /// The request lists more certificates than Signet answers at once.
    #[error("the OCSP request lists {count} certificates; at most {max} are answered at once")]
    TooManyCerts {
        /// How many were listed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A CertID uses a hash algorithm Signet does not compute.
    #[error("CertID hash algorithm {oid} is not supported (use SHA-1 or SHA-256)")]
    UnsupportedHash {
        /// Dotted OID.
        oid: String,
    },
    /// A CertID hash algorithm carries parameters other than NULL.
    #[error("CertID hash algorithm {alg} has parameters other than NULL")]
    HashParameters {
        /// Algorithm name.
        alg: &'static str,
    },
    /// A CertID hash has the wrong length for its algorithm.
    #[error("CertID {field} is {len} bytes, but {alg} hashes are {expected}")]
    HashLength {
        /// `issuerNameHash` or `issuerKeyHash`.
        field: &'static str,
        /// Algorithm name.
        alg: &'static str,
        /// Length found.
        len: usize,
        /// Length expected.
        expected: usize,
    },
    /// An extension list is longer than Signet reads.
    #[error("{count} extensions in one list; at most {max} are read")]
    TooManyExtensions {
        /// How many were listed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An extension appears twice in one list.
    #[error("extension {oid} appears more than once")]
    DuplicateExtension {
        /// Dotted OID.
        oid: String,
    },
    /// A critical extension Signet does not understand.
    #[error("critical extension {oid} is not supported")]
    UnsupportedCriticalExtension {
        /// Dotted OID.
        oid: String,
    },
    /// The nonce is empty or longer than [`MAX_NONCE_LEN`].
    #[error("nonce of {len} bytes; RFC 8954 allows 1 to {max}")]
    NonceLength {
        /// Length found.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A GET path segment is not percent-encoded base64.
    #[error("GET request path is not URL-encoded base64: {0}")]
    GetEncoding(String),
}

impl OcspError {
    /// Bounded CamelCase category for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            OcspError::Empty => "Empty",
            OcspError::TooLarge { .. } => "TooLarge",
            OcspError::Der(_) => "NotDer",
            OcspError::NoCerts => "NoCerts",
            OcspError::TooManyCerts { .. } => "TooManyCerts",
            OcspError::UnsupportedHash { .. } => "UnsupportedHash",
            OcspError::HashParameters { .. } | OcspError::HashLength { .. } => "BadCertId",
            OcspError::TooManyExtensions { .. } => "TooManyExtensions",
            OcspError::DuplicateExtension { .. } => "DuplicateExtension",
            OcspError::UnsupportedCriticalExtension { .. } => "UnsupportedCriticalExtension",
            OcspError::NonceLength { .. } => "BadNonce",
            OcspError::GetEncoding(_) => "BadGetEncoding",
        }
    }
}

/// Parses a DER `OCSPRequest` (the body of a POST, or what [`decode_get`]
/// returns). The optional signature is parsed but not checked: Signet's
/// answers are public, so it does not require signed requests.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, OcspError> {
    if der.is_empty() {
        return Err(OcspError::Empty);
    }
    if der.len() > MAX_REQUEST_LEN {
        return Err(OcspError::TooLarge {
            len: der.len(),
            max: MAX_REQUEST_LEN,
        });
    }
    let req = x509_ocsp::OcspRequest::from_der(der).map_err(|e| OcspError::Der(e.to_string()))?;
    let tbs = &req.tbs_request;
    match tbs.request_list.len() {
        0 => return Err(OcspError::NoCerts),
        n if n > MAX_CERTS => {
            return Err(OcspError::TooManyCerts {
                count: n,
                max: MAX_CERTS,
            });
        }
        _ => {}
    }
    let mut certs = Vec::with_capacity(tbs.request_list.len());
    for single in &tbs.request_list {
        check_extensions(single.single_request_extensions.as_ref())?;
        certs.push(CertId::from_asn1(&single.req_cert)?);
    }
    let nonce = check_extensions(tbs.request_extensions.as_ref())?;
    Ok(OcspRequest { certs, nonce })
}

/// Rejects long lists, duplicates and unknown critical extensions; returns
/// the nonce's extnValue contents, if present.
fn check_extensions(exts: Option<&Extensions>) -> Result<Option<Vec<u8>>, OcspError> {
    let exts = exts.map(Vec::as_slice).unwrap_or_default();
    if exts.len() > MAX_EXTENSIONS {
        return Err(OcspError::TooManyExtensions {
            count: exts.len(),
            max: MAX_EXTENSIONS,
        });
    }
    let mut nonce = None;
    for (i, ext) in exts.iter().enumerate() {
        if exts[..i].iter().any(|e| e.extn_id == ext.extn_id) {
            return Err(OcspError::DuplicateExtension {
                oid: ext.extn_id.to_string(),
            });
        }
        if ext.critical && !KNOWN_EXTENSIONS.contains(&ext.extn_id) {
            return Err(OcspError::UnsupportedCriticalExtension {
                oid: ext.extn_id.to_string(),
            });
        }
        if ext.extn_id == OID_NONCE {
            let value = ext.extn_value.as_bytes();
            check_nonce(value)?;
            nonce = Some(value.to_vec());
        }
    }
    Ok(nonce)
}

/// RFC 8954: the nonce is an OCTET STRING of 1 to 32 bytes. Clients that
/// predate it send the bytes without the OCTET STRING; those are held to
/// the same length.
fn check_nonce(extn_value: &[u8]) -> Result<(), OcspError> {
    let len = match OctetString::from_der(extn_value) {
        Ok(inner) => inner.as_bytes().len(),
        Err(_) => extn_value.len(),
    };
    if len == 0 || len > MAX_NONCE_LEN {
        return Err(OcspError::NonceLength {
            len,
            max: MAX_NONCE_LEN,
        });
    }
    Ok(())
}

/// Longest GET path segment read: base64 of [`MAX_REQUEST_LEN`] bytes,
/// every character percent-encoded.
const MAX_GET_LEN: usize = MAX_REQUEST_LEN.div_ceil(3) * 4 * 3;

/// Standard base64 alphabet; padding optional (some clients strip it).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Decodes the request part of an RFC 5019 §5 GET URL
/// (`GET /ocsp/<ca>/{url-encoding of base-64 encoding of the DER OCSPRequest}`)
/// into DER for [`parse_request`].
///
/// `path_segment` is everything after the responder's base path, still
/// percent-encoded. It may contain `/`: base64 uses it and not every client
/// encodes it as `%2F`.
pub fn decode_get(path_segment: &str) -> Result<Vec<u8>, OcspError> {
    if path_segment.is_empty() {
        return Err(OcspError::Empty);
    }
    if path_segment.len() > MAX_GET_LEN {
        return Err(OcspError::TooLarge {
            len: path_segment.len(),
            max: MAX_GET_LEN,
        });
    }
    let b64 = percent_decode(path_segment.as_bytes())?;
    let der = BASE64
        .decode(&b64)
        .map_err(|e| OcspError::GetEncoding(format!("base64: {e}")))?;
    if der.is_empty() {
        return Err(OcspError::Empty);
    }
    if der.len() > MAX_REQUEST_LEN {
        return Err(OcspError::TooLarge {
            len: der.len(),
            max: MAX_REQUEST_LEN,
        });
    }
    Ok(der)
}

/// Replaces `%XX` escapes with their byte.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, OcspError> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'%' {
            out.push(b);
            rest = tail;
            continue;
        }
        let (hi, lo, after) = match tail {
            [h, l, after @ ..] => (hex(*h), hex(*l), after),
            _ => (None, None, tail),
        };
        let (Some(hi), Some(lo)) = (hi, lo) else {
            let at = input.len() - rest.len();
            return Err(OcspError::GetEncoding(format!(
                "'%' at offset {at} is not followed by two hex digits"
            )));
        };
        out.push((hi << 4) | lo);
        rest = after;
    }
    Ok(out)
}
