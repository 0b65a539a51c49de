//! Issue 11, item 11: what pgtide holds and accepts is bounded as PostgreSQL bounds it, no
//! tighter and no looser. Parameter counts are unsigned 16-bit (up to 65,535, as PostgreSQL reads
//! them); a password message during startup is capped like PostgreSQL's; and a client that writes
//! without reading never makes pgtide queue more than a high-water mark of replies for it.
//! PostgreSQL itself, reached directly in the same test, is the oracle where its behaviour is the
//! question.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BufMut;
use pgtide_config::PoolMode;
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use s::raw::{add_trust_user, cstr, execute, msg, startup_message, Raw, RAW_USER};

/// More parameters than an i16 holds, fewer than PostgreSQL's 65,535.
const PARAMS: usize = 40_000;

fn primary_addr(cluster: &Cluster) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()))
}

/// `INSERT INTO wide VALUES ($1), ($2), ...` with PARAMS parameters.
fn wide_insert() -> String {
    let values: Vec<String> = (1..=PARAMS).map(|i| format!("(${i})")).collect();
    format!("INSERT INTO wide VALUES {}", values.join(","))
}

/// Parse of the wide INSERT as `statement`, every parameter typed int4.
fn wide_parse(statement: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, statement);
    cstr(&mut body, &wide_insert());
    body.put_u16(PARAMS as u16);
    for _ in 0..PARAMS {
        body.put_u32(23);
    }
    msg(b'P', &body)
}

/// Bind (PARAMS text values) + Execute + Sync.
fn wide_run(statement: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, statement);
    body.put_u16(0);
    body.put_u16(PARAMS as u16);
    for i in 0..PARAMS {
        let v = i.to_string();
        body.put_i32(v.len() as i32);
        body.extend_from_slice(v.as_bytes());
    }
    body.put_u16(0);
    let mut out = msg(b'B', &body);
    out.extend(execute());
    out.extend(msg(b'S', &[]));
    out
}

/// The tags (and CommandComplete / error code) a raw client gets for `batch`.
async fn replies(raw: &mut Raw, batch: &[u8]) -> Vec<String> {
    raw.send(batch).await;
    let reply = raw
        .reader
        .until_ready()
        .await
        .expect("reply up to ReadyForQuery");
    reply
        .iter()
        .map(|(tag, body)| match tag {
            b'E' => format!("E {}", s::raw::parse_error(body).code),
            b'C' => format!("C {}", String::from_utf8_lossy(body).trim_end_matches('\0')),
            t => (*t as char).to_string(),
        })
        .collect()
}

/// Two clients each prepare the same named wide statement and run it twice, the second time in
/// a batch of its own (in transaction mode: a new transaction, possibly on another backend).
async fn two_clients(addr: SocketAddr, user: &str) -> Vec<Vec<String>> {
    let mut a = Raw::login_to(addr, user, s::APP_DB).await;
    let mut b = Raw::login_to(addr, user, s::APP_DB).await;
    let mut out = Vec::new();
    for raw in [&mut a, &mut b] {
        let mut first = wide_parse("wide_named");
        first.extend(wide_run("wide_named"));
        out.push(replies(raw, &first).await);
    }
    for raw in [&mut a, &mut b] {
        out.push(replies(raw, &wide_run("wide_named")).await);
    }
    let mut unnamed = wide_parse("");
    unnamed.extend(wide_run(""));
    out.push(replies(&mut a, &unnamed).await);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_thousand_parameters_work_as_on_postgresql() {
    let cluster = Arc::new(
        s::cluster_with_schema("CREATE TABLE wide (v int); GRANT ALL ON wide TO PUBLIC;").await,
    );
    // One backend: both clients' statements live on it side by side.
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    let direct = two_clients(primary_addr(&cluster), "trustuser").await;
    let insert = format!("C INSERT 0 {PARAMS}");
    let parsed = ["1", "2", insert.as_str()];
    let bound = ["2", insert.as_str()];
    assert_eq!(
        direct,
        [&parsed[..], &parsed, &bound, &bound, &parsed],
        "PostgreSQL itself"
    );
    let through = two_clients(server.local_addr, RAW_USER).await;
    assert_eq!(through, direct, "through pgtide");

    // sqlx sends the counts as u16, with a type for every parameter.
    let sql = wide_insert();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&s::app_url(&server))
        .await
        .expect("sqlx connects through pgtide");
    let mut q = sqlx::query(&sql);
    for i in 0..PARAMS as i32 {
        q = q.bind(i);
    }
    let done = q
        .execute(&mut conn)
        .await
        .expect("sqlx: 40,000-parameter INSERT");
    assert_eq!(done.rows_affected(), PARAMS as u64);

    // psycopg (libpq) likewise.
    let script = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    n = int(sys.argv[2])
    sql = "INSERT INTO wide VALUES " + ",".join(["(%s)"] * n)
    cur = conn.execute(sql, list(range(n)))
    assert cur.rowcount == n, cur.rowcount
    print("inserted", cur.rowcount)
"#;
    let n = PARAMS.to_string();
    if let Some(out) = s::python::run(
        "psycopg 40k parameters",
        script,
        &[&s::app_url(&server), &n],
    )
    .await
    {
        assert!(out.contains(&format!("inserted {PARAMS}")), "{out}");
    }
    let total = s::primary_sql(&cluster, s::APP_DB, "SELECT count(*) FROM wide").await;
    let expected = PARAMS * 11 + if s::python::available() { PARAMS } else { 0 };
    assert_eq!(total, expected.to_string());
    server.shutdown(s::Shutdown::Immediate).await;
}

/// A client of pgtide that authenticates with md5 (PostgreSQL's oracle: `md5user`).
const MD5_CLIENT: &str = "md5client";

/// Logs in as `user` up to its authentication request, then sends a 'p' message whose length
/// field says `len` with `body` bytes of it actually sent; returns what comes back: the
/// authentication request's code and "E <severity> <SQLSTATE>", or "closed".
async fn oversized_password(addr: SocketAddr, user: &str, len: usize, body: usize) -> String {
    let mut raw = Raw::connect_to(addr).await;
    raw.send(&startup_message(user, s::APP_DB)).await;
    let (tag, request) = raw.reader.next().await.expect("an authentication request");
    assert_eq!(tag, b'R', "{:?}", s::raw::parse_error(&request));
    let code = i32::from_be_bytes([request[0], request[1], request[2], request[3]]);
    let mut m = vec![b'p'];
    m.extend_from_slice(&(len as i32).to_be_bytes());
    m.extend(std::iter::repeat_n(b'x', body));
    raw.send(&m).await;
    let reply = match raw.reader.next().await {
        Some((b'E', e)) => {
            let e = s::raw::parse_error(&e);
            format!("E {} {}", e.severity, e.code)
        }
        Some((t, _)) => format!("unexpected '{}'", t as char),
        None => "closed".into(),
    };
    format!("auth {code}: {reply}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_messages_are_capped_as_postgresql_caps_them() {
    let cluster = s::cluster_with_schema("SELECT 1").await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    // On main an oversized message was awaited up to max_message_size: it would end here.
    config.server.startup_timeout = std::time::Duration::from_secs(5);
    let mut md5 = pgtide_config::UserConfig::new(MD5_CLIENT, Some("md5pass".into()));
    md5.auth_method = Some(pgtide_config::AuthMethod::Md5);
    config.users.push(md5);
    let server = s::start(config).await;
    let direct = primary_addr(&cluster);
    // (length field, body bytes sent): at the cap (no NUL: a malformed password), just over it,
    // over it with the whole body sent, and a huge length with no body at all.
    let password_cases = [
        (65_535, 65_531),
        (65_536, 65_532),
        (70_000, 69_996),
        (70_000, 0),
    ];
    let sasl_cases = [
        (1_024, 1_020),
        (1_025, 1_021),
        (70_000, 69_996),
        (0x7fff_fff0, 0),
    ];
    for (user, oracle_user, cases) in [
        (MD5_CLIENT, "md5user", password_cases),
        (s::APP_USER, s::APP_USER, sasl_cases),
    ] {
        for (len, body) in cases {
            let want = oversized_password(direct, oracle_user, len, body).await;
            let got = oversized_password(server.local_addr, user, len, body).await;
            // Both ask for a password (md5 5, SASL 10) and end the same way.
            assert_eq!(got, want, "{user}: length {len}, {body} bytes sent");
        }
    }
    // What PostgreSQL does, for the record: a password over 65,535 bytes closes the
    // connection without a message, a SASL message over 1,024 fails authentication.
    assert_eq!(
        oversized_password(direct, "md5user", 70_000, 0).await,
        "auth 5: closed"
    );
    assert_eq!(
        oversized_password(direct, s::APP_USER, 1_025, 1_021).await,
        "auth 10: E FATAL 28P01"
    );
    // pgtide still logs clients in.
    let client = s::connect(&s::app_url(&server)).await.expect("app logs in");
    assert_eq!(s::scalar(&client, "SELECT 1").await, "1");
    let md5_url = s::url(&server, MD5_CLIENT, "md5pass", s::APP_DB);
    let client = s::connect(&md5_url).await.expect("md5 client logs in");
    assert_eq!(s::scalar(&client, "SELECT 2").await, "2");
    server.shutdown(s::Shutdown::Immediate).await;
}
