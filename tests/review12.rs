//! Review 12 (session loop in phases, per-batch SQL PREPARE bookkeeping, ReplicaRun, phase
//! signal): odd drivers against the restructured session loop. A direct PostgreSQL connection
//! is the oracle where the answer is PostgreSQL's.

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use s::raw::{add_trust_user, bind, execute, first_column, msg, parse, parse_error, query, Raw};

fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    msg(b'D', &body)
}

fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

/// Sends `batch` and returns the reply's message tags and messages up to ReadyForQuery.
async fn run(raw: &mut Raw, batch: Vec<u8>) -> (String, Vec<(u8, bytes::Bytes)>) {
    raw.send(&batch).await;
    let reply = raw.reader.until_ready().await.expect("reply");
    let tags = reply.iter().map(|(t, _)| *t as char).collect();
    (tags, reply)
}

/// A simple query's first column, or the SQLSTATE of its error.
async fn answer(raw: &mut Raw, sql: &str) -> Result<Vec<String>, String> {
    raw.send(&query(sql)).await;
    let reply = raw.reader.until_ready().await.expect("reply");
    match reply.iter().find(|(t, _)| *t == b'E') {
        Some((_, e)) => Err(parse_error(e).code),
        None => Ok(first_column(&reply)),
    }
}

/// Transaction mode, pool of one, a trust user for raw clients.
async fn setup() -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    config.pool.checkout_timeout = Duration::from_millis(500);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    (cluster, server)
}

/// A stale plan's transparent re-run sends the client's batch (and its Sync) a second time
/// while the client sees one ReadyForQuery. The per-batch SQL PREPARE bookkeeping (596bfda)
/// counts the re-sent Sync as another client batch, so from then on every ReadyForQuery settles
/// the batch before its own: a PREPARE that failed stays pending and the next PREPARE's
/// CommandComplete confirms it instead of its own. PostgreSQL answers `EXECUTE good` with 42.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: a stale-plan re-run's Sync counts as a second client batch in ClientStatements (batches_sent), SQL PREPAREs then settle against the wrong ReadyForQuery"]
async fn sql_prepare_after_a_stale_plan_rerun() {
    let (cluster, server) = setup().await;
    cluster
        .primary()
        .psql_db(
            s::APP_DB,
            "CREATE TABLE r12_stale (a int); INSERT INTO r12_stale VALUES (1); \
             GRANT ALL ON r12_stale TO PUBLIC",
        )
        .expect("table");
    let mut raw = Raw::login(&server).await;
    let mut prepare = parse("s1", "SELECT * FROM r12_stale");
    prepare.extend(describe(b'S', "s1"));
    prepare.extend(sync());
    assert_eq!(run(&mut raw, prepare).await.0, "1tT");
    // Control: before any re-run, pgtide answers as PostgreSQL does.
    assert_eq!(
        answer(&mut raw, "PREPARE bad0 AS SELECT no_such_column").await,
        Err("42703".to_string())
    );
    assert_eq!(
        answer(&mut raw, "DEALLOCATE bad0").await,
        Err("26000".to_string())
    );
    let mut described = bind("s1", &[]);
    described.extend(describe(b'P', ""));
    described.extend(execute());
    described.extend(sync());
    assert_eq!(run(&mut raw, described.clone()).await.0, "2TDC");
    // Out of band: pgtide's own epochs do not see it, PostgreSQL's cached plan goes stale.
    cluster
        .primary()
        .psql_db(
            s::APP_DB,
            "ALTER TABLE r12_stale ADD COLUMN b int DEFAULT 7",
        )
        .expect("alter");
    // Re-run transparently on the new shape (see stale_plan.rs).
    let (tags, reply) = run(&mut raw, described).await;
    assert_eq!(tags, "2TDC", "{reply:?}");
    let (_, row) = reply.iter().find(|(t, _)| *t == b'D').expect("row");
    assert_eq!(
        &row[..2],
        &2i16.to_be_bytes(),
        "re-run: the row has the new column"
    );

    assert_eq!(
        answer(&mut raw, "PREPARE bad AS SELECT no_such_column").await,
        Err("42703".to_string())
    );
    // PostgreSQL never had `bad`: DEALLOCATE fails with 26000 naming it.
    raw.send(&query("DEALLOCATE bad")).await;
    let reply = raw.reader.until_ready().await.expect("reply");
    let error = reply
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, e)| parse_error(e));
    assert_eq!(
        error.as_ref().map(|e| e.code.as_str()),
        Some("26000"),
        "DEALLOCATE of a statement whose PREPARE failed: {reply:?}"
    );
    assert_eq!(
        answer(&mut raw, "PREPARE good AS SELECT 42").await,
        Ok(vec![])
    );
    assert_eq!(
        answer(&mut raw, "EXECUTE good").await,
        Ok(vec!["42".to_string()])
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
