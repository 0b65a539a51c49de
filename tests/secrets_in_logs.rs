//! Issue 13: passwords, SCRAM verifiers, the HTTP token and the TLS private key never reach
//! pgtide's log. The binary runs at `PGTIDE_LOG=trace` with every kind of secret in its config
//! and meets each kind of traffic that could echo one (logins right and wrong, an unknown user,
//! an `[auth] query` user, a password changed through it, the admin console, HTTP with and
//! without the token, a reload); then its whole log, SHOW CONFIG and /api are searched for every
//! secret, and its memory for the password of a user it only ever saw prove itself by SCRAM.

use std::net::SocketAddr;
use std::time::Duration;

use pgtide_suite as s;
use s::process::Process;
use s::tls::TestCa;

#[path = "http_support/common.rs"]
mod http;

const AUTH_PASSWORD: &str = "auth-pw-5d1c7e";
const LATE_PASSWORD: &str = "late-pw-90ab3f";
const NEW_PASSWORD: &str = "changed-pw-77e0c2";
const OPS_PASSWORD: &str = "ops-pw-c4f1a8";
const TOKEN: &str = "0f3a9c1b7e5d2a4c6b8e0d1f3a5c7e9b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let primary = cluster.primary();
    let recipe = s::auth_lookup_recipe("pgtide_auth", AUTH_PASSWORD);
    primary.psql_db(s::APP_DB, &recipe).expect("auth recipe");
    let late = format!(
        "CREATE ROLE late_role LOGIN PASSWORD '{LATE_PASSWORD}';
         GRANT ALL ON DATABASE {} TO late_role;",
        s::APP_DB
    );
    primary.psql_db(s::APP_DB, &late).expect("late role");
    let ca = TestCa::new("log test CA");
    let issued = ca.issue("pgtide", &["localhost", "127.0.0.1"]);
    let key_pem = std::fs::read_to_string(&issued.key).expect("key file");
    let verifier = postgres_protocol::password::scram_sha_256(OPS_PASSWORD.as_bytes());

    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("pgtide.toml");
    let (port, http_port) = (
        pgtide_devcluster::free_port(),
        pgtide_devcluster::free_port(),
    );
    let url = primary.url(s::APP_USER, s::APP_PASSWORD, s::APP_DB);
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
http_listen = "127.0.0.1:{http_port}"
http_auth_token = "{TOKEN}"
[server.tls]
mode = "allow"
cert = "{cert}"
key = "{key}"
[pool]
mode = "transaction"
size = 2
min_idle = 0
[[databases]]
name = "{db}"
primary = "{url}"
[[users]]
name = "{user}"
password = "{password}"
[[users]]
name = "ops"
password = "{verifier}"
admin = true
[auth]
user = "pgtide_auth"
password = "{AUTH_PASSWORD}"
query = "SELECT usename, passwd FROM public.pgtide_lookup($1)"
"#,
        cert = issued.cert.display(),
        key = issued.key.display(),
        db = s::APP_DB,
        user = s::APP_USER,
        password = s::APP_PASSWORD,
    );
    std::fs::write(&config_path, config).expect("config");
    let mut process = Process::start_logging(&config_path, port, "trace").await;
    let to = |user: &str, password: &str, db: &str| {
        format!("postgres://{user}:{password}@127.0.0.1:{port}/{db}")
    };

    // Logins: right, wrong, unknown, looked up, admin console.
    let app = s::connect(&process.url()).await.expect("app");
    let _ = s::scalar(&app, "SELECT 1").await;
    let _ = s::connect(&to(s::APP_USER, "wrong-app-pw", s::APP_DB)).await;
    let _ = s::connect(&to("nobody", LATE_PASSWORD, s::APP_DB)).await;
    let late = s::connect(&to("late_role", LATE_PASSWORD, s::APP_DB))
        .await
        .expect("auth query login");
    let _ = s::connect(&to("late_role", "wrong-late-pw", s::APP_DB)).await;
    // A password changed through pgtide: its text passes through, and must not be logged.
    let alter = format!("ALTER ROLE late_role PASSWORD '{NEW_PASSWORD}'");
    late.batch_execute(&alter).await.expect("ALTER ROLE");
    let ops = s::connect(&to("ops", OPS_PASSWORD, "pgtide"))
        .await
        .expect("admin");
    let shown = ops.simple_query("SHOW CONFIG").await.expect("SHOW CONFIG");
    let shown = format!("{shown:?}");

    // HTTP with the token (header and dashboard login) and without.
    let http_addr = SocketAddr::from(([127, 0, 0, 1], http_port));
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let with = http::get_with(http_addr, "/api/queries", "127.0.0.1", &[bearer]).await;
    assert_eq!(with.status, 200, "{}", with.body);
    let _ = http::get(http_addr, &format!("/dashboard?token={TOKEN}")).await;
    let _ = http::get(http_addr, "/api/queries").await;
    // The statement that set a password is in /api only as its fingerprint.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let api = http::get_with(http_addr, "/api/queries", "127.0.0.1", &[bearer]).await;
    assert!(api.body.contains("late_role password $1"), "{}", api.body);
    assert!(!api.body.contains(NEW_PASSWORD), "{}", api.body);

    // The looked-up user's password never reached pgtide (its client proved it with SCRAM),
    // so no byte of pgtide's memory holds it.
    let pid = process.child.id().expect("running");
    assert!(
        !memory_holds(pid, LATE_PASSWORD.as_bytes()),
        "pgtide's memory holds the password"
    );
    // The check can see: the config's plain-text app password is in memory.
    assert!(memory_holds(pid, s::APP_PASSWORD.as_bytes()));

    process.signal("HUP");
    assert!(
        process
            .log_says("config reloaded", 0, Duration::from_secs(10))
            .await,
        "no reload in the log:\n{}",
        process.log()
    );
    drop((app, late, ops));
    process.signal("INT");
    process.exit(Duration::from_secs(20)).await;

    let log = process.log();
    assert!(
        log.contains("password authentication failed"),
        "the log should show the failed logins (is it at trace level?):\n{log}"
    );
    // One line of the key's base64 body is enough to find any part of the key.
    let key_line = key_pem
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .expect("a key line");
    let secrets = [
        ("the app password", s::APP_PASSWORD),
        ("the auth user's password", AUTH_PASSWORD),
        ("a looked-up user's password", LATE_PASSWORD),
        ("a password set through pgtide", NEW_PASSWORD),
        ("the admin's password", OPS_PASSWORD),
        ("the admin's SCRAM verifier", verifier.as_str()),
        ("the HTTP token", TOKEN),
        ("the TLS private key", key_line),
        ("a wrong password", "wrong-app-pw"),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "{what} is in the log:\n{log}");
        assert!(!shown.contains(secret), "{what} is in SHOW CONFIG: {shown}");
    }
    drop(cluster);
}

/// Whether any readable mapping of process `pid` contains `needle` (read through
/// /proc/<pid>/mem, as the tests' own user: they run as root in CI).
fn memory_holds(pid: u32, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.contains("[vvar]") || line.contains("[vsyscall]") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut region = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        if region.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}
