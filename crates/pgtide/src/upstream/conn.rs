//! One connection from pgtide to a PostgreSQL server: connect, log in, and the small helpers the
//! pool and sessions need (run a statement and drain to ReadyForQuery, close).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgtide_config::PassThrough;
use pgtide_wire::{backend as tag, encode, AuthRequest, Frame, FrameDecoder};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::AsyncReadExt;

use crate::error::{Lost, ProxyError, Result};
use crate::net::{ReadHalf, WriteHalf};
use crate::session::prepared::PreparedLru;
use crate::upstream::pass_through::{Scram, ScramFromKeys};

/// Where and as whom pgtide logs in to a PostgreSQL server.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BackendTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// The database's TLS settings.
    pub tls: crate::upstream::tls::BackendTls,
    /// Log in with what the client's own login proved instead of a password (`[auth] query`).
    pub pass_through: Option<pgtide_config::PassThrough>,
}

impl std::fmt::Debug for BackendTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.label())
    }
}

impl BackendTarget {
    /// host:port, safe for logs and metric labels (no credentials).
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Backend messages larger than this are a broken server, not a big row (PostgreSQL caps at 1 GB).
const MAX_BACKEND_MESSAGE: usize = 1 << 30;
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct BackendConn {
    pub id: u64,
    pub target: Arc<BackendTarget>,
    pub(crate) reader: ReadHalf,
    pub(crate) writer: WriteHalf,
    /// Bytes read from the server and not yet handled.
    pub rbuf: BytesMut,
    /// The server's ParameterStatus values as last reported.
    pub params: HashMap<String, String>,
    /// The server's (process id, secret key), used to forward cancel requests.
    pub key: (i32, i32),
    pub created: Instant,
    pub last_used: Instant,
    /// Statements pgtide prepared on this connection (transaction mode).
    pub prepared: PreparedLru,
    /// Session settings changed on this connection since login (by clients or pgtide's replay).
    pub settings: crate::session::client_state::Settings,
}

impl BackendConn {
    /// Connects and logs in, returning once the server said ReadyForQuery.
    pub async fn connect(
        target: Arc<BackendTarget>,
        startup_params: &[(&str, &str)],
        timeout: Duration,
        max_prepared: usize,
    ) -> Result<BackendConn> {
        let fail = |source: Lost| ProxyError::BackendConnect {
            backend: target.label(),
            source,
        };
        let connect = crate::upstream::tls::connect(&target.host, target.port, &target.tls);
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| fail(format!("connect timed out after {timeout:?}").into()))?
            .map_err(|e| fail(e.into()))?;
        let (reader, writer) = stream.into_split();
        let mut conn = BackendConn {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            target: target.clone(),
            reader,
            writer,
            rbuf: BytesMut::with_capacity(16 * 1024),
            params: HashMap::new(),
            key: (0, 0),
            created: Instant::now(),
            last_used: Instant::now(),
            prepared: PreparedLru::new(max_prepared),
            settings: Default::default(),
        };
        tokio::time::timeout(timeout, conn.login(startup_params))
            .await
            .map_err(|_| fail(format!("login timed out after {timeout:?}").into()))?
            .map_err(|e| match e {
                ProxyError::BackendSetup(lost) => fail(lost),
                other => other,
            })?;
        Ok(conn)
    }

    async fn login(&mut self, startup_params: &[(&str, &str)]) -> Result<()> {
        let target = self.target.clone();
        let mut params: Vec<(&str, &str)> = vec![
            ("user", target.user.as_str()),
            ("database", target.database.as_str()),
        ];
        params.extend(startup_params.iter().copied());
        let mut out = BytesMut::new();
        encode::startup_message(&mut out, &params).map_err(lost)?;
        self.send(&out).await?;

        let password = target.password.clone().unwrap_or_default();
        let mut scram: Option<Scram> = None;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                tag::AUTHENTICATION => {
                    let req = pgtide_wire::authentication(frame.body()).map_err(lost)?;
                    let mut out = BytesMut::new();
                    match req {
                        AuthRequest::Ok => continue,
                        AuthRequest::CleartextPassword => {
                            encode::password_message(&mut out, password.as_bytes())
                                .map_err(lost)?;
                        }
                        AuthRequest::Md5Password { salt } => {
                            let hash = match &target.pass_through {
                                Some(PassThrough::Md5(stored)) => {
                                    crate::frontend::auth::md5_response(stored, salt)
                                        .ok_or_else(|| lost("malformed stored md5 hash"))?
                                }
                                _ => postgres_protocol::authentication::md5_hash(
                                    target.user.as_bytes(),
                                    password.as_bytes(),
                                    salt,
                                ),
                            };
                            encode::password_message(&mut out, hash.as_bytes()).map_err(lost)?;
                        }
                        AuthRequest::Sasl { mechanisms } => {
                            if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                                return Err(lost(format!(
                                    "server offers only SASL mechanisms {mechanisms:?}"
                                )));
                            }
                            let s = match target.pass_through.as_ref() {
                                Some(keys) => Scram::Keys(
                                    ScramFromKeys::new(keys)
                                        .ok_or_else(|| lost("SCRAM asked of an md5 user"))?,
                                ),
                                None => Scram::Password(ScramSha256::new(
                                    password.as_bytes(),
                                    ChannelBinding::unsupported(),
                                )),
                            };
                            encode::sasl_initial_response(&mut out, "SCRAM-SHA-256", s.message())
                                .map_err(lost)?;
                            scram = Some(s);
                        }
                        AuthRequest::SaslContinue(data) => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| lost("unexpected SASL continue"))?;
                            s.update(&data).map_err(|e| lost(format!("SCRAM: {e}")))?;
                            encode::sasl_response(&mut out, s.message()).map_err(lost)?;
                        }
                        AuthRequest::SaslFinal(data) => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| lost("unexpected SASL final"))?;
                            s.finish(&data)
                                .map_err(|e| lost(format!("SCRAM server signature: {e}")))?;
                            continue;
                        }
                        AuthRequest::Unsupported(code) => {
                            return Err(lost(format!(
                                "server asks for an unsupported authentication method ({code})"
                            )))
                        }
                    }
                    self.send(&out).await?;
                }
                tag::PARAMETER_STATUS => {
                    let (k, v) = pgtide_wire::parameter_status(frame.body()).map_err(lost)?;
                    self.params.insert(k, v);
                }
                tag::BACKEND_KEY_DATA => {
                    self.key = pgtide_wire::backend_key_data(frame.body()).map_err(lost)?;
                }
                tag::ERROR_RESPONSE => {
                    let e = pgtide_wire::error_fields(frame.body()).map_err(lost)?;
                    return Err(lost(format!("{} ({})", e.message, e.code)));
                }
                tag::NOTICE_RESPONSE | tag::NEGOTIATE_PROTOCOL_VERSION => {}
                tag::READY_FOR_QUERY => return Ok(()),
                other => {
                    return Err(lost(format!(
                        "unexpected message '{}' during login",
                        other as char
                    )))
                }
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        crate::net::send_all(&mut self.writer, bytes)
            .await
            .map_err(|e| ProxyError::BackendSetup(e.into()))
    }

    /// Reads one whole message (used outside the session relay: login, resets, health checks).
    pub async fn read_frame(&mut self) -> Result<Frame> {
        let decoder = FrameDecoder::new(MAX_BACKEND_MESSAGE);
        loop {
            if let Some(frame) = decoder.decode(&mut self.rbuf).map_err(lost)? {
                return Ok(frame);
            }
            let n = self
                .reader
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| ProxyError::BackendSetup(e.into()))?;
            if n == 0 {
                return Err(ProxyError::BackendSetup(Lost::Closed));
            }
        }
    }

    /// Runs simple-protocol statements and drains every reply up to the last ReadyForQuery.
    /// Returns the first error the server reported, if any, and the final transaction status.
    /// Runs simple queries; returns the final transaction status and the first error's
    /// (SQLSTATE, message), if any.
    pub async fn run_simple(
        &mut self,
        statements: &[&str],
    ) -> Result<(u8, Option<(String, String)>)> {
        let mut out = BytesMut::new();
        for s in statements {
            encode::query(&mut out, s)?;
        }
        self.send(&out).await?;
        self.drain_ready(statements.len()).await
    }

    /// Runs one simple query and returns its first row as text values (None for NULL); an
    /// error reply is returned as BackendLost with the server's message.
    pub async fn query_row(&mut self, sql: &str) -> Result<Vec<Option<String>>> {
        let mut out = BytesMut::new();
        encode::query(&mut out, sql)?;
        self.send(&out).await?;
        let mut row = None;
        let mut error = None;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                tag::DATA_ROW if row.is_none() => row = Some(data_row_text(frame.body())),
                tag::ERROR_RESPONSE => {
                    let e = pgtide_wire::error_fields(frame.body()).map_err(lost)?;
                    error = Some(format!("{} ({})", e.message, e.code));
                }
                tag::PARAMETER_STATUS => self.note_parameter(frame.body()),
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        match (error, row) {
            (Some(e), _) => Err(ProxyError::BackendSetup(e.into())),
            (None, Some(row)) => Ok(row),
            (None, None) => Err(lost(format!("no row for {sql}"))),
        }
    }

    /// Reads until `count` ReadyForQuery messages arrived, tracking ParameterStatus changes.
    pub async fn drain_ready(
        &mut self,
        mut count: usize,
    ) -> Result<(u8, Option<(String, String)>)> {
        let mut first_error = None;
        let mut status = pgtide_wire::status::IDLE;
        while count > 0 {
            let frame = self.read_frame().await?;
            match frame.tag {
                tag::READY_FOR_QUERY => {
                    status = pgtide_wire::ready_for_query_status(frame.body()).map_err(lost)?;
                    count -= 1;
                }
                tag::ERROR_RESPONSE if first_error.is_none() => {
                    let e = pgtide_wire::error_fields(frame.body()).map_err(lost)?;
                    first_error = Some((e.code, e.message));
                }
                tag::PARAMETER_STATUS => self.note_parameter(frame.body()),
                _ => {}
            }
        }
        Ok((status, first_error))
    }

    /// An idle connection must have nothing to say: EOF or unexpected bytes (such as the FATAL
    /// a server sends when it shuts down) mean it is unusable. One non-blocking read, no wait.
    pub fn is_quiet(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(
            self.reader.try_read(&mut probe),
            Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    pub fn note_parameter(&mut self, body: &[u8]) {
        if let Ok((k, v)) = pgtide_wire::parameter_status(body) {
            self.params.insert(k, v);
        }
    }

    /// Sends a CancelRequest for whatever this connection runs now.
    pub fn cancel_target(&self) -> CancelTarget {
        CancelTarget {
            target: self.target.clone(),
            process_id: self.key.0,
            secret_key: self.key.1,
        }
    }

    /// Polite close: Terminate, then drop the socket.
    pub async fn terminate(mut self) {
        let mut out = BytesMut::new();
        encode::terminate(&mut out);
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            crate::net::send_all(&mut self.writer, &out),
        )
        .await;
    }
}

/// What is needed to cancel the query a backend connection runs.
#[derive(Clone, Debug)]
pub struct CancelTarget {
    pub target: Arc<BackendTarget>,
    pub process_id: i32,
    pub secret_key: i32,
}

impl CancelTarget {
    /// Opens a new connection to the server and sends the CancelRequest; waits for the server to
    /// close it, which happens after the signal went to the backend process.
    pub async fn send(&self) -> std::io::Result<()> {
        let target = &self.target;
        let mut stream =
            crate::upstream::tls::connect(&target.host, target.port, &target.tls).await?;
        let mut out = BytesMut::new();
        encode::cancel_request(&mut out, self.process_id, self.secret_key);
        crate::net::send_all(&mut stream, &out).await?;
        let mut sink = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut sink)).await;
        Ok(())
    }
}

/// A failure in an exchange pgtide runs itself (login, checks, resets, health queries).
fn lost(e: impl Into<Lost>) -> ProxyError {
    ProxyError::BackendSetup(e.into())
}

/// A DataRow's columns as text (None for NULL); no columns when the row is malformed.
pub(crate) fn data_row_text(body: &[u8]) -> Vec<Option<String>> {
    let Ok(row) = pgtide_wire::data_row(body) else {
        return Vec::new();
    };
    row.columns
        .iter()
        .map(|c| c.map(|v| String::from_utf8_lossy(v).into_owned()))
        .collect()
}
