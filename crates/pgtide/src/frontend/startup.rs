//! The client's startup phase: SSL/GSSENC negotiation (answered 'N' until TLS lands), cancel
//! requests, the StartupMessage, and password authentication against the configured users.

use bytes::BytesMut;
use pgtide_config::{AuthMethod, PassThrough, Secret, UserConfig};
use pgtide_wire::{encode, frontend, FrameDecoder, StartupPacket};
use tokio::io::AsyncReadExt;

use crate::error::{ProxyError, Result};
use crate::frontend::auth::{
    md5_hash, md5_verify, mechanisms, mock_exchange_for, random_salt, ScramExchange,
};
use crate::net::Stream;
use crate::server::shared::Shared;

/// PostgreSQL's caps on a client's authentication messages (length field included), so an
/// unauthenticated client cannot make pgtide buffer up to max_message_size:
/// PG_MAX_AUTH_TOKEN_LENGTH for a password (cleartext or md5) and PG_MAX_SASL_MESSAGE_LENGTH
/// for a SASL message.
const MAX_PASSWORD_MESSAGE: usize = 65_535;
const MAX_SASL_MESSAGE: usize = 1_024;

/// What to do with an authentication message over its cap, as PostgreSQL does: a password is
/// dropped with the connection, no message (it takes it for a client gone); a SASL message
/// fails authentication (28P01).
#[derive(Clone, Copy)]
enum Oversize {
    Close,
    BadPassword,
}

/// What a client asked for in its StartupMessage.
#[derive(Debug, Clone)]
pub(crate) struct StartupRequest {
    pub user: String,
    pub database: String,
    pub params: Vec<(String, String)>,
}

/// The outcome of reading startup packets.
pub(crate) enum Hello {
    Startup(StartupRequest),
    /// A CancelRequest was handled; the connection just closes.
    Cancelled,
    /// The client went away before saying anything useful.
    Gone,
}

/// Reads startup packets until a StartupMessage or CancelRequest arrives. `buf` keeps any bytes
/// the client sent beyond the startup packet (a pipelining client's first query).
pub(crate) async fn read_hello(
    stream: &mut Stream,
    buf: &mut BytesMut,
    shared: &Shared,
) -> Result<Hello> {
    // Each request is answered once, in plain text only, as PostgreSQL does: a client that
    // repeats them without reading would otherwise have pgtide write forever.
    let (mut ssl_answered, mut gss_answered) = (false, false);
    loop {
        match pgtide_wire::decode_startup(buf)? {
            Some(request @ (StartupPacket::SslRequest | StartupPacket::GssEncRequest)) => {
                let answered = match request {
                    StartupPacket::SslRequest => &mut ssl_answered,
                    _ => &mut gss_answered,
                };
                if *answered || stream.is_tls() {
                    return Err(ProxyError::ClientProtocolMsg(
                        "unsupported frontend protocol: encryption requested again".into(),
                    ));
                }
                *answered = true;
                // TLS is off (or was declined at the opening): 'N' makes clients continue in
                // plain text (or give up when they require encryption, which is their call).
                write_all(stream, b"N").await?;
            }
            Some(StartupPacket::Cancel {
                process_id,
                secret_key,
            }) => {
                shared.cancels.cancel(process_id, secret_key).await;
                return Ok(Hello::Cancelled);
            }
            Some(StartupPacket::Startup { params, .. }) => {
                let user = params
                    .iter()
                    .find(|(k, _)| k == "user")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let database = params
                    .iter()
                    .find(|(k, _)| k == "database")
                    .map(|(_, v)| v.clone())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| user.clone());
                return Ok(Hello::Startup(StartupRequest {
                    user,
                    database,
                    params,
                }));
            }
            None => {
                let n = stream.read_buf(buf).await.map_err(ProxyError::ClientIo)?;
                if n == 0 {
                    return Ok(Hello::Gone);
                }
            }
        }
    }
}

/// How a client proves who it is.
pub(crate) struct Exchange<'a> {
    pub method: AuthMethod,
    pub max_message_size: usize,
    /// The TLS certificate's `tls-server-end-point` when the connection is TLS.
    pub end_point: Option<&'a [u8]>,
    /// The common name of the client's verified TLS certificate, if it gave one.
    pub client_cn: Option<&'a str>,
    /// False for a user pgtide does not know: the exchange runs in full and always fails,
    /// so the answer is the one a wrong password gets.
    pub known: bool,
}

/// Proves the client is `user`, by the user's auth method. On success nothing is written yet:
/// the caller sends AuthenticationOk with the rest of the greeting in one write. A user with
/// no usable secret (or unknown) goes through the same messages and fails at the end. Returns
/// what the proof allows pgtide to log in to PostgreSQL with as this user (none under trust).
pub(crate) async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    shared: &Shared,
    user: &UserConfig,
    exchange: Exchange<'_>,
) -> Result<Option<PassThrough>> {
    let Exchange {
        method,
        max_message_size,
        end_point,
        client_cn,
        known,
    } = exchange;
    let bad = || ProxyError::BadPassword {
        user: user.name.clone(),
    };
    match method {
        AuthMethod::Trust => Ok(None),
        // As PostgreSQL's `cert`: a verified certificate naming this user, and nothing else.
        AuthMethod::Cert => match client_cn {
            Some(cn) if known && cn == user.name => Ok(None),
            Some(_) => Err(ProxyError::UnknownUserOrDatabase(format!(
                "certificate authentication failed for user \"{}\"",
                user.name
            ))),
            None => Err(ProxyError::UnknownUserOrDatabase(format!(
                "connection requires a valid client certificate (user \"{}\")",
                user.name
            ))),
        },
        AuthMethod::Md5 => {
            // No stored hash: a random one, so the client gets the same challenge and the
            // check costs the same.
            let stored = match user.secret() {
                Secret::Plain(p) if known => md5_hash(&user.name, &p),
                Secret::Md5Hash(h) if known => h,
                _ => md5_hash(&user.name, &format!("{:x}", rand::random::<u128>())),
            };
            let salt = random_salt();
            let mut out = BytesMut::new();
            encode::authentication_md5(&mut out, salt);
            write_all(stream, &out).await?;
            let limit = (MAX_PASSWORD_MESSAGE, Oversize::Close);
            let body = read_password_message(stream, buf, max_message_size, limit, user).await?;
            let response = pgtide_wire::password_text(&body)?;
            if md5_verify(&stored, salt, response) {
                Ok(Some(PassThrough::Md5(stored)))
            } else {
                Err(bad())
            }
        }
        AuthMethod::ScramSha256 => {
            let mut exchange = match shared.scram_secret(user).filter(|_| known) {
                Some(secret) => ScramExchange::new(secret),
                None => mock_exchange_for(&user.name),
            };
            let sasl = (MAX_SASL_MESSAGE, Oversize::BadPassword);
            let mut out = BytesMut::new();
            let offered = mechanisms(end_point.is_some());
            encode::authentication_sasl(&mut out, offered)?;
            write_all(stream, &out).await?;

            let body = read_password_message(stream, buf, max_message_size, sasl, user).await?;
            let initial = pgtide_wire::sasl_initial_response(&body)?;
            if !offered.contains(&initial.mechanism) {
                return Err(ProxyError::ClientProtocolMsg(format!(
                    "unsupported SASL mechanism \"{}\"",
                    initial.mechanism
                )));
            }
            exchange.bind_channel(end_point, initial.mechanism);
            let server_first = exchange
                .client_first(initial.data)
                .map_err(|e| ProxyError::ClientProtocolMsg(e.to_string()))?;
            out.clear();
            encode::authentication_sasl_continue(&mut out, &server_first);
            write_all(stream, &out).await?;

            let body = read_password_message(stream, buf, max_message_size, sasl, user).await?;
            let server_final = exchange.client_final(&body).map_err(|e| match e {
                crate::frontend::auth::AuthError::BadPassword => bad(),
                other => ProxyError::ClientProtocolMsg(other.to_string()),
            })?;
            out.clear();
            encode::authentication_sasl_final(&mut out, &server_final);
            write_all(stream, &out).await?;
            Ok(exchange.client_key().map(|client_key| PassThrough::Scram {
                client_key,
                server_key: exchange.server_key(),
            }))
        }
    }
}

/// Reads the next message, which must be a PasswordMessage / SASL response ('p') no longer
/// than `limit` (and max_message_size).
async fn read_password_message(
    stream: &mut Stream,
    buf: &mut BytesMut,
    max_message_size: usize,
    (limit, oversize): (usize, Oversize),
    user: &UserConfig,
) -> Result<bytes::Bytes> {
    let decoder = FrameDecoder::new(limit.min(max_message_size));
    loop {
        match decoder.decode(buf) {
            Ok(Some(frame)) => {
                if frame.tag != frontend::PASSWORD {
                    return Err(ProxyError::ClientProtocolMsg(format!(
                        "expected a password message, got '{}'",
                        frame.tag as char
                    )));
                }
                return Ok(frame.body_bytes());
            }
            Ok(None) => {}
            Err(e @ pgtide_wire::WireError::MessageTooLarge { .. }) => {
                return Err(match oversize {
                    Oversize::Close => ProxyError::ClientIo(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    )),
                    Oversize::BadPassword => ProxyError::BadPassword {
                        user: user.name.clone(),
                    },
                });
            }
            Err(e) => return Err(e.into()),
        }
        let n = stream.read_buf(buf).await.map_err(ProxyError::ClientIo)?;
        if n == 0 {
            return Err(ProxyError::ClientProtocolMsg(
                "client closed the connection during authentication".into(),
            ));
        }
    }
}

pub(crate) async fn write_all(stream: &mut Stream, bytes: &[u8]) -> Result<()> {
    crate::net::send_all(stream, bytes)
        .await
        .map_err(ProxyError::ClientIo)
}
