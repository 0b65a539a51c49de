//! DDL under a prepared `SELECT *`: observed and printed, not asserted.

use super::*;

/// What PostgreSQL does with a prepared `SELECT *` after ALTER TABLE ADD COLUMN (directly:
/// "cached plan must not change result type", 0A000) and what a client sees through pgtide.
/// Printed for the record (run with --no-capture); nothing is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_under_a_prepared_select_star_is_observed() {
    let env = Env::start(
        "CREATE TABLE ddl_tp_direct (id int4, a text); INSERT INTO ddl_tp_direct VALUES (1, 'x');
         CREATE TABLE ddl_tp_pgtide (id int4, a text); INSERT INTO ddl_tp_pgtide VALUES (1, 'x');
         CREATE TABLE ddl_sx_direct (id int4, a text); INSERT INTO ddl_sx_direct VALUES (1, 'x');
         CREATE TABLE ddl_sx_pgtide (id int4, a text); INSERT INTO ddl_sx_pgtide VALUES (1, 'x');",
    )
    .await;
    let admin = env.direct().await;
    let targets = [
        ("direct", env.direct_url()),
        ("pgtide", s::app_url(&env.server)),
    ];
    for (target, url) in &targets {
        let table = format!("ddl_tp_{target}");
        let sql = format!("SELECT * FROM {table}");
        let c = tp_connect(url, target).await;
        let other = tp_connect(url, target).await;
        let stmt = tp_prepare(&c, target, &sql).await;
        let describe = |rows: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>| match rows {
            Ok(rows) => format!(
                "ok: {} row(s), {} column(s) described",
                rows.len(),
                rows.first().map_or(0, |r| r.len())
            ),
            Err(e) => format!("error {}", tp_err(&e)),
        };
        let before = s::within(target, STEP, c.query(&stmt, &[])).await;
        eprintln!(
            "[ddl] tokio-postgres via {target}: before ALTER: {}",
            describe(before)
        );
        s::within(
            target,
            STEP,
            admin.batch_execute(&format!("ALTER TABLE {table} ADD COLUMN b int4 DEFAULT 7")),
        )
        .await
        .unwrap_or_else(|e| panic!("ALTER: {}", tp_err(&e)));
        for k in 1..=4 {
            let after = s::within(target, STEP, c.query(&stmt, &[])).await;
            eprintln!(
                "[ddl] tokio-postgres via {target}: old statement, run {k} after ALTER: {}",
                describe(after)
            );
        }
        if *target == "pgtide" {
            let holders = hold_backends(url, POOL - 1).await;
            let after = s::within(target, STEP, c.query(&stmt, &[])).await;
            eprintln!(
                "[ddl] tokio-postgres via {target}: old statement while {} other clients hold \
                 a backend in a transaction: {}",
                holders.len(),
                describe(after)
            );
        }
        // Another connection preparing the same text after the ALTER.
        let fresh = s::within(target, STEP, other.prepare(&sql)).await;
        match fresh {
            Ok(st) => {
                let rows = s::within(target, STEP, other.query(&st, &[])).await;
                eprintln!(
                    "[ddl] tokio-postgres via {target}: new connection prepares after ALTER: \
                     {} column(s) described; run: {}",
                    st.columns().len(),
                    describe(rows)
                );
            }
            Err(e) => eprintln!(
                "[ddl] tokio-postgres via {target}: new connection prepares after ALTER: error {}",
                tp_err(&e)
            ),
        }
        let adhoc = s::within(target, STEP, c.query(sql.as_str(), &[])).await;
        eprintln!(
            "[ddl] tokio-postgres via {target}: same connection, re-prepared: {}",
            describe(adhoc)
        );

        let table = format!("ddl_sx_{target}");
        let sql = format!("SELECT * FROM {table}");
        let mut conn = sqlx_connect(&url.parse().expect("URL"), target).await;
        let describe = |rows: Result<Vec<sqlx::postgres::PgRow>, sqlx::Error>| match rows {
            Ok(rows) => format!(
                "ok: {} row(s), {} column(s)",
                rows.len(),
                rows.first().map_or(0, |r| r.len())
            ),
            Err(e) => format!("error {:?}: {e}", sqlx_code(&e)),
        };
        let before = s::within(target, STEP, sqlx::query(&sql).fetch_all(&mut conn)).await;
        eprintln!(
            "[ddl] sqlx via {target}: before ALTER: {}",
            describe(before)
        );
        s::within(
            target,
            STEP,
            admin.batch_execute(&format!("ALTER TABLE {table} ADD COLUMN b int4 DEFAULT 7")),
        )
        .await
        .unwrap_or_else(|e| panic!("ALTER: {}", tp_err(&e)));
        for k in 1..=4 {
            let after = s::within(target, STEP, sqlx::query(&sql).fetch_all(&mut conn)).await;
            eprintln!(
                "[ddl] sqlx via {target}: cached statement, run {k} after ALTER: {}",
                describe(after)
            );
        }
        if *target == "pgtide" {
            let holders = hold_backends(url, POOL - 1).await;
            let after = s::within(target, STEP, sqlx::query(&sql).fetch_all(&mut conn)).await;
            eprintln!(
                "[ddl] sqlx via {target}: cached statement while {} other clients hold a \
                 backend in a transaction: {}",
                holders.len(),
                describe(after)
            );
        }
        let mut conn2 = sqlx_connect(&url.parse().expect("URL"), target).await;
        let fresh = s::within(target, STEP, sqlx::query(&sql).fetch_all(&mut conn2)).await;
        eprintln!(
            "[ddl] sqlx via {target}: new connection after ALTER: {}",
            describe(fresh)
        );
        let _ = s::within(target, STEP, conn.close()).await;
        let _ = s::within(target, STEP, conn2.close()).await;
    }
    env.finish().await;
}

/// Clients that each keep a backend in an open transaction until dropped, so the next client
/// statement runs on a backend other than theirs.
async fn hold_backends(url: &str, n: usize) -> Vec<Client> {
    let mut holders = Vec::new();
    for i in 0..n {
        let who = format!("backend holder {i}");
        let c = tp_connect(url, &who).await;
        s::within(&who, STEP, c.batch_execute("BEGIN; SELECT 1"))
            .await
            .unwrap_or_else(|e| panic!("{who}: BEGIN: {}", tp_err(&e)));
        holders.push(c);
    }
    holders
}

/// The same with a column whose type changes (same column count): a client that keeps its old
/// description decodes the new type's bytes as the old type. Printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_changing_a_column_type_under_a_prepared_select_star_is_observed() {
    let mut schema = String::new();
    for t in ["tp_direct", "tp_pgtide", "sx_direct", "sx_pgtide"] {
        schema.push_str(&format!(
            "CREATE TABLE ty_{t} (id int4, a text); INSERT INTO ty_{t} VALUES (1, 'hello');"
        ));
    }
    let env = Env::start(&schema).await;
    let admin = env.direct().await;
    let targets = [
        ("direct", env.direct_url()),
        ("pgtide", s::app_url(&env.server)),
    ];
    for (target, url) in &targets {
        let alter =
            |table: &str| format!("ALTER TABLE {table} ALTER COLUMN a TYPE int4 USING length(a)");
        let table = format!("ty_tp_{target}");
        let c = tp_connect(url, target).await;
        let stmt = tp_prepare(&c, target, &format!("SELECT * FROM {table}")).await;
        let show = |rows: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>| match rows {
            Ok(rows) => match rows.first().map(|r| r.try_get::<_, String>(1)) {
                Some(Ok(a)) => format!("ok: column a read as text {a:?}"),
                Some(Err(e)) => format!("ok, but column a does not decode as text: {e}"),
                None => "ok: no row".to_string(),
            },
            Err(e) => format!("error {}", tp_err(&e)),
        };
        let before = s::within(target, STEP, c.query(&stmt, &[])).await;
        eprintln!(
            "[ddl type] tokio-postgres via {target}: before: {}",
            show(before)
        );
        s::within(target, STEP, admin.batch_execute(&alter(&table)))
            .await
            .unwrap_or_else(|e| panic!("ALTER: {}", tp_err(&e)));
        for k in 1..=3 {
            let after = s::within(target, STEP, c.query(&stmt, &[])).await;
            eprintln!(
                "[ddl type] tokio-postgres via {target}: old statement, run {k} after ALTER: {}",
                show(after)
            );
        }

        let table = format!("ty_sx_{target}");
        let sql = format!("SELECT * FROM {table}");
        let mut conn = sqlx_connect(&url.parse().expect("URL"), target).await;
        let show = |rows: Result<Vec<sqlx::postgres::PgRow>, sqlx::Error>| match rows {
            Ok(rows) => match rows.first().map(|r| r.try_get::<String, _>(1)) {
                Some(Ok(a)) => format!("ok: column a read as text {a:?}"),
                Some(Err(e)) => format!("ok, but column a does not decode as text: {e}"),
                None => "ok: no row".to_string(),
            },
            Err(e) => format!("error {:?}: {e}", sqlx_code(&e)),
        };
        let before = s::within(target, STEP, sqlx::query(&sql).fetch_all(&mut conn)).await;
        eprintln!("[ddl type] sqlx via {target}: before: {}", show(before));
        s::within(target, STEP, admin.batch_execute(&alter(&table)))
            .await
            .unwrap_or_else(|e| panic!("ALTER: {}", tp_err(&e)));
        for k in 1..=3 {
            let after = s::within(target, STEP, sqlx::query(&sql).fetch_all(&mut conn)).await;
            eprintln!(
                "[ddl type] sqlx via {target}: cached statement, run {k} after ALTER: {}",
                show(after)
            );
        }
        let _ = s::within(target, STEP, conn.close()).await;
    }
    env.finish().await;
}
