//! The state every session shares, handed around as one `Arc<Shared>`: the live config (swapped
//! on reload), the pools, the cancel registry and the shutdown phase. No globals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use pgtide_config::{BackendUrl, Config, DatabaseConfig, Secret, UserConfig};
use tokio::sync::watch;

use crate::frontend::auth::ScramSecret;
use crate::frontend::cancel::CancelRegistry;
use crate::upstream::conn::BackendTarget;
use crate::upstream::pool::{lock, Pool, PoolSettings, Pools};
use crate::upstream::topology::Topology;

/// Where the server is in its life: SIGTERM moves it to Draining, SIGINT or the drain deadline
/// to Stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Running = 0,
    Draining = 1,
    Stopping = 2,
}

pub struct Shared {
    pub config: ArcSwap<Config>,
    pub pools: Pools,
    pub cancels: Arc<CancelRegistry>,
    /// The backends of each database and their health, by database name.
    topologies: Mutex<HashMap<String, Arc<Topology>>>,
    /// The phase for those that wait on it off the hot path (listener, admin, HTTP); sessions
    /// read `phase_now` and are woken by their own signal (see phase_signal.rs).
    pub phase: watch::Sender<Phase>,
    phase_now: std::sync::atomic::AtomicU8,
    pub clients: AtomicUsize,
    /// Per-query latency, slow queries, N+1 patterns.
    pub insights: crate::insights::Insights,
    /// The result cache (issue 6).
    pub cache: Arc<crate::cache::ResultCache>,
    /// Connected clients, for the admin console.
    pub client_registry: Arc<crate::frontend::clients::ClientRegistry>,
    /// PAUSE / RESUME (admin console).
    pub pause: crate::server::pause::PauseGate,
    /// RELOAD / SHUTDOWN from the admin console, for whoever runs the process (the binary).
    pub control: crate::admin::ControlChannel,
    pub started: std::time::Instant,
    /// Statement classification for routing (cached), with the configured write functions.
    pub classifier: ArcSwap<pgtide_sql::Classifier>,
    /// When prepared statements may have changed shape (DDL, stale plans).
    pub epochs: Arc<crate::session::prepared::SchemaEpochs>,
    /// Numbers sessions, for names that must never repeat within the process.
    sessions_started: AtomicU64,
    /// Plain-text passwords turned into SCRAM secrets once (PBKDF2 is deliberately slow).
    scram_secrets: Mutex<HashMap<(String, String), ScramSecret>>,
    /// `[auth] query` answers of the last few seconds (frontend/auth_query.rs).
    pub(crate) auth_lookups: crate::frontend::auth_query::AuthLookups,
    /// TLS for clients, made again from the files at every reload (frontend/tls.rs).
    pub(crate) client_tls: arc_swap::ArcSwapOption<crate::frontend::tls::ServerTls>,
}

impl Shared {
    /// Fails when `[server.tls]` names files that cannot be used.
    pub fn new(config: Config) -> std::io::Result<Arc<Shared>> {
        let client_tls = crate::frontend::tls::ServerTls::load(&config.server.tls)
            .map_err(|e| std::io::Error::other(format!("server.tls: {e}")))?;
        let classifier = pgtide_sql::Classifier::new(&config.routing.write_functions);
        let cache_config = config.cache.clone();
        let insights_config = config.insights.clone();
        let (phase, _) = watch::channel(Phase::Running);
        Ok(Arc::new(Shared {
            config: ArcSwap::from_pointee(config),
            pools: Pools::default(),
            cancels: Arc::new(CancelRegistry::default()),
            topologies: Mutex::new(HashMap::new()),
            phase,
            phase_now: std::sync::atomic::AtomicU8::new(Phase::Running as u8),
            clients: AtomicUsize::new(0),
            insights: crate::insights::Insights::new(&insights_config),
            cache: Arc::new(crate::cache::ResultCache::new(&cache_config)),
            client_registry: Arc::default(),
            pause: Default::default(),
            control: Default::default(),
            started: std::time::Instant::now(),
            classifier: ArcSwap::from_pointee(classifier),
            epochs: Arc::default(),
            sessions_started: AtomicU64::new(0),
            scram_secrets: Mutex::new(HashMap::new()),
            client_tls: arc_swap::ArcSwapOption::new(client_tls),
            auth_lookups: Default::default(),
        }))
    }

    /// A number no other session of this process gets.
    pub fn next_session_number(&self) -> u64 {
        self.sessions_started.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn phase(&self) -> Phase {
        match self.phase_now.load(Ordering::Acquire) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Stopping,
        }
    }

    /// Moves the server to `phase` and tells every session and waiter.
    pub fn set_phase(&self, phase: Phase) {
        self.phase_now.store(phase as u8, Ordering::Release);
        self.phase.send_replace(phase);
        self.client_registry.phase_changed();
    }

    /// The SCRAM secret for a user: a stored verifier as is, a plain password derived once.
    pub fn scram_secret(&self, user: &UserConfig) -> Option<ScramSecret> {
        match user.secret() {
            Secret::ScramVerifier(v) => ScramSecret::parse(&v),
            Secret::Plain(p) => {
                // Keyed by password too: sidecar URLs may give one user name two passwords.
                let mut cache = lock(&self.scram_secrets);
                let key = (user.name.clone(), p);
                if let Some(secret) = cache.get(&key) {
                    return Some(secret.clone());
                }
                let secret = ScramSecret::from_password(&key.1);
                cache.insert(key, secret.clone());
                Some(secret)
            }
            Secret::Md5Hash(_) | Secret::None => None,
        }
    }

    /// The pool serving `user` on `db`'s configured primary, created on first use.
    pub fn primary_pool(
        &self,
        config: &Config,
        db: &DatabaseConfig,
        user: &UserConfig,
    ) -> Arc<Pool> {
        self.backend_pool(config, db, user, &db.primary)
    }

    /// The pool serving `user` on one backend (primary or replica) of `db`.
    pub fn backend_pool(
        &self,
        config: &Config,
        db: &DatabaseConfig,
        user: &UserConfig,
        url: &BackendUrl,
    ) -> Arc<Pool> {
        let target = backend_target(db, url, user);
        let label = target.label();
        let pool = self.pools.get_or_create(&db.name, &user.name, &label, || {
            Pool::new(
                db.name.clone(),
                user.name.clone(),
                target.clone(),
                pool_settings(config),
            )
        });
        if *pool.target == target {
            pool
        } else {
            // The backend changed under a reload that raced this lookup: build a fresh pool.
            self.pools.retain(|p| {
                !(p.database == db.name && p.user == user.name && p.target.label() == label)
            });
            self.backend_pool(config, db, user, url)
        }
    }

    /// The backends of `db` with their health, created (and checked in the background) on
    /// first use, rebuilt when a reload changed them.
    pub fn topology(self: &Arc<Self>, db: &DatabaseConfig) -> Arc<Topology> {
        let mut map = lock(&self.topologies);
        if let Some(t) = map.get(&db.name).filter(|t| t.matches(db)) {
            return t.clone();
        }
        let topology = Topology::new(db);
        if topology.has_replicas() {
            let weak = Arc::downgrade(self);
            crate::upstream::health::spawn(&topology, move || match weak.upgrade() {
                Some(shared) => shared.config.load_full(),
                None => Arc::new(Config::default()),
            });
        }
        map.insert(db.name.clone(), topology.clone());
        topology
    }

    /// Starts the health checks of every configured database with replicas, so replicas are
    /// known before the first client reads (otherwise the first read waits for them).
    pub fn start_health_checks(self: &Arc<Self>) {
        let config = self.config.load_full();
        for db in config.databases.iter().filter(|db| !db.replicas.is_empty()) {
            self.topology(db);
        }
    }

    /// Applies a new config: pools take new settings, pools whose backend or user vanished are
    /// dropped (their clients keep their connections until they leave).
    pub fn apply_config(&self, new: Config) {
        let settings = pool_settings(&new);
        self.pools.retain(|p| {
            let db = new.database(&p.database);
            let user = new.user(&p.user);
            match (db, user) {
                (Some(db), Some(user)) => std::iter::once(&db.primary)
                    .chain(db.replicas.iter().map(|r| &r.url))
                    .any(|url| backend_target(db, url, &user) == *p.target),
                _ => false,
            }
        });
        lock(&self.topologies).retain(|name, t| new.database(name).is_some_and(|db| t.matches(db)));
        for pool in self.pools.all() {
            pool.reconfigure(settings.clone());
        }
        lock(&self.scram_secrets).clear();
        self.auth_lookups.clear();
        if new.routing.write_functions != self.config.load().routing.write_functions {
            self.classifier.store(Arc::new(pgtide_sql::Classifier::new(
                &new.routing.write_functions,
            )));
        }
        self.cache.reconfigure(&new.cache);
        self.insights.reconfigure(&new.insights);
        // Re-read even when the paths did not change: that is how certificates rotate.
        match crate::frontend::tls::ServerTls::load(&new.server.tls) {
            Ok(tls) => self.client_tls.store(tls),
            Err(e) => tracing::error!(error = %e, "server.tls: kept the TLS settings in use"),
        }
        self.config.store(Arc::new(new));
    }
}

/// pgtide logs in to the backend with the URL's credentials when it has them (the usual
/// DATABASE_URL case), else as the client's user with its plain-text password.
pub fn primary_target(db: &DatabaseConfig, user: &UserConfig) -> BackendTarget {
    backend_target(db, &db.primary, user)
}

/// The login for one backend URL of `db` (see [`primary_target`]).
pub(crate) fn backend_target(
    db: &DatabaseConfig,
    url: &BackendUrl,
    user: &UserConfig,
) -> BackendTarget {
    if let Some(keys) = &user.pass_through {
        // Found through [auth] query: PostgreSQL sees the client's own role.
        return BackendTarget {
            host: url.host.clone(),
            port: url.port,
            user: user.name.clone(),
            password: None,
            database: url.dbname.clone().unwrap_or_else(|| db.name.clone()),
            tls: crate::upstream::tls::BackendTls::of(db),
            pass_through: Some(keys.clone()),
        };
    }
    let (backend_user, password) = match &url.user {
        Some(u) => (u.clone(), url.password.clone()),
        None => (
            user.name.clone(),
            match user.secret() {
                Secret::Plain(p) => Some(p),
                _ => None,
            },
        ),
    };
    BackendTarget {
        host: url.host.clone(),
        port: url.port,
        user: backend_user,
        password,
        database: url.dbname.clone().unwrap_or_else(|| db.name.clone()),
        tls: crate::upstream::tls::BackendTls::of(db),
        pass_through: None,
    }
}

pub(crate) fn pool_settings(config: &Config) -> PoolSettings {
    let p = &config.pool;
    PoolSettings {
        size: p.size,
        min_idle: p.min_idle,
        checkout_timeout: p.checkout_timeout,
        idle_timeout: p.idle_timeout,
        max_lifetime: p.max_lifetime,
        max_prepared_statements: p.max_prepared_statements,
        connect_timeout: p
            .checkout_timeout
            .clamp(Duration::from_secs(1), Duration::from_secs(10)),
    }
}
