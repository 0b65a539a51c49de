//! Backend connection URLs: `postgres://USER:PASS@HOST:PORT/DB?param=value`, and the replica
//! form `URL#weight=N` used on the command line and in `PGTIDE_REPLICA_URLS`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Why a backend URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL: {0}")]
    Syntax(String),
    #[error("scheme must be postgres:// or postgresql://, not {0}://")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("multiple hosts in one URL are not supported; list replicas separately")]
    MultiHost,
    #[error("port 0 is not a valid port")]
    PortZero,
    #[error("the path must be a single database name, not {0:?}")]
    Path(String),
    #[error("invalid percent-encoding or UTF-8 in the {0}")]
    Encoding(&'static str),
    #[error("unexpected fragment #{0}: only a replica URL may end in #weight=N")]
    Fragment(String),
    #[error("invalid replica weight {0:?}: expected #weight=N with N a positive integer")]
    Weight(String),
}

/// A parsed backend URL. `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendUrl {
    /// Host name or IP address; an IPv6 literal is stored without its brackets.
    pub host: String,
    /// Port, 5432 when the URL has none.
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: Option<String>,
    /// Query parameters (e.g. `application_name`), percent-decoded, in URL order.
    pub params: Vec<(String, String)>,
    /// The URL exactly as written (it may contain the password: never log it).
    pub raw: String,
}

impl BackendUrl {
    /// Parses a `postgres://` or `postgresql://` URL. A fragment is an error.
    pub fn parse(s: &str) -> Result<BackendUrl, UrlError> {
        let raw = s.trim();
        let u = ::url::Url::parse(raw).map_err(|e| UrlError::Syntax(e.to_string()))?;
        if u.scheme() != "postgres" && u.scheme() != "postgresql" {
            return Err(UrlError::Scheme(u.scheme().to_string()));
        }
        if let Some(f) = u.fragment() {
            return Err(UrlError::Fragment(f.to_string()));
        }
        let host = match u.host() {
            None => return Err(UrlError::NoHost),
            Some(::url::Host::Ipv6(a)) => a.to_string(),
            Some(::url::Host::Ipv4(a)) => a.to_string(),
            Some(::url::Host::Domain(d)) => percent_decode(d, "host")?,
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        if host.contains(',') {
            return Err(UrlError::MultiHost);
        }
        let port = u.port().unwrap_or(5432);
        if port == 0 {
            return Err(UrlError::PortZero);
        }
        let user = Some(percent_decode(u.username(), "user name")?).filter(|s| !s.is_empty());
        let password = u
            .password()
            .map(|p| percent_decode(p, "password"))
            .transpose()?;
        let path = u.path().strip_prefix('/').unwrap_or(u.path());
        if path.contains('/') {
            return Err(UrlError::Path(path.to_string()));
        }
        let dbname = Some(percent_decode(path, "database name")?).filter(|s| !s.is_empty());
        let params = u
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(BackendUrl {
            host,
            port,
            user,
            password,
            dbname,
            params,
            raw: raw.to_string(),
        })
    }

    /// `host:port`, with brackets around an IPv6 literal: safe for logs and metric labels.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = &self.user {
            f.write_str(&percent_encode(user))?;
        }
        if self.password.is_some() {
            f.write_str(":***")?;
        }
        if self.user.is_some() || self.password.is_some() {
            f.write_str("@")?;
        }
        f.write_str(&self.addr())?;
        if let Some(db) = &self.dbname {
            write!(f, "/{}", percent_encode(db))?;
        }
        for (i, (k, v)) in self.params.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{}={}", percent_encode(k), percent_encode(v))?;
        }
        Ok(())
    }
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendUrl({self})")
    }
}

impl std::str::FromStr for BackendUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        BackendUrl::parse(s)
    }
}

impl<'de> Deserialize<'de> for BackendUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BackendUrl::parse(&s).map_err(|e| de::Error::custom(format!("invalid URL: {e}")))
    }
}

/// One replica of a database: where it is and its share of reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    pub url: BackendUrl,
    /// Relative share of reads (smooth weighted round-robin). Default 1; 0 is invalid.
    pub weight: u32,
}

impl ReplicaConfig {
    /// Parses the command-line/env form `URL[#weight=N]`.
    pub fn parse_spec(s: &str) -> Result<ReplicaConfig, UrlError> {
        let s = s.trim();
        let (url, weight) = match s.rsplit_once('#') {
            None => (s, 1),
            Some((url, frag)) => {
                let n = frag
                    .strip_prefix("weight=")
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .ok_or_else(|| UrlError::Weight(frag.to_string()))?;
                (url, n)
            }
        };
        Ok(ReplicaConfig {
            url: BackendUrl::parse(url)?,
            weight,
        })
    }
}

fn default_weight() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaTable {
    url: BackendUrl,
    #[serde(default = "default_weight")]
    weight: u32,
}

/// A replica is either `{ url = "...", weight = N }` or a plain string `"URL[#weight=N]"`.
impl<'de> Deserialize<'de> for ReplicaConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReplicaConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a replica URL string or a table { url = \"...\", weight = N }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReplicaConfig, E> {
                ReplicaConfig::parse_spec(v).map_err(|e| E::custom(format!("invalid URL: {e}")))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ReplicaConfig, A::Error> {
                let t = ReplicaTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ReplicaConfig {
                    url: t.url,
                    weight: t.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Splits the `PGTIDE_REPLICA_URLS` form: comma-separated, blanks ignored.
pub fn split_replica_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn percent_decode(s: &str, what: &'static str) -> Result<String, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(UrlError::Encoding(what))?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::Encoding(what))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::Encoding(what))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Encoding(what))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> BackendUrl {
        BackendUrl::parse(s).expect(s)
    }

    #[test]
    fn full_url() {
        let u = p("postgres://app:secret@127.0.0.1:5433/app");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 5433);
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.dbname.as_deref(), Some("app"));
        assert_eq!(u.raw, "postgres://app:secret@127.0.0.1:5433/app");
        assert_eq!(u.addr(), "127.0.0.1:5433");
    }

    #[test]
    fn defaults_and_postgresql_scheme() {
        let u = p("postgresql://db.internal");
        assert_eq!(u.host, "db.internal");
        assert_eq!(u.port, 5432);
        assert_eq!(u.user, None);
        assert_eq!(u.password, None);
        assert_eq!(u.dbname, None);
        assert_eq!(p("postgres://h/").dbname, None);
    }

    #[test]
    fn no_password() {
        let u = p("postgres://app@localhost/app");
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password, None);
        assert_eq!(u.to_string(), "postgres://app@localhost:5432/app");
    }

    #[test]
    fn percent_encoding() {
        let u = p("postgres://us%40er:p%40ss%3Aw%2Fd%25@localhost/my%20db");
        assert_eq!(u.user.as_deref(), Some("us@er"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w/d%"));
        assert_eq!(u.dbname.as_deref(), Some("my db"));
        assert!(!u.to_string().contains("p%40ss"));
        assert_eq!(
            u.to_string(),
            "postgres://us%40er:***@localhost:5432/my%20db"
        );
    }

    #[test]
    fn ipv6() {
        let u = p("postgres://app:pw@[::1]:6543/app");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 6543);
        assert_eq!(u.addr(), "[::1]:6543");
        assert_eq!(u.to_string(), "postgres://app:***@[::1]:6543/app");
        assert_eq!(p("postgres://[2001:db8::7]/x").host, "2001:db8::7");
    }

    #[test]
    fn params() {
        let u = p("postgres://a@h/d?application_name=my%20app&sslmode=disable");
        assert_eq!(
            u.params,
            vec![
                ("application_name".to_string(), "my app".to_string()),
                ("sslmode".to_string(), "disable".to_string())
            ]
        );
        assert_eq!(
            u.to_string(),
            "postgres://a@h:5432/d?application_name=my%20app&sslmode=disable"
        );
    }

    #[test]
    fn password_never_displayed() {
        let u = p("postgres://app:hunter2@h/app");
        assert!(!u.to_string().contains("hunter2"));
        assert!(!format!("{u:?}").contains("hunter2"));
        assert!(format!("{u:?}").contains("***"));
    }

    #[test]
    fn bad_urls() {
        type Check = fn(&UrlError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("not a url", |e| matches!(e, UrlError::Syntax(_))),
            ("mysql://h/db", |e| matches!(e, UrlError::Scheme(_))),
            ("postgres:///db", |e| matches!(e, UrlError::NoHost)),
            ("postgres://h1,h2/db", |e| matches!(e, UrlError::MultiHost)),
            ("postgres://h:0/db", |e| matches!(e, UrlError::PortZero)),
            ("postgres://h:99999/db", |e| {
                matches!(e, UrlError::Syntax(_))
            }),
            ("postgres://h/a/b", |e| matches!(e, UrlError::Path(_))),
            ("postgres://u:%ZZ@h/db", |e| {
                matches!(e, UrlError::Encoding(_))
            }),
            ("postgres://h/db#weight=2", |e| {
                matches!(e, UrlError::Fragment(_))
            }),
        ];
        for (s, ok) in cases {
            let e = BackendUrl::parse(s).expect_err(s);
            assert!(ok(&e), "{s}: {e:?}");
        }
    }

    #[test]
    fn replica_spec() {
        let r = ReplicaConfig::parse_spec("postgres://a:b@h:5/db#weight=3").expect("spec");
        assert_eq!(r.weight, 3);
        assert_eq!(r.url.port, 5);
        assert_eq!(r.url.raw, "postgres://a:b@h:5/db");
        assert_eq!(
            ReplicaConfig::parse_spec("postgres://h/db")
                .expect("spec")
                .weight,
            1
        );
        assert_eq!(
            ReplicaConfig::parse_spec("postgres://h/db#weight=0")
                .expect("spec")
                .weight,
            0
        );
        for bad in [
            "postgres://h/db#weight=",
            "postgres://h/db#w=2",
            "postgres://h/db#weight=-1",
        ] {
            assert!(
                matches!(ReplicaConfig::parse_spec(bad), Err(UrlError::Weight(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn replica_list() {
        assert_eq!(
            split_replica_list(" postgres://a/x#weight=2, ,postgres://b/x ,"),
            vec!["postgres://a/x#weight=2", "postgres://b/x"]
        );
        assert!(split_replica_list("").is_empty());
    }
}
