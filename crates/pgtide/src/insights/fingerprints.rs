//! Statement text -> fingerprint, cached so a repeated text costs a hash and a lookup, not a lex.
//!
//! 32 shards by the text's hash, each two generations of a map: lookups hit the young one, or
//! move an entry up from the old one; when the young one is full (256 entries or 256 KiB of
//! text) it becomes the old one and the previous old one is dropped. That is LRU-like at O(1)
//! per operation, with at most 16 MiB of cached text in all. Texts over 8 KiB are fingerprinted
//! every time and never cached (they are rarely the hot, repeated kind).

use std::sync::{Arc, Mutex};

use pgtide_sql::fingerprint::{fingerprint_with_params, stable_hash, Fingerprint};

use super::{lock, shard_of, IdMap, SHARDS};

const ENTRIES_PER_GENERATION: usize = 256;
const BYTES_PER_GENERATION: usize = 256 * 1024;
const MAX_CACHED_TEXT: usize = 8 * 1024;
/// Characters of a fingerprint kept (the rest of a giant statement is cut, with " …").
const MAX_FINGERPRINT_CHARS: usize = 16 * 1024;
/// Rough fixed cost of one entry besides its two strings.
const ENTRY_OVERHEAD: usize = 96;

/// A statement's fingerprint and what insights need from its text.
#[derive(Debug, Clone)]
pub(crate) struct Fp {
    pub id: u64,
    /// Owned, not shared: a simple Query's fingerprint is moved in from its analysis with no
    /// copy; the few keepers (a new stats entry, the N+1 parent) share a copy of their own.
    pub text: String,
    /// Hash of the literals in the text (the parameters of a simple-Query statement).
    pub literals: u64,
    /// Transaction control and session commands (BEGIN, COMMIT, SET, ...): never an N+1 repeat
    /// and never the parent of one.
    pub control: bool,
}

/// First words of transaction control and session commands.
const CONTROL: &[&str] = &[
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "prepare",
    "set",
    "reset",
    "show",
    "discard",
    "deallocate",
    "listen",
    "unlisten",
];

impl Fp {
    fn of(sql: &str) -> Fp {
        let (fp, literals) = fingerprint_with_params(sql);
        Fp::computed(fp, literals)
    }

    /// From a fingerprint already computed (a simple Query's analysis) and its literals' hash.
    pub(crate) fn computed(fp: Fingerprint, literals: u64) -> Fp {
        let first = fp.text.split(' ').next().unwrap_or("");
        let control = first.is_empty() || CONTROL.iter().any(|c| c.eq_ignore_ascii_case(first));
        // The id stays the hash of the whole text; what is kept and shown is bounded.
        let text = match super::truncate_chars(&fp.text, MAX_FINGERPRINT_CHARS) {
            t if t.len() == fp.text.len() => None,
            t => Some(format!("{t} …")),
        };
        let text = text.unwrap_or(fp.text);
        Fp {
            id: fp.id,
            text,
            literals,
            control,
        }
    }
}

struct Slot {
    sql: Box<str>,
    fp: Arc<Fp>,
}

impl Slot {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.sql.len() + self.fp.text.len()
    }
}

#[derive(Default)]
struct Generations {
    young: IdMap<Slot>,
    young_bytes: usize,
    old: IdMap<Slot>,
}

impl Generations {
    fn insert(&mut self, h: u64, slot: Slot) {
        let cost = slot.cost();
        if self.young.len() >= ENTRIES_PER_GENERATION
            || self.young_bytes + cost > BYTES_PER_GENERATION
        {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += cost;
        if let Some(old) = self.young.insert(h, slot) {
            // A concurrent insert of the same text, or a hash collision: replaced.
            self.young_bytes = self.young_bytes.saturating_sub(old.cost());
        }
    }
}

pub(super) struct TextCache {
    shards: Box<[Mutex<Generations>]>,
}

impl TextCache {
    pub(super) fn new() -> TextCache {
        TextCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The fingerprint of `sql`, from the cache when the same text was seen recently. A hash
    /// collision is a miss (the full text is compared), never another statement's fingerprint.
    pub(super) fn get(&self, sql: &str) -> Arc<Fp> {
        if sql.len() > MAX_CACHED_TEXT {
            return Arc::new(Fp::of(sql));
        }
        let h = stable_hash(sql.as_bytes());
        let shard = &self.shards[shard_of(h)];
        {
            let mut g = lock(shard);
            if let Some(slot) = g.young.get(&h) {
                if &*slot.sql == sql {
                    return Arc::clone(&slot.fp);
                }
            } else if let Some(slot) = g.old.remove(&h) {
                if &*slot.sql == sql {
                    let fp = Arc::clone(&slot.fp);
                    g.insert(h, slot);
                    return fp;
                }
            }
        }
        // Lexing happens outside the lock.
        let fp = Arc::new(Fp::of(sql));
        lock(shard).insert(
            h,
            Slot {
                sql: sql.into(),
                fp: Arc::clone(&fp),
            },
        );
        fp
    }

    #[cfg(test)]
    pub(crate) fn cached_texts(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = lock(s);
                g.young.len() + g.old.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_text_returns_the_same_fingerprint() {
        let c = TextCache::new();
        let a = c.get("SELECT * FROM t WHERE id = 1");
        let b = c.get("SELECT * FROM t WHERE id = 1");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a.text, "SELECT * FROM t WHERE id = $1");
        let other = c.get("SELECT * FROM t WHERE id = 2");
        assert_eq!(other.id, a.id);
        assert_ne!(other.literals, a.literals);
        assert!(!a.control);
        assert!(c.get("begin").control && c.get("SET x = 1").control && c.get("").control);
        assert!(c.get("release sp1").control && c.get("/* x */ ;").control);
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = TextCache::new();
        for i in 0..100_000 {
            c.get(&format!("SELECT {i}"));
        }
        assert!(c.cached_texts() <= 2 * SHARDS * ENTRIES_PER_GENERATION);
        let long = format!("SELECT '{}'", "x".repeat(MAX_CACHED_TEXT));
        assert_eq!(&*c.get(&long).text, "SELECT $1");
        let giant = format!("SELECT {} FROM t", vec!["a"; 20_000].join(", "));
        let fp = c.get(&giant);
        assert!(fp.text.ends_with(" …") && fp.text.chars().count() == MAX_FINGERPRINT_CHARS + 2);
        assert_eq!(fp.id, pgtide_sql::fingerprint(&giant).id);
    }
}
