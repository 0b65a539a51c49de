//! Issue 11, items 12–15: what a client sees of its session through pgtide is what PostgreSQL
//! itself shows it. Each test runs the same exchange on a direct connection to the primary (the
//! oracle) and through pgtide, raw and through drivers.
//! - 12: in session mode BackendKeyData carries the backend's real process id (the secret key is
//!   pgtide's, so cancels still route through pgtide); transaction mode keeps pgtide's own id.
//! - 13: ParameterStatus at startup reports the server's spelling of the client's settings.
//!
//! Item 14 is in transparency_pipeline.rs, item 15 in transparency_startup.rs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;
use pgtide_config::{BackendUrl, Config, PoolMode};
use pgtide_devcluster::Cluster;
use pgtide_suite as s;
use s::raw::{add_trust_user, packet, Raw, RAW_USER};

/// The cluster's trust role: pgtide logs in to the primary as it too, so session_authorization
/// and is_superuser read the same both ways.
const TRUST: &str = "trustuser";

fn primary_addr(cluster: &Cluster) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()))
}

async fn start_cluster() -> Arc<Cluster> {
    Arc::new(
        tokio::task::spawn_blocking(|| s::cluster(0))
            .await
            .expect("cluster task"),
    )
}

/// pgtide in `mode` in front of `cluster`, logging in to it as the trust role; clients log in
/// as [`RAW_USER`] (trust) or app.
fn trust_config(cluster: &Cluster, mode: PoolMode, size: usize) -> Config {
    let mut config = s::config(cluster, mode, size);
    let url = format!(
        "postgres://{TRUST}@127.0.0.1:{}/{}",
        cluster.primary().port(),
        s::APP_DB
    );
    config.databases[0].primary = BackendUrl::parse(&url).expect("trust URL");
    add_trust_user(&mut config);
    config
}

/// A StartupMessage for `user` on the app database with extra `params`.
fn startup(user: &str, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in [("user", user), ("database", s::APP_DB)]
        .iter()
        .chain(params)
    {
        s::raw::cstr(&mut body, k);
        s::raw::cstr(&mut body, v);
    }
    body.push(0);
    packet(3 << 16, &body)
}

/// What a client is greeted with: ParameterStatus by name, and BackendKeyData's process id.
struct Greeting {
    params: BTreeMap<String, String>,
    process_id: i32,
    raw: Raw,
}

async fn greet(addr: SocketAddr, user: &str, params: &[(&str, &str)]) -> Greeting {
    let mut raw = Raw::connect_to(addr).await;
    raw.send(&startup(user, params)).await;
    let messages = raw.reader.until_ready().await.expect("greeting");
    let mut greeting = Greeting {
        params: BTreeMap::new(),
        process_id: 0,
        raw,
    };
    for (tag, body) in messages {
        match tag {
            b'S' => {
                let mut parts = body.split(|b| *b == 0);
                let k = String::from_utf8_lossy(parts.next().unwrap_or_default());
                let v = String::from_utf8_lossy(parts.next().unwrap_or_default());
                greeting.params.insert(k.into_owned(), v.into_owned());
            }
            b'K' => greeting.process_id = i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
            b'E' => panic!("refused: {:?}", s::raw::parse_error(&body)),
            _ => {}
        }
    }
    greeting
}

/// The URL of the primary itself, as app (the oracle for driver scripts).
fn direct_url(cluster: &Cluster) -> String {
    cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, s::APP_DB)
}

/// Item 12 through psycopg: its backend_pid is pg_backend_pid(), its own NOTIFY comes from that
/// pid, a cancel found by that pid in pg_stat_activity reaches the query, and
/// pg_terminate_backend(backend_pid) ends the connection.
const PSYCOPG_PID: &str = r#"
import sys, threading, time, psycopg
from psycopg import errors as e
url = sys.argv[1]
conn = psycopg.connect(url, autocommit=True)
other = psycopg.connect(url, autocommit=True)
pid = conn.info.backend_pid
assert conn.execute("select pg_backend_pid()").fetchone()[0] == pid
conn.execute("LISTEN pid_ch")
conn.execute("NOTIFY pid_ch, 'self'")
n = next(conn.notifies(timeout=10, stop_after=1))
assert n.pid == pid, ("notify sender", n.pid, "own pid", pid)
def cancel_when_running():
    for _ in range(500):
        row = other.execute("select 1 from pg_stat_activity where pid = %s and state = 'active' "
                            "and query like 'select pg_sleep%%'", [pid]).fetchone()
        if row:
            conn.cancel_safe()
            return
        time.sleep(0.02)
t = threading.Thread(target=cancel_when_running)
t.start()
try:
    conn.execute("select pg_sleep(60)")
    raise SystemExit("not cancelled")
except e.QueryCanceled:
    pass
t.join()
assert conn.execute("select 'alive'").fetchone()[0] == "alive"
assert other.execute("select pg_terminate_backend(%s)", [pid]).fetchone()[0] is True
try:
    conn.execute("select 1")
    raise SystemExit("still connected after pg_terminate_backend")
except psycopg.OperationalError:
    pass
print("psycopg pid ok")
"#;

/// Item 12 through asyncpg: get_server_pid() and the listener's sender pid.
const ASYNCPG_PID: &str = r#"
import sys, asyncio, asyncpg
async def main(url):
    conn = await asyncpg.connect(url)
    pid = conn.get_server_pid()
    assert await conn.fetchval("select pg_backend_pid()") == pid
    got = asyncio.get_running_loop().create_future()
    def on(c, sender, channel, payload):
        if not got.done():
            got.set_result(sender)
    await conn.add_listener("pid_ch", on)
    await conn.execute("NOTIFY pid_ch, 'self'")
    sender = await asyncio.wait_for(got, 10)
    assert sender == pid, ("notify sender", sender, "own pid", pid)
    other = await asyncpg.connect(url)
    assert await other.fetchval("select pg_terminate_backend($1)", pid) is True
    try:
        await conn.fetchval("select 1")
        raise SystemExit("still connected after pg_terminate_backend")
    except Exception:
        # Ended: how asyncpg reports a FATAL that arrived while idle varies with timing.
        pass
    await other.close()
    print("asyncpg pid ok")
asyncio.run(main(sys.argv[1]))
"#;

/// The first notification a tokio-postgres connection receives after `sql`, and the
/// connection's pg_backend_pid().
async fn own_notification(url: &str) -> (i32, i32) {
    let (client, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("tokio-postgres connects");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.process_id());
            }
        }
    });
    client
        .batch_execute("LISTEN pid_ch; NOTIFY pid_ch, 'self'")
        .await
        .expect("LISTEN/NOTIFY");
    let sender = s::within(
        "own notification",
        std::time::Duration::from_secs(10),
        rx.recv(),
    )
    .await
    .expect("a notification");
    let pid: i32 = s::scalar(&client, "SELECT pg_backend_pid()")
        .await
        .parse()
        .expect("pid");
    (sender, pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_clients_see_their_backends_real_pid() {
    let cluster = start_cluster().await;
    let server = s::start(trust_config(&cluster, PoolMode::Session, 4)).await;

    // Raw: BackendKeyData's process id is pg_backend_pid(), as on PostgreSQL itself.
    let mut endings = Vec::new();
    for (addr, user) in [
        (primary_addr(&cluster), TRUST),
        (server.local_addr, RAW_USER),
    ] {
        let mut g = greet(addr, user, &[]).await;
        let pid = g.raw.simple("SELECT pg_backend_pid()").await;
        assert_eq!(pid, g.process_id.to_string(), "BackendKeyData at {addr}");
        // Another client can end it by that pid.
        let mut other = greet(addr, user, &[]).await;
        let sql = format!("SELECT pg_terminate_backend({pid})");
        assert_eq!(other.raw.simple(&sql).await, "t", "at {addr}");
        // What the terminated client reads until the connection closes.
        let mut ending = Vec::new();
        while let Some((tag, body)) = g.raw.reader.next().await {
            let e = s::raw::parse_error(&body);
            ending.push((tag as char, e.severity, e.code));
        }
        endings.push(ending);
    }
    assert_eq!(
        endings[1], endings[0],
        "after pg_terminate_backend: through pgtide vs PostgreSQL"
    );
    assert_eq!(
        endings[0],
        [('E', "FATAL".to_string(), "57P01".to_string())],
        "PostgreSQL's one FATAL"
    );

    // tokio-postgres: a client's own NOTIFY comes from its own pid.
    for url in [direct_url(&cluster), s::app_url(&server)] {
        let (sender, pid) = own_notification(&url).await;
        assert_eq!(
            sender, pid,
            "notification sender vs pg_backend_pid() at {url}"
        );
    }

    // Cancel still routes through pgtide (its secret key): tokio-postgres' cancel token.
    let client = s::connect(&s::app_url(&server)).await.expect("connect");
    let token = client.cancel_token();
    let sleeping = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60)").await });
    let superuser = cluster.primary().url("postgres", "", "postgres");
    let watcher = s::connect(&superuser).await.expect("direct");
    let running = s::eventually(std::time::Duration::from_secs(10), || async {
        s::scalar(
            &watcher,
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' \
             AND state = 'active'",
        )
        .await
            == "1"
    })
    .await;
    assert!(running, "the sleep never started");
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel request");
    let err = s::within(
        "cancelled sleep",
        std::time::Duration::from_secs(10),
        sleeping,
    )
    .await
    .expect("task")
    .expect_err("the sleep was cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err:?}"
    );

    // Drivers: psycopg and asyncpg check the same on their own, direct and through pgtide.
    for url in [direct_url(&cluster), s::app_url(&server)] {
        s::python::run(&format!("psycopg pid at {url}"), PSYCOPG_PID, &[&url]).await;
        s::python::run(&format!("asyncpg pid at {url}"), ASYNCPG_PID, &[&url]).await;
    }
    server.shutdown(s::Shutdown::Immediate).await;
}

const PSYCOPG_SPELLING: &str = r#"
import sys, psycopg
for enc in ["utf8", "euc_jp"]:
    with psycopg.connect(sys.argv[1], client_encoding=enc,
                         options="-c DateStyle=iso -c TimeZone=utc") as conn:
        for name in ["client_encoding", "DateStyle", "TimeZone"]:
            print(enc, name, conn.info.parameter_status(name))
        print(enc, "encoding", conn.info.encoding)
"#;

const ASYNCPG_SPELLING: &str = r#"
import sys, asyncio, asyncpg
async def main(url):
    conn = await asyncpg.connect(url, server_settings={
        "DateStyle": "iso, dmy", "TimeZone": "utc", "IntervalStyle": "iso_8601"})
    st = conn.get_settings()
    for name in ["client_encoding", "DateStyle", "TimeZone", "IntervalStyle"]:
        print(name, getattr(st, name))
    await conn.close()
asyncio.run(main(sys.argv[1]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameter_status_spells_settings_as_the_server_does() {
    let cluster = start_cluster().await;
    let cases: [&[(&str, &str)]; 5] = [
        &[("client_encoding", "utf8")],
        &[("client_encoding", "euc_jp")],
        &[
            ("DateStyle", "iso"),
            ("TimeZone", "utc"),
            ("IntervalStyle", "iso_8601"),
            ("application_name", "spelling"),
        ],
        &[("options", "-c datestyle=german -c client_encoding=latin1")],
        &[],
    ];
    let oracle: Vec<_> = {
        let mut v = Vec::new();
        for params in cases {
            v.push(greet(primary_addr(&cluster), TRUST, params).await.params);
        }
        v
    };
    assert_eq!(
        oracle[0]["client_encoding"], "UTF8",
        "PostgreSQL's own spelling"
    );
    for mode in [PoolMode::Session, PoolMode::Transaction] {
        let server = s::start(trust_config(&cluster, mode, 2)).await;
        // Twice: the second time the spelling comes from what pgtide remembered of the check.
        for round in 0..2 {
            for (params, direct) in cases.iter().zip(&oracle) {
                let through = greet(server.local_addr, RAW_USER, params).await.params;
                assert_eq!(
                    &through, direct,
                    "{mode:?}, round {round}, startup {params:?}"
                );
            }
        }
        for (driver, script) in [("psycopg", PSYCOPG_SPELLING), ("asyncpg", ASYNCPG_SPELLING)] {
            let direct = s::python::run(driver, script, &[&direct_url(&cluster)]).await;
            let through = s::python::run(driver, script, &[&s::app_url(&server)]).await;
            assert_eq!(
                through, direct,
                "{driver} in {mode:?}: through pgtide vs direct"
            );
            if let Some(out) = direct {
                assert!(out.contains("client_encoding UTF8"), "{out}");
            }
        }
        server.shutdown(s::Shutdown::Immediate).await;
    }
}
