//! Backend connection pools, one per (database, user). A semaphore bounds the connections in use
//! (pool.size); idle connections wait in a queue; a background task closes stale ones and keeps
//! min_idle warm. Resizing on reload adds or retires permits without touching connections in use.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ProxyError, Result};
use crate::upstream::conn::{BackendConn, BackendTarget};

#[derive(Clone, Debug, PartialEq)]
pub struct PoolSettings {
    pub size: usize,
    pub min_idle: usize,
    pub checkout_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub max_prepared_statements: usize,
    pub connect_timeout: Duration,
}

/// A backend connection lent to one client, with the permit that counts it against pool.size.
pub struct Lease {
    /// Boxed: a lease moves (checkout, session, release) and a connection is large.
    pub conn: Box<BackendConn>,
    permit: OwnedSemaphorePermit,
    pub pool: Arc<Pool>,
}

pub struct Pool {
    pub database: String,
    pub user: String,
    pub target: Arc<BackendTarget>,
    /// `target.label()`, made once (logs, insights and the admin console use it per query).
    pub label: Arc<str>,
    /// pgtide_pool_wait_seconds, looked up once (recorded at every checkout).
    wait_histogram: metrics::Histogram,
    /// Read on every checkout and release: lock-free. Reloads swap it under `resize`.
    settings: ArcSwap<PoolSettings>,
    /// Serialises reloads' resizing of `permits` (rare; never taken on the query path).
    resize: Mutex<()>,
    permits: Arc<Semaphore>,
    /// Permits still to retire after a shrink: taken from releases until paid.
    shrink_debt: AtomicUsize,
    idle: Mutex<VecDeque<Box<BackendConn>>>,
    open: AtomicUsize,
    in_use: AtomicUsize,
    waiting: AtomicUsize,
    server_params: Mutex<Option<Vec<(String, String)>>>,
    /// pgtide statement names some backend of this pool has parsed successfully. A client that
    /// prepares one of these outside a transaction is answered without a backend (the Parse
    /// follows it to the backend of its next Bind): a client blocked in a synchronous prepare
    /// must not wait for a backend another client of its own thread holds (pgbench -M prepared).
    known_statements: Mutex<HashSet<String>>,
    /// Startup settings ("name=value" as SET text) a backend of this pool has accepted.
    checked_settings: Mutex<HashSet<String>>,
    /// How the server reports the checked startup settings (ParameterStatus spelling).
    pub startup_reports: crate::frontend::startup_settings::Reports,
    /// RECONNECT: connections opened before this are closed when they come back.
    reconnect_before: Mutex<Option<Instant>>,
}

/// Bound on `known_statements`; when full it starts over (a forgotten name costs one backend
/// round trip the next time it is prepared outside a transaction).
const MAX_KNOWN_STATEMENTS: usize = 20_000;

impl Pool {
    pub fn new(
        database: String,
        user: String,
        target: BackendTarget,
        settings: PoolSettings,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            database,
            user,
            label: Arc::from(target.label()),
            wait_histogram: metrics::histogram!(crate::metrics_names::POOL_WAIT_SECONDS),
            target: Arc::new(target),
            permits: Arc::new(Semaphore::new(settings.size)),
            settings: ArcSwap::from_pointee(settings),
            resize: Mutex::new(()),
            shrink_debt: AtomicUsize::new(0),
            idle: Mutex::new(VecDeque::new()),
            open: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            server_params: Mutex::new(None),
            known_statements: Mutex::new(HashSet::new()),
            checked_settings: Mutex::new(HashSet::new()),
            startup_reports: Default::default(),
            reconnect_before: Mutex::new(None),
        })
    }

    /// Whether a backend of this pool has accepted a Parse of this pgtide statement.
    pub fn statement_known(&self, global_name: &str) -> bool {
        lock(&self.known_statements).contains(global_name)
    }

    pub fn note_statement(&self, global_name: &str) {
        let mut known = lock(&self.known_statements);
        if known.len() >= MAX_KNOWN_STATEMENTS {
            known.clear();
        }
        if !known.contains(global_name) {
            known.insert(global_name.to_string());
        }
    }

    /// Whether a backend accepted `SET name TO value` for a client's startup setting.
    pub fn setting_checked(&self, name: &str, value: &str) -> bool {
        lock(&self.checked_settings).contains(&format!("{name}={value}"))
    }

    pub fn note_setting_checked(&self, name: &str, value: &str) {
        let mut checked = lock(&self.checked_settings);
        if checked.len() >= MAX_KNOWN_STATEMENTS {
            checked.clear();
        }
        checked.insert(format!("{name}={value}"));
    }

    /// A statement turned out not to parse any more (DDL): clients must hear it from a backend.
    pub fn forget_statement(&self, global_name: &str) {
        lock(&self.known_statements).remove(global_name);
    }

    pub fn settings(&self) -> Arc<PoolSettings> {
        self.settings.load_full()
    }

    /// Waits up to checkout_timeout for a permit, then hands out an idle connection or opens one.
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease> {
        let settings = self.settings();
        // A free permit is taken at once (no timer, no clock read); waiting for one is boxed, so
        // the common case's future carries no room for the wait.
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.wait_histogram.record(0.0);
                permit
            }
            Err(_) => Box::pin(self.wait_for_permit(&settings)).await?,
        };
        let conn = match self.take_idle(&settings) {
            Some(conn) => conn,
            // Boxed: a connect's future is large and rarely needed; every checkout's would
            // carry room for it.
            None => Box::pin(self.open_conn(&settings)).await?,
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(Lease {
            conn,
            permit,
            pool: self.clone(),
        })
    }

    /// Waits up to `checkout_timeout` for a connection to come back; SQLSTATE 53300 after.
    async fn wait_for_permit(&self, settings: &PoolSettings) -> Result<OwnedSemaphorePermit> {
        let started = Instant::now();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = tokio::time::timeout(
            settings.checkout_timeout,
            self.permits.clone().acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match permit {
            Ok(Ok(p)) => {
                self.wait_histogram.record(started.elapsed().as_secs_f64());
                Ok(p)
            }
            _ => Err(ProxyError::CheckoutTimeout {
                database: self.database.clone(),
                waited_ms: started.elapsed().as_millis(),
                size: settings.size,
            }),
        }
    }

    fn take_idle(&self, settings: &PoolSettings) -> Option<Box<BackendConn>> {
        loop {
            let mut conn = lock(&self.idle).pop_back()?;
            if conn.created.elapsed() < settings.max_lifetime && conn.is_quiet() {
                return Some(conn);
            }
            self.retire(conn);
        }
    }

    async fn open_conn(&self, settings: &PoolSettings) -> Result<Box<BackendConn>> {
        self.open.fetch_add(1, Ordering::Relaxed);
        let conn = BackendConn::connect(
            self.target.clone(),
            &[("client_encoding", "UTF8")],
            settings.connect_timeout,
            settings.max_prepared_statements,
        )
        .await;
        match conn {
            Ok(conn) => {
                let mut params = lock(&self.server_params);
                if params.is_none() {
                    let mut p: Vec<_> = conn
                        .params
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    p.sort();
                    *params = Some(p);
                }
                Ok(Box::new(conn))
            }
            Err(e) => {
                self.open.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Returns a clean (ReadyForQuery 'I', nothing pending) connection to the pool.
    pub fn release(&self, lease: Lease) {
        let Lease {
            mut conn, permit, ..
        } = lease;
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        conn.last_used = Instant::now();
        let settings = self.settings();
        let over_size = self.open.load(Ordering::Relaxed) > settings.size;
        let reconnect = lock(&self.reconnect_before).is_some_and(|t| conn.created < t);
        if conn.created.elapsed() >= settings.max_lifetime
            || over_size
            || reconnect
            || !conn.rbuf.is_empty()
        {
            self.retire(conn);
        } else {
            lock(&self.idle).push_back(conn);
        }
        self.return_permit(permit);
    }

    /// Gives up a lease whose connection is in an unknown state: it is closed, never reused.
    pub fn discard(&self, lease: Lease) {
        let Lease { conn, permit, .. } = lease;
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        self.retire(conn);
        self.return_permit(permit);
    }

    fn return_permit(&self, permit: OwnedSemaphorePermit) {
        let paid = self
            .shrink_debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if paid {
            permit.forget();
        } else {
            drop(permit);
        }
    }

    fn retire(&self, conn: Box<BackendConn>) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        tokio::spawn((*conn).terminate());
    }

    /// Applies new settings (on reload). Growing adds permits at once; shrinking retires free
    /// permits now and the rest as connections come back.
    pub fn reconfigure(&self, new: PoolSettings) {
        let _resizing = lock(&self.resize);
        let old = self.settings.load();
        if new.size > old.size {
            let grow = new.size - old.size;
            // Cancel outstanding debt first; only the rest becomes new permits.
            let debt = self
                .shrink_debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    Some(d - d.min(grow))
                })
                .unwrap_or(0);
            self.permits.add_permits(grow - debt.min(grow));
        } else if new.size < old.size {
            let shrink = old.size - new.size;
            let forgotten = self.permits.forget_permits(shrink);
            self.shrink_debt
                .fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        self.settings.store(Arc::new(new));
    }

    /// The ParameterStatus set a new client is shown, from the first backend this pool opened.
    pub async fn server_params(self: &Arc<Self>) -> Result<Vec<(String, String)>> {
        if let Some(p) = lock(&self.server_params).clone() {
            return Ok(p);
        }
        let lease = self.checkout().await?;
        self.release(lease);
        Ok(lock(&self.server_params).clone().unwrap_or_default())
    }

    /// Periodic upkeep: close idle connections past idle_timeout (above min_idle) or max_lifetime,
    /// and open connections up to min_idle.
    pub async fn maintain(self: &Arc<Self>) {
        let settings = self.settings();
        let mut stale = Vec::new();
        {
            let mut idle = lock(&self.idle);
            let mut keep = VecDeque::with_capacity(idle.len());
            // Newest at the back: walk from the back so the freshest min_idle survive.
            while let Some(conn) = idle.pop_back() {
                let too_old = conn.created.elapsed() >= settings.max_lifetime;
                let too_idle = conn.last_used.elapsed() >= settings.idle_timeout
                    && keep.len() >= settings.min_idle;
                let too_many = keep.len() >= settings.size;
                if too_old || too_idle || too_many {
                    stale.push(conn);
                } else {
                    keep.push_front(conn);
                }
            }
            *idle = keep;
        }
        for conn in stale {
            self.retire(conn);
        }
        let idle_now = lock(&self.idle).len();
        if idle_now < settings.min_idle && self.open.load(Ordering::Relaxed) < settings.size {
            if let Ok(conn) = self.open_conn(&settings).await {
                lock(&self.idle).push_back(conn);
            }
        }
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            open: self.open.load(Ordering::Relaxed),
            in_use: self.in_use.load(Ordering::Relaxed),
            idle: lock(&self.idle).len(),
            waiting: self.waiting.load(Ordering::Relaxed),
            size: self.settings().size,
        }
    }

    /// RECONNECT: idle connections close now, those in use when their client gives them back.
    pub fn reconnect(&self) {
        *lock(&self.reconnect_before) = Some(Instant::now());
        self.close_idle();
    }

    /// Idle connections: id, age, time idle (SHOW SERVERS).
    pub fn idle_connections(&self) -> Vec<(u64, Duration, Duration)> {
        lock(&self.idle)
            .iter()
            .map(|c| (c.id, c.created.elapsed(), c.last_used.elapsed()))
            .collect()
    }

    /// Closes every idle connection (shutdown, RECONNECT).
    pub fn close_idle(&self) {
        let drained: Vec<_> = lock(&self.idle).drain(..).collect();
        for conn in drained {
            self.retire(conn);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub open: usize,
    pub in_use: usize,
    pub idle: usize,
    pub waiting: usize,
    pub size: usize,
}

/// All pools, created on first use of a (database, user).
/// Returns a backend its client left behind: rolled back (and reset in session mode) when it
/// was between statements, cancelled and closed when a statement was still running.
pub(crate) async fn reset_and_return(
    pool: Arc<Pool>,
    mut lease: Lease,
    clean: bool,
    status: u8,
    session_mode: bool,
) {
    if !clean {
        let _ = lease.conn.cancel_target().send().await;
        pool.discard(lease);
        return;
    }
    let mut statements: Vec<&str> = Vec::new();
    if status != pgtide_wire::status::IDLE {
        statements.push("ROLLBACK");
    }
    if session_mode {
        statements.push("DISCARD ALL");
    }
    if statements.is_empty() {
        pool.release(lease);
        return;
    }
    let reset = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        lease.conn.run_simple(&statements),
    )
    .await;
    match reset {
        Ok(Ok((pgtide_wire::status::IDLE, None))) => {
            if session_mode {
                lease.conn.prepared.clear();
                lease.conn.settings.clear();
            }
            pool.release(lease)
        }
        _ => pool.discard(lease),
    }
}

/// Pools by (database, user, backend host:port).
#[derive(Default)]
pub struct Pools {
    map: Mutex<HashMap<(String, String, String), Arc<Pool>>>,
}

impl Pools {
    pub fn get_or_create(
        &self,
        database: &str,
        user: &str,
        backend: &str,
        make: impl FnOnce() -> Arc<Pool>,
    ) -> Arc<Pool> {
        let mut map = lock(&self.map);
        let key = (database.to_string(), user.to_string(), backend.to_string());
        map.entry(key).or_insert_with(make).clone()
    }

    pub fn all(&self) -> Vec<Arc<Pool>> {
        lock(&self.map).values().cloned().collect()
    }

    /// Drops pools whose (database, user) no longer exists or whose backend changed, after reload.
    /// Clients still holding one keep it until they disconnect.
    pub fn retain(&self, keep: impl Fn(&Pool) -> bool) {
        lock(&self.map).retain(|_, p| {
            let k = keep(p);
            if !k {
                p.close_idle();
            }
            k
        });
    }
}

/// A poisoned mutex here only means another task panicked mid-update of plain data; keep serving.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
