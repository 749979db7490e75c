//! The few DER encodings rcgen does not provide: splicing a KMS signature
//! into a to-be-signed structure, the Authority Information Access
//! extension, and unwrapping PKCS#8 to PKCS#1.

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one TLV with a single-byte tag.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// `(tag, whole TLV, content, rest)` as returned by [`read_tlv`].
pub(crate) type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Splits the first TLV off `input`: `(tag, whole TLV, content, rest)`.
/// Only single-byte tags and definite lengths (what DER allows).
pub(crate) fn read_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = after_tag.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for b in &rest[..n] {
            len = (len << 8) | *b as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let (content, remaining) = rest.split_at(len);
    Some((tag, &input[..header + len], content, remaining))
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;

/// Replaces the signature of a signed structure (`SEQUENCE { tbs, algId,
/// BIT STRING }`) whose TBS part equals `tbs` with `signature`.
///
/// rcgen writes the structure with a placeholder signature; the real one
/// comes from KMS asynchronously. Returns `None` when `signed` is not shaped
/// as expected or its TBS differs from `tbs`.
pub(crate) fn splice_signature(signed: &[u8], tbs: &[u8], signature: &[u8]) -> Option<Vec<u8>> {
    let (tag, _, content, rest) = read_tlv(signed)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let (_, tbs_tlv, _, after_tbs) = read_tlv(content)?;
    if tbs_tlv != tbs {
        return None;
    }
    let (alg_tag, alg_tlv, _, _) = read_tlv(after_tbs)?;
    if alg_tag != SEQUENCE {
        return None;
    }
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(signature);
    let bit_string = tlv(BIT_STRING, &bits);
    let mut inner = Vec::with_capacity(tbs.len() + alg_tlv.len() + bit_string.len());
    inner.extend_from_slice(tbs);
    inner.extend_from_slice(alg_tlv);
    inner.extend_from_slice(&bit_string);
    Some(tlv(SEQUENCE, &inner))
}

/// `id-pe-authorityInfoAccess` (1.3.6.1.5.5.7.1.1).
pub(crate) const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// DER of `id-ad-ocsp` (1.3.6.1.5.5.7.48.1).
const ID_AD_OCSP: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
/// DER of `id-ad-caIssuers` (1.3.6.1.5.5.7.48.2).
const ID_AD_CA_ISSUERS: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
/// `[6] IMPLICIT IA5String` — GeneralName uniformResourceIdentifier.
const GN_URI: u8 = 0x86;

/// The extnValue of an Authority Information Access extension (RFC 5280
/// §4.2.2.1): `SEQUENCE OF AccessDescription`, OCSP entries first, then
/// caIssuers. URIs must already be validated ASCII.
pub(crate) fn authority_info_access(ocsp: &[String], ca_issuers: &[String]) -> Vec<u8> {
    let mut inner = Vec::new();
    for (method, uris) in [(ID_AD_OCSP, ocsp), (ID_AD_CA_ISSUERS, ca_issuers)] {
        for uri in uris {
            let mut desc = method.to_vec();
            desc.extend_from_slice(&tlv(GN_URI, uri.as_bytes()));
            inner.extend_from_slice(&tlv(SEQUENCE, &desc));
        }
    }
    tlv(SEQUENCE, &inner)
}

/// `id-ce-certificatePolicies` (2.5.29.32).
pub(crate) const OID_CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];

/// Parses a dotted OID (`2.23.140.1.2.1`) into arcs; `None` when malformed.
pub(crate) fn parse_oid(dotted: &str) -> Option<Vec<u64>> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| {
            if a.is_empty()
                || !a.chars().all(|c| c.is_ascii_digit())
                || (a.len() > 1 && a.starts_with('0'))
            {
                None
            } else {
                a.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let ok = arcs.len() >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40);
    ok.then_some(arcs)
}

/// DER OBJECT IDENTIFIER for `arcs` (as validated by [`parse_oid`]).
fn oid_tlv(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let mut push_arc = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        content.extend_from_slice(&tmp);
    };
    push_arc(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push_arc(*a);
    }
    tlv(0x06, &content)
}

/// The extnValue of a certificatePolicies extension (RFC 5280 §4.2.1.4)
/// listing `policies` without qualifiers.
pub(crate) fn certificate_policies(policies: &[Vec<u64>]) -> Vec<u8> {
    let mut inner = Vec::new();
    for p in policies {
        inner.extend_from_slice(&tlv(SEQUENCE, &oid_tlv(p)));
    }
    tlv(SEQUENCE, &inner)
}

/// Extracts the `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` —
/// for RSA that is the PKCS#1 `RSAPrivateKey`.
pub(crate) fn pkcs8_private_key(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (tag, _, content, _) = read_tlv(pkcs8)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t_version, _, _, rest) = read_tlv(content)?;
    let (t_alg, _, _, rest) = read_tlv(rest)?;
    let (t_key, _, key, _) = read_tlv(rest)?;
    (t_version == INTEGER && t_alg == SEQUENCE && t_key == OCTET_STRING).then(|| key.to_vec())
}

/// `true` when `der` is a PKCS#1 `RSAPrivateKey` (`SEQUENCE { INTEGER
/// version, INTEGER modulus, ... }`) rather than PKCS#8 (whose second field
/// is the algorithm SEQUENCE).
pub(crate) fn is_pkcs1_rsa(der: &[u8]) -> bool {
    let Some((SEQUENCE, _, content, _)) = read_tlv(der) else {
        return false;
    };
    let Some((INTEGER, _, _, rest)) = read_tlv(content) else {
        return false;
    };
    matches!(read_tlv(rest), Some((INTEGER, _, _, _)))
}

/// DER of the rsaEncryption AlgorithmIdentifier (OID 1.2.840.113549.1.1.1, NULL).
const RSA_ENCRYPTION_ALG: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// Wraps a PKCS#1 `RSAPrivateKey` into a PKCS#8 v1 `PrivateKeyInfo`.
pub(crate) fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let mut inner = vec![INTEGER, 1, 0];
    inner.extend_from_slice(RSA_ENCRYPTION_ALG);
    inner.extend_from_slice(&tlv(OCTET_STRING, pkcs1));
    tlv(SEQUENCE, &inner)
}

/// Rewrites a PKCS#8 v2 `OneAsymmetricKey` (RFC 5958, version 1 with the
/// optional `[1] publicKey`, as aws-lc writes for Ed25519) as a v1
/// `PrivateKeyInfo` (version 0, no public key), which every OpenSSL 3.x
/// reads. v1 input is returned unchanged.
pub(crate) fn pkcs8_v1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (tag, _, content, _) = read_tlv(pkcs8)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t_version, _, version, rest) = read_tlv(content)?;
    let (t_alg, alg_tlv, _, rest) = read_tlv(rest)?;
    let (t_key, key_tlv, _, _) = read_tlv(rest)?;
    if t_version != INTEGER || t_alg != SEQUENCE || t_key != OCTET_STRING {
        return None;
    }
    match version {
        [0] => Some(pkcs8.to_vec()),
        [1] => {
            let mut inner = vec![INTEGER, 1, 0];
            inner.extend_from_slice(alg_tlv);
            inner.extend_from_slice(key_tlv);
            Some(tlv(SEQUENCE, &inner))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = vec![0u8; 200];
        assert_eq!(&tlv(0x04, &long)[..3], &[0x04, 0x81, 200]);
        let longer = vec![0u8; 70_000];
        assert_eq!(&tlv(0x04, &longer)[..5], &[0x04, 0x83, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn read_tlv_round_trips_and_rejects_truncation() {
        let enc = tlv(0x30, &vec![7u8; 300]);
        let (tag, whole, content, rest) = read_tlv(&enc).expect("parses");
        assert_eq!(
            (tag, whole.len(), content.len(), rest.len()),
            (0x30, enc.len(), 300, 0)
        );
        assert!(read_tlv(&enc[..enc.len() - 1]).is_none());
        assert!(read_tlv(&[]).is_none());
    }

    #[test]
    fn splice_replaces_only_the_signature() {
        let tbs = tlv(0x30, &[0x02, 0x01, 0x05]);
        let alg = tlv(0x30, &[0x06, 0x01, 0x2a]);
        let placeholder = tlv(0x03, &[0, 0]);
        let signed = tlv(0x30, &[tbs.clone(), alg.clone(), placeholder].concat());
        let out = splice_signature(&signed, &tbs, &[9, 9, 9]).expect("splices");
        let expected = tlv(0x30, &[tbs.clone(), alg, tlv(0x03, &[0, 9, 9, 9])].concat());
        assert_eq!(out, expected);
        // A different TBS is refused.
        let other = tlv(0x30, &[0x02, 0x01, 0x06]);
        assert!(splice_signature(&signed, &other, &[1]).is_none());
    }

    #[test]
    fn pkcs8_v2_becomes_v1() {
        let alg = tlv(0x30, &[0x06, 0x03, 0x2b, 0x65, 0x70]);
        let key = tlv(0x04, &tlv(0x04, &[7u8; 32]));
        let public = tlv(0x81, &[0u8; 33]);
        let v2 = tlv(
            0x30,
            &[vec![0x02, 0x01, 0x01], alg.clone(), key.clone(), public].concat(),
        );
        let v1 = tlv(0x30, &[vec![0x02, 0x01, 0x00], alg, key].concat());
        assert_eq!(pkcs8_v1(&v2), Some(v1.clone()));
        assert_eq!(pkcs8_v1(&v1), Some(v1));
        assert_eq!(pkcs8_v1(&[0x30, 0x00]), None);
    }

    #[test]
    fn oids() {
        assert_eq!(parse_oid("2.23.140.1.2.1"), Some(vec![2, 23, 140, 1, 2, 1]));
        assert_eq!(parse_oid("1.40"), None);
        assert_eq!(parse_oid("3.1"), None);
        assert_eq!(parse_oid("1"), None);
        assert_eq!(parse_oid("1..2"), None);
        assert_eq!(parse_oid("1.02"), None);
        // 2.23.140.1.2.1 = 06 06 67 81 0c 01 02 01
        assert_eq!(
            oid_tlv(&[2, 23, 140, 1, 2, 1]),
            vec![0x06, 0x06, 0x67, 0x81, 0x0c, 0x01, 0x02, 0x01]
        );
        let cp = certificate_policies(&[vec![2, 23, 140, 1, 2, 1]]);
        assert_eq!(cp, tlv(0x30, &tlv(0x30, &oid_tlv(&[2, 23, 140, 1, 2, 1]))));
    }

    #[test]
    fn aia_encodes_ocsp_then_ca_issuers() {
        let der = authority_info_access(&["http://o".into()], &["http://c".into()]);
        let (tag, _, content, _) = read_tlv(&der).expect("seq");
        assert_eq!(tag, 0x30);
        let (_, _, first, rest) = read_tlv(content).expect("first");
        assert!(first.starts_with(ID_AD_OCSP));
        let (_, _, second, rest) = read_tlv(rest).expect("second");
        assert!(second.starts_with(ID_AD_CA_ISSUERS));
        assert!(rest.is_empty());
    }
}
