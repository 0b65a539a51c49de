//! Many short connect/query/close cycles.

use super::*;

const SHORT_WORKERS: usize = 5;
const SHORT_EACH: usize = 10;

/// After the workload the backends go back to the pool; nothing holds more than its size.
async fn backends_settle(env: &Env) {
    if env.direct_mode {
        return;
    }
    let direct = env.direct().await;
    let settled = s::eventually(Duration::from_secs(10), || async {
        pgtide_backends(&direct)
            .await
            .map(|n| n <= POOL as i64)
            .unwrap_or(false)
    })
    .await;
    assert!(
        settled,
        "more than {POOL} backends of user app stayed after short connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_many_short_connections() {
    let env = Env::start("SELECT 1").await;
    let tasks = (0..SHORT_WORKERS)
        .map(|w| {
            let url = env.url();
            tokio::spawn(async move {
                for k in 0..SHORT_EACH {
                    let ctx = format!("tokio-postgres worker {w} connection {k}");
                    s::within(&ctx, STEP, async {
                        let (c, conn) = s::connect_with_handle(&url)
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: connect: {}", tp_err(&e)));
                        let v = (w * 100 + k) as i32;
                        let got: i32 = c
                            .query_one("SELECT $1::int4 + 1", &[&v])
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: query: {}", tp_err(&e)))
                            .get(0);
                        assert_eq!(got, v + 1, "{ctx}: answer");
                        let user = s::scalar(&c, "SELECT current_user").await;
                        assert_eq!(user, "app", "{ctx}: current_user");
                        drop(c);
                        // The connection task ends cleanly once the client is gone (Terminate).
                        conn.await.expect("connection task").unwrap_or_else(|e| {
                            panic!("{ctx}: connection ended with {}", tp_err(&e))
                        });
                    })
                    .await;
                }
            })
        })
        .collect();
    join_clients("tokio-postgres short connections", tasks).await;
    backends_settle(&env).await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_many_short_connections() {
    let env = Env::start("SELECT 1").await;
    let tasks = (0..SHORT_WORKERS)
        .map(|w| {
            let opts: PgConnectOptions = env.url().parse().expect("URL");
            tokio::spawn(async move {
                for k in 0..SHORT_EACH {
                    let ctx = format!("sqlx worker {w} connection {k}");
                    s::within(&ctx, STEP, async {
                        let mut conn = PgConnection::connect_with(&opts)
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: connect: {e}"));
                        let v = (w * 100 + k) as i32;
                        let got: i32 = sqlx::query_scalar("SELECT $1::int4 + 1")
                            .bind(v)
                            .fetch_one(&mut conn)
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: query: {e}"));
                        assert_eq!(got, v + 1, "{ctx}: answer");
                        conn.ping()
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: ping (a bare Sync): {e}"));
                        conn.close()
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
                    })
                    .await;
                }
            })
        })
        .collect();
    join_clients("sqlx short connections", tasks).await;
    backends_settle(&env).await;
    env.finish().await;
}
