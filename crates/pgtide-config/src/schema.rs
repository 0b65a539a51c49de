//! The typed config: one struct per TOML section, every field defaulted as config/pgtide.toml says,
//! unknown keys rejected everywhere.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::backend_url::{BackendUrl, ReplicaConfig};
use crate::units;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The whole config file. `Config::default()` is every default with no databases.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub pool: PoolConfig,
    pub databases: Vec<DatabaseConfig>,
    pub users: Vec<UserConfig>,
    /// `[auth]`: look clients up in PostgreSQL instead of listing them. Absent by default.
    pub auth: Option<AuthConfig>,
    pub routing: RoutingConfig,
    pub cache: CacheConfig,
    pub insights: InsightsConfig,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Client listener, "0.0.0.0:6432".
    pub listen: String,
    /// Metrics, health and dashboard listener, "127.0.0.1:9930".
    pub http_listen: String,
    /// Bearer token required for /metrics, /dashboard and /api (empty: none). `pgtide check`
    /// requires one when `http_listen` is not a loopback address.
    pub http_auth_token: String,
    /// Host header values ("host": any port, or "host:port") that /metrics, the dashboard and
    /// /api answer besides `localhost` and any IP address (which are always allowed, as is a
    /// request without Host); others get 403. Empty: only those. "*" allows any (DNS
    /// rebinding then rests on the token alone). /healthz and /readyz answer any Host.
    pub http_allowed_hosts: Vec<String>,
    pub max_client_connections: usize,
    /// A client that has not finished startup + auth by then is closed.
    #[serde(with = "units::duration")]
    pub startup_timeout: Duration,
    /// Largest message accepted from a client, in bytes.
    #[serde(with = "units::size")]
    pub max_message_size: u64,
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// How clients authenticate to pgtide unless a `[[users]]` entry says otherwise.
    pub auth_method: AuthMethod,
    /// Threads that run sessions; 0 picks one per two CPUs (at least one), since pgtide
    /// usually shares its machine with the application or the database. 1 runs everything on
    /// one thread, as PgBouncer does, which costs the least CPU per transaction.
    pub worker_threads: usize,
    pub tls: ClientTlsConfig,
}

impl ServerConfig {
    /// The number of session threads `worker_threads` asks for on a machine with `cpus` CPUs.
    pub fn session_threads(&self, cpus: usize) -> usize {
        match self.worker_threads {
            0 => (cpus / 2).max(1),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:6432".into(),
            http_listen: "127.0.0.1:9930".into(),
            http_auth_token: String::new(),
            http_allowed_hosts: Vec::new(),
            max_client_connections: 10_000,
            startup_timeout: secs(10),
            max_message_size: 64 << 20,
            shutdown_timeout: secs(30),
            auth_method: AuthMethod::ScramSha256,
            worker_threads: 0,
            tls: ClientTlsConfig::default(),
        }
    }
}

/// `[server.tls]`: TLS between clients and pgtide.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientTlsConfig {
    pub mode: ClientTlsMode,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA bundle that signs client certificates: clients may then present one (mTLS), and
    /// users with `auth_method = "cert"` must.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTlsMode {
    Disable,
    #[default]
    Allow,
    Require,
}

/// How a client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum AuthMethod {
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "trust")]
    Trust,
    /// A TLS client certificate signed by `server.tls.client_ca` whose common name is the
    /// user name (PostgreSQL's `cert` method); no password.
    #[serde(rename = "cert")]
    Cert,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
            AuthMethod::Cert => "cert",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[pool]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub mode: PoolMode,
    /// Backend connections per (database, user, backend).
    pub size: usize,
    pub min_idle: usize,
    /// A client waits this long for a backend, then gets SQLSTATE 53300.
    #[serde(with = "units::duration")]
    pub checkout_timeout: Duration,
    #[serde(with = "units::duration")]
    pub idle_timeout: Duration,
    #[serde(with = "units::duration")]
    pub max_lifetime: Duration,
    /// Per backend connection; least recently used ones are closed beyond that.
    pub max_prepared_statements: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            mode: PoolMode::Transaction,
            size: 20,
            min_idle: 2,
            checkout_timeout: secs(5),
            idle_timeout: secs(600),
            max_lifetime: secs(3600),
            max_prepared_statements: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Session,
    #[default]
    Transaction,
}

/// One `[[databases]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The name clients connect to.
    pub name: String,
    /// pgtide logs in to the backends with the URL's credentials.
    pub primary: BackendUrl,
    #[serde(default)]
    pub replicas: Vec<ReplicaConfig>,
    /// TLS between pgtide and this database's backends.
    #[serde(default)]
    pub tls: BackendTlsMode,
    /// CA bundle for `tls = "verify-ca"` / `"verify-full"` (the platform's roots when unset).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key pgtide presents to the backends (PEM), for servers that
    /// authenticate clients by certificate.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl DatabaseConfig {
    /// A database with only a primary and default settings.
    pub fn new(name: impl Into<String>, primary: BackendUrl) -> Self {
        DatabaseConfig {
            name: name.into(),
            primary,
            replicas: Vec::new(),
            tls: BackendTlsMode::default(),
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendTlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain TCP when it does not; the certificate is not
    /// checked (libpq's sslmode=prefer).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (libpq's sslmode=require).
    Require,
    /// TLS with a certificate signed by a trusted CA, for any host name.
    VerifyCa,
    /// TLS with a trusted certificate for the host name in the URL.
    VerifyFull,
}

impl BackendTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendTlsMode::Disable => "disable",
            BackendTlsMode::Prefer => "prefer",
            BackendTlsMode::Require => "require",
            BackendTlsMode::VerifyCa => "verify-ca",
            BackendTlsMode::VerifyFull => "verify-full",
        }
    }
}

/// One `[[users]]` entry: a client allowed to connect. `Debug` hides the password.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plain text, an md5 hash ("md5" + 32 hex) or a SCRAM verifier ("SCRAM-SHA-256$...").
    #[serde(default)]
    pub password: Option<String>,
    /// May use the admin console (database `pgtide`).
    #[serde(default)]
    pub admin: bool,
    /// Overrides `server.auth_method` for this user.
    #[serde(default)]
    pub auth_method: Option<AuthMethod>,
    /// The databases this user may connect to; every configured database when unset.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// Not from the file: a user found through `[auth] query`, logged in to PostgreSQL as
    /// itself with what its own login to pgtide proved.
    #[serde(skip)]
    pub pass_through: Option<crate::users::PassThrough>,
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("admin", &self.admin)
            .field("auth_method", &self.auth_method)
            .field("databases", &self.databases)
            .finish()
    }
}

/// An expired password (`VALID UNTIL` in the past) finds nothing, as PostgreSQL refuses it.
pub const DEFAULT_AUTH_QUERY: &str =
    "SELECT usename, passwd FROM pg_shadow WHERE usename = $1 AND (valuntil IS NULL OR valuntil > now())";

/// `[auth]`: look clients up in PostgreSQL. `Debug` hides the password.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub user: String,
    #[serde(default)]
    pub password: Option<String>,
    /// Takes the user name as $1, returns (name, password or verifier).
    #[serde(default = "default_auth_query")]
    pub query: String,
}

fn default_auth_query() -> String {
    DEFAULT_AUTH_QUERY.into()
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("query", &self.query)
            .finish()
    }
}

/// `[routing]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    pub read_write_split: bool,
    pub replica_reads: ReplicaReads,
    pub read_your_writes: ReadYourWrites,
    /// For `read_your_writes = "window"`: reads go to the primary this long after a write.
    #[serde(with = "units::duration")]
    pub read_your_writes_window: Duration,
    /// A replica further behind is not used for reads.
    #[serde(with = "units::duration")]
    pub max_replica_lag: Duration,
    #[serde(with = "units::duration")]
    pub health_check_interval: Duration,
    /// Failed checks before a backend is taken out.
    pub unhealthy_after: u32,
    pub primary_reads: PrimaryReads,
    /// Where an explicit read-write transaction runs: on the primary, or wherever its first
    /// statement would (a read-first transaction then runs on a replica, and a later write in
    /// it fails there with 25006).
    pub transactions: TransactionRouting,
    /// Extra functions (lower-case names, optionally schema-qualified) that make a statement a
    /// write, on top of the built-in list (nextval, pg_advisory_*, ...).
    pub write_functions: Vec<String>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            read_write_split: true,
            replica_reads: ReplicaReads::AllReads,
            read_your_writes: ReadYourWrites::Lsn,
            read_your_writes_window: secs(2),
            max_replica_lag: secs(5),
            health_check_interval: secs(1),
            unhealthy_after: 3,
            primary_reads: PrimaryReads::Fallback,
            transactions: TransactionRouting::Primary,
            write_functions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionRouting {
    #[default]
    Primary,
    FirstStatement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaReads {
    #[default]
    AllReads,
    ReadOnlyTransactions,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadYourWrites {
    #[default]
    Lsn,
    Window,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrimaryReads {
    /// Reads go to the primary only when no replica is healthy.
    #[default]
    Fallback,
    Always,
    Never,
}

/// `[cache]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    pub enabled: bool,
    #[serde(with = "units::size")]
    pub max_memory: u64,
    #[serde(with = "units::duration")]
    pub default_ttl: Duration,
    /// LISTEN/NOTIFY channel shared by all instances.
    pub invalidate_channel: String,
    pub rules: Vec<CacheRule>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_memory: 256 << 20,
            default_ttl: secs(30),
            invalidate_channel: "pgtide_invalidate".into(),
            rules: Vec::new(),
        }
    }
}

/// One `[[cache.rules]]` entry: exactly one of `query` or `tables`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// Matched by fingerprint: literals and spacing ignored.
    #[serde(default)]
    pub query: Option<String>,
    /// Any read that touches only these tables.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// `cache.default_ttl` when absent.
    #[serde(default, with = "units::option_duration")]
    pub ttl: Option<Duration>,
}

impl CacheRule {
    /// This rule's TTL, or the cache's default.
    pub fn ttl_or(&self, default_ttl: Duration) -> Duration {
        self.ttl.unwrap_or(default_ttl)
    }
}

/// `[insights]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsightsConfig {
    /// Record per-statement insights (on by default; off only to measure what they cost).
    pub enabled: bool,
    #[serde(with = "units::duration")]
    pub slow_query_threshold: Duration,
    /// Bounded memory: least recently seen fingerprints are evicted.
    pub max_fingerprints: usize,
    pub n_plus_one_min_repeats: u32,
    #[serde(with = "units::duration")]
    pub n_plus_one_window: Duration,
    /// Keep each fingerprint's first statement with its literals as the sample /api, the
    /// dashboard and SHOW QUERIES show. Off: the sample is the fingerprint (`$n` for literals),
    /// so a password in `ALTER ROLE .. PASSWORD '..'` is never kept. On, a slow query's
    /// statement is also logged at debug level. A reload that turns it off replaces the
    /// samples kept so far with their fingerprints.
    pub sample_literals: bool,
}

impl Default for InsightsConfig {
    fn default() -> Self {
        InsightsConfig {
            enabled: true,
            slow_query_threshold: Duration::from_millis(200),
            max_fingerprints: 5000,
            n_plus_one_min_repeats: 10,
            n_plus_one_window: secs(1),
            sample_literals: false,
        }
    }
}

impl Config {
    /// The `[[databases]]` entry clients reach under `name`.
    pub fn database(&self, name: &str) -> Option<&DatabaseConfig> {
        self.databases.iter().find(|d| d.name == name)
    }

    /// The auth method that applies to `user`: its own, else `server.auth_method`.
    pub fn auth_method_for(&self, user: &UserConfig) -> AuthMethod {
        user.auth_method.unwrap_or(self.server.auth_method)
    }
}
