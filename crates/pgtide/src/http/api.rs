//! JSON for `/api/backends`, `/api/pools` and `/api/summary`, read from the live state.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pgtide_config::PoolMode;
use serde_json::{json, Value};

use super::insights_view;
use super::ready::Readiness;
use crate::server::shared::{Phase, Shared};

/// Per database: its backends with role, health, lag, weight and share of reads.
pub(super) async fn backends(shared: &Arc<Shared>, ready: &Readiness) -> Value {
    let config = shared.config.load_full();
    let mut out = Vec::new();
    for db in &config.databases {
        let topology = ready.topology(shared, &config, db).await;
        let primary = topology.primary();
        let reads: Vec<u64> = topology
            .backends
            .iter()
            .map(|b| b.reads.load(Ordering::Relaxed))
            .collect();
        let total_reads: u64 = reads.iter().sum();
        let backends: Vec<Value> = topology
            .backends
            .iter()
            .zip(&reads)
            .map(|(b, &reads)| {
                let h = b.health();
                json!({
                    "label": b.label,
                    "role": if b.index == primary { "primary" } else { "replica" },
                    "configured_role": if b.index == 0 { "primary" } else { "replica" },
                    "checked": h.checked,
                    "healthy": h.checked.then_some(h.healthy),
                    "in_recovery": h.checked.then_some(h.in_recovery),
                    "lag_ms": h.lag.map(|l| l.as_secs_f64() * 1000.0),
                    "weight": b.weight,
                    "reads": reads,
                    "read_share": if total_reads == 0 { 0.0 } else { reads as f64 / total_reads as f64 },
                    "failures": h.failures,
                    "last_error": h.last_error,
                    "checked_ms_ago": h.checked_at.map(|t| t.elapsed().as_millis() as u64),
                })
            })
            .collect();
        out.push(json!({
            "database": db.name,
            "primary": topology.backends[primary].label,
            "max_replica_lag_ms": config.routing.max_replica_lag.as_secs_f64() * 1000.0,
            "backends": backends,
        }));
    }
    Value::Array(out)
}

/// Every pool (database, user, backend) with its connection counts.
pub(super) fn pools(shared: &Shared) -> Value {
    let mut pools = shared.pools.all();
    pools.sort_by_key(|p| (p.database.clone(), p.user.clone(), p.target.label()));
    Value::Array(
        pools
            .iter()
            .map(|p| {
                let s = p.stats();
                json!({
                    "database": p.database,
                    "user": p.user,
                    "backend": p.target.label(),
                    "size": s.size,
                    "open": s.open,
                    "in_use": s.in_use,
                    "idle": s.idle,
                    "waiting": s.waiting,
                })
            })
            .collect(),
    )
}

/// The process at a glance: version, uptime, clients, pool totals, query totals, cache.
pub(super) fn summary(shared: &Shared) -> Value {
    let config = shared.config.load();
    let (mut open, mut in_use, mut waiting) = (0, 0, 0);
    for pool in shared.pools.all() {
        let s = pool.stats();
        open += s.open;
        in_use += s.in_use;
        waiting += s.waiting;
    }
    let phase = match shared.phase() {
        Phase::Running => "running",
        Phase::Draining => "draining",
        Phase::Stopping => "stopping",
    };
    let cache = cache_totals(shared);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": shared.started.elapsed().as_secs_f64(),
        "phase": phase,
        "pool_mode": match config.pool.mode {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        },
        "clients": shared.clients.load(Ordering::Relaxed),
        "databases": config.databases.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        "backend_connections": { "open": open, "in_use": in_use, "waiting": waiting },
        "queries": insights_view::totals(shared),
        "cache": cache.clone(),
        "cache_hit_rate": cache.get("hit_rate").cloned().unwrap_or(Value::Null),
    })
}

/// The result cache's totals, null while it is off.
fn cache_totals(shared: &Shared) -> Value {
    if !shared.cache.enabled() {
        return Value::Null;
    }
    let t = shared.cache.totals();
    json!({
        "entries": t.entries,
        "bytes": t.bytes,
        "max_memory": t.max_memory,
        "hits": t.hits,
        "misses": t.misses,
        "hit_rate": t.hit_rate,
    })
}
