//! Review 12, copy-in: PostgreSQL ignores the Syncs a client sends while COPY FROM STDIN is
//! reading data, so the batch they seemed to end goes on until the Sync after CopyDone. The
//! client's SQL PREPAREs and session settings must be settled against the right
//! ReadyForQuery, or a SET stays unsettled and reaches the next client of the backend.

use pgtide_suite as s;
use s::raw::{bind, execute, msg, parse, query, sync, Raw};

#[path = "review/common.rs"]
mod common;
use common::setup;

/// Creates `table (a int)` and copies `data` into it through `client` with tokio-postgres'
/// COPY FROM STDIN (Bind, Execute, Sync, the data, CopyDone, Sync); the rows copied.
async fn copy_rows(
    cluster: &pgtide_devcluster::Cluster,
    client: &tokio_postgres::Client,
    table: &str,
    data: &'static [u8],
) -> u64 {
    use futures_util::SinkExt;
    s::app_sql(
        cluster,
        &format!("CREATE TABLE {table} (a int); GRANT ALL ON {table} TO PUBLIC"),
    );
    let sink = client
        .copy_in(&format!("COPY {table} FROM STDIN"))
        .await
        .expect("copy in");
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(data))
        .await
        .expect("data");
    sink.as_mut().finish().await.expect("copy done")
}

/// tokio-postgres' COPY FROM STDIN sends Bind, Execute, Sync, the data, CopyDone and a second
/// Sync: PostgreSQL ignores the first Sync (copy-in mode) and answers one ReadyForQuery. The
/// per-batch SQL PREPARE bookkeeping must count one batch: a failed PREPARE after the COPY is
/// gone (DEALLOCATE of it: 26000) and one that succeeded stays (EXECUTE of it: 42), as on
/// PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepare_after_an_extended_copy_in() {
    let (cluster, server) = setup("SELECT 1").await;
    let client = s::connect(&s::app_url(&server)).await.expect("client");
    let code = |r: Result<(), tokio_postgres::Error>| r.map_err(|e| common::code(&e));
    // Control: PostgreSQL's answers before any COPY.
    assert_eq!(
        code(
            client
                .batch_execute("PREPARE bad0 AS SELECT no_such_column")
                .await
        ),
        Err("42703".to_string())
    );
    assert_eq!(
        code(client.batch_execute("DEALLOCATE bad0").await),
        Err("26000".to_string())
    );
    assert_eq!(copy_rows(&cluster, &client, "r12_copy", b"1\n2\n").await, 2);
    assert_eq!(
        code(
            client
                .batch_execute("PREPARE bad AS SELECT no_such_column")
                .await
        ),
        Err("42703".to_string())
    );
    client
        .batch_execute("PREPARE good AS SELECT 42")
        .await
        .expect("PREPARE good");
    assert_eq!(s::scalar(&client, "SELECT 1").await, "1");
    assert_eq!(
        code(client.batch_execute("EXECUTE good").await),
        Ok(()),
        "a PREPARE that succeeded is still there (PostgreSQL: EXECUTE good answers 42)"
    );
    assert_eq!(s::scalar(&client, "EXECUTE good").await, "42");
    assert_eq!(
        code(client.batch_execute("DEALLOCATE bad").await),
        Err("26000".to_string()),
        "DEALLOCATE of a statement whose PREPARE failed"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// The copy-in case of the same bookkeeping in ClientState: after tokio-postgres' COPY FROM
/// STDIN, a SET is settled at its own ReadyForQuery, so the backend goes back with a record
/// that has it and the next client of the pool does not inherit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_after_an_extended_copy_in_stays_with_its_client() {
    let (cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let default = s::scalar(&a, "SHOW work_mem").await;
    assert_eq!(copy_rows(&cluster, &a, "r12_copy_set", b"1\n").await, 1);
    a.batch_execute("SET work_mem = '7MB'").await.expect("SET");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    assert_eq!(
        s::scalar(&b, "SHOW work_mem").await,
        default,
        "another client on the same backend inherited a's SET"
    );
    assert_eq!(s::scalar(&a, "SHOW work_mem").await, "7MB");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// The same copy-in, everything in one write before any reply: Parse/Bind/Execute of COPY
/// FROM STDIN, a Sync (ignored by PostgreSQL in copy-in mode), the data, CopyDone, Sync, then a
/// Query with a SET and a PREPARE. The ignored Sync is the oldest batch end in flight, not the
/// newest: settling the Query's batch one ReadyForQuery late would leave the SET unsettled and
/// hand the backend, work_mem changed, to the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_pipelined_behind_an_extended_copy_in_stays_with_its_client() {
    let (cluster, server) = setup("SELECT 1").await;
    s::app_sql(
        &cluster,
        "CREATE TABLE r12_copy_pipe (a int); GRANT ALL ON r12_copy_pipe TO PUBLIC",
    );
    let mut a = Raw::login(&server).await;
    let default = a.simple("SHOW work_mem").await;
    let mut all = parse("", "COPY r12_copy_pipe FROM STDIN");
    all.extend(bind("", &[]));
    all.extend(execute());
    all.extend(sync());
    all.extend(msg(b'd', b"1\n2\n"));
    all.extend(msg(b'c', &[]));
    all.extend(sync());
    all.extend(query("SET work_mem = '7MB'; PREPARE r12_pc AS SELECT 5"));
    a.send(&all).await;
    let copy = a.reader.until_ready().await.expect("the COPY's reply");
    let tags: String = copy.iter().map(|(t, _)| *t as char).collect();
    assert_eq!(tags, "12GC", "{copy:?}");
    let set = a.reader.until_ready().await.expect("the Query's reply");
    let tags: String = set.iter().map(|(t, _)| *t as char).collect();
    assert_eq!(tags, "CC", "{set:?}");
    let mut b = Raw::login(&server).await;
    assert_eq!(
        b.simple("SHOW work_mem").await,
        default,
        "another client on the same backend inherited a's SET"
    );
    assert_eq!(a.simple("SHOW work_mem").await, "7MB");
    assert_eq!(a.simple("EXECUTE r12_pc").await, "5");
    assert_eq!(
        s::app_sql(&cluster, "SELECT count(*) FROM r12_copy_pipe"),
        "2"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
