//! Issue 11, item 15: an SSLRequest is answered `N` before any refusal, as PostgreSQL does —
//! under a burst of connections past max_client_connections (refused after the startup packet
//! with 53300), and for a client silent past the startup deadline (closed without a message,
//! so nothing can be read as the answer to an SSLRequest it sends just then). PostgreSQL,
//! reached directly in the same test, is the oracle.

use std::net::SocketAddr;
use std::sync::Arc;

use pgtide_config::{BackendUrl, Config, PoolMode};
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use s::raw::{add_trust_user, packet, Raw, RAW_USER};

fn primary_addr(cluster: &Cluster) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()))
}

/// pgtide in `mode` in front of `cluster`, logging in to it as its trust role; raw clients log
/// in as [`RAW_USER`].
fn trust_config(cluster: &Cluster, mode: PoolMode, size: usize) -> Config {
    let mut config = s::config(cluster, mode, size);
    let url = format!(
        "postgres://trustuser@127.0.0.1:{}/{}",
        cluster.primary().port(),
        s::APP_DB
    );
    config.databases[0].primary = BackendUrl::parse(&url).expect("trust URL");
    add_trust_user(&mut config);
    config
}

/// A StartupMessage for `user` on the app database.
fn startup(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in [("user", user), ("database", s::APP_DB)] {
        s::raw::cstr(&mut body, k);
        s::raw::cstr(&mut body, v);
    }
    body.push(0);
    packet(3 << 16, &body)
}

/// Concurrent connection attempts in a driver script (sslmode=prefer: each sends an SSLRequest
/// first), all refused: each must fail with 53300, never inside the SSL exchange.
const PSYCOPG_BURST: &str = r#"
import sys, threading, psycopg
url, n = sys.argv[1], int(sys.argv[2])
outcomes = []
def attempt():
    try:
        psycopg.connect(url, sslmode="prefer", connect_timeout=20).close()
        outcomes.append("connected")
    except psycopg.OperationalError as ex:
        outcomes.append(f"{ex.sqlstate} {'too many' in str(ex)} {'SSL' in str(ex)}")
threads = [threading.Thread(target=attempt) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(sorted(set(outcomes)), len(outcomes))
"#;

const ASYNCPG_BURST: &str = r#"
import sys, asyncio, asyncpg
async def attempt(url):
    try:
        await (await asyncpg.connect(url, ssl="prefer", timeout=20)).close()
        return "connected"
    except asyncpg.PostgresError as ex:
        return f"{ex.sqlstate} {type(ex).__name__}"
    except Exception as ex:
        return f"other {type(ex).__name__}: {ex}"
async def main(url, n):
    outcomes = await asyncio.gather(*[attempt(url) for _ in range(n)])
    print(sorted(set(outcomes)), len(outcomes))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"#;

/// SSLRequest, then (after its answer) the startup packet: the answer byte and the SQLSTATE of
/// the refusal ("closed" if the server just closed).
async fn ssl_then_refusal(addr: SocketAddr, user: &str) -> (char, String) {
    let mut raw = Raw::connect_to(addr).await;
    raw.send(&s::raw::ssl_request()).await;
    let answer = raw.reader.byte().await;
    if answer != b'N' {
        return (answer as char, "in place of the SSL answer".into());
    }
    raw.send(&startup(user)).await;
    let code = raw.reader.error().await.map(|e| e.code);
    ('N', code.unwrap_or_else(|| "closed".into()))
}

/// Many at once.
async fn burst(addr: SocketAddr, user: &str, n: usize) -> Vec<(char, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let user = user.to_string();
            tokio::spawn(async move { ssl_then_refusal(addr, &user).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("attempt task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_request_is_answered_before_a_refusal_under_a_burst() {
    const BURST: usize = 60;
    // The oracle: PostgreSQL refusing a role over its connection limit (53300 as well).
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| {
            s::cluster_with(pgtide_devcluster::ClusterOptions {
                hba: vec!["host all limited 127.0.0.1/32 trust".into()],
                ..Default::default()
            })
        })
        .await
        .expect("cluster task"),
    );
    cluster
        .primary()
        .psql("CREATE ROLE limited LOGIN CONNECTION LIMIT 0")
        .expect("role");
    let direct = burst(primary_addr(&cluster), "limited", BURST).await;
    let refused = ('N', "53300".to_string());
    assert!(
        direct.iter().all(|o| *o == refused),
        "PostgreSQL: {direct:?}"
    );

    let mut config = trust_config(&cluster, PoolMode::Transaction, 2);
    config.server.max_client_connections = 2;
    let server = s::start(config).await;
    let _held = [Raw::login(&server).await, Raw::login(&server).await];
    let through = burst(server.local_addr, RAW_USER, BURST).await;
    assert_eq!(through, direct, "through pgtide at max_client_connections");

    // Drivers with sslmode=prefer, a burst each, direct (over the role's limit) and through
    // pgtide (over max_client_connections): the same refusal, never an SSL-exchange failure.
    let n = "20";
    let limited = format!(
        "postgres://limited@127.0.0.1:{}/{}",
        cluster.primary().port(),
        s::APP_DB
    );
    // psycopg: no sqlstate on a connection failure; "too many" in the message, no "SSL".
    let psycopg = "['None True False'] 20\n";
    let asyncpg = "['53300 TooManyConnectionsError'] 20\n";
    for (driver, script, want) in [
        ("psycopg", PSYCOPG_BURST, psycopg),
        ("asyncpg", ASYNCPG_BURST, asyncpg),
    ] {
        let direct = s::python::run(driver, script, &[&limited, n]).await;
        let through = s::python::run(driver, script, &[&s::app_url(&server), n]).await;
        if let Some(direct) = direct {
            assert_eq!(direct, want, "{driver} on PostgreSQL");
        }
        if let Some(through) = through {
            assert_eq!(through, want, "{driver} through pgtide");
        }
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

/// What a client gets when it said nothing before the server's startup deadline and then sends
/// an SSLRequest: every message until the server closes.
async fn silent_then_ssl(addr: SocketAddr) -> Vec<(char, String)> {
    let mut raw = Raw::connect_to(addr).await;
    let mut seen = Vec::new();
    // The server gives up on the silent client: nothing but the close.
    while let Some((tag, body)) = raw.reader.next().await {
        seen.push((tag as char, s::raw::parse_error(&body).code));
    }
    raw.send(&s::raw::ssl_request()).await;
    while let Some((tag, body)) = raw.reader.next().await {
        seen.push((tag as char, s::raw::parse_error(&body).code));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_past_the_startup_deadline_is_closed_without_a_message() {
    let cluster = tokio::task::spawn_blocking(|| {
        s::cluster_with(pgtide_devcluster::ClusterOptions {
            settings: vec![("authentication_timeout".into(), "1s".into())],
            ..Default::default()
        })
    })
    .await
    .expect("cluster task");
    let mut config = trust_config(&cluster, PoolMode::Transaction, 1);
    config.server.startup_timeout = std::time::Duration::from_secs(1);
    let server = s::start(config).await;
    let direct = silent_then_ssl(primary_addr(&cluster)).await;
    assert_eq!(direct, [], "PostgreSQL closes without a message");
    let through = silent_then_ssl(server.local_addr).await;
    assert_eq!(through, direct, "through pgtide");
    // A client that does speak is still served.
    let mut raw = Raw::login(&server).await;
    assert_eq!(raw.simple("SELECT 1").await, "1");
    server.shutdown(s::Shutdown::Immediate).await;
}
