//! N+1 detection: one fingerprint run at least `n_plus_one_min_repeats` times with different
//! parameters by one client, inside one transaction or (outside transactions) within
//! `n_plus_one_window`, usually right after a parent query that produced the values.
//!
//! Each client keeps its own candidate runs in [`ClientPatterns`] (owned by its session, no
//! lock): per fingerprint, the distinct parameter hashes seen (with their times outside a
//! transaction, so that only repeats within the window count). A run is reported once, when it
//! reaches the threshold; while it goes on (same transaction, or repeats no further apart than
//! the window) the report's count, total time and last-seen time are kept up to date, so a run
//! is one report however long it is. Repeats with the same parameters are not N+1 (a poll, a
//! retry) and do not count towards the threshold.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgtide_sql::{tokens, TokenKind};

use super::fingerprints::Fp;
use super::slow::RateLimiter;
use super::{hex_id, lock, nanos, truncate_chars, Clock};
use crate::metrics_names as m;

/// Reports kept for SHOW N_PLUS_ONE.
const RING: usize = 200;
/// Candidate runs a client tracks at once (least recently seen replaced).
const MAX_RUNS: usize = 8;
const LOG_PER_SECOND: u32 = 10;

/// One N+1 pattern: a statement repeated with different parameters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NPlusOne {
    /// Fingerprint of the statement before the repeats.
    pub parent: Option<String>,
    pub repeated: String,
    pub repeated_id: String,
    pub count: u64,
    pub total_ms: f64,
    pub application_name: String,
    pub database: String,
    pub first_seen_unix_ms: u64,
    pub last_seen_unix_ms: u64,
    pub suggestion: String,
}

/// One client's recent statements, for N+1 detection. Owned by the client's session.
#[derive(Debug, Default)]
pub struct ClientPatterns {
    /// This client's metric handles (its database is fixed): looked up once, not per statement.
    pub(super) metrics: Option<super::ClientMetrics>,
    /// The last statement that can be a parent (not transaction control or a session command).
    last: Option<(u64, String)>,
    runs: Vec<Run>,
    /// Whether `runs` belong to a transaction.
    in_transaction: bool,
}

impl ClientPatterns {
    /// Gives back room the client's runs no longer use (at 10,000 idle clients it adds up).
    pub(crate) fn release_idle(&mut self) {
        if self.runs.capacity() > self.runs.len() {
            self.runs.shrink_to_fit();
        }
    }

    pub(super) fn end_transaction(&mut self) {
        if self.in_transaction {
            self.runs.clear();
        }
        self.in_transaction = false;
    }
}

#[derive(Debug)]
struct Run {
    id: u64,
    parent: Option<Arc<str>>,
    /// Distinct parameter hashes seen, oldest first (until reported).
    seen: VecDeque<Sample>,
    last_at: Instant,
    report: Option<Published>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    params: u64,
    ns: u64,
}

#[derive(Debug)]
struct Published {
    seq: u64,
    count: u64,
    total_ns: u64,
}

/// One execution, as N+1 detection sees it.
pub(super) struct Seen<'a> {
    pub fp: &'a Fp,
    pub params: u64,
    pub duration: Duration,
    pub now: Instant,
    pub in_transaction: bool,
    pub database: &'a str,
    pub application_name: &'a str,
}

#[derive(Clone, Copy)]
pub(super) struct Limits {
    /// At least 2.
    pub min_repeats: usize,
    pub window: Duration,
}

pub(super) fn observe(
    reports: &Reports,
    clock: &Clock,
    p: &mut ClientPatterns,
    s: &Seen<'_>,
    limits: Limits,
) {
    if s.fp.control {
        return;
    }
    if p.in_transaction != s.in_transaction {
        p.runs.clear();
        p.in_transaction = s.in_transaction;
    }
    let now = s.now;
    if !s.in_transaction {
        p.runs
            .retain(|r| now.saturating_duration_since(r.last_at) <= limits.window);
    }
    let i = match p.runs.iter().position(|r| r.id == s.fp.id) {
        Some(i) => i,
        None => {
            if p.runs.len() >= MAX_RUNS {
                if let Some(lru) = (0..p.runs.len()).min_by_key(|&i| p.runs[i].last_at) {
                    p.runs.swap_remove(lru);
                }
            }
            let parent = p.last.as_ref().filter(|(id, _)| *id != s.fp.id);
            p.runs.push(Run {
                id: s.fp.id,
                parent: parent.map(|(_, text)| Arc::from(text.as_str())),
                seen: VecDeque::new(),
                last_at: now,
                report: None,
            });
            p.runs.len() - 1
        }
    };
    let run = &mut p.runs[i];
    run.last_at = now;
    let ns = nanos(s.duration);
    let now_ms = clock.unix_ms(now);
    match &mut run.report {
        Some(published) => {
            published.count += 1;
            published.total_ns = published.total_ns.saturating_add(ns);
            reports.update(published, now_ms);
        }
        None => {
            if !s.in_transaction {
                while run
                    .seen
                    .front()
                    .is_some_and(|f| now.saturating_duration_since(f.at) > limits.window)
                {
                    run.seen.pop_front();
                }
            }
            if !run.seen.iter().any(|x| x.params == s.params) {
                run.seen.push_back(Sample {
                    at: now,
                    params: s.params,
                    ns,
                });
            }
            if run.seen.len() >= limits.min_repeats {
                let first_at = run.seen.front().map_or(now, |f| f.at);
                let count = run.seen.len() as u64;
                let total_ns = run.seen.iter().map(|x| x.ns).sum::<u64>();
                let parent = run.parent.as_deref();
                let report = NPlusOne {
                    parent: parent.map(str::to_owned),
                    repeated: s.fp.text.to_string(),
                    repeated_id: hex_id(s.fp.id),
                    count,
                    total_ms: total_ns as f64 / 1e6,
                    application_name: s.application_name.to_owned(),
                    database: s.database.to_owned(),
                    first_seen_unix_ms: clock.unix_ms(first_at),
                    last_seen_unix_ms: now_ms,
                    suggestion: suggestion(&s.fp.text, parent),
                };
                let seq = reports.publish(report, now);
                run.seen = VecDeque::new();
                run.report = Some(Published {
                    seq,
                    count,
                    total_ns,
                });
            }
        }
    }
    // The text is copied into the buffer kept for it (no allocation once it is large enough):
    // it becomes shared only when a run takes it as its parent.
    match &mut p.last {
        Some((id, _)) if *id == s.fp.id => {}
        Some((id, text)) => {
            *id = s.fp.id;
            text.clear();
            text.push_str(&s.fp.text);
        }
        None => p.last = Some((s.fp.id, s.fp.text.clone())),
    }
}

/// A suggested rewrite: for a lookup by `col = $n` (or `col IN ($n)`), the same statement with
/// `col = ANY($n)`, run once with an array; otherwise a JOIN with the parent.
fn suggestion(repeated: &str, parent: Option<&str>) -> String {
    if let Some((column, rewritten)) = any_rewrite(repeated) {
        let join = match parent {
            Some(_) => " (or JOIN it into the parent query)",
            None => "",
        };
        return format!(
            "fetch all rows in one statement with an array of the {column} values: \
             {rewritten}{join}"
        );
    }
    match parent {
        Some(parent) => format!(
            "fold the repeated statement into the parent query with a JOIN (one round trip \
             instead of one per row): {parent}"
        ),
        None => "run the repeated statement once for all values (a JOIN, or = ANY($1) with an \
                 array parameter) instead of once per value"
            .to_owned(),
    }
}

/// The first `col = $n` or `col IN ($n)` after WHERE (outside parentheses): the column as
/// written and the statement with that comparison turned into `col = ANY($n)`.
fn any_rewrite(fp: &str) -> Option<(String, String)> {
    let toks: Vec<_> = tokens(fp).collect();
    let where_at = toks.iter().position(|t| t.is_kw("where"))?;
    let mut depth = 0i32;
    let mut i = where_at + 1;
    while i < toks.len() {
        let t = toks[i];
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth -= 1,
            _ => {}
        }
        if matches!(t.kind, TokenKind::Ident | TokenKind::QuotedIdent) && depth == 0 {
            // A qualified name ends at the last identifier: `o.user_id`.
            let start = i;
            let mut end = i;
            while toks.get(end + 1).is_some_and(|d| d.kind == TokenKind::Dot)
                && toks
                    .get(end + 2)
                    .is_some_and(|n| matches!(n.kind, TokenKind::Ident | TokenKind::QuotedIdent))
            {
                end += 2;
            }
            let column = &fp[toks[start].start..toks[end].end()];
            let rest = &toks[end + 1..];
            let eq_param = rest.first().is_some_and(|o| o.text == "=")
                && rest.get(1).is_some_and(|p| p.kind == TokenKind::Param)
                && !rest.get(2).is_some_and(|c| c.kind == TokenKind::Cast);
            if eq_param {
                let param = rest[1];
                let rewritten = format!(
                    "{}ANY({}){}",
                    &fp[..param.start],
                    param.text,
                    &fp[param.end()..]
                );
                return Some((column.to_owned(), rewritten));
            }
            let in_param = rest.first().is_some_and(|k| k.is_kw("in"))
                && rest.get(1).is_some_and(|o| o.kind == TokenKind::LParen)
                && rest.get(2).is_some_and(|p| p.kind == TokenKind::Param)
                && rest.get(3).is_some_and(|c| c.kind == TokenKind::RParen);
            if in_param {
                let rewritten = format!(
                    "{}= ANY({}){}",
                    &fp[..rest[0].start],
                    rest[2].text,
                    &fp[rest[3].end()..]
                );
                return Some((column.to_owned(), rewritten));
            }
            i = end;
        }
        i += 1;
    }
    None
}

/// The reports ring, shared by all sessions.
pub(super) struct Reports {
    ring: Mutex<VecDeque<(u64, NPlusOne)>>,
    seq: AtomicU64,
    limiter: Mutex<RateLimiter>,
}

impl Reports {
    pub(super) fn new() -> Reports {
        Reports {
            ring: Mutex::new(VecDeque::with_capacity(RING)),
            seq: AtomicU64::new(0),
            limiter: Mutex::new(RateLimiter::new(LOG_PER_SECOND)),
        }
    }

    fn publish(&self, report: NPlusOne, now: Instant) -> u64 {
        metrics::counter!(m::N_PLUS_ONE_TOTAL).increment(1);
        let admitted = lock(&self.limiter).admit(now);
        if let Some(suppressed) = admitted {
            tracing::warn!(
                repeated = truncate_chars(&report.repeated, 2000),
                repeated_id = %report.repeated_id,
                parent = report.parent.as_deref().map(|p| truncate_chars(p, 2000)),
                count = report.count,
                total_ms = report.total_ms,
                database = %report.database,
                application_name = %report.application_name,
                suppressed,
                "N+1 query pattern"
            );
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut ring = lock(&self.ring);
        if ring.len() >= RING {
            ring.pop_back();
        }
        ring.push_front((seq, report));
        seq
    }

    /// A reported run went on: its report's numbers follow (if it is still in the ring).
    fn update(&self, p: &Published, now_ms: u64) {
        let mut ring = lock(&self.ring);
        if let Some((_, r)) = ring.iter_mut().find(|(seq, _)| *seq == p.seq) {
            r.count = p.count;
            r.total_ms = p.total_ns as f64 / 1e6;
            r.last_seen_unix_ms = now_ms;
        }
    }

    pub(super) fn list(&self) -> Vec<NPlusOne> {
        lock(&self.ring).iter().map(|(_, r)| r.clone()).collect()
    }

    pub(super) fn clear(&self) {
        lock(&self.ring).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_column_get_an_any_rewrite() {
        let (col, sql) = any_rewrite("SELECT * FROM orders WHERE user_id = $1").unwrap_or_default();
        assert_eq!(col, "user_id");
        assert_eq!(sql, "SELECT * FROM orders WHERE user_id = ANY($1)");
        let (col, sql) = any_rewrite(
            "SELECT o.id FROM orders o WHERE o.deleted = FALSE AND o.\"UserId\" = $1 LIMIT $2",
        )
        .unwrap_or_default();
        assert_eq!(col, "o.\"UserId\"");
        assert_eq!(
            sql,
            "SELECT o.id FROM orders o WHERE o.deleted = FALSE AND o.\"UserId\" = ANY($1) LIMIT $2"
        );
        let (col, sql) = any_rewrite("SELECT * FROM t WHERE id IN ($1)").unwrap_or_default();
        assert_eq!(
            (col.as_str(), sql.as_str()),
            ("id", "SELECT * FROM t WHERE id = ANY($1)")
        );
        assert_eq!(any_rewrite("SELECT * FROM t WHERE id > $1"), None);
        assert_eq!(
            any_rewrite("SELECT * FROM t WHERE (a = $1 OR b = $2)"),
            None
        );
        assert_eq!(any_rewrite("SELECT * FROM t"), None);
        assert_eq!(any_rewrite("SELECT * FROM t WHERE id = $1::int"), None);
    }

    #[test]
    fn suggestions_name_the_column_or_the_parent() {
        let s = suggestion(
            "SELECT * FROM items WHERE order_id = $1",
            Some("SELECT id FROM orders"),
        );
        assert!(s.contains("order_id values"), "{s}");
        assert!(s.contains("WHERE order_id = ANY($1)"), "{s}");
        assert!(s.contains("JOIN"), "{s}");
        let s = suggestion(
            "SELECT count(*) FROM items WHERE price > $1",
            Some("SELECT id FROM orders"),
        );
        assert!(
            s.contains("JOIN") && s.contains("SELECT id FROM orders"),
            "{s}"
        );
        assert!(suggestion("UPDATE t SET a = $1", None).contains("ANY($1)"));
    }
}
