//! The cache and the rest of the database's state (issue 11, item 3): a miss filled from a
//! lagging replica is never served to the client that just wrote (nor stored before the
//! replica has the write), and a rule that names a view is invalidated by writes to the
//! view's base tables, found in the catalog (views on views too).

use std::time::Duration;

use pgtide_config::{CacheRule, Config, PoolMode};
use pgtide_devcluster::{Cluster, ClusterOptions};
use pgtide_suite as s;
use tokio_postgres::Client;

fn rule(tables: &[&str]) -> CacheRule {
    CacheRule {
        tables: Some(tables.iter().map(|t| t.to_string()).collect()),
        ttl: Some(Duration::from_secs(300)),
        ..CacheRule::default()
    }
}

async fn one(c: &Client, sql: &str) -> String {
    s::scalar(c, sql).await
}

async fn all(c: &Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").into()),
            _ => None,
        })
        .collect()
}

const READ: &str = "SELECT balance FROM acct WHERE id = 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_from_a_lagging_replica_is_not_served_to_the_writer() {
    let cluster = tokio::task::spawn_blocking(|| {
        s::cluster_with(ClusterOptions {
            replicas: 1,
            settings: vec![("recovery_min_apply_delay".into(), "1500ms".into())],
            ..Default::default()
        })
    })
    .await
    .expect("cluster task");
    cluster
        .primary()
        .psql_db(
            s::APP_DB,
            "CREATE TABLE acct (id int PRIMARY KEY, balance int);
             INSERT INTO acct VALUES (1, 100); GRANT ALL ON acct TO app;",
        )
        .expect("schema");
    let mut config: Config = s::config_with_replicas(&cluster, PoolMode::Transaction, 4, &[1]);
    config.routing.max_replica_lag = Duration::from_secs(60);
    config.cache.rules = vec![rule(&["acct"])];
    let server = s::start(config).await;
    s::cache_ready(&server).await;
    let writer = s::connect(&s::app_url(&server)).await.expect("writer");
    let reader = s::connect(&s::app_url(&server)).await.expect("reader");
    // The replica has the table (and the role: it applies WAL late) and takes reads.
    let replica = cluster.replicas()[0].url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    assert!(
        s::eventually(Duration::from_secs(30), || async {
            let has_table = match s::connect(&replica).await {
                Ok(direct) => direct.simple_query(READ).await.is_ok(),
                Err(_) => false,
            };
            has_table && one(&reader, "SELECT pg_is_in_recovery()").await == "t"
        })
        .await,
        "reads never reached the replica"
    );
    let direct = s::connect(&replica).await.expect("replica");
    for round in 0..3 {
        let value = (round + 2) * 100;
        writer
            .batch_execute(&format!("UPDATE acct SET balance = {value} WHERE id = 1"))
            .await
            .expect("update");
        // The reader has no write of its own: its miss goes to the replica, 1.5 s behind.
        assert_ne!(
            one(&reader, READ).await,
            value.to_string(),
            "round {round}: the read did not come from the lagging replica"
        );
        for _ in 0..5 {
            assert_eq!(
                one(&writer, READ).await,
                value.to_string(),
                "round {round}: writer"
            );
        }
        assert!(
            s::eventually(Duration::from_secs(20), || async {
                one(&direct, READ).await == value.to_string()
            })
            .await,
            "the replica never caught up"
        );
    }
    // Once the replica has replayed the write, its reads are cached again.
    let before = server.shared.cache.totals().hits;
    assert!(
        s::eventually(Duration::from_secs(10), || async {
            one(&reader, READ).await;
            server.shared.cache.totals().hits > before
        })
        .await,
        "nothing was cached after the replica caught up"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_views_base_tables_drop_its_entries() {
    let cluster: Cluster = s::cluster_with_schema(
        "CREATE TABLE acct (id int PRIMARY KEY, balance int);
         INSERT INTO acct SELECT i, i * 100 FROM generate_series(1, 6) i;
         CREATE TABLE notes (id int, note text);
         INSERT INTO notes VALUES (1, 'n1');
         CREATE VIEW rich AS SELECT id, balance FROM acct WHERE balance > 250;
         CREATE VIEW richer AS SELECT id FROM rich WHERE balance > 450;
         CREATE FUNCTION note_of(p int) RETURNS text LANGUAGE sql STABLE AS
           'SELECT note FROM notes WHERE id = p';
         CREATE VIEW noted AS SELECT id, note_of(id) AS note FROM acct;
         GRANT ALL ON acct, notes, rich, richer, noted TO app;",
    )
    .await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    config.cache.rules = vec![rule(&["rich", "richer", "noted", "acct", "late"])];
    let server = s::start(config).await;
    s::cache_ready(&server).await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let rich = "SELECT id FROM rich ORDER BY id";
    let richer = "SELECT id FROM richer ORDER BY id";
    for _ in 0..2 {
        assert_eq!(all(&c, rich).await, ids(&["3", "4", "5", "6"]));
        assert_eq!(all(&c, richer).await, ids(&["5", "6"]));
        assert_eq!(
            one(&c, "SELECT balance FROM acct WHERE id = 3").await,
            "300"
        );
    }
    assert!(
        server.shared.cache.totals().hits >= 3,
        "the second round was cached"
    );
    // A write to the base table reaches the view and the view on the view.
    c.batch_execute("UPDATE acct SET balance = 1000 WHERE id = 1")
        .await
        .expect("update");
    assert_eq!(all(&c, rich).await, ids(&["1", "3", "4", "5", "6"]));
    assert_eq!(all(&c, richer).await, ids(&["1", "5", "6"]));
    // A write through the (updatable) view reaches readers of its base table.
    c.batch_execute("UPDATE rich SET balance = 0 WHERE id = 3")
        .await
        .expect("update through the view");
    assert_eq!(one(&c, "SELECT balance FROM acct WHERE id = 3").await, "0");
    // A view that calls a user function may read anything: never cached.
    let before = server.shared.cache.totals().hits;
    for _ in 0..3 {
        assert_eq!(one(&c, "SELECT note FROM noted WHERE id = 1").await, "n1");
    }
    assert_eq!(
        server.shared.cache.totals().hits,
        before,
        "noted was cached"
    );
    // A view created outside pgtide after the dependencies were read is found on first use.
    cluster
        .primary()
        .psql_db(
            s::APP_DB,
            "CREATE VIEW late AS SELECT id FROM acct WHERE balance = 0; GRANT ALL ON late TO app;",
        )
        .expect("late view");
    let late = "SELECT id FROM late ORDER BY id";
    assert_eq!(all(&c, late).await, ids(&["3"]));
    assert_eq!(all(&c, late).await, ids(&["3"]));
    c.batch_execute("UPDATE acct SET balance = 0 WHERE id = 2")
        .await
        .expect("update");
    assert_eq!(all(&c, late).await, ids(&["2", "3"]));
    server.shutdown(s::Shutdown::Immediate).await;
}
