//! Query insights: what ran, how often, how fast, where, and which statements repeat as N+1.
//!
//! Sessions call [`Insights::record`] once per finished statement. A simple Query comes with its
//! fingerprint (from the analysis its session made of it: no second lexing, no text cache);
//! otherwise, for a statement text seen before, a hash of the text and one short lock on a
//! [text cache](fingerprints) shard (no re-lexing). Then one short lock on the [stats](stats)
//! shard of its fingerprint (counters and an HDR histogram), two metric updates, and the
//! client's own N+1 state (no lock). Slow statements and N+1 reports take one more lock each,
//! only when they happen.
//!
//! Everything is bounded: `max_fingerprints` statistics (least recently seen evicted per shard),
//! a text cache of at most 16 MiB, 200 slow queries and 200 N+1 reports (newest first), and per
//! client a handful of candidate runs.

mod fingerprints;
mod n_plus_one;
mod slow;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgtide_config::InsightsConfig;

use crate::metrics_names as m;

pub(crate) use fingerprints::Fp;
pub use n_plus_one::ClientPatterns;
pub(crate) use n_plus_one::NPlusOne;
pub(crate) use slow::SlowQuery;
pub(crate) use stats::QueryStats;

/// Where a statement ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Primary,
    Replica,
    Cache,
}

/// One client's handles for the per-statement metrics, by [`Route`].
#[derive(Debug)]
pub(crate) struct ClientMetrics {
    database: String,
    queries: [metrics::Counter; 3],
    durations: [metrics::Histogram; 3],
}

impl ClientMetrics {
    fn new(database: &str) -> ClientMetrics {
        let routes = [Route::Primary, Route::Replica, Route::Cache];
        ClientMetrics {
            database: database.to_string(),
            queries: routes.map(|r| {
                metrics::counter!(m::QUERIES_TOTAL, "db" => database.to_owned(), "route" => r.as_str())
            }),
            durations: routes
                .map(|r| metrics::histogram!(m::QUERY_DURATION_SECONDS, "route" => r.as_str())),
        }
    }
}

impl Route {
    /// The metric label value (`primary`, `replica`, `cache`).
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Primary => "primary",
            Route::Replica => "replica",
            Route::Cache => "cache",
        }
    }
}

/// One finished statement (one simple-Query statement string, or one extended-protocol Execute).
#[derive(Debug, Clone, Copy)]
pub struct Execution<'a> {
    pub sql: &'a str,
    /// Hash of the parameter values (Bind parameters for the extended protocol); 0 = compute from
    /// the literals in `sql`.
    pub params_hash: u64,
    pub duration: Duration,
    pub rows: u64,
    pub error: bool,
    pub route: Route,
    /// host:port of the backend, or "cache".
    pub backend: &'a str,
    pub database: &'a str,
    pub user: &'a str,
    pub application_name: &'a str,
    /// Inside an explicit transaction (status 'T' or 'E' when it started).
    pub in_transaction: bool,
}

/// The settings `reconfigure` can change while sessions record.
struct Settings {
    slow_ns: AtomicU64,
    min_repeats: AtomicUsize,
    window_ns: AtomicU64,
    /// `sample_literals`: keep a fingerprint's first statement as written.
    sample_literals: AtomicBool,
}

impl Settings {
    fn store(&self, c: &InsightsConfig) {
        self.slow_ns
            .store(nanos(c.slow_query_threshold), Ordering::Relaxed);
        // One execution is not a pattern: at least two.
        let repeats = usize::try_from(c.n_plus_one_min_repeats).unwrap_or(usize::MAX);
        self.min_repeats.store(repeats.max(2), Ordering::Relaxed);
        self.window_ns
            .store(nanos(c.n_plus_one_window), Ordering::Relaxed);
        self.sample_literals
            .store(c.sample_literals, Ordering::Relaxed);
    }
}

/// Monotonic time for ordering and windows, wall-clock milliseconds for reports: one clock read
/// per statement.
pub(crate) struct Clock {
    base: Instant,
    base_unix_ms: u64,
}

impl Clock {
    fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            base: Instant::now(),
            base_unix_ms: u64::try_from(unix.as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub(crate) fn unix_ms(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.base).as_millis();
        self.base_unix_ms
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the clock started (monotonic), for least-recently-seen ordering.
    fn tick(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.base))
    }
}

/// Per-fingerprint statistics, the slow-query log and N+1 detection, shared by all sessions.
pub struct Insights {
    clock: Clock,
    settings: Settings,
    texts: fingerprints::TextCache,
    stats: stats::Stats,
    slow: slow::SlowLog,
    reports: n_plus_one::Reports,
}

impl Insights {
    pub fn new(config: &InsightsConfig) -> Insights {
        let settings = Settings {
            slow_ns: AtomicU64::new(0),
            min_repeats: AtomicUsize::new(2),
            window_ns: AtomicU64::new(0),
            sample_literals: AtomicBool::new(false),
        };
        settings.store(config);
        Insights {
            clock: Clock::new(),
            settings,
            texts: fingerprints::TextCache::new(),
            stats: stats::Stats::new(config.max_fingerprints),
            slow: slow::SlowLog::new(),
            reports: n_plus_one::Reports::new(),
        }
    }

    /// Live reload (threshold, max_fingerprints, N+1 settings, sample_literals). A lower
    /// `max_fingerprints` evicts the least recently seen fingerprints at once; with
    /// `sample_literals` off, samples kept as written while it was on become their
    /// fingerprints, so turning it off forgets the literals already stored too.
    pub fn reconfigure(&self, config: &InsightsConfig) {
        self.settings.store(config);
        self.stats.set_max(config.max_fingerprints);
        if !config.sample_literals {
            self.stats.forget_literals();
        }
    }

    /// The fingerprint id of a statement text, from the same cache recording uses (a repeated
    /// text costs a lookup, not a re-lex): for the result cache's keys and rules.
    pub fn fingerprint_id(&self, sql: &str) -> u64 {
        self.texts.get(sql).id
    }

    /// Records one execution; `patterns` is the calling client's own N+1 state (owned by its
    /// session, no lock).
    pub fn record(&self, e: &Execution<'_>, patterns: &mut ClientPatterns) {
        self.record_at(e, patterns, Instant::now());
    }

    /// [`record`](Self::record) of a statement whose fingerprint is known already (a simple
    /// Query's analysis): no text cache, no second lexing. `ended`: when it ended (the clock
    /// the caller read for its duration, not read again).
    pub(crate) fn record_fingerprinted(
        &self,
        e: &Execution<'_>,
        fp: &Fp,
        patterns: &mut ClientPatterns,
        ended: Instant,
    ) {
        self.record_with(e, fp, patterns, ended);
    }

    /// [`record`](Self::record) of a statement that ended at `ended`.
    pub(crate) fn record_at(&self, e: &Execution<'_>, patterns: &mut ClientPatterns, now: Instant) {
        let fp = self.texts.get(e.sql);
        self.record_with(e, &fp, patterns, now);
    }

    fn record_with(&self, e: &Execution<'_>, fp: &Fp, patterns: &mut ClientPatterns, now: Instant) {
        let now_ms = self.clock.unix_ms(now);
        let literals = &self.settings.sample_literals;
        self.stats
            .record(fp, e, literals, self.clock.tick(now), now_ms);

        let handles = match &patterns.metrics {
            Some(h) if h.database == e.database => h,
            _ => patterns.metrics.insert(ClientMetrics::new(e.database)),
        };
        let i = e.route as usize;
        handles.queries[i].increment(1);
        handles.durations[i].record(e.duration.as_secs_f64());

        if nanos(e.duration) > self.settings.slow_ns.load(Ordering::Relaxed) {
            let literals = self.settings.sample_literals.load(Ordering::Relaxed);
            self.slow.record(fp, e, literals, now, now_ms);
        }
        if !e.error {
            let params = match e.params_hash {
                0 => fp.literals,
                h => h,
            };
            let seen = n_plus_one::Seen {
                fp,
                params,
                duration: e.duration,
                now,
                in_transaction: e.in_transaction,
                database: e.database,
                application_name: e.application_name,
            };
            let limits = n_plus_one::Limits {
                min_repeats: self.settings.min_repeats.load(Ordering::Relaxed),
                window: Duration::from_nanos(self.settings.window_ns.load(Ordering::Relaxed)),
            };
            n_plus_one::observe(&self.reports, &self.clock, patterns, &seen, limits);
        }
    }

    /// The client's transaction ended (ReadyForQuery 'I' after a transaction): N+1 inside it is
    /// judged now. A run is reported as soon as it reaches `n_plus_one_min_repeats` (with the
    /// database and application_name of that execution) and its count and time are kept up to
    /// date while it goes on, so here the transaction's runs end; `database` and
    /// `application_name` are not needed for that.
    pub fn end_transaction(
        &self,
        patterns: &mut ClientPatterns,
        database: &str,
        application_name: &str,
    ) {
        let _ = (database, application_name);
        patterns.end_transaction();
    }

    /// Per-fingerprint statistics, highest total time first.
    pub fn queries(&self) -> Vec<QueryStats> {
        self.stats.snapshot()
    }

    /// Statements above `slow_query_threshold`, newest first (at most 200).
    pub fn slow_queries(&self) -> Vec<SlowQuery> {
        self.slow.list()
    }

    /// N+1 reports, newest first (at most 200).
    pub fn n_plus_one(&self) -> Vec<NPlusOne> {
        self.reports.list()
    }

    /// Forget all stats, slow queries and N+1 reports (admin console reset).
    pub fn reset(&self) {
        self.stats.clear();
        self.slow.clear();
        self.reports.clear();
    }
}

impl std::fmt::Debug for Insights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Insights").finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A poisoned lock still guards consistent counters (every update is a few plain writes).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `id` as the 16 hex digits shown to users.
fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}

/// `s` cut to at most `max` characters (on a char boundary).
fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        // No more characters than bytes: nothing to count (the usual case, on every query).
        return s;
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Shards for maps keyed by an already well-mixed 64-bit hash (bits the map itself does not use).
const SHARDS: usize = 32;

fn shard_of(h: u64) -> usize {
    ((h >> 32) as usize) % SHARDS
}

/// Map keys that are already hashes: used as they are.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;
