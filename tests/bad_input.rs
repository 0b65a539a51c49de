//! Hostile and broken clients speaking raw bytes: each gets the ErrorResponse of PRODUCT.md §6
//! (or a clean close where it left first), and pgtide keeps serving everyone else — a client
//! connected before the bad one and a client connecting after it.

use std::future::Future;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pgtide_config::{AuthMethod, Config, PoolMode, UserConfig};
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Generous bound meant only to turn a hang into a failure.
const HANG: Duration = Duration::from_secs(10);
/// A user the raw clients log in as without SCRAM.
const RAW_USER: &str = "rawtrust";

async fn cluster() -> &'static Cluster {
    s::shared_cluster().await
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    s::within(what, HANG, fut).await
}

/// The test config plus a trust user for raw clients.
async fn base_config() -> Config {
    let mut config = s::config(cluster().await, PoolMode::Transaction, 4);
    let mut raw = UserConfig::new(RAW_USER, None);
    raw.auth_method = Some(AuthMethod::Trust);
    config.users.push(raw);
    config
}

// ---------------------------------------------------------------------------------------------
// Raw protocol helpers.

/// A tagged message: tag, i32 length counting itself, body.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A length-prefixed startup-phase packet with the given code and payload.
fn packet(code: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as i32 + 8).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn startup_message(user: &str, database: &str) -> Vec<u8> {
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

fn ssl_request() -> Vec<u8> {
    packet(80877103, &[])
}

fn gssenc_request() -> Vec<u8> {
    packet(80877104, &[])
}

fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    msg(b'Q', &body)
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Deterministic noise (xorshift), so a failure reproduces.
fn noise(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An ErrorResponse's fields.
#[derive(Debug)]
struct PgError {
    severity: String,
    code: String,
    message: String,
}

fn parse_error(body: &[u8]) -> PgError {
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
struct Reader {
    r: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// The next message; `None` once the server closed (EOF or reset). Panics on a hang.
    async fn next(&mut self) -> Option<(u8, Bytes)> {
        within("reading from pgtide", async {
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
    async fn error(&mut self) -> Option<PgError> {
        while let Some((tag, body)) = self.next().await {
            if tag == b'E' {
                return Some(parse_error(&body));
            }
        }
        None
    }

    /// Reads until the server closes; panics if it keeps the connection open.
    async fn closed(&mut self) {
        while let Some((tag, body)) = self.next().await {
            assert_ne!(
                tag, b'Z',
                "the server went on after a fatal error: {body:?}"
            );
        }
    }

    /// Skips messages up to ReadyForQuery, returning what came before it; `None` if closed.
    async fn until_ready(&mut self) -> Option<Vec<(u8, Bytes)>> {
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
    async fn byte(&mut self) -> u8 {
        if let Some(b) = self.buf.first().copied() {
            self.buf.advance(1);
            return b;
        }
        within("reading one byte", self.r.read_u8())
            .await
            .expect("an answer byte")
    }
}

struct Raw {
    reader: Reader,
    w: OwnedWriteHalf,
}

impl Raw {
    async fn connect(server: &s::ServerHandle) -> Raw {
        let stream = within("connect", TcpStream::connect(server.local_addr))
            .await
            .expect("TCP connect to pgtide");
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
    async fn login(server: &s::ServerHandle) -> Raw {
        let mut raw = Raw::connect(server).await;
        raw.send(&startup_message(RAW_USER, "app")).await;
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
    async fn send(&mut self, bytes: &[u8]) {
        let _ = within("write", self.w.write_all(bytes)).await;
    }

    /// A simple query on a logged-in raw client; returns the first column of the first row.
    async fn simple(&mut self, sql: &str) -> String {
        self.send(&query(sql)).await;
        let reply = self
            .reader
            .until_ready()
            .await
            .expect("reply up to ReadyForQuery");
        if let Some((_, e)) = reply.iter().find(|(t, _)| *t == b'E') {
            panic!("{sql}: {:?}", parse_error(e));
        }
        let (_, row) = reply.iter().find(|(t, _)| *t == b'D').expect("a DataRow");
        let mut row = row.clone();
        assert!(row.get_i16() >= 1, "no column");
        let len = usize::try_from(row.get_i32()).expect("not NULL");
        String::from_utf8_lossy(&row[..len]).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the cases.

async fn scalar(client: &tokio_postgres::Client, sql: &str) -> String {
    s::scalar(client, sql).await
}

async fn app_client(server: &s::ServerHandle) -> tokio_postgres::Client {
    let client = within("connect", s::connect(&s::app_url(server)))
        .await
        .expect("a normal client connects");
    assert_eq!(scalar(&client, "SELECT 1").await, "1");
    client
}

/// The client connected before the bad one still works, and a new one can connect.
async fn still_serving(server: &s::ServerHandle, before: &tokio_postgres::Client, case: &str) {
    let got = within(case, before.simple_query("SELECT 7")).await;
    assert!(got.is_ok(), "{case}: the earlier client broke: {got:?}");
    let after = within(case, s::connect(&s::app_url(server))).await;
    let after = after.unwrap_or_else(|e| panic!("{case}: a new client cannot connect: {e:?}"));
    assert_eq!(scalar(&after, "SELECT 8").await, "8", "{case}");
}

/// Expects an ErrorResponse with one of `codes`, then a close.
async fn expect_fatal(raw: &mut Raw, codes: &[&str], case: &str) -> PgError {
    let e = raw
        .reader
        .error()
        .await
        .unwrap_or_else(|| panic!("{case}: the connection closed without an ErrorResponse"));
    assert!(
        codes.contains(&e.code.as_str()),
        "{case}: expected {codes:?}, got {e:?}"
    );
    assert!(!e.message.is_empty(), "{case}: empty message");
    raw.reader.closed().await;
    e
}

async fn client_count_returns_to(server: &s::ServerHandle, baseline: usize, case: &str) {
    let ok = s::eventually(HANG, || async { server.client_count() == baseline }).await;
    assert!(
        ok,
        "{case}: client count is {} , expected it back at {baseline}",
        server.client_count()
    );
}

fn names_size(message: &str, sizes: &[&str]) -> bool {
    sizes.iter().any(|s| message.contains(s))
}

// ---------------------------------------------------------------------------------------------
// Cases.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_length_field_is_08p01_and_closes() {
    let server = s::start(base_config().await).await;
    let before = app_client(&server).await;
    let huge = [b'Q', 0x7f, 0xff, 0xff, 0xf0];
    let sizes = ["2147483632", "2147483631", "67108864", "64MiB", "64 MiB"];

    // After a complete login.
    let mut raw = Raw::login(&server).await;
    raw.send(&huge).await;
    let e = expect_fatal(&mut raw, &["08P01"], "huge Query after login").await;
    assert!(
        names_size(&e.message, &sizes),
        "the message should name the size: {e:?}"
    );
    still_serving(&server, &before, "huge Query after login").await;

    // Pipelined right behind the StartupMessage.
    let mut raw = Raw::connect(&server).await;
    let mut bytes = startup_message(RAW_USER, "app");
    bytes.extend_from_slice(&huge);
    raw.send(&bytes).await;
    let e = expect_fatal(&mut raw, &["08P01"], "huge Query behind startup").await;
    assert!(
        names_size(&e.message, &sizes),
        "the message should name the size: {e:?}"
    );
    still_serving(&server, &before, "huge Query behind startup").await;

    // Where a SCRAM client owes its password message.
    let mut raw = Raw::connect(&server).await;
    raw.send(&startup_message(s::APP_USER, "app")).await;
    let (tag, _) = raw.reader.next().await.expect("an authentication request");
    assert_eq!(tag, b'R');
    raw.send(&[b'p', 0x7f, 0xff, 0xff, 0xf0]).await;
    let e = expect_fatal(&mut raw, &["08P01"], "huge password message").await;
    assert!(
        names_size(&e.message, &sizes),
        "the message should name the size: {e:?}"
    );
    still_serving(&server, &before, "huge password message").await;

    // A length below the 4 bytes of the length itself.
    let mut raw = Raw::login(&server).await;
    raw.send(&[b'Q', 0, 0, 0, 2]).await;
    expect_fatal(&mut raw, &["08P01"], "length 2").await;
    still_serving(&server, &before, "length 2").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_above_configured_max_message_size_is_08p01() {
    let mut config = base_config().await;
    config.server.max_message_size = 64 * 1024;
    let server = s::start(config).await;
    let before = app_client(&server).await;

    // Just below the limit goes through.
    let below = format!("SELECT length('{}')", "x".repeat(60 * 1024));
    assert_eq!(scalar(&before, &below).await, (60 * 1024).to_string());

    // 100 KB is refused, however the client goes on writing.
    let mut raw = Raw::login(&server).await;
    let big_sql = format!("SELECT length('{}')", "x".repeat(100 * 1024));
    let big = query(&big_sql);
    let Raw { reader, w } = &mut raw;
    let write = async {
        let _ = w.write_all(&big).await;
    };
    let (_, e) = within("100 KB query", async {
        tokio::join!(write, reader.error())
    })
    .await;
    let e = e.expect("an ErrorResponse for the 100 KB query");
    assert_eq!(e.code, "08P01", "{e:?}");
    assert!(
        names_size(&e.message, &["65536", "64KiB", "64 KiB"]),
        "{e:?}"
    );
    raw.reader.closed().await;
    still_serving(&server, &before, "100 KB query").await;

    // tokio-postgres sees the same error as a database error.
    let victim = app_client(&server).await;
    let err = within("100 KB via tokio-postgres", victim.simple_query(&big_sql))
        .await
        .expect_err("a 100 KB query above max_message_size must fail");
    let code = err.as_db_error().map(|d| d.code().code().to_string());
    assert_eq!(code.as_deref(), Some("08P01"), "{err:?}");
    still_serving(&server, &before, "100 KB via tokio-postgres").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_startup_packets_get_an_error_response() {
    let server = s::start(base_config().await).await;
    let before = app_client(&server).await;

    let mut random = noise(256, 0x5eed_1234_abcd_ef01);
    random[0] |= 0x80; // a negative length: nothing to wait for
    let unterminated = packet(3 << 16, b"user\0rawtrust\0database");
    let mut v99 = Vec::new();
    cstr(&mut v99, "user");
    cstr(&mut v99, RAW_USER);
    v99.push(0);
    let ssl_with_junk = packet(80877103, &[1, 2, 3, 4]);

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("random bytes", random, &["08P01"]),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: pgtide\r\n\r\n".to_vec(),
            &["08P01"],
        ),
        ("length 5", vec![0, 0, 0, 5, 0], &["08P01"]),
        (
            "length 100000",
            [&100_000i32.to_be_bytes()[..], &[0, 3, 0, 0]].concat(),
            &["08P01"],
        ),
        (
            "protocol 9.9",
            packet(9 << 16 | 9, &v99),
            &["0A000", "08P01"],
        ),
        ("unterminated parameters", unterminated, &["08P01"]),
        ("SSLRequest with trailing bytes", ssl_with_junk, &["08P01"]),
        (
            "noise behind a valid header",
            packet(3 << 16, &noise(40, 7)),
            &["08P01", "28000"],
        ),
    ];
    for (case, bytes, codes) in cases {
        let mut raw = Raw::connect(&server).await;
        raw.send(&bytes).await;
        let e = expect_fatal(&mut raw, codes, case).await;
        assert_eq!(e.severity, "FATAL", "{case}: {e:?}");
        still_serving(&server, &before, case).await;
    }
    client_count_returns_to(&server, 1, "garbage startup packets").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_time_out_at_startup_timeout() {
    let mut config = base_config().await;
    config.server.startup_timeout = Duration::from_millis(500);
    let server = s::start(config).await;
    let before = app_client(&server).await;
    let baseline = server.client_count();
    assert_eq!(baseline, 1);

    // Says nothing at all.
    let mut silent = Raw::connect(&server).await;
    // Half a startup packet, then nothing.
    let mut half = Raw::connect(&server).await;
    let startup = startup_message(RAW_USER, "app");
    half.send(&startup[..startup.len() / 2]).await;
    // SSLRequest answered, then nothing.
    let mut after_ssl = Raw::connect(&server).await;
    after_ssl.send(&ssl_request()).await;
    assert_eq!(after_ssl.reader.byte().await, b'N');
    // A SCRAM client that never answers the authentication request.
    let mut mute_auth = Raw::connect(&server).await;
    mute_auth.send(&startup_message(s::APP_USER, "app")).await;

    for (case, raw) in [
        ("silent", &mut silent),
        ("half a startup packet", &mut half),
        ("after SSLRequest", &mut after_ssl),
        ("during SCRAM", &mut mute_auth),
    ] {
        let e = expect_fatal(raw, &["08P01"], case).await;
        assert!(
            e.message.contains("startup"),
            "{case}: the message should mention startup: {e:?}"
        );
    }
    client_count_returns_to(&server, baseline, "startup timeout").await;
    still_serving(&server, &before, "startup timeout").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_connections_is_53300_until_a_slot_frees() {
    let mut config = base_config().await;
    config.server.max_client_connections = 3;
    let server = s::start(config).await;
    let url = s::app_url(&server);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(app_client(&server).await);
    }

    let err = match within("4th client", s::connect(&url)).await {
        Ok(_) => panic!("a 4th client connected with max_client_connections = 3"),
        Err(e) => e,
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("expected an ErrorResponse: {err:?}"));
    assert_eq!(db.code().code(), "53300", "{db:?}");
    assert!(db.message().contains("too many"), "{db:?}");
    // A raw client gets the same.
    let mut raw = Raw::connect(&server).await;
    raw.send(&startup_message(RAW_USER, "app")).await;
    expect_fatal(&mut raw, &["53300"], "4th raw client").await;
    client_count_returns_to(&server, 3, "rejected clients").await;

    // One leaves; a new client gets its slot.
    drop(clients.pop());
    let fresh = s::eventually(HANG, || {
        let url = url.clone();
        async move { s::connect(&url).await.is_ok() }
    })
    .await;
    assert!(fresh, "no client could connect after one of three left");
    for c in &clients {
        assert_eq!(scalar(c, "SELECT 2").await, "2");
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_gssenc_requests_get_n_and_plain_startup_continues() {
    let server = s::start(base_config().await).await;
    let before = app_client(&server).await;

    for (case, request) in [
        ("SSLRequest", ssl_request()),
        ("GSSENCRequest", gssenc_request()),
    ] {
        let mut raw = Raw::connect(&server).await;
        raw.send(&request).await;
        assert_eq!(raw.reader.byte().await, b'N', "{case}");
        raw.send(&startup_message(RAW_USER, "app")).await;
        raw.reader.until_ready().await.expect("greeting after 'N'");
        assert_eq!(raw.simple("SELECT 'plain'").await, "plain", "{case}");
    }
    // Both requests, then the startup, all in one write.
    let mut raw = Raw::connect(&server).await;
    let mut bytes = gssenc_request();
    bytes.extend(ssl_request());
    bytes.extend(startup_message(RAW_USER, "app"));
    raw.send(&bytes).await;
    assert_eq!(raw.reader.byte().await, b'N');
    assert_eq!(raw.reader.byte().await, b'N');
    raw.reader
        .until_ready()
        .await
        .expect("greeting after two 'N'");
    assert_eq!(raw.simple("SELECT 3").await, "3");

    // tokio-postgres with sslmode=prefer (without a TLS connector it goes straight to plain).
    let prefer = format!("{}?sslmode=prefer", s::app_url(&server));
    let client = within("sslmode=prefer", s::connect(&prefer))
        .await
        .expect("sslmode=prefer connects");
    assert_eq!(scalar(&client, "SELECT 4").await, "4");

    // psql (libpq) sends a real SSLRequest with sslmode=prefer, and gives up with require.
    let psql = |sslmode: &str| -> Vec<String> {
        let url = format!("{}?sslmode={sslmode}", s::app_url(&server));
        ["-X", "-w", "-A", "-t", "-c", "SELECT 5", &url]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let out = within("psql prefer", s::run_tool("psql", psql("prefer"))).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql sslmode=prefer: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    let out = within("psql require", s::run_tool("psql", psql("require"))).await;
    assert!(
        !out.status.success(),
        "psql sslmode=require succeeded without TLS"
    );

    still_serving(&server, &before, "SSL requests").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnects_mid_startup_leave_no_trace() {
    let server = s::start(base_config().await).await;
    let before = app_client(&server).await;
    let baseline = server.client_count();

    // Connect and go.
    drop(Raw::connect(&server).await);
    // SSLRequest, read 'N', go.
    let mut raw = Raw::connect(&server).await;
    raw.send(&ssl_request()).await;
    assert_eq!(raw.reader.byte().await, b'N');
    drop(raw);
    // SSLRequest, go without reading the answer.
    let mut raw = Raw::connect(&server).await;
    raw.send(&ssl_request()).await;
    drop(raw);
    // Half a startup packet, go.
    let mut raw = Raw::connect(&server).await;
    let startup = startup_message(RAW_USER, "app");
    raw.send(&startup[..startup.len() / 2]).await;
    drop(raw);
    // Half a startup packet, then a reset (RST rather than FIN).
    let stream = TcpStream::connect(server.local_addr)
        .await
        .expect("connect");
    stream.set_zero_linger().expect("SO_LINGER 0");
    let (r, mut w) = stream.into_split();
    let _ = w.write_all(&startup[..startup.len() / 2]).await;
    drop((r, w));
    // Mid-SCRAM: the authentication request read, no answer.
    let mut raw = Raw::connect(&server).await;
    raw.send(&startup_message(s::APP_USER, "app")).await;
    let (tag, _) = raw.reader.next().await.expect("an authentication request");
    assert_eq!(tag, b'R');
    drop(raw);
    // Logged in, then gone in the middle of a query message.
    let mut raw = Raw::login(&server).await;
    let q = query("SELECT 1");
    raw.send(&q[..q.len() - 3]).await;
    drop(raw);
    // Logged in, a query sent, gone without reading the reply.
    let mut raw = Raw::login(&server).await;
    raw.send(&query("SELECT pg_sleep(0.2)")).await;
    drop(raw);

    client_count_returns_to(&server, baseline, "abrupt disconnects").await;
    let pools_idle = s::eventually(HANG, || async {
        server
            .shared
            .pools
            .all()
            .iter()
            .all(|p| p.stats().in_use == 0)
    })
    .await;
    assert!(
        pools_idle,
        "a backend connection stayed leased after its client vanished"
    );
    still_serving(&server, &before, "abrupt disconnects").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Parse of `sql` as statement `name` (no parameter types given).
fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, sql);
    body.put_i16(0);
    msg(b'P', &body)
}

/// A Bind that announces 5 parameters and ends right there.
fn truncated_bind(statement: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, statement);
    body.put_i16(0); // parameter formats
    body.put_i16(5); // parameters ... and no bytes follow
    msg(b'B', &body)
}

fn execute_sync() -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    body.put_i32(0);
    let mut out = msg(b'E', &body);
    out.extend(msg(b'S', &[]));
    out
}

const FIVE_PARAMS: &str = "SELECT $1::int + $2::int + $3::int + $4::int + $5::int";

/// Sends `bytes` on a logged-in raw client, expects an 08P01 ErrorResponse; if the session goes
/// on (an ERROR, not a FATAL), it must still answer queries.
async fn malformed_bind_case(
    server: &s::ServerHandle,
    before: &tokio_postgres::Client,
    case: &str,
    bytes: Vec<u8>,
) {
    let mut raw = Raw::login(server).await;
    raw.send(&bytes).await;
    let e = raw
        .reader
        .error()
        .await
        .unwrap_or_else(|| panic!("{case}: closed without an ErrorResponse"));
    assert_eq!(e.code, "08P01", "{case}: {e:?}");
    if raw.reader.until_ready().await.is_some() {
        assert_eq!(raw.simple("SELECT 'after'").await, "after", "{case}");
    }
    still_serving(server, before, case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bind_on_unnamed_statement_is_08p01() {
    let server = s::start(base_config().await).await;
    let before = app_client(&server).await;
    let mut bytes = parse("", FIVE_PARAMS);
    bytes.extend(truncated_bind(""));
    bytes.extend(execute_sync());
    malformed_bind_case(&server, &before, "truncated Bind, unnamed statement", bytes).await;

    // A Bind whose frame length is shorter than a parameter it announces.
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, "");
    body.put_i16(0);
    body.put_i16(5);
    body.put_i32(1000); // a 1000-byte parameter ... of 3 bytes
    body.extend_from_slice(b"abc");
    let mut bytes = parse("", FIVE_PARAMS);
    bytes.extend(msg(b'B', &body));
    bytes.extend(execute_sync());
    malformed_bind_case(&server, &before, "Bind with an overlong parameter", bytes).await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bind_on_named_statement_is_08p01() {
    let server = s::start(base_config().await).await;
    let before = app_client(&server).await;
    // pgtide maps client statement names to its own in transaction mode; a Bind it cannot read
    // must still be reported as the protocol violation it is (PostgreSQL says 08P01 here).
    let mut bytes = parse("s1", FIVE_PARAMS);
    bytes.extend(truncated_bind("s1"));
    bytes.extend(execute_sync());
    malformed_bind_case(&server, &before, "truncated Bind, named statement", bytes).await;
    server.shutdown(s::Shutdown::Immediate).await;
}
