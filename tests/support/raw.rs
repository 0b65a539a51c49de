//! A raw protocol client for tests that need exact messages: framing helpers, a reader of
//! whole server messages, and a client that logs in as a trust user.

use std::future::Future;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pgtide::ServerHandle;
use pgtide_config::{AuthMethod, Config, UserConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Generous bound meant only to turn a hang into a failure.
const HANG: Duration = Duration::from_secs(10);
/// A user raw clients log in as without SCRAM; see [`add_trust_user`].
pub const RAW_USER: &str = "rawtrust";

async fn hang<T>(what: &str, fut: impl Future<Output = T>) -> T {
    crate::within(what, HANG, fut).await
}

/// Adds [`RAW_USER`] (trust authentication) to a test config.
pub fn add_trust_user(config: &mut Config) {
    let mut raw = UserConfig::new(RAW_USER, None);
    raw.auth_method = Some(AuthMethod::Trust);
    config.users.push(raw);
}

/// A tagged message: tag, i32 length counting itself, body.
pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A length-prefixed startup-phase packet with the given code and payload.
pub fn packet(code: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as i32 + 8).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut params = Vec::new();
    for (k, v) in [("user", user), ("database", database)] {
        params.extend_from_slice(k.as_bytes());
        params.push(0);
        params.extend_from_slice(v.as_bytes());
        params.push(0);
    }
    params.push(0);
    packet(3 << 16, &params)
}

pub fn ssl_request() -> Vec<u8> {
    packet(80877103, &[])
}

pub fn gssenc_request() -> Vec<u8> {
    packet(80877104, &[])
}

pub fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    msg(b'Q', &body)
}

pub fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// An ErrorResponse's fields.
#[derive(Debug)]
pub struct PgError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

pub fn parse_error(body: &[u8]) -> PgError {
    let mut e = PgError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match field {
            b'S' => e.severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    e
}

/// The reading half of a raw client: whole server messages, EOF and resets as `None`.
pub struct Reader {
    r: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// The next message; `None` once the server closed (EOF or reset). Panics on a hang.
    pub async fn next(&mut self) -> Option<(u8, Bytes)> {
        hang("reading from pgtide", async {
            loop {
                if let Some(&[tag, a, b, c, d]) = self.buf.get(..5) {
                    let len = i32::from_be_bytes([a, b, c, d]);
                    let total = usize::try_from(len).expect("server sent a negative length") + 1;
                    assert!(total >= 5, "server sent a bad length {len}");
                    if self.buf.len() >= total {
                        let mut frame = self.buf.split_to(total).freeze();
                        frame.advance(5);
                        return Some((tag, frame));
                    }
                }
                match self.r.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// Skips messages up to the first ErrorResponse; `None` if the server closed first.
    pub async fn error(&mut self) -> Option<PgError> {
        while let Some((tag, body)) = self.next().await {
            if tag == b'E' {
                return Some(parse_error(&body));
            }
        }
        None
    }

    /// Reads until the server closes; panics if it keeps the connection open.
    pub async fn closed(&mut self) {
        while let Some((tag, body)) = self.next().await {
            assert_ne!(
                tag, b'Z',
                "the server went on after a fatal error: {body:?}"
            );
        }
    }

    /// Skips messages up to ReadyForQuery, returning what came before it; `None` if closed.
    pub async fn until_ready(&mut self) -> Option<Vec<(u8, Bytes)>> {
        let mut seen = Vec::new();
        while let Some((tag, body)) = self.next().await {
            if tag == b'Z' {
                return Some(seen);
            }
            seen.push((tag, body));
        }
        None
    }

    /// The one-byte answer to an SSLRequest / GSSENCRequest.
    pub async fn byte(&mut self) -> u8 {
        if let Some(b) = self.buf.first().copied() {
            self.buf.advance(1);
            return b;
        }
        hang("reading one byte", self.r.read_u8())
            .await
            .expect("an answer byte")
    }
}

pub struct Raw {
    pub reader: Reader,
    pub w: OwnedWriteHalf,
}

impl Raw {
    /// Sends `batch` and returns the reply's message tags and messages up to ReadyForQuery.
    pub async fn run(&mut self, batch: Vec<u8>) -> (String, Vec<(u8, Bytes)>) {
        self.send(&batch).await;
        let reply = self.reader.until_ready().await.expect("reply");
        let tags = reply.iter().map(|(t, _)| *t as char).collect();
        (tags, reply)
    }

    pub async fn connect(server: &ServerHandle) -> Raw {
        Raw::connect_to(server.local_addr).await
    }

    /// A raw connection to any address (e.g. PostgreSQL itself, as the oracle of a
    /// differential test).
    pub async fn connect_to(addr: std::net::SocketAddr) -> Raw {
        let stream = hang("connect", TcpStream::connect(addr))
            .await
            .expect("TCP connect");
        let (r, w) = stream.into_split();
        Raw {
            reader: Reader {
                r,
                buf: BytesMut::new(),
            },
            w,
        }
    }

    /// Logs in as the trust user and waits for ReadyForQuery.
    pub async fn login(server: &ServerHandle) -> Raw {
        Raw::login_to(server.local_addr, RAW_USER, "app").await
    }

    /// Logs in as `user` (a trust user: `trustuser` on the test cluster, [`RAW_USER`] on
    /// pgtide) at `addr` and waits for ReadyForQuery.
    pub async fn login_to(addr: std::net::SocketAddr, user: &str, database: &str) -> Raw {
        let mut raw = Raw::connect_to(addr).await;
        raw.send(&startup_message(user, database)).await;
        let greeting = raw
            .reader
            .until_ready()
            .await
            .expect("greeting up to ReadyForQuery");
        assert!(
            greeting.iter().any(|(t, _)| *t == b'R'),
            "no AuthenticationOk"
        );
        raw
    }

    /// Writes everything; a server that already closed is not an error here (the reply says
    /// what happened).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = hang("write", self.w.write_all(bytes)).await;
    }

    /// A simple query on a logged-in raw client; returns the first column of the first row.
    pub async fn simple(&mut self, sql: &str) -> String {
        let mut rows = self.simple_rows(sql).await;
        assert!(!rows.is_empty(), "{sql}: no DataRow");
        rows.swap_remove(0)
    }

    /// A simple query that must succeed; returns the first column of every row.
    pub async fn simple_rows(&mut self, sql: &str) -> Vec<String> {
        self.send(&query(sql)).await;
        let reply = self
            .reader
            .until_ready()
            .await
            .expect("reply up to ReadyForQuery");
        if let Some((_, e)) = reply.iter().find(|(t, _)| *t == b'E') {
            panic!("{sql}: {:?}", parse_error(e));
        }
        first_column(&reply)
    }
}

/// Parse of `sql` as statement `name` (no parameter types given).
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, sql);
    body.put_i16(0);
    msg(b'P', &body)
}

/// A Bind that announces 5 parameters and ends right there.
pub fn truncated_bind(statement: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, statement);
    body.put_i16(0); // parameter formats
    body.put_i16(5); // parameters ... and no bytes follow
    msg(b'B', &body)
}

/// Execute of the unnamed portal, all rows.
pub fn execute() -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    body.put_i32(0);
    msg(b'E', &body)
}

/// Sync.
pub fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

/// Describe of a statement (`kind` b'S') or a portal (b'P').
pub fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    cstr(&mut body, name);
    msg(b'D', &body)
}

/// Close of a statement.
pub fn close_statement(name: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    cstr(&mut body, name);
    msg(b'C', &body)
}

pub fn execute_sync() -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    body.put_i32(0);
    let mut out = msg(b'E', &body);
    out.extend(msg(b'S', &[]));
    out
}

/// Bind of `statement` to the unnamed portal with text parameters.
pub fn bind(statement: &str, params: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, statement);
    body.put_i16(0);
    body.put_i16(params.len() as i16);
    for p in params {
        body.put_i32(p.len() as i32);
        body.extend_from_slice(p.as_bytes());
    }
    body.put_i16(0);
    msg(b'B', &body)
}

/// The first column of every DataRow among `messages`.
pub fn first_column(messages: &[(u8, Bytes)]) -> Vec<String> {
    messages
        .iter()
        .filter(|(t, _)| *t == b'D')
        .map(|(_, row)| {
            let mut row = row.clone();
            assert!(row.get_i16() >= 1, "no column");
            let len = usize::try_from(row.get_i32()).expect("not NULL");
            String::from_utf8_lossy(&row[..len]).into_owned()
        })
        .collect()
}
