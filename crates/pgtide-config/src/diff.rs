//! What changed between two configs, split into what a reload applies live and what needs a
//! restart (the listeners and client TLS).

use crate::schema::{
    AuthConfig, CacheConfig, ClientTlsConfig, Config, DatabaseConfig, InsightsConfig, PoolConfig,
    RoutingConfig, ServerConfig, UserConfig,
};

/// Changed key paths, e.g. `pool.size`, `databases[app].replicas`, `users[alice].password`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Applied by SIGHUP / RELOAD without dropping clients.
    pub live: Vec<String>,
    /// Only take effect after a restart (the reload keeps the old value).
    pub restart_required: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart_required.is_empty()
    }
}

/// Pushes `prefix.field` for each differing field. The destructuring without `..` makes the
/// build fail when a field is added to the struct but not here.
macro_rules! changed_fields {
    ($out:expr, $prefix:expr, $ty:ident, $a:expr, $b:expr, [$($f:ident),* $(,)?]) => {{
        let $ty { $($f: _),* } = $a;
        changed_fields!(@some $out, $prefix, $a, $b, [$($f),*]);
    }};
    (@some $out:expr, $prefix:expr, $a:expr, $b:expr, [$($f:ident),* $(,)?]) => {{
        $(
            if $a.$f != $b.$f {
                $out.push(format!("{}.{}", $prefix, stringify!($f)));
            }
        )*
    }};
}

/// Lists every changed key of `new` against `old`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    let Config {
        server: _,
        pool: _,
        databases: _,
        users: _,
        auth: _,
        routing: _,
        cache: _,
        insights: _,
    } = old;

    let (a, b) = (&old.server, &new.server);
    let ServerConfig {
        listen: _,
        http_listen: _,
        http_auth_token: _,
        http_allowed_hosts: _,
        max_client_connections: _,
        startup_timeout: _,
        max_message_size: _,
        shutdown_timeout: _,
        auth_method: _,
        worker_threads: _,
        tls: _,
    } = a;
    changed_fields!(@some d.restart_required, "server", a, b, [listen, http_listen, worker_threads]);
    changed_fields!(@some d.live, "server", a, b, [
        max_client_connections,
        startup_timeout,
        max_message_size,
        shutdown_timeout,
        auth_method,
        http_auth_token,
        http_allowed_hosts,
    ]);
    // Live: each new client connection takes the TLS settings (and re-read files) in force.
    changed_fields!(
        d.live,
        "server.tls",
        ClientTlsConfig,
        &a.tls,
        &b.tls,
        [mode, cert, key, client_ca]
    );

    changed_fields!(
        d.live,
        "pool",
        PoolConfig,
        &old.pool,
        &new.pool,
        [
            mode,
            size,
            min_idle,
            checkout_timeout,
            idle_timeout,
            max_lifetime,
            max_prepared_statements,
        ]
    );

    keyed(
        &mut d.live,
        "databases",
        &old.databases,
        &new.databases,
        |x| &x.name,
        |out, p, a, b| {
            changed_fields!(
                out,
                p,
                DatabaseConfig,
                a,
                b,
                [
                    name,
                    primary,
                    replicas,
                    tls,
                    ca_file,
                    client_cert,
                    client_key
                ]
            );
        },
    );
    keyed(
        &mut d.live,
        "users",
        &old.users,
        &new.users,
        |x| &x.name,
        |out, p, a, b| {
            changed_fields!(
                out,
                p,
                UserConfig,
                a,
                b,
                [name, password, admin, auth_method, databases, pass_through]
            );
        },
    );

    match (&old.auth, &new.auth) {
        (Some(a), Some(b)) => {
            changed_fields!(d.live, "auth", AuthConfig, a, b, [user, password, query]);
        }
        (a, b) if a != b => d.live.push("auth".into()),
        _ => {}
    }

    changed_fields!(
        d.live,
        "routing",
        RoutingConfig,
        &old.routing,
        &new.routing,
        [
            read_write_split,
            replica_reads,
            read_your_writes,
            read_your_writes_window,
            max_replica_lag,
            health_check_interval,
            unhealthy_after,
            primary_reads,
            transactions,
            write_functions,
        ]
    );
    changed_fields!(
        d.live,
        "cache",
        CacheConfig,
        &old.cache,
        &new.cache,
        [enabled, max_memory, default_ttl, invalidate_channel, rules,]
    );
    changed_fields!(
        d.live,
        "insights",
        InsightsConfig,
        &old.insights,
        &new.insights,
        [
            enabled,
            slow_query_threshold,
            max_fingerprints,
            n_plus_one_min_repeats,
            n_plus_one_window,
            sample_literals,
        ]
    );
    d
}

/// Compares two lists of named entries by name: `section[name]` when added or removed,
/// `section[name].field` when changed.
fn keyed<T: PartialEq>(
    out: &mut Vec<String>,
    section: &str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &String,
    fields: impl Fn(&mut Vec<String>, &str, &T, &T),
) {
    for a in old {
        let p = format!("{section}[{}]", name(a));
        match new.iter().find(|b| name(b) == name(a)) {
            None => out.push(p),
            Some(b) if a != b => fields(out, &p, a, b),
            Some(_) => {}
        }
    }
    for b in new {
        if !old.iter().any(|a| name(a) == name(b)) {
            out.push(format!("{section}[{}]", name(b)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    const BASE: &str = r#"
        [[databases]]
        name = "app"
        primary = "postgres://app:pw@127.0.0.1:5432/app"
        [[databases]]
        name = "old"
        primary = "postgres://app:pw@127.0.0.1:5432/old"
        [[users]]
        name = "alice"
        password = "one"
    "#;

    fn cfg(extra: &str) -> Config {
        parse_str(&format!("{extra}\n{BASE}"), "t.toml").expect("parses")
    }

    #[test]
    fn identical_configs_have_no_diff() {
        assert!(diff(&cfg(""), &cfg("")).is_empty());
        assert!(diff(&Config::default(), &Config::default()).is_empty());
    }

    #[test]
    fn listeners_and_tls_need_restart() {
        let new = cfg(
            "[server]\nlisten = \"127.0.0.1:7000\"\nhttp_listen = \"127.0.0.1:7001\"\n\
             shutdown_timeout = \"5s\"\n[server.tls]\nmode = \"disable\"",
        );
        let d = diff(&cfg(""), &new);
        assert_eq!(
            d.restart_required,
            vec!["server.listen", "server.http_listen"]
        );
        assert_eq!(d.live, vec!["server.shutdown_timeout", "server.tls.mode"]);
    }

    #[test]
    fn everything_else_is_live() {
        let new = cfg("[pool]\nsize = 50\ncheckout_timeout = \"1s\"\n\
             [routing]\nreplica_reads = \"off\"\n[cache]\nenabled = false\n\
             [insights]\nslow_query_threshold = \"1s\"\n\
             [auth]\nuser = \"pgtide_auth\"");
        let d = diff(&cfg(""), &new);
        assert!(d.restart_required.is_empty());
        assert_eq!(
            d.live,
            vec![
                "pool.size",
                "pool.checkout_timeout",
                "auth",
                "routing.replica_reads",
                "cache.enabled",
                "insights.slow_query_threshold",
            ]
        );
    }

    #[test]
    fn databases_and_users_by_name() {
        let old = cfg("");
        let mut new = old.clone();
        new.databases.retain(|d| d.name != "old");
        new.databases[0].replicas.push(
            crate::ReplicaConfig::parse_spec("postgres://app:pw@127.0.0.1:5433/app").expect("url"),
        );
        new.databases.push(DatabaseConfig::new(
            "fresh",
            crate::BackendUrl::parse("postgres://app:pw@127.0.0.1/fresh").expect("url"),
        ));
        new.users[0].password = Some("two".into());
        new.users.push(UserConfig::new("bob", None));
        let d = diff(&old, &new);
        assert!(d.restart_required.is_empty());
        assert_eq!(
            d.live,
            vec![
                "databases[app].replicas",
                "databases[old]",
                "databases[fresh]",
                "users[alice].password",
                "users[bob]",
            ]
        );
        assert!(!format!("{d:?}").contains("two"));
    }
}
