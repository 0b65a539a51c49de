//! HTTP access (docs: README "HTTP security"): `server.http_auth_token`, the Host allow-list,
//! the dashboard's cookie login, what /readyz tells whom, and insights samples without literals,
//! against a real server.

use pgtide_config::PoolMode;
use pgtide_suite as s;

#[path = "http_support/common.rs"]
mod common;
use common::{dead_primary_config, get_with};

/// server.http_auth_token and the Host allow-list against a real server: 401 without the
/// token everywhere but the probes, 403 for a foreign Host everywhere but the probes, the
/// dashboard's cookie login; and a literal sent through pgtide never reaches /api output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_host_allow_list_and_literal_free_samples() {
    const TOKEN: &str = "http-test-token-0123456789";
    const SECRET: &str = "hunter2-never-in-api";
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, 2);
    config.server.http_auth_token = TOKEN.into();
    config.server.http_allowed_hosts = vec!["pgtide.internal".into()];
    let server = s::start(config).await;
    let http = server.http_addr.expect("HTTP is on");
    let c = s::connect(&s::app_url(&server)).await.expect("connect");
    c.batch_execute(&format!(
        "SELECT '{SECRET}' AS x; SELECT length('{SECRET}')"
    ))
    .await
    .expect("statements with a secret literal");
    let bearer = vec![format!("Authorization: Bearer {TOKEN}")];

    for path in ["/metrics", "/dashboard", "/api/queries", "/api/summary"] {
        let r = get_with(http, path, "localhost", &[]).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"pgtide\"")
        );
        let wrong = vec![format!("Authorization: Bearer {TOKEN}x")];
        assert_eq!(get_with(http, path, "localhost", &wrong).await.status, 401);
        assert_eq!(
            get_with(http, path, "localhost", &bearer).await.status,
            200,
            "{path}"
        );
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            get_with(http, path, "attacker.example", &[]).await.status,
            200
        );
    }
    // DNS rebinding: a page on another site names its own host; the token does not help it.
    for path in ["/dashboard", "/api/queries", "/metrics"] {
        let r = get_with(http, path, "attacker.example:9930", &bearer).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        for host in ["pgtide.internal:80", "127.0.0.1", "[::1]:9930"] {
            assert_eq!(
                get_with(http, path, host, &bearer).await.status,
                200,
                "{host}"
            );
        }
    }
    // A browser: /dashboard?token=.. sets an HttpOnly cookie and sends it on without the token.
    let login = get_with(http, &format!("/dashboard?token={TOKEN}"), "localhost", &[]).await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location"), Some("/dashboard"));
    let cookie = login.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap_or_default().to_string();
    let with_cookie = vec![format!("Cookie: {pair}")];
    assert_eq!(
        get_with(http, "/api/queries", "localhost", &with_cookie)
            .await
            .status,
        200
    );
    let bad_login = get_with(http, "/dashboard?token=nope", "localhost", &[]).await;
    assert_eq!(bad_login.status, 401);

    // The literal is in no API answer, while its statements are (as fingerprints).
    let mut all = String::new();
    for path in [
        "/api/queries",
        "/api/slow_queries",
        "/api/n_plus_one",
        "/api/summary",
    ] {
        let r = get_with(http, path, "localhost", &bearer).await;
        assert_eq!(r.status, 200, "{path}");
        all.push_str(&r.body);
    }
    assert!(all.contains("SELECT $1 AS x; SELECT length($2)"), "{all}");
    assert!(!all.contains(SECRET), "a literal reached /api: {all}");
}

/// With a token set, /readyz says why it is not ready (database names, backend host:port,
/// connection errors) only to a caller with the token and an allowed Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_gives_its_reason_only_with_the_token() {
    const TOKEN: &str = "ready-test-token-0123456789";
    let mut config = dead_primary_config();
    config.server.http_auth_token = TOKEN.into();
    let server = s::start(config).await;
    let http = server.http_addr.expect("HTTP is on");
    let bearer = vec![format!("Authorization: Bearer {TOKEN}")];
    let wrong = [format!("Authorization: Bearer {TOKEN}x")];
    for (host, extra) in [
        ("localhost", &[][..]),
        ("127.0.0.1", &wrong[..]),
        ("attacker.example", &[][..]),
        ("attacker.example", &bearer[..]),
    ] {
        let r = get_with(http, "/readyz", host, extra).await;
        assert_eq!((r.status, r.body.as_str()), (503, "not ready\n"), "{host}");
    }
    let r = get_with(http, "/readyz", "localhost", &bearer).await;
    assert_eq!(r.status, 503);
    assert!(
        r.body.starts_with("not ready: ") && r.body.contains("unreachable"),
        "{}",
        r.body
    );
}
