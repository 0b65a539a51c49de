//! Statements a standby refuses, or that hide what they run, never go to a replica (issue 11,
//! item 9): serializable transactions and sessions, index maintenance functions, Unicode-escaped
//! names, text lexed with standard_conforming_strings off, EXPLAIN with a quoted ANALYZE. And a
//! read the replica refused as a write, re-run on the primary, counts as a write.

use std::time::Duration;

use pgtide_config::{CacheRule, Config, PoolMode};
use pgtide_devcluster::{Cluster, ClusterOptions};
use pgtide_suite as s;
use tokio_postgres::Client;

/// A primary and one replica (applying WAL `delay` late), with `schema` run as the superuser,
/// once the replica has it.
async fn cluster(delay: &str, schema: &'static str) -> Cluster {
    let settings = match delay {
        "" => Vec::new(),
        d => vec![("recovery_min_apply_delay".to_string(), d.to_string())],
    };
    let cluster = tokio::task::spawn_blocking(move || {
        let cluster = s::cluster_with(ClusterOptions {
            replicas: 1,
            settings,
            ..Default::default()
        });
        cluster
            .primary()
            .psql_db(s::APP_DB, schema)
            .expect("schema");
        cluster.wait_for_replicas().expect("replica streaming");
        cluster
    })
    .await
    .expect("cluster task");
    let replica = s::connect(&cluster.replicas()[0].url(s::APP_USER, s::APP_PASSWORD, s::APP_DB))
        .await
        .expect("replica");
    assert!(
        s::eventually(Duration::from_secs(15), || async {
            replica.simple_query("SELECT 1 FROM marker").await.is_ok()
        })
        .await,
        "the schema never reached the replica"
    );
    cluster
}

fn config(cluster: &Cluster) -> Config {
    let mut config = s::config_with_replicas(cluster, PoolMode::Transaction, 4, &[1]);
    // Lag is expected: only routing keeps reads off the replica here.
    config.routing.max_replica_lag = Duration::from_secs(3600);
    config
}

/// A new client whose reads reach the replica (it has written nothing).
async fn reader(server: &s::ServerHandle) -> Client {
    let c = s::connect(&s::app_url(server)).await.expect("connect");
    assert!(
        s::eventually(Duration::from_secs(10), || async {
            s::scalar(&c, "SELECT pg_is_in_recovery()").await == "t"
        })
        .await,
        "reads never reached the replica"
    );
    c
}

/// Runs `sql` (simple protocol), noting a failure as `what`.
async fn ok(c: &Client, what: &str, sql: &str, failures: &mut Vec<String>) {
    if let Err(e) = c.simple_query(sql).await {
        let e = e.as_db_error().map_or(e.to_string(), |d| {
            format!("{} {}", d.code().code(), d.message())
        });
        failures.push(format!("{what}: {e}"));
    }
}

const SCHEMA: &str = "CREATE TABLE marker (id int);
     CREATE TABLE docs (id int, body text);
     CREATE INDEX docs_gin ON docs USING gin (to_tsvector('simple', body)) WITH (fastupdate = on);
     CREATE TABLE events (id int, at int);
     CREATE INDEX events_brin ON events USING brin (at);
     INSERT INTO events SELECT g, g FROM generate_series(1, 1000) g;
     CREATE TABLE kept (id int); INSERT INTO kept VALUES (1);
     ALTER TABLE docs OWNER TO app; ALTER TABLE events OWNER TO app;
     ALTER TABLE kept OWNER TO app; GRANT SELECT ON marker TO app;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_a_standby_refuses_run_on_the_primary() {
    let cluster = cluster("", SCHEMA).await;
    let server = s::start(config(&cluster)).await;
    let mut failures = Vec::new();

    // 0A000 on a standby: a serializable transaction, READ ONLY or not, or session default.
    // (A fresh client each time: read-your-writes would keep a writer on the primary anyway.)
    let c = reader(&server).await;
    ok(
        &c,
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        &mut failures,
    )
    .await;
    ok(
        &c,
        "a read in it",
        "SELECT count(*) FROM kept",
        &mut failures,
    )
    .await;
    let _ = c.batch_execute("COMMIT").await;
    for set in [
        "SET default_transaction_isolation = serializable",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    ] {
        let c = reader(&server).await;
        c.batch_execute(set).await.expect(set);
        ok(&c, set, "SELECT count(*) FROM kept", &mut failures).await;
        if let Err(e) = c.query_one("SELECT count(*) FROM kept", &[]).await {
            failures.push(format!("{set}, extended protocol: {e}"));
        }
    }

    // 55000 "recovery is in progress": index maintenance, by name or in Unicode escapes.
    let c = reader(&server).await;
    for sql in [
        "SELECT brin_summarize_new_values('events_brin')",
        "SELECT brin_summarize_range('events_brin', 0)",
        "SELECT brin_desummarize_range('events_brin', 0)",
        "SELECT gin_clean_pending_list('docs_gin')",
        "SELECT U&\"gin_clean_pending_l!0069st\" UESCAPE '!'('docs_gin'::regclass)",
        "SELECT U&\"brin_summarize_new_v\\0061lues\"('events_brin')",
    ] {
        ok(&c, sql, sql, &mut failures).await;
    }

    // With standard_conforming_strings off, `\'` escapes the quote: what pgtide's lexer reads
    // as one string is a SELECT and a DELETE.
    let c = reader(&server).await;
    c.batch_execute("SET standard_conforming_strings = off")
        .await
        .expect("scs off");
    ok(
        &c,
        "a DELETE hidden by standard_conforming_strings = off",
        r"SELECT 'x\''; DELETE FROM kept; --'",
        &mut failures,
    )
    .await;

    assert!(
        failures.is_empty(),
        "statements a standby refuses failed: {failures:#?}"
    );
    let left = cluster
        .primary()
        .psql_db(s::APP_DB, "SELECT count(*) FROM kept")
        .expect("count");
    assert_eq!(left.trim(), "0", "the hidden DELETE ran on the primary");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Statements that wrote on the primary, though a replica was chosen first (EXPLAIN with a
/// quoted ANALYZE option; a function the classifier cannot know writes, refused by the replica
/// and re-run): the writer reads its write even from a lagging replica, and the result cache
/// does not keep what was read before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_found_on_the_way_counts_as_a_write() {
    let cluster = cluster(
        "1s",
        "CREATE TABLE marker (id int); GRANT SELECT ON marker TO app;
         CREATE TABLE rw (id int); INSERT INTO rw VALUES (1), (2);
         CREATE TABLE audit (at timestamptz DEFAULT now());
         CREATE FUNCTION record_visit() RETURNS int LANGUAGE sql
           AS 'INSERT INTO audit DEFAULT VALUES; SELECT count(*)::int FROM audit';
         ALTER TABLE rw OWNER TO app; ALTER TABLE audit OWNER TO app;
         ALTER FUNCTION record_visit() OWNER TO app;",
    )
    .await;
    let mut config = config(&cluster);
    config.cache.rules = vec![CacheRule {
        query: None,
        tables: Some(vec!["audit".to_string()]),
        ttl: Some(Duration::from_secs(600)),
    }];
    let server = s::start(config).await;
    s::cache_ready(&server).await;
    let mut failures = Vec::new();

    let c = reader(&server).await;
    ok(
        &c,
        "EXPLAIN (\"analyze\") DELETE",
        "EXPLAIN (\"analyze\") DELETE FROM rw WHERE id = 1",
        &mut failures,
    )
    .await;
    let seen = s::scalar(&c, "SELECT count(*) FROM rw WHERE id = 1").await;
    if seen != "0" {
        failures.push("EXPLAIN (\"analyze\") DELETE: its writer still read the row".into());
    }

    // A reader on the primary fills the cache before the write.
    let cached = s::connect(&s::app_url(&server)).await.expect("connect");
    cached
        .batch_execute("SET pgtide.route = primary")
        .await
        .expect("route");
    let count = "SELECT count(*) FROM audit";
    assert_eq!(s::scalar(&cached, count).await, "0");
    let writer = reader(&server).await;
    assert_eq!(s::scalar(&writer, "SELECT record_visit()").await, "1");
    if s::scalar(&writer, count).await != "1" {
        failures.push("a read re-run on the primary: its writer did not read its write".into());
    }
    if s::scalar(&cached, count).await != "1" {
        failures.push("a read re-run on the primary: the cache kept the count before it".into());
    }
    assert!(failures.is_empty(), "{failures:#?}");
    server.shutdown(s::Shutdown::Immediate).await;
}
