//! How far a replica must have replayed before its reads of a table may be cached.
//!
//! A write through pgtide drops the entries of its tables at commit, and a fill that started
//! before that is refused (the store's generations). That is enough for fills from the
//! primary: a read that starts after the commit sees it. A replica may still be behind the
//! commit, so a fill from a replica is stored only when the replica's replay position (as the
//! health checks saw it before the read started, a lower bound) is at or past the primary's
//! WAL position after the last write to each table it read: the table's *floor*.
//!
//! Floors come from the invalidation channel: the instance that saw the commit publishes the
//! tables with `pg_current_wal_insert_lsn()` taken by the publishing statement on the primary,
//! after the commit; other instances receive that position with the message. Between the
//! commit and the publisher's confirmation the table's floor is *pending* and no replica fill
//! of it is stored. Without a listener, nothing confirms: replica fills are never stored (the
//! caller checks [`super::ResultCache::replica_fills_from`]).
//!
//! Floors only ever rise. Past [`MAX_TRACKED`] names they collapse into one floor for all.

use std::collections::HashMap;
use std::sync::Mutex;

use super::names::TableName;

const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Default, Clone, Copy)]
struct Floor {
    lsn: u64,
    /// Sequence number of the last local invalidation not yet confirmed (0: none).
    pending: u64,
}

impl Floor {
    fn blocks(&self, replayed: u64) -> bool {
        self.pending != 0 || self.lsn > replayed
    }

    fn confirm(&mut self, seq: u64, lsn: u64) {
        self.lsn = self.lsn.max(lsn);
        if self.pending <= seq {
            self.pending = 0;
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    seq: u64,
    /// By relation part (conservative across schemas, like invalidation).
    tables: HashMap<String, Floor>,
    /// Applies to every table (a flush, or names collapsed past the bound).
    all: Floor,
}

#[derive(Debug, Default)]
pub struct Floors {
    inner: Mutex<Inner>,
}

impl Floors {
    /// A local invalidation (at commit): the tables' floors are pending until
    /// [`Floors::confirm`] with the returned sequence number.
    pub fn mark_local(&self, tables: &[String], all: bool) -> u64 {
        let mut i = lock(&self.inner);
        i.seq += 1;
        let seq = i.seq;
        if all {
            i.all.pending = seq;
        }
        for n in tables.iter().filter_map(|t| TableName::parse(t)) {
            i.tables.entry(n.name).or_default().pending = seq;
        }
        collapse(&mut i);
        seq
    }

    /// The publisher ran on the primary at `lsn`, after every local invalidation up to `seq`
    /// of these tables (or of everything).
    pub fn confirm(&self, tables: &[String], all: bool, seq: u64, lsn: u64) {
        let mut i = lock(&self.inner);
        if all {
            // A flush message stands for every table queued before it.
            i.all.confirm(seq, lsn);
            for f in i.tables.values_mut() {
                f.confirm(seq, lsn);
            }
            return;
        }
        for n in tables.iter().filter_map(|t| TableName::parse(t)) {
            i.tables.entry(n.name).or_default().confirm(seq, lsn);
        }
        collapse(&mut i);
    }

    /// Another instance's write, published at `lsn`.
    pub fn remote(&self, tables: &[String], all: bool, lsn: u64) {
        let mut i = lock(&self.inner);
        if all {
            i.all.lsn = i.all.lsn.max(lsn);
            return;
        }
        for n in tables.iter().filter_map(|t| TableName::parse(t)) {
            let f = i.tables.entry(n.name).or_default();
            f.lsn = f.lsn.max(lsn);
        }
        collapse(&mut i);
    }

    /// May a replica that had replayed `replayed` serve a cached read of `names`?
    pub fn blocks(&self, names: &[TableName], replayed: u64) -> bool {
        let i = lock(&self.inner);
        i.all.blocks(replayed)
            || names
                .iter()
                .any(|n| i.tables.get(&n.name).is_some_and(|f| f.blocks(replayed)))
    }
}

fn collapse(i: &mut Inner) {
    if i.tables.len() <= MAX_TRACKED {
        return;
    }
    for (_, f) in i.tables.drain() {
        i.all.lsn = i.all.lsn.max(f.lsn);
        i.all.pending = i.all.pending.max(f.pending);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &[&str]) -> Vec<TableName> {
        t.iter().filter_map(|t| TableName::parse(t)).collect()
    }

    fn strings(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pending_until_confirmed_then_by_position() {
        let f = Floors::default();
        assert!(!f.blocks(&names(&["t"]), 0));
        let s1 = f.mark_local(&strings(&["public.t"]), false);
        assert!(f.blocks(&names(&["t"]), u64::MAX - 1), "pending");
        assert!(!f.blocks(&names(&["u"]), 0), "another table");
        let s2 = f.mark_local(&strings(&["t"]), false);
        f.confirm(&strings(&["t"]), false, s1, 100);
        assert!(
            f.blocks(&names(&["t"]), 1_000),
            "a later write is still pending"
        );
        f.confirm(&strings(&["t"]), false, s2, 200);
        assert!(f.blocks(&names(&["t"]), 199));
        assert!(!f.blocks(&names(&["t"]), 200));
        f.remote(&strings(&["u"]), false, 300);
        assert!(f.blocks(&names(&["x", "u"]), 299));
        let s3 = f.mark_local(&[], true);
        assert!(f.blocks(&names(&["x"]), 1_000));
        f.confirm(&[], true, s3, 400);
        assert!(f.blocks(&names(&["x"]), 399));
        assert!(!f.blocks(&names(&["x"]), 400));
    }
}
