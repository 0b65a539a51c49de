use std::time::Duration;

use super::*;
use crate::schema::*;

fn problems(text: &str) -> Vec<Problem> {
    parse_str(text, "t.toml").expect_err("should fail")
}

fn keys(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.key).collect()
}

const DB: &str = r#"
[[databases]]
name = "app"
primary = "postgres://app:pw@127.0.0.1:5432/app"
"#;

#[test]
fn empty_file_is_all_defaults() {
    let c = parse_str("", "t.toml").expect("empty parses");
    assert_eq!(c, Config::default());
    assert_eq!(c.server.listen, "0.0.0.0:6432");
    assert_eq!(c.server.http_listen, "127.0.0.1:9930");
    assert_eq!(c.server.max_client_connections, 10_000);
    assert_eq!(c.server.startup_timeout, Duration::from_secs(10));
    assert_eq!(c.server.max_message_size, 64 * 1024 * 1024);
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.server.auth_method, AuthMethod::ScramSha256);
    assert_eq!(c.server.tls.mode, ClientTlsMode::Allow);
    assert_eq!(c.server.tls.cert, None);
    assert_eq!(c.pool.mode, PoolMode::Transaction);
    assert_eq!(c.pool.size, 20);
    assert_eq!(c.pool.min_idle, 2);
    assert_eq!(c.pool.checkout_timeout, Duration::from_secs(5));
    assert_eq!(c.pool.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.pool.max_lifetime, Duration::from_secs(3600));
    assert_eq!(c.pool.max_prepared_statements, 500);
    assert!(c.databases.is_empty() && c.users.is_empty() && c.auth.is_none());
    let r = &c.routing;
    assert!(r.read_write_split);
    assert_eq!(r.replica_reads, ReplicaReads::AllReads);
    assert_eq!(r.read_your_writes, ReadYourWrites::Lsn);
    assert_eq!(r.read_your_writes_window, Duration::from_secs(2));
    assert_eq!(r.max_replica_lag, Duration::from_secs(5));
    assert_eq!(r.health_check_interval, Duration::from_secs(1));
    assert_eq!(r.unhealthy_after, 3);
    assert_eq!(r.primary_reads, PrimaryReads::Fallback);
    assert!(r.write_functions.is_empty());
    assert!(c.cache.enabled);
    assert_eq!(c.cache.max_memory, 256 * 1024 * 1024);
    assert_eq!(c.cache.default_ttl, Duration::from_secs(30));
    assert_eq!(c.cache.invalidate_channel, "pgtide_invalidate");
    assert!(c.cache.rules.is_empty());
    assert_eq!(c.insights.slow_query_threshold, Duration::from_millis(200));
    assert_eq!(c.insights.max_fingerprints, 5000);
    assert_eq!(c.insights.n_plus_one_min_repeats, 10);
    assert_eq!(c.insights.n_plus_one_window, Duration::from_secs(1));
}

#[test]
fn database_defaults_and_replica_forms() {
    let c = parse_str(
        r#"
        [[databases]]
        name = "app"
        primary = "postgres://app:pw@127.0.0.1:5432/app"
        replicas = [ { url = "postgres://app:pw@127.0.0.1:5433/app", weight = 2 },
                     { url = "postgres://app:pw@127.0.0.1:5434/app" },
                     "postgres://app:pw@127.0.0.1:5435/app#weight=5",
                     "postgres://app:pw@127.0.0.1:5436/app" ]
        "#,
        "t.toml",
    )
    .expect("parses");
    let db = c.database("app").expect("app");
    assert_eq!(db.tls, BackendTlsMode::Prefer);
    assert_eq!(db.ca_file, None);
    let w: Vec<(u16, u32)> = db.replicas.iter().map(|r| (r.url.port, r.weight)).collect();
    assert_eq!(w, vec![(5433, 2), (5434, 1), (5435, 5), (5436, 1)]);
    assert!(c.database("nope").is_none());
}

#[test]
fn every_enum_value_parses() {
    let c = parse_str(
        r#"
        [server]
        auth_method = "md5"
        [server.tls]
        mode = "disable"
        [pool]
        mode = "session"
        [routing]
        replica_reads = "read_only_transactions"
        read_your_writes = "window"
        primary_reads = "always"
        transactions = "first_statement"
        [[databases]]
        name = "a"
        primary = "postgres://a@h/a"
        tls = "verify-full"
        [[users]]
        name = "u"
        auth_method = "trust"
        "#,
        "t.toml",
    )
    .expect("parses");
    assert_eq!(c.server.auth_method, AuthMethod::Md5);
    assert_eq!(c.server.tls.mode, ClientTlsMode::Disable);
    assert_eq!(c.pool.mode, PoolMode::Session);
    assert_eq!(c.routing.replica_reads, ReplicaReads::ReadOnlyTransactions);
    assert_eq!(c.routing.read_your_writes, ReadYourWrites::Window);
    assert_eq!(c.routing.primary_reads, PrimaryReads::Always);
    assert_eq!(c.routing.transactions, TransactionRouting::FirstStatement);
    assert_eq!(c.databases[0].tls, BackendTlsMode::VerifyFull);
    assert_eq!(c.users[0].auth_method, Some(AuthMethod::Trust));
    for (text, want) in [
        ("[routing]\nreplica_reads = \"off\"", ReplicaReads::Off),
        (
            "[routing]\nreplica_reads = \"all_reads\"",
            ReplicaReads::AllReads,
        ),
    ] {
        assert_eq!(
            parse_str(text, "t").expect("ok").routing.replica_reads,
            want
        );
    }
}

#[test]
fn units_in_the_file() {
    let c = parse_str(
        r#"
        [server]
        max_message_size = 2048
        startup_timeout = "250ms"
        [cache]
        max_memory = "1GiB"
        [[cache.rules]]
        tables = ["countries"]
        ttl = "10m"
        [[cache.rules]]
        query = "SELECT 1"
        "#,
        "t.toml",
    )
    .expect("parses");
    assert_eq!(c.server.max_message_size, 2048);
    assert_eq!(c.server.startup_timeout, Duration::from_millis(250));
    assert_eq!(c.cache.max_memory, 1 << 30);
    assert_eq!(c.cache.rules[0].ttl, Some(Duration::from_secs(600)));
    assert_eq!(c.cache.rules[1].ttl, None);
    assert_eq!(
        c.cache.rules[1].ttl_or(c.cache.default_ttl),
        Duration::from_secs(30)
    );
}

#[test]
fn unknown_top_level_key() {
    let p = problems("colour = \"blue\"");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].file, "t.toml");
    assert_eq!(p[0].key, "colour");
    assert!(p[0].reason.starts_with("unknown key"), "{}", p[0].reason);
    assert!(
        p[0].reason.contains("`server`"),
        "lists valid keys: {}",
        p[0].reason
    );
    assert_eq!(keys("[serverr]\nlisten = \"x\""), vec!["serverr"]);
}

#[test]
fn unknown_nested_keys() {
    let p = problems("[pool]\nsizee = 3");
    assert_eq!(p[0].key, "pool.sizee");
    assert!(p[0].reason.starts_with("unknown key"));
    assert_eq!(
        p[0].to_string(),
        format!("t.toml: pool.sizee: {}", p[0].reason)
    );
    assert_eq!(
        keys("[server.tls]\nmod = \"allow\""),
        vec!["server.tls.mod"]
    );
    assert_eq!(
        keys("server = { tls = { cert_file = \"x\" } }"),
        vec!["server.tls.cert_file"]
    );
}

#[test]
fn unknown_keys_in_arrays_of_tables() {
    let text = format!("{DB}\nprimry = \"x\"\n[[users]]\nname = \"u\"\npasswd = \"x\"");
    assert_eq!(keys(&text), vec!["databases[0].primry", "users[0].passwd"]);
    let text = r#"
        [[databases]]
        name = "app"
        primary = "postgres://a@h/app"
        replicas = [ { url = "postgres://a@h/app" }, { url = "postgres://a@h/app", wieght = 2 } ]
        [[cache.rules]]
        query = "SELECT 1"
        [[cache.rules]]
        tables = ["t"]
        tll = "1s"
    "#;
    assert_eq!(
        keys(text),
        vec!["databases[0].replicas[1].wieght", "cache.rules[1].tll"]
    );
}

#[test]
fn many_problems_at_once() {
    let text = r#"
        bogus = 1
        [server]
        listen_addr = "x"
        startup_timeout = "forever"
        [pool]
        size = "big"
        mode = "statement"
        [routing]
        replica_reads = "sometimes"
        [insights]
        n_plus_one_window = 5
    "#;
    let p = problems(text);
    let k: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        k,
        vec![
            "bogus",
            "server.listen_addr",
            "server.startup_timeout",
            "pool.size",
            "pool.mode",
            "routing.replica_reads",
            "insights.n_plus_one_window",
        ],
        "{p:#?}"
    );
    assert!(
        p[2].reason.contains("invalid duration \"forever\""),
        "{}",
        p[2].reason
    );
    assert!(p[4].reason.contains("statement"), "{}", p[4].reason);
    assert!(p[6].reason.contains("needs a unit"), "{}", p[6].reason);
}

#[test]
fn bad_values_name_their_key() {
    let p = problems("[cache]\nmax_memory = \"lots\"");
    assert_eq!(p[0].key, "cache.max_memory");
    assert!(p[0].reason.contains("invalid size"), "{}", p[0].reason);
    let p = problems(&format!("{DB}\nreplicas = [\"postgres://h/app#weight=x\"]"));
    assert_eq!(p[0].key, "databases[0].replicas[0]");
    assert!(p[0].reason.contains("invalid URL"), "{}", p[0].reason);
    let p = problems("[[databases]]\nname = \"a\"\nprimary = \"http://h/a\"");
    assert_eq!(p.len(), 1, "no follow-on 'missing' problem: {p:?}");
    assert_eq!(p[0].key, "databases[0].primary");
    assert!(p[0].reason.contains("postgres://"), "{}", p[0].reason);
    let p = problems("[[cache.rules]]\ntables = [\"a\", 5]");
    assert_eq!(p[0].key, "cache.rules[0].tables[1]");
}

#[test]
fn missing_required_key() {
    let p = problems("[[databases]]\nname = \"a\"");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "databases[0].primary");
    assert_eq!(p[0].reason, "required key is missing");
    let p = problems("[auth]\npassword = \"x\"");
    assert_eq!(p[0].key, "auth.user");
}

#[test]
fn syntax_errors() {
    let p = problems("[server]\nlisten = \n");
    assert_eq!(p[0].key, "line 2, column 10");
    assert!(p[0].reason.starts_with("invalid TOML"), "{}", p[0].reason);
    let p = problems("[pool]\nsize = 1\nsize = 2\n");
    assert!(p[0].key.starts_with("line 3"), "{p:?}");
}

#[test]
fn load_file_reports_parse_and_validation_problems() {
    let dir = std::env::temp_dir().join(format!("pgtide-parse-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let good = dir.join("good.toml");
    std::fs::write(&good, DB).expect("write");
    assert!(load_file(&good).is_ok());
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[pool]\nsize = 0\nmin_idle = 3\n").expect("write");
    let p = load_file(&bad).expect_err("invalid");
    let k: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(k, vec!["pool.size", "pool.min_idle", "databases"]);
    assert!(p.iter().all(|x| x.file == bad.display().to_string()));
    let p = load_file(&dir.join("missing.toml")).expect_err("missing");
    assert!(p[0].reason.contains("cannot read"), "{p:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn odd_shapes_are_reported_not_looped_on() {
    let text = r#"
        server = 3
        databases = 5
        [pool]
        size = -1
        [cache]
        rules = "x"
    "#;
    assert_eq!(
        keys(text),
        vec!["server", "databases", "pool.size", "cache.rules"]
    );
    let text = format!("{DB}\nreplicas = 5\ntls = \"maybe\"");
    assert_eq!(
        keys(&text),
        vec!["databases[0].replicas", "databases[0].tls"]
    );
}
