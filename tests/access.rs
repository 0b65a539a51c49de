//! Issue 13, who may go where: an unknown user gets the same exchange and the same answer as a
//! wrong password (message by message, and as PostgreSQL itself answers both), a `[[users]]` entry reaches only the databases it
//! lists, and in the sidecar case (no `[[users]]`) a client reaches a database only with that
//! database URL's own credentials.

use bytes::BytesMut;
use pgtide_config::{BackendUrl, DatabaseConfig, PoolMode};
use pgtide_suite as s;
use pgtide_wire::{encode, AuthRequest, FrameDecoder};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a SCRAM login as `user` with `password` to `addr` shows on the wire, message by
/// message, with what must differ between two logins (nonces, salts, proofs) left out: the
/// message kinds, the mechanisms offered, the iteration count, and the error's severity, code
/// and text. Also the salt the server gave.
async fn login_transcript(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
) -> (Vec<String>, Option<String>) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut out = BytesMut::new();
    encode::startup_message(&mut out, &[("user", user), ("database", s::APP_DB)]).expect("startup");
    socket.write_all(&out).await.expect("write");
    let (mut buf, decoder) = (BytesMut::new(), FrameDecoder::new(1 << 20));
    let mut scram: Option<ScramSha256> = None;
    let (mut seen, mut salt) = (Vec::new(), None);
    loop {
        let frame = loop {
            if let Some(f) = decoder.decode(&mut buf).expect("frame") {
                break f;
            }
            let read = s::within(
                "login",
                std::time::Duration::from_secs(10),
                socket.read_buf(&mut buf),
            );
            if read.await.expect("read") == 0 {
                seen.push("closed".into());
                return (seen, salt);
            }
        };
        if frame.tag == b'E' {
            let e = pgtide_wire::error_fields(frame.body()).expect("error");
            seen.push(format!("E {} {} {}", e.severity, e.code, e.message));
            continue;
        }
        let mut out = BytesMut::new();
        match pgtide_wire::authentication(frame.body()).expect("authentication") {
            AuthRequest::Sasl { mechanisms } => {
                seen.push(format!("R SASL {mechanisms:?}"));
                let client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                encode::sasl_initial_response(&mut out, "SCRAM-SHA-256", client.message())
                    .expect("initial");
                scram = Some(client);
            }
            AuthRequest::SaslContinue(data) => {
                let text = String::from_utf8_lossy(&data).to_string();
                let iterations = text.rsplit(",i=").next().unwrap_or_default().to_string();
                seen.push(format!("R SASLContinue i={iterations}"));
                salt = text
                    .split(',')
                    .find(|a| a.starts_with("s="))
                    .map(str::to_string);
                let client = scram.as_mut().expect("started");
                client.update(&data).expect("server-first");
                encode::sasl_response(&mut out, client.message()).expect("response");
            }
            other => {
                seen.push(format!("unexpected {other:?}"));
                return (seen, salt);
            }
        }
        socket.write_all(&out).await.expect("write");
    }
}

/// The SQLSTATE a login to `url` is refused with.
async fn refusal(url: &str) -> String {
    match s::connect(url).await {
        Ok(_) => "admitted".into(),
        Err(e) => s::sqlstate(&e),
    }
}

fn cluster_addr(cluster: &pgtide_devcluster::Cluster) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], cluster.primary().port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_is_answered_as_a_wrong_password() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster");
    let server = s::start(s::config(&cluster, PoolMode::Transaction, 2)).await;
    let (pgtide, direct) = (server.local_addr, cluster_addr(&cluster));
    let (wrong_password, _) = login_transcript(pgtide, s::APP_USER, "not-the-password").await;
    assert_eq!(
        wrong_password,
        [
            "R SASL [\"SCRAM-SHA-256\"]".to_string(),
            "R SASLContinue i=4096".to_string(),
            format!(
                "E FATAL 28P01 password authentication failed for user \"{}\"",
                s::APP_USER
            ),
            "closed".to_string(),
        ]
    );
    let (unknown, first_salt) = login_transcript(pgtide, "nobody", "whatever").await;
    let rename = |t: &[String]| {
        t.iter()
            .map(|m| m.replace("\"nobody\"", "\"app\""))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rename(&unknown),
        wrong_password,
        "an unknown user must look like a wrong password"
    );
    // The oracle: PostgreSQL itself answers both the same way, and as pgtide does.
    let (direct_wrong, _) = login_transcript(direct, s::APP_USER, "not-the-password").await;
    assert_eq!(
        wrong_password, direct_wrong,
        "wrong password: pgtide vs PostgreSQL"
    );
    let (direct_unknown, _) = login_transcript(direct, "nobody", "whatever").await;
    assert_eq!(
        unknown, direct_unknown,
        "unknown user: pgtide vs PostgreSQL"
    );
    // The mock salt is stable per name, as a real user's is: two probes cannot tell an
    // unknown name from a real one by a salt that changes.
    assert!(first_salt.is_some(), "a salt for an unknown name");
    let (_, again) = login_transcript(pgtide, "nobody", "x").await;
    assert_eq!(again, first_salt, "the same salt for the same unknown name");
    let (_, real) = login_transcript(pgtide, s::APP_USER, "x").await;
    let (_, real_again) = login_transcript(pgtide, s::APP_USER, "x").await;
    assert_eq!(real, real_again, "a real user's salt is stable");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_reaches_only_the_databases_it_lists() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster");
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    let url = cluster
        .primary()
        .url(s::APP_USER, s::APP_PASSWORD, "postgres");
    let other = DatabaseConfig::new("other", BackendUrl::parse(&url).expect("url"));
    config.databases.push(other);
    config.users[0].databases = Some(vec![s::APP_DB.to_string()]);
    let server = s::start(config).await;
    let app = s::connect(&s::app_url(&server))
        .await
        .expect("a listed database");
    assert_eq!(s::scalar(&app, "SELECT 1").await, "1");
    let refused = s::connect(&s::url(&server, s::APP_USER, s::APP_PASSWORD, "other"))
        .await
        .expect_err("a database the user does not list");
    let db = refused.as_db_error().expect("ErrorResponse");
    assert_eq!(db.code().code(), "28000");
    assert!(
        db.message().contains("not in its databases list"),
        "{}",
        db.message()
    );
    // The admin console is a database too: an admin whose list lacks "pgtide" stays out.
    let console = refusal(&s::url(&server, s::APP_USER, s::APP_PASSWORD, "pgtide")).await;
    assert_eq!(console, "28000", "the console is not in the list");
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_password_admits_only_to_its_own_database() {
    // PostgreSQL lets app into `other` with any password (trust), so whatever is refused
    // below is refused by pgtide.
    let cluster = tokio::task::spawn_blocking(|| {
        s::cluster_with(pgtide_devcluster::ClusterOptions {
            hba: vec![format!("host other {} 127.0.0.1/32 trust", s::APP_USER)],
            ..Default::default()
        })
    })
    .await
    .expect("cluster");
    let create = format!("CREATE DATABASE other OWNER {}", s::APP_USER);
    cluster.primary().psql(&create).expect("second database");
    // No [[users]]: each URL's credentials are the login for its own database; here the
    // same user name with two passwords.
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    config.users.clear();
    let port = cluster.primary().port();
    let second = format!(
        "postgres://{}:different@127.0.0.1:{port}/other",
        s::APP_USER
    );
    let other = DatabaseConfig::new("other", BackendUrl::parse(&second).expect("url"));
    config.databases.push(other);
    let server = s::start(config).await;
    let app = s::connect(&s::app_url(&server))
        .await
        .expect("app, its own password");
    assert_eq!(
        s::scalar(&app, "SELECT current_database()").await,
        s::APP_DB
    );
    // app's password does not open `other`, whose URL has another one, and other's does not
    // open app.
    for (password, db) in [(s::APP_PASSWORD, "other"), ("different", s::APP_DB)] {
        let refused = refusal(&s::url(&server, s::APP_USER, password, db)).await;
        assert_eq!(refused, "28P01", "{db} with another database's password");
    }
    let url = s::url(&server, s::APP_USER, "different", "other");
    let other = s::connect(&url).await.expect("other, its own password");
    assert_eq!(
        s::scalar(&other, "SELECT current_database()").await,
        "other"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
