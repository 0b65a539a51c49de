//! Explicit transactions with commit, rollback and savepoints, and errors inside them.

use super::*;

const LEDGER: &str = "
    CREATE TABLE ledger (client int4 NOT NULL, n int4 NOT NULL, note text NOT NULL,
                         PRIMARY KEY (client, n));";
const INSERT_LEDGER: &str = "INSERT INTO ledger (client, n, note) VALUES ($1, $2, $3)";
const COUNT_LEDGER: &str = "SELECT count(*) FROM ledger WHERE client = $1";
const TX_ROUNDS: usize = 16;

/// What each client must have committed after TX_ROUNDS rounds: rounds 0 and 3 of every four
/// commit two rows each.
fn committed_rows() -> i64 {
    (0..TX_ROUNDS).filter(|i| i % 4 == 0 || i % 4 == 3).count() as i64 * 2
}

/// Every client's committed rows and nothing from a rolled-back or failed transaction.
async fn check_ledger(env: &Env) {
    let direct = env.direct().await;
    let rows = s::within(
        "ledger check",
        STEP,
        direct.query(
            "SELECT client, count(*), count(*) FILTER (WHERE note <> 'commit')
             FROM ledger GROUP BY client ORDER BY client",
            &[],
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("ledger check: {}", tp_err(&e)));
    let got: Vec<(i32, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want: Vec<(i32, i64, i64)> = (0..CLIENTS as i32)
        .map(|c| (c, committed_rows(), 0))
        .collect();
    assert_eq!(
        got, want,
        "per client (rows, rows not from a committed transaction) on the primary afterwards"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_transactions_commit_rollback_and_errors() {
    let env = Env::start(LEDGER).await;
    let tasks = (0..CLIENTS)
        .map(|t| tokio::spawn(tp_transaction_client(env.url(), t)))
        .collect();
    join_clients("tokio-postgres transactions", tasks).await;
    check_ledger(&env).await;
    env.finish().await;
}

async fn tp_transaction_client(url: String, t: usize) {
    let who = format!("tokio-postgres client {t}");
    let mut c = tp_connect(&url, &who).await;
    let insert = tp_prepare(&c, &who, INSERT_LEDGER).await;
    let count = tp_prepare(&c, &who, COUNT_LEDGER).await;
    let divide = tp_prepare(&c, &who, "SELECT 100 / $1::int4").await;
    let client = t as i32;
    let mut committed = 0i64;
    for i in 0..TX_ROUNDS {
        let ctx = format!("{who} round {i}");
        let n = i as i32 * 10;
        s::within(&ctx, STEP, async {
            let mut tx = c
                .transaction()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: BEGIN: {}", tp_err(&e)));
            match i % 4 {
                0 => {
                    for k in [n, n + 1] {
                        tx.execute(&insert, &[&client, &k, &"commit"])
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: insert {k}: {}", tp_err(&e)));
                    }
                    let inside: i64 = tx
                        .query_one(&count, &[&client])
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: count in tx: {}", tp_err(&e)))
                        .get(0);
                    assert_eq!(
                        inside,
                        committed + 2,
                        "{ctx}: own rows inside the transaction"
                    );
                    // A named portal read three rows at a time (Execute with a row limit,
                    // PortalSuspended in between).
                    let portal = tx
                        .bind(
                            "SELECT n FROM ledger WHERE client = $1 ORDER BY n",
                            &[&client],
                        )
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: bind portal: {}", tp_err(&e)));
                    let mut seen: Vec<i32> = Vec::new();
                    loop {
                        let batch = tx
                            .query_portal(&portal, 3)
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: portal fetch: {}", tp_err(&e)));
                        if batch.is_empty() {
                            break;
                        }
                        assert!(batch.len() <= 3, "{ctx}: portal batch of {}", batch.len());
                        seen.extend(batch.iter().map(|r| r.get::<_, i32>(0)));
                    }
                    assert_eq!(
                        seen.len() as i64,
                        committed + 2,
                        "{ctx}: rows read through the portal: {seen:?}"
                    );
                    assert!(
                        seen.windows(2).all(|w| w[0] < w[1]) && seen.ends_with(&[n, n + 1]),
                        "{ctx}: portal rows out of order or missing the new ones: {seen:?}"
                    );
                    tx.commit()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: COMMIT: {}", tp_err(&e)));
                    committed += 2;
                }
                1 => {
                    tx.execute(&insert, &[&client, &n, &"rolled back"])
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: insert: {}", tp_err(&e)));
                    if i % 8 == 1 {
                        tx.rollback()
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: ROLLBACK: {}", tp_err(&e)));
                    } else {
                        // Dropped: tokio-postgres sends ROLLBACK on its own.
                        drop(tx);
                    }
                }
                2 => {
                    // Unique violation, then the transaction is aborted until ROLLBACK.
                    tx.execute(&insert, &[&client, &n, &"duplicate"])
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: first insert: {}", tp_err(&e)));
                    let err = tx
                        .execute(&insert, &[&client, &n, &"duplicate"])
                        .await
                        .expect_err("a duplicate key must fail");
                    assert_eq!(tp_code(&err), Some("23505"), "{ctx}: {}", tp_err(&err));
                    let err = tx
                        .query_one(&count, &[&client])
                        .await
                        .expect_err("an aborted transaction must refuse statements");
                    assert_eq!(tp_code(&err), Some("25P02"), "{ctx}: {}", tp_err(&err));
                    tx.rollback()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: ROLLBACK: {}", tp_err(&e)));
                }
                _ => {
                    // Division by zero inside a savepoint, which is rolled back; the outer
                    // transaction goes on and commits.
                    tx.execute(&insert, &[&client, &n, &"commit"])
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: insert: {}", tp_err(&e)));
                    let sp = tx
                        .savepoint("before_divide")
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: SAVEPOINT: {}", tp_err(&e)));
                    let err = sp
                        .query_one(&divide, &[&0i32])
                        .await
                        .expect_err("100 / 0 must fail");
                    assert_eq!(tp_code(&err), Some("22012"), "{ctx}: {}", tp_err(&err));
                    sp.rollback()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: ROLLBACK TO SAVEPOINT: {}", tp_err(&e)));
                    tx.execute(&insert, &[&client, &(n + 1), &"commit"])
                        .await
                        .unwrap_or_else(|e| {
                            panic!("{ctx}: insert after savepoint: {}", tp_err(&e))
                        });
                    tx.commit()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: COMMIT: {}", tp_err(&e)));
                    committed += 2;
                    // Pipelined, the failing statement in the middle fails alone: each has
                    // its own Sync.
                    let (four, zero, five): ([Param; 1], [Param; 1], [Param; 1]) =
                        ([&4i32], [&0i32], [&5i32]);
                    let (a, b, d) = tokio::join!(
                        c.query_one(&divide, &four),
                        c.query_one(&divide, &zero),
                        c.query_one(&divide, &five),
                    );
                    let a = a.unwrap_or_else(|e| panic!("{ctx}: pipelined 100/4: {}", tp_err(&e)));
                    assert_eq!(a.get::<_, i32>(0), 25, "{ctx}: pipelined 100 / 4");
                    let err = b.expect_err("pipelined 100 / 0 must fail");
                    assert_eq!(tp_code(&err), Some("22012"), "{ctx}: {}", tp_err(&err));
                    let d = d.unwrap_or_else(|e| panic!("{ctx}: pipelined 100/5: {}", tp_err(&e)));
                    assert_eq!(d.get::<_, i32>(0), 20, "{ctx}: pipelined 100 / 5");
                    // And outside a transaction the same error leaves the connection usable.
                    let err = c
                        .query_one(&divide, &[&0i32])
                        .await
                        .expect_err("100 / 0 must fail");
                    assert_eq!(tp_code(&err), Some("22012"), "{ctx}: {}", tp_err(&err));
                }
            }
            let seen: i64 = c
                .query_one(&count, &[&client])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: count after: {}", tp_err(&e)))
                .get(0);
            assert_eq!(
                seen, committed,
                "{ctx}: committed rows seen after the transaction"
            );
            let q: i32 = c
                .query_one(&divide, &[&4i32])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: the connection after: {}", tp_err(&e)))
                .get(0);
            assert_eq!(q, 25, "{ctx}: 100 / 4");
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_transactions_commit_rollback_and_errors() {
    let env = Env::start(LEDGER).await;
    let pool = sqlx_pool(&env.url(), CLIENTS).await;
    let tasks = (0..CLIENTS)
        .map(|t| tokio::spawn(sqlx_transaction_client(pool.clone(), t)))
        .collect();
    join_clients("sqlx transactions", tasks).await;
    s::within("sqlx pool close", STEP, pool.close()).await;
    check_ledger(&env).await;
    env.finish().await;
}

async fn sqlx_transaction_client(pool: PgPool, t: usize) {
    let who = format!("sqlx client {t}");
    let client = t as i32;
    let mut committed = 0i64;
    let count = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(COUNT_LEDGER)
            .bind(client)
            .fetch_one(&pool)
            .await
    };
    for i in 0..TX_ROUNDS {
        let ctx = format!("{who} round {i}");
        let n = i as i32 * 10;
        s::within(&ctx, STEP, async {
            let mut tx = pool
                .begin()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: begin: {e}"));
            let insert = |k: i32, note: &'static str| {
                sqlx::query(INSERT_LEDGER).bind(client).bind(k).bind(note)
            };
            match i % 4 {
                0 => {
                    for k in [n, n + 1] {
                        insert(k, "commit")
                            .execute(&mut *tx)
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: insert {k}: {e}"));
                    }
                    let inside: i64 = sqlx::query_scalar(COUNT_LEDGER)
                        .bind(client)
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: count in tx: {e}"));
                    assert_eq!(
                        inside,
                        committed + 2,
                        "{ctx}: own rows inside the transaction"
                    );
                    tx.commit()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: commit: {e}"));
                    committed += 2;
                }
                1 => {
                    insert(n, "rolled back")
                        .execute(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: insert: {e}"));
                    if i % 8 == 1 {
                        tx.rollback()
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: rollback: {e}"));
                    } else {
                        // Dropped: sqlx queues a ROLLBACK before the connection is reused.
                        drop(tx);
                    }
                }
                2 => {
                    insert(n, "duplicate")
                        .execute(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: first insert: {e}"));
                    let err = insert(n, "duplicate")
                        .execute(&mut *tx)
                        .await
                        .expect_err("a duplicate key must fail");
                    assert_eq!(sqlx_code(&err).as_deref(), Some("23505"), "{ctx}: {err}");
                    let err = sqlx::query_scalar::<_, i64>(COUNT_LEDGER)
                        .bind(client)
                        .fetch_one(&mut *tx)
                        .await
                        .expect_err("an aborted transaction must refuse statements");
                    assert_eq!(sqlx_code(&err).as_deref(), Some("25P02"), "{ctx}: {err}");
                    tx.rollback()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: rollback: {e}"));
                }
                _ => {
                    insert(n, "commit")
                        .execute(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: insert: {e}"));
                    // A nested transaction is a savepoint in sqlx.
                    let mut sp = Connection::begin(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: savepoint: {e}"));
                    let err = sqlx::query_scalar::<_, i32>("SELECT 100 / $1::int4")
                        .bind(0)
                        .fetch_one(&mut *sp)
                        .await
                        .expect_err("100 / 0 must fail");
                    assert_eq!(sqlx_code(&err).as_deref(), Some("22012"), "{ctx}: {err}");
                    sp.rollback()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: rollback to savepoint: {e}"));
                    insert(n + 1, "commit")
                        .execute(&mut *tx)
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: insert after savepoint: {e}"));
                    tx.commit()
                        .await
                        .unwrap_or_else(|e| panic!("{ctx}: commit: {e}"));
                    committed += 2;
                    let err = sqlx::query_scalar::<_, i32>("SELECT 100 / $1::int4")
                        .bind(0)
                        .fetch_one(&pool)
                        .await
                        .expect_err("100 / 0 must fail");
                    assert_eq!(sqlx_code(&err).as_deref(), Some("22012"), "{ctx}: {err}");
                }
            }
            let seen = count(pool.clone())
                .await
                .unwrap_or_else(|e| panic!("{ctx}: count after: {e}"));
            assert_eq!(
                seen, committed,
                "{ctx}: committed rows seen after the transaction"
            );
        })
        .await;
    }
}
