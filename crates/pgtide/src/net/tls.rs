//! What both TLS sides share: rustls with the `ring` provider, TLS 1.2 and 1.3 only, PEM files
//! read into rustls' types, and the `tls-server-end-point` hash SCRAM-SHA-256-PLUS binds to.
//! The client side (pgtide as a server) is frontend/tls.rs; the backend side is upstream/tls.rs.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

/// The one crypto provider pgtide uses (rustls is built without a process default). `ring`
/// (deprecated in rustls 0.23.4x for lacking post-quantum key exchange) builds with a C
/// compiler alone; aws-lc-rs would add cmake to every build machine.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// TLS 1.2 and 1.3, as PostgreSQL's default `ssl_min_protocol_version` (TLSv1.2).
pub(crate) const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Every certificate in a PEM file, in order (leaf first for a chain).
pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: cannot read a private key: {e}", path.display()))
}

/// RFC 5929 `tls-server-end-point`: the server certificate hashed with its signature's hash
/// function (SHA-256 when that is MD5 or SHA-1). None when the signature algorithm is not one
/// recognised here (RSA-PSS names its hash in parameters, Ed25519 has none): then
/// SCRAM-SHA-256-PLUS is not offered, rather than offered with a hash the client would not
/// compute.
pub(crate) fn server_end_point(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    #[derive(Clone, Copy)]
    enum Hash {
        Sha256,
        Sha384,
        Sha512,
        Unknown,
    }
    const RSA: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: [u8; 6] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    // The DER of each signature algorithm OID (tag 06, length) and the hash it implies.
    let known: [(Vec<u8>, Hash); 11] = [
        (oid(&RSA, &[0x04]), Hash::Sha256), // md5WithRSAEncryption
        (oid(&RSA, &[0x05]), Hash::Sha256), // sha1WithRSAEncryption
        (oid(&RSA, &[0x0b]), Hash::Sha256),
        (oid(&RSA, &[0x0c]), Hash::Sha384),
        (oid(&RSA, &[0x0d]), Hash::Sha512),
        (oid(&RSA, &[0x0a]), Hash::Unknown),  // RSASSA-PSS
        (oid(&ECDSA, &[0x01]), Hash::Sha256), // ecdsa-with-SHA1
        (oid(&ECDSA, &[0x03, 0x02]), Hash::Sha256),
        (oid(&ECDSA, &[0x03, 0x03]), Hash::Sha384),
        (oid(&ECDSA, &[0x03, 0x04]), Hash::Sha512),
        (oid(&[0x2b, 0x65], &[0x70]), Hash::Unknown), // Ed25519
    ];
    let der: &[u8] = cert.as_ref();
    // The outer signatureAlgorithm is the last algorithm identifier in the certificate.
    let found = known
        .iter()
        .filter_map(|(oid, hash)| {
            let at = der.windows(oid.len()).rposition(|w| w == oid.as_slice())?;
            Some((at, *hash))
        })
        .max_by_key(|(at, _)| *at)?;
    match found.1 {
        Hash::Sha256 => Some(sha2::Sha256::digest(der).to_vec()),
        Hash::Sha384 => Some(sha2::Sha384::digest(der).to_vec()),
        Hash::Sha512 => Some(sha2::Sha512::digest(der).to_vec()),
        Hash::Unknown => None,
    }
}

/// The subject's common name of a DER certificate: None when it has none, more than one (which
/// one a server takes differs), a string type other than UTF8String, PrintableString or
/// IA5String (BMPString bytes read as UTF-8 could spell another name), or cannot be read.
/// Only called on certificates rustls verified.
pub(crate) fn subject_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const CN: [u8; 3] = [0x55, 0x04, 0x03]; // 2.5.4.3
    let (_, certificate, _) = der_item(cert.as_ref())?;
    let (_, tbs, _) = der_item(certificate)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (tag, body, after) = der_item(rest)?;
        fields.push((tag, body));
        rest = after;
    }
    // version [0] (optional), serialNumber, signature, issuer, validity, subject, ...
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let (tag, subject) = *fields.get(skip + 4)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut name = None;
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (_, set, after) = der_item(rdns)?;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (_, attr, next) = der_item(attrs)?;
            let (_, oid, value) = der_item(attr)?;
            if oid == CN {
                const TEXT_TYPES: [u8; 3] = [0x0c, 0x13, 0x16]; // UTF8, Printable, IA5
                let (kind, text, _) = der_item(value)?;
                if name.is_some() || !TEXT_TYPES.contains(&kind) {
                    return None;
                }
                name = Some(String::from_utf8(text.to_vec()).ok()?);
            }
            attrs = next;
        }
        rdns = after;
    }
    name
}

/// One DER item at the front of `data`: (tag, contents, what follows). Definite lengths only,
/// as DER requires.
fn der_item(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = rest
            .get(..n)?
            .iter()
            .fold(0usize, |l, &b| (l << 8) | usize::from(b));
        (len, rest.get(n..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// An OID's DER encoding: tag, length, `prefix` then `last`.
fn oid(prefix: &[u8], last: &[u8]) -> Vec<u8> {
    let mut v = vec![0x06, (prefix.len() + last.len()) as u8];
    v.extend_from_slice(prefix);
    v.extend_from_slice(last);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_name_the_file() {
        let e = certs(Path::new("/nonexistent/cert.pem")).expect_err("no file");
        assert!(e.starts_with("/nonexistent/cert.pem: cannot read"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let e = certs(&empty).expect_err("empty");
        assert!(e.ends_with("no certificate in the file"), "{e}");
        assert!(key(&empty).is_err());
    }

    /// A certificate with `subject` (DER of the Name) as its sixth field, the version present.
    fn with_subject(subject: &[u8]) -> CertificateDer<'static> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag, body.len() as u8];
            v.extend_from_slice(body);
            v
        }
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        for field in [
            tlv(0x02, &[1]),
            tlv(0x30, &[]),
            tlv(0x30, &[]),
            tlv(0x30, &[]),
        ] {
            tbs.extend(field);
        }
        tbs.extend(tlv(0x30, subject));
        CertificateDer::from(tlv(0x30, &tlv(0x30, &tbs)))
    }

    fn rdn(kind: u8, text: &[u8]) -> Vec<u8> {
        let mut attr = vec![0x06, 3, 0x55, 0x04, 0x03, kind, text.len() as u8];
        attr.extend_from_slice(text);
        let mut seq = vec![0x30, attr.len() as u8];
        seq.extend(attr);
        let mut set = vec![0x31, seq.len() as u8];
        set.extend(seq);
        set
    }

    #[test]
    fn the_common_name_must_be_one_plain_string() {
        let cn = |subject: Vec<u8>| subject_common_name(&with_subject(&subject));
        assert_eq!(cn(rdn(0x0c, b"alice")), Some("alice".into()));
        assert_eq!(cn(rdn(0x13, b"alice")), Some("alice".into()));
        assert_eq!(
            cn([rdn(0x0c, b"alice"), rdn(0x0c, b"bob")].concat()),
            None,
            "two CNs"
        );
        assert_eq!(cn(rdn(0x1e, b"\0b\0o\0b")), None, "BMPString");
        assert_eq!(cn(rdn(0x0c, &[0xff, 0xfe])), None, "not UTF-8");
        assert_eq!(cn(Vec::new()), None, "no CN");
        assert_eq!(
            subject_common_name(&CertificateDer::from(vec![0x30, 0x82, 0xff])),
            None
        );
    }

    #[test]
    fn end_point_hash_follows_the_signature_hash() {
        let with = |alg: Vec<u8>| {
            let mut der = vec![0x30, 0x0a];
            der.extend(alg);
            server_end_point(&CertificateDer::from(der)).map(|h| h.len())
        };
        let ecdsa = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
        assert_eq!(with(oid(&ecdsa, &[0x03, 0x02])), Some(32));
        assert_eq!(with(oid(&ecdsa, &[0x03, 0x03])), Some(48));
        let rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
        assert_eq!(with(oid(&rsa, &[0x0d])), Some(64));
        assert_eq!(
            with(oid(&rsa, &[0x05])),
            Some(32),
            "SHA-1 binds with SHA-256"
        );
        assert_eq!(with(oid(&rsa, &[0x0a])), None, "RSA-PSS: -PLUS not offered");
        assert_eq!(with(oid(&[0x2b, 0x65], &[0x70])), None, "Ed25519");
        assert_eq!(with(vec![0x02, 0x01, 0x01]), None, "no algorithm at all");
    }
}
