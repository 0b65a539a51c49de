//! Issue 11 items 4–7: a backend goes to another client only in a state pgtide can vouch for.
//! Each test shares one pooled backend (pool size 1) between a client that changes its state in
//! a way the old lexer-only tracking missed and a second client that must not inherit it; the
//! first client itself must keep seeing what a direct connection would show. Every test here
//! failed on main before the fix (noted per test).

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use tokio_postgres::{Client, SimpleQueryMessage};

const SCHEMA: &str = "CREATE ROLE reader NOLOGIN;
    GRANT reader TO app;
    CREATE TABLE secrets (v text);
    INSERT INTO secrets VALUES ('only readers');
    GRANT SELECT ON secrets TO reader;";

async fn setup() -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = s::cluster_with_schema(SCHEMA).await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    config.pool.checkout_timeout = Duration::from_millis(300);
    let server = s::start(config).await;
    (cluster, server)
}

/// The first column of the first row, or the SQLSTATE of the error.
async fn answer(client: &Client, sql: &str) -> Result<Option<String>, String> {
    let messages = s::within(sql, Duration::from_secs(10), client.simple_query(sql)).await;
    match messages {
        Ok(messages) => Ok(messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })),
        Err(e) => Err(e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| e.to_string())),
    }
}

/// What a second client on the shared backend sees: an error (no backend within the checkout
/// timeout, because the first client is pinned to it) is fine; a leaked value is not.
async fn other_sees(server: &s::ServerHandle, sql: &str) -> Option<String> {
    let other = s::connect(&s::app_url(server)).await.expect("other client");
    answer(&other, sql).await.ok().flatten()
}

/// Fails on main: pgtide took the rolled-back UNLISTEN at its word and returned a listening
/// backend to the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_unlisten_keeps_the_client_pinned() {
    let (_cluster, server) = setup().await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    for sql in ["LISTEN ch", "BEGIN", "UNLISTEN *", "ROLLBACK"] {
        a.batch_execute(sql).await.expect(sql);
    }
    let channels = "SELECT string_agg(c, ',') FROM pg_listening_channels() c";
    assert_ne!(other_sees(&server, channels).await.as_deref(), Some("ch"));
    assert_eq!(
        answer(&a, channels).await,
        Ok(Some("ch".into())),
        "as direct"
    );
    a.batch_execute("UNLISTEN *").await.expect("unlisten");
    assert_eq!(other_sees(&server, channels).await.as_deref(), Some("NULL"));
}

/// Fails on main: the DEALLOCATE ALL that PostgreSQL refused (the transaction had failed)
/// emptied pgtide's record of the backend's statements; the next Parse of a statement the
/// backend still had failed with 42P05.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deallocate_all_leaves_the_statements_known() {
    let (_cluster, server) = setup().await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let stmt = a.prepare("SELECT $1::int + 1").await.expect("prepare");
    let row = a.query_one(&stmt, &[&1i32]).await.expect("first run");
    assert_eq!(row.get::<_, i32>(0), 2);
    b.batch_execute("BEGIN").await.expect("begin");
    assert!(b.batch_execute("SELECT 1/0").await.is_err());
    assert!(b.batch_execute("DEALLOCATE ALL").await.is_err(), "25P02");
    b.batch_execute("ROLLBACK").await.expect("rollback");
    for i in 0..3 {
        let row = a.query_one(&stmt, &[&i]).await.expect("a's statement");
        assert_eq!(row.get::<_, i32>(0), i + 1);
        let fresh = b.prepare("SELECT $1::int + 1").await.expect("same text, b");
        b.query_one(&fresh, &[&i]).await.expect("b's statement");
    }
    // A DEALLOCATE ALL that ran empties the record: statements are prepared again.
    b.batch_execute("DEALLOCATE ALL")
        .await
        .expect("deallocate all");
    let row = a.query_one(&stmt, &[&5i32]).await.expect("re-prepared");
    assert_eq!(row.get::<_, i32>(0), 6);
}

/// Fails on main: a Unicode-escaped set_config changed search_path on the pooled backend for
/// every later client; an advisory lock taken the same way stayed on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_function_names_are_seen() {
    let (_cluster, server) = setup().await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let default_path = s::scalar(&a, "SHOW search_path").await;
    a.batch_execute(r#"SELECT U&"set\005Fconfig"('search_path', 'evil', false)"#)
        .await
        .expect("escaped set_config");
    assert_eq!(
        other_sees(&server, "SHOW search_path").await.as_deref(),
        Some(default_path.as_str())
    );
    assert_eq!(s::scalar(&a, "SHOW search_path").await, "evil", "as direct");

    a.batch_execute(r#"SELECT U&"pg_\0061dvisory_lock"(7)"#)
        .await
        .expect("escaped lock");
    let locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid()";
    assert_ne!(other_sees(&server, locks).await.as_deref(), Some("1"));
    assert_eq!(s::scalar(&a, locks).await, "1", "a still holds its lock");
}

/// Fails on main: `SELECT ... INTO pg_temp.t` and EXPLAIN ANALYZE of CREATE TEMP TABLE did
/// not pin, and the next client read the first one's temporary table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_tables_made_indirectly_pin() {
    for create in [
        "SELECT 42 AS secret INTO pg_temp.leak",
        "EXPLAIN ANALYZE CREATE TEMP TABLE leak AS SELECT 42 AS secret",
    ] {
        let (_cluster, server) = setup().await;
        let a = s::connect(&s::app_url(&server)).await.expect("a");
        a.batch_execute(create).await.expect(create);
        let read = "SELECT secret FROM pg_temp.leak";
        assert_eq!(other_sees(&server, read).await, None, "{create}");
        assert_eq!(s::scalar(&a, read).await, "42", "{create}: as direct");
    }
}

/// Fails on main: with standard_conforming_strings off, `'a\''` hides a set_config from a
/// lexer that reads backslashes as ordinary characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backslash_strings_pin_the_client() {
    let (_cluster, server) = setup().await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let default_path = s::scalar(&a, "SHOW search_path").await;
    a.batch_execute("SET standard_conforming_strings = off")
        .await
        .expect("scs off");
    a.batch_execute(r"SELECT 'a\'', set_config('search_path', 'evil', false) --'")
        .await
        .expect("hidden set_config");
    assert_eq!(s::scalar(&a, "SHOW search_path").await, "evil", "as direct");
    assert_ne!(
        other_sees(&server, "SHOW search_path").await.as_deref(),
        Some("evil")
    );
    drop(a);
    // The pinned backend is reset when its client leaves.
    assert!(
        s::eventually(Duration::from_secs(5), || async {
            other_sees(&server, "SHOW search_path").await.as_deref() == Some(&default_path)
        })
        .await
    );
}

/// Fails on main: after `REVOKE reader FROM app`, replaying `SET ROLE reader` on another
/// backend failed unseen and the client's statement ran as the login role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_be_replayed_fails_the_statement() {
    let (cluster, server) = setup().await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    a.batch_execute("SET ROLE reader").await.expect("set role");
    assert_eq!(s::scalar(&a, "SELECT current_user").await, "reader");
    // B takes the backend over (its role is reset), then the grant goes away.
    assert_eq!(s::scalar(&b, "SELECT current_user").await, "app");
    cluster
        .primary()
        .psql_db(s::APP_DB, "REVOKE reader FROM app")
        .expect("revoke");
    let got = answer(&a, "SELECT current_user").await;
    assert_eq!(got, Err("42501".into()), "never run as another role");
    assert_eq!(s::scalar(&b, "SELECT current_user").await, "app");
}

/// Fails on main: pgtide's statement names are visible in pg_prepared_statements, and another
/// client could deallocate or execute them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_statements_are_out_of_reach() {
    let (_cluster, server) = setup().await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let stmt = a
        .prepare("SELECT v FROM secrets LIMIT 1")
        .await
        .expect("a prepares");
    assert_eq!(a.query(&stmt, &[]).await.expect("a runs it").len(), 1);
    let name = s::scalar(&b, "SELECT name FROM pg_prepared_statements LIMIT 1").await;
    assert!(name.starts_with("pgtide_"), "{name}");
    for sql in [
        format!("DEALLOCATE \"{name}\""),
        format!("EXECUTE \"{name}\""),
        format!("DEALLOCATE {}", name.to_uppercase()),
    ] {
        assert_eq!(answer(&b, &sql).await, Err("26000".into()), "{sql}");
    }
    // A's statement is still there for A.
    let rows = a.query(&stmt, &[]).await.expect("a's statement runs");
    assert_eq!(rows.len(), 1);
}

/// Fails on main: a Bind naming another client's statement (`pgtide_...`) ran it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_statement_cannot_be_bound() {
    use s::raw::{self, Raw};
    let cluster = s::cluster_with_schema("SELECT 1").await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    raw::add_trust_user(&mut config);
    let server = s::start(config).await;
    let mut a = Raw::login(&server).await;
    let mut b = Raw::login(&server).await;
    let run_a = [raw::bind("s1", &[]), raw::execute_sync()].concat();
    a.send(&[raw::parse("s1", "SELECT 41 + 1"), run_a.clone()].concat())
        .await;
    let rows = a.reader.until_ready().await.expect("a runs s1");
    assert_eq!(raw::first_column(&rows), ["42"]);
    let name = b.simple("SELECT name FROM pg_prepared_statements").await;
    assert!(name.starts_with("pgtide_"), "{name}");
    b.send(&[raw::bind(&name, &[]), raw::execute_sync()].concat())
        .await;
    let error = b.reader.error().await.expect("an error");
    assert_eq!(error.code, "26000", "{error:?}");
    b.reader.until_ready().await.expect("ready after the error");
    a.send(&run_a).await;
    let rows = a.reader.until_ready().await.expect("a runs s1 again");
    assert_eq!(raw::first_column(&rows), ["42"]);
}

/// Fails on main (no bound): a client holds at most 10,000 named statements through pgtide;
/// the next Parse fails with 54000 as the backend's own error, and closing one makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clients_statements_are_bounded() {
    use s::raw::{self, msg, Raw};
    let cluster = s::cluster_with_schema("SELECT 1").await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    raw::add_trust_user(&mut config);
    let server = s::start(config).await;
    let mut a = Raw::login(&server).await;
    let sync = msg(b'S', &[]);
    for chunk in 0..10 {
        let mut batch = Vec::new();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            batch.extend(raw::parse(&format!("s{i}"), &format!("SELECT {i}")));
        }
        batch.extend(&sync);
        a.send(&batch).await;
        let replies = a.reader.until_ready().await.expect("parsed");
        assert!(replies.iter().all(|(t, _)| *t == b'1'), "chunk {chunk}");
    }
    let one_more = [
        raw::parse("one_more", "SELECT 'x'"),
        raw::bind("one_more", &[]),
    ]
    .concat();
    a.send(&[one_more.clone(), raw::execute_sync()].concat())
        .await;
    let error = a.reader.error().await.expect("over the bound");
    assert_eq!(error.code, "54000", "{error:?}");
    a.reader.until_ready().await.expect("ready");
    let mut close = vec![b'S'];
    raw::cstr(&mut close, "s0");
    a.send(&[msg(b'C', &close), one_more, raw::execute_sync()].concat())
        .await;
    let rows = a.reader.until_ready().await.expect("room again");
    assert_eq!(raw::first_column(&rows), ["x"]);
    let row = a.simple("SELECT 1").await;
    assert_eq!(row, "1", "the session goes on");
}

/// A settings replay that PostgreSQL refuses part-way (a table access method dropped since the
/// client set it) leaves the backend with the previous client's settings while pgtide's record
/// says the replay ran: the next client that shares a recorded value must not inherit the
/// previous one. Failed on the commit before the fix (C read Asia/Tokyo).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_settings_replay_never_reaches_another_client() {
    let (cluster, server) = setup().await;
    let superuser = |sql: &'static str| cluster.primary().psql_db(s::APP_DB, sql);
    superuser("CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler")
        .expect("access method");
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let c = s::connect(&s::app_url(&server)).await.expect("c");
    c.batch_execute("SET TimeZone = 'UTC'")
        .await
        .expect("c utc");
    a.batch_execute("SET default_table_access_method = 'heap2'")
        .await
        .expect("a am");
    a.batch_execute("SET TimeZone = 'UTC'")
        .await
        .expect("a utc");
    b.batch_execute("SET TimeZone = 'Asia/Tokyo'")
        .await
        .expect("b tokyo");
    superuser("DROP ACCESS METHOD heap2").expect("drop access method");
    // A's replay fails at its first SET; PostgreSQL skips the TimeZone after it.
    let _ = answer(&a, "SELECT 1").await;
    assert_ne!(
        answer(&c, "SHOW TimeZone").await,
        Ok(Some("Asia/Tokyo".into())),
        "c inherited b's TimeZone"
    );
    drop(a);
    assert!(
        s::eventually(Duration::from_secs(5), || async {
            answer(&c, "SHOW TimeZone").await == Ok(Some("UTC".into()))
        })
        .await,
        "c runs with its own TimeZone once a's backend is reset"
    );
}
