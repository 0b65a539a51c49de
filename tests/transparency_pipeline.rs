//! Issue 11, item 14: in transaction mode a pipeline that hits an error, then a Sync, a
//! ROLLBACK and more statements, runs what follows the ROLLBACK as PostgreSQL does. The case
//! that broke: after a write, pgtide asks the primary for its WAL position (read-your-writes) at
//! the write's ReadyForQuery; when the client had already pipelined a statement that then
//! failed, that query reached the backend behind it, was skipped with the rest of the failed
//! batch, and took the client's ReadyForQuery: the client saw one fewer, and libpq reported
//! everything after as PipelineAborted. Each case runs on PostgreSQL directly (the oracle) and
//! through pgtide with a replica (so routing and read-your-writes are on), and must match.
//! Also compared: SQL PREPARE around a DEALLOCATE ALL in one query, and an extended-protocol
//! COPY FROM STDIN (a Sync inside the copy that the backend ignores) followed by SET and PREPARE.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use pgtide_config::PoolMode;
use pgtide_suite as s;
use s::raw::{add_trust_user, bind, execute, msg, parse, query, sync, Raw, RAW_USER};

fn pbe(sql: &str) -> Vec<u8> {
    let mut v = parse("", sql);
    v.extend(bind("", &[]));
    v.extend(execute());
    v
}

fn describe(tag: u8, body: &Bytes) -> String {
    match tag {
        b'E' => format!("E {}", s::raw::parse_error(body).code),
        b'C' | b'Z' => format!(
            "{} {}",
            tag as char,
            String::from_utf8_lossy(body).trim_end_matches('\0')
        ),
        t => (t as char).to_string(),
    }
}

/// Sends each write, reading after it until `n` ErrorResponse or ReadyForQuery messages came.
async fn replies(addr: SocketAddr, user: &str, writes: &[Write]) -> Vec<String> {
    let mut raw = Raw::login_to(addr, user, s::APP_DB).await;
    let mut out = Vec::new();
    for (bytes, n) in writes {
        raw.send(bytes).await;
        let mut ends = 0;
        while ends < *n {
            let Some((tag, body)) = raw.reader.next().await else {
                out.push("closed".into());
                return out;
            };
            out.push(describe(tag, &body));
            ends += usize::from(tag == b'Z' || tag == b'E');
        }
    }
    out
}

/// One write of a raw client and how many ErrorResponse/ReadyForQuery end its replies.
type Write = (Vec<u8>, usize);

/// The raw cases: (name, writes).
fn cases() -> Vec<(&'static str, Vec<Write>)> {
    let after_error = || {
        let mut v = sync();
        v.extend(pbe("ROLLBACK"));
        v.extend(sync());
        v.extend(pbe("SELECT 42"));
        v.extend(sync());
        v
    };
    // A write and its Sync, then a failing statement and a Flush: the error comes back before
    // the client sends the Sync that ends its batch.
    let mut write_then_flush = pbe("INSERT INTO t VALUES (1)");
    write_then_flush.extend(sync());
    write_then_flush.extend(pbe("SELECT 1/0"));
    write_then_flush.extend(msg(b'H', &[]));
    // In a transaction, the whole pipeline in one write.
    let mut one_write = query("BEGIN");
    one_write.extend(pbe("INSERT INTO t VALUES (2)"));
    one_write.extend(pbe("SELECT 1/0"));
    one_write.extend(after_error());
    // A write committed, then a failing batch in the same write.
    let mut after_commit = pbe("INSERT INTO t VALUES (3)");
    after_commit.extend(sync());
    after_commit.extend(pbe("SELECT 1/0"));
    after_commit.extend(after_error());
    // Simple queries.
    let mut simple = query("BEGIN");
    for sql in [
        "INSERT INTO t VALUES (4)",
        "SELECT 1/0",
        "ROLLBACK",
        "SELECT 42",
    ] {
        simple.extend(query(sql));
    }
    // SQL PREPARE bookkeeping: DEALLOCATE ALL in the middle of one query drops what the query
    // prepared before it and keeps what it prepares after (each EXECUTE may run on another
    // backend through pgtide, which re-prepares from its own record).
    let prepare_around_deallocate_all =
        query("PREPARE a1 AS SELECT 1; DEALLOCATE ALL; PREPARE a2 AS SELECT 2");
    let same_name_again = query("PREPARE a3 AS SELECT 3; DEALLOCATE ALL; PREPARE a3 AS SELECT 4");
    let mut execute_again = query("EXECUTE a3");
    execute_again.extend(query("DEALLOCATE a3"));
    let mut execute_both = query("EXECUTE a2");
    execute_both.extend(query("EXECUTE a1"));
    execute_both.extend(query("DEALLOCATE a2"));
    // An extended-protocol COPY FROM STDIN: the Sync sent while copying is ignored by the
    // backend, so the batch ends at the Sync after CopyDone; a SET and SQL PREPARE after it must
    // be settled against the right ReadyForQuery and carried.
    let mut copy_start = parse("", "COPY t FROM STDIN");
    copy_start.extend(bind("", &[]));
    copy_start.extend(execute());
    copy_start.extend(sync());
    let mut copy_end = msg(b'd', b"7\n");
    copy_end.extend(msg(b'c', &[]));
    copy_end.extend(sync());
    let after_copy = query("SET application_name = 'after_copy'; PREPARE c1 AS SELECT 3");
    let mut check_after_copy = query("SHOW application_name");
    check_after_copy.extend(query("EXECUTE c1"));
    check_after_copy.extend(query("DEALLOCATE c1"));
    check_after_copy.extend(query("EXECUTE c1"));
    // Each SQL name is resolved against what the queries before it did, failed or not, as a
    // direct connection runs them one after the other: all pipelined in one write.
    let pipelined = |sqls: &[&str]| sqls.iter().flat_map(|sql| query(sql)).collect::<Vec<u8>>();
    let after_failed_prepare = pipelined(&[
        "PREPARE f1 AS SELECT no_such_column",
        "DEALLOCATE f1",
        "EXECUTE f1",
        "PREPARE f1 AS SELECT 5",
        "EXECUTE f1",
        "DEALLOCATE f1",
    ]);
    let after_drop_all = pipelined(&[
        "PREPARE g1 AS SELECT 1",
        "DEALLOCATE ALL",
        "EXECUTE g1",
        "PREPARE g1 AS SELECT 2",
        "EXECUTE g1",
        "DEALLOCATE g1",
    ]);
    let after_failed_deallocate = pipelined(&[
        "PREPARE h1 AS SELECT 1",
        "SELECT 1/0; DEALLOCATE h1",
        "EXECUTE h1",
        "DEALLOCATE h1",
        "EXECUTE h1",
    ]);
    // The extended protocol binds SQL-prepared statements too.
    let bound = |name: &str| {
        let mut v = bind(name, &[]);
        v.extend(execute());
        v.extend(sync());
        v
    };
    let mut bind_after_prepares = query("PREPARE b1 AS SELECT no_such_column");
    bind_after_prepares.extend(bound("b1"));
    bind_after_prepares.extend(query("PREPARE b2 AS SELECT 7"));
    bind_after_prepares.extend(bound("b2"));
    bind_after_prepares.extend(query("DEALLOCATE b2"));
    bind_after_prepares.extend(bound("b2"));
    // A drop-all inside an extended batch is answered at the batch's Sync: what follows it
    // in the same batch (even a Parse of a named statement) must not wait for that answer.
    let mut drop_all_in_a_batch = pbe("DEALLOCATE ALL");
    drop_all_in_a_batch.extend(pbe("SELECT 1"));
    drop_all_in_a_batch.extend(parse("x1", "SELECT 2"));
    drop_all_in_a_batch.extend(bound("x1"));
    vec![
        (
            "extended DEALLOCATE ALL followed by more in one batch",
            vec![(drop_all_in_a_batch, 1)],
        ),
        (
            "Bind pipelined behind SQL PREPAREs and DEALLOCATE",
            vec![(bind_after_prepares, 9)],
        ),
        (
            "pipelined queries after a PREPARE that fails",
            vec![(after_failed_prepare, 9)],
        ),
        (
            "pipelined queries after a DEALLOCATE ALL",
            vec![(after_drop_all, 7)],
        ),
        (
            "pipelined queries after a DEALLOCATE that never ran",
            vec![(after_failed_deallocate, 7)],
        ),
        (
            "PREPARE, DEALLOCATE ALL, PREPARE in one query",
            vec![(prepare_around_deallocate_all, 1), (execute_both, 4)],
        ),
        (
            "PREPARE, DEALLOCATE ALL, PREPARE of the same name in one query",
            vec![(same_name_again, 1), (execute_again, 2)],
        ),
        (
            "extended COPY FROM STDIN with a Sync inside, then SET and PREPARE",
            vec![
                (copy_start, 0),
                (copy_end, 1),
                (after_copy, 1),
                (check_after_copy, 5),
            ],
        ),
        (
            "write, Sync, failing statement, Flush",
            vec![(write_then_flush, 2), (after_error(), 3)],
        ),
        (
            "BEGIN, write, error, ROLLBACK in one write",
            vec![(one_write, 4)],
        ),
        (
            "write committed, failing batch, ROLLBACK",
            vec![(after_commit, 4)],
        ),
        ("simple queries", vec![(simple, 5)]),
    ]
}

/// libpq's pipeline mode through psycopg's pq wrapper: a write and a pipeline sync not waited
/// for, a failing statement and a flush request, then sync, ROLLBACK, sync, SELECT, sync.
/// Prints the status of every result libpq reports.
const LIBPQ_PIPELINE: &str = r#"
import sys, psycopg
from psycopg import pq
conn = psycopg.connect(sys.argv[1], autocommit=True)
pg = conn.pgconn
pg.enter_pipeline_mode()
def results(n_syncs):
    out = []
    while n_syncs:
        r = pg.get_result()
        if r is None:
            continue
        status = pq.ExecStatus(r.status).name
        out.append(status)
        if status == "PIPELINE_SYNC":
            n_syncs -= 1
    return out
pg.send_query_params(b"INSERT INTO t VALUES (5)", None)
pg.pipeline_sync()
pg.send_query_params(b"SELECT 1/0", None)
pg.send_flush_request()
pg.flush()
seen = results(1)
r = pg.get_result()
seen.append(pq.ExecStatus(r.status).name)
pg.get_result()
pg.pipeline_sync()
pg.send_query_params(b"ROLLBACK", None)
pg.pipeline_sync()
pg.send_query_params(b"SELECT 42", None)
pg.pipeline_sync()
pg.flush()
seen += results(3)
print(" ".join(seen))
"#;

/// psycopg's own pipeline API: an error, rollback(), and what follows.
const PSYCOPG_PIPELINE: &str = r#"
import sys, psycopg
from psycopg import errors as e
url = sys.argv[1]
with psycopg.connect(url, autocommit=True) as conn:
    with conn.pipeline() as p:
        conn.execute("INSERT INTO t VALUES (6)")
        try:
            conn.execute("select 1 / %s", [0]).fetchone()
            raise SystemExit("no error")
        except e.DivisionByZero:
            pass
        conn.rollback()
        assert conn.execute("select 42").fetchone() == (42,)
with psycopg.connect(url) as conn:
    with conn.pipeline():
        conn.execute("INSERT INTO t VALUES (7)")
        conn.execute("select 1 from nosuchtable")
        try:
            conn.commit()
            raise SystemExit("no error")
        except e.UndefinedTable:
            pass
        conn.rollback()
        cur1 = conn.execute("select 1")
    cur2 = conn.execute("select 2")
    assert cur1.fetchone() == (1,) and cur2.fetchone() == (2,)
print("psycopg pipeline ok")
"#;

/// tokio-postgres pipelines concurrent requests on one connection: a transaction with a write,
/// a failing statement, ROLLBACK and a SELECT, all sent before any reply is read. Returns each
/// outcome (row count, SQLSTATE or value).
async fn tokio_postgres_pipeline(url: &str) -> Vec<String> {
    let c = s::connect(url).await.expect("tokio-postgres connects");
    let insert = c
        .prepare("INSERT INTO t VALUES (8)")
        .await
        .expect("prepare");
    let div = c.prepare("SELECT 1 / $1::int").await.expect("prepare");
    let answer = c.prepare("SELECT 42").await.expect("prepare");
    let code = |e: tokio_postgres::Error| e.code().map_or("?".into(), |c| c.code().to_string());
    let zero = 0i32;
    let zero_param: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&zero];
    let (begin, ins, err, rollback, after) = futures_util::join!(
        c.batch_execute("BEGIN"),
        c.execute(&insert, &[]),
        c.query(&div, &zero_param),
        c.batch_execute("ROLLBACK"),
        c.query_one(&answer, &[]),
    );
    vec![
        format!("{:?}", begin.map_err(code)),
        format!("{:?}", ins.map_err(code)),
        format!("{:?}", err.map(|r| r.len()).map_err(code)),
        format!("{:?}", rollback.map_err(code)),
        format!("{:?}", after.map(|r| r.get::<_, i32>(0)).map_err(code)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_fails_rolls_back_and_goes_on_runs_as_on_postgresql() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(1))
        .await
        .expect("cluster task");
    cluster
        .primary()
        .psql_db(
            s::APP_DB,
            "CREATE TABLE t (v int); GRANT ALL ON t TO PUBLIC;",
        )
        .expect("schema");
    let mut config = s::config_with_replicas(&cluster, PoolMode::Transaction, 2, &[1]);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    // Without replicas nothing is routed, so no batch waits for a replica's: the raw cases
    // run through that configuration too.
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    add_trust_user(&mut config);
    let unrouted = s::start(config).await;
    let direct = SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()));
    for ((name, writes), via) in cases()
        .into_iter()
        .flat_map(|case| [(case.clone(), &server), (case, &unrouted)])
    {
        eprintln!("CASE {name}");
        let want = replies(direct, "trustuser", &writes).await;
        // The scripts do what their names say on PostgreSQL: the statement DEALLOCATE ALL
        // dropped is gone (26000), the COPY ran and the second EXECUTE after DEALLOCATE fails.
        if name == "PREPARE, DEALLOCATE ALL, PREPARE in one query"
            || name.contains("COPY")
            || name.starts_with("pipelined")
            || name.starts_with("Bind")
        {
            assert!(want.iter().any(|r| r == "E 26000"), "{name}: {want:?}");
        }
        if name.contains("COPY") {
            assert!(want.iter().any(|r| r == "C COPY 1"), "{name}: {want:?}");
        }
        let got = s::within(
            name,
            Duration::from_secs(30),
            replies(via.local_addr, RAW_USER, &writes),
        )
        .await;
        let routed = if std::ptr::eq(via, &server) {
            "with"
        } else {
            "without"
        };
        assert_eq!(
            got, want,
            "{name}, {routed} replicas: through pgtide vs PostgreSQL"
        );
    }

    let direct_url = cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    let want = s::python::run("libpq pipeline", LIBPQ_PIPELINE, &[&direct_url]).await;
    let got = s::python::run("libpq pipeline", LIBPQ_PIPELINE, &[&s::app_url(&server)]).await;
    assert_eq!(got, want, "libpq pipeline: through pgtide vs PostgreSQL");
    if let Some(want) = want {
        assert!(!want.contains("PIPELINE_ABORTED"), "{want}");
    }
    let want = tokio_postgres_pipeline(&direct_url).await;
    assert_eq!(want[2], "Err(\"22012\")", "{want:?}");
    let got = tokio_postgres_pipeline(&s::app_url(&server)).await;
    assert_eq!(got, want, "tokio-postgres: through pgtide vs PostgreSQL");
    for url in [direct_url, s::app_url(&server)] {
        s::python::run("psycopg pipeline", PSYCOPG_PIPELINE, &[&url]).await;
    }
    server.shutdown(s::Shutdown::Immediate).await;
    unrouted.shutdown(s::Shutdown::Immediate).await;
}
