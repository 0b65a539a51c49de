//! Authentication end to end: clients proving who they are to pgtide (SCRAM-SHA-256, md5,
//! trust; plain passwords and stored secrets), the errors of docs/reference/sqlstates.md for bad passwords and
//! unknown users/databases, and pgtide logging in to PostgreSQL with every backend auth method.

use std::future::Future;
use std::time::Duration;

use pgtide::internals::{md5_hash, ScramSecret};
use pgtide_config::{AuthMethod, BackendUrl, Config, DatabaseConfig, PoolMode, UserConfig};
use pgtide_devcluster::Cluster;
use pgtide_suite as s;

/// Generous bound meant only to turn a hang into a failure.
const HANG: Duration = Duration::from_secs(10);

async fn cluster() -> &'static Cluster {
    s::shared_cluster().await
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    s::within(what, HANG, fut).await
}

fn user(name: &str, password: Option<&str>, method: Option<AuthMethod>) -> UserConfig {
    let mut u = UserConfig::new(name, password.map(str::to_string));
    u.auth_method = method;
    u
}

fn database(name: &str, url: &str) -> DatabaseConfig {
    DatabaseConfig::new(name, BackendUrl::parse(url).expect("backend URL parses"))
}

/// Connects and runs a query; panics with the error if either fails.
async fn connect_ok(url: &str) -> tokio_postgres::Client {
    let client = within(url, s::connect(url))
        .await
        .unwrap_or_else(|e| panic!("{url}: connect failed: {e:?}"));
    assert_eq!(scalar(&client, "SELECT 40 + 2").await, "42", "{url}");
    client
}

/// Connects expecting an ErrorResponse; returns (SQLSTATE, message).
async fn connect_err(url: &str) -> (String, String) {
    match within(url, s::connect(url)).await {
        Ok(_) => panic!("{url}: connected, expected an error"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("{url}: expected an ErrorResponse, got {e:?}"));
            (db.code().code().to_string(), db.message().to_string())
        }
    }
}

async fn assert_code(url: &str, code: &str) -> String {
    let (got, message) = connect_err(url).await;
    assert_eq!(got, code, "{url}: {message}");
    message
}

async fn scalar(client: &tokio_postgres::Client, sql: &str) -> String {
    s::scalar(client, sql).await
}

async fn base_config() -> Config {
    s::config(cluster().await, PoolMode::Transaction, 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_scram_with_plain_password_and_stored_verifier() {
    let mut config = base_config().await;
    let verifier = ScramSecret::from_password("verifier-pw").to_verifier_string();
    config.users.push(user("scramv", Some(&verifier), None));
    let server = s::start(config).await;

    // Plain-text password in [[users]] (the default method is scram-sha-256).
    let app = connect_ok(&s::app_url(&server)).await;
    let message = assert_code(&s::url(&server, "app", "wrong", "app"), "28P01").await;
    assert!(message.contains("password"), "{message}");
    assert_code(&s::url(&server, "app", "", "app"), "28P01").await;

    // Stored SCRAM verifier.
    connect_ok(&s::url(&server, "scramv", "verifier-pw", "app")).await;
    assert_code(&s::url(&server, "scramv", "app-secret", "app"), "28P01").await;
    assert_code(&s::url(&server, "scramv", "verifier-pw2", "app"), "28P01").await;

    // Failed logins did not disturb the client that got in.
    assert_eq!(scalar(&app, "SELECT current_user").await, "app");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_md5_with_plain_password_and_stored_hash() {
    let mut config = base_config().await;
    config
        .users
        .push(user("md5plain", Some("plain-pw"), Some(AuthMethod::Md5)));
    let hash = md5_hash("md5hashed", "hashed-pw");
    config
        .users
        .push(user("md5hashed", Some(&hash), Some(AuthMethod::Md5)));
    let server = s::start(config).await;

    connect_ok(&s::url(&server, "md5plain", "plain-pw", "app")).await;
    assert_code(&s::url(&server, "md5plain", "plain-pw-x", "app"), "28P01").await;

    connect_ok(&s::url(&server, "md5hashed", "hashed-pw", "app")).await;
    assert_code(&s::url(&server, "md5hashed", "wrong", "app"), "28P01").await;
    // The stored hash itself is not a password.
    assert_code(&s::url(&server, "md5hashed", &hash, "app"), "28P01").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_trust_needs_no_password() {
    let mut config = base_config().await;
    config
        .users
        .push(user("trusted", None, Some(AuthMethod::Trust)));
    let server = s::start(config).await;
    let port = server.local_addr.port();
    let client = connect_ok(&format!("postgres://trusted@127.0.0.1:{port}/app")).await;
    // The backend login is the URL's (app), whatever the client's name.
    assert_eq!(scalar(&client, "SELECT current_user").await, "app");
    // Any password is ignored under trust.
    connect_ok(&s::url(&server, "trusted", "anything", "app")).await;
    // Trust for one user does not open the door for others.
    assert_code(&s::url(&server, "app", "anything", "app"), "28P01").await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_28p01_after_a_full_exchange_and_unknown_database_28000() {
    let server = s::start(base_config().await).await;
    let before = connect_ok(&s::app_url(&server)).await;

    // As PostgreSQL answers: the password check fails, whether or not the user exists.
    let message = assert_code(&s::url(&server, "nobody", "x", "app"), "28P01").await;
    assert_eq!(
        message,
        "password authentication failed for user \"nobody\""
    );
    // A role PostgreSQL knows but pgtide's config does not list.
    assert_code(&s::url(&server, "md5user", "md5pass", "app"), "28P01").await;

    // The right password, but a database pgtide does not serve.
    let message = assert_code(&s::url(&server, "app", "app-secret", "nosuchdb"), "28000").await;
    assert!(message.contains("nosuchdb"), "{message}");
    // ... also when PostgreSQL has it: only [[databases]] count.
    let message = assert_code(&s::url(&server, "app", "app-secret", "postgres"), "28000").await;
    assert!(message.contains("postgres"), "{message}");

    assert_eq!(scalar(&before, "SELECT 1").await, "1");
    connect_ok(&s::app_url(&server)).await;
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_login_with_md5_cleartext_and_trust() {
    let cluster = cluster().await;
    let mut config = base_config().await;
    let primary = cluster.primary();
    config.databases.extend([
        database("via_md5", &primary.url("md5user", "md5pass", "app")),
        database("via_clear", &primary.url("clearuser", "clearpass", "app")),
        database("via_trust", &primary.url("trustuser", "", "app")),
    ]);
    let server = s::start(config).await;
    for (db, backend_user) in [
        ("via_md5", "md5user"),
        ("via_clear", "clearuser"),
        ("via_trust", "trustuser"),
        ("app", "app"),
    ] {
        let client = connect_ok(&s::url(&server, "app", "app-secret", db)).await;
        assert_eq!(
            scalar(&client, "SELECT current_user").await,
            backend_user,
            "{db}"
        );
        // The extended protocol rides the same backend login.
        let row = within(db, client.query_one("SELECT current_user::text", &[]))
            .await
            .unwrap_or_else(|e| panic!("{db}: {e:?}"));
        assert_eq!(row.get::<_, String>(0), backend_user, "{db}");
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_backend_password_is_08006_and_others_keep_working() {
    let cluster = cluster().await;
    let mut config = base_config().await;
    config.databases.push(database(
        "badpw",
        &cluster.primary().url("app", "not-the-password", "app"),
    ));
    let server = s::start(config).await;
    let before = connect_ok(&s::app_url(&server)).await;

    for _ in 0..2 {
        let bad = s::url(&server, "app", "app-secret", "badpw");
        let (code, message) = connect_err(&bad).await;
        assert_eq!(code, "08006", "{message}");
        assert!(
            message.contains("password authentication failed"),
            "the message should name the backend login failure: {message}"
        );
    }

    assert_eq!(scalar(&before, "SELECT 1").await, "1");
    let after = connect_ok(&s::app_url(&server)).await;
    assert_eq!(scalar(&after, "SELECT current_user").await, "app");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_through_scram() {
    let server = s::start(base_config().await).await;
    let args = |url: String| -> Vec<String> {
        ["-X", "-w", "-A", "-t", "-c", "SELECT 40 + 2", &url]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let out = within("psql", s::run_tool("psql", args(s::app_url(&server)))).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{stderr}"
    );

    let wrong = s::url(&server, "app", "wrong", "app");
    let out = within("psql", s::run_tool("psql", args(wrong))).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "psql with a wrong password succeeded"
    );
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
