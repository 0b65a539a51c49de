//! Reloading under load (in-process and through SIGHUP to the real binary), draining on
//! SIGTERM, and stopping on SIGINT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgtide_config::PoolMode;
use pgtide_suite as s;
use s::process::Process;
use tokio_postgres::error::SqlState;

async fn start_cluster() -> Arc<pgtide_devcluster::Cluster> {
    Arc::new(
        tokio::task::spawn_blocking(|| s::cluster(0))
            .await
            .expect("cluster task"),
    )
}

async fn bounded<T>(what: &str, limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: still not done after {limit:?}"))
}

// ---------------------------------------------------------------------------------------------
// In-process reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_resized_under_pgbench_load() {
    let cluster = start_cluster().await;
    let server = Arc::new(s::start(s::config(&cluster, PoolMode::Transaction, 10)).await);
    let url = s::app_url(&server);
    s::pgbench_init(&url, 1).await;

    let bench_url = url.clone();
    let bench = tokio::spawn(async move {
        s::pgbench_ok(
            &bench_url,
            &["-n", "-c", "20", "-j", "2", "-T", "6", "-M", "extended"],
        )
        .await
    });
    // Wait for pgbench's clients and its first transactions before the first resize.
    let (srv, cl) = (&server, &cluster);
    assert!(
        s::eventually(Duration::from_secs(20), || async move {
            srv.client_count() >= 20
                && s::primary_sql(cl, s::APP_DB, "SELECT count(*) > 0 FROM pgbench_history").await
                    == "t"
        })
        .await,
        "pgbench never got going"
    );
    let pool = server.shared.pools.all()[0].clone();

    // Watch the pool while it is resized: it never holds more connections than the larger of
    // the size before and after the latest change (the connections in flight when it shrank).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let (mut previous, mut current) = (10usize, 10usize);
            let mut violations = Vec::new();
            let mut samples = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let stats = pool.stats();
                if stats.size != current {
                    previous = current;
                    current = stats.size;
                }
                if stats.open > previous.max(current) {
                    violations.push((previous, stats));
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, violations)
        })
    };

    for size in [3usize, 15, 5] {
        // A resize every second or so, spread over pgbench's 6 s.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mut config = (**server.shared.config.load()).clone();
        config.pool.size = size;
        let diff = server.reload(config);
        assert!(diff.restart_required.is_empty(), "{diff:?}");
        eprintln!("resized to {size}: {:?}", pool.stats());
    }
    let summary = bounded("pgbench", Duration::from_secs(60), bench)
        .await
        .expect("pgbench task");
    eprintln!("pgbench under resizing: {summary:?}");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (samples, violations) = watcher.await.expect("watcher");
    assert!(
        violations.is_empty(),
        "{} of {samples} samples had more open connections than the pool allowed, e.g. {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );

    // Once the load is gone the pool settles at the last size.
    assert!(
        s::eventually(Duration::from_secs(10), || {
            let pool = pool.clone();
            async move {
                let st = pool.stats();
                st.in_use == 0 && st.open <= 5
            }
        })
        .await,
        "pool did not settle at size 5: {:?}",
        pool.stats()
    );
    let stats = pool.stats();
    assert_eq!(stats.size, 5, "{stats:?}");
    let on_primary: usize = s::primary_sql(
        &cluster,
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'",
    )
    .await
    .parse()
    .expect("number");
    assert!(
        on_primary <= 5,
        "{on_primary} backends on the primary for a pool of 5"
    );
    // The resized pool still serves.
    let client = s::connect(&url).await.expect("connect");
    let r: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(r, 1);
    drop(client);
    match Arc::try_unwrap(server) {
        Ok(server) => server.shutdown(s::Shutdown::Immediate).await,
        Err(_) => panic!("server handle still shared"),
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary and its signals

fn write_config(
    path: &std::path::Path,
    cluster: &pgtide_devcluster::Cluster,
    port: u16,
    size: usize,
) {
    let primary = cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    let http_port = pgtide_devcluster::free_port();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
http_listen = "127.0.0.1:{http_port}"
shutdown_timeout = "30s"

[pool]
mode = "transaction"
size = {size}
min_idle = 0

[[databases]]
name = "{db}"
primary = "{primary}"

[[users]]
name = "{user}"
password = "{password}"

[[users]]
name = "ops"
password = "ops-secret"
admin = true
"#,
        db = s::APP_DB,
        user = s::APP_USER,
        password = s::APP_PASSWORD,
    );
    // Write-then-rename so a reload never reads a half-written file.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("replace config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sighup_reload_sigterm_drain_sigint_stop() {
    let binary = s::pgtide_binary();
    eprintln!("using {}", binary.display());
    let cluster = start_cluster().await;
    let config_path = cluster.dir().join("pgtide-test.toml");
    let port = pgtide_devcluster::free_port();
    write_config(&config_path, &cluster, port, 10);
    let mut process = Process::start(&config_path, port).await;
    let url = process.url();

    // SIGHUP while pgbench runs: no failed transaction, and the log says so.
    s::pgbench_init(&url, 1).await;
    let bench_url = url.clone();
    let bench = tokio::spawn(async move {
        s::pgbench_ok(&bench_url, &["-n", "-c", "10", "-j", "2", "-T", "5"]).await
    });
    let cl = &cluster;
    assert!(
        s::eventually(Duration::from_secs(20), || async move {
            s::primary_sql(cl, s::APP_DB, "SELECT count(*) > 0 FROM pgbench_history").await == "t"
        })
        .await,
        "pgbench never got going; log:\n{}",
        process.log()
    );
    for (i, size) in [4usize, 12].into_iter().enumerate() {
        write_config(&config_path, &cluster, port, size);
        process.signal("HUP");
        let reloaded = process
            .log_says("config reloaded", i, Duration::from_secs(10))
            .await;
        assert!(
            reloaded,
            "no 'config reloaded' in the log after SIGHUP:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(1000)).await; // spread the reloads over the run
    }
    let summary = bounded("pgbench", Duration::from_secs(60), bench)
        .await
        .expect("pgbench task");
    eprintln!("pgbench across SIGHUP reloads: {summary:?}");
    assert!(
        !process.log().contains("reload rejected"),
        "log:\n{}",
        process.log()
    );

    // SIGTERM: the idle client is told 57P01 and closed; the client in a transaction may finish
    // it, then is told 57P01; the process exits 0.
    let (idle, idle_conn) = s::connect_with_handle(&url).await.expect("connect idle");
    let (busy, busy_conn) = s::connect_with_handle(&url).await.expect("connect busy");
    idle.batch_execute("CREATE TABLE drain_check (id int)")
        .await
        .expect("the idle client works");
    busy.batch_execute("BEGIN; INSERT INTO drain_check VALUES (1)")
        .await
        .expect("begin");
    let term_at = Instant::now();
    process.signal("TERM");
    let idle_end = bounded("idle client close", Duration::from_secs(10), idle_conn)
        .await
        .expect("idle connection task");
    let idle_err = idle_end.expect_err("the idle client should get an error on SIGTERM");
    assert_eq!(
        idle_err.code(),
        Some(&SqlState::ADMIN_SHUTDOWN),
        "idle client: {idle_err}"
    );
    assert!(
        idle.simple_query("SELECT 1").await.is_err(),
        "the idle client's connection must be closed"
    );
    drop(idle);
    // New clients are not accepted while draining.
    let refused = s::connect(&url).await;
    assert!(refused.is_err(), "a new client was accepted while draining");
    // The transaction still commits.
    busy.batch_execute("INSERT INTO drain_check VALUES (2); COMMIT")
        .await
        .expect("the in-transaction client may finish its transaction while draining");
    let busy_end = bounded("busy client close", Duration::from_secs(10), busy_conn)
        .await
        .expect("busy connection task");
    let busy_err = busy_end.expect_err("the busy client should get 57P01 after its COMMIT");
    assert_eq!(
        busy_err.code(),
        Some(&SqlState::ADMIN_SHUTDOWN),
        "busy client: {busy_err}"
    );
    drop(busy);
    let status = process.exit(Duration::from_secs(30)).await;
    eprintln!(
        "SIGTERM drain: exited {status:?} after {:?}",
        term_at.elapsed()
    );
    assert!(
        status.success(),
        "pgtide exited {status:?} on SIGTERM; log:\n{}",
        process.log()
    );
    let committed = cluster
        .primary()
        .psql_db(s::APP_DB, "SELECT count(*) FROM drain_check")
        .expect("count");
    assert_eq!(
        committed, "2",
        "the drained transaction must have committed"
    );

    // SIGINT on a fresh instance (with a client connected): a prompt clean stop.
    let port = pgtide_devcluster::free_port();
    write_config(&config_path, &cluster, port, 10);
    let mut process = Process::start(&config_path, port).await;
    let (client, conn) = s::connect_with_handle(&process.url())
        .await
        .expect("connect");
    client
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("begin");
    let int_at = Instant::now();
    process.signal("INT");
    let status = process.exit(Duration::from_secs(15)).await;
    eprintln!("SIGINT: exited {status:?} after {:?}", int_at.elapsed());
    assert!(
        status.success(),
        "pgtide exited {status:?} on SIGINT; log:\n{}",
        process.log()
    );
    let end = bounded("client close", Duration::from_secs(10), conn)
        .await
        .expect("connection task");
    assert!(
        end.is_err(),
        "the client should have been told pgtide stopped"
    );
    drop(client);
}

/// The admin console's RELOAD and SHUTDOWN go through the binary: RELOAD re-reads the config
/// file (a new pool size shows in SHOW POOLS), SHUTDOWN drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_admin_console_reload_and_shutdown() {
    let cluster = start_cluster().await;
    let config_path = cluster.dir().join("pgtide-admin.toml");
    let port = pgtide_devcluster::free_port();
    write_config(&config_path, &cluster, port, 5);
    let mut process = Process::start(&config_path, port).await;
    let app = s::connect(&process.url()).await.expect("app");
    app.batch_execute("SELECT 1").await.expect("a pool exists");
    let admin_url = format!("postgres://ops:ops-secret@127.0.0.1:{port}/pgtide");
    let admin = s::connect(&admin_url).await.expect("admin console");
    assert_eq!(pool_size(&admin).await, "5");
    write_config(&config_path, &cluster, port, 7);
    admin.simple_query("RELOAD").await.expect("reload");
    assert_eq!(pool_size(&admin).await, "7", "log:\n{}", process.log());
    admin.simple_query("SHUTDOWN").await.expect("shutdown");
    let status = process.exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "pgtide exited {status:?} after SHUTDOWN; log:\n{}",
        process.log()
    );
}

/// The `size` column of SHOW POOLS (one pool).
async fn pool_size(admin: &tokio_postgres::Client) -> String {
    admin
        .simple_query("SHOW POOLS")
        .await
        .expect("show pools")
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get("size").map(str::to_string),
            _ => None,
        })
        .expect("a pool row")
}
