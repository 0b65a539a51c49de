//! Hostile and broken clients speaking raw bytes: each gets the ErrorResponse of docs/reference/sqlstates.md
//! (or a clean close where it left first), and pgtide keeps serving everyone else — a client
//! connected before the bad one and a client connecting after it.

use std::future::Future;
use std::time::Duration;

use bytes::BufMut;
use pgtide_config::{Config, PoolMode};
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use s::raw::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Generous bound meant only to turn a hang into a failure.
const HANG: Duration = Duration::from_secs(10);

async fn cluster() -> &'static Cluster {
    s::shared_cluster().await
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    s::within(what, HANG, fut).await
}

/// The test config plus a trust user for raw clients.
async fn base_config() -> Config {
    let mut config = s::config(cluster().await, PoolMode::Transaction, 4);
    add_trust_user(&mut config);
    config
}

// ---------------------------------------------------------------------------------------------
// Raw protocol helpers.

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
    // As PostgreSQL: a SASL message over its 1,024-byte cap fails authentication (see
    // tests/bounds.rs for the comparison with PostgreSQL itself).
    expect_fatal(&mut raw, &["28P01"], "huge password message").await;
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
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
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
    // Long enough for a debug build's SCRAM login on a loaded machine (the first client below).
    config.server.startup_timeout = Duration::from_secs(2);
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

    // Said nothing: closed without a message, as PostgreSQL does at authentication_timeout
    // (an ErrorResponse could be read as the answer to an SSLRequest just being sent).
    assert!(
        silent.reader.next().await.is_none(),
        "silent: closed without a message"
    );
    for (case, raw) in [
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
    // Asked again and again without reading: answered a bounded number of times, then
    // refused (PostgreSQL answers each kind once).
    let mut raw = Raw::connect(&server).await;
    let repeated: Vec<u8> = (0..50).flat_map(|_| ssl_request()).collect();
    raw.send(&repeated).await;
    assert_eq!(raw.reader.byte().await, b'N');
    assert_eq!(raw.reader.byte().await, b'N');
    let e = expect_fatal(&mut raw, &["08P01"], "repeated SSLRequest").await;
    assert!(e.message.contains("encryption requested again"), "{e:?}");
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
