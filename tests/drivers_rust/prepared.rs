//! Named prepared statements: tokio-postgres `prepare`, sqlx's statement cache and its unnamed
//! statements, pipelining, streamed results dropped early.

use super::*;

const ITEMS: &str = "
    CREATE TABLE items (id int4 PRIMARY KEY, name text NOT NULL, qty int8 NOT NULL);
    INSERT INTO items SELECT g, 'item-' || g, g * 3 FROM generate_series(1, 200) g;
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');";
const BY_ID: &str = "SELECT id, name, qty FROM items WHERE id = $1";
const RANGE: &str =
    "SELECT count(*), coalesce(sum(qty), 0)::int8 FROM items WHERE id BETWEEN $1 AND $2";
const ROUNDS: usize = 30;
const BIG: usize = 1 << 20;

fn item_id(client: usize, round: usize) -> i32 {
    ((client * 37 + round * 11) % 200 + 1) as i32
}

/// (count, sum of qty) of items lo..=hi, qty being 3 * id.
fn range_expect(lo: i32, hi: i32) -> (i64, i64) {
    let (lo, hi) = (i64::from(lo), i64::from(hi));
    (hi - lo + 1, 3 * (lo + hi) * (hi - lo + 1) / 2)
}

fn check_item(ctx: &str, id: i32, got: (i32, String, i64)) {
    assert_eq!(
        got,
        (id, format!("item-{id}"), i64::from(id) * 3),
        "{ctx}: item {id} came back wrong"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_prepared_statements_interleave_over_a_small_pool() {
    let env = Env::start(ITEMS).await;
    let tasks = (0..CLIENTS)
        .map(|t| tokio::spawn(tp_prepared_client(env.url(), t)))
        .collect();
    join_clients("tokio-postgres prepared statements", tasks).await;
    env.finish().await;
}

async fn tp_prepared_client(url: String, t: usize) {
    let who = format!("tokio-postgres client {t}");
    let c = tp_connect(&url, &who).await;
    let by_id = tp_prepare(&c, &who, BY_ID).await;
    let range = tp_prepare(&c, &who, RANGE).await;
    let label = s::within(
        &who,
        STEP,
        c.prepare_typed(
            "SELECT $1::text || ':' || $2::int4",
            &[Type::TEXT, Type::INT4],
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{who}: prepare_typed: {}", tp_err(&e)));
    // An enum column makes tokio-postgres look the type up with its own prepared statement.
    let mood = tp_prepare(&c, &who, "SELECT $1::text::mood AS m").await;
    assert_eq!(
        mood.columns()[0].type_().name(),
        "mood",
        "{who}: the enum's type lookup"
    );
    for i in 0..ROUNDS {
        let ctx = format!("{who} round {i}");
        s::within(&ctx, STEP, async {
            let id = item_id(t, i);
            let row = c
                .query_one(&by_id, &[&id])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: by id {id}: {}", tp_err(&e)));
            check_item(&ctx, id, (row.get(0), row.get(1), row.get(2)));

            let lo = id.min(190);
            let hi = lo + (i % 10) as i32;
            let row = c
                .query_one(&range, &[&lo, &hi])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: range {lo}..={hi}: {}", tp_err(&e)));
            assert_eq!(
                (row.get::<_, i64>(0), row.get::<_, i64>(1)),
                range_expect(lo, hi),
                "{ctx}: count and sum of items {lo}..={hi}"
            );

            // A one-off statement: tokio-postgres prepares it under a fresh name, runs it and
            // closes it; the texts repeat across rounds and clients.
            let factor = (i % 7 + 1) as i32;
            let sql = format!("SELECT $1::int4 * {factor}");
            let v: i32 = c
                .query_one(sql.as_str(), &[&id])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {sql}: {}", tp_err(&e)))
                .get(0);
            assert_eq!(v, id * factor, "{ctx}: {sql} with {id}");

            // The unnamed statement, parsed and bound in one round trip.
            let n = i as i64;
            let rows = c
                .query_typed("SELECT $1::int8 + 1", &[(&n, Type::INT8)])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: query_typed: {}", tp_err(&e)));
            assert_eq!(rows.len(), 1, "{ctx}: query_typed rows");
            assert_eq!(rows[0].get::<_, i64>(0), n + 1, "{ctx}: query_typed value");

            // Pipelining: three Bind/Execute/Sync in flight on one connection at once.
            let tag = format!("c{t}");
            let (pa, pb): ([Param; 1], [Param; 1]) = ([&lo], [&hi]);
            let pl: [Param; 2] = [&tag, &id];
            let (a, b, l) = tokio::join!(
                c.query_one(&by_id, &pa),
                c.query_one(&by_id, &pb),
                c.query_one(&label, &pl),
            );
            let a = a.unwrap_or_else(|e| panic!("{ctx}: pipelined by id {lo}: {}", tp_err(&e)));
            check_item(&ctx, lo, (a.get(0), a.get(1), a.get(2)));
            let b = b.unwrap_or_else(|e| panic!("{ctx}: pipelined by id {hi}: {}", tp_err(&e)));
            check_item(&ctx, hi, (b.get(0), b.get(1), b.get(2)));
            let l = l.unwrap_or_else(|e| panic!("{ctx}: pipelined label: {}", tp_err(&e)));
            assert_eq!(l.get::<_, String>(0), format!("{tag}:{id}"), "{ctx}: label");

            if i == 0 {
                // A 1 MiB parameter and a 1 MiB result value.
                let big = "x".repeat(BIG);
                let row = c
                    .query_one(
                        "SELECT length($1::text), repeat('y', $2)",
                        &[&big, &(BIG as i32)],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: 1 MiB values: {}", tp_err(&e)));
                assert_eq!(
                    row.get::<_, i32>(0),
                    BIG as i32,
                    "{ctx}: length of a 1 MiB parameter"
                );
                assert!(
                    row.get::<_, String>(1) == "y".repeat(BIG),
                    "{ctx}: a 1 MiB result value"
                );
            }
            if i % 10 == 5 {
                // A result stream dropped after three of 5000 rows: the rest is discarded.
                let stream = c
                    .query_raw(
                        "SELECT g FROM generate_series(1, 5000) g",
                        std::iter::empty::<i32>(),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: query_raw: {}", tp_err(&e)));
                let mut stream = Box::pin(stream);
                for want in 1..=3 {
                    let row = stream
                        .try_next()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: streamed row: {}", tp_err(&e)))
                        .unwrap_or_else(|| panic!("{ctx}: the stream ended early"));
                    assert_eq!(row.get::<_, i32>(0), want, "{ctx}: streamed row");
                }
                drop(stream);
                let row = c
                    .query_one(&by_id, &[&id])
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: after a dropped stream: {}", tp_err(&e)));
                check_item(&ctx, id, (row.get(0), row.get(1), row.get(2)));
            }
            if i % 10 == 0 {
                let row = c
                    .query_one(&mood, &[&"happy"])
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: enum statement: {}", tp_err(&e)));
                assert_eq!(
                    row.columns()[0].type_().name(),
                    "mood",
                    "{ctx}: enum column"
                );
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_prepared_statements_with_more_pool_connections_than_backends() {
    let env = Env::start(ITEMS).await;
    // sqlx's own pool holds 8 connections to pgtide, which has 3 backends behind them.
    let pool = sqlx_pool(&env.url(), CLIENTS).await;
    let mut tasks: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|t| tokio::spawn(sqlx_prepared_client(pool.clone(), t)))
        .collect();
    // A connection whose statement cache holds 4: sqlx closes the least recently used
    // statement whenever a fifth is prepared.
    let opts: PgConnectOptions = env.url().parse().expect("URL");
    tasks.push(tokio::spawn(sqlx_small_cache_client(
        opts.statement_cache_capacity(4),
    )));
    join_clients("sqlx prepared statements", tasks).await;
    s::within("sqlx pool close", STEP, pool.close()).await;
    env.finish().await;
}

async fn sqlx_prepared_client(pool: PgPool, t: usize) {
    let who = format!("sqlx client {t}");
    let tag = format!("c{t}");
    for i in 0..ROUNDS {
        let ctx = format!("{who} round {i}");
        s::within(&ctx, STEP, async {
            let id = item_id(t, i);
            // Twelve distinct texts, each prepared and cached per pool connection.
            let k = (i % 12) as i32;
            let sql = format!("SELECT $1::int4 + {k}, $2::text AS tag");
            let (sum, got_tag): (i32, String) = sqlx::query_as(&sql)
                .bind(id)
                .bind(&tag)
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {sql}: {e}"));
            assert_eq!(
                (sum, got_tag.as_str()),
                (id + k, tag.as_str()),
                "{ctx}: {sql}"
            );

            let item: (i32, String, i64) = sqlx::query_as(BY_ID)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: by id {id}: {e}"));
            check_item(&ctx, id, item);

            let lo = id.min(190);
            let hi = lo + (i % 10) as i32;
            let got: (i64, i64) = sqlx::query_as(RANGE)
                .bind(lo)
                .bind(hi)
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: range {lo}..={hi}: {e}"));
            assert_eq!(got, range_expect(lo, hi), "{ctx}: items {lo}..={hi}");

            let limit = 5 + i as i32;
            let rows = sqlx::query("SELECT id FROM items WHERE id <= $1 ORDER BY id")
                .bind(limit)
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: fetch_all: {e}"));
            let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
            assert_eq!(ids, (1..=limit).collect::<Vec<_>>(), "{ctx}: fetch_all ids");

            // Not cached: sqlx parses the unnamed statement (Parse/Describe/Sync), then binds
            // and executes it (Bind/Execute/Sync). Each client has its own texts, so running
            // another client's unnamed statement would show in the answer.
            for k in 0..3i64 {
                let n = i as i64;
                let factor = (t as i64) * 3 + k + 2;
                let sql = format!("SELECT $1::int8 * {factor}");
                let got: i64 = sqlx::query_scalar(&sql)
                    .bind(n)
                    .persistent(false)
                    .fetch_one(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: unnamed statement {sql}: {e}"));
                assert_eq!(got, n * factor, "{ctx}: unnamed statement {sql} with {n}");
            }

            // Several statements on one checked-out pool connection.
            let mut conn = pool
                .acquire()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: acquire: {e}"));
            for j in [1, 2, 3] {
                let item: (i32, String, i64) = sqlx::query_as(BY_ID)
                    .bind(j)
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: by id {j} on one connection: {e}"));
                check_item(&ctx, j, item);
            }
            if i == 0 {
                let big = "x".repeat(BIG);
                let (len, value): (i32, String) =
                    sqlx::query_as("SELECT length($1::text), repeat('y', $2)")
                        .bind(&big)
                        .bind(BIG as i32)
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: 1 MiB values: {e}"));
                assert_eq!(len, BIG as i32, "{ctx}: length of a 1 MiB parameter");
                assert!(value == "y".repeat(BIG), "{ctx}: a 1 MiB result value");
            }
            if i % 10 == 5 {
                // A row stream dropped after three of 5000 rows; sqlx drains the rest before
                // the connection's next statement.
                let mut rows =
                    sqlx::query("SELECT g FROM generate_series(1, 5000) g").fetch(&mut *conn);
                for want in 1..=3 {
                    let row = rows
                        .try_next()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: streamed row: {e}"))
                        .unwrap_or_else(|| panic!("{ctx}: the stream ended early"));
                    assert_eq!(row.get::<i32, _>(0), want, "{ctx}: streamed row");
                }
                drop(rows);
                let item: (i32, String, i64) = sqlx::query_as(BY_ID)
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: after a dropped stream: {e}"));
                check_item(&ctx, id, item);
            }
        })
        .await;
    }
}

async fn sqlx_small_cache_client(opts: PgConnectOptions) {
    let who = "sqlx client with a 4-statement cache";
    let mut conn = sqlx_connect(&opts, who).await;
    for round in 0..3 {
        for k in 0..10 {
            let ctx = format!("{who} round {round} statement {k}");
            let sql = format!("SELECT $1::int4 - {k} AS v");
            let v: i32 = s::within(
                &ctx,
                STEP,
                sqlx::query_scalar(&sql).bind(100).fetch_one(&mut conn),
            )
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {sql}: {e}"));
            assert_eq!(v, 100 - k, "{ctx}: {sql}");
        }
    }
    s::within(who, STEP, conn.close())
        .await
        .unwrap_or_else(|e| panic!("{who}: close: {e}"));
}
