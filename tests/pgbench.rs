//! pgbench through pgtide: initialisation (COPY), the TPC-B-like load in every query mode and
//! both pool modes, and many more clients than backends in transaction mode.

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;

async fn start_cluster() -> pgtide_devcluster::Cluster {
    tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task")
}

/// `pgbench -i -s 1`, then 8 clients for 3 s in each query mode.
async fn tpcb_in_every_query_mode(mode: PoolMode) {
    let cluster = start_cluster().await;
    // Session mode needs a backend per client.
    let server = s::start(s::config(&cluster, mode, 10)).await;
    let url = s::app_url(&server);
    s::pgbench_init(&url, 1).await;
    let accounts = cluster
        .primary()
        .psql_db(s::APP_DB, "SELECT count(*) FROM pgbench_accounts")
        .expect("count accounts");
    assert_eq!(accounts, "100000", "pgbench -i must have copied every row");
    for query_mode in ["simple", "extended", "prepared"] {
        s::pgbench_ok(
            &url,
            &["-n", "-c", "8", "-j", "2", "-T", "3", "-M", query_mode],
        )
        .await;
    }
    // Everything went back: no client, nothing in use.
    let pool = server.shared.pools.all()[0].clone();
    assert!(
        s::eventually(Duration::from_secs(10), || {
            let pool = pool.clone();
            async move { pool.stats().in_use == 0 }
        })
        .await,
        "backends still in use after pgbench: {:?}",
        pool.stats()
    );
    assert!(pool.stats().open <= 10, "{:?}", pool.stats());
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcb_transaction_mode() {
    tpcb_in_every_query_mode(PoolMode::Transaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcb_session_mode() {
    tpcb_in_every_query_mode(PoolMode::Session).await;
}

/// 100 clients over a pool of 10 backends (PostgreSQL allows 300 connections, pgtide 10000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_over_ten_backends() {
    let cluster = start_cluster().await;
    // Default checkout_timeout (5 s): transactions are short, so the queue moves fast.
    let server = s::start(s::config(&cluster, PoolMode::Transaction, 10)).await;
    let url = s::app_url(&server);
    s::pgbench_init(&url, 1).await;
    let pool = server.shared.pools.all()[0].clone();
    for query_mode in ["simple", "extended"] {
        s::pgbench_ok(
            &url,
            &["-n", "-c", "100", "-j", "2", "-T", "5", "-M", query_mode],
        )
        .await;
        let stats = pool.stats();
        assert!(
            stats.open <= 10,
            "more backends than the pool size: {stats:?}"
        );
    }
    let backends = cluster
        .primary()
        .psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'")
        .expect("count backends");
    let backends: usize = backends.parse().expect("number");
    assert!(
        backends <= 10,
        "{backends} backends on the primary for a pool of 10"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

/// Issue 3's bar: `pgbench -M prepared` with 50 clients over a pool of 5. Every client prepares
/// its statements with the same names (P_0, P_1, ...) and they must follow it to whichever of the
/// five backends serves its next transaction. PgBouncer 1.18 fails this outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_fifty_clients_over_five_backends() {
    let cluster = start_cluster().await;
    let server = s::start(s::config(&cluster, PoolMode::Transaction, 5)).await;
    let url = s::app_url(&server);
    s::pgbench_init(&url, 1).await;
    // pgbench_ok asserts exit 0, transactions processed and zero failures.
    s::pgbench_ok(
        &url,
        &["-n", "-c", "50", "-j", "2", "-T", "5", "-M", "prepared"],
    )
    .await;
    // The select-only script too: every transaction is one Bind/Execute of a named statement.
    s::pgbench_ok(
        &url,
        &[
            "-n", "-S", "-c", "50", "-j", "2", "-T", "3", "-M", "prepared",
        ],
    )
    .await;
    let pool = server.shared.pools.all()[0].clone();
    let stats = pool.stats();
    assert!(
        stats.open <= 5,
        "more backends than the pool size: {stats:?}"
    );
    let backends: usize = cluster
        .primary()
        .psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'")
        .expect("count backends")
        .parse()
        .expect("number");
    assert!(
        backends <= 5,
        "{backends} backends on the primary for a pool of 5"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
