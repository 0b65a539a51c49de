//! search_path per connection: SET (simple and prepared), startup `options`, SET LOCAL, RESET,
//! and the same statement text over schemas whose tables differ.

use super::*;

/// One `profile` table per schema, same columns, different rows: public 1, tenant_a 2,
/// tenant_b 3, so every answer tells which schema it came from.
const TENANTS: &str = "
    CREATE TABLE profile (id int4 PRIMARY KEY, tenant text NOT NULL);
    INSERT INTO profile VALUES (1, 'public');
    CREATE SCHEMA tenant_a;
    CREATE TABLE tenant_a.profile (LIKE public.profile INCLUDING ALL);
    INSERT INTO tenant_a.profile VALUES (1, 'tenant_a'), (2, 'tenant_a');
    CREATE SCHEMA tenant_b;
    CREATE TABLE tenant_b.profile (LIKE public.profile INCLUDING ALL);
    INSERT INTO tenant_b.profile VALUES (1, 'tenant_b'), (2, 'tenant_b'), (3, 'tenant_b');";
const DEFAULT_PATH: &str = "\"$user\", public";
const PATH_ROUNDS: usize = 20;

/// (search_path as current_setting shows it, tenant of profile 1, profile rows).
fn tenant_view(schema: Option<&str>) -> (String, String, i64) {
    match schema {
        None => (DEFAULT_PATH.to_string(), "public".to_string(), 1),
        Some("tenant_a") => ("tenant_a".to_string(), "tenant_a".to_string(), 2),
        Some(_) => ("tenant_b".to_string(), "tenant_b".to_string(), 3),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_search_path_sticks_to_its_connection() {
    let env = Env::start(TENANTS).await;
    let tasks = (0..CLIENTS)
        .map(|t| tokio::spawn(tp_search_path_client(env.url(), t)))
        .collect();
    join_clients("tokio-postgres search_path", tasks).await;
    // A new connection has the default.
    let c = tp_connect(&env.url(), "fresh client").await;
    let path = s::scalar(&c, "SELECT current_setting('search_path')").await;
    assert_eq!(path, DEFAULT_PATH, "a new connection's search_path");
    drop(c);
    env.finish().await;
}

async fn tp_search_path_client(url: String, t: usize) {
    let who = format!("tokio-postgres client {t}");
    let mut c = tp_connect(&url, &who).await;
    // Thirds: SET through the simple protocol, SET as a prepared statement, the default.
    let mut schema = match t % 3 {
        0 => Some("tenant_a"),
        1 => Some("tenant_b"),
        _ => None,
    };
    match t % 3 {
        0 => s::within(&who, STEP, c.batch_execute("SET search_path TO tenant_a"))
            .await
            .unwrap_or_else(|e| panic!("{who}: SET: {}", tp_err(&e))),
        1 => {
            s::within(&who, STEP, c.execute("SET search_path TO tenant_b", &[]))
                .await
                .unwrap_or_else(|e| panic!("{who}: prepared SET: {}", tp_err(&e)));
        }
        _ => {}
    }
    let path = tp_prepare(&c, &who, "SELECT current_setting('search_path')").await;
    let tenant = tp_prepare(&c, &who, "SELECT tenant FROM profile WHERE id = $1").await;
    let count = tp_prepare(&c, &who, "SELECT count(*) FROM profile").await;
    for i in 0..PATH_ROUNDS {
        let ctx = format!("{who} round {i} ({schema:?})");
        s::within(&ctx, STEP, async {
            let want = tenant_view(schema);
            let got_path: String = c
                .query_one(&path, &[])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: search_path: {}", tp_err(&e)))
                .get(0);
            let got_tenant: String = c
                .query_one(&tenant, &[&1i32])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: tenant: {}", tp_err(&e)))
                .get(0);
            let got_count: i64 = c
                .query_one(&count, &[])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: count: {}", tp_err(&e)))
                .get(0);
            assert_eq!(
                (got_path, got_tenant, got_count),
                want,
                "{ctx}: (search_path, tenant, rows) seen by this connection"
            );
            // Ad-hoc text through a fresh statement each time.
            let adhoc: String = c
                .query_one("SELECT tenant FROM profile ORDER BY id LIMIT 1", &[])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: ad-hoc: {}", tp_err(&e)))
                .get(0);
            assert_eq!(adhoc, want.1, "{ctx}: ad-hoc statement's schema");

            if i == PATH_ROUNDS / 2 {
                // SET LOCAL lasts until COMMIT only.
                let tx = c
                    .transaction()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: BEGIN: {}", tp_err(&e)));
                tx.batch_execute("SET LOCAL search_path TO tenant_b")
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: SET LOCAL: {}", tp_err(&e)));
                let inside: i64 = tx
                    .query_one(&count, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: count in tx: {}", tp_err(&e)))
                    .get(0);
                assert_eq!(
                    inside, 3,
                    "{ctx}: SET LOCAL tenant_b inside the transaction"
                );
                tx.commit()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: COMMIT: {}", tp_err(&e)));
            }
        })
        .await;
        if i == PATH_ROUNDS * 3 / 4 && schema == Some("tenant_a") {
            s::within(&ctx, STEP, c.batch_execute("RESET search_path"))
                .await
                .unwrap_or_else(|e| panic!("{ctx}: RESET: {}", tp_err(&e)));
            schema = None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_search_path_sticks_to_its_connection() {
    let env = Env::start(TENANTS).await;
    let tasks = (0..CLIENTS)
        .map(|t| tokio::spawn(sqlx_search_path_client(env.url(), t)))
        .collect();
    join_clients("sqlx search_path", tasks).await;
    env.finish().await;
}

async fn sqlx_search_path_client(url: String, t: usize) {
    let who = format!("sqlx client {t}");
    let opts: PgConnectOptions = url.parse().expect("URL");
    // Quarters: SET as sqlx's cached prepared statement, `options=-c search_path=...` in the
    // startup packet, SET through the simple protocol, the default.
    let (opts, schema) = match t % 4 {
        0 => (opts, Some("tenant_a")),
        1 => (
            opts.options([("search_path", "tenant_b")]),
            Some("tenant_b"),
        ),
        2 => (opts, Some("tenant_b")),
        _ => (opts, None),
    };
    let mut conn = sqlx_connect(&opts, &who).await;
    match t % 4 {
        0 => {
            s::within(
                &who,
                STEP,
                sqlx::query("SET search_path TO tenant_a").execute(&mut conn),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: prepared SET: {e}"));
        }
        2 => {
            s::within(
                &who,
                STEP,
                // A plain &str without arguments runs as a simple Query.
                sqlx::Executor::execute(&mut conn, "SET search_path TO tenant_b"),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: simple SET: {e}"));
        }
        _ => {}
    }
    let want = tenant_view(schema);
    for i in 0..PATH_ROUNDS {
        let ctx = format!("{who} round {i} ({schema:?})");
        s::within(
            &ctx,
            STEP,
            sqlx_search_path_round(&mut conn, &ctx, &want, i),
        )
        .await;
    }
    s::within(&who, STEP, conn.close())
        .await
        .unwrap_or_else(|e| panic!("{who}: close: {e}"));
}

async fn sqlx_search_path_round(
    conn: &mut PgConnection,
    ctx: &str,
    want: &(String, String, i64),
    i: usize,
) {
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: search_path: {e}"));
    let tenant: String = sqlx::query_scalar("SELECT tenant FROM profile WHERE id = $1")
        .bind(1i32)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: tenant: {e}"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM profile")
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: count: {e}"));
    assert_eq!(
        (path, tenant, count),
        want.clone(),
        "{ctx}: (search_path, tenant, rows) seen by this connection"
    );
    if i == PATH_ROUNDS / 2 {
        let mut tx = conn
            .begin()
            .await
            .unwrap_or_else(|e| panic!("{ctx}: begin: {e}"));
        sqlx::query("SET LOCAL search_path TO tenant_a")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: SET LOCAL: {e}"));
        let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM profile")
            .fetch_one(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: count in tx: {e}"));
        assert_eq!(
            inside, 2,
            "{ctx}: SET LOCAL tenant_a inside the transaction"
        );
        tx.commit()
            .await
            .unwrap_or_else(|e| panic!("{ctx}: commit: {e}"));
    }
}

/// Schema per tenant while a migration has reached only one tenant: the same statement text
/// names tables of different shapes depending on the connection's search_path.
const SHAPES: &str = "
    CREATE TABLE account (id int4 PRIMARY KEY, tenant text NOT NULL);
    INSERT INTO account VALUES (1, 'public');
    CREATE SCHEMA tenant_a;
    CREATE TABLE tenant_a.account (id int4 PRIMARY KEY, tenant text NOT NULL, plan text);
    INSERT INTO tenant_a.account VALUES (1, 'tenant_a', 'gold');";
const SELECT_ACCOUNT: &str = "SELECT * FROM account WHERE id = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_statement_text_over_schemas_with_different_columns() {
    let env = Env::start(SHAPES).await;
    let mut tasks = Vec::new();
    for t in 0..CLIENTS / 2 {
        let (url, migrated) = (env.url(), t % 2 == 0);
        tasks.push(tokio::spawn(async move {
            let who = format!("tokio-postgres client {t} (tenant_a: {migrated})");
            let c = tp_connect(&url, &who).await;
            if migrated {
                s::within(&who, STEP, c.batch_execute("SET search_path TO tenant_a"))
                    .await
                    .unwrap_or_else(|e| panic!("{who}: SET: {}", tp_err(&e)));
            }
            let stmt = tp_prepare(&c, &who, SELECT_ACCOUNT).await;
            for i in 0..PATH_ROUNDS {
                let ctx = format!("{who} round {i}");
                let row = s::within(&ctx, STEP, c.query_one(&stmt, &[&1i32]))
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {SELECT_ACCOUNT}: {}", tp_err(&e)));
                let want = if migrated {
                    (3, "tenant_a")
                } else {
                    (2, "public")
                };
                assert_eq!(
                    (row.len(), row.get::<_, String>(1).as_str()),
                    want,
                    "{ctx}: (columns, tenant)"
                );
            }
        }));
    }
    for t in 0..CLIENTS / 2 {
        let (url, migrated) = (env.url(), t % 2 == 1);
        tasks.push(tokio::spawn(async move {
            let who = format!("sqlx client {t} (tenant_a: {migrated})");
            let mut conn = sqlx_connect(&url.parse().expect("URL"), &who).await;
            if migrated {
                s::within(
                    &who,
                    STEP,
                    sqlx::query("SET search_path TO tenant_a").execute(&mut conn),
                )
                .await
                .unwrap_or_else(|e| panic!("{who}: SET: {e}"));
            }
            for i in 0..PATH_ROUNDS {
                let ctx = format!("{who} round {i}");
                let row = s::within(
                    &ctx,
                    STEP,
                    sqlx::query(SELECT_ACCOUNT).bind(1i32).fetch_one(&mut conn),
                )
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {SELECT_ACCOUNT}: {e}"));
                let want = if migrated {
                    (3, "tenant_a")
                } else {
                    (2, "public")
                };
                assert_eq!(
                    (row.len(), row.get::<String, _>(1).as_str()),
                    want,
                    "{ctx}: (columns, tenant)"
                );
            }
            s::within(&who, STEP, conn.close())
                .await
                .unwrap_or_else(|e| panic!("{who}: close: {e}"));
        }));
    }
    join_clients("same text, different shapes", tasks).await;
    env.finish().await;
}
