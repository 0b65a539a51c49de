//! A certificate authority made in the test (rcgen), the certificates it issues as PEM files,
//! and TLS clients that trust it: for pgtide's client side and for a PostgreSQL with
//! `ssl = on`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};

/// A test CA and the directory its files are written to.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

/// A certificate issued by a [`TestCa`], as files and as DER.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        // PostgreSQL, run as the postgres OS user, reads certificates from here.
        set_mode(dir.path(), 0o755);
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write CA");
        TestCa { issuer, dir }
    }

    /// The CA certificate's PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), written to
    /// `<stem>.crt` and `<stem>.key` (replacing what was there).
    pub fn issue(&self, stem: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, stem.to_string());
        // Good for either end: pgtide's server certificate or a client's.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let issued = Issued {
            cert: self.dir.path().join(format!("{stem}.crt")),
            key: self.dir.path().join(format!("{stem}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write cert");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write key");
        set_mode(&issued.cert, 0o644);
        set_mode(&issued.key, 0o600);
        issued
    }

    /// Hands a certificate's files to the postgres OS user (PostgreSQL refuses a key file
    /// others can read, and runs as that user when the tests run as root).
    pub fn give_to_postgres(&self, issued: &Issued) {
        if !is_root() {
            return;
        }
        for path in [&issued.cert, &issued.key] {
            let status = std::process::Command::new("chown")
                .arg("postgres")
                .arg(path)
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", path.display());
        }
    }

    /// A rustls client that trusts only this CA (and checks host names), offering ALPN
    /// `alpn` when given.
    pub fn client_config(&self, alpn: Option<&[u8]>) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("CA root");
        let provider = Arc::new(ring_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.map(|a| vec![a.to_vec()]).unwrap_or_default();
        config
    }

    /// tokio-postgres' TLS connector trusting this CA.
    pub fn tokio_postgres(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new(self.client_config(None))
    }

    /// tokio-postgres' TLS connector trusting this CA and presenting `cert` as its client
    /// certificate (issued by any CA).
    pub fn tokio_postgres_with(&self, cert: &Issued) -> tokio_postgres_rustls::MakeRustlsConnect {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("CA root");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&cert.key).expect("client key");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert.der.clone()], key)
            .expect("client certificate");
        tokio_postgres_rustls::MakeRustlsConnect::new(config)
    }

    /// Opens a TLS connection to `port` at once (no SSLRequest: PostgreSQL 17's direct TLS),
    /// checking the certificate against `host`, with a 4 KiB receive buffer.
    pub async fn direct(
        &self,
        port: u16,
        host: &str,
        alpn: Option<&[u8]>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let config = Arc::new(self.client_config(alpn));
        direct_with(config, port, host).await
    }
}

/// [`TestCa::direct`] with a given client configuration (one kept across connections keeps
/// its session cache, as a client that resumes sessions would).
pub async fn direct_with(
    config: Arc<rustls::ClientConfig>,
    port: u16,
    host: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    {
        // A small receive buffer: pgtide's writes meet a full socket often, as they would
        // with a slow client on a real network.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let socket = socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
        connector.connect(name, socket).await
    }
}

#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
