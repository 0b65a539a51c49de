//! Which statements may be cached, and for how long: the `[[cache.rules]]` compiled once per
//! config, plus the per-statement hints `/* pgtide:cache */` and `/* pgtide:no-cache */`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgtide_config::CacheConfig;
use pgtide_sql::{Classification, Lexer, StatementKind, TokenKind};

use super::names::TableName;

/// A per-statement cache hint found in a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hint {
    #[default]
    None,
    /// `/* pgtide:cache */`: cache this read for `default_ttl` even without a matching rule.
    Cache,
    /// `/* pgtide:no-cache */` (also `nocache`, `no_cache`): never cache this statement.
    NoCache,
}

impl Hint {
    /// The cache hint of `sql`: comments only (not string constants), ASCII case ignored,
    /// blanks around the colon allowed, other words in the same comment allowed. `no-cache`
    /// wins over `cache` when both appear.
    pub fn of(sql: &str) -> Hint {
        if !contains_ci(sql, b"pgtide") {
            return Hint::None;
        }
        let mut found = Hint::None;
        for t in Lexer::new(sql).filter(|t| t.kind == TokenKind::Comment) {
            match in_comment(t.text) {
                Hint::NoCache => return Hint::NoCache,
                Hint::Cache => found = Hint::Cache,
                Hint::None => {}
            }
        }
        found
    }
}

fn contains_ci(hay: &str, needle: &[u8]) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The strongest `pgtide : cache|no-cache` in one comment's text.
fn in_comment(text: &str) -> Hint {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let skip_ws = |mut i: usize| {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    let mut found = Hint::None;
    let mut i = 0;
    while i + 6 <= b.len() {
        let standalone = i == 0 || !word(b[i - 1]);
        if !standalone || !b[i..i + 6].eq_ignore_ascii_case(b"pgtide") {
            i += 1;
            continue;
        }
        i += 6;
        let mut j = skip_ws(i);
        if b.get(j) != Some(&b':') {
            continue;
        }
        j = skip_ws(j + 1);
        let end = j + b[j..].iter().take_while(|&&c| word(c)).count();
        let w = &b[j..end];
        if [&b"no-cache"[..], b"nocache", b"no_cache"]
            .iter()
            .any(|n| w.eq_ignore_ascii_case(n))
        {
            return Hint::NoCache;
        }
        if w.eq_ignore_ascii_case(b"cache") {
            found = Hint::Cache;
        }
        i = end.max(i);
    }
    found
}

/// Counters of one rule (one row of SHOW CACHE). Entries and bytes go up when an entry is
/// stored and down when it leaves the cache, whatever the reason.
#[derive(Debug, Default)]
pub(crate) struct RuleCounters {
    pub entries: AtomicI64,
    pub bytes: AtomicI64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl RuleCounters {
    pub(crate) fn stored(&self, weight: u32, sign: i64) {
        self.entries.fetch_add(sign, Ordering::Relaxed);
        self.bytes
            .fetch_add(sign * i64::from(weight), Ordering::Relaxed);
    }
}

/// Why and how long a statement may be cached: the answer of [`Rules::policy`], handed back to
/// [`get_or_wait`](super::ResultCache::get_or_wait).
#[derive(Debug, Clone)]
pub struct Policy {
    pub ttl: Duration,
    /// Index of the matching rule in `[[cache.rules]]`; `rules.len()` for the
    /// `/* pgtide:cache */` hint.
    pub rule: usize,
    /// The relations the statement reads (from its classification): an entry is dropped when
    /// any of them is written.
    pub tables: Vec<String>,
    pub(crate) counters: Arc<RuleCounters>,
}

/// The rules of one config.
pub(crate) struct Rules {
    enabled: bool,
    default_ttl: Duration,
    rules: Vec<Rule>,
    /// Fingerprint id -> index of the first `query` rule with that fingerprint.
    by_fingerprint: HashMap<u64, usize>,
    /// Statements admitted by the `/* pgtide:cache */` hint alone.
    hint: Arc<RuleCounters>,
}

struct Rule {
    /// What SHOW CACHE prints: `query: <fingerprint>` or `tables: a, b`.
    label: String,
    ttl: Duration,
    /// The rule's tables; None for a `query` rule.
    tables: Option<Vec<TableName>>,
    counters: Arc<RuleCounters>,
}

/// One row of SHOW CACHE.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStats {
    pub rule: String,
    pub ttl: Duration,
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses), 0 when there were none.
    pub hit_rate: f64,
}

impl Rules {
    /// Whether any `[[cache.rules]]` entry exists.
    pub(crate) fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    pub(crate) fn new(config: &CacheConfig) -> Rules {
        let mut by_fingerprint = HashMap::new();
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, r) in config.rules.iter().enumerate() {
            let ttl = r.ttl_or(config.default_ttl);
            let (label, tables) = match (&r.query, &r.tables) {
                (Some(q), _) => {
                    let fp = pgtide_sql::fingerprint(q);
                    by_fingerprint.entry(fp.id).or_insert(i);
                    (format!("query: {}", fp.text), None)
                }
                (None, Some(t)) => {
                    let names: Vec<TableName> =
                        t.iter().filter_map(|n| TableName::parse(n)).collect();
                    (format!("tables: {}", t.join(", ")), Some(names))
                }
                // `validate` rejects a rule with neither; it never matches.
                (None, None) => ("(empty rule)".to_string(), Some(Vec::new())),
            };
            rules.push(Rule {
                label,
                ttl,
                tables,
                counters: Arc::default(),
            });
        }
        Rules {
            enabled: config.enabled,
            default_ttl: config.default_ttl,
            rules,
            by_fingerprint,
            hint: Arc::default(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// May this statement be cached, and for how long? None unless: the cache is enabled, the
    /// statement is one certain read (kind Read: no locking clause, no side effect) without
    /// volatile functions, it has no `no-cache` hint, and a rule matches (the first in file
    /// order) or it has the `cache` hint (then `default_ttl`). A `query` rule matches by
    /// fingerprint id; a `tables` rule matches a read that reads at least one relation and
    /// only relations in the rule's set (see [`TableName::covers`]).
    pub(crate) fn policy(
        &self,
        fingerprint_id: u64,
        c: &Classification,
        hint: Hint,
    ) -> Option<Policy> {
        if !self.enabled
            || c.kind != StatementKind::Read
            || c.volatile
            || c.statements != 1
            || hint == Hint::NoCache
        {
            return None;
        }
        let by_fp = self.by_fingerprint.get(&fingerprint_id).copied();
        let by_tables = || {
            if !self.rules.iter().any(|r| r.tables.is_some()) {
                return None;
            }
            let reads: Vec<TableName> =
                c.reads.iter().filter_map(|r| TableName::parse(r)).collect();
            if reads.is_empty() || reads.len() != c.reads.len() {
                return None;
            }
            self.rules.iter().position(|rule| {
                rule.tables.as_ref().is_some_and(|set| {
                    reads
                        .iter()
                        .all(|read| set.iter().any(|name| name.covers(read)))
                })
            })
        };
        // The first matching rule in file order: a table rule before the fingerprint rule wins.
        let table_limit = by_fp.unwrap_or(self.rules.len());
        let found = match by_tables() {
            Some(t) if t < table_limit => Some(t),
            _ => by_fp,
        };
        let (rule, ttl, counters) = match found {
            Some(i) => (i, self.rules[i].ttl, self.rules[i].counters.clone()),
            None if hint == Hint::Cache => (self.rules.len(), self.default_ttl, self.hint.clone()),
            None => return None,
        };
        Some(Policy {
            ttl,
            rule,
            tables: c.reads.clone(),
            counters,
        })
    }

    /// One row per rule in file order, then one for the `cache` hint.
    pub(crate) fn stats(&self) -> Vec<RuleStats> {
        let rows = self
            .rules
            .iter()
            .map(|r| (r.label.as_str(), r.ttl, &r.counters))
            .chain(std::iter::once((
                "hint: /* pgtide:cache */",
                self.default_ttl,
                &self.hint,
            )));
        rows.map(|(label, ttl, c)| {
            let hits = c.hits.load(Ordering::Relaxed);
            let misses = c.misses.load(Ordering::Relaxed);
            RuleStats {
                rule: label.to_string(),
                ttl,
                entries: c.entries.load(Ordering::Relaxed).max(0) as u64,
                bytes: c.bytes.load(Ordering::Relaxed).max(0) as u64,
                hits,
                misses,
                hit_rate: rate(hits, misses),
            }
        })
        .collect()
    }
}

pub(crate) fn rate(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
