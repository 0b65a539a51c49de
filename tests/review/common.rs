//! Helpers shared by the review tests of transaction-mode session safety.
#![allow(dead_code)]

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use tokio_postgres::{Client, SimpleQueryMessage};

pub async fn setup(schema: &str) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = s::cluster_with_schema(schema).await;
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    config.pool.checkout_timeout = Duration::from_millis(300);
    s::raw::add_trust_user(&mut config);
    let server = s::start(config).await;
    (cluster, server)
}

/// The first column of the first row, or the SQLSTATE of the error.
pub async fn answer(client: &Client, sql: &str) -> Result<Option<String>, String> {
    let messages = s::within(sql, Duration::from_secs(10), client.simple_query(sql)).await;
    match messages {
        Ok(messages) => Ok(messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })),
        Err(e) => Err(code(&e)),
    }
}

pub fn code(e: &tokio_postgres::Error) -> String {
    s::sqlstate(e)
}

/// What a second client on the shared backend sees (an error, e.g. no backend because the
/// first client is pinned, is `None`).
pub async fn other_sees(server: &s::ServerHandle, sql: &str) -> Option<String> {
    let other = s::connect(&s::app_url(server)).await.expect("other client");
    answer(&other, sql).await.ok().flatten()
}

pub async fn direct(cluster: &pgtide_devcluster::Cluster) -> Client {
    let url = cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    s::connect(&url).await.expect("direct connection")
}

/// Reads a raw client's reply up to ReadyForQuery: first column of its rows, or the SQLSTATE.
pub async fn raw_answer(c: &mut s::raw::Raw, sql: &str) -> Result<Vec<String>, String> {
    c.send(&s::raw::query(sql)).await;
    let reply = c.reader.until_ready().await.expect("reply");
    if let Some((_, e)) = reply.iter().find(|(t, _)| *t == b'E') {
        return Err(s::raw::parse_error(e).code);
    }
    Ok(s::raw::first_column(&reply))
}

/// Runs `f` until it gets past a checkout timeout (53300: the backend is held by a pinned
/// client that is leaving).
pub async fn retry_checkout<T, F, Fut>(mut f: F) -> Result<T, tokio_postgres::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = f().await;
        match &r {
            Err(e) if code(e) == "53300" && std::time::Instant::now() < deadline => continue,
            _ => return r,
        }
    }
}

pub const MY_LOCKS: &str = "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' \
                        AND pid = pg_backend_pid()";
