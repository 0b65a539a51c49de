//! Read/write routing through pgtide to a primary and two streaming replicas: certain reads go
//! to replicas by weight, every write (and anything uncertain) to the primary, and a client
//! reads its own writes even from lagging replicas.

use std::collections::HashMap;
use std::time::Duration;

use pgtide_config::{PoolMode, ReadYourWrites};
use pgtide_devcluster::{Cluster, ClusterOptions};
use pgtide_suite as s;
use tokio_postgres::Client;

async fn cluster(settings: &[(&str, &str)]) -> Cluster {
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cluster = tokio::task::spawn_blocking(move || {
        s::cluster_with(ClusterOptions {
            replicas: 2,
            settings,
            ..Default::default()
        })
    })
    .await
    .expect("cluster task");
    cluster.wait_for_replicas().expect("replicas streaming");
    cluster
}

/// Waits until pgtide sends reads to replicas (its first health checks are done).
async fn replicas_in_rotation(client: &Client) {
    assert!(
        s::eventually(Duration::from_secs(10), || async {
            client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false)
        })
        .await,
        "reads never reached a replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_replicas_and_writes_to_the_primary() {
    let cluster = cluster(&[]).await;
    let server = s::start(s::config_with_replicas(
        &cluster,
        PoolMode::Transaction,
        4,
        &[1, 1],
    ))
    .await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    c.batch_execute("CREATE TABLE items (id serial PRIMARY KEY, v int); CREATE SEQUENCE seq_r;")
        .await
        .expect("schema");
    replicas_in_rotation(&c).await;
    for _ in 0..20 {
        let in_recovery: bool = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .expect("read")
            .get(0);
        assert!(in_recovery, "a certain read ran on the primary");
    }
    // Each of these would fail on a replica (25006) if routed there.
    c.batch_execute("INSERT INTO items (v) VALUES (1)")
        .await
        .expect("insert");
    c.execute("UPDATE items SET v = v + 1 WHERE v = $1", &[&1i32])
        .await
        .expect("update");
    c.query_one("SELECT nextval('seq_r')", &[])
        .await
        .expect("nextval");
    c.simple_query(
        "WITH moved AS (UPDATE items SET v = v + 1 RETURNING id) SELECT count(*) FROM moved",
    )
    .await
    .expect("writable CTE");
    c.simple_query("SELECT * FROM items FOR NO KEY UPDATE")
        .await
        .expect("locking read");
    c.simple_query("SELECT pg_advisory_xact_lock(1)")
        .await
        .expect("advisory lock");
    // A hint and SET pgtide.route send a read to the primary.
    let on_primary: bool = c
        .query_one("/* pgtide:primary */ SELECT pg_is_in_recovery()", &[])
        .await
        .expect("hinted")
        .get(0);
    assert!(!on_primary);
    c.batch_execute("SET pgtide.route = primary")
        .await
        .expect("set route");
    let on_primary: bool = c
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("routed by setting")
        .get(0);
    assert!(!on_primary);
    c.batch_execute("SET pgtide.route = auto")
        .await
        .expect("set route");
    // An explicit transaction stays on the primary; BEGIN READ ONLY may use a replica.
    c.batch_execute("BEGIN").await.expect("begin");
    let in_tx: bool = c
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("in tx")
        .get(0);
    c.batch_execute("COMMIT").await.expect("commit");
    assert!(!in_tx);
    // (Once the replicas have replayed this client's writes: read-your-writes.)
    assert!(
        s::eventually(Duration::from_secs(10), || async {
            c.batch_execute("BEGIN READ ONLY").await.expect("begin ro");
            let ro: bool = c
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .expect("ro tx")
                .get(0);
            c.batch_execute("COMMIT").await.expect("commit");
            ro
        })
        .await,
        "a read-only transaction never ran on a replica"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_three_to_one_share_the_reads() {
    let cluster = cluster(&[]).await;
    let ports: Vec<u16> = cluster.replicas().iter().map(|r| r.port()).collect();
    let server = s::start(s::config_with_replicas(
        &cluster,
        PoolMode::Transaction,
        4,
        &[3, 1],
    ))
    .await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    replicas_in_rotation(&c).await;
    let mut by_port: HashMap<i32, usize> = HashMap::new();
    // One routing decision per read: a prepared statement's Bind/Execute/Sync.
    let stmt = c
        .prepare("SELECT inet_server_port()")
        .await
        .expect("prepare");
    for _ in 0..2000 {
        let port: i32 = c.query_one(&stmt, &[]).await.expect("read").get(0);
        *by_port.entry(port).or_default() += 1;
    }
    let heavy = by_port.get(&i32::from(ports[0])).copied().unwrap_or(0);
    let light = by_port.get(&i32::from(ports[1])).copied().unwrap_or(0);
    assert_eq!(heavy + light, 2000, "every read on a replica: {by_port:?}");
    let share = heavy as f64 / 2000.0;
    assert!(
        (0.75 * 0.85..=0.75 * 1.15).contains(&share),
        "weight 3 replica took {share:.3} of reads (want 0.75 ± 15%): {by_port:?}"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// 1,000 rounds of INSERT then SELECT of that row on one connection, with replicas applying
/// WAL 300 ms late: with read-your-writes the row is always there; without, reads go stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_with_lagging_replicas() {
    let cluster = cluster(&[("recovery_min_apply_delay", "300ms")]).await;
    let tables =
        "CREATE TABLE ryw_1000 (id int PRIMARY KEY); CREATE TABLE ryw_50 (id int PRIMARY KEY);
                  GRANT ALL ON ryw_1000, ryw_50 TO app";
    cluster
        .primary()
        .psql_db(s::APP_DB, tables)
        .expect("tables");
    // Both replicas have the tables before the rounds start.
    for replica in cluster.replicas() {
        let direct = s::connect(&replica.url(s::APP_USER, s::APP_PASSWORD, s::APP_DB))
            .await
            .expect("replica");
        assert!(
            s::eventually(Duration::from_secs(15), || async {
                direct
                    .simple_query("SELECT count(*) FROM ryw_50")
                    .await
                    .is_ok()
            })
            .await,
            "tables never reached a replica"
        );
    }
    for (mode, rounds) in [(ReadYourWrites::Lsn, 1000), (ReadYourWrites::Off, 50)] {
        let mut config = s::config_with_replicas(&cluster, PoolMode::Transaction, 4, &[1, 1]);
        config.routing.read_your_writes = mode;
        // Lag is expected here: keep lagging replicas in rotation.
        config.routing.max_replica_lag = Duration::from_secs(30);
        let server = s::start(config).await;
        let c = s::connect(&s::app_url(&server)).await.expect("connect");
        let table = format!("ryw_{}", rounds);
        assert!(
            s::eventually(Duration::from_secs(15), || async {
                c.query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map(|r| r.get::<_, bool>(0))
                    .unwrap_or(false)
            })
            .await,
            "reads never reached a replica"
        );
        let mut stale = 0;
        let mut on_replica = 0;
        for id in 0..rounds {
            c.execute(&format!("INSERT INTO {table} VALUES ($1)"), &[&id])
                .await
                .expect("insert");
            let row = c
                .query_opt(
                    &format!("SELECT pg_is_in_recovery() FROM {table} WHERE id = $1"),
                    &[&id],
                )
                .await
                .expect("select");
            match row {
                None => stale += 1,
                Some(r) => {
                    if r.get::<_, bool>(0) {
                        on_replica += 1;
                    }
                }
            }
        }
        match mode {
            ReadYourWrites::Lsn => {
                assert_eq!(stale, 0, "{stale} of {rounds} reads missed the row");
                // Once a replica has replayed the last write, reads go back to replicas.
                let last = rounds - 1;
                assert!(
                    s::eventually(Duration::from_secs(10), || async {
                        c.query_opt(
                            &format!("SELECT pg_is_in_recovery() FROM {table} WHERE id = $1"),
                            &[&last],
                        )
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|r| r.get::<_, bool>(0))
                    })
                    .await,
                    "reads never returned to the replicas after they caught up"
                );
            }
            _ => assert!(
                stale > 0,
                "without read-your-writes a 300 ms replica lag shows stale reads (on replica: {on_replica})"
            ),
        }
        server.shutdown(s::Shutdown::Immediate).await;
    }
}

/// A function the classifier cannot know writes: the replica refuses it (25006), pgtide runs it
/// on the primary, and the client sees only success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_the_replica_refuses_as_a_write_runs_on_the_primary() {
    let cluster = cluster(&[]).await;
    let server = s::start(s::config_with_replicas(
        &cluster,
        PoolMode::Transaction,
        4,
        &[1, 1],
    ))
    .await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    c.batch_execute(
        "CREATE TABLE audit (at timestamptz DEFAULT now());
         CREATE FUNCTION record_visit() RETURNS int LANGUAGE sql
           AS 'INSERT INTO audit DEFAULT VALUES; SELECT count(*)::int FROM audit';",
    )
    .await
    .expect("schema");
    replicas_in_rotation(&c).await;
    for i in 1..=5 {
        // Simple and extended protocol.
        let n: i32 = if i % 2 == 0 {
            c.query_one("SELECT record_visit()", &[])
                .await
                .expect("extended")
                .get(0)
        } else {
            s::scalar(&c, "SELECT record_visit()")
                .await
                .parse()
                .expect("number")
        };
        assert_eq!(n, i, "each call wrote once, on the primary");
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Stop one replica under a read load: no client sees an error (a read cut off before any
/// row runs on the primary), and the replica is used again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_under_load_costs_no_client_an_error() {
    let mut cluster = cluster(&[]).await;
    let port = cluster.replicas()[0].port();
    let server = s::start(s::config_with_replicas(
        &cluster,
        PoolMode::Transaction,
        4,
        &[1, 1],
    ))
    .await;
    let probe = s::connect(&s::app_url(&server)).await.expect("connect");
    replicas_in_rotation(&probe).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let url = s::app_url(&server);
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let c = s::connect(&url).await.expect("connect");
            let stmt = c
                .prepare("SELECT inet_server_port()")
                .await
                .expect("prepare");
            let (mut ok, mut errors) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match c.query_one(&stmt, &[]).await {
                    Ok(_) => ok += 1,
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (ok, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = tokio::task::spawn_blocking(move || {
        cluster.replica_mut(0).stop().expect("stop replica");
        cluster
    })
    .await
    .expect("stop task");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = stopped;
        cluster.replica_mut(0).start().expect("start replica");
        cluster
    })
    .await
    .expect("start task");
    let back = s::eventually(Duration::from_secs(15), || async {
        probe
            .query_one("SELECT inet_server_port()", &[])
            .await
            .is_ok_and(|r| r.get::<_, i32>(0) == i32::from(port))
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let (ok, errors) = w.await.expect("worker");
        assert!(errors.is_empty(), "client errors: {errors:?}");
        total += ok;
    }
    assert!(total > 100, "the load ran ({total} reads)");
    assert!(back, "the replica never rejoined");
    let _ = &mut cluster;
    server.shutdown(s::Shutdown::Immediate).await;
}

/// After a promotion the health checks find the new primary and writes follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_follow_a_promoted_replica() {
    let mut cluster = cluster(&[]).await;
    let server = s::start(s::config_with_replicas(
        &cluster,
        PoolMode::Transaction,
        4,
        &[1, 1],
    ))
    .await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    c.batch_execute("CREATE TABLE promoted (id int)")
        .await
        .expect("table");
    replicas_in_rotation(&c).await;
    let cluster_after = tokio::task::spawn_blocking(move || {
        cluster.primary_mut().stop().expect("stop primary");
        cluster.replicas()[0]
            .psql("SELECT pg_promote()")
            .expect("promote");
        cluster
    })
    .await
    .expect("promote task");
    let c2 = s::connect(&s::app_url(&server))
        .await
        .expect("connect after");
    assert!(
        s::eventually(Duration::from_secs(15), || async {
            c2.batch_execute("INSERT INTO promoted VALUES (1)")
                .await
                .is_ok()
        })
        .await,
        "writes never reached the promoted replica"
    );
    let _ = cluster_after;
    server.shutdown(s::Shutdown::Immediate).await;
}

/// `[routing] transactions = "first_statement"`: a transaction that starts with a read runs on a
/// replica, one that starts with a write on the primary, and an empty one touches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_statement_decides_where_a_transaction_runs() {
    let cluster = cluster(&[]).await;
    let mut config = s::config_with_replicas(&cluster, PoolMode::Transaction, 4, &[1, 1]);
    config.routing.transactions = pgtide_config::TransactionRouting::FirstStatement;
    let server = s::start(config).await;
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    c.batch_execute("CREATE TABLE fs (id int)")
        .await
        .expect("table");
    replicas_in_rotation(&c).await;
    assert!(
        s::eventually(Duration::from_secs(10), || async {
            c.batch_execute("BEGIN").await.expect("begin");
            let on_replica = s::scalar(&c, "SELECT pg_is_in_recovery()").await == "t";
            let in_tx = s::scalar(&c, "SELECT now() = statement_timestamp()").await == "f";
            c.batch_execute("COMMIT").await.expect("commit");
            on_replica && in_tx
        })
        .await,
        "a read-first transaction never ran on a replica, in one transaction"
    );
    c.batch_execute("BEGIN").await.expect("begin");
    c.batch_execute("INSERT INTO fs VALUES (1)")
        .await
        .expect("write-first on the primary");
    assert_eq!(s::scalar(&c, "SELECT pg_is_in_recovery()").await, "f");
    c.batch_execute("COMMIT").await.expect("commit");
    c.batch_execute("BEGIN; ").await.expect("begin");
    c.batch_execute("ROLLBACK")
        .await
        .expect("empty transaction");
    assert_eq!(s::scalar(&c, "SELECT count(*) FROM fs").await, "1");
    server.shutdown(s::Shutdown::Immediate).await;
}
