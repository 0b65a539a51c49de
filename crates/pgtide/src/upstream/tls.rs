//! TLS to the backends, per database (`tls`, `ca_file`, `client_cert`, `client_key`), with
//! libpq's sslmode meanings: `prefer` and `require` encrypt without checking the certificate
//! (`require` with a `ca_file` checks the chain, and `prefer` falls back to plain TCP when the
//! handshake fails), `verify-ca` checks it was signed by a trusted CA, `verify-full` also that
//! it names the host.
//! The rustls configuration is made once per distinct setting (and again when a file changes),
//! not per connection: loading the platform's roots reads a few hundred certificates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::BytesMut;
use pgtide_config::{BackendTlsMode, DatabaseConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::tls::{certs, key, provider, VERSIONS};
use crate::net::Stream;

/// A database's TLS settings, as a backend target carries them (compared on reload).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BackendTls {
    pub mode: BackendTlsMode,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl BackendTls {
    pub fn of(db: &DatabaseConfig) -> BackendTls {
        BackendTls {
            mode: db.tls,
            ca_file: db.ca_file.clone(),
            client_cert: db.client_cert.clone(),
            client_key: db.client_key.clone(),
        }
    }
}

/// Connects to `host:port` and, unless TLS is disabled, asks for TLS (SSLRequest) and shakes
/// hands as `tls` says. The error says why a connection that had to be encrypted is not.
pub(crate) async fn connect(host: &str, port: u16, tls: &BackendTls) -> std::io::Result<Stream> {
    let mut socket = TcpStream::connect((host, port)).await?;
    let _ = socket.set_nodelay(true);
    if tls.mode == BackendTlsMode::Disable {
        return Ok(Stream::tcp(socket));
    }
    let mut request = BytesMut::new();
    pgtide_wire::encode::ssl_request(&mut request);
    socket.write_all(&request).await?;
    let mut answer = [0u8; 1];
    socket.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {}
        b'N' if tls.mode == BackendTlsMode::Prefer => return Ok(Stream::tcp(socket)),
        b'N' => {
            return Err(std::io::Error::other(format!(
                "the server does not support TLS (tls = \"{}\")",
                tls.mode.as_str()
            )))
        }
        other => {
            return Err(std::io::Error::other(format!(
                "unexpected answer '{}' to SSLRequest",
                other.escape_ascii()
            )))
        }
    }
    let config = client_config(tls).map_err(std::io::Error::other)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::other(format!("host {host:?} as a TLS name: {e}")))?;
    match tokio_rustls::TlsConnector::from(config)
        .connect(name, socket)
        .await
    {
        Ok(stream) => Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(
            stream,
        )))),
        // As libpq's sslmode=prefer: a failed handshake is tried again without TLS.
        Err(e) if tls.mode == BackendTlsMode::Prefer => {
            tracing::info!(error = %e, host, port, "backend TLS handshake failed: plain TCP (prefer)");
            let socket = TcpStream::connect((host, port)).await?;
            let _ = socket.set_nodelay(true);
            Ok(Stream::tcp(socket))
        }
        Err(e) => Err(std::io::Error::other(format!("TLS handshake: {e}"))),
    }
}

/// The rustls client configuration for `tls`, made once per setting and files' versions.
fn client_config(tls: &BackendTls) -> Result<Arc<rustls::ClientConfig>, String> {
    // One entry per setting, replaced when a file changes (not one per file version: a
    // rotated certificate must not leave the old configuration behind).
    type Made = HashMap<BackendTls, (Vec<Option<SystemTime>>, Arc<rustls::ClientConfig>)>;
    static MADE: OnceLock<Mutex<Made>> = OnceLock::new();
    let modified: Vec<_> = [&tls.ca_file, &tls.client_cert, &tls.client_key]
        .iter()
        .map(|p| {
            p.as_ref()
                .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        })
        .collect();
    let made = MADE.get_or_init(Default::default);
    let lock = || made.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((when, config)) = lock().get(tls) {
        if *when == modified {
            return Ok(config.clone());
        }
    }
    let config = Arc::new(make_client_config(tls)?);
    lock().insert(tls.clone(), (modified, config.clone()));
    Ok(config)
}

fn make_client_config(tls: &BackendTls) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?;
    // As libpq: `require` with a CA file given checks the chain, like verify-ca.
    let checks_chain = |mode| match mode {
        BackendTlsMode::Require => tls.ca_file.is_some(),
        BackendTlsMode::VerifyCa | BackendTlsMode::VerifyFull => true,
        BackendTlsMode::Disable | BackendTlsMode::Prefer => false,
    };
    let chain = match checks_chain(tls.mode) {
        true => Some(
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(tls.ca_file.as_ref())?),
                provider(),
            )
            .build()
            .map_err(|e| e.to_string())?,
        ),
        false => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.mode, chain) {
        (BackendTlsMode::VerifyFull, Some(webpki)) => webpki,
        (_, chain) => Arc::new(Relaxed { chain }),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(k)) => builder
            .with_client_auth_cert(certs(cert)?, key(k)?)
            .map_err(|e| format!("{}: {e}", cert.display())),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The CA file's certificates, or the platform's trusted roots.
fn roots(ca_file: Option<&PathBuf>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let found = match ca_file {
        Some(path) => certs(path)?,
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            if loaded.certs.is_empty() {
                return Err(format!(
                    "no ca_file given and no platform CA certificates found ({:?})",
                    loaded.errors
                ));
            }
            loaded.certs
        }
    };
    let (added, _ignored) = store.add_parsable_certificates(found);
    if added == 0 {
        return Err("no usable CA certificate".into());
    }
    Ok(store)
}

/// Every mode short of verify-full: the chain checked against the roots when `chain` is set
/// (verify-ca, or require with a CA file) and the host name not compared; any certificate
/// otherwise (prefer, require), as libpq does without a root certificate. The handshake's
/// signatures are checked either way, so the peer holds the certificate's key.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki compares the name last, once the chain has been checked.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
