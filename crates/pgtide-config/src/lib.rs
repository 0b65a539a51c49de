//! pgtide's configuration: the TOML schema with its defaults (config/pgtide.toml), parsing that names
//! every bad key, semantic validation that reports every problem at once, the command-line/env
//! overlay for sidecar use, and the diff between two configs for reloads.
//!
//! ```
//! let cfg = pgtide_config::parse_str(
//!     r#"
//!     [[databases]]
//!     name = "app"
//!     primary = "postgres://app:secret@127.0.0.1:5432/app"
//!     "#,
//!     "example.toml",
//! )
//! .expect("parses");
//! assert!(cfg.validate("example.toml").is_empty());
//! assert_eq!(cfg.pool.size, 20);
//! ```

mod backend_url;
mod diff;
mod overlay;
mod parse;
mod schema;
pub mod units;
mod users;
mod validate;

pub use backend_url::{split_replica_list, BackendUrl, ReplicaConfig, UrlError};
pub use diff::{diff, ConfigDiff};
pub use overlay::{Overrides, COMMAND_LINE};
pub use parse::{load_file, parse_str};
pub use schema::{
    AuthConfig, AuthMethod, BackendTlsMode, CacheConfig, CacheRule, ClientTlsConfig, ClientTlsMode,
    Config, DatabaseConfig, InsightsConfig, PoolConfig, PoolMode, PrimaryReads, ReadYourWrites,
    ReplicaReads, RoutingConfig, ServerConfig, TransactionRouting, UserConfig, DEFAULT_AUTH_QUERY,
};
pub use units::UnitError;
pub use users::{is_md5_hash, is_valid_scram_verifier, PassThrough, Secret};

/// The name of the admin console's database; no `[[databases]]` entry may use it.
pub const ADMIN_DATABASE: &str = "pgtide";

/// One thing wrong with a config: where (file or "command line"), which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct Problem {
    pub file: String,
    /// Dotted key path, e.g. `pool.size` or `databases[0].replicas[1].weight`.
    pub key: String,
    pub reason: String,
}

impl Problem {
    pub fn new(file: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod example_files_tests {
    use std::path::{Path, PathBuf};

    fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).expect("config dir is readable");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                toml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_file_under_config_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut files = Vec::new();
        toml_files(&dir, &mut files);
        assert!(
            files.len() >= 3,
            "expected example files in {}",
            dir.display()
        );
        for f in &files {
            if let Err(problems) = crate::load_file(f) {
                let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                panic!("{} does not validate:\n{}", f.display(), all.join("\n"));
            }
        }
    }

    #[test]
    fn annotated_example_mentions_every_section() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/pgtide.toml");
        let text = std::fs::read_to_string(path).expect("config/pgtide.toml exists");
        for section in [
            "[server]",
            "[server.tls]",
            "[pool]",
            "[[databases]]",
            "[[users]]",
            "[auth]",
            "[routing]",
            "[cache]",
            "[[cache.rules]]",
            "[insights]",
        ] {
            assert!(text.contains(section), "config/pgtide.toml lacks {section}");
        }
    }
}
