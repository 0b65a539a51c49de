//! The result cache (`[cache]` in config/pgtide.toml, README "Result cache"): whitelisted reads
//! answered from memory, dropped when a table they read is written through any pgtide instance.
//!
//! # What a hit guarantees
//!
//! - **Key** ([`Key`]): database, login user, the exact statement text (not its fingerprint:
//!   `id = 1` and `id = 2`, `LIMIT 10` and `LIMIT 1000` are different entries; rules still
//!   match by fingerprint), the Parse's parameter types, the Bind's values and parameter and
//!   result formats, the protocol shape, and every session setting the client has (startup
//!   parameters and SET/RESET/set_config as tracked by the session state: timezone, DateStyle,
//!   IntervalStyle, search_path, role, session_authorization, custom settings read by
//!   row-level security, ...). A client pgtide cannot vouch for (pinned, or
//!   `standard_conforming_strings` off) does not use the cache (`session_cache::vouched`).
//! - **Freshness**: an entry carries a WAL position it reflects at least (the health checks'
//!   last look at the backend, taken before the read); a client with a read-your-writes
//!   position only takes entries at or past it. A fill from a replica is stored only when
//!   that position is past the last write through pgtide to each table it read ([`floors`]).
//!   Reads of views depend on the views' base tables, from the catalog ([`views`]).
//! - Writes that bypass pgtide are covered only by the rule's TTL (counted from the fill,
//!   which on a replica may itself be up to the replica's lag behind).
//!
//! # Using it from a session
//!
//! ```text
//! // once per statement that runs outside a transaction, for a vouched-for client:
//! let hint = cache::Hint::of(sql);
//! let Some(mut policy) = cache.policy(fingerprint.id, &classification, hint) else { run normally };
//! policy.tables = cache.expand_reads(database, primary, &policy.tables).await?;  // views
//! let key = cache::Key { database, user, settings, text, param_types, params, param_formats,
//!                        result_formats, simple, describe };
//! match cache.get_or_wait_at(key, &policy, read_your_writes_lsn).await {
//!     Lookup::Hit(entry) => write entry.reply (+ ParseComplete/BindComplete as the batch needs,
//!                           + ReadyForQuery for a simple query) without a backend,
//!     Lookup::Miss(guard) => lease; guard.set_source(where it runs, health position); run
//!                            the statement; capture RowDescription/DataRow/CommandComplete
//!                            while the reply stays under guard.max_bytes(); on success
//!                            guard.fill(bytes); on an error or an oversized reply drop guard,
//! }
//! // a write, as it runs (its views' base tables too: cache.expand_writes):
//! cache.invalidate_local(&written);
//! // after a write's CommandComplete (autocommit) or the COMMIT's ReadyForQuery, with every
//! // table the transaction wrote:
//! cache.invalidate_tables(&written);   // local now + other instances via NOTIFY
//! ```
//!
//! - [`ResultCache::policy`] says whether a statement may be cached and for how long: the first
//!   matching `[[cache.rules]]` entry (by fingerprint, or by table set), or the
//!   `/* pgtide:cache */` hint (default_ttl); never for anything but one certain read without
//!   volatile functions, nor with `/* pgtide:no-cache */`. The caller checks the transaction:
//!   nothing is looked up or filled inside a read-write transaction.
//! - [`ResultCache::get_or_wait`] coalesces: of concurrent misses on one key, the first gets
//!   `Miss(guard)`, the others wait (at most 5 s) and get `Hit` once it fills, or their own
//!   `Miss` if it gives up. A `FillGuard` made before an invalidation of one of its tables does
//!   not store: a result computed before a write is never kept after it. So call
//!   `invalidate_tables` only once the write is durable (after autocommit's CommandComplete, or
//!   at COMMIT); calling it at the write as well (so the writer does not read its own stale row)
//!   is harmless. Writes with unknown targets (DO, CALL, side-effect functions: `writes` is
//!   empty) are covered by TTL unless the caller uses [`ResultCache::invalidate_all`].
//! - [`ResultCache::clear`] / [`ResultCache::clear_table`] act on this instance only (`CACHE
//!   CLEAR [table]`); `invalidate_all` / `invalidate_tables` also reach the other instances.
//! - Cross-instance invalidation needs [`ResultCache::spawn_listener`] (see [`notify`]): from
//!   that call on, the cache serves and stores only while its LISTEN connection is up, and is
//!   flushed whenever that connection comes or goes. Without a listener (unit tests, a single
//!   instance that opts out) it works locally.
//!
//! Table names are compared as described in [`names`]: bare names on either side match any
//! schema when invalidating (conservative), qualified names must agree. Memory is bounded by
//! `max_memory` (see [`store`]); one reply is at most `max_memory / 64`.

pub(crate) mod floors;
pub(crate) mod names;
pub(crate) mod notify;
pub(crate) mod rules;
pub(crate) mod store;
pub(crate) mod views;

mod index;
mod key;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use pgtide_config::CacheConfig;
use pgtide_sql::Classification;

use crate::upstream::conn::BackendTarget;

pub(crate) use notify::ListenerStatus;
pub use rules::{Hint, Policy};
pub(crate) use rules::{RuleStats, Rules};
pub(crate) use store::{FillGuard, Source, Store};
pub use store::{Key, Lookup};

/// The result cache of one pgtide instance.
pub struct ResultCache {
    config: Mutex<CacheConfig>,
    rules: ArcSwap<Rules>,
    store: ArcSwap<Store>,
    /// Serialises store swaps with online/offline switches.
    switch: Mutex<()>,
    chan: Arc<notify::Channel>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    /// `host:port` of the listener's backend: replica fills are stored only for databases
    /// whose primary it is (the floors are WAL positions of that cluster).
    listener_label: Mutex<Option<String>>,
    floors: Arc<floors::Floors>,
    views: views::Views,
    hits: AtomicU64,
    misses: AtomicU64,
    /// [`ResultCache::in_use`] without loading the rules or the store: `USE_*` bits.
    use_flags: AtomicU8,
}

/// The cache is enabled.
const USE_ENABLED: u8 = 1;
/// It is enabled and has rules.
const USE_RULES: u8 = 2;
/// A lookup was made (entries come only from the fills of lookups): from then on the store's
/// entry count decides.
const USE_LOOKED_UP: u8 = 4;

fn use_flags_of(rules: &Rules) -> u8 {
    match (rules.enabled(), rules.has_rules()) {
        (false, _) => 0,
        (true, false) => USE_ENABLED,
        (true, true) => USE_ENABLED | USE_RULES,
    }
}

/// Whole-cache numbers for the dashboard and `/api`.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub entries: u64,
    pub bytes: u64,
    pub max_memory: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
}

impl ResultCache {
    pub fn new(config: &CacheConfig) -> ResultCache {
        let floors: Arc<floors::Floors> = Arc::default();
        let rules = Rules::new(config);
        ResultCache {
            config: Mutex::new(config.clone()),
            use_flags: AtomicU8::new(use_flags_of(&rules)),
            rules: ArcSwap::from_pointee(rules),
            store: ArcSwap::from_pointee(Store::with_floors(
                config.max_memory,
                store::DEFAULT_WAIT,
                floors.clone(),
            )),
            switch: Mutex::new(()),
            chan: Arc::new(notify::Channel::new(&config.invalidate_channel)),
            listener: Mutex::new(None),
            listener_label: Mutex::new(None),
            floors,
            views: views::Views::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Applies a reloaded `[cache]`. Changed rules, TTL or `enabled` flush the entries (they
    /// were admitted under the old rules) and reset the per-rule counters; a changed
    /// `max_memory` starts a new, empty store; a changed channel makes the listener re-LISTEN.
    pub fn reconfigure(&self, config: &CacheConfig) {
        let mut old = lock(&self.config);
        if old.rules != config.rules
            || old.default_ttl != config.default_ttl
            || old.enabled != config.enabled
        {
            let rules = Rules::new(config);
            let flags = use_flags_of(&rules);
            // One update: a lookup noted meanwhile keeps its bit.
            let _ = self
                .use_flags
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    Some(flags | (old & USE_LOOKED_UP))
                });
            self.rules.store(Arc::new(rules));
            self.store.load().clear();
        }
        if old.max_memory != config.max_memory {
            let _switch = lock(&self.switch);
            let store =
                Store::with_floors(config.max_memory, store::DEFAULT_WAIT, self.floors.clone());
            let online = self.store.load().online();
            if !online {
                store.set_online(false);
            }
            self.store.store(Arc::new(store));
        }
        self.chan.set_name(&config.invalidate_channel);
        *old = config.clone();
    }

    pub fn enabled(&self) -> bool {
        self.use_flags.load(Ordering::Relaxed) & USE_ENABLED != 0
    }

    /// Whether writes must be noted for invalidation: with rules (other instances on the
    /// channel cache too), or once this instance has looked anything up, even with nothing
    /// stored right now: a hinted fill may be in flight, and a write it does not see must
    /// still refuse it. A cache used through hints alone is local: writes through other
    /// instances reach it by TTL (they run no listener, see `server::cache_listener_target`).
    pub fn tracks_writes(&self) -> bool {
        let flags = self.use_flags.load(Ordering::Relaxed);
        flags & USE_ENABLED != 0 && flags & (USE_RULES | USE_LOOKED_UP) != 0
    }

    /// Whether a lookup may find anything without a hint: enabled, and rules or entries (from
    /// hints) exist. A statement with a `/* pgtide:cache */` hint is looked up regardless.
    pub fn in_use(&self) -> bool {
        // Asked several times per query: one atomic load unless hinted entries may exist.
        let flags = self.use_flags.load(Ordering::Relaxed);
        if flags & USE_ENABLED == 0 {
            return false;
        }
        flags & USE_RULES != 0 || (flags & USE_LOOKED_UP != 0 && self.store.load().entries() > 0)
    }

    fn note_lookup(&self) {
        if self.use_flags.load(Ordering::Relaxed) & USE_LOOKED_UP == 0 {
            self.use_flags.fetch_or(USE_LOOKED_UP, Ordering::Relaxed);
        }
    }

    /// May this statement be cached, and for how long (see [`Rules::policy`])?
    /// `fingerprint_id` is `pgtide_sql::fingerprint(sql).id`; `hint` is [`Hint::of`]`(sql)`.
    pub fn policy(&self, fingerprint_id: u64, c: &Classification, hint: Hint) -> Option<Policy> {
        self.rules.load().policy(fingerprint_id, c, hint)
    }

    /// A hit, or a miss whose guard must be filled or dropped (see the module docs).
    pub async fn get_or_wait(&self, key: Key, policy: &Policy) -> Lookup {
        self.get_or_wait_at(key, policy, 0).await
    }

    /// [`ResultCache::get_or_wait`] for a client with a read-your-writes position: only an
    /// entry read at `min_lsn` or later is a hit.
    pub async fn get_or_wait_at(&self, key: Key, policy: &Policy, min_lsn: u64) -> Lookup {
        self.note_lookup();
        let store = self.store.load_full();
        let lookup = store.get_or_wait_at(key, policy, min_lsn).await;
        let counter = match lookup {
            Lookup::Hit(_) => &self.hits,
            Lookup::Miss(_) => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        lookup
    }

    /// Drops this instance's entries that read any of `tables` and tells the other instances
    /// (queued for the listener's connection). Returns the local count dropped.
    pub fn invalidate_tables(&self, tables: &[String]) -> usize {
        if tables.is_empty() {
            return 0;
        }
        // Pending before the generation moves: a fill that starts after it sees the floor.
        let seq = self.floors.mark_local(tables, false);
        let n = self.invalidate_local(tables);
        self.chan.publish(tables, false, seq);
        n
    }

    /// Drops this instance's entries that read any of `tables`, without telling anyone.
    pub fn invalidate_local(&self, tables: &[String]) -> usize {
        self.store.load().invalidate_tables(tables)
    }

    /// Flushes this instance and tells the other instances to flush.
    pub fn invalidate_all(&self) {
        let seq = self.floors.mark_local(&[], true);
        self.clear();
        self.chan.publish(&[], true, seq);
    }

    /// Flushes this instance's cache (`CACHE CLEAR`).
    pub fn clear(&self) {
        self.store.load().clear();
    }

    /// Drops this instance's entries that read `table` (`CACHE CLEAR table`).
    pub fn clear_table(&self, table: &str) -> usize {
        self.invalidate_local(&[table.to_string()])
    }

    /// One row per rule, then one for the `/* pgtide:cache */` hint (SHOW CACHE).
    pub fn stats(&self) -> Vec<RuleStats> {
        self.rules.load().stats()
    }

    /// Hits / lookups since start, 0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let t = self.totals();
        t.hit_rate
    }

    pub fn totals(&self) -> Totals {
        let store = self.store.load();
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        Totals {
            entries: store.entries(),
            bytes: store.bytes(),
            max_memory: lock(&self.config).max_memory,
            hits,
            misses,
            hit_rate: rules::rate(hits, misses),
        }
    }

    /// The current store (tests, diagnostics).
    pub fn store(&self) -> Arc<Store> {
        // Whoever holds the store may fill it.
        self.note_lookup();
        self.store.load_full()
    }

    /// Starts (or restarts against a new target) the invalidation listener on the current
    /// tokio runtime and returns at once. From now on the cache is off until the listener is
    /// listening (see [`notify`]). `target`: the first database's primary, logged in with the
    /// URL's credentials (`shared::primary_target`).
    pub fn spawn_listener(self: &Arc<Self>, target: BackendTarget) {
        let mut slot = lock(&self.listener);
        if let Some(old) = slot.take() {
            old.abort();
        }
        *lock(&self.listener_label) = Some(target.label());
        self.chan.mark_started();
        self.set_online(false);
        let task = tokio::spawn(notify::run(Arc::downgrade(self), self.chan.clone(), target));
        *slot = Some(task.abort_handle());
    }

    pub fn listener_status(&self) -> ListenerStatus {
        self.chan.status()
    }

    /// May a miss on a replica of the database whose primary is `primary_label` be stored?
    /// Only when the listener publishes on that primary (its WAL positions are the floors).
    pub fn replica_fills_from(&self, primary_label: &str) -> bool {
        lock(&self.listener_label).as_deref() == Some(primary_label)
    }

    /// See [`views::Views::expand_reads`].
    pub async fn expand_reads(
        &self,
        database: &str,
        target: &Arc<BackendTarget>,
        reads: &[String],
    ) -> Option<Vec<String>> {
        self.views.expand_reads(database, target, reads).await
    }

    /// See [`views::Views::expand_writes`].
    pub fn expand_writes(&self, writes: &[String]) -> Vec<String> {
        self.views.expand_writes(writes)
    }

    /// Moves at each DDL seen through pgtide.
    pub fn schema_generation(&self) -> u64 {
        self.views.schema_generation()
    }

    /// DDL ran through pgtide: view dependencies are read again on next use.
    pub fn schema_changed(&self) {
        self.views.schema_changed();
    }

    pub(crate) fn floors(&self) -> &floors::Floors {
        &self.floors
    }

    /// This instance's id in NOTIFY payloads.
    pub fn instance_id(&self) -> &str {
        &self.chan.instance
    }

    fn set_online(&self, online: bool) {
        let _switch = lock(&self.switch);
        self.store.load().set_online(online);
    }
}

impl Drop for ResultCache {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.listener).take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[path = "facade_tests.rs"]
mod tests;
