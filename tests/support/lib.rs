//! Shared helpers for the end-to-end tests and benches: a real PostgreSQL cluster from
//! pgtide-devcluster with a few test roles, and pgtide running in-process in front of it.

use std::time::{Duration, Instant};

use pgtide_config::{BackendUrl, Config, DatabaseConfig, PoolMode, UserConfig};
use pgtide_devcluster::{Cluster, ClusterOptions};

pub use pgtide::{ServerHandle, Shutdown};

pub mod process;
pub mod python;
pub mod raw;
pub mod tls;

/// The backend role pgtide logs in as (SCRAM on the server).
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-secret";
pub const APP_DB: &str = "app";

/// Starts a cluster with the `app` role and database, plus roles that exercise every backend
/// auth method: `md5user` (md5), `clearuser` (cleartext password), `trustuser` (trust).
pub fn cluster(replicas: usize) -> Cluster {
    cluster_with(ClusterOptions {
        replicas,
        ..Default::default()
    })
}

/// A primary without replicas, from async code, with `schema` run in the app database as the
/// superuser.
pub async fn cluster_with_schema(schema: &str) -> Cluster {
    let cluster = tokio::task::spawn_blocking(|| cluster(0))
        .await
        .expect("cluster task");
    cluster.primary().psql_db(APP_DB, schema).expect("schema");
    cluster
}

pub fn cluster_with(mut opts: ClusterOptions) -> Cluster {
    opts.hba.extend([
        "host all md5user 127.0.0.1/32 md5".to_string(),
        "host all clearuser 127.0.0.1/32 password".to_string(),
        "host all trustuser 127.0.0.1/32 trust".to_string(),
    ]);
    let cluster = Cluster::start(opts).expect("start PostgreSQL cluster");
    cluster
        .primary()
        .psql(&format!(
            "CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';
             CREATE DATABASE {APP_DB} OWNER {APP_USER};
             SET password_encryption = 'md5';
             CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
             RESET password_encryption;
             CREATE ROLE clearuser LOGIN PASSWORD 'clearpass';
             CREATE ROLE trustuser LOGIN;
             GRANT ALL ON DATABASE {APP_DB} TO md5user, clearuser, trustuser;"
        ))
        .expect("create test roles");
    cluster
        .primary()
        .psql_db(APP_DB, "GRANT ALL ON SCHEMA public TO PUBLIC;")
        .expect("grant schema");
    cluster
}

/// A config with one database `app` whose primary is the cluster's, listening on a free port.
pub fn config(cluster: &Cluster, mode: PoolMode, size: usize) -> Config {
    let url = cluster.primary().url(APP_USER, APP_PASSWORD, APP_DB);
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.http_listen = "127.0.0.1:0".into();
    config.pool.mode = mode;
    config.pool.size = size;
    config.pool.min_idle = 0;
    config.databases.push(DatabaseConfig::new(
        APP_DB,
        BackendUrl::parse(&url).expect("cluster URL parses"),
    ));
    config
        .users
        .push(UserConfig::new(APP_USER, Some(APP_PASSWORD.to_string())));
    config
}

/// Starts pgtide in-process; panics with every problem if the config is invalid.
pub async fn start(config: Config) -> ServerHandle {
    let problems = config.validate("test");
    assert!(problems.is_empty(), "invalid test config: {problems:?}");
    pgtide::start(config).await.expect("start pgtide")
}

/// [`config`] plus the cluster's replicas with `weights` (one per replica), checked for health
/// every 100 ms so tests need not wait.
pub fn config_with_replicas(
    cluster: &Cluster,
    mode: PoolMode,
    size: usize,
    weights: &[u32],
) -> Config {
    let mut config = config(cluster, mode, size);
    for (replica, weight) in cluster.replicas().iter().zip(weights) {
        let url = replica.url(APP_USER, APP_PASSWORD, APP_DB);
        config.databases[0]
            .replicas
            .push(pgtide_config::ReplicaConfig {
                url: BackendUrl::parse(&url).expect("replica URL parses"),
                weight: *weight,
            });
    }
    config.routing.health_check_interval = Duration::from_millis(100);
    config.routing.unhealthy_after = 2;
    config
}

/// A libpq-style URL pointing at pgtide.
pub fn url(server: &ServerHandle, user: &str, password: &str, db: &str) -> String {
    format!(
        "postgres://{user}:{password}@127.0.0.1:{}/{db}",
        server.local_addr.port()
    )
}

pub fn app_url(server: &ServerHandle) -> String {
    url(server, APP_USER, APP_PASSWORD, APP_DB)
}

/// Connects tokio-postgres and drives the connection in the background.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Polls `check` every 20 ms until it is true or `limit` passes; returns whether it became true.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to 10 s) until the result cache's LISTEN connection is up: before that the cache
/// neither serves nor stores.
pub async fn cache_ready(server: &ServerHandle) {
    assert!(
        eventually(Duration::from_secs(10), || async {
            server.shared.cache.listener_status().listening
        })
        .await,
        "the cache listener never started"
    );
}

/// Where the PostgreSQL client tools (psql, pgbench) are.
pub fn pg_tool(name: &str) -> std::path::PathBuf {
    let dir = pgtide_devcluster::bin_dir().expect("PostgreSQL binaries");
    let p = dir.join(name);
    if p.exists() {
        p
    } else {
        std::path::PathBuf::from(name)
    }
}

/// Runs a PostgreSQL client tool to completion (off the async runtime) and returns its output.
pub async fn run_tool(name: &str, args: Vec<String>) -> std::process::Output {
    let program = pg_tool(name);
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .args(&args)
            .env_remove("PGPASSWORD")
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
    })
    .await
    .expect("tool task")
}

/// Runs SQL on the cluster's primary in the app database directly (as superuser, not through
/// pgtide), on this thread; psql's output.
pub fn app_sql(cluster: &Cluster, sql: &str) -> String {
    cluster.primary().psql_db(APP_DB, sql).expect("direct SQL")
}

/// Runs SQL on the cluster's primary directly (as superuser, not through pgtide), off the async
/// runtime; returns psql's trimmed unaligned, tuples-only output.
pub async fn primary_sql(cluster: &std::sync::Arc<Cluster>, db: &str, sql: &str) -> String {
    let cluster = cluster.clone();
    let (db, sql) = (db.to_string(), sql.to_string());
    tokio::task::spawn_blocking(move || {
        cluster
            .primary()
            .psql_db(&db, &sql)
            .unwrap_or_else(|e| panic!("psql on the primary failed: {e}\nSQL: {sql}"))
    })
    .await
    .expect("psql task")
}

/// Connects tokio-postgres and drives the connection in a task whose handle is returned, so a
/// test can see how the connection ended (e.g. a FATAL 57P01 sent while idle) or abort it.
pub async fn connect_with_handle(
    url: &str,
) -> Result<
    (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    tokio_postgres::Error,
> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    Ok((client, tokio::spawn(conn)))
}

/// The `pgtide` binary next to the test executable (target/<profile>/pgtide).
pub fn pgtide_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> -> target/<profile>/pgtide
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("pgtide"))
        .expect("test executable lives in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "the pgtide binary is missing at {}: run `cargo build -p pgtide` first",
        bin.display()
    );
    bin
}

/// What pgbench reported at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgbenchSummary {
    /// "number of transactions actually processed: N" (or "N/M" with -t).
    pub processed: u64,
    /// "number of failed transactions: N (x%)" (pgbench 15+); None when the line is absent.
    pub failed: Option<u64>,
}

/// Parses pgbench's summary from its stdout; None when there is no "actually processed" line.
pub fn pgbench_summary(stdout: &str) -> Option<PgbenchSummary> {
    let number_after = |prefix: &str| -> Option<u64> {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))?;
        let rest = line.trim_start()[prefix.len()..].trim_start();
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    Some(PgbenchSummary {
        processed: number_after("number of transactions actually processed:")?,
        failed: number_after("number of failed transactions:"),
    })
}

/// Runs pgbench with `args` against `url` (a libpq URI) and asserts it exited 0 and reported
/// at least one transaction and zero failures; returns the summary.
pub async fn pgbench_ok(url: &str, args: &[&str]) -> PgbenchSummary {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.push(url.to_string());
    let started = Instant::now();
    let out = run_tool("pgbench", all).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = pgbench_summary(&stdout);
    eprintln!(
        "pgbench {} -> {:?}, {summary:?} in {:?}",
        args.join(" "),
        out.status,
        started.elapsed()
    );
    let context = || {
        format!(
            "pgbench {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            args.join(" ")
        )
    };
    assert!(
        out.status.success(),
        "pgbench failed ({:?}): {}",
        out.status,
        context()
    );
    let summary = summary.unwrap_or_else(|| panic!("no pgbench summary: {}", context()));
    assert!(
        summary.processed > 0,
        "no transactions processed: {}",
        context()
    );
    assert_eq!(
        summary.failed,
        Some(0),
        "failed transactions: {}",
        context()
    );
    summary
}

/// `pgbench -i -s <scale>` (initialisation runs COPY) through `url`; asserts it succeeded.
pub async fn pgbench_init(url: &str, scale: u32) {
    let args = vec![
        "-i".to_string(),
        "-s".to_string(),
        scale.to_string(),
        "-q".to_string(),
        url.to_string(),
    ];
    let out = run_tool("pgbench", args).await;
    assert!(
        out.status.success(),
        "pgbench -i failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One PostgreSQL for every test of a test binary that shares it; the devcluster watchdog stops
/// it when the test process exits.
pub async fn shared_cluster() -> &'static Cluster {
    static CLUSTER: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
    tokio::task::spawn_blocking(|| CLUSTER.get_or_init(|| cluster(0)))
        .await
        .expect("cluster task")
}

/// Awaits `fut`, turning a hang (nothing within `limit`) into a failure naming `what`.
pub async fn within<T>(
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing happened within {limit:?}"))
}

/// First column of the first row of `sql`, through the simple protocol ("NULL" for NULL).
pub async fn scalar(client: &tokio_postgres::Client, sql: &str) -> String {
    let messages = within(sql, Duration::from_secs(10), client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.get(0).unwrap_or("NULL").to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// The README's `[auth] query` recipe: the auth role, and a SECURITY DEFINER function that reads
/// pg_shadow for it (skipping expired passwords). Run as the superuser in each database.
pub fn auth_lookup_recipe(auth_user: &str, auth_password: &str) -> String {
    format!(
        "CREATE ROLE {auth_user} LOGIN PASSWORD '{auth_password}';
         CREATE FUNCTION public.pgtide_lookup(p_user text, OUT usename name, OUT passwd text)
           RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
           AS $$ SELECT usename, passwd FROM pg_shadow
         WHERE usename = p_user AND (valuntil IS NULL OR valuntil > now()) $$;
         REVOKE ALL ON FUNCTION public.pgtide_lookup(text) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION public.pgtide_lookup(text) TO {auth_user};"
    )
}

/// The SQLSTATE of an error (its text when the server sent none).
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map_or_else(|| e.to_string(), |c| c.code().to_string())
}
