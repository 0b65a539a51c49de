//! COPY FROM STDIN and COPY TO STDOUT, with failures at CopyDone, CopyFail and rollback.

use super::*;

const COPY_TABLE: &str = "
    CREATE TABLE copy_rows (id int4 PRIMARY KEY, owner int4 NOT NULL, payload text NOT NULL);";
const COPY_ROUNDS: usize = 3;
const COPY_ROWS: usize = 300;

/// COPY text for one client's round: ids owner * 10000 + round * 1000 + k; payloads with a tab
/// and a backslash, escaped as COPY text wants them.
fn copy_text(owner: usize, round: usize) -> String {
    (0..COPY_ROWS)
        .map(|k| {
            let id = owner * 10_000 + round * 1000 + k;
            format!("{id}\t{owner}\tp {owner}/{round}/{k} tab\\there back\\\\slash\n")
        })
        .collect()
}

fn copy_out_sql(owner: usize) -> String {
    format!("COPY (SELECT id, owner, payload FROM copy_rows WHERE owner = {owner} ORDER BY id) TO STDOUT")
}

const COPY_IN: &str = "COPY copy_rows (id, owner, payload) FROM STDIN";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_copy_in_and_out() {
    let env = Env::start(COPY_TABLE).await;
    let tasks = (0..CLIENTS)
        .map(|t| tokio::spawn(tp_copy_client(env.url(), t)))
        .collect();
    join_clients("tokio-postgres COPY", tasks).await;
    check_copy_rows(&env).await;
    env.finish().await;
}

async fn check_copy_rows(env: &Env) {
    let direct = env.direct().await;
    let n: i64 = s::within(
        "copy check",
        STEP,
        direct.query_one("SELECT count(*) FROM copy_rows", &[]),
    )
    .await
    .unwrap_or_else(|e| panic!("copy check: {}", tp_err(&e)))
    .get(0);
    assert_eq!(
        n,
        (CLIENTS * COPY_ROUNDS * COPY_ROWS) as i64,
        "rows on the primary after every client's COPY rounds"
    );
}

async fn tp_copy_client(url: String, t: usize) {
    let who = format!("tokio-postgres client {t}");
    let mut c = tp_connect(&url, &who).await;
    let count = tp_prepare(&c, &who, "SELECT count(*) FROM copy_rows WHERE owner = $1").await;
    let owner = t as i32;
    let mut expected = String::new();
    for round in 0..COPY_ROUNDS {
        let ctx = format!("{who} round {round}");
        s::within(&ctx, STEP, async {
            let data = copy_text(t, round);
            let sink = c
                .copy_in::<_, Bytes>(COPY_IN)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: COPY FROM STDIN: {}", tp_err(&e)));
            let mut sink = Box::pin(sink);
            // Three CopyData messages of uneven size.
            let (a, rest) = data.split_at(data.len() / 3);
            let (b, rest) = rest.split_at(rest.len() / 2);
            for chunk in [a, b, rest] {
                sink.send(Bytes::copy_from_slice(chunk.as_bytes()))
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: CopyData: {}", tp_err(&e)));
            }
            let n = sink
                .as_mut()
                .finish()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyDone: {}", tp_err(&e)));
            assert_eq!(n, COPY_ROWS as u64, "{ctx}: rows COPY reported");
            expected.push_str(&data);

            let stream = c
                .copy_out(copy_out_sql(t).as_str())
                .await
                .unwrap_or_else(|e| panic!("{ctx}: COPY TO STDOUT: {}", tp_err(&e)));
            let chunks: Vec<Bytes> = stream
                .try_collect()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: COPY TO STDOUT data: {}", tp_err(&e)));
            let got = String::from_utf8(chunks.concat()).expect("COPY text is UTF-8");
            assert!(
                got == expected,
                "{ctx}: COPY TO STDOUT returned other data than went in ({} vs {} bytes)",
                got.len(),
                expected.len()
            );

            // A duplicate key fails at CopyDone; the connection goes on.
            let sink = c
                .copy_in::<_, Bytes>(COPY_IN)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: second COPY: {}", tp_err(&e)));
            let mut sink = Box::pin(sink);
            let dup = data.lines().next().expect("a row").to_string() + "\n";
            sink.send(Bytes::from(dup))
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyData: {}", tp_err(&e)));
            let err = sink
                .as_mut()
                .finish()
                .await
                .expect_err("a duplicate key must fail the COPY");
            assert_eq!(tp_code(&err), Some("23505"), "{ctx}: {}", tp_err(&err));

            // A sink dropped half-way sends CopyFail; nothing of it stays.
            let sink = c
                .copy_in::<_, Bytes>(COPY_IN)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: third COPY: {}", tp_err(&e)));
            let mut sink = Box::pin(sink);
            let fresh = format!("{}\t{t}\tabandoned\n", 900_000 + t * 100 + round);
            sink.send(Bytes::from(fresh))
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyData: {}", tp_err(&e)));
            drop(sink);

            // COPY inside a transaction that rolls back.
            let tx = c
                .transaction()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: BEGIN: {}", tp_err(&e)));
            let sink = tx
                .copy_in::<_, Bytes>(COPY_IN)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: COPY in tx: {}", tp_err(&e)));
            let mut sink = Box::pin(sink);
            let fresh = format!("{}\t{t}\trolled back\n", 800_000 + t * 100 + round);
            sink.send(Bytes::from(fresh))
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyData in tx: {}", tp_err(&e)));
            let n = sink
                .as_mut()
                .finish()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyDone in tx: {}", tp_err(&e)));
            assert_eq!(n, 1, "{ctx}: rows COPY reported in the transaction");
            tx.rollback()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: ROLLBACK: {}", tp_err(&e)));

            let n: i64 = c
                .query_one(&count, &[&owner])
                .await
                .unwrap_or_else(|e| panic!("{ctx}: count after: {}", tp_err(&e)))
                .get(0);
            assert_eq!(
                n,
                ((round + 1) * COPY_ROWS) as i64,
                "{ctx}: own rows after the round"
            );
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_copy_in_and_out() {
    let env = Env::start(COPY_TABLE).await;
    let mut tasks: Vec<JoinHandle<()>> = (0..CLIENTS - 1)
        .map(|t| tokio::spawn(sqlx_copy_client(env.url(), t)))
        .collect();
    // The last client copies through a sqlx pool (PgPoolCopyExt) instead of one connection.
    let pool = sqlx_pool(&env.url(), 2).await;
    let t = CLIENTS - 1;
    let pool2 = pool.clone();
    tasks.push(tokio::spawn(async move {
        let mut expected = String::new();
        for round in 0..COPY_ROUNDS {
            let ctx = format!("sqlx pool client round {round}");
            s::within(&ctx, STEP, async {
                let data = copy_text(t, round);
                let mut copy = pool2
                    .copy_in_raw(COPY_IN)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: COPY FROM STDIN: {e}"));
                copy.send(data.as_bytes())
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: CopyData: {e}"));
                let n = copy
                    .finish()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: CopyDone: {e}"));
                assert_eq!(n, COPY_ROWS as u64, "{ctx}: rows COPY reported");
                expected.push_str(&data);
                let chunks: Vec<Bytes> = pool2
                    .copy_out_raw(&copy_out_sql(t))
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: COPY TO STDOUT: {e}"))
                    .try_collect()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: COPY TO STDOUT data: {e}"));
                let got = String::from_utf8(chunks.concat()).expect("UTF-8");
                assert!(
                    got == expected,
                    "{ctx}: COPY TO STDOUT returned other data than went in ({} vs {} bytes)",
                    got.len(),
                    expected.len()
                );
            })
            .await;
        }
    }));
    join_clients("sqlx COPY", tasks).await;
    s::within("sqlx pool close", STEP, pool.close()).await;
    check_copy_rows(&env).await;
    env.finish().await;
}

async fn sqlx_copy_client(url: String, t: usize) {
    let who = format!("sqlx client {t}");
    let mut conn = sqlx_connect(&url.parse().expect("URL"), &who).await;
    let mut expected = String::new();
    for round in 0..COPY_ROUNDS {
        let ctx = format!("{who} round {round}");
        s::within(&ctx, STEP, async {
            let data = copy_text(t, round);
            let mut copy = conn
                .copy_in_raw(COPY_IN)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: COPY FROM STDIN: {e}"));
            let (a, rest) = data.split_at(data.len() / 3);
            let (b, rest) = rest.split_at(rest.len() / 2);
            for chunk in [a, b, rest] {
                copy.send(chunk.as_bytes())
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: CopyData: {e}"));
            }
            let n = copy
                .finish()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyDone: {e}"));
            assert_eq!(n, COPY_ROWS as u64, "{ctx}: rows COPY reported");
            expected.push_str(&data);

            let chunks: Vec<Bytes> = conn
                .copy_out_raw(&copy_out_sql(t))
                .await
                .unwrap_or_else(|e| panic!("{ctx}: COPY TO STDOUT: {e}"))
                .try_collect()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: COPY TO STDOUT data: {e}"));
            let got = String::from_utf8(chunks.concat()).expect("UTF-8");
            assert!(
                got == expected,
                "{ctx}: COPY TO STDOUT returned other data than went in ({} vs {} bytes)",
                got.len(),
                expected.len()
            );

            // Duplicate key: the error comes at finish, and the connection goes on.
            let mut copy = conn
                .copy_in_raw(COPY_IN)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: second COPY: {e}"));
            let dup = data.lines().next().expect("a row").to_string() + "\n";
            copy.send(dup.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyData: {e}"));
            let err = copy
                .finish()
                .await
                .expect_err("a duplicate key must fail the COPY");
            assert_eq!(sqlx_code(&err).as_deref(), Some("23505"), "{ctx}: {err}");

            // Aborted by the client with CopyFail.
            let mut copy = conn
                .copy_in_raw(COPY_IN)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: third COPY: {e}"));
            let fresh = format!("{}\t{t}\tabandoned\n", 900_000 + t * 100 + round);
            copy.send(fresh.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyData: {e}"));
            copy.abort("the test changed its mind")
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyFail: {e}"));

            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM copy_rows WHERE owner = $1")
                .bind(t as i32)
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: count after: {e}"));
            assert_eq!(
                n,
                ((round + 1) * COPY_ROWS) as i64,
                "{ctx}: own rows after the round"
            );
        })
        .await;
    }
    s::within(&who, STEP, conn.close())
        .await
        .unwrap_or_else(|e| panic!("{who}: close: {e}"));
}
