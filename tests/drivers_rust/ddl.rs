//! Out-of-band DDL (ALTER TABLE on a direct connection) under a prepared `SELECT *`, directly and
//! through pgtide side by side. A client that keeps the statement it prepared before the ALTER
//! gets an error on every run, never rows decoded with the old description: PostgreSQL's
//! "cached plan must not change result type" (0A000), or through pgtide also "prepared statement
//! does not exist" (26000), since pgtide never prepares a stale statement again for a client that
//! knows its old shape. Preparing the text again, on a new connection or the same one, works
//! and shows the new shape.

use super::*;

/// The ALTER run on the primary, and the shape a statement prepared after it must see.
#[derive(Clone, Copy)]
enum Ddl {
    /// `ADD COLUMN b int4 DEFAULT 7`: three columns instead of two.
    AddColumn,
    /// `a` goes from text ('hello') to int4 (its length, 5): same column count, new type.
    ChangeType,
}

impl Ddl {
    fn prefix(self) -> &'static str {
        match self {
            Ddl::AddColumn => "ddl_add",
            Ddl::ChangeType => "ddl_type",
        }
    }

    fn alter(self, table: &str) -> String {
        match self {
            Ddl::AddColumn => format!("ALTER TABLE {table} ADD COLUMN b int4 DEFAULT 7"),
            Ddl::ChangeType => {
                format!("ALTER TABLE {table} ALTER COLUMN a TYPE int4 USING length(a)")
            }
        }
    }

    fn check_tp(self, ctx: &str, rows: &[tokio_postgres::Row]) {
        let [row] = rows else {
            panic!("{ctx}: {} rows, want 1", rows.len());
        };
        let types: Vec<&Type> = row.columns().iter().map(|c| c.type_()).collect();
        match self {
            Ddl::AddColumn => {
                assert_eq!(types, [&Type::INT4, &Type::TEXT, &Type::INT4], "{ctx}");
                let got: (i32, String, i32) = (row.get(0), row.get(1), row.get(2));
                assert_eq!(got, (1, "hello".to_string(), 7), "{ctx}");
            }
            Ddl::ChangeType => {
                assert_eq!(types, [&Type::INT4, &Type::INT4], "{ctx}");
                assert_eq!(
                    (row.get::<_, i32>(0), row.get::<_, i32>(1)),
                    (1, 5),
                    "{ctx}"
                );
            }
        }
    }

    fn check_sqlx(self, ctx: &str, rows: &[sqlx::postgres::PgRow]) {
        use sqlx::{Column, TypeInfo};
        let [row] = rows else {
            panic!("{ctx}: {} rows, want 1", rows.len());
        };
        let types: Vec<&str> = row.columns().iter().map(|c| c.type_info().name()).collect();
        let get = |i: usize| {
            row.try_get::<i32, _>(i)
                .unwrap_or_else(|e| panic!("{ctx}: column {i} as int4: {e}"))
        };
        match self {
            Ddl::AddColumn => {
                assert_eq!(types, ["INT4", "TEXT", "INT4"], "{ctx}");
                let a: String = row.try_get(1).unwrap_or_else(|e| panic!("{ctx}: a: {e}"));
                assert_eq!((get(0), a.as_str(), get(2)), (1, "hello", 7), "{ctx}");
            }
            Ddl::ChangeType => {
                assert_eq!(types, ["INT4", "INT4"], "{ctx}");
                assert_eq!((get(0), get(1)), (1, 5), "{ctx}");
            }
        }
    }
}

/// An old statement's run after the ALTER must fail: 0A000 directly; through pgtide 0A000, or
/// 26000 where pgtide refused to prepare the stale statement again on another backend.
fn assert_stale(ctx: &str, target: &str, code: Option<&str>, error: &str) {
    let allowed: &[&str] = match target {
        "direct" => &["0A000"],
        _ => &["0A000", "26000"],
    };
    assert!(
        code.is_some_and(|c| allowed.contains(&c)),
        "{ctx}: got error {error}, want SQLSTATE in {allowed:?}"
    );
}

/// The old shape, to show what an `Ok` run decoded: column types and `a` read as text.
fn tp_shown(rows: &[tokio_postgres::Row]) -> String {
    let Some(row) = rows.first() else {
        return "no row".into();
    };
    let types: Vec<&str> = row.columns().iter().map(|c| c.type_().name()).collect();
    let a = row.try_get::<_, String>(1);
    format!("{} row(s), columns {types:?}, a as text {a:?}", rows.len())
}

fn sqlx_shown(rows: &[sqlx::postgres::PgRow]) -> String {
    use sqlx::{Column, TypeInfo};
    let Some(row) = rows.first() else {
        return "no row".into();
    };
    let types: Vec<&str> = row.columns().iter().map(|c| c.type_info().name()).collect();
    let a = row.try_get::<String, _>(1);
    format!("{} row(s), columns {types:?}, a as text {a:?}", rows.len())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_column_fails_old_prepared_select_star_and_fresh_prepares_see_it() {
    stale_select_star(Ddl::AddColumn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_type_change_fails_old_prepared_select_star_and_fresh_prepares_see_it() {
    stale_select_star(Ddl::ChangeType).await;
}

/// For each driver, directly and through pgtide: prepare `SELECT *`, ALTER the table out of
/// band, then a new connection prepares the text (new shape), the old statement fails five
/// times (the last while other clients hold the other backends), and the same connection
/// prepares the text again (new shape).
async fn stale_select_star(ddl: Ddl) {
    let p = ddl.prefix();
    let mut schema = String::new();
    for t in ["tp_direct", "tp_pgtide", "sx_direct", "sx_pgtide"] {
        schema.push_str(&format!(
            "CREATE TABLE {p}_{t} (id int4, a text); INSERT INTO {p}_{t} VALUES (1, 'hello');"
        ));
    }
    let env = Env::start(&schema).await;
    let admin = env.direct().await;
    let alter = |table: String| {
        let admin = &admin;
        async move {
            s::within("ALTER", STEP, admin.batch_execute(&ddl.alter(&table)))
                .await
                .unwrap_or_else(|e| panic!("{table}: ALTER: {}", tp_err(&e)));
        }
    };
    let targets = [
        ("direct", env.direct_url()),
        ("pgtide", s::app_url(&env.server)),
    ];
    for (target, url) in &targets {
        let table = format!("{p}_tp_{target}");
        let sql = format!("SELECT * FROM {table}");
        let who = format!("tokio-postgres via {target}");
        let c = tp_connect(url, &who).await;
        let stmt = tp_prepare(&c, &who, &sql).await;
        let before = s::within(&who, STEP, c.query(&stmt, &[]))
            .await
            .unwrap_or_else(|e| panic!("{who}: before the ALTER: {}", tp_err(&e)));
        assert_eq!((before.len(), before[0].len()), (1, 2), "{who}: before");
        alter(table.clone()).await;

        let other = tp_connect(url, &who).await;
        let fresh = tp_prepare(&other, &who, &sql).await;
        let ctx = format!("{who}: new connection prepares after the ALTER");
        let rows = s::within(&who, STEP, other.query(&fresh, &[]))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {}", tp_err(&e)));
        ddl.check_tp(&ctx, &rows);

        for k in 1..=5 {
            let holders = if k == 5 {
                hold_backends(url, POOL - 1).await
            } else {
                Vec::new()
            };
            let ctx = format!(
                "{who}: statement prepared before the ALTER, run {k} after it \
                 ({} other clients holding a backend)",
                holders.len()
            );
            match s::within(&who, STEP, c.query(&stmt, &[])).await {
                Ok(rows) => panic!("{ctx}: Ok with the old description: {}", tp_shown(&rows)),
                Err(e) => assert_stale(&ctx, target, tp_code(&e), &tp_err(&e)),
            }
        }

        let ctx = format!("{who}: same connection prepares the text again");
        let rows = s::within(&who, STEP, c.query(sql.as_str(), &[]))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {}", tp_err(&e)));
        ddl.check_tp(&ctx, &rows);

        let table = format!("{p}_sx_{target}");
        let sql = format!("SELECT * FROM {table}");
        let who = format!("sqlx via {target}");
        let opts = url.parse().expect("sqlx parses the URL");
        let mut conn = sqlx_connect(&opts, &who).await;
        let before = s::within(&who, STEP, sqlx::query(&sql).fetch_all(&mut conn))
            .await
            .unwrap_or_else(|e| panic!("{who}: before the ALTER: {e}"));
        assert_eq!((before.len(), before[0].len()), (1, 2), "{who}: before");
        alter(table.clone()).await;

        let mut other = sqlx_connect(&opts, &who).await;
        let ctx = format!("{who}: new connection prepares after the ALTER");
        let rows = s::within(&who, STEP, sqlx::query(&sql).fetch_all(&mut other))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        ddl.check_sqlx(&ctx, &rows);

        for k in 1..=5 {
            let holders = if k == 5 {
                hold_backends(url, POOL - 1).await
            } else {
                Vec::new()
            };
            let ctx = format!(
                "{who}: statement cached before the ALTER, run {k} after it \
                 ({} other clients holding a backend)",
                holders.len()
            );
            match s::within(&who, STEP, sqlx::query(&sql).fetch_all(&mut conn)).await {
                Ok(rows) => panic!("{ctx}: Ok with the old description: {}", sqlx_shown(&rows)),
                Err(e) => assert_stale(&ctx, target, sqlx_code(&e).as_deref(), &format!("{e}")),
            }
        }

        s::within(&who, STEP, conn.clear_cached_statements())
            .await
            .unwrap_or_else(|e| panic!("{who}: clearing the statement cache: {e}"));
        let ctx = format!("{who}: same connection prepares the text again");
        let rows = s::within(&who, STEP, sqlx::query(&sql).fetch_all(&mut conn))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        ddl.check_sqlx(&ctx, &rows);
        let _ = s::within(&who, STEP, conn.close()).await;
        let _ = s::within(&who, STEP, other.close()).await;
    }
    env.finish().await;
}
