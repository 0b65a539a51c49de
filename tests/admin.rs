//! The admin console (database `pgtide`, admin users only): real result sets psql prints, and
//! the commands that act on pools.

use std::time::Duration;

use pgtide_config::{PoolMode, UserConfig};
use pgtide_suite as s;
use tokio_postgres::{Client, SimpleQueryMessage};

const ADMIN: &str = "ops";
const ADMIN_PASSWORD: &str = "ops-secret";

async fn setup() -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, 3);
    let mut admin = UserConfig::new(ADMIN, Some(ADMIN_PASSWORD.into()));
    admin.admin = true;
    config.users.push(admin);
    let server = s::start(config).await;
    (cluster, server)
}

async fn console(server: &s::ServerHandle) -> Client {
    s::connect(&s::url(server, ADMIN, ADMIN_PASSWORD, "pgtide"))
        .await
        .expect("admin console")
}

/// Column names and rows of one SHOW.
async fn show(admin: &Client, what: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let messages = admin
        .simple_query(&format!("SHOW {what}"))
        .await
        .unwrap_or_else(|e| panic!("SHOW {what}: {e:?}"));
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for m in messages {
        if let SimpleQueryMessage::Row(r) = m {
            if columns.is_empty() {
                columns = r.columns().iter().map(|c| c.name().to_string()).collect();
            }
            rows.push(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            );
        }
    }
    (columns, rows)
}

fn column(columns: &[String], rows: &[Vec<String>], name: &str) -> Vec<String> {
    let i = columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {columns:?}"));
    rows.iter().map(|r| r[i].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_commands_describe_pools_clients_servers_and_backends() {
    let (_cluster, server) = setup().await;
    let app = s::connect(&s::app_url(&server)).await.expect("app");
    app.batch_execute("SELECT 1").await.expect("query");
    let listener = s::connect(&format!("{}?application_name=worker", s::app_url(&server)))
        .await
        .expect("listener");
    listener.batch_execute("LISTEN jobs").await.expect("listen");
    let admin = console(&server).await;

    let (cols, rows) = show(&admin, "VERSION").await;
    assert_eq!(cols, ["version"]);
    assert!(rows[0][0].starts_with("pgtide "), "{rows:?}");

    let (cols, rows) = show(&admin, "POOLS").await;
    assert_eq!(column(&cols, &rows, "database"), ["app"]);
    assert_eq!(column(&cols, &rows, "size"), ["3"]);
    assert_eq!(column(&cols, &rows, "mode"), ["transaction"]);

    let (cols, rows) = show(&admin, "CLIENTS").await;
    assert_eq!(
        rows.len(),
        2,
        "two app clients (the console is not one): {rows:?}"
    );
    let pinned = column(&cols, &rows, "pinned");
    let apps = column(&cols, &rows, "application_name");
    let states = column(&cols, &rows, "state");
    let worker = apps
        .iter()
        .position(|a| a == "worker")
        .expect("the LISTEN client");
    assert_eq!(
        pinned[worker], "listen",
        "SHOW CLIENTS says why it is pinned"
    );
    assert_eq!(
        states[worker], "active",
        "a pinned client keeps its backend"
    );
    assert_eq!(pinned[1 - worker], "");
    assert_eq!(states[1 - worker], "idle");

    let (cols, rows) = show(&admin, "SERVERS").await;
    assert_eq!(
        column(&cols, &rows, "state"),
        ["active"],
        "the pinned backend"
    );
    listener
        .batch_execute("UNLISTEN *")
        .await
        .expect("unlisten");
    let (cols, rows) = show(&admin, "SERVERS").await;
    assert_eq!(column(&cols, &rows, "state"), ["idle"], "back in the pool");
    let (cols, rows) = show(&admin, "CLIENTS").await;
    assert_eq!(column(&cols, &rows, "pinned"), ["", ""]);

    let (cols, rows) = show(&admin, "BACKENDS").await;
    assert_eq!(column(&cols, &rows, "role"), ["primary"]);

    let (cols, rows) = show(&admin, "CONFIG").await;
    let keys = column(&cols, &rows, "key");
    let values = column(&cols, &rows, "value");
    let size = keys
        .iter()
        .position(|k| k == "pool.size")
        .expect("pool.size");
    assert_eq!(values[size], "3");

    let err = admin
        .simple_query("SHOW NONSENSE")
        .await
        .expect_err("unknown");
    assert_eq!(err.code().map(|c| c.code()), Some("42601"));
    let err = admin
        .simple_query("DROP TABLE x")
        .await
        .expect_err("unknown command");
    assert_eq!(err.code().map(|c| c.code()), Some("42601"));
    // The console still answers after errors; the extended protocol is refused.
    assert_eq!(show(&admin, "VERSION").await.1.len(), 1);
    assert!(admin.query("SHOW POOLS", &[]).await.is_err());

    // psql prints it.
    let out = s::run_tool(
        "psql",
        vec![
            s::url(&server, ADMIN, ADMIN_PASSWORD, "pgtide"),
            "-c".into(),
            "SHOW POOLS".into(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psql: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("database") && stdout.contains("(1 row)"),
        "{stdout}"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_get_the_console() {
    let (_cluster, server) = setup().await;
    let err = s::connect(&s::url(&server, s::APP_USER, s::APP_PASSWORD, "pgtide"))
        .await
        .expect_err("not an admin");
    assert_eq!(err.code().map(|c| c.code()), Some("28000"), "{err:?}");
    let err = s::connect(&s::url(&server, ADMIN, "wrong", "pgtide"))
        .await
        .expect_err("bad password");
    assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err:?}");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_new_transactions_until_resume_and_reconnect_replaces_backends() {
    let (_cluster, server) = setup().await;
    let admin = console(&server).await;
    let app = s::connect(&s::app_url(&server)).await.expect("app");
    let pid_before = s::scalar(&app, "SELECT pg_backend_pid()").await;

    admin.simple_query("PAUSE app").await.expect("pause");
    let (cols, rows) = show(&admin, "POOLS").await;
    assert_eq!(column(&cols, &rows, "paused"), ["true"]);
    let waiting = tokio::spawn(async move {
        let n = s::scalar(&app, "SELECT 42").await;
        (n, app)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a paused database runs no new transaction"
    );
    admin.simple_query("RESUME").await.expect("resume");
    let (n, app) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("resumed in time")
        .expect("task");
    assert_eq!(n, "42");

    admin
        .simple_query("RECONNECT app")
        .await
        .expect("reconnect");
    let pid_after = s::scalar(&app, "SELECT pg_backend_pid()").await;
    assert_ne!(pid_before, pid_after, "RECONNECT closed the old backend");
    // In-process there is no binary to re-read a config file.
    let err = admin.simple_query("RELOAD").await.expect_err("no binary");
    assert_eq!(err.code().map(|c| c.code()), Some("55000"));
    server.shutdown(s::Shutdown::Immediate).await;
}
