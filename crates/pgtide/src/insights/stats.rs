//! Per-fingerprint statistics: counters, exact total/min/max, an HDR histogram of durations.
//!
//! 32 shards by fingerprint id, each a `Mutex<HashMap>`: sessions recording different statements
//! rarely meet on a lock, and a snapshot merges the shards. The `max_fingerprints` bound is
//! split over the shards (shard i holds `max / 32`, plus one for the first `max % 32` shards,
//! and at least one), so the total never exceeds `max(max_fingerprints, 32)`; eviction takes the
//! least recently seen fingerprint of the shard that is full, which approximates a global LRU.
//!
//! Histograms count microseconds (clamped to 1 µs ..= 1 h) with 2 significant figures and grow
//! with the largest value seen: about 10 KiB for a statement that stays under 100 ms, at most
//! 26 KiB. 3 figures would cost 64 KiB and 188 KiB, i.e. over 300 MB for the default 5000
//! fingerprints; 2 figures keep percentiles within 1 %. Percentiles are reported as the middle
//! of their histogram bucket, clamped to the exact min and max.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use super::fingerprints::Fp;
use super::{hex_id, lock, nanos, shard_of, truncate_chars, Execution, IdMap, Route, SHARDS};

/// Significant figures of the latency histograms (see the module docs for the memory trade-off).
const SIGFIG: u8 = 2;
/// Longest duration the histograms tell apart: one hour, in microseconds.
const MAX_US: u64 = 3_600_000_000;
/// Characters kept of the first statement text seen for a fingerprint.
const SAMPLE_CHARS: usize = 1000;

/// One fingerprint's numbers, as SHOW QUERIES and /api/queries show them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryStats {
    pub fingerprint: String,
    /// 16 hex digits.
    pub id: String,
    /// First seen statement text, truncated to 1000 chars.
    pub sample: String,
    pub calls: u64,
    pub errors: u64,
    pub rows: u64,
    pub total_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub primary: u64,
    pub replica: u64,
    pub cache: u64,
    pub cache_hits: u64,
    pub last_seen_unix_ms: u64,
}

struct Entry {
    fingerprint: std::sync::Arc<str>,
    sample: Box<str>,
    calls: u64,
    errors: u64,
    rows: u64,
    total_ns: u64,
    min_ns: u64,
    max_ns: u64,
    hist: Histogram<u64>,
    routes: [u64; 3],
    /// Monotonic, for least-recently-seen eviction.
    last_tick: u64,
    last_seen_unix_ms: u64,
}

impl Entry {
    fn add(&mut self, e: &Execution<'_>, tick: u64, now_ms: u64) {
        let ns = nanos(e.duration);
        self.calls += 1;
        self.errors += u64::from(e.error);
        self.rows = self.rows.saturating_add(e.rows);
        self.total_ns = self.total_ns.saturating_add(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
        // Within 1..=MAX_US the auto-resizing histogram always records.
        let _ = self.hist.record((ns / 1000).clamp(1, MAX_US));
        self.routes[route_index(e.route)] += 1;
        self.last_tick = self.last_tick.max(tick);
        self.last_seen_unix_ms = self.last_seen_unix_ms.max(now_ms);
    }

    fn stats(&self, id: u64) -> QueryStats {
        let ms = |ns: u64| ns as f64 / 1e6;
        let (min_ms, max_ms) = (ms(self.min_ns), ms(self.max_ns));
        let pct = |q: f64| {
            let us = self.hist.median_equivalent(self.hist.value_at_quantile(q));
            (us as f64 / 1e3).clamp(min_ms, max_ms)
        };
        QueryStats {
            fingerprint: self.fingerprint.to_string(),
            id: hex_id(id),
            sample: self.sample.to_string(),
            calls: self.calls,
            errors: self.errors,
            rows: self.rows,
            total_ms: ms(self.total_ns),
            min_ms,
            max_ms,
            mean_ms: ms(self.total_ns) / self.calls.max(1) as f64,
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
            primary: self.routes[0],
            replica: self.routes[1],
            cache: self.routes[2],
            cache_hits: self.routes[2],
            last_seen_unix_ms: self.last_seen_unix_ms,
        }
    }
}

fn route_index(r: Route) -> usize {
    match r {
        Route::Primary => 0,
        Route::Replica => 1,
        Route::Cache => 2,
    }
}

pub(super) struct Stats {
    shards: Box<[Mutex<IdMap<Entry>>]>,
    max: AtomicUsize,
    /// An empty auto-resizing histogram to copy the settings of.
    template: Histogram<u64>,
}

impl Stats {
    pub(super) fn new(max_fingerprints: usize) -> Stats {
        #[allow(clippy::expect_used)]
        let template = Histogram::new(SIGFIG).expect("constant histogram settings are valid");
        Stats {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            max: AtomicUsize::new(max_fingerprints),
            template,
        }
    }

    /// How many fingerprints shard `i` may hold.
    fn cap(&self, i: usize) -> usize {
        let max = self.max.load(Ordering::Relaxed);
        (max / SHARDS + usize::from(i < max % SHARDS)).max(1)
    }

    /// Adds `e` to its fingerprint's entry. A new entry's sample is the statement as written
    /// only with `sample_literals`; otherwise the fingerprint, so no literal (a password in
    /// `ALTER ROLE`, a customer's e-mail) is kept or shown.
    ///
    /// `sample_literals` is read under the shard lock: a reload that turns it off and then
    /// [forgets literals](Self::forget_literals) shard by shard cannot miss a sample taken
    /// with the old setting (the lock orders the two).
    pub(super) fn record(
        &self,
        fp: &Fp,
        e: &Execution<'_>,
        sample_literals: &AtomicBool,
        tick: u64,
        now_ms: u64,
    ) {
        let i = shard_of(fp.id);
        let mut shard = lock(&self.shards[i]);
        if let Some(entry) = shard.get_mut(&fp.id) {
            entry.add(e, tick, now_ms);
            return;
        }
        let cap = self.cap(i);
        while shard.len() >= cap {
            evict_least_recent(&mut shard);
        }
        let mut entry = Entry {
            fingerprint: std::sync::Arc::from(fp.text.as_str()),
            sample: if sample_literals.load(Ordering::Relaxed) {
                truncate_chars(e.sql, SAMPLE_CHARS).into()
            } else {
                truncate_chars(&fp.text, SAMPLE_CHARS).into()
            },
            calls: 0,
            errors: 0,
            rows: 0,
            total_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            hist: Histogram::new_from(&self.template),
            routes: [0; 3],
            last_tick: 0,
            last_seen_unix_ms: 0,
        };
        entry.add(e, tick, now_ms);
        shard.insert(fp.id, entry);
    }

    /// A new bound; shards over it evict at once.
    pub(super) fn set_max(&self, max_fingerprints: usize) {
        self.max.store(max_fingerprints, Ordering::Relaxed);
        for (i, shard) in self.shards.iter().enumerate() {
            let cap = self.cap(i);
            let mut shard = lock(shard);
            while shard.len() > cap {
                evict_least_recent(&mut shard);
            }
        }
    }

    /// Every sample becomes its fingerprint text (truncated as new samples are): after
    /// `sample_literals` is turned off, no statement as written stays.
    pub(super) fn forget_literals(&self) {
        for shard in self.shards.iter() {
            for entry in lock(shard).values_mut() {
                let fingerprint = truncate_chars(&entry.fingerprint, SAMPLE_CHARS);
                if *entry.sample != *fingerprint {
                    entry.sample = fingerprint.into();
                }
            }
        }
    }

    /// All fingerprints, highest total time first.
    pub(super) fn snapshot(&self) -> Vec<QueryStats> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            all.extend(shard.iter().map(|(id, e)| e.stats(*id)));
        }
        all.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        all
    }

    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            lock(shard).clear();
        }
    }
}

fn evict_least_recent(shard: &mut IdMap<Entry>) {
    let oldest = shard
        .iter()
        .min_by_key(|(_, e)| e.last_tick)
        .map(|(id, _)| *id);
    if let Some(id) = oldest {
        shard.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_memory_stays_small() {
        let s = Stats::new(1);
        let mut h = Histogram::<u64>::new_from(&s.template);
        let _ = h.record(100_000);
        // counts * 8 bytes: ~11 KiB under 100 ms.
        assert!(
            h.distinct_values() * 8 < 12 * 1024,
            "{}",
            h.distinct_values()
        );
        let _ = h.record(MAX_US);
        assert!(
            h.distinct_values() * 8 < 27 * 1024,
            "{}",
            h.distinct_values()
        );
    }
}
