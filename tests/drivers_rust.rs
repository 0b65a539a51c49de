//! Issue 3's driver matrix, Rust part: tokio-postgres and sqlx through pgtide in transaction mode
//! with more clients (8) than backends (3). Each test is a realistic script run by several
//! concurrent connections: named prepared statements (tokio-postgres `prepare`, sqlx's statement
//! cache), explicit transactions and savepoints, search_path per connection, errors inside
//! transactions, COPY both ways, and many short connections. One module per topic under
//! tests/drivers_rust/, each with a tokio-postgres and a sqlx script side by side; this file
//! holds the shared fixture.
//!
//! To tell a driver/test problem from a pgtide one, run the same scripts straight against the
//! primary: `PGTIDE_DRIVERS_DIRECT=1 cargo nextest run --test drivers_rust` (the backend-count
//! check is skipped then, since every client has its own backend).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt};
use pgtide_config::PoolMode;
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolCopyExt, PgPoolOptions};
use sqlx::{Connection, Row};
use tokio::task::JoinHandle;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

const POOL: usize = 3;
const CLIENTS: usize = 8;
/// A tokio-postgres parameter, for parameter arrays that must outlive a `join!`.
type Param<'a> = &'a (dyn ToSql + Sync);
/// Bound for one round of a client's script.
const STEP: Duration = Duration::from_secs(20);
/// Bound for a whole concurrent workload.
const WORKLOAD: Duration = Duration::from_secs(180);

struct Env {
    cluster: Cluster,
    server: s::ServerHandle,
    direct_mode: bool,
}

impl Env {
    /// A fresh cluster, pgtide in transaction mode with a pool of 3, and `schema` applied
    /// directly on the primary as user app.
    async fn start(schema: &str) -> Env {
        let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
            .await
            .expect("cluster task");
        let server = s::start(s::config(&cluster, PoolMode::Transaction, POOL)).await;
        let direct_mode = std::env::var_os("PGTIDE_DRIVERS_DIRECT").is_some();
        let env = Env {
            cluster,
            server,
            direct_mode,
        };
        let direct = env.direct().await;
        s::within("schema setup", STEP, direct.batch_execute(schema))
            .await
            .unwrap_or_else(|e| panic!("schema setup on the primary: {}", tp_err(&e)));
        env
    }

    /// Where the drivers connect: pgtide (or the primary with PGTIDE_DRIVERS_DIRECT).
    fn url(&self) -> String {
        if self.direct_mode {
            self.direct_url()
        } else {
            s::app_url(&self.server)
        }
    }

    /// The primary as user app, tagged so the backend count leaves these connections out.
    fn direct_url(&self) -> String {
        let url = self
            .cluster
            .primary()
            .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
        format!("{url}?application_name={DIRECT_APP_NAME}")
    }

    /// A tokio-postgres connection straight to the primary, for setup and verification.
    async fn direct(&self) -> Client {
        s::within("direct connect", STEP, s::connect(&self.direct_url()))
            .await
            .unwrap_or_else(|e| panic!("connecting to the primary directly: {}", tp_err(&e)))
    }

    /// Checks the primary never holds more backends for user app than the pool size, then
    /// stops pgtide.
    async fn finish(self) {
        if !self.direct_mode {
            let direct = self.direct().await;
            let n = s::within("count backends", STEP, pgtide_backends(&direct))
                .await
                .unwrap_or_else(|e| panic!("pg_stat_activity: {}", tp_err(&e)));
            assert!(
                n <= POOL as i64,
                "{n} backends of user app on the primary after the workload; pgtide's pool size \
                 is {POOL}"
            );
        }
        self.server.shutdown(s::Shutdown::Immediate).await;
    }
}

/// application_name of the test's own direct connections to the primary.
const DIRECT_APP_NAME: &str = "drivers-direct";

/// Backends of user app on the primary other than the test's direct connections: pgtide's.
async fn pgtide_backends(direct: &Client) -> Result<i64, tokio_postgres::Error> {
    let sql = "SELECT count(*) FROM pg_stat_activity
               WHERE usename = 'app' AND backend_type = 'client backend'
                 AND application_name IS DISTINCT FROM $1";
    Ok(direct.query_one(sql, &[&DIRECT_APP_NAME]).await?.get(0))
}

/// A tokio-postgres error with its SQLSTATE and server message when there is one.
fn tp_err(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {}: {}{}",
            db.severity(),
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => format!("{e} ({e:?})"),
    }
}

fn tp_code(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

fn sqlx_code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

async fn tp_connect(url: &str, who: &str) -> Client {
    s::within(who, STEP, s::connect(url))
        .await
        .unwrap_or_else(|e| panic!("{who}: connect: {}", tp_err(&e)))
}

async fn tp_prepare(c: &Client, who: &str, sql: &str) -> tokio_postgres::Statement {
    s::within(who, STEP, c.prepare(sql))
        .await
        .unwrap_or_else(|e| panic!("{who}: prepare {sql:?}: {}", tp_err(&e)))
}

async fn sqlx_connect(opts: &PgConnectOptions, who: &str) -> PgConnection {
    s::within(who, STEP, PgConnection::connect_with(opts))
        .await
        .unwrap_or_else(|e| panic!("{who}: connect: {e}"))
}

async fn sqlx_pool(url: &str, max: usize) -> PgPool {
    let opts: PgConnectOptions = url.parse().expect("sqlx parses the URL");
    s::within(
        "sqlx pool",
        STEP,
        PgPoolOptions::new()
            .max_connections(max as u32)
            .min_connections(0)
            .acquire_timeout(STEP)
            .connect_with(opts),
    )
    .await
    .unwrap_or_else(|e| panic!("sqlx pool connect: {e}"))
}

/// Awaits every client task; re-raises the first panic so its message is the test's failure.
async fn join_clients(what: &str, tasks: Vec<JoinHandle<()>>) {
    let results = s::within(what, WORKLOAD, futures_util::future::join_all(tasks)).await;
    for (i, r) in results.into_iter().enumerate() {
        if let Err(e) = r {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("{what}: client task {i} did not finish: {e}");
        }
    }
}

#[path = "drivers_rust/copy.rs"]
mod copy;
#[path = "drivers_rust/ddl.rs"]
mod ddl;
#[path = "drivers_rust/prepared.rs"]
mod prepared;
#[path = "drivers_rust/search_path.rs"]
mod search_path;
#[path = "drivers_rust/short_connections.rs"]
mod short_connections;
#[path = "drivers_rust/transactions.rs"]
mod transactions;
