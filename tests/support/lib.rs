//! Shared helpers for the end-to-end tests and benches: a real PostgreSQL cluster from
//! pgtide-devcluster with a few test roles, and pgtide running in-process in front of it.

use std::time::{Duration, Instant};

use pgtide_config::{BackendUrl, Config, DatabaseConfig, PoolMode, UserConfig};
use pgtide_devcluster::{Cluster, ClusterOptions};

pub use pgtide::{ServerHandle, Shutdown};

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
