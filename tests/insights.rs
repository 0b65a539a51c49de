//! Query insights through pgtide: per-fingerprint latency percentiles, and N+1 patterns in
//! SHOW N_PLUS_ONE and /api/n_plus_one.

use std::time::Duration;

use pgtide_config::{PoolMode, UserConfig};
use pgtide_suite as s;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::SimpleQueryMessage;

async fn setup(window: Duration) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = s::cluster_with_schema(
        "CREATE TABLE authors (id int PRIMARY KEY, name text);
             CREATE TABLE books (id int PRIMARY KEY, author_id int, title text);
             INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 30) g;
             INSERT INTO books SELECT g, g, 'book ' || g FROM generate_series(1, 30) g;
             GRANT ALL ON authors, books TO app;",
    )
    .await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 4);
    config.insights.n_plus_one_min_repeats = 10;
    config.insights.n_plus_one_window = window;
    let mut admin = UserConfig::new("ops", Some("ops-secret".into()));
    admin.admin = true;
    config.users.push(admin);
    let server = s::start(config).await;
    (cluster, server)
}

/// `SHOW <what>` on the admin console, as (column, value) maps.
async fn show(server: &s::ServerHandle, what: &str) -> Vec<Vec<(String, String)>> {
    let admin = s::connect(&s::url(server, "ops", "ops-secret", "pgtide"))
        .await
        .expect("admin");
    admin
        .simple_query(&format!("SHOW {what}"))
        .await
        .expect("show")
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), r.get(i).unwrap_or("").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn field<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {row:?}"))
}

async fn http_get(server: &s::ServerHandle, path: &str) -> String {
    let addr = server.http_addr.expect("http listener");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("http connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_plus_one_in_a_transaction_is_reported_and_spread_out_lookups_are_not() {
    let (_cluster, server) = setup(Duration::from_millis(100)).await;
    let app = s::connect(&format!(
        "{}?application_name=bookshop",
        s::app_url(&server)
    ))
    .await
    .expect("app");
    // The app-like N+1: one parent query, then a lookup per row, in one transaction.
    app.batch_execute("BEGIN").await.expect("begin");
    let books = app
        .query("SELECT id, author_id FROM books ORDER BY id LIMIT 25", &[])
        .await
        .expect("parent");
    let lookup = app
        .prepare("SELECT name FROM authors WHERE id = $1")
        .await
        .expect("prepare");
    for b in &books {
        let author: i32 = b.get(1);
        app.query_one(&lookup, &[&author]).await.expect("child");
    }
    app.batch_execute("COMMIT").await.expect("commit");

    let reports = show(&server, "N_PLUS_ONE").await;
    assert_eq!(reports.len(), 1, "one pattern: {reports:?}");
    let r = &reports[0];
    assert_eq!(field(r, "count"), "25");
    assert_eq!(field(r, "application_name"), "bookshop");
    assert!(
        field(r, "repeated")
            .to_ascii_lowercase()
            .contains("from authors"),
        "{r:?}"
    );
    assert!(
        field(r, "parent")
            .to_ascii_lowercase()
            .contains("from books"),
        "{r:?}"
    );
    assert!(field(r, "suggestion").contains("ANY"), "{r:?}");
    let api = http_get(&server, "/api/n_plus_one").await;
    assert!(api.contains("\"count\":25"), "{api}");

    // The same 25 lookups spread out beyond the window (outside a transaction): no pattern.
    // (n_plus_one_window is 100 ms here, standing in for the default's "minutes apart".)
    let other = s::connect(&format!(
        "{}?application_name=slowpoke",
        s::app_url(&server)
    ))
    .await
    .expect("other");
    let lookup = other
        .prepare("SELECT name FROM authors WHERE id = $1")
        .await
        .expect("prepare");
    for id in 1..=25i32 {
        other.query_one(&lookup, &[&id]).await.expect("lookup");
        tokio::time::sleep(Duration::from_millis(130)).await;
    }
    let reports = show(&server, "N_PLUS_ONE").await;
    assert!(
        reports
            .iter()
            .all(|r| field(r, "application_name") != "slowpoke"),
        "spread-out lookups were reported: {reports:?}"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentiles_match_known_delays() {
    let (_cluster, server) = setup(Duration::from_secs(1)).await;
    let app = s::connect(&s::app_url(&server)).await.expect("app");
    // 40 statements of 10 ms and 10 of 50 ms: p50 is 10 ms, p95 and p99 are 50 ms, plus what
    // each run costs beyond its sleep. The client times each run too: pgtide's figure must lie
    // between the sleep and what the client saw for the same rank (no wall-clock bound, so a
    // busy machine cannot fail it).
    let mut short = Vec::new();
    let mut long = Vec::new();
    for i in 0..50 {
        let delay = if i % 5 == 4 { "0.05" } else { "0.01" };
        let started = std::time::Instant::now();
        app.simple_query(&format!("SELECT pg_sleep({delay})"))
            .await
            .expect("sleep");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if i % 5 == 4 {
            long.push(ms)
        } else {
            short.push(ms)
        }
    }
    short.sort_by(f64::total_cmp);
    long.sort_by(f64::total_cmp);
    let queries = show(&server, "QUERIES").await;
    let q = queries
        .iter()
        .find(|q| {
            field(q, "fingerprint")
                .to_ascii_lowercase()
                .contains("pg_sleep")
        })
        .unwrap_or_else(|| panic!("no pg_sleep fingerprint: {queries:?}"));
    assert_eq!(field(q, "calls"), "50");
    let ms = |name: &str| field(q, name).parse::<f64>().expect("number");
    // Histograms keep 2 significant figures: 1% either way.
    let within = |name: &str, low: f64, high: f64| {
        let v = ms(name);
        assert!(
            v >= low * 0.99 && v <= high * 1.01,
            "{name} {v} outside [{low}, {high}] (client saw short {short:?}, long {long:?})"
        );
    };
    // p50 is the 25th of 50: a 10 ms run, at most the client's 25th-fastest short run.
    within("p50_ms", 10.0, short[24]);
    // p95 and p99 are among the 50 ms runs, at most the slowest one the client saw.
    within("p95_ms", 50.0, long[long.len() - 1]);
    within("p99_ms", 50.0, long[long.len() - 1]);
    let api = http_get(&server, "/api/queries").await;
    assert!(api.contains("pg_sleep"), "{api}");
    server.shutdown(s::Shutdown::Immediate).await;
}
