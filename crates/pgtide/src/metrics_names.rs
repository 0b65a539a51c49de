//! Every metric name pgtide exports, in one place; docs/reference/metrics.md gives each one's type,
//! labels and meaning (a test keeps the two in step). Labels come from small fixed sets
//! (database, backend label, route, state), never SQL text.

pub(crate) const CLIENT_CONNECTIONS: &str = "pgtide_client_connections";
pub(crate) const BACKEND_CONNECTIONS: &str = "pgtide_backend_connections";
pub(crate) const QUERIES_TOTAL: &str = "pgtide_queries_total";
pub(crate) const QUERY_DURATION_SECONDS: &str = "pgtide_query_duration_seconds";
pub(crate) const POOL_WAIT_SECONDS: &str = "pgtide_pool_wait_seconds";
pub(crate) const CLIENT_ERRORS_TOTAL: &str = "pgtide_client_errors_total";
pub(crate) const PINNED_CLIENTS_TOTAL: &str = "pgtide_pinned_clients_total";
pub(crate) const BACKEND_HEALTHY: &str = "pgtide_backend_healthy";
pub(crate) const REPLICA_LAG_SECONDS: &str = "pgtide_replica_lag_seconds";
/// Reads a replica refused as writes (SQLSTATE 25006), re-run on the primary.
pub(crate) const REPLICA_WRITE_MISSES_TOTAL: &str = "pgtide_replica_write_misses_total";
/// Reads re-run on another backend after their replica failed before answering.
pub(crate) const REPLICA_RETRIES_TOTAL: &str = "pgtide_replica_retries_total";
/// Statements slower than `insights.slow_query_threshold`.
pub(crate) const SLOW_QUERIES_TOTAL: &str = "pgtide_slow_queries_total";
/// N+1 patterns reported (one per run of repeats).
pub(crate) const N_PLUS_ONE_TOTAL: &str = "pgtide_n_plus_one_total";
/// Result-cache lookups answered from memory.
pub(crate) const CACHE_HITS_TOTAL: &str = "pgtide_cache_hits_total";
/// Result-cache lookups of cacheable statements that went to a backend.
pub(crate) const CACHE_MISSES_TOTAL: &str = "pgtide_cache_misses_total";
/// Bytes held by the result cache (sum of entry weights).
pub(crate) const CACHE_BYTES: &str = "pgtide_cache_bytes";
/// Times a session stopped reading a client because what waited for it (replies pgtide wrote
/// itself included) was over the high-water mark.
pub(crate) const CLIENT_READ_PAUSES_TOTAL: &str = "pgtide_client_read_pauses_total";

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    const PAGE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reference/metrics.md"
    ));

    #[test]
    fn metrics_page_lists_every_name_and_no_other() {
        let names: BTreeSet<&str> = include_str!("metrics_names.rs")
            .lines()
            .filter_map(|l| {
                l.strip_prefix("pub(crate) const ")?
                    .split_once(": &str = \"")
            })
            .filter_map(|(_, v)| v.strip_suffix("\";"))
            .collect();
        assert!(names.len() >= 17, "{names:?}");
        let documented: BTreeSet<&str> = PAGE
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split_once('`'))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names, documented,
            "metrics_names.rs against metrics.md's table"
        );
    }

    /// The type metrics.md gives each name is the macro the code records it with.
    #[test]
    fn metrics_page_types_are_the_ones_recorded() {
        let consts: BTreeMap<&str, &str> = include_str!("metrics_names.rs")
            .lines()
            .filter_map(|l| {
                l.strip_prefix("pub(crate) const ")?
                    .split_once(": &str = \"")
            })
            .filter_map(|(c, v)| Some((c, v.strip_suffix("\";")?)))
            .collect();
        let mut used: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        let mut sources = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(path) = sources.pop() {
            if path.is_dir() {
                let entries = std::fs::read_dir(&path).expect("src is readable");
                sources.extend(entries.map(|e| e.expect("a directory entry").path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            for kind in ["counter", "gauge", "histogram"] {
                for (at, _) in text.match_indices(&format!("{kind}!(")) {
                    let rest = text[at + kind.len() + 2..].trim_start();
                    let rest = rest
                        .strip_prefix("m::")
                        .or_else(|| rest.strip_prefix("crate::metrics_names::"));
                    let Some(rest) = rest else { continue };
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                        .collect();
                    used.entry(name).or_default().insert(kind);
                }
            }
        }
        for row in PAGE.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let Some((constant, _)) = consts.iter().find(|(_, v)| **v == name) else {
                continue; // the other test names it
            };
            let kinds = used.get(*constant).cloned().unwrap_or_default();
            assert_eq!(
                kinds,
                BTreeSet::from([cells[2]]),
                "{name}: metrics.md says {}, the code records it as {kinds:?}",
                cells[2]
            );
        }
    }
}
