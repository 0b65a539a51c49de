//! What the result cache key holds (issue 11, items 1 and 2): the exact statement text, not
//! its fingerprint (a named prepared statement that differs only in a literal never gets
//! another's reply), and every session setting that can change the reply's text or what the
//! statement may see (timezone, DateStyle, role, custom settings read by row-level security).
//! A client whose state pgtide cannot vouch for does not use the cache at all.

use std::time::Duration;

use pgtide_config::{CacheRule, Config, PoolMode};
use pgtide_suite as s;
use pgtide_suite::raw::{bind, execute_sync, first_column, parse, parse_error, Raw};
use tokio_postgres::{Client, SimpleQueryMessage};

const SCHEMA: &str = "
    CREATE TABLE acct (id int PRIMARY KEY, balance int);
    INSERT INTO acct SELECT i, i * 100 FROM generate_series(1, 6) i;
    CREATE TABLE events (id int, at timestamptz, day date);
    INSERT INTO events VALUES (1, '2024-01-01 00:00:00+00', '2024-03-05');
    CREATE TABLE secret (v text);
    INSERT INTO secret VALUES ('classified');
    CREATE TABLE docs (tenant text, body text);
    INSERT INTO docs VALUES ('a', 'a-doc'), ('b', 'b-doc');
    ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
    CREATE POLICY by_tenant ON docs USING (tenant = current_setting('app.tenant', true));
    CREATE ROLE reader NOLOGIN;
    GRANT reader TO app;
    GRANT SELECT ON acct, events, docs TO reader;
    GRANT ALL ON acct, events, secret, docs TO app;";

fn config(cluster: &pgtide_devcluster::Cluster) -> Config {
    let mut config = s::config(cluster, PoolMode::Transaction, 2);
    config.cache.rules = vec![CacheRule {
        tables: Some(
            ["acct", "events", "secret", "docs"]
                .iter()
                .map(|t| t.to_string())
                .collect(),
        ),
        ttl: Some(Duration::from_secs(300)),
        ..CacheRule::default()
    }];
    s::raw::add_trust_user(&mut config);
    config
}

async fn setup() -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = s::cluster_with_schema(SCHEMA).await;
    let server = s::start(config(&cluster)).await;
    s::cache_ready(&server).await;
    (cluster, server)
}

fn hits(server: &s::ServerHandle) -> u64 {
    server.shared.cache.totals().hits
}

/// Every row's columns of a simple query, as text ("NULL" for NULL).
async fn rows(c: &Client, sql: &str) -> Result<Vec<String>, String> {
    let messages = s::within(sql, Duration::from_secs(10), c.simple_query(sql))
        .await
        .map_err(|e| {
            e.as_db_error()
                .map_or(e.to_string(), |d| d.code().code().to_string())
        })?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect())
}

/// Prepares `sql` (a named statement: Parse/Describe/Sync, then Bind/Execute/Sync) and returns
/// its first column as text.
async fn prepared(c: &Client, sql: &str) -> Vec<String> {
    let stmt = c
        .prepare(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = c
        .query(&stmt, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| match r.columns()[0].type_() {
            &tokio_postgres::types::Type::INT4 => r.get::<_, i32>(0).to_string(),
            _ => r.get::<_, String>(0),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_differing_only_in_a_literal_are_different_entries() {
    let (_cluster, server) = setup().await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    // tokio-postgres: prepare + query (named statements, Bind without Parse in the batch).
    for round in 0..3 {
        for id in 1..=3 {
            let sql = format!("SELECT balance FROM acct WHERE id = {id}");
            assert_eq!(
                prepared(&c, &sql).await,
                [(id * 100).to_string()],
                "round {round}"
            );
        }
        for (limit, n) in [(2, 2), (4, 4), (1000, 6)] {
            let sql = format!("SELECT id FROM acct ORDER BY id LIMIT {limit}");
            assert_eq!(prepared(&c, &sql).await.len(), n, "{sql}");
        }
        let a = prepared(&c, "SELECT id FROM acct WHERE id IN (1, 2) ORDER BY id").await;
        let b = prepared(&c, "SELECT id FROM acct WHERE id IN (3, 4, 5) ORDER BY id").await;
        assert_eq!((a, b), (s_vec(&["1", "2"]), s_vec(&["3", "4", "5"])));
        let k1 = prepared(&c, "SELECT balance + 1 FROM acct WHERE id = 1").await;
        let k2 = prepared(&c, "SELECT balance + 2 FROM acct WHERE id = 1").await;
        assert_eq!((k1, k2), (s_vec(&["101"]), s_vec(&["102"])));
    }
    assert!(hits(&server) > 0, "the cache answered none of them");

    // A raw Parse/Bind/Execute/Sync of named statements.
    let mut raw = Raw::login(&server).await;
    for round in 0..3 {
        for id in 1..=3 {
            let name = format!("s{id}_{round}");
            let mut m = parse(&name, &format!("SELECT balance FROM acct WHERE id = {id}"));
            m.extend(bind(&name, &[]));
            m.extend(execute_sync());
            raw.send(&m).await;
            let reply = raw.reader.until_ready().await.expect("reply");
            assert_eq!(first_column(&reply), [(id * 100).to_string()]);
        }
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

fn s_vec(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// psycopg 3 with `prepare_threshold=0` (the reproduction of item 1), when the driver venv is
/// installed (`scripts/install-drivers`); otherwise a printed skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_named_statements_get_their_own_rows() {
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/drivers/venv/bin/python");
    if !python.exists() {
        eprintln!("skipped: no driver venv at {}", python.display());
        return;
    }
    let (_cluster, server) = setup().await;
    let script = "import sys, psycopg\n\
        with psycopg.connect(sys.argv[1], prepare_threshold=0, autocommit=True) as c:\n\
        \x20   for _ in range(3):\n\
        \x20       print(' '.join(str(c.execute(f'SELECT balance FROM acct WHERE id = {i}').fetchone()[0]) for i in (1, 2, 3)))\n";
    let out = tokio::process::Command::new(&python)
        .args(["-c", script, &s::app_url(&server)])
        .output()
        .await
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "100 200 300\n100 200 300\n100 200 300");
    assert!(hits(&server) >= 6, "the second and third rounds are hits");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Two clients through pgtide, each checked against a direct connection in the same state.
async fn same_as_direct(
    server: &s::ServerHandle,
    cluster: &pgtide_devcluster::Cluster,
    setup_a: &str,
    setup_b: &str,
    sql: &str,
) {
    let direct_url = cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    for setup in [setup_a, setup_b, setup_a, setup_b] {
        let via = s::connect(&s::app_url(server)).await.expect("connect");
        let direct = s::connect(&direct_url).await.expect("direct");
        if !setup.is_empty() {
            via.batch_execute(setup).await.expect("setup via pgtide");
            direct.batch_execute(setup).await.expect("setup direct");
        }
        for _ in 0..2 {
            assert_eq!(
                rows(&via, sql).await,
                rows(&direct, sql).await,
                "{sql} after {setup:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_are_part_of_the_key() {
    let (cluster, server) = setup().await;
    let ts = "SELECT at FROM events WHERE id = 1";
    same_as_direct(
        &server,
        &cluster,
        "SET timezone = 'UTC'",
        "SET timezone = 'Asia/Tokyo'",
        ts,
    )
    .await;
    let day = "SELECT day, at FROM events WHERE id = 1";
    same_as_direct(&server, &cluster, "", "SET DateStyle = 'German, DMY'", day).await;
    same_as_direct(
        &server,
        &cluster,
        "SET IntervalStyle = 'iso_8601'",
        "",
        "SELECT at - '2023-12-31'::timestamptz FROM events",
    )
    .await;
    // A role without the privilege gets the permission error, not the cached row.
    same_as_direct(
        &server,
        &cluster,
        "",
        "SET ROLE reader",
        "SELECT v FROM secret",
    )
    .await;
    // Row-level security reading a custom setting.
    same_as_direct(
        &server,
        &cluster,
        "SET app.tenant = 'a'",
        "SET app.tenant = 'b'",
        "SELECT body FROM docs ORDER BY 1",
    )
    .await;
    // The same, set at startup (options=-c) rather than by SET.
    let tenant = |t: &str| format!("{}?options=-capp.tenant%3D{t}", s::app_url(&server));
    let a = s::connect(&tenant("a")).await.expect("a");
    let b = s::connect(&tenant("b")).await.expect("b");
    for _ in 0..2 {
        assert_eq!(
            rows(&a, "SELECT body FROM docs").await,
            Ok(s_vec(&["a-doc"]))
        );
        assert_eq!(
            rows(&b, "SELECT body FROM docs").await,
            Ok(s_vec(&["b-doc"]))
        );
    }
    assert!(hits(&server) > 0, "the cache answered none of them");
    let role = s::connect(&s::app_url(&server)).await.expect("role");
    role.batch_execute("SET ROLE reader")
        .await
        .expect("set role");
    assert_eq!(
        rows(&role, "SELECT v FROM secret").await,
        Err("42501".to_string())
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// A client with `standard_conforming_strings` off or pinned does not use the cache; and the
/// Bind's result formats are part of the key (binary vs text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_pgtide_cannot_vouch_for_do_not_use_the_cache() {
    let (_cluster, server) = setup().await;
    let sql = r"SELECT length('a\\b') AS n, balance FROM acct WHERE id = 1";
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    assert_eq!(rows(&a, sql).await, Ok(s_vec(&["4|100"])));
    assert_eq!(rows(&a, sql).await, Ok(s_vec(&["4|100"])));
    let before = hits(&server);
    assert!(before >= 1, "the second read is a hit");
    // standard_conforming_strings off: the lexer cannot be trusted with its text.
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    b.batch_execute("SET standard_conforming_strings = off")
        .await
        .expect("scs");
    for _ in 0..3 {
        assert_eq!(rows(&b, sql).await, Ok(s_vec(&["3|100"])));
    }
    assert_eq!(
        hits(&server),
        before,
        "no hit for a client with backslash escapes"
    );
    // A pinned client (temp table shadowing the cached one) reads its own table.
    let p = s::connect(&s::app_url(&server)).await.expect("p");
    p.batch_execute(
        "CREATE TEMP TABLE acct (id int, balance int); INSERT INTO acct VALUES (1, 999)",
    )
    .await
    .expect("temp");
    for _ in 0..3 {
        assert_eq!(
            rows(&p, "SELECT balance FROM acct WHERE id = 1").await,
            Ok(s_vec(&["999"]))
        );
    }
    assert_eq!(hits(&server), before, "no hit for a pinned client");
    // Result formats: the same statement in binary and in text are two entries.
    let mut raw = Raw::login(&server).await;
    for _ in 0..2 {
        let mut m = parse("", "SELECT balance FROM acct WHERE id = 2");
        m.extend(bind_binary_result(""));
        m.extend(execute_sync());
        raw.send(&m).await;
        let reply = raw.reader.until_ready().await.expect("reply");
        if let Some((_, e)) = reply.iter().find(|(t, _)| *t == b'E') {
            panic!("{:?}", parse_error(e));
        }
        let row = reply.iter().find(|(t, _)| *t == b'D').expect("a row");
        assert_eq!(&row.1[6..], &200i32.to_be_bytes(), "binary int4");
        let mut m = parse("", "SELECT balance FROM acct WHERE id = 2");
        m.extend(bind("", &[]));
        m.extend(execute_sync());
        raw.send(&m).await;
        let reply = raw.reader.until_ready().await.expect("reply");
        assert_eq!(first_column(&reply), ["200"]);
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Bind of `statement`, no parameters, every result column in binary.
fn bind_binary_result(statement: &str) -> Vec<u8> {
    let mut body = Vec::new();
    s::raw::cstr(&mut body, "");
    s::raw::cstr(&mut body, statement);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    s::raw::msg(b'B', &body)
}
