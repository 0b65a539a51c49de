//! TLS for clients. The acceptor is made from `[server.tls]` at start and made again on every
//! reload (re-reading the files), so new connections get a rotated certificate while open
//! sessions keep the one they shook hands with. A connection opens with an SSLRequest
//! (answered 'S' and the handshake run, or 'N' when TLS is off), with a TLS handshake at once
//! (PostgreSQL 17's direct TLS, ALPN "postgresql"), or in plain text.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use pgtide_config::{ClientTlsConfig, ClientTlsMode};
use pgtide_wire::Opening;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ProxyError, Result};
use crate::net::tls::{certs, key, provider, server_end_point, subject_common_name, VERSIONS};
use crate::net::Stream;

/// The ALPN protocol name PostgreSQL 17 clients offer (and require for direct TLS).
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// The server side of TLS: what a handshake needs, and the certificate's channel binding.
pub(crate) struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    /// `tls-server-end-point` of the certificate, for SCRAM-SHA-256-PLUS (None: its signature
    /// algorithm has no binding hash pgtide knows, and -PLUS is not offered).
    end_point: Option<Vec<u8>>,
}

impl ServerTls {
    /// The acceptor `[server.tls]` describes; None when TLS is off or no certificate is set
    /// (then SSLRequest is answered 'N'). An error names the file that could not be used.
    pub(crate) fn load(config: &ClientTlsConfig) -> std::result::Result<Option<Arc<Self>>, String> {
        let (Some(cert_file), Some(key_file)) = (&config.cert, &config.key) else {
            return Ok(None);
        };
        if config.mode == ClientTlsMode::Disable {
            return Ok(None);
        }
        let chain = certs(cert_file)?;
        let end_point = server_end_point(&chain[0]);
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| e.to_string())?;
        let builder = match &config.client_ca {
            // Certificates are asked for, checked when given, and required only of the users
            // whose auth_method is "cert".
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(certs(ca)?);
                if added == 0 {
                    return Err(format!("{}: no usable CA certificate", ca.display()));
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut tls = builder
            .with_single_cert(chain, key(key_file)?)
            .map_err(|e| format!("{} with {}: {e}", cert_file.display(), key_file.display()))?;
        tls.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        // No session resumption, as PostgreSQL: a resumed session would bring back a client
        // certificate's identity without checking the certificate again.
        tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        tls.send_tls13_tickets = 0;
        Ok(Some(Arc::new(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            end_point,
        })))
    }
}

/// A client connection past its opening.
pub(crate) struct Opened {
    pub stream: Stream,
    pub facts: TlsFacts,
}

/// What the TLS handshake established for authentication (all None in plain text).
#[derive(Default)]
pub(crate) struct TlsFacts {
    /// The certificate's `tls-server-end-point` (SCRAM-SHA-256-PLUS), when known.
    pub end_point: Option<Vec<u8>>,
    /// The common name of the certificate the client presented (verified against
    /// `server.tls.client_ca`), for `auth_method = "cert"`.
    pub client_cn: Option<String>,
}

/// Runs the opening of a client connection: None when the client went away or its handshake
/// failed (logged; there is no channel to answer it on). `buf` keeps what a plain-text client
/// sent past its requests (its startup packet).
pub(crate) async fn open(
    mut socket: TcpStream,
    buf: &mut BytesMut,
    tls: Option<&ServerTls>,
) -> Result<Option<Opened>> {
    let mut first = [0u8; 1];
    if socket
        .peek(&mut first)
        .await
        .map_err(ProxyError::ClientIo)?
        == 0
    {
        return Ok(None);
    }
    if first[0] == pgtide_wire::TLS_HANDSHAKE_RECORD {
        let Some(tls) = tls else {
            tracing::info!("client started TLS directly, but TLS is off: closed");
            return Ok(None);
        };
        return handshake(socket, tls, true).await;
    }
    loop {
        match pgtide_wire::opening(buf) {
            Opening::NeedMore => {
                if socket.read_buf(buf).await.map_err(ProxyError::ClientIo)? == 0 {
                    return Ok(None);
                }
            }
            Opening::SslRequest => {
                buf.advance(8);
                let Some(tls) = tls else {
                    // Plain text from here on; the startup phase (and its timeout message)
                    // takes over.
                    write(&mut socket, b"N").await?;
                    return Ok(Some(Opened {
                        stream: Stream::tcp(socket),
                        facts: TlsFacts::default(),
                    }));
                };
                if !buf.is_empty() {
                    // Bytes sent before the handshake would be taken as if encrypted.
                    return Err(ProxyError::ClientProtocolMsg(
                        "received unencrypted data after SSL request".into(),
                    ));
                }
                write(&mut socket, b"S").await?;
                return handshake(socket, tls, false).await;
            }
            Opening::GssEncRequest => {
                // libpq asks for GSS encryption first and for TLS next.
                buf.advance(8);
                write(&mut socket, b"N").await?;
            }
            _ => {
                return Ok(Some(Opened {
                    stream: Stream::tcp(socket),
                    facts: TlsFacts::default(),
                }))
            }
        }
    }
}

async fn write(socket: &mut TcpStream, bytes: &[u8]) -> Result<()> {
    socket.write_all(bytes).await.map_err(ProxyError::ClientIo)
}

async fn handshake(socket: TcpStream, tls: &ServerTls, direct: bool) -> Result<Option<Opened>> {
    let stream = match tls.acceptor.accept(socket).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(error = %e, "client TLS handshake failed");
            return Ok(None);
        }
    };
    if direct && stream.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
        // PostgreSQL refuses direct TLS without ALPN (it could be another protocol's client).
        tracing::info!("direct TLS without ALPN \"postgresql\": closed");
        return Ok(None);
    }
    let client_cn = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(subject_common_name);
    Ok(Some(Opened {
        stream: Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(stream))),
        facts: TlsFacts {
            end_point: tls.end_point.clone(),
            client_cn,
        },
    }))
}
