//! Issue 13, TLS: clients reach pgtide over TLS (SSLRequest and PostgreSQL 17's direct TLS),
//! a `require` listener refuses plain text with 28000, SCRAM-SHA-256-PLUS binds to the
//! certificate (a tampered binding fails), a rotated certificate is served after a reload while
//! open sessions go on, and pgtide reaches a PostgreSQL that accepts only TLS with verify-full,
//! refusing a server its CA did not sign.

use std::time::Duration;

use bytes::BytesMut;
use pgtide_config::{BackendTlsMode, ClientTlsMode, PoolMode};
use pgtide_suite as s;
use pgtide_wire::{encode, AuthRequest, FrameDecoder};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use s::tls::TestCa;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// pgtide with TLS required of clients, its certificate issued by `ca` for localhost.
async fn tls_server(ca: &TestCa) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let issued = ca.issue("pgtide", &["localhost", "127.0.0.1"]);
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    config.server.tls.mode = ClientTlsMode::Require;
    config.server.tls.cert = Some(issued.cert);
    config.server.tls.key = Some(issued.key);
    let server = s::start(config).await;
    (cluster, server)
}

fn conninfo(server: &s::ServerHandle, extra: &str) -> String {
    format!(
        "host=localhost port={} user={} password={} dbname={} {extra}",
        server.local_addr.port(),
        s::APP_USER,
        s::APP_PASSWORD,
        s::APP_DB
    )
}

/// psql's answer to `SELECT ssl FROM pg_stat_ssl ...`-style one-liners, or its error output.
fn psql(conninfo: &str, sql: &str) -> Result<String, String> {
    let bin = pgtide_devcluster::bin_dir().expect("PostgreSQL binaries");
    let out = std::process::Command::new(bin.join("psql"))
        .args(["-X", "-A", "-t", "-c", sql, conninfo])
        .output()
        .expect("run psql");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_connect_over_tls_and_plain_text_is_refused() {
    let ca = TestCa::new("pgtide test CA");
    let (_cluster, server) = tls_server(&ca).await;

    // tokio-postgres over TLS, the certificate checked against the test CA and "localhost".
    let (client, conn) =
        tokio_postgres::connect(&conninfo(&server, "sslmode=require"), ca.tokio_postgres())
            .await
            .expect("tokio-postgres over TLS");
    tokio::spawn(conn);
    assert_eq!(s::scalar(&client, "SELECT 41 + 1").await, "42");

    // Results larger than the sockets hold: every TLS record reaches the client, the last
    // ones included (written when the socket has room again, not only when more comes).
    for _ in 0..3 {
        let rows = s::within(
            "a large result over TLS",
            Duration::from_secs(30),
            client.query(
                "SELECT repeat('x', 1000) || g FROM generate_series(1, 20000) g",
                &[],
            ),
        )
        .await
        .expect("large result");
        assert_eq!(rows.len(), 20_000);
    }

    // psql (libpq) with verify-full, and channel binding required: SCRAM-SHA-256-PLUS.
    let ca_file = ca.ca_file();
    let strict = format!(
        "sslmode=verify-full sslrootcert={} channel_binding=require",
        ca_file.display()
    );
    let via_psql = tokio::task::spawn_blocking({
        let info = conninfo(&server, &strict);
        move || psql(&info, "SELECT 'over tls'")
    })
    .await
    .expect("psql task");
    assert_eq!(via_psql.as_deref(), Ok("over tls"));

    // Plain text against `require`: 28000 with a message that says what to do.
    let plain = s::connect(&s::app_url(&server)).await.expect_err("refused");
    let db = plain.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), "28000");
    assert!(db.message().contains("TLS is required"), "{}", db.message());

    // A client that trusts another CA refuses pgtide's certificate.
    let stranger = TestCa::new("some other CA");
    let refused = tokio_postgres::connect(
        &conninfo(&server, "sslmode=require"),
        stranger.tokio_postgres(),
    )
    .await;
    assert!(
        refused.is_err(),
        "a certificate from an untrusted CA was accepted"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// A TLS connection and the bytes read from it but not yet taken.
type Direct = (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    BytesMut,
);

/// A raw client over direct TLS: sends the startup packet and drives SCRAM with
/// `binding`; returns the authentication messages' outcome ("ok" or the SQLSTATE) and, when
/// it is "ok", the connection with the rest of the greeting unread.
async fn direct_scram(
    ca: &TestCa,
    server: &s::ServerHandle,
    binding: impl FnOnce(&[u8]) -> ChannelBinding,
) -> (String, Option<Direct>) {
    let mut tls = ca
        .direct(server.local_addr.port(), "localhost", Some(b"postgresql"))
        .await
        .expect("direct TLS with ALPN");
    let cert = tls.get_ref().1.peer_certificates().expect("certificate")[0].clone();
    let mut out = BytesMut::new();
    encode::startup_message(&mut out, &[("user", s::APP_USER), ("database", s::APP_DB)])
        .expect("startup");
    tls.write_all(&out).await.expect("write");
    let mut buf = BytesMut::new();
    let decoder = FrameDecoder::new(1 << 20);
    let mut scram: Option<ScramSha256> = None;
    let mut binding = Some(binding);
    loop {
        let frame = loop {
            if let Some(f) = decoder.decode(&mut buf).expect("frame") {
                break f;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), tls.read_buf(&mut buf))
                .await
                .expect("answer in time")
                .expect("read");
            if n == 0 {
                return ("closed".into(), None);
            }
        };
        if frame.tag == b'E' {
            return (
                pgtide_wire::error_fields(frame.body()).expect("error").code,
                None,
            );
        }
        let mut out = BytesMut::new();
        match pgtide_wire::authentication(frame.body()).expect("authentication") {
            AuthRequest::Sasl { mechanisms } => {
                assert_eq!(mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
                let cb = binding.take().expect("one SASL start")(cert.as_ref());
                let client = ScramSha256::new(s::APP_PASSWORD.as_bytes(), cb);
                encode::sasl_initial_response(&mut out, "SCRAM-SHA-256-PLUS", client.message())
                    .expect("initial");
                scram = Some(client);
            }
            AuthRequest::SaslContinue(data) => {
                let client = scram.as_mut().expect("started");
                client.update(&data).expect("server-first");
                encode::sasl_response(&mut out, client.message()).expect("response");
            }
            AuthRequest::SaslFinal(data) => {
                scram
                    .as_mut()
                    .expect("started")
                    .finish(&data)
                    .expect("server proof");
                continue;
            }
            AuthRequest::Ok => return ("ok".into(), Some((tls, buf))),
            other => panic!("unexpected {other:?}"),
        }
        tls.write_all(&out).await.expect("write");
    }
}

/// A client that lets a large result pile up before reading it gets all of it: the TLS
/// records the socket had no room for are sent when it has, with nothing more to write.
async fn slow_reader_gets_every_row((mut tls, mut buf): Direct) {
    let decoder = FrameDecoder::new(1 << 20);
    // The rest of the greeting, up to its ReadyForQuery.
    loop {
        match decoder.decode(&mut buf).expect("frame") {
            Some(f) if f.tag == b'Z' => break,
            Some(_) => {}
            None => assert!(tls.read_buf(&mut buf).await.expect("read") > 0, "closed"),
        }
    }
    for pause_ms in [50u64, 300, 700] {
        let mut out = BytesMut::new();
        encode::query(
            &mut out,
            "SELECT repeat('y', 2000) || g FROM generate_series(1, 3000) g",
        )
        .expect("query");
        tls.write_all(&out).await.expect("send");
        tls.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let mut rows = 0;
        let until_ready = async {
            loop {
                while let Some(f) = decoder.decode(&mut buf).expect("frame") {
                    match f.tag {
                        b'D' => rows += 1,
                        b'Z' => return,
                        _ => {}
                    }
                }
                assert!(tls.read_buf(&mut buf).await.expect("read") > 0, "closed");
            }
        };
        s::within(
            "every row of a large result",
            Duration::from_secs(20),
            until_ready,
        )
        .await;
        assert_eq!(rows, 3000, "after a {pause_ms} ms pause");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_and_channel_binding() {
    let ca = TestCa::new("pgtide test CA");
    let (_cluster, server) = tls_server(&ca).await;
    let end_point = |cert: &[u8]| sha2::Sha256::digest(cert).to_vec();
    let bound = |c: &[u8]| ChannelBinding::tls_server_end_point(end_point(c));
    let (outcome, conn) = direct_scram(&ca, &server, bound).await;
    assert_eq!(outcome, "ok", "SCRAM-SHA-256-PLUS over direct TLS");
    slow_reader_gets_every_row(conn.expect("logged in")).await;
    let (tampered, _) = direct_scram(&ca, &server, |c| {
        let mut hash = end_point(c);
        hash[0] ^= 1;
        ChannelBinding::tls_server_end_point(hash)
    })
    .await;
    assert_eq!(tampered, "08P01", "a tampered channel binding is refused");
    // No session is resumed (a resumed one would carry a client certificate's identity
    // unchecked): a client that keeps its session cache shakes hands in full every time.
    let keeps_sessions = std::sync::Arc::new(ca.client_config(Some(b"postgresql")));
    for _ in 0..2 {
        let tls = s::tls::direct_with(
            keeps_sessions.clone(),
            server.local_addr.port(),
            "localhost",
        )
        .await
        .expect("direct TLS");
        let mut tls = tls;
        let kind = tls.get_ref().1.handshake_kind();
        assert_eq!(kind, Some(rustls::HandshakeKind::Full));
        // Read a moment: a TLS 1.3 server sends its session tickets after the handshake.
        let mut byte = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_millis(200), tls.read(&mut byte)).await;
    }
    // Direct TLS without ALPN "postgresql" is closed, as PostgreSQL 17 does.
    let no_alpn = ca.direct(server.local_addr.port(), "localhost", None).await;
    if let Ok(mut tls) = no_alpn {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_after_reload_and_open_sessions_go_on() {
    let ca = TestCa::new("pgtide test CA");
    let (_cluster, server) = tls_server(&ca).await;
    let port = server.local_addr.port();
    let served = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        tls.get_ref().1.peer_certificates().expect("certificate")[0].clone()
    };
    let before = served(
        &ca.direct(port, "localhost", Some(b"postgresql"))
            .await
            .expect("tls"),
    );
    let (open, conn) =
        tokio_postgres::connect(&conninfo(&server, "sslmode=require"), ca.tokio_postgres())
            .await
            .expect("session before the rotation");
    tokio::spawn(conn);
    // The same file names, a new certificate: what a certificate manager does.
    let rotated = ca.issue("pgtide", &["localhost", "127.0.0.1"]);
    assert_ne!(rotated.der, before);
    let config = (*server.shared.config.load_full()).clone();
    server.reload(config);
    let after = served(
        &ca.direct(port, "localhost", Some(b"postgresql"))
            .await
            .expect("tls"),
    );
    assert_eq!(
        after, rotated.der,
        "new connections get the new certificate"
    );
    assert_eq!(s::scalar(&open, "SELECT 'still here'").await, "still here");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// A PostgreSQL with `ssl = on` whose pg_hba.conf lets the app role in only over TLS.
async fn tls_only_cluster(
    ca: &TestCa,
    names: &'static [&'static str],
) -> pgtide_devcluster::Cluster {
    let issued = ca.issue("postgres", names);
    ca.give_to_postgres(&issued);
    let settings = vec![
        ("ssl".to_string(), "on".to_string()),
        (
            "ssl_cert_file".to_string(),
            issued.cert.display().to_string(),
        ),
        ("ssl_key_file".to_string(), issued.key.display().to_string()),
    ];
    tokio::task::spawn_blocking(move || {
        s::cluster_with(pgtide_devcluster::ClusterOptions {
            settings,
            hba: vec![
                format!("hostnossl all {} 127.0.0.1/32 reject", s::APP_USER),
                format!("hostssl all {} 127.0.0.1/32 scram-sha-256", s::APP_USER),
            ],
            ..Default::default()
        })
    })
    .await
    .expect("cluster task")
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or(e.to_string(), |d| d.message().to_string())
}

/// What a client of pgtide sees with the database's backend TLS set to `mode` and `ca`.
async fn through(
    cluster: &pgtide_devcluster::Cluster,
    mode: BackendTlsMode,
    ca: Option<&TestCa>,
) -> Result<String, String> {
    let mut config = s::config(cluster, PoolMode::Transaction, 1);
    config.databases[0].tls = mode;
    config.databases[0].ca_file = ca.map(TestCa::ca_file);
    config.pool.checkout_timeout = Duration::from_secs(5);
    let server = s::start(config).await;
    let answer = match s::connect(&s::app_url(&server)).await {
        Ok(client) => client
            .query_one(
                "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map(|row| row.get::<_, String>(0))
            .map_err(|e| message(&e)),
        Err(e) => Err(message(&e)),
    };
    server.shutdown(s::Shutdown::Immediate).await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_over_tls_with_verification() {
    let ca = TestCa::new("backend CA");
    let cluster = tls_only_cluster(&ca, &["127.0.0.1"]).await;
    assert_eq!(
        through(&cluster, BackendTlsMode::VerifyFull, Some(&ca))
            .await
            .as_deref(),
        Ok("true")
    );
    assert_eq!(
        through(&cluster, BackendTlsMode::Require, None)
            .await
            .as_deref(),
        Ok("true")
    );
    assert_eq!(
        through(&cluster, BackendTlsMode::Prefer, None)
            .await
            .as_deref(),
        Ok("true")
    );
    // pg_hba.conf refuses the app role without TLS.
    let plain = through(&cluster, BackendTlsMode::Disable, None).await;
    assert!(
        plain.as_ref().is_err_and(|e| e.contains("pg_hba.conf")),
        "{plain:?}"
    );
    // A server certificate from a CA pgtide was not told to trust.
    let stranger = TestCa::new("some other CA");
    for mode in [
        BackendTlsMode::VerifyFull,
        BackendTlsMode::VerifyCa,
        BackendTlsMode::Require,
    ] {
        // `require` with a CA file checks the chain too, as libpq does.
        let refused = through(&cluster, mode, Some(&stranger)).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("certificate")),
            "{mode:?}: {refused:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_ignores_the_host_name_and_verify_full_does_not() {
    let ca = TestCa::new("backend CA");
    let cluster = tls_only_cluster(&ca, &["db.example.internal"]).await;
    assert_eq!(
        through(&cluster, BackendTlsMode::VerifyCa, Some(&ca))
            .await
            .as_deref(),
        Ok("true")
    );
    let wrong_name = through(&cluster, BackendTlsMode::VerifyFull, Some(&ca)).await;
    assert!(
        wrong_name
            .as_ref()
            .is_err_and(|e| e.contains("certificate")),
        "{wrong_name:?}"
    );
}
