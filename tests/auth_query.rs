//! Issue 13, `[auth] query`: a role created in PostgreSQL after pgtide started logs in through
//! pgtide with no reload, pgtide checks its password against the verifier the auth query
//! returns and logs in to PostgreSQL as that role with SCRAM pass-through (or md5 from the
//! stored hash), never holding the password. The auth role reads pg_shadow only through the
//! SECURITY DEFINER function of the README's recipe.

use pgtide_config::{AuthConfig, AuthMethod, PoolMode};
use pgtide_suite as s;

const AUTH_USER: &str = "pgtide_auth";
const AUTH_PASSWORD: &str = "auth-lookup-secret";

async fn server_with_auth_query(
    method: AuthMethod,
    replicas: usize,
) -> (pgtide_devcluster::Cluster, s::ServerHandle) {
    let cluster = tokio::task::spawn_blocking(move || s::cluster(replicas))
        .await
        .expect("cluster task");
    cluster
        .primary()
        .psql_db(s::APP_DB, &s::auth_lookup_recipe(AUTH_USER, AUTH_PASSWORD))
        .expect("recipe");
    let mut config = s::config_with_replicas(&cluster, PoolMode::Transaction, 2, &[1]);
    config.users.clear();
    config.server.auth_method = method;
    config.auth = Some(AuthConfig {
        user: AUTH_USER.into(),
        password: Some(AUTH_PASSWORD.into()),
        query: "SELECT usename, passwd FROM public.pgtide_lookup($1)".into(),
    });
    let server = s::start(config).await;
    (cluster, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_created_after_start_logs_in_with_scram_pass_through() {
    let (cluster, server) = server_with_auth_query(AuthMethod::ScramSha256, 1).await;
    let password = "late-role-pw-7c1e";
    cluster
        .primary()
        .psql_db(
            s::APP_DB,
            &format!(
                "CREATE ROLE late_role LOGIN PASSWORD '{password}';
                 GRANT ALL ON DATABASE {} TO late_role;",
                s::APP_DB
            ),
        )
        .expect("role created after pgtide started");
    cluster
        .wait_for_replicas()
        .expect("the role reaches the replica");

    let url = s::url(&server, "late_role", password, s::APP_DB);
    let client = s::connect(&url).await.expect("auth_query login");
    // PostgreSQL sees the role itself, logged in without pgtide knowing its password.
    assert_eq!(s::scalar(&client, "SELECT current_user").await, "late_role");
    let second = s::connect(&url)
        .await
        .expect("a second login (looked up again or kept)");
    for c in [&client, &second] {
        assert_eq!(s::scalar(c, "SELECT session_user").await, "late_role");
    }
    // Reads go to the replica, logged in there the same way.
    let on_replica = "SELECT pg_is_in_recovery()::text || ' ' || current_user";
    assert_eq!(s::scalar(&client, on_replica).await, "true late_role");

    let wrong = s::connect(&s::url(&server, "late_role", "not-it", s::APP_DB)).await;
    assert_eq!(
        wrong.map(|_| ()).map_err(|e| s::sqlstate(&e)),
        Err("28P01".into())
    );
    // A password past its VALID UNTIL is refused, as PostgreSQL refuses it.
    cluster
        .primary()
        .psql(&format!(
            "CREATE ROLE expired_role LOGIN PASSWORD '{password}' VALID UNTIL '2000-01-01'"
        ))
        .expect("expired role");
    let expired = s::connect(&s::url(&server, "expired_role", password, s::APP_DB)).await;
    assert_eq!(
        expired.map(|_| ()).map_err(|e| s::sqlstate(&e)),
        Err("28P01".into())
    );
    let nobody = s::connect(&s::url(&server, "no_such_role", password, s::APP_DB)).await;
    assert_eq!(
        nobody.map(|_| ()).map_err(|e| s::sqlstate(&e)),
        Err("28P01".into())
    );

    // A [[users]] entry without a password has its secret looked up and keeps its rules.
    let mut listed = pgtide_config::UserConfig::new("late_role", None);
    listed.databases = Some(vec!["elsewhere".into()]);
    let mut config = (*server.shared.config.load_full()).clone();
    config.users.push(listed);
    server.reload(config);
    let limited = s::connect(&url)
        .await
        .expect_err("its databases list leaves app out");
    assert_eq!(
        limited.code().map(|c| c.code()),
        Some("28000"),
        "{limited:?}"
    );

    // Nothing pgtide holds in its config (or shows of it) carries the password.
    let config = format!("{:?}", server.shared.config.load());
    assert!(!config.contains(password), "the password is in the config");
    assert!(
        !config.contains(AUTH_PASSWORD),
        "the auth user's password is shown"
    );
    server.shutdown(s::Shutdown::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_role_logs_in_with_its_stored_hash() {
    // md5user (password md5pass, stored as an md5 hash) may log in with md5 only.
    let (_cluster, server) = server_with_auth_query(AuthMethod::Md5, 0).await;
    let client = s::connect(&s::url(&server, "md5user", "md5pass", s::APP_DB))
        .await
        .expect("md5 auth_query login");
    assert_eq!(s::scalar(&client, "SELECT current_user").await, "md5user");
    let wrong = s::connect(&s::url(&server, "md5user", "nope", s::APP_DB)).await;
    assert_eq!(
        wrong.map(|_| ()).map_err(|e| s::sqlstate(&e)),
        Err("28P01".into())
    );
    server.shutdown(s::Shutdown::Immediate).await;
}
