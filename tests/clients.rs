//! Real clients through pgtide, in both pool modes: psql (simple protocol, COPY, NOTICE),
//! tokio-postgres (extended protocol, pipelining, COPY, large results, LISTEN/NOTIFY),
//! transaction isolation across pooled backends, clients killed mid-transaction, and cancel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use pgtide_config::PoolMode;
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

/// Runs `async fn $name(mode: PoolMode)` as two tests, `$name::transaction` and `$name::session`.
macro_rules! both_modes {
    ($name:ident) => {
        mod $name {
            use pgtide_config::PoolMode;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn transaction() {
                super::$name(PoolMode::Transaction).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn session() {
                super::$name(PoolMode::Session).await
            }
        }
    };
}

async fn start_cluster() -> Arc<Cluster> {
    Arc::new(
        tokio::task::spawn_blocking(|| s::cluster(0))
            .await
            .expect("cluster task"),
    )
}

/// A cluster, pgtide in front of it (pool size 2) and one tokio-postgres client with its
/// connection task.
async fn one_client(
    mode: PoolMode,
) -> (
    Arc<Cluster>,
    s::ServerHandle,
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let cluster = start_cluster().await;
    let server = s::start(s::config(&cluster, mode, 2)).await;
    let (client, conn) = s::connect_with_handle(&s::app_url(&server))
        .await
        .expect("connect");
    (cluster, server, client, conn)
}

fn mode_name(mode: PoolMode) -> &'static str {
    match mode {
        PoolMode::Transaction => "transaction",
        PoolMode::Session => "session",
    }
}

/// Waits (generously) for a future that must not hang.
async fn bounded<T>(what: &str, limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: still not done after {limit:?}"))
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.code()
}

/// A drain (SIGTERM) closes an idle, in-step client at once with 57P01: pgtide must not think
/// a reply is still owed on its session.
async fn drain_closes_idle_client(
    server: s::ServerHandle,
    client: tokio_postgres::Client,
    conn: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    label: &str,
) {
    // tokio-postgres closes dropped statements in the background (Close + Sync); a simple query
    // after them is answered last, so once it returns nothing is in flight.
    client
        .simple_query("SELECT 'idle'")
        .await
        .unwrap_or_else(|e| panic!("[{label}] query before the drain: {e}"));
    let drain = tokio::spawn(server.shutdown(s::Shutdown::Drain));
    let end = bounded(
        &format!("[{label}] drain closing an idle client (is a reply still owed on its session?)"),
        Duration::from_secs(10),
        conn,
    )
    .await
    .expect("connection task");
    let err = end.expect_err("the idle client should be told pgtide is shutting down");
    assert_eq!(
        sqlstate(&err),
        Some(&SqlState::ADMIN_SHUTDOWN),
        "[{label}] {err}"
    );
    drop(client);
    bounded("drain", Duration::from_secs(10), drain)
        .await
        .expect("drain task");
}

// ---------------------------------------------------------------------------------------------
// psql

both_modes!(psql_script_simple_protocol_copy_and_notice);
async fn psql_script_simple_protocol_copy_and_notice(mode: PoolMode) {
    let cluster = start_cluster().await;
    {
        let server = s::start(s::config(&cluster, mode, 2)).await;
        let t = format!("psql_items_{}", mode_name(mode));
        let script = format!(
            r#"CREATE TABLE {t} (id int PRIMARY KEY, name text);
INSERT INTO {t} VALUES (1, 'one'), (2, 'two');
SELECT 'multi-a' AS tag \; INSERT INTO {t} VALUES (3, 'three') \; SELECT count(*) AS n FROM {t};
BEGIN;
INSERT INTO {t} VALUES (100, 'rolled back');
ROLLBACK;
BEGIN;
INSERT INTO {t} VALUES (101, 'also rolled back');
SELECT 1/0;
SELECT 'never runs';
ROLLBACK;
SELECT count(*) AS leftovers FROM {t} WHERE id >= 100;
\copy {t} FROM STDIN
4	four
5	five
\.
\copy (SELECT id, name FROM {t} ORDER BY id) TO STDOUT
DO $$BEGIN RAISE NOTICE 'hello from pgtide'; END$$;
SELECT 'done' AS finish;
"#
        );
        let path = cluster
            .dir()
            .join(format!("script_{}.sql", mode_name(mode)));
        std::fs::write(&path, script).expect("write psql script");
        let multi = format!(
            "SELECT 'c-one' AS a; UPDATE {t} SET name = 'uno' WHERE id = 1; SELECT name FROM {t} WHERE id = 1"
        );
        let args: Vec<String> = [
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=0",
            "-d",
            &s::app_url(&server),
            "-f",
            &path.display().to_string(),
            "-c",
            &multi,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let out = s::run_tool("psql", args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!(
            "[{}] psql stdout:\n{stdout}\nstderr:\n{stderr}",
            mode_name(mode)
        );
        assert!(out.status.success(), "psql exit {:?}: {ctx}", out.status);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            vec![
                "multi-a", "3", "0", "1\tone", "2\ttwo", "3\tthree", "4\tfour", "5\tfive", "done",
                "c-one", "uno"
            ],
            "{ctx}"
        );
        assert!(stderr.contains("division by zero"), "{ctx}");
        assert!(
            stderr.contains("current transaction is aborted"),
            "the statement after the error must be refused inside the failed transaction: {ctx}"
        );
        assert!(
            stderr.contains("NOTICE:  hello from pgtide"),
            "NOTICE not relayed: {ctx}"
        );
        // Exactly the two errors above; nothing from pgtide itself.
        assert_eq!(stderr.matches("ERROR:").count(), 2, "{ctx}");
        let on_primary = s::primary_sql(
            &cluster,
            s::APP_DB,
            &format!("SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM {t}"),
        )
        .await;
        assert_eq!(on_primary, "1:uno,2:two,3:three,4:four,5:five");
        server.shutdown(s::Shutdown::Immediate).await;
    }
}

// ---------------------------------------------------------------------------------------------
// tokio-postgres: extended protocol

both_modes!(prepared_statements_reused_across_interleaved_clients);
async fn prepared_statements_reused_across_interleaved_clients(mode: PoolMode) {
    let cluster = start_cluster().await;
    // Transaction mode: one backend shared by both clients, then two they alternate on.
    let sizes: &[usize] = match mode {
        PoolMode::Transaction => &[1, 2],
        PoolMode::Session => &[2],
    };
    for &size in sizes {
        let label = format!("{} size {size}", mode_name(mode));
        let server = s::start(s::config(&cluster, mode, size)).await;
        let url = s::app_url(&server);
        let a = s::connect(&url).await.expect("connect a");
        let b = s::connect(&url).await.expect("connect b");
        let a_double = a.prepare("SELECT $1::int * 2").await.expect("prepare a");
        let b_triple = b.prepare("SELECT $1::int * 3").await.expect("prepare b");
        // The same text under both clients' own statement names.
        let a_plus = a
            .prepare("SELECT $1::int + 1000")
            .await
            .expect("prepare a2");
        let b_plus = b
            .prepare("SELECT $1::int + 1000")
            .await
            .expect("prepare b2");
        for i in 0..150i32 {
            let ra: i32 = a.query_one(&a_double, &[&i]).await.expect("a").get(0);
            let rb: i32 = b.query_one(&b_triple, &[&i]).await.expect("b").get(0);
            let (pa, pb) = futures_util::future::join(
                a.query_one(&a_plus, &[&i]),
                b.query_one(&b_plus, &[&i]),
            )
            .await;
            assert_eq!((ra, rb), (i * 2, i * 3), "{label}");
            assert_eq!(pa.expect("a plus").get::<_, i32>(0), i + 1000, "{label}");
            assert_eq!(pb.expect("b plus").get::<_, i32>(0), i + 1000, "{label}");
        }
        // Statements prepared in an earlier transaction still work inside an explicit one.
        a.batch_execute("BEGIN").await.expect("begin");
        let r: i32 = a
            .query_one(&a_double, &[&21i32])
            .await
            .expect("in tx")
            .get(0);
        assert_eq!(r, 42, "{label}");
        a.batch_execute("COMMIT").await.expect("commit");
        // Closing a statement on one client does not break the other's copy of the same text.
        drop(a_plus);
        let r: i32 = a
            .query_one("SELECT 1", &[])
            .await
            .expect("after close")
            .get(0);
        assert_eq!(r, 1);
        let r: i32 = b
            .query_one(&b_plus, &[&1i32])
            .await
            .expect("b after a closed")
            .get(0);
        assert_eq!(r, 1001, "{label}");
        server.shutdown(s::Shutdown::Immediate).await;
    }
}

both_modes!(pipelined_queries_transactions_and_errors);
async fn pipelined_queries_transactions_and_errors(mode: PoolMode) {
    let (_cluster, server, mut client, conn) = one_client(mode).await;
    {
        let label = mode_name(mode);
        let t = format!("tp_{label}");
        client
            .batch_execute(&format!("CREATE TABLE {t} (id int PRIMARY KEY, v text)"))
            .await
            .expect("create");

        // Pipelining: all futures are polled together, so tokio-postgres writes every
        // Parse/Bind/Execute/Sync before reading any reply.
        let queries = (0..200i32).map(|i| {
            let client = &client;
            async move {
                let rows = client
                    .query(
                        "SELECT $1::int AS n, repeat('p', $1::int % 50) AS pad",
                        &[&i],
                    )
                    .await?;
                Ok::<_, tokio_postgres::Error>((i, rows))
            }
        });
        for r in futures_util::future::join_all(queries).await {
            let (i, rows) = r.unwrap_or_else(|e| panic!("[{label}] pipelined query: {e}"));
            assert_eq!(rows.len(), 1);
            assert_eq!(
                rows[0].get::<_, i32>(0),
                i,
                "[{label}] replies out of order"
            );
            assert_eq!(rows[0].get::<_, &str>(1).len(), (i % 50) as usize);
        }
        // Pipelined writes, too.
        let inserts = (0..50i32).map(|i| {
            let client = &client;
            let t = &t;
            async move {
                client
                    .execute(&format!("INSERT INTO {t} VALUES ($1, 'x')"), &[&i])
                    .await
            }
        });
        for r in futures_util::future::join_all(inserts).await {
            assert_eq!(r.expect("pipelined insert"), 1);
        }

        // client.transaction(): commit and rollback.
        let tx = client.transaction().await.expect("begin");
        tx.execute(&format!("INSERT INTO {t} VALUES (1000, 'committed')"), &[])
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        let tx = client.transaction().await.expect("begin");
        tx.execute(
            &format!("INSERT INTO {t} VALUES (1001, 'rolled back')"),
            &[],
        )
        .await
        .expect("insert");
        tx.rollback().await.expect("rollback");

        // An error inside a transaction: everything after it fails until the rollback.
        let tx = client.transaction().await.expect("begin");
        tx.execute(&format!("INSERT INTO {t} VALUES (1002, 'lost')"), &[])
            .await
            .expect("insert");
        let dup = tx
            .execute(&format!("INSERT INTO {t} VALUES (1000, 'duplicate')"), &[])
            .await
            .expect_err("duplicate key");
        assert_eq!(
            sqlstate(&dup),
            Some(&SqlState::UNIQUE_VIOLATION),
            "[{label}] {dup}"
        );
        let aborted = tx.query("SELECT 1", &[]).await.expect_err("aborted tx");
        assert_eq!(
            sqlstate(&aborted),
            Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
            "[{label}] {aborted}"
        );
        tx.rollback().await.expect("rollback after error");

        // A simple-protocol error outside a transaction leaves the session usable.
        let e = client
            .simple_query("SELECT * FROM no_such_table")
            .await
            .expect_err("undefined table");
        assert_eq!(sqlstate(&e), Some(&SqlState::UNDEFINED_TABLE));

        let rows = client
            .query(
                &format!("SELECT id FROM {t} WHERE id >= 1000 ORDER BY id"),
                &[],
            )
            .await
            .expect("after rollback");
        let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ids, vec![1000], "[{label}]");
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 51, "[{label}]");
        drain_closes_idle_client(server, client, conn, label).await;
    }
}

both_modes!(copy_in_and_copy_out);
async fn copy_in_and_copy_out(mode: PoolMode) {
    let (_cluster, server, client, conn) = one_client(mode).await;
    {
        let label = mode_name(mode);
        let t = format!("tc_{label}");
        client
            .batch_execute(&format!("CREATE TABLE {t} (id int PRIMARY KEY, v text)"))
            .await
            .expect("create");

        // COPY FROM STDIN in several chunks.
        let sink = client
            .copy_in::<_, Bytes>(&format!("COPY {t} (id, v) FROM STDIN"))
            .await
            .expect("copy_in");
        futures_util::pin_mut!(sink);
        for chunk in 0..10 {
            let mut data = String::new();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                data.push_str(&format!("{i}\tvalue-{i}\n"));
            }
            sink.send(Bytes::from(data)).await.expect("copy data");
        }
        let copied = sink.finish().await.expect("copy finish");
        assert_eq!(copied, 10_000, "[{label}]");
        // The session is still in step after the COPY (tokio-postgres closes the COPY's
        // statement in the background: Close + Sync right after CopyDone + Sync).
        let rows = client
            .simple_query("SELECT 'after copy in'")
            .await
            .unwrap_or_else(|e| panic!("[{label}] session broken after COPY FROM STDIN: {e}"));
        assert!(rows.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))));
        if mode == PoolMode::Transaction {
            // The COPY's transaction is over: its backend goes back to the pool.
            let pool = server.shared.pools.all()[0].clone();
            assert!(
                s::eventually(Duration::from_secs(3), || {
                    let pool = pool.clone();
                    async move { pool.stats().in_use == 0 }
                })
                .await,
                "the backend was not returned after an extended-protocol COPY FROM STDIN: {:?}",
                pool.stats()
            );
        }

        // COPY TO STDOUT.
        let stream = client
            .copy_out(&format!(
                "COPY (SELECT id, v FROM {t} ORDER BY id) TO STDOUT"
            ))
            .await
            .expect("copy_out");
        let chunks: Vec<Bytes> = stream.try_collect().await.expect("copy_out data");
        let text: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let text = String::from_utf8(text).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_000, "[{label}]");
        assert_eq!(lines[0], "0\tvalue-0");
        assert_eq!(lines[9_999], "9999\tvalue-9999");

        // A failed COPY (bad data) is an error the session survives.
        let sink = client
            .copy_in::<_, Bytes>(&format!("COPY {t} (id, v) FROM STDIN"))
            .await
            .expect("copy_in 2");
        futures_util::pin_mut!(sink);
        let bad = async {
            sink.send(Bytes::from_static(b"not-a-number\tx\n")).await?;
            sink.finish().await
        }
        .await;
        assert!(bad.is_err(), "[{label}] bad COPY data must fail");
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .expect("count after failed copy")
            .get(0);
        assert_eq!(n, 10_000);
        let r: i32 = client
            .query_one("SELECT 7", &[])
            .await
            .expect("after")
            .get(0);
        assert_eq!(r, 7);
        // After all that COPY traffic the session is idle and in step.
        drain_closes_idle_client(server, client, conn, label).await;
    }
}

both_modes!(large_result_streamed);
async fn large_result_streamed(mode: PoolMode) {
    let (_cluster, server, client, conn) = one_client(mode).await;
    {
        let label = mode_name(mode);
        // ~50 MB, streamed through to the last row.
        let started = Instant::now();
        let rows = client
            .query_raw(
                "SELECT g, repeat('x', 240) AS pad FROM generate_series(1, 200000) g",
                std::iter::empty::<i32>(),
            )
            .await
            .expect("large query");
        futures_util::pin_mut!(rows);
        let (mut count, mut sum, mut bytes) = (0u64, 0i64, 0usize);
        while let Some(row) = rows.next().await {
            let row = row.expect("row");
            count += 1;
            sum += i64::from(row.get::<_, i32>(0));
            bytes += row.get::<_, &str>(1).len();
        }
        eprintln!(
            "[{label}] 200k rows / {bytes} pad bytes in {:?}",
            started.elapsed()
        );
        assert_eq!(count, 200_000, "[{label}]");
        assert_eq!(sum, 200_000 * 200_001 / 2);
        assert_eq!(bytes, 200_000 * 240);
        // The connection is still in step afterwards.
        let r: i32 = client
            .query_one("SELECT 7", &[])
            .await
            .expect("after")
            .get(0);
        assert_eq!(r, 7);
        drain_closes_idle_client(server, client, conn, label).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_in_session_mode() {
    let cluster = start_cluster().await;
    let server = s::start(s::config(&cluster, PoolMode::Session, 4)).await;
    let url = s::app_url(&server);
    let (listener, mut conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        futures_util::pin_mut!(messages);
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    listener
        .batch_execute("LISTEN pgtide_test")
        .await
        .expect("listen");
    let notifier = s::connect(&url).await.expect("connect notifier");
    for i in 0..3 {
        notifier
            .batch_execute(&format!("NOTIFY pgtide_test, 'payload-{i}'"))
            .await
            .expect("notify");
        let n = bounded("notification", Duration::from_secs(10), rx.recv())
            .await
            .expect("listener connection ended");
        assert_eq!(n.channel(), "pgtide_test");
        assert_eq!(n.payload(), format!("payload-{i}"));
    }
    // pg_notify inside a transaction arrives at commit.
    notifier
        .batch_execute("BEGIN; SELECT pg_notify('pgtide_test', 'in-tx'); COMMIT")
        .await
        .expect("notify in tx");
    let n = bounded("notification", Duration::from_secs(10), rx.recv())
        .await
        .expect("listener connection ended");
    assert_eq!(n.payload(), "in-tx");
    // The listener's own session still answers queries.
    let rows = listener.simple_query("SELECT 1").await.expect("query");
    assert!(rows.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))));
    server.shutdown(s::Shutdown::Immediate).await;
}

// ---------------------------------------------------------------------------------------------
// Isolation between clients sharing backends

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_isolation_in_transaction_mode() {
    let cluster = start_cluster().await;
    for size in [1usize, 2] {
        let mut config = s::config(&cluster, PoolMode::Transaction, size);
        // B may wait for A's backend with pool size 1; the test ends A's transaction at once,
        // the long timeout only keeps a slow machine from turning that wait into 53300.
        config.pool.checkout_timeout = Duration::from_secs(30);
        let server = s::start(config).await;
        let url = s::app_url(&server);
        let a = s::connect(&url).await.expect("connect a");
        let b = Arc::new(s::connect(&url).await.expect("connect b"));
        let t = format!("iso_{size}");
        a.batch_execute(&format!("CREATE TABLE {t} (id int)"))
            .await
            .expect("create");

        a.batch_execute("BEGIN").await.expect("begin");
        a.execute(&format!("INSERT INTO {t} VALUES (1)"), &[])
            .await
            .expect("insert");
        let b2 = b.clone();
        let sql = format!("SELECT count(*) FROM {t}");
        let b_read = tokio::spawn(async move { count(&b2, &sql).await });
        if size == 1 {
            // The only backend is A's until A's transaction ends: B waits for it.
            let pool = server.shared.pools.all()[0].clone();
            assert!(
                s::eventually(Duration::from_secs(10), || {
                    let pool = pool.clone();
                    async move { pool.stats().waiting == 1 }
                })
                .await,
                "B should be waiting for the single backend: {:?}",
                pool.stats()
            );
            assert!(!b_read.is_finished(), "B ran while A held the only backend");
            a.batch_execute("COMMIT").await.expect("commit");
            // B ran after the commit, so it sees the row.
            let seen = bounded("B's read", Duration::from_secs(20), b_read)
                .await
                .expect("B task");
            assert_eq!(seen, 1, "pool size 1: B ran after A's commit");
        } else {
            // A second backend serves B at once, outside A's uncommitted transaction.
            let seen = bounded("B's read", Duration::from_secs(20), b_read)
                .await
                .expect("B task");
            assert_eq!(seen, 0, "pool size 2: B must not see A's uncommitted row");
            a.batch_execute("COMMIT").await.expect("commit");
        }
        assert_eq!(
            count(&b, &format!("SELECT count(*) FROM {t}")).await,
            1,
            "after commit"
        );

        // SET LOCAL lives and dies with A's transaction; B (on the same backend with size 1)
        // never sees it.
        a.batch_execute("BEGIN; SET LOCAL statement_timeout = '4321ms'")
            .await
            .expect("set local");
        let inside: String = a
            .query_one("SHOW statement_timeout", &[])
            .await
            .expect("show in tx")
            .get(0);
        assert_eq!(inside, "4321ms");
        a.batch_execute("COMMIT").await.expect("commit");
        for _ in 0..4 {
            let seen: String = b
                .query_one("SHOW statement_timeout", &[])
                .await
                .expect("show b")
                .get(0);
            assert_eq!(seen, "0", "size {size}: A's SET LOCAL leaked to B");
        }
        let after: String = a
            .query_one("SHOW statement_timeout", &[])
            .await
            .expect("show a")
            .get(0);
        assert_eq!(after, "0");
        server.shutdown(s::Shutdown::Immediate).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Clients that vanish mid-transaction

/// Backends of database `app` that are idle in a transaction, and locks held on `table`,
/// seen on the primary itself.
async fn leftovers(cluster: &Arc<Cluster>, table: &str) -> (i64, i64) {
    let out = s::primary_sql(
        cluster,
        s::APP_DB,
        &format!(
            "SELECT (SELECT count(*) FROM pg_stat_activity
                      WHERE datname = '{db}' AND state LIKE 'idle in transaction%')
                 || ',' ||
                    (SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass
                      AND pid <> pg_backend_pid())",
            db = s::APP_DB
        ),
    )
    .await;
    let (a, b) = out.split_once(',').expect("two numbers");
    (a.parse().expect("number"), b.parse().expect("number"))
}

/// Kills a client abruptly (no Terminate): the connection task is aborted, so the socket is
/// simply dropped.
async fn kill(
    client: tokio_postgres::Client,
    conn: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    conn.abort();
    let _ = conn.await;
    drop(client);
}

both_modes!(client_killed_mid_transaction_releases_locks);
async fn client_killed_mid_transaction_releases_locks(mode: PoolMode) {
    let cluster = start_cluster().await;
    {
        let label = mode_name(mode);
        let server = s::start(s::config(&cluster, mode, 3)).await;
        let url = s::app_url(&server);
        let t = format!("kt_{label}");
        let other = s::connect(&url).await.expect("connect other");
        other
            .batch_execute(&format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, v int); INSERT INTO {t} VALUES (1, 0)"
            ))
            .await
            .expect("create");

        for mid_statement in [false, true] {
            let case = format!("[{label}, mid_statement={mid_statement}]");
            let (victim, conn) = s::connect_with_handle(&url).await.expect("connect victim");
            victim.batch_execute("BEGIN").await.expect("begin");
            victim
                .execute(&format!("UPDATE {t} SET v = v + 100 WHERE id = 1"), &[])
                .await
                .expect("update");
            let victim = Arc::new(victim);
            let sleeper = if mid_statement {
                let v = victim.clone();
                let q = tokio::spawn(async move { v.batch_execute("SELECT pg_sleep(30)").await });
                assert!(
                    sleep_visible(&cluster, "SELECT pg_sleep(30)").await,
                    "{case} the sleep never showed up in pg_stat_activity"
                );
                Some(q)
            } else {
                let (c, t) = (&cluster, &t);
                assert!(
                    s::eventually(Duration::from_secs(10), || async move {
                        leftovers(c, t).await.0 == 1
                    })
                    .await,
                    "{case} the victim should be idle in transaction"
                );
                None
            };
            let killed_at = Instant::now();
            if let Some(q) = sleeper {
                q.abort();
                let _ = q.await;
            }
            let victim = Arc::try_unwrap(victim).unwrap_or_else(|_| panic!("victim still shared"));
            kill(victim, conn).await;

            let (c, tt) = (&cluster, &t);
            let cleared = s::eventually(Duration::from_secs(10), || async move {
                leftovers(c, tt).await == (0, 0)
            })
            .await;
            let state = leftovers(&cluster, &t).await;
            let activity = s::primary_sql(
                &cluster,
                "postgres",
                "SELECT string_agg(pid || ' ' || coalesce(state, '?') || ' ' || left(query, 40), E'\\n')
                   FROM pg_stat_activity WHERE datname = 'app'",
            )
            .await;
            assert!(
                cleared,
                "{case} after the client died: (idle in transaction, locks) = {state:?}\n{activity}"
            );
            // The row lock is gone: another client updates the row promptly.
            let n = bounded(
                "update after the kill",
                Duration::from_secs(10),
                other.execute(&format!("UPDATE {t} SET v = v + 1 WHERE id = 1"), &[]),
            )
            .await
            .expect("update after kill");
            assert_eq!(n, 1);
            eprintln!(
                "{case} row free again {:?} after the kill",
                killed_at.elapsed()
            );
        }
        let v: i32 = other
            .query_one(&format!("SELECT v FROM {t} WHERE id = 1"), &[])
            .await
            .expect("read")
            .get(0);
        assert_eq!(
            v, 2,
            "[{label}] the killed transactions must have rolled back"
        );
        server.shutdown(s::Shutdown::Immediate).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Cancel

async fn sleep_visible(cluster: &Arc<Cluster>, query: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE query = '{}' AND state = 'active'",
        query.replace('\'', "''")
    );
    let sql = &sql;
    s::eventually(Duration::from_secs(10), || async move {
        s::primary_sql(cluster, s::APP_DB, sql).await == "1"
    })
    .await
}

both_modes!(cancel_reaches_the_running_query_only);
async fn cancel_reaches_the_running_query_only(mode: PoolMode) {
    let cluster = start_cluster().await;
    {
        let label = mode_name(mode);
        // Pool size 1 in transaction mode: A and B take turns on one backend.
        let size = if mode == PoolMode::Transaction { 1 } else { 2 };
        let mut config = s::config(&cluster, mode, size);
        config.pool.checkout_timeout = Duration::from_secs(30);
        let server = s::start(config).await;
        let url = s::app_url(&server);

        // 1. A running query is cancelled: 57014, promptly.
        let client = Arc::new(s::connect(&url).await.expect("connect"));
        let token = client.cancel_token();
        let c = client.clone();
        let running = tokio::spawn(async move { c.simple_query("SELECT pg_sleep(30)").await });
        assert!(
            sleep_visible(&cluster, "SELECT pg_sleep(30)").await,
            "[{label}] sleep not running"
        );
        let cancelled_at = Instant::now();
        token.cancel_query(NoTls).await.expect("send cancel");
        let result = bounded("cancelled query", Duration::from_secs(10), running)
            .await
            .expect("query task");
        let elapsed = cancelled_at.elapsed();
        eprintln!("[{label}] cancel took {elapsed:?}");
        let err = result.expect_err("the sleep should have been cancelled");
        assert_eq!(
            sqlstate(&err),
            Some(&SqlState::QUERY_CANCELED),
            "[{label}] {err}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "[{label}] cancel took {elapsed:?}"
        );
        let r: i32 = client
            .query_one("SELECT 5", &[])
            .await
            .expect("after cancel")
            .get(0);
        assert_eq!(r, 5);

        // 2. A cancel for an idle client does nothing harmful.
        token.cancel_query(NoTls).await.expect("idle cancel");
        token.cancel_query(NoTls).await.expect("idle cancel again");
        let r: i32 = client
            .query_one("SELECT 6", &[])
            .await
            .expect("after idle cancel")
            .get(0);
        assert_eq!(r, 6);
        let tx_rows = client
            .simple_query("BEGIN; SELECT 1; COMMIT")
            .await
            .expect("tx after idle cancel");
        assert!(tx_rows
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::Row(_))));

        // 3. A's cancel never reaches B's query, even when A last ran on the very backend
        //    B is using now (transaction mode, pool size 1).
        let a = client;
        let b = Arc::new(s::connect(&url).await.expect("connect b"));
        a.simple_query("SELECT 1")
            .await
            .expect("a uses the backend");
        let b2 = b.clone();
        let b_query = "SELECT pg_sleep(2), 'b-finished'";
        let b_running = tokio::spawn(async move { b2.simple_query(b_query).await });
        assert!(
            sleep_visible(&cluster, b_query).await,
            "[{label}] B's sleep not running"
        );
        token.cancel_query(NoTls).await.expect("cancel a");
        let b_result = bounded("B's query", Duration::from_secs(20), b_running)
            .await
            .expect("b task")
            .unwrap_or_else(|e| panic!("[{label}] A's cancel hit B's query: {e}"));
        let finished = b_result.iter().any(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(1) == Some("b-finished"),
            _ => false,
        });
        assert!(finished, "[{label}] B's query did not complete");
        // And both clients go on.
        let r: i32 = a.query_one("SELECT 8", &[]).await.expect("a after").get(0);
        assert_eq!(r, 8);
        let r: i32 = b.query_one("SELECT 9", &[]).await.expect("b after").get(0);
        assert_eq!(r, 9);
        server.shutdown(s::Shutdown::Immediate).await;
    }
}
