//! Review 12 (session loop in phases, per-batch SQL PREPARE bookkeeping, ReplicaRun, phase
//! signal): odd drivers against the restructured session loop. A direct PostgreSQL connection
//! is the oracle where the answer is PostgreSQL's.

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use s::raw::{
    add_trust_user, bind, describe, execute, first_column, msg, parse, parse_error, query, sync,
    Raw,
};

#[path = "review/common.rs"]
mod common;
use common::{raw_answer, setup};

/// A stale plan's transparent re-run sends the client's batch (and its Sync) a second time
/// while the client sees one ReadyForQuery. The per-batch SQL PREPARE bookkeeping must count
/// that as one client batch: a PREPARE that fails after the re-run is gone, so `DEALLOCATE` of
/// it fails with 26000 as on PostgreSQL (as it does before any re-run), and a PREPARE that
/// succeeds is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepare_after_a_stale_plan_rerun() {
    let (cluster, server) = setup("SELECT 1").await;
    let mut raw = Raw::login(&server).await;
    // Control: before any re-run, pgtide answers as PostgreSQL does.
    assert_eq!(
        raw_answer(&mut raw, "PREPARE bad0 AS SELECT no_such_column").await,
        Err("42703".to_string())
    );
    assert_eq!(
        raw_answer(&mut raw, "DEALLOCATE bad0").await,
        Err("26000".to_string())
    );
    stale_rerun(&cluster, &mut raw, "r12_stale").await;
    assert_eq!(
        raw_answer(&mut raw, "PREPARE bad AS SELECT no_such_column").await,
        Err("42703".to_string())
    );
    // PostgreSQL never had `bad`: DEALLOCATE fails with 26000 naming it.
    assert_eq!(
        raw_answer(&mut raw, "DEALLOCATE bad").await,
        Err("26000".to_string()),
        "DEALLOCATE of a statement whose PREPARE failed"
    );
    assert_eq!(
        raw_answer(&mut raw, "PREPARE good AS SELECT 42").await,
        Ok(vec![])
    );
    assert_eq!(
        raw_answer(&mut raw, "EXECUTE good").await,
        Ok(vec!["42".to_string()])
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Makes `s1` stale out of band and runs it once described, so pgtide re-runs the batch
/// transparently: the re-run's row has the new column.
async fn stale_rerun(cluster: &pgtide_devcluster::Cluster, raw: &mut Raw, table: &str) {
    s::app_sql(
        cluster,
        &format!(
            "CREATE TABLE {table} (a int); INSERT INTO {table} VALUES (1); \
             GRANT ALL ON {table} TO PUBLIC"
        ),
    );
    let mut prepare = parse("s1", &format!("SELECT * FROM {table}"));
    prepare.extend(describe(b'S', "s1"));
    prepare.extend(sync());
    assert_eq!(raw.run(prepare).await.0, "1tT");
    let mut described = bind("s1", &[]);
    described.extend(describe(b'P', ""));
    described.extend(execute());
    described.extend(sync());
    assert_eq!(raw.run(described.clone()).await.0, "2TDC");
    // Out of band: pgtide's own epochs do not see it, PostgreSQL's cached plan goes stale.
    s::app_sql(
        cluster,
        &format!("ALTER TABLE {table} ADD COLUMN b int DEFAULT 7"),
    );
    let (tags, reply) = raw.run(described).await;
    assert_eq!(tags, "2TDC", "re-run transparently: {reply:?}");
    let (_, row) = reply.iter().find(|(t, _)| *t == b'D').expect("row");
    assert_eq!(
        &row[..2],
        &2i16.to_be_bytes(),
        "re-run: the row has the new column"
    );
}

/// A stale statement that is not the first of its batch: what came before it already
/// answered the client (`s2`'s BindComplete, row and CommandComplete), so a re-run would send
/// that again. pgtide passes PostgreSQL's 0A000 on instead, as a direct connection answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_statement_after_answered_ones_is_not_rerun() {
    let (cluster, server) = setup("SELECT 1").await;
    let direct = std::net::SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()));
    let mut answers = Vec::new();
    for (via, addr, user) in [
        ("direct", direct, "trustuser"),
        ("pgtide", server.local_addr, s::raw::RAW_USER),
    ] {
        let table = format!("r12_stale_mid_{via}");
        s::app_sql(
            &cluster,
            &format!(
                "CREATE TABLE {table} (a int); INSERT INTO {table} VALUES (1); \
                 GRANT ALL ON {table} TO PUBLIC"
            ),
        );
        let mut raw = Raw::login_to(addr, user, s::APP_DB).await;
        let mut prepare = parse("s1", &format!("SELECT * FROM {table}"));
        prepare.extend(parse("s2", "SELECT 42"));
        prepare.extend(sync());
        assert_eq!(raw.run(prepare).await.0, "11", "{via}");
        let mut s1 = bind("s1", &[]);
        s1.extend(describe(b'P', ""));
        s1.extend(execute());
        s1.extend(sync());
        assert_eq!(raw.run(s1.clone()).await.0, "2TDC", "{via}");
        s::app_sql(
            &cluster,
            &format!("ALTER TABLE {table} ADD COLUMN b int DEFAULT 7"),
        );
        let mut batch = bind("s2", &[]);
        batch.extend(execute());
        batch.extend(s1);
        let (tags, reply) = raw.run(batch).await;
        let codes: Vec<String> = reply
            .iter()
            .filter(|(t, _)| *t == b'E')
            .map(|(_, e)| parse_error(e).code)
            .collect();
        answers.push((tags, codes));
    }
    assert_eq!(answers[0], ("2DCE".to_string(), vec!["0A000".to_string()]));
    assert_eq!(answers[1], answers[0], "through pgtide vs PostgreSQL");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// The same in the client's session state: the re-run's Sync is not a second client batch,
/// so a SET after a re-run is settled at its own ReadyForQuery, the backend goes back with a
/// record that has it, and the next client does not inherit it. PostgreSQL: each client sees
/// its own work_mem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_after_a_stale_plan_rerun_stays_with_its_client() {
    let (cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    let default = a.simple("SHOW work_mem").await;
    stale_rerun(&cluster, &mut a, "r12_stale_set").await;
    a.simple_rows("SET work_mem = '7MB'").await;
    // The same user (one pool of one backend): b gets a's backend.
    let mut b = Raw::login(&server).await;
    assert_eq!(
        b.simple("SHOW work_mem").await,
        default,
        "another client on the same backend inherited a's SET"
    );
    assert_eq!(a.simple("SHOW work_mem").await, "7MB");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// A client that sends its last statement and Terminate in one write without waiting for the
/// reply (libpq's PQsendQuery then PQfinish): PostgreSQL runs the statement before it reads the
/// Terminate, so the row is there. pgtide used to stop at the Terminate with the INSERT still
/// queued for the backend, cancel and discard the backend: the row never arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_before_terminate_runs() {
    let (cluster, server) = setup("SELECT 1").await;
    s::app_sql(
        &cluster,
        "CREATE TABLE r12_last (a int); GRANT ALL ON r12_last TO PUBLIC",
    );
    let mut bytes = query("INSERT INTO r12_last VALUES (1)");
    bytes.extend(msg(b'X', &[]));
    let check = s::connect(&s::app_url(&server)).await.expect("check");
    let rows_become = |n: &'static str| {
        let check = &check;
        async move {
            s::eventually(Duration::from_secs(5), || async move {
                s::scalar(check, "SELECT count(*) FROM r12_last").await == n
            })
            .await
        }
    };
    // The oracle: PostgreSQL itself runs it.
    let primary = std::net::SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()));
    let mut direct = Raw::login_to(primary, "trustuser", s::APP_DB).await;
    direct.send(&bytes).await;
    while direct.reader.next().await.is_some() {}
    assert!(rows_become("1").await, "PostgreSQL ran the INSERT");
    let mut raw = Raw::login(&server).await;
    raw.send(&bytes).await;
    // Whatever pgtide answers, it closes.
    while raw.reader.next().await.is_some() {}
    assert!(
        rows_become("2").await,
        "the INSERT sent before Terminate never ran through pgtide"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Sends `bytes` to `addr` as `user`, closes the sending side unless the bytes end with a
/// Terminate, and reads until the server closes.
async fn send_and_leave(addr: std::net::SocketAddr, user: &str, bytes: &[u8], terminate: bool) {
    use tokio::io::AsyncWriteExt;
    let mut raw = Raw::login_to(addr, user, s::APP_DB).await;
    raw.send(bytes).await;
    if !terminate {
        let _ = raw.w.shutdown().await;
    }
    while raw.reader.next().await.is_some() {}
}

/// Clients that leave right behind their last messages: an autocommit INSERT then an
/// extended-protocol INSERT without Sync, then Terminate (PostgreSQL commits the first and
/// rolls the unsynced one back), and an INSERT then the socket closed without Terminate
/// (PostgreSQL commits it). Same rows through pgtide as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_sent_before_the_client_leaves_runs_as_on_postgresql() {
    let (cluster, server) = setup("SELECT 1").await;
    let direct = std::net::SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()));
    let check = s::connect(&s::app_url(&server)).await.expect("check");
    for (case, terminate) in [("unsynced_tail", true), ("eof", false)] {
        let mut rows = Vec::new();
        for (via, addr, user) in [
            ("direct", direct, "trustuser"),
            ("pgtide", server.local_addr, s::raw::RAW_USER),
        ] {
            let table = format!("r12_leave_{case}_{via}");
            s::app_sql(
                &cluster,
                &format!("CREATE TABLE {table} (a int); GRANT ALL ON {table} TO PUBLIC"),
            );
            // Slow enough that a cancel sent on the client's leaving would still catch it.
            let mut bytes = query(&format!("INSERT INTO {table} SELECT 1 FROM pg_sleep(0.3)"));
            if terminate {
                bytes.extend(parse("", &format!("INSERT INTO {table} VALUES (2)")));
                bytes.extend(bind("", &[]));
                bytes.extend(execute());
                bytes.extend(msg(b'X', &[]));
            }
            send_and_leave(addr, user, &bytes, terminate).await;
            let sql = format!("SELECT coalesce(string_agg(a::text, ','), '') FROM {table}");
            let want = rows.first().cloned();
            let settled = s::eventually(Duration::from_secs(5), || {
                let (sql, want, check) = (&sql, &want, &check);
                async move {
                    let got = s::scalar(check, sql).await;
                    want.as_ref().is_none_or(|w| *w == got)
                }
            })
            .await;
            rows.push(s::scalar(&check, &sql).await);
            assert!(settled, "{case} via {via}: {rows:?}");
        }
        assert_eq!(
            rows[0], "1",
            "{case}: PostgreSQL commits the synced INSERT only"
        );
        assert_eq!(rows[1], rows[0], "{case}: through pgtide vs PostgreSQL");
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

/// `PREPARE a1 ...; DEALLOCATE ALL` in one query: PostgreSQL drops a1 with everything else.
/// pgtide noted what DEALLOCATE ALL drops before it rewrote the query (so this query's own
/// PREPAREs were not in the list) and kept a1 with its first body: the client's next
/// `PREPARE a1 AS SELECT 2` went through as if a1 still existed, and once the backend was
/// emptied (another client's DISCARD ALL) pgtide prepared a1 again from the old body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_then_deallocate_all_in_one_query() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("PREPARE a1 AS SELECT 1; DEALLOCATE ALL")
        .await
        .expect("prepare + deallocate all");
    let err = a.batch_execute("EXECUTE a1").await.expect_err("a1 is gone");
    let message = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    a.batch_execute("PREPARE a1 AS SELECT 2")
        .await
        .expect("a fresh a1");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    b.batch_execute("DISCARD ALL").await.expect("discard");
    let after = s::scalar(&a, "EXECUTE a1").await;
    assert_eq!(
        (after.as_str(), message.contains("\"a1\"")),
        ("2", true),
        "EXECUTE a1 after re-preparing it answers 2; the error after DEALLOCATE ALL names a1: {message}"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Regression guard for the Intake states: a lease that fails inside an extended batch skips
/// the client's messages up to its Sync and answers it; a simple Query pipelined behind that
/// Sync is handled on its own (its own 53300 and ReadyForQuery), a Terminate while skipping
/// closes the session, and once the backend is free the client goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_failure_mid_extended_batch_then_pipelined_query() {
    let (_cluster, server) = setup("SELECT 1").await;
    let mut holder = Raw::login(&server).await;
    holder.simple_rows("BEGIN").await;
    assert_eq!(holder.simple("SELECT 1").await, "1");

    let mut b = Raw::login(&server).await;
    let mut batch = parse("", "SELECT 1");
    batch.extend(bind("", &[]));
    batch.extend(execute());
    batch.extend(sync());
    batch.extend(query("SELECT 2"));
    b.send(&batch).await;
    let codes = |reply: &[(u8, bytes::Bytes)]| -> Vec<String> {
        reply
            .iter()
            .map(|(t, body)| match t {
                b'E' => format!("E {}", parse_error(body).code),
                t => (*t as char).to_string(),
            })
            .collect()
    };
    let first = b
        .reader
        .until_ready()
        .await
        .expect("extended batch answered");
    assert_eq!(codes(&first), ["E 53300"], "{first:?}");
    let second = b.reader.until_ready().await.expect("query answered");
    assert_eq!(codes(&second), ["E 53300"], "{second:?}");

    let mut c = Raw::login(&server).await;
    let mut batch = parse("", "SELECT 1");
    batch.extend(bind("", &[]));
    batch.extend(msg(b'X', &[]));
    c.send(&batch).await;
    let err = c.reader.error().await.expect("the lease's error");
    assert_eq!(err.code, "53300", "{err:?}");
    c.reader.closed().await;

    holder.simple_rows("COMMIT").await;
    assert_eq!(b.simple("SELECT 3").await, "3");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Regression guard for the per-session phase signal: on a drain an idle client is told at once
/// (57P01); a client inside a transaction keeps its backend, and its pipelined statements and
/// COMMIT run (as PostgreSQL would run them) before it is told and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_closes_idle_clients_at_once_and_others_after_their_transaction() {
    let (cluster, server) = setup("SELECT 1").await;
    s::app_sql(
        &cluster,
        "CREATE TABLE r12_drain (a int); GRANT ALL ON r12_drain TO PUBLIC",
    );
    let mut busy = Raw::login(&server).await;
    busy.simple_rows("BEGIN").await;
    busy.simple_rows("INSERT INTO r12_drain VALUES (1)").await;
    // Another user (its own pool): idle, no backend.
    let (idle, idle_conn) = s::connect_with_handle(&s::app_url(&server))
        .await
        .expect("idle client");
    s::scalar(&idle, "SELECT 1").await;

    let drain = tokio::spawn(server.shutdown(s::Shutdown::Drain));
    let end = s::within("idle client closed", Duration::from_secs(10), idle_conn)
        .await
        .expect("connection task");
    let err = end.expect_err("the idle client is told pgtide is shutting down");
    assert_eq!(err.code().map(|c| c.code()), Some("57P01"), "{err}");

    let mut rest = query("INSERT INTO r12_drain VALUES (2)");
    rest.extend(query("COMMIT"));
    busy.send(&rest).await;
    let insert = busy.reader.until_ready().await.expect("insert answered");
    assert!(insert.iter().all(|(t, _)| *t != b'E'), "{insert:?}");
    let commit = busy.reader.until_ready().await.expect("commit answered");
    assert!(commit.iter().all(|(t, _)| *t != b'E'), "{commit:?}");
    let err = busy
        .reader
        .error()
        .await
        .expect("told after its transaction");
    assert_eq!(err.code, "57P01", "{err:?}");
    busy.reader.closed().await;
    s::within("drain", Duration::from_secs(10), drain)
        .await
        .expect("drain task");
    let rows = s::app_sql(&cluster, "SELECT count(*) FROM r12_drain");
    assert_eq!(rows.trim(), "2", "both inserts committed");
}

/// Regression guard: cache hits pipelined with forwarded queries and an error keep their order.
/// The first Query is a hit (no backend yet: it is answered from memory, a stale value written
/// behind pgtide's back shows it); the forwarded ones follow it in the order sent, each with its
/// own ReadyForQuery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_pipelined_with_forwarded_queries_keep_their_order() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    s::app_sql(
        &cluster,
        "CREATE TABLE r12_items (id int PRIMARY KEY, name text); \
             INSERT INTO r12_items VALUES (1, 'old'); GRANT ALL ON r12_items TO PUBLIC",
    );
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    add_trust_user(&mut config);
    config.cache.rules = vec![pgtide_config::CacheRule {
        query: None,
        tables: Some(vec!["r12_items".to_string()]),
        ttl: Some(Duration::from_secs(600)),
    }];
    let server = s::start(config).await;
    s::cache_ready(&server).await;
    let cached = "SELECT name FROM r12_items WHERE id = 1";
    let mut raw = Raw::login(&server).await;
    assert_eq!(raw.simple(cached).await, "old");
    // Behind pgtide's back: the cache keeps 'old' until its TTL.
    s::app_sql(&cluster, "UPDATE r12_items SET name = 'new'");
    assert_eq!(raw.simple(cached).await, "old", "a hit");

    let mut batch = query(cached);
    batch.extend(query("SELECT 'fwd'"));
    batch.extend(query(cached));
    batch.extend(query("SELECT 1 / 0"));
    batch.extend(query(cached));
    batch.extend(query("SELECT 'last'"));
    raw.send(&batch).await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        let reply = raw.reader.until_ready().await.expect("reply");
        answers.push(match reply.iter().find(|(t, _)| *t == b'E') {
            Some((_, e)) => format!("E {}", parse_error(e).code),
            None => first_column(&reply).join(","),
        });
    }
    assert_eq!(answers[0], "old", "{answers:?}");
    assert_eq!(answers[1], "fwd", "{answers:?}");
    assert!(["old", "new"].contains(&answers[2].as_str()), "{answers:?}");
    assert_eq!(answers[3], "E 22012", "{answers:?}");
    assert!(["old", "new"].contains(&answers[4].as_str()), "{answers:?}");
    assert_eq!(answers[5], "last", "{answers:?}");
    assert_eq!(raw.simple("SELECT 'after'").await, "after");
    server.shutdown(s::Shutdown::Immediate).await;
}
