//! The entries: a `moka::sync::Cache` bounded by weight, per-entry TTL, a table index for
//! invalidation, and request coalescing for concurrent misses on one key.
//!
//! Memory: each entry weighs its reply bytes + its key (names, parameter values, formats) + its
//! table names + [`ENTRY_OVERHEAD`] (moka's node, the index references, the Arcs); moka keeps the
//! sum of weights under `max_memory` (it may run over briefly between its maintenance passes,
//! which happen on every few writes). A reply larger than [`max_entry_bytes`] is never stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::watch;

use super::floors::Floors;
use super::index::Index;
pub use super::key::Key;
pub(crate) use super::key::Source;
use super::names::TableName;
use super::rules::{Policy, RuleCounters};
use crate::metrics_names as m;

/// Added to every entry's weight for what it costs besides its bytes.
pub(crate) const ENTRY_OVERHEAD: usize = 256;
/// How long a concurrent miss waits for the first one to fill before running its own query.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// The largest reply stored: 1/64 of `max_memory` (so at least 64 such entries fit), and
/// never more than moka's `u32` weight allows.
pub(crate) fn max_entry_bytes(max_memory: u64) -> usize {
    (max_memory / 64).min(u64::from(u32::MAX) / 2) as usize
}

/// A cached reply.
#[derive(Debug)]
pub struct Entry {
    /// The backend's RowDescription / DataRow... / CommandComplete bytes exactly as sent (no
    /// ReadyForQuery, no ParseComplete / BindComplete).
    pub reply: Bytes,
    /// The relations it read: a write to any of them drops it.
    pub tables: Vec<String>,
    /// The rule that admitted it (index in `[[cache.rules]]`, `rules.len()` for the hint).
    pub rule: usize,
    /// A WAL position the reply reflects at least (see [`Source`]); 0 when unknown.
    pub lsn: u64,
}

/// The answer of [`Store::get_or_wait`].
#[derive(Debug)]
pub enum Lookup {
    /// Replay `entry.reply`; no backend needed.
    Hit(Arc<Entry>),
    /// Run the statement, then [`FillGuard::fill`] with the reply (or drop the guard if the
    /// statement failed or the reply is not wanted: waiters then run their own).
    Miss(FillGuard),
}

#[derive(Clone)]
struct Slot {
    entry: Arc<Entry>,
    id: u64,
    ttl: Duration,
    weight: u32,
    names: Arc<[TableName]>,
    counters: Arc<RuleCounters>,
}

struct SlotExpiry;

impl Expiry<Arc<Key>, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &Arc<Key>, v: &Slot, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Arc<Key>,
        v: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Entries that left moka, reported by its eviction listener and removed from the index at the
/// next index operation (the listener can run inside a moka call made under the index lock,
/// so it must not take that lock itself).
type Graveyard = Mutex<Vec<(u64, Arc<[TableName]>)>>;

/// Keys being filled -> (fill id, a receiver that wakes when that fill ends).
type Inflight = Mutex<HashMap<Arc<Key>, (u64, watch::Receiver<()>)>>;

struct Inner {
    cache: Cache<Arc<Key>, Slot>,
    index: Mutex<Index>,
    graveyard: Arc<Graveyard>,
    inflight: Inflight,
    generation: AtomicU64,
    next_id: AtomicU64,
    /// False while cross-instance invalidation is down: nothing is served or stored.
    online: AtomicBool,
    max_entry: usize,
    /// Entries and bytes held (all rules).
    held: Arc<RuleCounters>,
    wait: Duration,
    floors: Arc<Floors>,
}

/// The cache's entries (cheap to clone: a handle).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    pub fn new(max_memory: u64) -> Store {
        Store::with_wait(max_memory, DEFAULT_WAIT)
    }

    /// [`Store::new`] with a custom wait bound for coalesced misses.
    pub fn with_wait(max_memory: u64, wait: Duration) -> Store {
        Store::with_floors(max_memory, wait, Arc::default())
    }

    /// A store whose replica fills obey `floors` (shared with the cache's other stores).
    pub fn with_floors(max_memory: u64, wait: Duration, floors: Arc<Floors>) -> Store {
        let graveyard: Arc<Graveyard> = Arc::default();
        let held: Arc<RuleCounters> = Arc::default();
        let (dead, total) = (graveyard.clone(), held.clone());
        let cache = Cache::builder()
            .max_capacity(max_memory)
            .weigher(|_: &Arc<Key>, v: &Slot| v.weight)
            .expire_after(SlotExpiry)
            .eviction_listener(move |_: Arc<Arc<Key>>, v: Slot, _: RemovalCause| {
                v.counters.stored(v.weight, -1);
                total.stored(v.weight, -1);
                let now = total.bytes.load(Ordering::Relaxed);
                metrics::gauge!(m::CACHE_BYTES).set(now.max(0) as f64);
                lock(&dead).push((v.id, v.names));
            })
            .build();
        Store {
            inner: Arc::new(Inner {
                cache,
                index: Mutex::default(),
                graveyard,
                inflight: Mutex::default(),
                generation: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
                online: AtomicBool::new(true),
                max_entry: max_entry_bytes(max_memory),
                held,
                wait,
                floors,
            }),
        }
    }

    /// A hit, or a miss: the first concurrent miss on a key gets a leading guard, later ones
    /// wait (up to the wait bound) until it fills (-> hit) or gives up (-> their own guard).
    pub async fn get_or_wait(&self, key: Key, policy: &Policy) -> Lookup {
        self.get_or_wait_at(key, policy, 0).await
    }

    /// [`Store::get_or_wait`] for a client that must see WAL position `min_lsn` (its
    /// read-your-writes position, 0 for none): an entry read before it is a miss.
    pub async fn get_or_wait_at(&self, key: Key, policy: &Policy, min_lsn: u64) -> Lookup {
        if let Some(hit) = self.hit(&key, policy, min_lsn) {
            return hit;
        }
        let key = Arc::new(key);
        if !self.online() {
            return self.miss(key, policy, None);
        }
        let mut rx = {
            let mut map = lock(&self.inner.inflight);
            match map.get(&key) {
                Some((_, rx)) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(());
                    let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
                    map.insert(key.clone(), (id, rx));
                    drop(map);
                    return self.miss(key, policy, Some((id, tx)));
                }
            }
        };
        // Err (the guard is gone) is the wake-up; a timeout is the bound.
        let _ = tokio::time::timeout(self.inner.wait, rx.changed()).await;
        if let Some(hit) = self.hit(&key, policy, min_lsn) {
            return hit;
        }
        self.miss(key, policy, None)
    }

    fn hit(&self, key: &Key, policy: &Policy, min_lsn: u64) -> Option<Lookup> {
        if !self.online() {
            return None;
        }
        let slot = self.inner.cache.get(key)?;
        if slot.entry.lsn < min_lsn {
            return None;
        }
        policy.counters.hits.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::CACHE_HITS_TOTAL).increment(1);
        Some(Lookup::Hit(slot.entry))
    }

    fn miss(
        &self,
        key: Arc<Key>,
        policy: &Policy,
        leader: Option<(u64, watch::Sender<()>)>,
    ) -> Lookup {
        policy.counters.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::CACHE_MISSES_TOTAL).increment(1);
        Lookup::Miss(FillGuard {
            store: self.clone(),
            key,
            policy: policy.clone(),
            snapshot: self.inner.generation.load(Ordering::SeqCst),
            leader,
            source: Source::Primary(0),
        })
    }

    /// Stores a reply unless it is too large, the cache is offline, one of its tables was
    /// invalidated (or the cache flushed) after `snapshot`, or it came from a replica not
    /// known to have replayed the last write to one of its tables.
    fn store(
        &self,
        key: &Arc<Key>,
        reply: Bytes,
        policy: &Policy,
        snapshot: u64,
        source: Source,
    ) -> bool {
        if !self.online() || reply.len() > self.inner.max_entry || source == Source::Unusable {
            return false;
        }
        let names: Option<Vec<TableName>> =
            policy.tables.iter().map(|t| TableName::parse(t)).collect();
        let Some(names) = names else {
            return false;
        };
        let names: Arc<[TableName]> = names.into();
        let weight = reply.len()
            + key.size()
            + names.iter().map(TableName::size).sum::<usize>()
            + ENTRY_OVERHEAD;
        let weight = u32::try_from(weight).unwrap_or(u32::MAX);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            entry: Arc::new(Entry {
                reply,
                tables: policy.tables.clone(),
                rule: policy.rule,
                lsn: source.lsn(),
            }),
            id,
            ttl: policy.ttl,
            weight,
            names: names.clone(),
            counters: policy.counters.clone(),
        };
        {
            let mut index = self.index();
            if index.stale(&names, snapshot) {
                return false;
            }
            if let Source::Replica(replayed) = source {
                if self.inner.floors.blocks(&names, replayed) {
                    return false;
                }
            }
            index.add(id, key, &names);
            // Under the index lock: an invalidation cannot slip between the check and here.
            self.inner.cache.insert(key.clone(), slot);
        }
        policy.counters.stored(weight, 1);
        self.inner.held.stored(weight, 1);
        let now = self.inner.held.bytes.load(Ordering::Relaxed);
        metrics::gauge!(m::CACHE_BYTES).set(now.max(0) as f64);
        true
    }

    /// Drops every entry that read any of `tables` (see [`TableName::overlaps`]) and refuses
    /// fills in flight that read them. Returns how many entries were dropped.
    pub fn invalidate_tables(&self, tables: &[String]) -> usize {
        let names: Vec<TableName> = tables.iter().filter_map(|t| TableName::parse(t)).collect();
        if names.is_empty() {
            return 0;
        }
        let mut index = self.index();
        let gen = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut dropped = 0;
        for n in &names {
            index.note_invalidation(&n.name, gen);
            for key in index.take_matching(n) {
                self.inner.cache.invalidate(&key);
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops everything and refuses every fill in flight.
    pub fn clear(&self) {
        {
            let mut index = self.index();
            let gen = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
            index.clear(gen);
            self.inner.cache.invalidate_all();
        }
        self.run_pending_tasks();
    }

    /// Serving and storing on (`true`) or off; both switches flush.
    pub fn set_online(&self, online: bool) {
        self.inner.online.store(online, Ordering::SeqCst);
        self.clear();
    }

    pub fn online(&self) -> bool {
        self.inner.online.load(Ordering::SeqCst)
    }

    /// Runs moka's pending maintenance (evictions, expirations, listener calls) now.
    pub fn run_pending_tasks(&self) {
        self.inner.cache.run_pending_tasks();
        drop(self.index());
    }

    /// Entries, as of moka's last maintenance.
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// Sum of entry weights, as of moka's last maintenance.
    pub fn weighted_size(&self) -> u64 {
        self.inner.cache.weighted_size()
    }

    /// Sum of entry weights, counted at each insert and removal.
    pub fn bytes(&self) -> u64 {
        self.inner.held.bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// Entries, counted at each insert and removal.
    pub fn entries(&self) -> u64 {
        self.inner.held.entries.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn max_entry_bytes(&self) -> usize {
        self.inner.max_entry
    }

    /// References held by the table index (one per entry and relation part).
    pub fn index_refs(&self) -> usize {
        self.index().refs()
    }

    /// The index, after forgetting the entries moka has dropped since the last call.
    fn index(&self) -> MutexGuard<'_, Index> {
        let mut index = lock(&self.inner.index);
        let dead = std::mem::take(&mut *lock(&self.inner.graveyard));
        for (id, names) in dead {
            index.remove(id, &names);
        }
        index
    }
}

/// The right and duty to fill one key after a miss. Dropping it without filling wakes the
/// waiters, which then run the statement themselves.
pub struct FillGuard {
    store: Store,
    key: Arc<Key>,
    policy: Policy,
    snapshot: u64,
    /// Set for the first miss on a key: (fill id, the sender whose drop wakes the waiters).
    leader: Option<(u64, watch::Sender<()>)>,
    source: Source,
}

impl std::fmt::Debug for FillGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillGuard")
            .field("key", &self.key)
            .field("leader", &self.leader.is_some())
            .finish()
    }
}

impl FillGuard {
    /// Stores the reply (the bytes described on [`Entry::reply`]) and wakes the waiters.
    /// Returns whether it was stored: not when it is larger than [`FillGuard::max_bytes`], the
    /// cache is offline, or a table it read was invalidated since this guard was made (the
    /// result may predate a write that has committed since).
    pub fn fill(self, reply: Bytes) -> bool {
        self.store
            .store(&self.key, reply, &self.policy, self.snapshot, self.source)
    }

    /// Where the statement runs, known once a backend is leased and before the read starts.
    pub fn set_source(&mut self, source: Source) {
        self.source = source;
    }

    /// The largest reply [`fill`](Self::fill) accepts: stop capturing beyond it.
    pub fn max_bytes(&self) -> usize {
        self.store.max_entry_bytes()
    }

    /// Is this the first miss on its key (others may be waiting for it)?
    pub fn is_leader(&self) -> bool {
        self.leader.is_some()
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// How many lookups wait for this (leading) guard.
    #[cfg(test)]
    pub(crate) fn waiters(&self) -> usize {
        // The in-flight map holds one receiver; each waiter holds a clone.
        self.leader
            .as_ref()
            .map_or(0, |(_, tx)| tx.receiver_count().saturating_sub(1))
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        if let Some((id, tx)) = self.leader.take() {
            let mut map = lock(&self.store.inner.inflight);
            if map.get(&self.key).is_some_and(|(i, _)| *i == id) {
                map.remove(&self.key);
            }
            drop(map);
            drop(tx);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
