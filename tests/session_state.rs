//! Transaction mode carries session state: SET and startup parameters follow the client to
//! whichever backend serves it, never leak to another client, and what cannot be carried pins
//! the client to its backend. Pool size 1 makes every client share the one backend.

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use tokio_postgres::Client;

async fn setup(size: usize) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, size);
    config.pool.checkout_timeout = Duration::from_millis(500);
    let server = s::start(config).await;
    (cluster, server)
}

async fn show(client: &Client, setting: &str) -> String {
    let row = client
        .query_one(&format!("SELECT current_setting('{setting}', true)"), &[])
        .await
        .expect("current_setting");
    row.get::<_, Option<String>>(0).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_follow_their_client_and_never_leak() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let default_path = show(&b, "search_path").await;
    let default_tz = show(&b, "TimeZone").await;

    a.batch_execute("SET search_path TO pg_catalog, public; SET TimeZone = 'Asia/Tokyo'")
        .await
        .expect("a sets");
    a.batch_execute("SET myapp.tenant = '42'")
        .await
        .expect("custom GUC");

    // B runs on the very backend A changed, and sees the defaults.
    assert_eq!(show(&b, "search_path").await, default_path);
    assert_eq!(show(&b, "TimeZone").await, default_tz);
    assert_eq!(show(&b, "myapp.tenant").await, "");

    // A gets its settings back on its next transaction.
    assert_eq!(show(&a, "search_path").await, "pg_catalog, public");
    assert_eq!(show(&a, "TimeZone").await, "Asia/Tokyo");
    assert_eq!(show(&a, "myapp.tenant").await, "42");

    // RESET undoes one setting, for A only.
    a.batch_execute("RESET TimeZone").await.expect("reset");
    assert_eq!(show(&a, "TimeZone").await, default_tz);
    assert_eq!(show(&a, "search_path").await, "pg_catalog, public");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_and_failed_sets_are_not_carried() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let default_path = show(&a, "search_path").await;
    a.batch_execute("BEGIN; SET search_path TO pg_catalog; ROLLBACK")
        .await
        .expect("rolled back");
    assert!(a
        .batch_execute("SET statement_timeout = '5s'; SELECT 1/0")
        .await
        .is_err());
    b.batch_execute("SELECT 1")
        .await
        .expect("b uses the backend in between");
    assert_eq!(show(&a, "search_path").await, default_path);
    assert_eq!(show(&a, "statement_timeout").await, "0");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_are_carried() {
    let (_cluster, server) = setup(1).await;
    let url = format!("{}?application_name=web-frontend", s::app_url(&server));
    let a = s::connect(&url).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    assert_eq!(show(&a, "application_name").await, "web-frontend");
    assert_eq!(show(&b, "application_name").await, "");
    assert_eq!(show(&a, "application_name").await, "web-frontend");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_pins_the_client_until_unlisten() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    a.batch_execute("LISTEN jobs").await.expect("listen");
    // The only backend stays with A: B waits checkout_timeout and gets 53300.
    let err = b
        .batch_execute("SELECT 1")
        .await
        .expect_err("backend is pinned");
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err}");
    a.batch_execute("UNLISTEN *").await.expect("unlisten");
    b.batch_execute("SELECT 1")
        .await
        .expect("backend free again");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_table_survives_transactions_while_pinned_and_is_gone_after() {
    let (_cluster, server) = setup(2).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    a.batch_execute("CREATE TEMP TABLE scratch (x int)")
        .await
        .expect("temp");
    for i in 0..5 {
        a.execute("INSERT INTO scratch VALUES ($1)", &[&i])
            .await
            .expect("insert");
    }
    let n: i64 = a
        .query_one("SELECT count(*) FROM scratch", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 5);
    drop(a);
    // The pinned backend was reset before reuse: no client sees the temp table.
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let c = s::connect(&s::app_url(&server)).await.expect("c");
    assert!(
        s::eventually(Duration::from_secs(10), || async {
            let gone_b = b.query("SELECT * FROM scratch", &[]).await.is_err();
            let gone_c = c.query("SELECT * FROM scratch", &[]).await.is_err();
            gone_b && gone_c
        })
        .await
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_all_by_one_client_does_not_break_anothers_statements() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let stmt = a.prepare("SELECT $1::int * 2").await.expect("prepare");
    let row = a.query_one(&stmt, &[&21i32]).await.expect("first");
    assert_eq!(row.get::<_, i32>(0), 42);
    b.batch_execute("DISCARD ALL").await.expect("discard");
    b.batch_execute("DEALLOCATE ALL").await.expect("deallocate");
    let row = a
        .query_one(&stmt, &[&4i32])
        .await
        .expect("after DISCARD ALL elsewhere");
    assert_eq!(row.get::<_, i32>(0), 8);
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Django's nested atomic blocks and psycopg's savepoints: an error inside a savepoint, rolled
/// back to it, does not undo the transaction's earlier SET. pgtide must carry it for A and
/// must not leave it behind for B on the same backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_survives_an_error_rolled_back_to_a_savepoint() {
    let (_cluster, server) = setup(1).await;
    let a = s::connect(&s::app_url(&server)).await.expect("a");
    let b = s::connect(&s::app_url(&server)).await.expect("b");
    let default_path = show(&b, "search_path").await;
    a.batch_execute("BEGIN; SET search_path TO pg_catalog; SAVEPOINT sp")
        .await
        .expect("begin");
    assert!(a.batch_execute("SELECT 1/0").await.is_err());
    a.batch_execute("ROLLBACK TO SAVEPOINT sp; SET TimeZone TO 'Asia/Tokyo'; SAVEPOINT sp2")
        .await
        .expect("recovered");
    a.batch_execute("SET statement_timeout TO '7s'; ROLLBACK TO sp2; COMMIT")
        .await
        .expect("commit");
    assert_eq!(show(&b, "search_path").await, default_path, "no leak to B");
    assert_eq!(show(&a, "search_path").await, "pg_catalog");
    assert_eq!(show(&a, "TimeZone").await, "Asia/Tokyo");
    assert_eq!(
        show(&a, "statement_timeout").await,
        "0",
        "undone by ROLLBACK TO sp2"
    );
    assert_eq!(show(&b, "search_path").await, default_path);
    server.shutdown(s::Shutdown::Immediate).await;
}
