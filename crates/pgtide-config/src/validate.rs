//! Semantic checks on a parsed config: every problem at once, each naming its key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::backend_url::BackendUrl;
use crate::schema::{AuthMethod, BackendTlsMode, ClientTlsMode, Config};
use crate::users::{is_valid_scram_verifier, Secret};
use crate::{Problem, ADMIN_DATABASE};

struct Sink<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Sink<'_> {
    fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::new(self.file, key, reason));
    }

    fn check(&mut self, ok: bool, key: &str, reason: &str) {
        if !ok {
            self.add(key, reason);
        }
    }
}

impl Config {
    /// Every semantic problem in this config; empty means it is usable.
    pub fn validate(&self, origin: &str) -> Vec<Problem> {
        let mut s = Sink {
            file: origin,
            problems: Vec::new(),
        };
        self.check_server(&mut s);
        self.check_pool(&mut s);
        self.check_databases(&mut s);
        self.check_users(&mut s);
        self.check_routing(&mut s);
        self.check_cache(&mut s);
        self.check_insights(&mut s);
        s.problems
    }

    fn check_server(&self, s: &mut Sink) {
        let srv = &self.server;
        for (key, addr) in [
            ("server.listen", &srv.listen),
            ("server.http_listen", &srv.http_listen),
        ] {
            // An empty http_listen turns HTTP off.
            if addr.parse::<SocketAddr>().is_err()
                && !(key == "server.http_listen" && addr.is_empty())
            {
                s.add(
                    key,
                    format!("{addr:?} is not an IP:port address (e.g. \"127.0.0.1:6432\")"),
                );
            }
        }
        if let Ok(addr) = srv.http_listen.parse::<SocketAddr>() {
            if !addr.ip().is_loopback() && srv.http_auth_token.is_empty() {
                s.add(
                    "server.http_auth_token",
                    format!(
                        "required when http_listen ({addr}) is not a loopback address: \
                         /metrics, /dashboard and /api would be open to the network"
                    ),
                );
            }
        }
        let token = &srv.http_auth_token;
        s.check(
            // The characters of hex, base64 and base64url: safe in a header, a cookie and the
            // dashboard's ?token= without any escaping.
            token.is_empty()
                || (token.len() >= 16
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))),
            "server.http_auth_token",
            "must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / = (hex or base64)",
        );
        for host in &srv.http_allowed_hosts {
            s.check(
                !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()),
                "server.http_allowed_hosts",
                "each entry is a host name, an IP address, host:port or \"*\"",
            );
        }
        s.check(
            srv.max_client_connections > 0,
            "server.max_client_connections",
            "must be at least 1",
        );
        s.check(
            srv.worker_threads <= 1024,
            "server.worker_threads",
            "must be at most 1024 (0 picks one per two CPUs)",
        );
        s.check(
            srv.max_message_size >= 1024,
            "server.max_message_size",
            "must be at least 1KiB",
        );
        s.check(
            !srv.startup_timeout.is_zero(),
            "server.startup_timeout",
            "must be greater than 0",
        );
        let tls = &srv.tls;
        if tls.mode == ClientTlsMode::Require {
            s.check(
                tls.cert.is_some() && tls.key.is_some(),
                "server.tls.mode",
                "\"require\" needs both server.tls.cert and server.tls.key",
            );
        }
        if tls.cert.is_some() != tls.key.is_some() {
            s.add(
                if tls.cert.is_some() {
                    "server.tls.key"
                } else {
                    "server.tls.cert"
                },
                "server.tls.cert and server.tls.key must be given together",
            );
        }
        if tls.client_ca.is_some() && tls.cert.is_none() {
            s.add(
                "server.tls.client_ca",
                "client certificates need TLS: set server.tls.cert and server.tls.key",
            );
        }
        for (key, path) in [
            ("server.tls.cert", &tls.cert),
            ("server.tls.key", &tls.key),
            ("server.tls.client_ca", &tls.client_ca),
        ] {
            if let Some(p) = path {
                s.check(p.is_file(), key, &format!("file {} not found", p.display()));
            }
        }
    }

    fn check_pool(&self, s: &mut Sink) {
        let p = &self.pool;
        s.check(p.size > 0, "pool.size", "must be at least 1");
        if p.min_idle > p.size {
            s.add(
                "pool.min_idle",
                format!("{} is more than pool.size ({})", p.min_idle, p.size),
            );
        }
        s.check(
            !p.checkout_timeout.is_zero(),
            "pool.checkout_timeout",
            "must be greater than 0",
        );
        s.check(
            p.max_prepared_statements > 0,
            "pool.max_prepared_statements",
            "must be at least 1",
        );
    }

    fn check_databases(&self, s: &mut Sink) {
        if self.databases.is_empty() {
            s.add(
                "databases",
                "at least one [[databases]] entry (or --primary / PGTIDE_PRIMARY_URL) is required",
            );
        }
        let mut seen = HashSet::new();
        for (i, db) in self.databases.iter().enumerate() {
            let at = |k: &str| format!("databases[{i}].{k}");
            if db.name.is_empty() {
                s.add(at("name"), "must not be empty");
            } else if db.name == ADMIN_DATABASE {
                s.add(at("name"), "\"pgtide\" is reserved for the admin console");
            } else if !seen.insert(db.name.as_str()) {
                s.add(at("name"), format!("duplicate database name {:?}", db.name));
            }
            check_url(s, &at("primary"), &db.primary, "primary");
            for (j, r) in db.replicas.iter().enumerate() {
                let key = format!("databases[{i}].replicas[{j}]");
                check_url(s, &format!("{key}.url"), &r.url, "replica");
                s.check(r.weight > 0, &format!("{key}.weight"), "must be at least 1");
            }
            if db.client_cert.is_some() != db.client_key.is_some() {
                s.add(
                    at(if db.client_cert.is_some() {
                        "client_key"
                    } else {
                        "client_cert"
                    }),
                    "client_cert and client_key must be given together",
                );
            }
            for (key, path) in [
                ("client_cert", &db.client_cert),
                ("client_key", &db.client_key),
            ] {
                if let Some(p) = path {
                    s.check(
                        p.is_file(),
                        &at(key),
                        &format!("file {} not found", p.display()),
                    );
                }
            }
            if db.tls == BackendTlsMode::Disable
                && (db.ca_file.is_some() || db.client_cert.is_some())
            {
                s.add(
                    at("tls"),
                    "is \"disable\": ca_file and client_cert would not be used",
                );
            }
            if let Some(ca) = &db.ca_file {
                s.check(
                    ca.is_file(),
                    &at("ca_file"),
                    &format!("file {} not found", ca.display()),
                );
            }
        }
    }

    fn check_users(&self, s: &mut Sink) {
        let mut seen = HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let at = |k: &str| format!("users[{i}].{k}");
            if u.name.is_empty() {
                s.add(at("name"), "must not be empty");
            } else if !seen.insert(u.name.as_str()) {
                s.add(at("name"), format!("duplicate user name {:?}", u.name));
            }
            for (j, db) in u.databases.iter().flatten().enumerate() {
                s.check(
                    self.database(db).is_some() || db == crate::ADMIN_DATABASE,
                    &format!("users[{i}].databases[{j}]"),
                    &format!("no database named {db:?} in [[databases]]"),
                );
            }
            let method = self.auth_method_for(u);
            if method == AuthMethod::Cert && self.server.tls.client_ca.is_none() {
                s.add(
                    at("auth_method"),
                    "\"cert\" needs server.tls.client_ca (the CA that signs client certificates)",
                );
            }
            match (u.secret(), method) {
                (_, AuthMethod::Trust | AuthMethod::Cert) => {}
                (Secret::None, _) if self.auth.is_none() => s.add(
                    at("password"),
                    format!("auth_method {method} needs a password (or use [auth] query)"),
                ),
                (Secret::ScramVerifier(v), AuthMethod::ScramSha256) => s.check(
                    is_valid_scram_verifier(&v),
                    &at("password"),
                    "malformed SCRAM verifier: expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>",
                ),
                (Secret::ScramVerifier(_), AuthMethod::Md5) => s.add(
                    at("password"),
                    "a SCRAM verifier cannot serve md5: use a plain password or an md5 hash (\"md5\" + 32 hex)",
                ),
                (Secret::Md5Hash(_), AuthMethod::ScramSha256) => s.add(
                    at("password"),
                    "an md5 hash cannot serve scram-sha-256: use a plain password or a SCRAM verifier",
                ),
                _ => {}
            }
        }
        if let Some(a) = &self.auth {
            s.check(!a.user.is_empty(), "auth.user", "must not be empty");
            s.check(
                self.server.auth_method != AuthMethod::Trust,
                "auth",
                "needs a password check: with server.auth_method = \"trust\" a looked-up user \
                 proves nothing pgtide could log in to PostgreSQL with",
            );
            s.check(
                a.query.contains("$1"),
                "auth.query",
                "must take the user name as $1",
            );
        }
    }

    fn check_routing(&self, s: &mut Sink) {
        let r = &self.routing;
        s.check(
            !r.health_check_interval.is_zero(),
            "routing.health_check_interval",
            "must be greater than 0",
        );
        s.check(
            r.unhealthy_after > 0,
            "routing.unhealthy_after",
            "must be at least 1",
        );
        for (i, f) in r.write_functions.iter().enumerate() {
            s.check(
                !f.trim().is_empty(),
                &format!("routing.write_functions[{i}]"),
                "must not be empty",
            );
        }
    }

    fn check_cache(&self, s: &mut Sink) {
        let c = &self.cache;
        s.check(
            !c.invalidate_channel.is_empty(),
            "cache.invalidate_channel",
            "must not be empty",
        );
        for (i, rule) in c.rules.iter().enumerate() {
            let at = |k: &str| format!("cache.rules[{i}]{k}");
            match (&rule.query, &rule.tables) {
                (Some(_), Some(_)) | (None, None) => {
                    s.add(at(""), "needs exactly one of `query` or `tables`")
                }
                (Some(q), None) => {
                    s.check(!q.trim().is_empty(), &at(".query"), "must not be empty")
                }
                (None, Some(t)) => {
                    s.check(
                        !t.is_empty(),
                        &at(".tables"),
                        "must list at least one table",
                    );
                    s.check(
                        t.iter().all(|n| !n.trim().is_empty()),
                        &at(".tables"),
                        "table names must not be empty",
                    );
                }
            }
            if rule.ttl == Some(Duration::ZERO) {
                s.add(at(".ttl"), "must be greater than 0");
            }
        }
    }

    fn check_insights(&self, s: &mut Sink) {
        let n = &self.insights;
        s.check(
            n.max_fingerprints > 0,
            "insights.max_fingerprints",
            "must be at least 1",
        );
        s.check(
            n.n_plus_one_min_repeats >= 2,
            "insights.n_plus_one_min_repeats",
            "must be at least 2",
        );
    }
}

fn check_url(s: &mut Sink, key: &str, url: &BackendUrl, role: &str) {
    if url.user.is_none() {
        s.add(
            key,
            format!(
                "{role} URL needs a user: pgtide logs in to the backend with the URL's credentials"
            ),
        );
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
