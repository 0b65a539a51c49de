//! The result cache end to end: whitelisted reads answered from memory without touching
//! PostgreSQL, stale only for writes that bypass pgtide (until the TTL), and fresh after any
//! write through pgtide — on this instance and, through NOTIFY, on another.

use std::time::Duration;

use pgtide_config::{CacheRule, Config, PoolMode};
use pgtide_suite as s;
use tokio_postgres::Client;

async fn cluster() -> pgtide_devcluster::Cluster {
    s::cluster_with_schema(
        "CREATE SEQUENCE lookups;
             CREATE TABLE products (id int PRIMARY KEY, name text);
             INSERT INTO products VALUES (1, 'kettle'), (2, 'toaster');
             CREATE SCHEMA s1; CREATE SCHEMA s2;
             CREATE TABLE s1.t (v text); CREATE TABLE s2.t (v text);
             INSERT INTO s1.t VALUES ('one'); INSERT INTO s2.t VALUES ('two');
             CREATE FUNCTION counted_name(p int) RETURNS text LANGUAGE plpgsql STABLE AS
               $$ BEGIN PERFORM nextval('lookups'); RETURN (SELECT name FROM products WHERE id = p); END $$;
             GRANT ALL ON ALL TABLES IN SCHEMA public, s1, s2 TO app;
             GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app;
             GRANT USAGE ON SCHEMA s1, s2 TO app;",
    )
    .await
}

fn config(cluster: &pgtide_devcluster::Cluster, ttl: Duration) -> Config {
    let mut config = s::config(cluster, PoolMode::Transaction, 4);
    let rule = |query: Option<&str>, tables: Option<&[&str]>| CacheRule {
        query: query.map(str::to_string),
        tables: tables.map(|t| t.iter().map(|s| s.to_string()).collect()),
        ttl: Some(ttl),
    };
    config.cache.rules = vec![
        rule(Some("SELECT counted_name(1)"), None),
        rule(None, Some(&["products"])),
        rule(None, Some(&["t"])),
    ];
    config
}

async fn name(c: &Client) -> String {
    s::scalar(c, "SELECT name FROM products WHERE id = 1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_does_not_reach_postgresql() {
    let cluster = cluster().await;
    let server = s::start(config(&cluster, Duration::from_secs(60))).await;
    s::cache_ready(&server).await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    for _ in 0..20 {
        assert_eq!(s::scalar(&c, "SELECT counted_name(1)").await, "kettle");
    }
    // The function counts its runs on the server: once, for the miss.
    assert_eq!(s::app_sql(&cluster, "SELECT last_value FROM lookups"), "1");
    let hits = server.shared.cache.totals();
    assert!(hits.hits >= 19, "{hits:?}");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_pgtide_wait_for_the_ttl_and_writes_through_it_show_at_once() {
    let cluster = cluster().await;
    let server = s::start(config(&cluster, Duration::from_secs(2))).await;
    s::cache_ready(&server).await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    assert_eq!(name(&c).await, "kettle");
    // Bypassing pgtide: the cached row stays until its TTL — proof the cache answers.
    s::app_sql(&cluster, "UPDATE products SET name = 'teapot' WHERE id = 1");
    assert_eq!(name(&c).await, "kettle", "served from the cache");
    assert!(
        s::eventually(Duration::from_secs(10), || async {
            name(&c).await == "teapot"
        })
        .await,
        "the TTL never expired the entry"
    );
    // Through pgtide: the very next read sees it.
    c.batch_execute("UPDATE products SET name = 'kettle v2' WHERE id = 1")
        .await
        .expect("update");
    assert_eq!(name(&c).await, "kettle v2");
    // A writable CTE writes too.
    c.simple_query("WITH w AS (UPDATE products SET name = 'cte' WHERE id = 1 RETURNING 1) SELECT count(*) FROM w")
        .await
        .expect("writable CTE");
    assert_eq!(name(&c).await, "cte");
    // Inside a transaction the cache is bypassed; after ROLLBACK the old row comes back.
    c.batch_execute("BEGIN; UPDATE products SET name = 'rolled back' WHERE id = 1")
        .await
        .expect("begin");
    assert_eq!(name(&c).await, "rolled back", "the writer sees its own row");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(name(&c).await, "cte");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_qualified_names_and_two_schemas_with_one_table_name() {
    let cluster = cluster().await;
    let server = s::start(config(&cluster, Duration::from_secs(60))).await;
    s::cache_ready(&server).await;
    let a = s::connect(&format!(
        "{}?options=-csearch_path%3Ds1",
        s::app_url(&server)
    ))
    .await
    .expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    assert_eq!(s::scalar(&a, "SELECT v FROM t").await, "one");
    assert_eq!(s::scalar(&b, "SELECT v FROM s2.t").await, "two");
    // A write to s1.t, qualified, reaches the entry A read under its search_path.
    b.batch_execute("UPDATE s1.t SET v = 'uno'")
        .await
        .expect("update s1");
    assert_eq!(s::scalar(&a, "SELECT v FROM t").await, "uno");
    // ... and A's unqualified write reaches B's qualified read of its own schema only.
    b.batch_execute("UPDATE s2.t SET v = 'dos'")
        .await
        .expect("update s2");
    assert_eq!(s::scalar(&b, "SELECT v FROM s2.t").await, "dos");
    a.batch_execute("UPDATE public.products SET name = 'qualified' WHERE id = 1")
        .await
        .expect("qualified write");
    assert_eq!(name(&b).await, "qualified");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_reaches_the_other() {
    let cluster = cluster().await;
    let one = s::start(config(&cluster, Duration::from_secs(60))).await;
    let two = s::start(config(&cluster, Duration::from_secs(60))).await;
    s::cache_ready(&one).await;
    s::cache_ready(&two).await;
    let c1 = s::connect(&s::app_url(&one)).await.expect("one");
    let c2 = s::connect(&s::app_url(&two)).await.expect("two");
    assert_eq!(name(&c2).await, "kettle");
    assert_eq!(name(&c2).await, "kettle");
    c1.batch_execute("UPDATE products SET name = 'shared' WHERE id = 1")
        .await
        .expect("update through one");
    // NOTIFY travels through PostgreSQL: the other instance drops its entry within moments.
    assert!(
        s::eventually(Duration::from_secs(2), || async {
            name(&c2).await == "shared"
        })
        .await,
        "instance two kept its stale entry"
    );
    one.shutdown(s::Shutdown::Immediate).await;
    two.shutdown(s::Shutdown::Immediate).await;
}

/// No rules (the default `[cache]`) and nothing cached yet: a hinted unnamed Parse batch is
/// looked up and filled, then answered from the cache (a change behind pgtide's back is not
/// seen), and a write through pgtide refreshes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hinted_extended_batch_is_cached_without_rules() {
    use pgtide_suite::raw::{add_trust_user, bind, execute, first_column, msg, parse, Raw};
    let cluster = cluster().await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    let mut raw = Raw::login(&server).await;
    let batch = || {
        let mut m = parse(
            "",
            "/* pgtide:cache */ SELECT name FROM products WHERE id = $1",
        );
        m.extend(bind("", &["2"]));
        m.extend(msg(b'D', b"P\0"));
        m.extend(execute());
        m.extend(msg(b'S', &[]));
        m
    };
    let mut answer = async || {
        raw.send(&batch()).await;
        first_column(&raw.reader.until_ready().await.expect("reply"))
    };
    assert_eq!(answer().await, ["toaster"]);
    s::app_sql(&cluster, "UPDATE products SET name = 'behind' WHERE id = 2");
    assert_eq!(answer().await, ["toaster"], "answered from the cache");
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    c.batch_execute("UPDATE products SET name = 'through pgtide' WHERE id = 2")
        .await
        .expect("update");
    assert_eq!(answer().await, ["through pgtide"], "fresh after the write");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// The extended protocol: a driver's prepared statement (Bind/Execute/Sync) and libpq's
/// `[Parse] Bind Describe Execute Sync` are answered from the cache too, with the
/// ParseComplete/BindComplete the batch needs, and a write through pgtide still refreshes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_hits_do_not_reach_postgresql() {
    use pgtide_suite::raw::{add_trust_user, bind, execute, first_column, msg, parse, Raw};
    let cluster = cluster().await;
    let mut config = config(&cluster, Duration::from_secs(60));
    add_trust_user(&mut config);
    let server = s::start(config).await;
    s::cache_ready(&server).await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    let stmt = c.prepare("SELECT counted_name($1)").await.expect("prepare");
    for _ in 0..20 {
        let row = c.query_one(&stmt, &[&1i32]).await.expect("execute");
        assert_eq!(row.get::<_, String>(0), "kettle");
    }
    assert_eq!(s::app_sql(&cluster, "SELECT last_value FROM lookups"), "1");
    // Another parameter is another entry.
    let row = c.query_one(&stmt, &[&2i32]).await.expect("execute");
    assert_eq!(row.get::<_, String>(0), "toaster");
    assert_eq!(s::app_sql(&cluster, "SELECT last_value FROM lookups"), "2");

    // libpq's shape, from a raw client (the raw client logs in as a trust user).
    let mut raw = Raw::login(&server).await;
    let batch = || {
        let mut m = parse("", "SELECT name FROM products WHERE id = $1");
        m.extend(bind("", &["1"]));
        m.extend(msg(b'D', b"P\0"));
        m.extend(execute());
        m.extend(msg(b'S', &[]));
        m
    };
    for _ in 0..3 {
        raw.send(&batch()).await;
        let reply = raw.reader.until_ready().await.expect("reply");
        let tags: String = reply.iter().map(|(t, _)| *t as char).collect();
        assert_eq!(tags, "12TDC");
        assert_eq!(first_column(&reply), ["kettle"]);
    }
    c.batch_execute("UPDATE products SET name = 'renamed' WHERE id = 1")
        .await
        .expect("update");
    raw.send(&batch()).await;
    let reply = raw.reader.until_ready().await.expect("reply");
    assert_eq!(first_column(&reply), ["renamed"], "fresh after the write");
    server.shutdown(s::Shutdown::Immediate).await;
}
