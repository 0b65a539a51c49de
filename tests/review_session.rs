//! Review of transaction-mode session safety (issue 11 items 4–7): holes found by attacking the
//! reworked tracking. Each test shares one pooled backend (pool of 1, short checkout timeout so
//! a pinned backend shows as a checkout error, never a leak) between a client that changes state
//! and a client that must not inherit it, or checks that a client keeps what a direct
//! connection keeps. Each failed on main (bb5eeaa): a hole found
//! by an adversarial review, fixed since; the review notes are summarised in the issue.

use pgtide_suite as s;

#[path = "review/common.rs"]
mod common;
use common::*;

/// A DO block's LISTEN is not seen: the backend goes back to the pool listening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_inside_do_block_leaks() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("DO $$BEGIN LISTEN review_ch; END$$")
        .await
        .expect("do listen");
    let channels = "SELECT string_agg(c, ',') FROM pg_listening_channels() c";
    assert_ne!(
        other_sees(&server, channels).await.as_deref(),
        Some("review_ch"),
        "another client inherited a's LISTEN"
    );
}

/// A DO block's dynamic DEALLOCATE ALL empties the backend behind pgtide's back: another
/// client's protocol-prepared statement then fails with 26000 where a direct connection runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_inside_do_block_breaks_other_clients() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let stmt = a.prepare("SELECT $1::int + 1").await.expect("prepare");
    assert_eq!(
        a.query_one(&stmt, &[&1i32])
            .await
            .expect("run")
            .get::<_, i32>(0),
        2
    );
    b.batch_execute("DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$")
        .await
        .expect("do deallocate");
    // The DO block pinned b to the shared backend; the backend is reset when b leaves.
    drop(b);
    let again = retry_checkout(|| a.query_one(&stmt, &[&2i32])).await;
    assert_eq!(
        again.map(|r| r.get::<_, i32>(0)).map_err(|e| code(&e)),
        Ok(3),
        "a's own statement"
    );
}

/// Worse: a DO block replaces another client's statement (its name is in
/// pg_prepared_statements) with one of its own; the victim's next Bind runs the attacker's SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_block_replaces_another_clients_statement() {
    let (_cluster, server) = setup("SELECT 1").await;
    let victim = s::connect(&s::app_url(&server)).await.expect("victim");
    let attacker = s::connect(&s::app_url(&server)).await.expect("attacker");
    let stmt = victim.prepare("SELECT $1::int + 1").await.expect("prepare");
    assert_eq!(
        victim
            .query_one(&stmt, &[&1i32])
            .await
            .expect("run")
            .get::<_, i32>(0),
        2
    );
    attacker
        .batch_execute(
            "DO $$DECLARE n text; BEGIN
               FOR n IN SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgtide%' LOOP
                 EXECUTE format('DEALLOCATE %I', n);
                 EXECUTE format('PREPARE %I(int) AS SELECT 666 + 0 * $1', n);
               END LOOP; END$$",
        )
        .await
        .expect("do replace");
    // The DO block pinned the attacker to the shared backend; it is reset when they leave.
    drop(attacker);
    let got = retry_checkout(|| victim.query_one(&stmt, &[&2i32])).await;
    assert_eq!(
        got.map(|r| r.get::<_, i32>(0)).map_err(|e| code(&e)),
        Ok(3),
        "the victim ran the attacker's statement"
    );
}

/// `SET search_path = pg_temp, public; CREATE TABLE t ...` creates a temporary table (the
/// first schema in the path is the session's temporary schema) without the TEMP keyword.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_table_through_search_path_leaks() {
    let (cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("SET search_path = pg_temp, public")
        .await
        .expect("set");
    a.batch_execute("CREATE TABLE leak AS SELECT 42 AS secret")
        .await
        .expect("create");
    let d = direct(&cluster).await;
    d.batch_execute("SET search_path = pg_temp, public; CREATE TABLE leak AS SELECT 42 AS secret")
        .await
        .expect("direct");
    assert_eq!(
        s::scalar(
            &d,
            "SELECT relpersistence::text FROM pg_class WHERE relname = 'leak'"
        )
        .await,
        "t",
        "PostgreSQL made it temporary"
    );
    assert_ne!(
        other_sees(&server, "SELECT secret::text FROM pg_temp.leak")
            .await
            .as_deref(),
        Some("42"),
        "another client read a's temporary table"
    );
}

/// `CREATE TABLE execute AS EXECUTE name`: the statement-name rewrite looks only at the first
/// `execute` token, here the table name, so the EXECUTE goes through unrewritten and reaches a
/// pgtide statement of another client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_named_execute_reaches_another_clients_statement() {
    let (_cluster, server) = setup("SELECT 1").await;
    let victim = s::connect(&s::app_url(&server)).await.expect("victim");
    let attacker = s::connect(&s::app_url(&server)).await.expect("attacker");
    let stmt = victim
        .prepare("SELECT 'victim-only'::text AS v")
        .await
        .expect("prepare");
    victim.query_one(&stmt, &[]).await.expect("run");
    let name = s::scalar(
        &attacker,
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgtide%' LIMIT 1",
    )
    .await;
    let reached = answer(
        &attacker,
        &format!("CREATE TEMP TABLE execute AS EXECUTE {name}"),
    )
    .await;
    assert_eq!(
        reached,
        Err("26000".into()),
        "promised: another client's names fail"
    );
}

/// The same blind spot costs a client its own statement: PostgreSQL runs
/// `CREATE TABLE execute AS EXECUTE p`, pgtide sends the client's name the backend lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_named_execute_loses_own_statement() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("PREPARE p AS SELECT 7 AS v")
        .await
        .expect("prepare");
    let r = answer(&a, "CREATE TABLE execute AS EXECUTE p").await;
    assert_eq!(r, Ok(None), "as direct: the table is created");
}

/// One statement that locks (textually first) and unlocks all (run first): pgtide settles the
/// pin then the unpin in text order and lets the backend go holding the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_all_run_before_a_lock_in_one_statement_leaks_the_lock() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute(
        "SELECT pg_advisory_lock(77) FROM (SELECT pg_advisory_unlock_all() OFFSET 0) s",
    )
    .await
    .expect("lock");
    let mine = "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' \
                AND pid = pg_backend_pid()";
    assert_ne!(
        other_sees(&server, mine).await.as_deref(),
        Some("1"),
        "another client's backend holds a's advisory lock"
    );
}

/// A simple Query that is not valid UTF-8 (the client set client_encoding LATIN1) is forwarded
/// without being read: its set_config changes search_path for every later client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_query_is_not_observed() {
    use s::raw::{self, Raw};
    let (_cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    a.simple_rows("SET client_encoding = 'LATIN1'").await;
    let mut body = b"SELECT set_config('search_path', 'evil', false) -- caf\xe9".to_vec();
    body.push(0);
    a.send(&raw::msg(b'Q', &body)).await;
    let reply = a.reader.until_ready().await.expect("reply");
    assert!(reply.iter().all(|(t, _)| *t != b'E'), "PostgreSQL ran it");
    assert_eq!(a.simple("SHOW search_path").await, "evil", "as direct");
    drop(a);
    // Raw clients share their own pool (the trust user's): the next one lands on a's backend.
    let mut b = Raw::login(&server).await;
    b.send(&raw::query("SHOW search_path")).await;
    let reply = b.reader.until_ready().await.expect("reply");
    assert_ne!(
        raw::first_column(&reply),
        ["evil"],
        "another client runs with a's search_path"
    );
}

/// A Bind of `pg_advisory_unlock_all()` that is never executed: pgtide takes the unlock as
/// done at Bind and lets the backend go while it still holds the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_but_unexecuted_unlock_all_unpins() {
    use s::raw::{self, msg, Raw};
    let (_cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    a.simple_rows("SELECT pg_advisory_lock(5)").await;
    a.send(
        &[
            raw::parse("", "SELECT pg_advisory_unlock_all()"),
            raw::bind("", &[]),
            msg(b'S', &[]),
        ]
        .concat(),
    )
    .await;
    let reply = a.reader.until_ready().await.expect("bound");
    assert!(reply.iter().all(|(t, _)| *t != b'E'));
    let mine = "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' \
                AND pid = pg_backend_pid()";
    let mut b = Raw::login(&server).await;
    let seen = raw_answer(&mut b, mine).await;
    assert_ne!(
        seen,
        Ok(vec!["1".to_string()]),
        "b's backend holds a's lock"
    );
    assert_eq!(
        raw_answer(&mut a, mine).await,
        Ok(vec!["1".to_string()]),
        "as direct"
    );
}

/// A SET that is bound but never executed is carried as if it ran: the client finds it on
/// its next backend (direct: never set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_but_unexecuted_set_is_carried() {
    use s::raw::{self, msg, Raw};
    let (_cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    let default_path = a.simple("SHOW search_path").await;
    a.send(
        &[
            raw::parse("", "SET search_path = evil"),
            raw::bind("", &[]),
            msg(b'S', &[]),
        ]
        .concat(),
    )
    .await;
    a.reader.until_ready().await.expect("bound");
    let mut b = Raw::login(&server).await;
    b.simple_rows("SELECT 1").await;
    assert_eq!(
        a.simple("SHOW search_path").await,
        default_path,
        "as direct"
    );
}

/// `DEALLOCATE ALL; PREPARE p AS ...` in one query: DEALLOCATE ALL's CommandComplete clears
/// the pending PREPARE too, so p (which PostgreSQL has) is lost to the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_after_deallocate_all_in_one_query_is_lost() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("PREPARE old AS SELECT 0")
        .await
        .expect("old");
    a.batch_execute("DEALLOCATE ALL; PREPARE p AS SELECT 7")
        .await
        .expect("reset and prepare");
    assert_eq!(
        answer(&a, "EXECUTE p").await,
        Ok(Some("7".into())),
        "as direct"
    );
}
