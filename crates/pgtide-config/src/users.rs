//! Who may connect: the `[[users]]` list, or in sidecar mode the primary URLs' credentials.

use std::fmt;

use crate::schema::{Config, UserConfig};

/// What a user's `password` holds. `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A plain-text password: works with scram-sha-256 and md5.
    Plain(String),
    /// "md5" followed by 32 hex digits (md5(password || user)): md5 only.
    Md5Hash(String),
    /// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>": scram-sha-256 only.
    ScramVerifier(String),
    /// No password: only valid with auth_method = "trust".
    None,
}

impl Secret {
    /// Classifies a stored password string (as in `[[users]]` or pg_shadow.passwd).
    pub fn classify(password: Option<&str>) -> Secret {
        match password {
            None => Secret::None,
            Some(p) if p.starts_with("SCRAM-SHA-256$") => Secret::ScramVerifier(p.to_string()),
            Some(p) if is_md5_hash(p) => Secret::Md5Hash(p.to_string()),
            Some(p) => Secret::Plain(p.to_string()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Secret::Plain(_) => "plain-text password",
            Secret::Md5Hash(_) => "md5 hash",
            Secret::ScramVerifier(_) => "SCRAM verifier",
            Secret::None => "no password",
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::None => f.write_str("None"),
            other => write!(f, "Secret({}: ***)", other.kind()),
        }
    }
}

/// What a client's login to pgtide proved, enough for pgtide to log in to PostgreSQL as that
/// client without its password (`[auth] query` users). `Debug` hides it: it is as good as a
/// password for logging in, though it is not the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PassThrough {
    /// SCRAM-SHA-256: the ClientKey recovered from the client's proof, and the verifier's
    /// ServerKey (to check PostgreSQL's signature).
    Scram {
        client_key: [u8; 32],
        server_key: [u8; 32],
    },
    /// md5: the stored hash ("md5" + 32 hex), which is what an md5 login proves knowledge of.
    Md5(String),
}

impl fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassThrough::Scram { .. } => f.write_str("PassThrough(SCRAM keys: ***)"),
            PassThrough::Md5(_) => f.write_str("PassThrough(md5 hash: ***)"),
        }
    }
}

/// "md5" followed by exactly 32 hex digits.
pub fn is_md5_hash(p: &str) -> bool {
    p.len() == 35 && p.starts_with("md5") && p.as_bytes()[3..].iter().all(|b| b.is_ascii_hexdigit())
}

/// Checks the shape of a SCRAM verifier: "SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>".
pub fn is_valid_scram_verifier(p: &str) -> bool {
    let Some(rest) = p.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((iter_salt, keys)) = rest.split_once('$') else {
        return false;
    };
    let Some((iter, salt)) = iter_salt.split_once(':') else {
        return false;
    };
    let Some((stored, server)) = keys.split_once(':') else {
        return false;
    };
    let b64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    };
    iter.parse::<u32>().is_ok_and(|n| n > 0) && b64(salt) && b64(stored) && b64(server)
}

impl UserConfig {
    /// A user with a password and default settings.
    pub fn new(name: impl Into<String>, password: Option<String>) -> Self {
        UserConfig {
            name: name.into(),
            password,
            admin: false,
            auth_method: None,
            databases: None,
            pass_through: None,
        }
    }

    /// Whether this user may connect to `database` (its `databases` list, when it has one).
    pub fn may_reach(&self, database: &str) -> bool {
        self.databases
            .as_ref()
            .is_none_or(|list| list.iter().any(|d| d == database))
    }

    /// What this user's `password` is.
    pub fn secret(&self) -> Secret {
        Secret::classify(self.password.as_deref())
    }
}

impl Config {
    /// The users admitted without an auth query: the `[[users]]` list; or, when that is empty and
    /// there is no `[auth]` section, each database primary URL's user and password (the sidecar
    /// case: the app keeps the credentials of its DATABASE_URL). First entry wins per name.
    pub fn effective_users(&self) -> Vec<UserConfig> {
        if !self.users.is_empty() || self.auth.is_some() {
            return self.users.clone();
        }
        let mut out: Vec<UserConfig> = Vec::new();
        for db in &self.databases {
            if let Some(name) = &db.primary.user {
                if !out.iter().any(|u| &u.name == name) {
                    out.push(UserConfig::new(name.clone(), db.primary.password.clone()));
                }
            }
        }
        out
    }

    /// One user of `effective_users()` by name.
    pub fn user(&self, name: &str) -> Option<UserConfig> {
        self.effective_users().into_iter().find(|u| u.name == name)
    }

    /// Who may reach which database, one line per rule, for `pgtide check`.
    pub fn access_summary(&self) -> Vec<String> {
        if self.users.is_empty() && self.auth.is_none() {
            return self
                .databases
                .iter()
                .filter_map(|db| {
                    let user = db.primary.user.as_deref()?;
                    Some(format!(
                        "database {:?}: user {user:?} with its URL's password (sidecar)",
                        db.name
                    ))
                })
                .collect();
        }
        let mut lines: Vec<String> = self
            .users
            .iter()
            .map(|u| match &u.databases {
                Some(list) => format!("user {:?}: databases {list:?}", u.name),
                None => format!("user {:?}: every database (no databases list)", u.name),
            })
            .collect();
        if self.auth.is_some() {
            lines.push("users found by [auth] query: every database".into());
        }
        lines
    }

    /// The credentials a client logging in as `name` to `database` must prove. With
    /// `[[users]]` (or `[auth]`), that user's entry. In the sidecar case, the URL of the
    /// database the client asks for: its user must be `name`, and its password is the one
    /// checked, so one database's password never admits a client to another. A database not
    /// in the config falls back to the first URL with that user (the client then learns the
    /// database does not exist only after proving who it is).
    pub fn login(&self, name: &str, database: &str) -> Option<UserConfig> {
        if !self.users.is_empty() || self.auth.is_some() {
            return self.user(name);
        }
        match self.database(database) {
            Some(db) => (db.primary.user.as_deref() == Some(name))
                .then(|| UserConfig::new(name, db.primary.password.clone())),
            None => self.user(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_str, AuthMethod};

    const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5:c2VydmVya2V5";

    #[test]
    fn secret_kinds() {
        let u = |p: Option<&str>| UserConfig::new("u", p.map(str::to_string)).secret();
        assert_eq!(u(None), Secret::None);
        assert_eq!(u(Some("pw")), Secret::Plain("pw".into()));
        let md5 = "md5d41d8cd98f00b204e9800998ecf8427e";
        assert_eq!(u(Some(md5)), Secret::Md5Hash(md5.into()));
        assert_eq!(u(Some("md5notahash")), Secret::Plain("md5notahash".into()));
        assert_eq!(u(Some(VERIFIER)), Secret::ScramVerifier(VERIFIER.into()));
        assert!(!format!("{:?}", u(Some("hunter2"))).contains("hunter2"));
    }

    #[test]
    fn verifier_shape() {
        assert!(is_valid_scram_verifier(VERIFIER));
        assert!(!is_valid_scram_verifier("SCRAM-SHA-256$4096:..."));
        assert!(!is_valid_scram_verifier("SCRAM-SHA-256$x:YQ==$YQ==:YQ=="));
        assert!(!is_valid_scram_verifier("SCRAM-SHA-256$4096:YQ==$YQ=="));
    }

    #[test]
    fn user_debug_hides_password() {
        let u = UserConfig::new("app", Some("hunter2".into()));
        let s = format!("{u:?}");
        assert!(!s.contains("hunter2") && s.contains("***"), "{s}");
    }

    #[test]
    fn sidecar_users_come_from_primary_urls() {
        let c = parse_str(
            r#"
            [[databases]]
            name = "app"
            primary = "postgres://app:s3cret@127.0.0.1/app"
            [[databases]]
            name = "other"
            primary = "postgres://app:different@127.0.0.1/other"
            [[databases]]
            name = "reports"
            primary = "postgres://reporter@127.0.0.1/reports"
            "#,
            "t.toml",
        )
        .expect("parses");
        let users = c.effective_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, "app");
        assert_eq!(users[0].secret(), Secret::Plain("s3cret".into()));
        assert!(!users[0].admin);
        assert_eq!(users[1].name, "reporter");
        assert_eq!(users[1].secret(), Secret::None);
        assert_eq!(
            c.user("app").map(|u| u.password),
            Some(Some("s3cret".into()))
        );
        assert!(c.user("nobody").is_none());
    }

    #[test]
    fn listed_users_win_over_urls() {
        let c = parse_str(
            r#"
            [[databases]]
            name = "app"
            primary = "postgres://app:s3cret@127.0.0.1/app"
            [[users]]
            name = "alice"
            password = "pw"
            admin = true
            auth_method = "md5"
            "#,
            "t.toml",
        )
        .expect("parses");
        let users = c.effective_users();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].name, "alice");
        assert!(users[0].admin);
        assert_eq!(c.auth_method_for(&users[0]), AuthMethod::Md5);
        assert!(c.user("app").is_none());
    }

    #[test]
    fn auth_section_disables_url_users() {
        let c = parse_str(
            r#"
            [[databases]]
            name = "app"
            primary = "postgres://app:s3cret@127.0.0.1/app"
            [auth]
            user = "pgtide_auth"
            password = "x"
            "#,
            "t.toml",
        )
        .expect("parses");
        assert!(c.effective_users().is_empty());
        let auth = c.auth.as_ref().expect("auth");
        assert_eq!(auth.query, crate::DEFAULT_AUTH_QUERY);
        assert!(!format!("{auth:?}").contains("\"x\""));
    }

    #[test]
    fn a_sidecar_client_proves_the_url_credentials_of_the_database_it_asks_for() {
        let c = parse_str(
            r#"
            [[databases]]
            name = "app"
            primary = "postgres://app:s3cret@127.0.0.1/app"
            [[databases]]
            name = "other"
            primary = "postgres://app:different@127.0.0.1/other"
            [[databases]]
            name = "third"
            primary = "postgres://someone@127.0.0.1/third"
            "#,
            "t.toml",
        )
        .expect("parses");
        assert_eq!(
            c.access_summary()[1],
            "database \"other\": user \"app\" with its URL's password (sidecar)"
        );
        let password = |db: &str| c.login("app", db).map(|u| u.password);
        assert_eq!(password("app"), Some(Some("s3cret".into())));
        assert_eq!(password("other"), Some(Some("different".into())));
        assert_eq!(
            password("third"),
            None,
            "third's URL logs in as someone else"
        );
        assert_eq!(password("nowhere"), Some(Some("s3cret".into())));
    }

    #[test]
    fn a_databases_list_limits_where_a_user_goes() {
        let c = parse_str(
            r#"
            [[databases]]
            name = "app"
            primary = "postgres://app:s3cret@127.0.0.1/app"
            [[users]]
            name = "limited"
            password = "pw"
            databases = ["app"]
            [[users]]
            name = "everywhere"
            password = "pw"
            "#,
            "t.toml",
        )
        .expect("parses");
        assert_eq!(
            c.access_summary(),
            [
                "user \"limited\": databases [\"app\"]",
                "user \"everywhere\": every database (no databases list)"
            ]
        );
        let limited = c.login("limited", "other").expect("a [[users]] entry");
        assert!(limited.may_reach("app"));
        assert!(!limited.may_reach("other"));
        assert!(c.login("everywhere", "x").expect("entry").may_reach("x"));
    }
}
