use crate::{parse_str, Config, Problem};

const DB: &str = r#"
[[databases]]
name = "app"
primary = "postgres://app:pw@127.0.0.1:5432/app"
"#;

fn check(text: &str) -> Vec<Problem> {
    parse_str(text, "t.toml")
        .expect("parses")
        .validate("t.toml")
}

/// The problems of `text` (plus a valid database), as "key: reason".
fn found(extra: &str) -> Vec<String> {
    check(&format!("{DB}\n{extra}"))
        .into_iter()
        .map(|p| format!("{}: {}", p.key, p.reason))
        .collect()
}

fn assert_one(extra: &str, key: &str, reason_part: &str) {
    let f = found(extra);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].starts_with(&format!("{key}: ")), "{f:#?}");
    assert!(f[0].contains(reason_part), "{f:#?}");
}

#[test]
fn minimal_config_is_valid() {
    assert!(found("").is_empty());
}

#[test]
fn needs_a_database() {
    let p = Config::default().validate("x.toml");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].file, "x.toml");
    assert_eq!(p[0].key, "databases");
}

#[test]
fn database_names() {
    let dup = "[[databases]]\nname = \"app\"\nprimary = \"postgres://a:b@h/x\"";
    assert_one(dup, "databases[1].name", "duplicate");
    let admin = "[[databases]]\nname = \"pgtide\"\nprimary = \"postgres://a:b@h/x\"";
    assert_one(admin, "databases[1].name", "reserved for the admin console");
    let empty = "[[databases]]\nname = \"\"\nprimary = \"postgres://a:b@h/x\"";
    assert_one(empty, "databases[1].name", "empty");
}

#[test]
fn urls_need_users() {
    let text = r#"
        [[databases]]
        name = "x"
        primary = "postgres://127.0.0.1/x"
        replicas = ["postgres://127.0.0.1:5433/x"]
    "#;
    let f = found(text);
    assert_eq!(
        f,
        vec![
            "databases[1].primary: primary URL needs a user: pgtide logs in to the backend with \
             the URL's credentials",
            "databases[1].replicas[0].url: replica URL needs a user: pgtide logs in to the \
             backend with the URL's credentials",
        ]
    );
}

#[test]
fn replica_weight_zero() {
    let text = format!("{DB}replicas = [{{ url = \"postgres://a:b@h/app\", weight = 0 }}]");
    let p = check(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "databases[0].replicas[0].weight");
}

#[test]
fn pool_limits() {
    assert_one("[pool]\nsize = 0\nmin_idle = 0", "pool.size", "at least 1");
    assert_one(
        "[pool]\nsize = 2\nmin_idle = 3",
        "pool.min_idle",
        "more than pool.size",
    );
    assert_one(
        "[pool]\ncheckout_timeout = \"0s\"",
        "pool.checkout_timeout",
        "greater than 0",
    );
    assert!(found("[pool]\nsize = 2\nmin_idle = 2").is_empty());
}

#[test]
fn server_limits() {
    assert_one(
        "[server]\nmax_client_connections = 0",
        "server.max_client_connections",
        "",
    );
    assert_one(
        "[server]\nmax_message_size = \"1000B\"",
        "server.max_message_size",
        "1KiB",
    );
    assert!(found("[server]\nmax_message_size = \"1KiB\"").is_empty());
    assert_one(
        "[server]\nworker_threads = 5000",
        "server.worker_threads",
        "1024",
    );
    assert!(found("[server]\nworker_threads = 1").is_empty());
    assert_one(
        "[server]\nlisten = \"localhost:6432\"",
        "server.listen",
        "IP:port",
    );
    assert_one(
        "[server]\nhttp_listen = \"9930\"",
        "server.http_listen",
        "IP:port",
    );
    assert!(found("[server]\nlisten = \"[::1]:6432\"").is_empty());
}

#[test]
fn http_token_off_loopback_and_its_shape() {
    assert_one(
        "[server]\nhttp_listen = \"0.0.0.0:9930\"",
        "server.http_auth_token",
        "not a loopback address",
    );
    assert!(found(
        "[server]\nhttp_listen = \"0.0.0.0:9930\"\nhttp_auth_token = \"0123456789abcdefg\""
    )
    .is_empty());
    assert!(found("[server]\nhttp_listen = \"[::1]:9930\"").is_empty());
    assert!(found("[server]\nhttp_listen = \"\"").is_empty());
    assert!(found("[server]\nhttp_auth_token = \"aGVsbG8td29ybGQtdG9rZW4=\"").is_empty());
    for bad in [
        "short",
        "has spaces in the middle!",
        "tab\\tseparated-0123456789",
        "semi;colon-0123456789",
        "amp&ersand-0123456789",
    ] {
        assert_one(
            &format!("[server]\nhttp_auth_token = \"{bad}\""),
            "server.http_auth_token",
            "at least 16 characters",
        );
    }
    assert_one(
        "[server]\nhttp_allowed_hosts = [\"\"]",
        "server.http_allowed_hosts",
        "host name",
    );
}

#[test]
fn client_tls() {
    let f = found("[server.tls]\nmode = \"require\"");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("needs both server.tls.cert and server.tls.key"),
        "{f:#?}"
    );
    let existing = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cert_only = format!("[server.tls]\ncert = \"{existing}\"");
    assert_one(&cert_only, "server.tls.key", "together");
    let f = found("[server.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].starts_with("server.tls.cert: file /nonexistent/c.pem not found"));
    assert!(found("[server.tls]\nmode = \"disable\"").is_empty());
}

#[test]
fn backend_tls() {
    for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
        assert!(check(&format!("{DB}tls = \"{mode}\"")).is_empty(), "{mode}");
    }
    let p = check(&format!(
        "{DB}tls = \"verify-full\"\nca_file = \"/nonexistent/ca.pem\""
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "databases[0].ca_file");
    let existing = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let p = check(&format!("{DB}client_cert = \"{existing}\""));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "databases[0].client_key");
    let p = check(&format!("{DB}tls = \"disable\"\nca_file = \"{existing}\""));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "databases[0].tls");
}

#[test]
fn user_secrets_versus_auth_method() {
    let verifier = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
    let md5 = "md5d41d8cd98f00b204e9800998ecf8427e";
    let user = |pw: &str, method: &str| {
        format!("[[users]]\nname = \"u\"\npassword = \"{pw}\"\nauth_method = \"{method}\"")
    };
    assert!(found(&user(verifier, "scram-sha-256")).is_empty());
    assert!(found(&user("plain", "md5")).is_empty());
    assert!(found(&user(md5, "md5")).is_empty());
    assert!(found(&user("plain", "scram-sha-256")).is_empty());
    assert_one(
        &user(verifier, "md5"),
        "users[0].password",
        "cannot serve md5",
    );
    assert_one(
        &user(md5, "scram-sha-256"),
        "users[0].password",
        "cannot serve scram",
    );
    assert_one(
        &user("SCRAM-SHA-256$4096:...", "scram-sha-256"),
        "users[0].password",
        "malformed SCRAM verifier",
    );
    // server-wide method applies when the user has none
    let text = format!(
        "[server]\nauth_method = \"md5\"\n[[users]]\nname = \"u\"\npassword = \"{verifier}\""
    );
    assert_one(&text, "users[0].password", "cannot serve md5");
}

#[test]
fn user_without_password() {
    assert_one(
        "[[users]]\nname = \"u\"",
        "users[0].password",
        "needs a password",
    );
    assert!(found("[[users]]\nname = \"u\"\nauth_method = \"trust\"").is_empty());
    assert!(found("[[users]]\nname = \"u\"\n[auth]\nuser = \"pgtide_auth\"").is_empty());
}

#[test]
fn duplicate_users() {
    let text =
        "[[users]]\nname = \"u\"\npassword = \"a\"\n[[users]]\nname = \"u\"\npassword = \"b\"";
    assert_one(text, "users[1].name", "duplicate");
}

#[test]
fn auth_section() {
    assert_one(
        "[auth]\nuser = \"a\"\nquery = \"SELECT 1\"",
        "auth.query",
        "$1",
    );
    assert_one("[auth]\nuser = \"\"", "auth.user", "empty");
}

#[test]
fn cache_rules() {
    let both = "[[cache.rules]]\nquery = \"SELECT 1\"\ntables = [\"t\"]";
    assert_one(both, "cache.rules[0]", "exactly one of `query` or `tables`");
    assert_one(
        "[[cache.rules]]\nttl = \"1s\"",
        "cache.rules[0]",
        "exactly one",
    );
    assert_one(
        "[[cache.rules]]\ntables = []",
        "cache.rules[0].tables",
        "at least one",
    );
    assert_one(
        "[[cache.rules]]\nquery = \" \"",
        "cache.rules[0].query",
        "empty",
    );
    assert_one(
        "[[cache.rules]]\nquery = \"SELECT 1\"\nttl = \"0s\"",
        "cache.rules[0].ttl",
        "",
    );
}

#[test]
fn routing_and_insights_limits() {
    assert_one(
        "[routing]\nunhealthy_after = 0",
        "routing.unhealthy_after",
        "",
    );
    assert_one(
        "[routing]\nhealth_check_interval = \"0s\"",
        "routing.health_check_interval",
        "",
    );
    assert_one(
        "[insights]\nmax_fingerprints = 0",
        "insights.max_fingerprints",
        "",
    );
    assert_one(
        "[insights]\nn_plus_one_min_repeats = 1",
        "insights.n_plus_one_min_repeats",
        "",
    );
}

#[test]
fn every_problem_at_once() {
    let text = r#"
        [server]
        listen = "nowhere"
        max_client_connections = 0
        max_message_size = 10
        [server.tls]
        mode = "require"
        [pool]
        size = 0
        min_idle = 1
        [[databases]]
        name = "pgtide"
        primary = "postgres://127.0.0.1/x"
        tls = "disable"
        ca_file = "/nonexistent/ca.pem"
        replicas = [{ url = "postgres://a:b@h/x", weight = 0 }]
        [[users]]
        name = "u"
        [[users]]
        name = "u"
        password = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
        auth_method = "md5"
        [[cache.rules]]
    "#;
    let keys: Vec<String> = check(text).into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        vec![
            "server.listen",
            "server.max_client_connections",
            "server.max_message_size",
            "server.tls.mode",
            "pool.size",
            "pool.min_idle",
            "databases[0].name",
            "databases[0].primary",
            "databases[0].replicas[0].weight",
            "databases[0].tls",
            "databases[0].ca_file",
            "users[0].password",
            "users[1].name",
            "users[1].password",
            "cache.rules[0]",
        ]
    );
    let p = check(text);
    assert!(p.iter().all(|p| p.file == "t.toml"));
    assert_eq!(p[4].to_string(), "t.toml: pool.size: must be at least 1");
}

#[test]
fn auth_query_needs_a_password_check() {
    let f = found("[server]\nauth_method = \"trust\"\n[auth]\nuser = \"lookup\"");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].starts_with("auth: needs a password check"), "{f:#?}");
}

#[test]
fn cert_users_need_a_client_ca() {
    let f = found("[[users]]\nname = \"c\"\nauth_method = \"cert\"");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with("users[0].auth_method: \"cert\" needs server.tls.client_ca"),
        "{f:#?}"
    );
    let f = found("[server.tls]\nclient_ca = \"/nonexistent/ca.pem\"");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].contains("client certificates need TLS"), "{f:#?}");
}
