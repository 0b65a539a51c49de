//! Routing per batch (issue 11, items 8 and 10): a batch pipelined behind a read that runs on a
//! replica never lands on that replica (it is routed on its own once the read has answered), in
//! the simple and the extended protocol; and the first read after pgtide starts already goes to
//! a healthy replica.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pgtide_config::{Config, PoolMode};
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use s::raw::{self, sync, Raw};

async fn one_replica(schema: &str) -> Cluster {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(1))
        .await
        .expect("cluster task");
    if !schema.is_empty() {
        cluster
            .primary()
            .psql_db(s::APP_DB, schema)
            .expect("schema");
    }
    cluster.wait_for_replicas().expect("replica streaming");
    cluster
}

/// Transaction mode over the primary and its replica, a raw trust user, and no lag limit (the
/// replica is never out of rotation for being behind: only routing decides here).
fn config(cluster: &Cluster) -> Config {
    let mut config = s::config_with_replicas(cluster, PoolMode::Transaction, 4, &[1]);
    config.routing.max_replica_lag = Duration::from_secs(3600);
    raw::add_trust_user(&mut config);
    config
}

/// Replies up to ReadyForQuery; the error if one came.
async fn reply(c: &mut Raw) -> Result<Vec<(u8, Bytes)>, raw::PgError> {
    let reply = c.reader.until_ready().await.expect("reply");
    match reply.iter().find(|(t, _)| *t == b'E') {
        Some((_, e)) => Err(raw::parse_error(e)),
        None => Ok(reply),
    }
}

/// Replies up to ReadyForQuery, failing on an ErrorResponse.
async fn ok_reply(c: &mut Raw, what: &str) -> Vec<(u8, Bytes)> {
    let reply = c.reader.until_ready().await.expect("reply");
    if let Some((_, e)) = reply.iter().find(|(t, _)| *t == b'E') {
        panic!("{what}: {:?}", raw::parse_error(e));
    }
    reply
}

/// Parse, Bind, Execute, Sync of one unnamed statement.
fn extended(sql: &str) -> Vec<u8> {
    [
        raw::parse("", sql),
        raw::bind("", &[]),
        raw::execute(),
        sync(),
    ]
    .concat()
}

const READ: &str = "select pg_is_in_recovery(), pg_sleep(0.3)";

/// Waits until this client's reads reach the replica (its first health check is done).
async fn replica_in_rotation(c: &mut Raw) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.simple("SELECT pg_is_in_recovery()").await != "t" {
        assert!(Instant::now() < deadline, "reads never reached the replica");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_pipelined_behind_a_replica_read_runs_on_the_primary() {
    let cluster = one_replica("CREATE TABLE pl (id int); GRANT ALL ON pl TO app;").await;
    let server = s::start(config(&cluster)).await;
    let mut c = Raw::login(&server).await;
    replica_in_rotation(&mut c).await;

    // A READ ONLY transaction pipelined whole: it stays on its replica to the end.
    let pipeline: Vec<u8> = [
        "BEGIN READ ONLY",
        "SELECT pg_is_in_recovery()",
        "SELECT pg_is_in_recovery()",
        "COMMIT",
    ]
    .iter()
    .flat_map(|q| raw::query(q))
    .collect();
    c.send(&pipeline).await;
    let mut on_replica = Vec::new();
    for q in ["BEGIN", "first read", "second read", "COMMIT"] {
        on_replica.extend(raw::first_column(&ok_reply(&mut c, q).await));
    }
    assert_eq!(
        on_replica,
        ["t", "t"],
        "a READ ONLY transaction left its replica"
    );

    // Simple protocol: the write in the same TCP write as the read, then a moment after it;
    // then the extended protocol: Parse/Bind/Execute/Sync of the read, then of the write, in one
    // write. Under load the replica may leave the rotation for a moment (health checks): a round
    // whose read the primary answered proves nothing and is run again.
    let mut failures = Vec::new();
    let mut inserted = Vec::new();
    for round in 1..=3u32 {
        let mut on_replica = false;
        for attempt in 0..5u32 {
            let id = round * 10 + attempt;
            // (Read-your-writes keeps reads on the primary until the replica has the last insert.)
            replica_in_rotation(&mut c).await;
            let insert = format!("insert into pl values ({id})");
            match round {
                1 => {
                    c.send(&[raw::query(READ), raw::query(&insert)].concat())
                        .await
                }
                2 => {
                    c.send(&raw::query(READ)).await;
                    // Only to let the read start first; either order must work.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    c.send(&raw::query(&insert)).await;
                }
                _ => c.send(&[extended(READ), extended(&insert)].concat()).await,
            }
            let read = ok_reply(&mut c, "pipelined read").await;
            on_replica = raw::first_column(&read) == ["t"];
            match reply(&mut c).await {
                Ok(_) => inserted.push(id.to_string()),
                Err(e) => failures.push(format!("round {round}: {e:?}")),
            }
            if on_replica {
                break;
            }
        }
        assert!(
            on_replica,
            "round {round}: the read never ran on the replica"
        );
    }
    assert!(
        failures.is_empty(),
        "inserts pipelined behind a replica read failed: {failures:#?}"
    );

    // A read pipelined behind a replica read is routed on its own too, and answered in order.
    replica_in_rotation(&mut c).await;
    c.send(&[raw::query(READ), extended("select 42")].concat())
        .await;
    ok_reply(&mut c, "first read").await;
    let second = ok_reply(&mut c, "second read").await;
    assert_eq!(raw::first_column(&second), ["42"]);

    let rows = cluster
        .primary()
        .psql_db(
            s::APP_DB,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM pl",
        )
        .expect("count");
    assert_eq!(rows.trim(), inserted.join(","));
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_read_after_start_goes_to_a_replica() {
    let cluster = one_replica("").await;
    let server = s::start(config(&cluster)).await;
    let mut c = Raw::login(&server).await;
    assert_eq!(
        c.simple("SELECT pg_is_in_recovery()").await,
        "t",
        "the first read after start ran on the primary"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
