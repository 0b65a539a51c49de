//! Issue 13, mTLS clients: with `server.tls.client_ca` set, a user whose `auth_method` is
//! "cert" logs in with a client certificate signed by that CA whose common name is the user
//! name, and nothing else does: a certificate for another name, one from another CA, or none,
//! each get 28000, as PostgreSQL's `cert` method answers. Password users need no certificate.

use pgtide_config::{AuthMethod, ClientTlsMode, PoolMode, UserConfig};
use pgtide_suite as s;
use s::tls::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cert_user_needs_its_own_certificate() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let issued = server_ca.issue("pgtide", &["localhost", "127.0.0.1"]);
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    config.server.tls.mode = ClientTlsMode::Require;
    config.server.tls.cert = Some(issued.cert);
    config.server.tls.key = Some(issued.key);
    config.server.tls.client_ca = Some(client_ca.ca_file());
    let mut certuser = UserConfig::new("certuser", None);
    certuser.auth_method = Some(AuthMethod::Cert);
    config.users.push(certuser);
    let server = s::start(config).await;
    let conninfo = |user: &str| {
        format!(
            "host=localhost port={} user={user} password=unused dbname={} sslmode=require",
            server.local_addr.port(),
            s::APP_DB
        )
    };

    let own = client_ca.issue("certuser", &[]);
    let (client, conn) =
        tokio_postgres::connect(&conninfo("certuser"), server_ca.tokio_postgres_with(&own))
            .await
            .expect("certuser with its certificate");
    tokio::spawn(conn);
    assert_eq!(s::scalar(&client, "SELECT 1").await, "1");

    let other_name = client_ca.issue("someone-else", &[]);
    let wrong = tokio_postgres::connect(
        &conninfo("certuser"),
        server_ca.tokio_postgres_with(&other_name),
    )
    .await;
    let wrong = wrong.map(|_| ()).map_err(|e| s::sqlstate(&e));
    assert_eq!(wrong, Err("28000".into()), "a certificate for another name");

    let none = tokio_postgres::connect(&conninfo("certuser"), server_ca.tokio_postgres()).await;
    assert_eq!(
        none.map(|_| ()).map_err(|e| s::sqlstate(&e)),
        Err("28000".into()),
        "no certificate"
    );

    // A certificate from a CA pgtide does not trust ends the handshake.
    let stranger_ca = TestCa::new("stranger CA");
    let stranger = stranger_ca.issue("certuser", &[]);
    let untrusted = tokio_postgres::connect(
        &conninfo("certuser"),
        server_ca.tokio_postgres_with(&stranger),
    )
    .await;
    assert!(
        untrusted.is_err(),
        "a certificate from an untrusted CA was accepted"
    );

    // Password users need no certificate; a certificate does not stand in for a password.
    let app = format!("{} password={}", conninfo(s::APP_USER), s::APP_PASSWORD);
    let app = app.replace("password=unused ", "");
    let (password_user, conn) = tokio_postgres::connect(&app, server_ca.tokio_postgres())
        .await
        .expect("a password user without a certificate");
    tokio::spawn(conn);
    assert_eq!(s::scalar(&password_user, "SELECT 2").await, "2");
    let app_cert = client_ca.issue(s::APP_USER, &[]);
    let no_password = conninfo(s::APP_USER).replace("password=unused", "password=wrong");
    let refused =
        tokio_postgres::connect(&no_password, server_ca.tokio_postgres_with(&app_cert)).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| s::sqlstate(&e)),
        Err("28P01".into())
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
