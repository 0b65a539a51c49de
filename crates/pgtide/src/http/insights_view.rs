//! The insights the JSON API and the dashboard serve (`crate::insights`: per-fingerprint
//! statistics, slow queries, N+1 patterns), as JSON in a fixed order: queries by total time,
//! slow queries and N+1 patterns most recent first.

use serde_json::Value;

use crate::server::shared::Shared;

/// Rows of the insights module, serialised as they are.
fn rows<T: serde::Serialize>(items: Vec<T>) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|item| serde_json::to_value(item).ok())
        .collect()
}

fn source_queries(shared: &Shared) -> Vec<Value> {
    rows(shared.insights.queries())
}

fn source_slow_queries(shared: &Shared) -> Vec<Value> {
    rows(shared.insights.slow_queries())
}

fn source_n_plus_one(shared: &Shared) -> Vec<Value> {
    rows(shared.insights.n_plus_one())
}

/// Per fingerprint, the most total time first.
pub(super) fn queries(shared: &Shared) -> Value {
    Value::Array(sorted_desc(source_queries(shared), "total_ms"))
}

/// Most recent first.
pub(super) fn slow_queries(shared: &Shared) -> Value {
    Value::Array(sorted_desc(source_slow_queries(shared), "at_unix_ms"))
}

/// Most recently seen first.
pub(super) fn n_plus_one(shared: &Shared) -> Value {
    Value::Array(sorted_desc(source_n_plus_one(shared), "last_seen_unix_ms"))
}

/// Totals for the summary: fingerprints, calls, errors, slow queries kept, N+1 patterns.
pub(super) fn totals(shared: &Shared) -> Value {
    let queries = source_queries(shared);
    let sum = |field: &str| -> u64 {
        queries
            .iter()
            .filter_map(|q| q.get(field).and_then(Value::as_u64))
            .sum()
    };
    serde_json::json!({
        "fingerprints": queries.len(),
        "calls": sum("calls"),
        "errors": sum("errors"),
        "slow_queries": source_slow_queries(shared).len(),
        "n_plus_one": source_n_plus_one(shared).len(),
    })
}

fn sorted_desc(mut rows: Vec<Value>, field: &str) -> Vec<Value> {
    let key = |v: &Value| v.get(field).and_then(Value::as_f64).unwrap_or(0.0);
    rows.sort_by(|a, b| key(b).total_cmp(&key(a)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_a_numeric_field_descending_missing_last() {
        let rows = vec![
            serde_json::json!({"id": "a", "total_ms": 1.5}),
            serde_json::json!({"id": "b"}),
            serde_json::json!({"id": "c", "total_ms": 20}),
        ];
        let ids: Vec<_> = sorted_desc(rows, "total_ms")
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }
}
