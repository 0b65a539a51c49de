//! [`Classifier`]: `classify_uncached` behind a bounded cache keyed by the statement text.
//!
//! 32 shards, each a `Mutex` over a map from a seeded 64-bit hash to the entry; a hit hashes the
//! text, locks one shard, compares the full text (a hash collision is a miss, never someone
//! else's classification) and clones an `Arc`. Eviction is CLOCK (second chance) per shard.
//! Bounds: 10,240 entries and 32 MiB of text and names in all; texts over 32 KiB are classified
//! every time and never stored.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{classify_uncached, functions::normalize_extra, Classification};

const SHARDS: usize = 32;
const ENTRIES_PER_SHARD: usize = 320;
const BYTES_PER_SHARD: usize = 1 << 20;
/// Longest text kept in the cache.
const MAX_CACHED_TEXT: usize = 32 * 1024;
/// Rough fixed cost of one entry besides its strings (slot, map and ring bookkeeping, Arc).
const ENTRY_OVERHEAD: usize = 160;

/// Classifies statements, caching results by text. Cheap to share (`&self` everywhere).
pub struct Classifier {
    extra: Vec<String>,
    seed: u64,
    shards: Box<[Mutex<Shard>]>,
}

struct Slot {
    text: Box<str>,
    class: Arc<Classification>,
    referenced: bool,
    cost: usize,
}

/// The map's keys are already hashes: use them as they are.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
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

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Slot, BuildHasherDefault<IdentityHasher>>,
    /// Keys in insertion order for the CLOCK hand.
    ring: Vec<u64>,
    hand: usize,
    bytes: usize,
}

impl Shard {
    fn insert(&mut self, key: u64, text: &str, class: Arc<Classification>) {
        let cost = ENTRY_OVERHEAD
            + text.len()
            + class
                .reads
                .iter()
                .chain(&class.writes)
                .map(String::len)
                .sum::<usize>();
        if let Some(old) = self.map.remove(&key) {
            // Same hash: a concurrent insert of the same text, or a collision. Replace.
            self.bytes -= old.cost;
        } else {
            self.ring.push(key);
        }
        while self.map.len() >= ENTRIES_PER_SHARD || self.bytes + cost > BYTES_PER_SHARD {
            if !self.evict_one(key) {
                break;
            }
        }
        self.bytes += cost;
        self.map.insert(
            key,
            Slot {
                text: text.into(),
                class,
                referenced: false,
                cost,
            },
        );
    }

    /// Evicts one entry (not `keep`), giving referenced entries a second chance.
    fn evict_one(&mut self, keep: u64) -> bool {
        for _ in 0..2 * self.ring.len() + 1 {
            if self.ring.is_empty() {
                return false;
            }
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let key = self.ring[self.hand];
            if key == keep {
                self.hand += 1;
                continue;
            }
            match self.map.get_mut(&key) {
                Some(slot) if slot.referenced => {
                    slot.referenced = false;
                    self.hand += 1;
                }
                Some(_) => {
                    if let Some(old) = self.map.remove(&key) {
                        self.bytes -= old.cost;
                    }
                    self.ring.swap_remove(self.hand);
                    return true;
                }
                None => {
                    self.ring.swap_remove(self.hand);
                }
            }
        }
        false
    }
}

impl Classifier {
    /// `extra_write_functions`: lower-case names, optionally schema-qualified
    /// ("audit.log_event"), from config `[routing] write_functions`.
    pub fn new(extra_write_functions: &[String]) -> Classifier {
        Classifier {
            extra: normalize_extra(extra_write_functions),
            seed: RandomState::new().hash_one(0x7069_7467_7469_6465_u64),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// Everything pgtide needs from a simple-Query string, from one pass of the lexer (see
    /// [`crate::Analysis`]). A classification the lexical layer decides skips the cache (a text
    /// never seen before costs no hash, lock or entry); one that needs sqlparser comes from it.
    pub fn analyze(&self, sql: &str) -> crate::Analysis {
        self.analyze_with(sql, crate::ClassifyMode::Yes)
    }

    /// [`analyze`](Self::analyze), classified as `classify` says (routing and the result
    /// cache need the classification, write bookkeeping only for what may write; without them
    /// it is work for nothing).
    pub fn analyze_with(&self, sql: &str, classify: crate::ClassifyMode) -> crate::Analysis {
        crate::analysis::analyze_with(sql, &self.extra, classify, |s| self.classify(s))
    }

    /// Classifies a simple-Query string (possibly several statements) or one Parse's query
    /// text, from the cache when this exact text was seen before.
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        self.classify_hashed(sql, hash(self.seed, sql.as_bytes()))
    }

    fn classify_hashed(&self, sql: &str, h: u64) -> Arc<Classification> {
        let shard = &self.shards[shard_of(h)];
        if let Some(slot) = lock(shard).map.get_mut(&h) {
            if *slot.text == *sql {
                slot.referenced = true;
                return Arc::clone(&slot.class);
            }
        }
        let class = Arc::new(classify_uncached(sql, &self.extra));
        if sql.len() <= MAX_CACHED_TEXT {
            lock(shard).insert(h, sql, Arc::clone(&class));
        }
        class
    }

    /// Number of cached entries (for tests and stats).
    pub fn cached_entries(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// The configured extra write functions, normalised.
    pub fn extra_write_functions(&self) -> &[String] {
        &self.extra
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("extra_write_functions", &self.extra)
            .field("cached_entries", &self.cached_entries())
            .finish()
    }
}

/// Nothing panics while a shard is locked, but never let a poisoned lock take classification
/// down with it.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shard from bits the map does not lean on (hashbrown uses the low bits for the bucket and
/// the top 7 for its tags).
fn shard_of(h: u64) -> usize {
    ((h >> 32) as usize) % SHARDS
}

/// A fast seeded hash (FxHash-style mixing, 8 bytes per step, with a final avalanche).
fn hash(seed: u64, b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::StatementKind;

    #[test]
    fn shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Classifier>();
        let c = Arc::new(Classifier::new(&[]));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let sql = format!("SELECT * FROM t{} WHERE id = $1", i % 50 + t);
                        assert_eq!(c.classify(&sql).kind, StatementKind::Read);
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(c.cached_entries(), 53);
    }

    #[test]
    fn a_hash_collision_is_a_miss_not_a_wrong_answer() {
        let c = Classifier::new(&[]);
        let w = c.classify_hashed("DELETE FROM t", 42);
        assert_eq!(w.kind, StatementKind::Write);
        let r = c.classify_hashed("SELECT 1", 42);
        assert_eq!(r.kind, StatementKind::Read);
        let w2 = c.classify_hashed("DELETE FROM t", 42);
        assert_eq!(w2.kind, StatementKind::Write);
        assert_eq!(c.cached_entries(), 1);
    }

    #[test]
    fn hits_share_the_arc() {
        let c = Classifier::new(&[]);
        let a = c.classify("SELECT * FROM users WHERE id = $1");
        let b = c.classify("SELECT * FROM users WHERE id = $1");
        assert!(Arc::ptr_eq(&a, &b));
        assert_ne!(
            *c.classify("SELECT * FROM users WHERE id = $1 "),
            Classification {
                kind: StatementKind::Write,
                ..(*a).clone()
            }
        );
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let c = Classifier::new(&[]);
        for i in 0..30_000 {
            let _ = c.classify(&format!("SELECT {i} FROM t{i}"));
        }
        assert!(c.cached_entries() <= SHARDS * ENTRIES_PER_SHARD);
        assert!(c.cached_entries() > SHARDS * ENTRIES_PER_SHARD / 2);
        let big = format!("SELECT 1 /* {} */", "x".repeat(30_000));
        for i in 0..200 {
            let _ = c.classify(&format!("{big} -- {i}"));
        }
        let bytes: usize = c.shards.iter().map(|s| lock(s).bytes).sum();
        assert!(bytes <= SHARDS * BYTES_PER_SHARD, "{bytes}");
        let huge = "x".repeat(MAX_CACHED_TEXT + 1);
        let before = c.cached_entries();
        let _ = c.classify(&huge);
        assert!(c.cached_entries() <= before);
    }

    #[test]
    fn hot_entries_survive_a_scan() {
        let c = Classifier::new(&[]);
        let hot = "SELECT * FROM hot WHERE id = $1";
        let first = c.classify(hot);
        for i in 0..20_000 {
            let _ = c.classify(hot);
            let _ = c.classify(&format!("SELECT {i}"));
        }
        assert!(Arc::ptr_eq(&first, &c.classify(hot)));
    }

    #[test]
    fn extra_functions_are_normalised() {
        let c = Classifier::new(&[" Audit.Log_Event ".to_string(), String::new()]);
        assert_eq!(c.extra_write_functions(), ["audit.log_event".to_string()]);
        assert_eq!(
            c.classify("SELECT audit.log_event(1)").kind,
            StatementKind::Write
        );
        assert!(format!("{c:?}").contains("audit.log_event"));
    }
}
