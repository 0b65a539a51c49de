//! Review of transaction-mode session safety, continued: locks and pins across failures,
//! the extended protocol, and what pgtide cannot read (see tests/review_session.rs).

use pgtide_suite as s;

#[path = "review/common.rs"]
mod common;
use common::*;

/// Pipelined: a Query `DEALLOCATE ALL` and, before its reply, a Parse of a named statement.
/// The DEALLOCATE ALL's CommandComplete forgets the later statement too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_pipelined_behind_deallocate_all_is_lost() {
    use s::raw::{self, msg, Raw};
    let (_cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    a.send(
        &[
            raw::query("DEALLOCATE ALL"),
            raw::parse("s1", "SELECT 41 + 1"),
            msg(b'S', &[]),
        ]
        .concat(),
    )
    .await;
    a.reader.until_ready().await.expect("deallocate all");
    let parsed = a.reader.until_ready().await.expect("parse");
    assert!(parsed.iter().all(|(t, _)| *t != b'E'));
    a.send(&[raw::bind("s1", &[]), raw::execute_sync()].concat())
        .await;
    let rows = a.reader.until_ready().await.expect("run s1");
    let err = rows
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, e)| raw::parse_error(e).code);
    assert_eq!(err, None, "as direct: s1 exists");
    assert_eq!(raw::first_column(&rows), ["42"]);
}

/// A reported setting changed inside a function is caught only when no statement of the
/// transaction named it: after `SET LOCAL TimeZone`, a function's session-level change of
/// TimeZone is taken as expected, the client is not pinned, and the next client inherits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_setting_changed_by_function_after_set_local_leaks() {
    let (_cluster, server) = setup(
        "CREATE FUNCTION tokyo() RETURNS text LANGUAGE sql
           AS $$SELECT set_config('timezone', 'Asia/Tokyo', false)$$;",
    )
    .await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let before = s::scalar(&a, "SHOW TimeZone").await;
    assert_ne!(before, "Asia/Tokyo");
    a.batch_execute("BEGIN; SET LOCAL TimeZone = 'UTC'; SELECT tokyo(); COMMIT")
        .await
        .expect("txn");
    assert_eq!(
        s::scalar(&a, "SHOW TimeZone").await,
        "Asia/Tokyo",
        "as direct"
    );
    drop(a);
    assert_eq!(
        other_sees(&server, "SHOW TimeZone").await,
        Some(before),
        "the next client inherits a's TimeZone"
    );
}

/// `SELECT ... INTO TABLE pg_temp.t`: the optional TABLE keyword hides the pg_temp qualifier
/// from the temp-table check, so the client is not pinned and the next client reads the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_into_table_pg_temp_leaks() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("SELECT 42 AS secret INTO TABLE pg_temp.leak")
        .await
        .expect("select into");
    assert_eq!(
        s::scalar(&a, "SELECT secret::text FROM pg_temp.leak").await,
        "42"
    );
    assert_ne!(
        other_sees(&server, "SELECT secret::text FROM pg_temp.leak")
            .await
            .as_deref(),
        Some("42"),
        "another client read a's temporary table"
    );
}

/// Item 6 beyond roles: replaying a client's settings on another backend is one swallowed
/// query; when one SET in it fails (here a text search configuration dropped since), the SETs
/// after it never run, the error is swallowed, the client's statement still runs, and pgtide
/// records the backend as synced. The client reads another schema's table; a direct
/// connection keeps its search_path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_settings_replay_runs_the_client_without_its_search_path() {
    let (cluster, server) = setup(
        "CREATE SCHEMA s2 AUTHORIZATION app;
         CREATE TABLE public.t (v text); INSERT INTO public.t VALUES ('public');
         CREATE TABLE s2.t (v text); INSERT INTO s2.t VALUES ('s2');
         GRANT SELECT ON public.t, s2.t TO PUBLIC;",
    )
    .await;
    let d = direct(&cluster).await;
    d.batch_execute("CREATE TEXT SEARCH CONFIGURATION public.myconf (COPY = english)")
        .await
        .expect("ts config");
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("SET default_text_search_config = 'public.myconf'")
        .await
        .expect("set ts");
    a.batch_execute("SET search_path = s2, public")
        .await
        .expect("set path");
    assert_eq!(s::scalar(&a, "SELECT v FROM t").await, "s2");
    // Another client takes the backend (pgtide resets a's settings there), and the text
    // search configuration goes away.
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    assert_eq!(s::scalar(&b, "SELECT v FROM t").await, "public");
    d.batch_execute("DROP TEXT SEARCH CONFIGURATION public.myconf")
        .await
        .expect("drop ts config");
    // Direct: the session keeps both settings; SELECT v FROM t reads s2.t.
    // pgtide replays the settings PostgreSQL checks against the catalog before the client's
    // statement and reports the failure (22023) instead of running without them.
    let got = answer(&a, "SELECT v FROM t").await;
    assert_ne!(
        got,
        Ok(Some("public".into())),
        "a must read its own schema's table (or get an error), never another's"
    );
    assert!(
        matches!(got.as_ref().map(|v| v.as_deref()), Ok(Some("s2")) | Err(_)),
        "{got:?}"
    );
}

/// pgtide reads client SQL with standard_conforming_strings on unless the *client* turned it
/// off; a role or database default (`ALTER ROLE app SET standard_conforming_strings = off`,
/// which the role may run on itself) turns it off on every backend pgtide opens, and then a
/// backslash hides a set_config from the lexer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_default_standard_conforming_strings_off_hides_statements() {
    let (_cluster, server) = setup("ALTER ROLE app SET standard_conforming_strings = off").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let default_path = s::scalar(&a, "SHOW search_path").await;
    // PostgreSQL (backslash escapes): 'x\' , ' is one string, then set_config runs.
    // pgtide (no escapes): the set_config( is inside the string '  ,set_config('.
    a.batch_execute(r"SELECT 'x\' , '  ,set_config('search_path','evil',false), ' '")
        .await
        .expect("hidden set_config");
    assert_eq!(s::scalar(&a, "SHOW search_path").await, "evil", "as direct");
    drop(a);
    assert_eq!(
        other_sees(&server, "SHOW search_path").await,
        Some(default_path),
        "another client runs with a's search_path"
    );
}

/// `pg_advisory_unlock_all()` is taken as run wherever it appears, even where it never runs:
/// `... WHERE false` unpins the client while its lock is still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_all_that_never_runs_unpins() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("SELECT pg_advisory_lock(78)")
        .await
        .expect("lock");
    a.batch_execute("SELECT pg_advisory_unlock_all() WHERE false")
        .await
        .expect("no-op unlock");
    let mine = "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' \
                AND pid = pg_backend_pid()";
    assert_ne!(
        other_sees(&server, mine).await.as_deref(),
        Some("1"),
        "another client's backend holds a's advisory lock"
    );
    assert_eq!(s::scalar(&a, mine).await, "1", "as direct");
}

/// A session advisory lock survives the rollback of the transaction that took it. When an
/// earlier part of the same query string (ended by COMMIT) unlocked all, settling that part
/// drops the pin the later lock took at send time, and the failed part's pin is never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_in_a_failed_transaction_after_a_committed_unlock_all_leaks() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let r = a
        .batch_execute(
            "SELECT pg_advisory_unlock_all(); COMMIT; SELECT pg_advisory_lock(79); SELECT 1/0",
        )
        .await;
    assert!(r.is_err(), "22012");
    assert_eq!(
        s::scalar(&a, MY_LOCKS).await,
        "1",
        "as direct: the lock survives"
    );
    assert_ne!(
        other_sees(&server, MY_LOCKS).await.as_deref(),
        Some("1"),
        "another client's backend holds a's advisory lock"
    );
}

/// The same with two pipelined queries (sent before the first is answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_lock_in_a_failed_query_after_unlock_all_leaks() {
    use s::raw::{self, Raw};
    let (_cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    a.send(
        &[
            raw::query("SELECT pg_advisory_unlock_all()"),
            raw::query("SELECT pg_advisory_lock(80); SELECT 1/0"),
        ]
        .concat(),
    )
    .await;
    a.reader.until_ready().await.expect("first");
    a.reader.until_ready().await.expect("second");
    assert_eq!(
        raw_answer(&mut a, MY_LOCKS).await,
        Ok(vec!["1".to_string()]),
        "as direct"
    );
    let mut b = Raw::login(&server).await;
    assert_ne!(
        raw_answer(&mut b, MY_LOCKS).await,
        Ok(vec!["1".to_string()]),
        "b's backend holds a's lock"
    );
}

/// Lockstep variant: ROLLBACK TO SAVEPOINT drops the pin record of a lock taken after the
/// savepoint, though the session lock survives it; the earlier unlock-all then unpins at COMMIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_rolled_back_to_savepoint_after_unlock_all_leaks() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    for sql in [
        "BEGIN",
        "SELECT pg_advisory_unlock_all()",
        "SAVEPOINT s",
        "SELECT pg_advisory_lock(81)",
        "ROLLBACK TO SAVEPOINT s",
        "COMMIT",
    ] {
        a.batch_execute(sql).await.expect(sql);
    }
    assert_eq!(
        s::scalar(&a, MY_LOCKS).await,
        "1",
        "as direct: the lock survives"
    );
    assert_ne!(
        other_sees(&server, MY_LOCKS).await.as_deref(),
        Some("1"),
        "another client's backend holds a's advisory lock"
    );
}

/// A FunctionCall message (the fast-path protocol, libpq's PQfn) is forwarded unread: a
/// fast-path `set_config('search_path', 'evil', false)` changes the pooled backend for every
/// later client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_function_call_is_not_observed() {
    use bytes::BufMut;
    use s::raw::{self, Raw};
    let (_cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    let default_path = a.simple("SHOW search_path").await;
    let oid: u32 = a
        .simple("SELECT 'pg_catalog.set_config(text,text,boolean)'::regprocedure::oid")
        .await
        .parse()
        .expect("oid");
    let mut body = Vec::new();
    body.put_u32(oid);
    body.put_i16(1); // one format code: text for all arguments
    body.put_i16(0);
    body.put_i16(3);
    for arg in ["search_path", "evil", "f"] {
        body.put_i32(arg.len() as i32);
        body.extend_from_slice(arg.as_bytes());
    }
    body.put_i16(0); // result as text
    a.send(&raw::msg(b'F', &body)).await;
    let reply = a.reader.until_ready().await.expect("function call reply");
    assert!(
        reply.iter().any(|(t, _)| *t == b'V'),
        "FunctionCallResponse"
    );
    assert_eq!(a.simple("SHOW search_path").await, "evil", "as direct");
    drop(a);
    let mut b = Raw::login(&server).await;
    assert_eq!(
        raw_answer(&mut b, "SHOW search_path").await,
        Ok(vec![default_path]),
        "another client runs with a's search_path"
    );
}

/// The DO-block check looks for `EXECUTE 'SET ...'` literally; dynamic SQL built any other way
/// (here concatenated) changes search_path unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_block_dynamic_set_is_not_seen() {
    let (_cluster, server) = setup("SELECT 1").await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let default_path = s::scalar(&a, "SHOW search_path").await;
    a.batch_execute("DO $$BEGIN EXECUTE 'SE' || 'T search_path = evil'; END$$")
        .await
        .expect("do");
    assert_eq!(s::scalar(&a, "SHOW search_path").await, "evil", "as direct");
    drop(a);
    assert_eq!(
        other_sees(&server, "SHOW search_path").await,
        Some(default_path),
        "another client runs with a's search_path"
    );
}

/// F8's variant for the extended protocol: a Parse whose text is not UTF-8 carries no effects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_parse_is_not_observed() {
    use bytes::BufMut;
    use s::raw::{self, msg, Raw};
    let (_cluster, server) = setup("SELECT 1").await;
    let mut a = Raw::login(&server).await;
    a.simple_rows("SET client_encoding = 'LATIN1'").await;
    let mut body = vec![0u8]; // unnamed statement
    body.extend_from_slice(b"SELECT set_config('search_path', 'evil', false) -- caf\xe9");
    body.push(0);
    body.put_i16(0);
    a.send(&[msg(b'P', &body), raw::bind("", &[]), raw::execute_sync()].concat())
        .await;
    let reply = a.reader.until_ready().await.expect("reply");
    assert!(reply.iter().all(|(t, _)| *t != b'E'), "PostgreSQL ran it");
    assert_eq!(a.simple("SHOW search_path").await, "evil", "as direct");
    drop(a);
    let mut b = Raw::login(&server).await;
    let seen = raw_answer(&mut b, "SHOW search_path").await;
    assert_ne!(
        seen,
        Ok(vec!["evil".to_string()]),
        "another client runs with a's search_path"
    );
}
