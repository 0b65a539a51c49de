//! SQL-level PREPARE / EXECUTE / DEALLOCATE in transaction mode: each client's names are its
//! own, they follow the client to any backend without pinning it, and they mix with the
//! extended protocol's named statements as in PostgreSQL (Rails deallocates those with SQL).
//! Pool size 1 makes every client share one backend; another client's DISCARD ALL empties
//! that backend, so the next use must re-prepare.

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use s::raw::{add_trust_user, bind, execute, execute_sync, first_column, msg, parse, query, Raw};
use tokio_postgres::{Client, SimpleQueryMessage};

async fn setup(size: usize) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    start(size, |config| {
        config.pool.checkout_timeout = Duration::from_millis(500)
    })
    .await
}

/// A server that also admits the raw protocol client's trust user.
async fn setup_raw(size: usize) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    start(size, add_trust_user).await
}

async fn start(
    size: usize,
    adjust: impl FnOnce(&mut pgtide_config::Config),
) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, size);
    adjust(&mut config);
    let server = s::start(config).await;
    (cluster, server)
}

/// The first column of every row a simple query returned.
async fn column(client: &Client, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect())
}

/// A protocol-level statement's name (tokio-postgres shows it only in Debug output).
fn statement_name(stmt: &tokio_postgres::Statement) -> String {
    let debug = format!("{stmt:?}");
    let start = debug.find("name: \"").expect("name in Debug output") + 7;
    let len = debug[start..].find('"').expect("closing quote");
    debug[start..start + len].to_string()
}

fn code(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(|c| c.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_name_in_two_clients_on_one_backend() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    a.batch_execute("PREPARE q (int) AS SELECT $1 * 2")
        .await
        .expect("a prepares");
    b.batch_execute("PREPARE q (int) AS SELECT $1 * 3")
        .await
        .expect("b prepares the same name: not pinned, not clashing");
    for _ in 0..3 {
        assert_eq!(column(&a, "EXECUTE q(5)").await.expect("a"), ["10"]);
        assert_eq!(column(&b, "EXECUTE q(5)").await.expect("b"), ["15"]);
    }
    // PostgreSQL's own answers for a name that exists or does not.
    let err = a
        .batch_execute("PREPARE q (int) AS SELECT 1")
        .await
        .expect_err("already exists");
    assert_eq!(code(&err), Some("42P05"), "{err}");
    a.batch_execute("DEALLOCATE q").await.expect("deallocate");
    let err = column(&a, "EXECUTE q(5)").await.expect_err("gone for a");
    assert_eq!(code(&err), Some("26000"), "{err}");
    let message = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(
        message.contains("\"q\""),
        "names the client's name: {message}"
    );
    let err = a
        .batch_execute("DEALLOCATE PREPARE q")
        .await
        .expect_err("twice");
    assert_eq!(code(&err), Some("26000"), "{err}");
    assert_eq!(
        column(&b, "EXECUTE q(7)").await.expect("b keeps its own"),
        ["21"]
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_follow_their_client_after_the_backend_forgot_them() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    a.batch_execute("CREATE TABLE IF NOT EXISTS sqlprep (id int PRIMARY KEY, v text)")
        .await
        .expect("table");
    a.batch_execute("PREPARE ins (int, text) AS INSERT INTO sqlprep VALUES ($1, $2)")
        .await
        .expect("prepare insert");
    a.batch_execute("PREPARE get (int) AS SELECT v FROM sqlprep WHERE id = $1")
        .await
        .expect("prepare select");
    for i in 0..5 {
        // Another client empties the one backend between every use.
        b.batch_execute("DISCARD ALL").await.expect("discard");
        a.batch_execute(&format!("EXECUTE ins({i}, 'row {i}')"))
            .await
            .expect("insert after DISCARD ALL elsewhere");
        b.batch_execute("DEALLOCATE ALL")
            .await
            .expect("deallocate all");
        assert_eq!(
            column(&a, &format!("EXECUTE get({i})")).await.expect("get"),
            [format!("row {i}")]
        );
    }
    // Inside a transaction, and PREPARE survives a rollback as in PostgreSQL.
    a.batch_execute("BEGIN; PREPARE later AS SELECT 'kept'; ROLLBACK")
        .await
        .expect("prepare in a rolled-back transaction");
    b.batch_execute("DISCARD ALL").await.expect("discard");
    assert_eq!(column(&a, "EXECUTE later").await.expect("kept"), ["kept"]);
    // Several statements in one string, and a PREPARE that fails is not remembered.
    assert_eq!(
        column(&a, "PREPARE m AS SELECT 7; EXECUTE m; DEALLOCATE m")
            .await
            .expect("multi"),
        ["7"]
    );
    let err = a
        .batch_execute("PREPARE bad AS SELECT * FROM no_such_table")
        .await
        .expect_err("bad prepare");
    assert_eq!(code(&err), Some("42P01"), "{err}");
    let err = column(&a, "EXECUTE bad").await.expect_err("never prepared");
    assert_eq!(code(&err), Some("26000"), "{err}");
    a.batch_execute("DROP TABLE sqlprep").await.expect("drop");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_protocol_statements_share_one_namespace() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    // A protocol-level statement run with SQL EXECUTE, after the backend lost it.
    let stmt = a.prepare("SELECT $1::int + 1").await.expect("prepare");
    b.batch_execute("DISCARD ALL").await.expect("discard");
    assert_eq!(
        column(&a, &format!("EXECUTE {}(41)", statement_name(&stmt)))
            .await
            .expect("sql execute of a protocol statement"),
        ["42"]
    );
    // Rails deallocates its protocol statements with SQL.
    a.batch_execute(&format!("DEALLOCATE {}", statement_name(&stmt)))
        .await
        .expect("sql deallocate of a protocol statement");
    let err = a.query_one(&stmt, &[&1i32]).await.expect_err("deallocated");
    assert_eq!(code(&err), Some("26000"), "{err}");
    // B was never pinned: it ran between every step on the only backend.
    assert_eq!(column(&b, "SELECT 'free'").await.expect("b"), ["free"]);
    server.shutdown(s::Shutdown::Immediate).await;
}

/// A statement prepared with SQL and bound with the extended protocol, in the middle of a
/// batch, on a backend that no longer has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepared_statement_bound_mid_batch() {
    let (_cluster, server) = setup_raw(1).await;
    let other = s::connect(&s::app_url(&server)).await.expect("other");
    let mut raw = Raw::login(&server).await;
    assert_eq!(
        raw.simple_rows("PREPARE viasql (int) AS SELECT $1 * 10")
            .await
            .len(),
        0
    );
    other.batch_execute("DISCARD ALL").await.expect("discard");
    let mut batch = parse("", "SELECT 1");
    batch.extend(bind("", &[]));
    batch.extend(execute());
    batch.extend(bind("viasql", &["4"]));
    batch.extend(execute_sync());
    raw.send(&batch).await;
    let reply = raw.reader.until_ready().await.expect("reply");
    let tags: Vec<u8> = reply.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"12DC2DC", "{reply:?}");
    assert_eq!(first_column(&reply), ["1", "40"]);
    assert_eq!(raw.simple("EXECUTE viasql(5)").await, "50");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_statements_over_a_small_backend_lru() {
    let (_cluster, server) = start(2, |config| config.pool.max_prepared_statements = 4).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    for i in 0..12 {
        a.batch_execute(&format!("PREPARE p{i} AS SELECT {i}"))
            .await
            .expect("prepare");
    }
    // Every statement still answers, though each backend keeps only four.
    for round in 0..2 {
        for i in (0..12).rev() {
            assert_eq!(
                column(&a, &format!("EXECUTE p{i}")).await.expect("execute"),
                [i.to_string()],
                "round {round}"
            );
        }
    }
    let prepared: i64 = a
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .expect("count")
        .get(0);
    assert!(
        prepared <= 5,
        "{prepared} statements on a backend with room for 4 (+1 in use)"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// PostgreSQL keeps the unnamed statement across transactions until the next unnamed Parse or
/// simple query; sqlx's non-persistent queries Parse it in one transaction and Bind it in the
/// next. On a shared backend another client's unnamed statement must never answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_statement_follows_its_client_across_transactions() {
    let (_cluster, server) = setup_raw(1).await;
    let mut a = Raw::login(&server).await;
    let mut b = Raw::login(&server).await;
    let prepare = |who: &str| {
        let mut m = parse("", &format!("SELECT '{who}' || $1::text"));
        m.extend(msg(b'S', &[]));
        m
    };
    let run = || {
        let mut m = bind("", &["1"]);
        m.extend(execute_sync());
        m
    };
    for (raw, who) in [(&mut a, "A"), (&mut b, "B")] {
        raw.send(&prepare(who)).await;
        raw.reader.until_ready().await.expect("parsed");
    }
    for _ in 0..3 {
        a.send(&run()).await;
        let reply = a.reader.until_ready().await.expect("a");
        assert_eq!(first_column(&reply), ["A1"], "{reply:?}");
        b.send(&run()).await;
        let reply = b.reader.until_ready().await.expect("b");
        assert_eq!(first_column(&reply), ["B1"], "{reply:?}");
    }
    // A simple query ends the unnamed statement, as in PostgreSQL.
    assert_eq!(a.simple("SELECT 'plain'").await, "plain");
    a.send(&run()).await;
    let err = a.reader.error().await.expect("an error");
    assert_eq!(err.code, "26000", "{err:?}");
    a.reader.until_ready().await.expect("ready after the error");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Both replies of a pipelined pair, neither an error.
async fn two_replies(raw: &mut Raw) {
    for _ in 0..2 {
        let reply = raw.reader.until_ready().await.expect("reply");
        assert!(!reply.iter().any(|(t, _)| *t == b'E'), "{reply:?}");
    }
}

/// Simple queries pipelined (sent before the previous answer): each PREPARE, DEALLOCATE and
/// DEALLOCATE ALL takes effect with its own query, not with the ReadyForQuery of the query
/// still running ahead of it. The slow first query keeps the later ones in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_simple_queries_settle_their_own_statements() {
    let (_cluster, server) = setup_raw(1).await;
    let mut raw = Raw::login(&server).await;
    let slow = "SELECT pg_sleep(0.1)";
    let pipelined = |second: &str| [query(slow), query(second)].concat();
    raw.send(&pipelined("PREPARE p (int) AS SELECT $1 + 1"))
        .await;
    two_replies(&mut raw).await;
    assert_eq!(
        raw.simple("EXECUTE p(1)").await,
        "2",
        "prepared behind a slow query"
    );
    raw.send(&pipelined("DEALLOCATE p")).await;
    two_replies(&mut raw).await;
    raw.send(&query("EXECUTE p(1)")).await;
    let err = raw
        .reader
        .error()
        .await
        .expect("deallocated behind a slow query");
    assert_eq!(err.code, "26000", "{err:?}");
    raw.reader.until_ready().await.expect("ready");
    raw.simple_rows("PREPARE p (int) AS SELECT $1 + 2").await;
    raw.send(&pipelined("DEALLOCATE ALL")).await;
    two_replies(&mut raw).await;
    raw.simple_rows("PREPARE p (int) AS SELECT $1 + 3").await;
    assert_eq!(
        raw.simple("EXECUTE p(1)").await,
        "4",
        "a fresh p after DEALLOCATE ALL"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// In one query, DEALLOCATE ALL drops the statements prepared before it and keeps those after
/// it, as PostgreSQL does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_all_between_prepares_in_one_query() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute(
        "PREPARE before_it AS SELECT 1; DEALLOCATE ALL; PREPARE after_it AS SELECT 2; \
         DEALLOCATE PREPARE ALL; PREPARE last AS SELECT 3",
    )
    .await
    .expect("prepares and drops");
    for gone in ["before_it", "after_it"] {
        let err = column(&a, &format!("EXECUTE {gone}"))
            .await
            .expect_err("dropped");
        assert_eq!(code(&err), Some("26000"), "{gone}: {err}");
    }
    assert_eq!(column(&a, "EXECUTE last").await.expect("kept"), ["3"]);
    server.shutdown(s::Shutdown::Immediate).await;
}
