//! Sidecar mode: command-line flags and env vars laid over the file (defaults ← file ← flags).
//! The binary parses `--config/--listen/--primary/--replica` and `PGTIDE_CONFIG`,
//! `PGTIDE_LISTEN`, `PGTIDE_PRIMARY_URL`, `PGTIDE_REPLICA_URLS` (see `split_replica_list`) and
//! `PGTIDE_HTTP_AUTH_TOKEN`.

use std::path::PathBuf;

use crate::backend_url::{BackendUrl, ReplicaConfig};
use crate::parse::parse_file;
use crate::schema::{Config, DatabaseConfig};
use crate::Problem;

/// What the command line and environment say; `None`/empty means "keep the file's value".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub primary_url: Option<String>,
    /// Each `URL[#weight=N]`.
    pub replica_urls: Vec<String>,
    /// `server.http_auth_token` from `PGTIDE_HTTP_AUTH_TOKEN` (a secret is better kept out of
    /// the file, e.g. in a container's environment).
    pub http_auth_token: Option<String>,
}

/// The origin named in problems that come from flags or env vars.
pub const COMMAND_LINE: &str = "command line";

impl Config {
    /// Lays `o` over this config. `listen` replaces `server.listen`; `primary_url` replaces the
    /// first database's primary (or creates a database named after the URL's dbname, "postgres"
    /// when it has none); `replica_urls` replace that database's replicas.
    pub fn apply_overrides(&mut self, o: &Overrides, origin: &str) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let primary = o.primary_url.as_deref().and_then(|s| {
            BackendUrl::parse(s)
                .map_err(|e| {
                    let key = "--primary (PGTIDE_PRIMARY_URL)";
                    problems.push(Problem::new(origin, key, format!("invalid URL: {e}")));
                })
                .ok()
        });
        let mut replicas = Vec::new();
        for (i, spec) in o.replica_urls.iter().enumerate() {
            match ReplicaConfig::parse_spec(spec) {
                Ok(r) => replicas.push(r),
                Err(e) => problems.push(Problem::new(
                    origin,
                    format!("--replica #{} (PGTIDE_REPLICA_URLS)", i + 1),
                    format!("invalid URL: {e}"),
                )),
            }
        }
        if o.primary_url.is_none() && !o.replica_urls.is_empty() && self.databases.is_empty() {
            problems.push(Problem::new(
                origin,
                "--replica (PGTIDE_REPLICA_URLS)",
                "replicas need a primary: give --primary or a [[databases]] entry",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        if let Some(listen) = &o.listen {
            self.server.listen = listen.clone();
        }
        if let Some(token) = &o.http_auth_token {
            self.server.http_auth_token = token.clone();
        }
        if let Some(url) = primary {
            match self.databases.first_mut() {
                Some(db) => db.primary = url,
                None => {
                    let name = url.dbname.clone().unwrap_or_else(|| "postgres".into());
                    self.databases.push(DatabaseConfig::new(name, url));
                }
            }
        }
        if !o.replica_urls.is_empty() {
            if let Some(db) = self.databases.first_mut() {
                db.replicas = replicas;
            }
        }
        Ok(())
    }

    /// defaults ← file (if `o.config`) ← flags/env, then validation: every problem at once.
    pub fn load(o: &Overrides) -> Result<Config, Vec<Problem>> {
        let (mut cfg, origin) = match &o.config {
            Some(path) => (parse_file(path)?, path.display().to_string()),
            None => (Config::default(), COMMAND_LINE.to_string()),
        };
        cfg.apply_overrides(o, COMMAND_LINE)?;
        let problems = cfg.validate(&origin);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    fn o(primary: Option<&str>, replicas: &[&str]) -> Overrides {
        Overrides {
            config: None,
            listen: None,
            primary_url: primary.map(str::to_string),
            replica_urls: replicas.iter().map(|s| s.to_string()).collect(),
            http_auth_token: None,
        }
    }

    #[test]
    fn sidecar_without_file() {
        let mut ov = o(
            Some("postgres://app:pw@127.0.0.1:5432/shop"),
            &[
                "postgres://app:pw@127.0.0.1:5433/shop#weight=2",
                "postgres://app:pw@127.0.0.1:5434/shop",
            ],
        );
        ov.listen = Some("127.0.0.1:7432".into());
        let c = Config::load(&ov).expect("valid");
        assert_eq!(c.server.listen, "127.0.0.1:7432");
        assert_eq!(c.databases.len(), 1);
        let db = &c.databases[0];
        assert_eq!(db.name, "shop");
        assert_eq!(db.primary.port, 5432);
        assert_eq!(db.replicas.len(), 2);
        assert_eq!(db.replicas[0].weight, 2);
        assert_eq!(db.replicas[1].weight, 1);
        assert_eq!(db.replicas[1].url.port, 5434);
        assert_eq!(c.pool, crate::PoolConfig::default());
        assert_eq!(c.effective_users().len(), 1);
    }

    #[test]
    fn database_name_defaults_to_postgres() {
        let c = Config::load(&o(Some("postgres://app:pw@127.0.0.1"), &[])).expect("valid");
        assert_eq!(c.databases[0].name, "postgres");
    }

    #[test]
    fn flags_override_file() {
        let mut c = parse_str(
            r#"
            [server]
            listen = "127.0.0.1:6000"
            [pool]
            size = 7
            [[databases]]
            name = "app"
            primary = "postgres://app:pw@127.0.0.1:5432/app"
            replicas = ["postgres://app:pw@127.0.0.1:5440/app"]
            [[databases]]
            name = "two"
            primary = "postgres://app:pw@127.0.0.1:5432/two"
            "#,
            "f.toml",
        )
        .expect("parses");
        let mut ov = o(Some("postgres://app:pw@127.0.0.1:6543/other"), &[]);
        ov.listen = Some("127.0.0.1:7000".into());
        c.apply_overrides(&ov, COMMAND_LINE).expect("applies");
        assert_eq!(c.server.listen, "127.0.0.1:7000");
        assert_eq!(c.pool.size, 7, "file value kept where no flag is given");
        assert_eq!(
            c.databases[0].name, "app",
            "the first database keeps its name"
        );
        assert_eq!(c.databases[0].primary.port, 6543);
        assert_eq!(
            c.databases[0].replicas.len(),
            1,
            "no --replica keeps file replicas"
        );
        assert_eq!(c.databases[1].primary.port, 5432);

        c.apply_overrides(
            &o(None, &["postgres://app:pw@127.0.0.1:5441/app#weight=3"]),
            "x",
        )
        .expect("applies");
        assert_eq!(c.databases[0].replicas.len(), 1);
        assert_eq!(c.databases[0].replicas[0].url.port, 5441);
        assert_eq!(c.databases[0].replicas[0].weight, 3);
        assert_eq!(c.databases[0].primary.port, 6543);
    }

    #[test]
    fn load_with_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("pgtide-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("f.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:6001\"\n[pool]\nsize = 3\n",
        )
        .expect("write");
        let mut ov = o(Some("postgres://app:pw@127.0.0.1/app"), &[]);
        ov.config = Some(path.clone());
        let c = Config::load(&ov).expect("valid");
        assert_eq!(c.server.listen, "127.0.0.1:6001");
        assert_eq!(c.pool.size, 3);
        assert_eq!(c.databases[0].name, "app");
        ov.primary_url = None;
        let err = Config::load(&ov).expect_err("no database");
        assert_eq!(err[0].file, path.display().to_string());
        assert_eq!(err[0].key, "databases");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_flags_are_all_reported() {
        let err = Config::load(&o(
            Some("mysql://x/y"),
            &["postgres://h/d#weight=x", "nope"],
        ))
        .expect_err("bad");
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err.iter().all(|p| p.file == COMMAND_LINE));
        assert!(err[0].key.contains("--primary"));
        assert!(err[1].key.contains("--replica #1"));
        assert!(err[2].key.contains("--replica #2"));
    }

    #[test]
    fn replicas_without_primary() {
        let err = Config::load(&o(None, &["postgres://a:b@h/d"])).expect_err("bad");
        assert!(err[0].reason.contains("need a primary"), "{err:?}");
    }

    #[test]
    fn weight_zero_from_flag_is_a_validation_problem() {
        let err = Config::load(&o(
            Some("postgres://a:b@h/d"),
            &["postgres://a:b@h:5433/d#weight=0"],
        ))
        .expect_err("bad");
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].key, "databases[0].replicas[0].weight");
    }

    #[test]
    fn no_flags_no_file() {
        let err = Config::load(&Overrides::default()).expect_err("nothing to proxy");
        assert_eq!(err[0].key, "databases");
    }
}
