//! Views and the tables under them, from the catalog, so an entry that read a view is dropped
//! by a write to any of its base tables (and a write to an updatable view drops entries that
//! read its base tables).
//!
//! One graph per database, loaded on first use through a backend connection of its own
//! (pg_rewrite + pg_depend, followed recursively for views on views), and loaded again after
//! DDL seen through pgtide, or when a read names a relation the graph does not know (at most
//! once a second). If the lookup fails, or a view depends on a user function (which may read
//! anything), reads of it are not cached at all (logged): a miss is cheap, a stale hit is not.
//! DDL made outside pgtide that redefines an existing view is seen only at the next reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::upstream::conn::{BackendConn, BackendTarget};

use super::names::TableName;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Reloads for names the graph does not know, and retries after a failure, at most this often.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Every relation but TOAST and temporary ones (its quoted `schema.name` and kind; system
/// catalogs too, so a rule on them does not look unknown), and for views and materialized
/// views their base relations (transitively) and whether they call a user function.
const GRAPH_SQL: &str = "WITH RECURSIVE edges AS (
  SELECT DISTINCT r.ev_class AS v, d.refobjid AS ref, d.refclassid AS refclass
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
  WHERE d.refobjid <> r.ev_class
), closure AS (
  SELECT v, ref, refclass FROM edges
  UNION
  SELECT c.v, e.ref, e.refclass FROM closure c
  JOIN edges e ON e.v = c.ref AND c.refclass = 'pg_catalog.pg_class'::regclass
)
SELECT coalesce(json_agg(json_build_array(
  quote_ident(n.nspname) || '.' || quote_ident(c.relname),
  c.relkind::text,
  (SELECT coalesce(json_agg(DISTINCT quote_ident(bn.nspname) || '.' || quote_ident(b.relname)), '[]')
     FROM closure x
     JOIN pg_catalog.pg_class b ON x.refclass = 'pg_catalog.pg_class'::regclass AND b.oid = x.ref
     JOIN pg_catalog.pg_namespace bn ON bn.oid = b.relnamespace
    WHERE x.v = c.oid AND b.relkind IN ('r', 'p', 'v', 'm', 'f')),
  EXISTS (SELECT 1 FROM closure x
           WHERE x.v = c.oid AND x.refclass = 'pg_catalog.pg_proc'::regclass AND x.ref >= 16384)
)), '[]')::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// One relation of the graph.
#[derive(Debug, Clone)]
struct Relation {
    name: TableName,
    /// Base relations (quoted, qualified) for a view; None when it calls a user function.
    bases: Option<Vec<String>>,
}

/// The relations of one database.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// Relation part -> relations of that name in any schema.
    by_name: HashMap<String, Vec<Relation>>,
}

impl Graph {
    /// Parses [`GRAPH_SQL`]'s JSON.
    fn from_json(text: &str) -> Result<Graph, String> {
        type Row = (String, String, Vec<String>, bool);
        let rows: Vec<Row> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut by_name: HashMap<String, Vec<Relation>> = HashMap::new();
        for (qualified, kind, bases, calls_function) in rows {
            let Some(name) = TableName::parse(&qualified) else {
                continue;
            };
            let view = kind == "v" || kind == "m";
            let bases = match (view, calls_function) {
                (false, _) => Some(Vec::new()),
                (true, true) => None,
                (true, false) => Some(bases),
            };
            by_name
                .entry(name.name.clone())
                .or_default()
                .push(Relation { name, bases });
        }
        Ok(Graph { by_name })
    }

    /// `reads` plus the base relations of every view among them. Err(name) for a name the
    /// graph does not know; Ok(None) when a view it may be calls a user function.
    pub(crate) fn expand(&self, reads: &[String]) -> Result<Option<Vec<String>>, String> {
        let mut out: Vec<String> = reads.to_vec();
        for read in reads {
            let name = TableName::parse(read).ok_or_else(|| read.clone())?;
            let candidates = self.by_name.get(&name.name).ok_or_else(|| read.clone())?;
            // A bare name may resolve to any schema's relation: take them all.
            let mut known = false;
            for r in candidates.iter().filter(|r| name.overlaps(&r.name)) {
                known = true;
                match &r.bases {
                    None => return Ok(None),
                    Some(bases) => {
                        for b in bases {
                            if !out.contains(b) {
                                out.push(b.clone());
                            }
                        }
                    }
                }
            }
            if !known {
                return Err(read.clone());
            }
        }
        Ok(Some(out))
    }

    /// `writes` plus the base relations of any view among them (an updatable view writes its
    /// base table). Names the graph does not know stay as they are.
    fn expand_writes(&self, writes: &[String], out: &mut Vec<String>) {
        for w in writes {
            let Some(name) = TableName::parse(w) else {
                continue;
            };
            for r in self.by_name.get(&name.name).into_iter().flatten() {
                if !name.overlaps(&r.name) {
                    continue;
                }
                for b in r.bases.iter().flatten() {
                    if !out.contains(b) {
                        out.push(b.clone());
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct Slot {
    graph: Option<Arc<Graph>>,
    /// [`Views::schema_gen`] when `graph` was loaded.
    gen: u64,
    /// Last load attempt (successful or not).
    tried: Option<Instant>,
    /// The last attempt failed: retried at most once a second.
    failed: bool,
}

/// The graphs of every database, by database name.
#[derive(Default)]
pub(crate) struct Views {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// Snapshot of the loaded graphs, for the synchronous write path.
    loaded: Mutex<HashMap<String, Arc<Graph>>>,
    /// Bumped by DDL seen through pgtide: every graph is reloaded on next use.
    schema_gen: AtomicU64,
}

impl Views {
    pub(crate) fn schema_generation(&self) -> u64 {
        self.schema_gen.load(Ordering::SeqCst)
    }

    /// DDL ran through pgtide: reload every graph on its next use.
    pub(crate) fn schema_changed(&self) {
        self.schema_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// The relations a read of `reads` in `database` depends on, loading the graph through
    /// `target` if needed. None: do not cache it (lookup failed, unknown name, user function).
    pub(crate) async fn expand_reads(
        &self,
        database: &str,
        target: &Arc<BackendTarget>,
        reads: &[String],
    ) -> Option<Vec<String>> {
        let slot = lock(&self.slots)
            .entry(database.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        let gen = self.schema_gen.load(Ordering::SeqCst);
        let backing_off = slot.failed && slot.tried.is_some_and(|t| t.elapsed() < RELOAD_EVERY);
        if (slot.graph.is_none() || slot.gen != gen) && !backing_off {
            self.load(database, target, &mut slot, gen).await;
        }
        let graph = slot.graph.clone().filter(|_| slot.gen == gen)?;
        match graph.expand(reads) {
            Ok(expanded) => expanded,
            Err(unknown) => {
                // Perhaps created since the load (outside pgtide): look again, once a second.
                if slot.tried.is_some_and(|t| t.elapsed() < RELOAD_EVERY) {
                    return None;
                }
                self.load(database, target, &mut slot, gen).await;
                let graph = slot.graph.clone()?;
                let expanded = graph.expand(reads).ok().flatten();
                if expanded.is_none() {
                    tracing::debug!(relation = %unknown, database,
                        "not in the catalog's relations: not cached");
                }
                expanded
            }
        }
    }

    /// `writes` with the base tables of views among them, from every loaded graph.
    pub(crate) fn expand_writes(&self, writes: &[String]) -> Vec<String> {
        let mut out = writes.to_vec();
        for g in lock(&self.loaded).values() {
            g.expand_writes(writes, &mut out);
        }
        out
    }

    async fn load(&self, database: &str, target: &Arc<BackendTarget>, slot: &mut Slot, gen: u64) {
        slot.tried = Some(Instant::now());
        match load_graph(target).await {
            Ok(graph) => {
                let graph = Arc::new(graph);
                lock(&self.loaded).insert(database.to_string(), graph.clone());
                slot.graph = Some(graph);
                slot.gen = gen;
                slot.failed = false;
            }
            Err(e) => {
                tracing::warn!(database, error = %e,
                    "cache: could not read view dependencies from the catalog; reads are not cached until it works");
                slot.graph = None;
                slot.failed = true;
            }
        }
    }
}

async fn load_graph(target: &Arc<BackendTarget>) -> Result<Graph, String> {
    let params = [("application_name", "pgtide-cache-catalog")];
    let mut conn = BackendConn::connect(target.clone(), &params, CONNECT_TIMEOUT, 1)
        .await
        .map_err(|e| e.to_string())?;
    let row = tokio::time::timeout(QUERY_TIMEOUT, conn.query_row(GRAPH_SQL)).await;
    conn.terminate().await;
    let row = row
        .map_err(|_| "catalog query timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let text = row
        .into_iter()
        .next()
        .flatten()
        .ok_or("catalog query returned NULL")?;
    Graph::from_json(&text)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_expand_to_their_bases_and_functions_refuse() {
        let g = Graph::from_json(
            r#"[["public.t","r",[],false],["public.v","v",["public.t"],false],
                ["public.vv","v",["public.v","public.t"],false],
                ["s.t","r",[],false],["public.f","v",["public.t"],true]]"#,
        )
        .expect("json");
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(g.expand(&s(&["t"])), Ok(Some(s(&["t"]))));
        assert_eq!(
            g.expand(&s(&["vv"])),
            Ok(Some(s(&["vv", "public.v", "public.t"])))
        );
        assert_eq!(g.expand(&s(&["f"])), Ok(None), "calls a user function");
        assert_eq!(g.expand(&s(&["nope"])), Err("nope".to_string()));
        assert_eq!(g.expand(&s(&["other.v"])), Err("other.v".to_string()));
        let mut out = s(&["v"]);
        g.expand_writes(&s(&["v"]), &mut out);
        assert_eq!(out, s(&["v", "public.t"]));
    }
}
