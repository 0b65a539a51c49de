//! The table -> entries index and the invalidation generations, behind one lock in the store.
//!
//! Every stored entry has a unique id and is listed under the relation part (`users` for
//! `public.users`) of each table it read. Invalidating a table looks at the entries listed
//! under its relation part only and keeps those whose tables overlap it (schema-aware, see
//! [`TableName::overlaps`]): the cost is proportional to the entries that read a table of that
//! name, not to the cache size (moka's `invalidate_entries_if` would scan every entry).
//!
//! Generations keep a result computed before a write from being stored after it: a fill
//! remembers the global generation when its guard was made, each invalidation takes a new
//! generation and records it for the relation part it names; a fill whose tables were
//! invalidated after its snapshot (or that predates a flush, the `floor`) is refused.

use std::collections::HashMap;
use std::sync::Arc;

use super::names::TableName;
use super::store::Key;

/// Past this many distinct invalidated relation names, their generations collapse into the
/// floor (every fill in flight is refused once): bounded memory whatever clients write to.
const MAX_TRACKED_NAMES: usize = 10_000;

struct Ref {
    key: Arc<Key>,
    names: Arc<[TableName]>,
}

#[derive(Default)]
pub(super) struct Index {
    /// Relation part -> entry id -> the entry's key and tables.
    by_name: HashMap<String, HashMap<u64, Ref>>,
    /// Relation part -> generation of its last invalidation.
    table_gen: HashMap<String, u64>,
    /// Fills whose snapshot is older than this are refused (set by flushes).
    floor: u64,
}

impl Index {
    pub(super) fn add(&mut self, id: u64, key: &Arc<Key>, names: &Arc<[TableName]>) {
        for n in names.iter() {
            self.by_name.entry(n.name.clone()).or_default().insert(
                id,
                Ref {
                    key: key.clone(),
                    names: names.clone(),
                },
            );
        }
    }

    /// Forgets entry `id` (it left the cache).
    pub(super) fn remove(&mut self, id: u64, names: &[TableName]) {
        for n in names {
            if let Some(ids) = self.by_name.get_mut(&n.name) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_name.remove(&n.name);
                }
            }
        }
    }

    /// Removes and returns the entries that read a table overlapping `table`.
    pub(super) fn take_matching(&mut self, table: &TableName) -> Vec<Arc<Key>> {
        let Some(ids) = self.by_name.get(&table.name) else {
            return Vec::new();
        };
        let hits: Vec<(u64, Arc<Key>, Arc<[TableName]>)> = ids
            .iter()
            .filter(|(_, r)| r.names.iter().any(|n| n.overlaps(table)))
            .map(|(id, r)| (*id, r.key.clone(), r.names.clone()))
            .collect();
        hits.into_iter()
            .map(|(id, key, names)| {
                self.remove(id, &names);
                key
            })
            .collect()
    }

    /// Records that relation part `name` was invalidated at generation `gen`.
    pub(super) fn note_invalidation(&mut self, name: &str, gen: u64) {
        if self.table_gen.len() >= MAX_TRACKED_NAMES && !self.table_gen.contains_key(name) {
            self.table_gen.clear();
            self.floor = gen;
            return;
        }
        self.table_gen.insert(name.to_string(), gen);
    }

    /// Was any of `names` invalidated (or the whole cache flushed) after `snapshot`?
    pub(super) fn stale(&self, names: &[TableName], snapshot: u64) -> bool {
        self.floor > snapshot
            || names
                .iter()
                .any(|n| self.table_gen.get(&n.name).is_some_and(|&g| g > snapshot))
    }

    /// Forgets every entry; fills older than `gen` are refused from now on.
    pub(super) fn clear(&mut self, gen: u64) {
        self.by_name.clear();
        self.table_gen.clear();
        self.floor = gen;
    }

    /// Entry references held (one per entry and relation part), for tests and checks.
    pub(super) fn refs(&self) -> usize {
        self.by_name.values().map(HashMap::len).sum()
    }
}
