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
/// function, SHA-256 when that is MD5 or SHA-1 (or not recognised here: SHA-256 is what
/// every common certificate uses).
pub(crate) fn server_end_point(cert: &CertificateDer<'_>) -> Vec<u8> {
    // DER of the signature algorithm OIDs that name SHA-384 and SHA-512 (RSA PKCS#1, RSA-PSS
    // names its hash elsewhere and falls back to SHA-256, ECDSA).
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    let der: &[u8] = cert.as_ref();
    let names = |oids: [&[u8]; 2]| {
        oids.iter()
            .any(|oid| der.windows(oid.len()).any(|w| w == *oid))
    };
    if names(SHA512) {
        sha2::Sha512::digest(der).to_vec()
    } else if names(SHA384) {
        sha2::Sha384::digest(der).to_vec()
    } else {
        sha2::Sha256::digest(der).to_vec()
    }
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

    #[test]
    fn end_point_hash_follows_the_signature_hash() {
        let plain = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(server_end_point(&plain).len(), 32);
        let mut with_384 = vec![0x30, 0x0a, 0x06, 0x08];
        with_384.extend_from_slice(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        assert_eq!(server_end_point(&CertificateDer::from(with_384)).len(), 48);
    }
}
