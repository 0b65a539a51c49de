//! The result cache's limits end to end: every kind of write through pgtide refreshes what it
//! touched (TRUNCATE, COPY FROM, DDL, an extended-protocol write, a write committed by another
//! client), what must never be cached is not (volatile functions, locking reads, errors,
//! oversized replies, reads inside a read-write transaction, `/* pgtide:no-cache */`), and the
//! store stays under `max_memory` while 100,000 distinct keys go through it.
//!
//! Staleness is observed by changing rows directly on the primary (bypassing pgtide): a cached
//! reply keeps the old value, a reply that was not cached shows the new one.

use std::time::Duration;

use pgtide_config::{CacheRule, Config, PoolMode};
use pgtide_suite as s;
use tokio_postgres::Client;

async fn cluster() -> pgtide_devcluster::Cluster {
    s::cluster_with_schema(
        "CREATE TABLE kv (k int PRIMARY KEY, v text);
             INSERT INTO kv VALUES (1, 'a'), (2, '0');
             CREATE TABLE other (k int);
             ALTER TABLE kv OWNER TO app;
             GRANT ALL ON ALL TABLES IN SCHEMA public TO app;",
    )
    .await
}

fn config(cluster: &pgtide_devcluster::Cluster, max_memory: u64) -> Config {
    let mut config = s::config(cluster, PoolMode::Transaction, 4);
    config.cache.max_memory = max_memory;
    config.cache.rules = vec![CacheRule {
        query: None,
        tables: Some(vec!["kv".into()]),
        ttl: Some(Duration::from_secs(300)),
    }];
    config
}

async fn ready(cluster: &pgtide_devcluster::Cluster, max_memory: u64) -> (s::ServerHandle, Client) {
    let server = s::start(config(cluster, max_memory)).await;
    s::cache_ready(&server).await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    (server, c)
}

/// The first column of every row of a simple query.
async fn column(c: &Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .collect()
}

const READ: &str = "SELECT v FROM kv WHERE k = 1";

/// Reads kv twice (the second read is a hit) and checks that the reply is cached: a change
/// made behind pgtide's back does not show.
async fn cached(cluster: &pgtide_devcluster::Cluster, c: &Client, expect: &[&str]) {
    assert_eq!(column(c, READ).await, expect);
    s::app_sql(cluster, "UPDATE kv SET v = 'bypassed' WHERE k = 1");
    assert_eq!(column(c, READ).await, expect, "served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_through_pgtide_refreshes_what_it_touched() {
    let cluster = cluster().await;
    let (server, c) = ready(&cluster, 64 << 20).await;

    // TRUNCATE.
    cached(&cluster, &c, &["a"]).await;
    c.batch_execute("TRUNCATE kv").await.expect("truncate");
    assert!(column(&c, READ).await.is_empty(), "stale after TRUNCATE");

    // COPY FROM STDIN.
    let sink = c
        .copy_in::<_, bytes::Bytes>("COPY kv (k, v) FROM STDIN")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    futures_util::SinkExt::send(&mut sink, bytes::Bytes::from_static(b"1\tcopied\n"))
        .await
        .expect("copy rows");
    sink.finish().await.expect("copy done");
    assert_eq!(column(&c, READ).await, ["copied"], "stale after COPY FROM");

    // DDL: a cached `SELECT *` must show the new column.
    let star = "SELECT * FROM kv WHERE k = 1";
    let width = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.len()),
                _ => None,
            })
            .expect("a row")
    };
    assert_eq!(width(c.simple_query(star).await.expect("star")), 2);
    assert_eq!(width(c.simple_query(star).await.expect("star")), 2);
    c.batch_execute("ALTER TABLE kv ADD COLUMN extra int DEFAULT 7")
        .await
        .expect("alter");
    assert_eq!(
        width(c.simple_query(star).await.expect("star")),
        3,
        "stale after ALTER TABLE"
    );

    // An extended-protocol write (a prepared UPDATE with a parameter).
    cached(&cluster, &c, &["copied"]).await;
    let update = c
        .prepare("UPDATE kv SET v = $1 WHERE k = 1")
        .await
        .expect("prepare");
    c.execute(&update, &[&"extended"]).await.expect("update");
    assert_eq!(
        column(&c, READ).await,
        ["extended"],
        "stale after a Bind/Execute write"
    );

    // Another client's transaction: invisible until COMMIT, visible right after it.
    cached(&cluster, &c, &["extended"]).await;
    let writer = s::connect(&s::app_url(&server)).await.expect("writer");
    writer
        .batch_execute("BEGIN; UPDATE kv SET v = 'committed' WHERE k = 1")
        .await
        .expect("begin");
    // Read while the write is pending: whatever it stores is dropped at the commit.
    let pending = column(&c, READ).await;
    assert_ne!(pending, ["committed"], "an uncommitted write showed");
    writer.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(column(&c, READ).await, ["committed"], "stale after COMMIT");

    // A write to an unrelated table leaves kv's entries alone.
    cached(&cluster, &c, &["committed"]).await;
    let before = server.shared.cache.totals().entries;
    c.batch_execute("INSERT INTO other VALUES (1)")
        .await
        .expect("insert other");
    assert_eq!(server.shared.cache.totals().entries, before);
    assert_eq!(column(&c, READ).await, ["committed"]);
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_must_not_be_cached_is_not() {
    let cluster = cluster().await;
    // max_memory 1 MiB: one reply may be at most 16 KiB.
    let (server, c) = ready(&cluster, 1 << 20).await;
    let fresh = |v: &str| format!("UPDATE kv SET v = '{v}' WHERE k = 1");

    // Each statement runs, then kv changes behind pgtide's back: the statement sees it.
    let cases = [
        (
            "volatile function",
            "SELECT v || (random() * 0)::int FROM kv WHERE k = 1",
        ),
        ("locking read", "SELECT v FROM kv WHERE k = 1 FOR UPDATE"),
        (
            "opt-out hint",
            "SELECT /* pgtide:no-cache */ v FROM kv WHERE k = 1",
        ),
        (
            "oversized reply",
            "SELECT v || repeat('x', 20000) FROM kv WHERE k = 1",
        ),
    ];
    for (i, (what, sql)) in cases.iter().enumerate() {
        let (one, two) = (format!("one{i}"), format!("two{i}"));
        s::app_sql(&cluster, &fresh(&one));
        let first = column(&c, sql).await;
        assert!(first[0].starts_with(&one), "{what}: {first:?}");
        s::app_sql(&cluster, &fresh(&two));
        let second = column(&c, sql).await;
        assert!(second[0].starts_with(&two), "{what} was cached: {second:?}");
    }
    assert_eq!(
        server.shared.cache.totals().entries,
        0,
        "nothing was stored"
    );

    // An error is not cached: division by zero, then the row is fixed behind pgtide's back.
    let divide = "SELECT 10 / v::int FROM kv WHERE k = 2";
    let err = c.simple_query(divide).await.expect_err("division by zero");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    s::app_sql(&cluster, "UPDATE kv SET v = '5' WHERE k = 2");
    assert_eq!(column(&c, divide).await, ["2"], "the error was cached");

    // A read inside a read-write transaction neither reads nor fills the cache.
    s::app_sql(&cluster, &fresh("in-tx"));
    c.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(column(&c, READ).await, ["in-tx"]);
    c.batch_execute("COMMIT").await.expect("commit");
    s::app_sql(&cluster, &fresh("after-tx"));
    assert_eq!(
        column(&c, READ).await,
        ["after-tx"],
        "the transaction's read was stored"
    );
    // ... while the same read outside one is (the control for all of the above).
    s::app_sql(&cluster, &fresh("later"));
    assert_eq!(
        column(&c, READ).await,
        ["after-tx"],
        "outside a transaction it is cached"
    );

    // The opt-in hint caches a read no rule covers.
    let hinted = "SELECT /* pgtide:cache */ count(*) FROM other";
    assert_eq!(column(&c, hinted).await, ["0"]);
    cluster
        .primary()
        .psql_db(s::APP_DB, "INSERT INTO other VALUES (1)")
        .expect("insert");
    assert_eq!(column(&c, hinted).await, ["0"], "the hint did not cache");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// 100,000 distinct keys (one point query with 100,000 different literals) through pgtide with
/// `max_memory` = 2 MiB: the store never holds more than that once moka has applied its
/// pending writes, and it is still used (entries are held, and hit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_under_max_memory_over_100k_distinct_keys() {
    use pgtide_suite::raw::{add_trust_user, Raw};
    const MAX: u64 = 2 << 20;
    const KEYS: usize = 100_000;
    const CLIENTS: usize = 4;
    const ROUND: usize = 1_000;
    // Read again and again amid the flood of one-off keys.
    const HOT: &str = "SELECT v, 'hot' AS n FROM kv WHERE k = 1";
    let cluster = cluster().await;
    let mut config = config(&cluster, MAX);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    s::cache_ready(&server).await;
    // Four clients, each one query at a time (a query pipelined behind a miss runs on the
    // miss's backend without a lookup), in rounds of 1,000 keys each. Between rounds nothing
    // runs: moka's maintenance pass is applied and the store measured (during a pass its
    // weighted size can briefly include inserts it has not evicted for yet).
    let store = server.shared.cache.store();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Raw::login(&server).await);
    }
    let mut peak = 0;
    let mut next = 0;
    while next < KEYS {
        let mut round = Vec::new();
        for mut raw in clients.drain(..) {
            let keys = next..(next + ROUND).min(KEYS);
            next = keys.end;
            round.push(tokio::spawn(async move {
                for i in keys {
                    let rows = raw
                        .simple_rows(&format!("SELECT v, {i} AS n FROM kv WHERE k = 1"))
                        .await;
                    assert_eq!(rows, ["a"]);
                    if i % 100 == 0 {
                        assert_eq!(raw.simple_rows(HOT).await, ["a"]);
                    }
                }
                raw
            }));
        }
        for task in round {
            clients.push(task.await.expect("client"));
        }
        store.run_pending_tasks();
        let (held, own) = (store.weighted_size(), store.bytes());
        peak = peak.max(held);
        assert!(held <= MAX, "{held} > {MAX} after {next} keys");
        assert!(own <= MAX, "{own} > {MAX} after {next} keys");
    }
    let totals = server.shared.cache.totals();
    assert!(totals.misses >= KEYS as u64, "{totals:?}");
    assert!(totals.entries > 1_000, "the cache is used: {totals:?}");
    assert!(peak > MAX / 2, "the cache filled up: peak {peak}");
    // moka admits by frequency (TinyLFU): the hot key outlived 100,000 one-off keys and is
    // still answered from memory.
    assert!(totals.hits >= 900, "the hot key was hit: {totals:?}");
    let mut raw = Raw::login(&server).await;
    assert_eq!(raw.simple_rows(HOT).await, ["a"]);
    assert_eq!(server.shared.cache.totals().hits, totals.hits + 1);
    server.shutdown(s::Shutdown::Immediate).await;
}
