//! The admin console's result sets.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::command::Topic;
use super::Reply;
use crate::server::shared::Shared;

fn text(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

fn secs(d: Duration) -> Option<String> {
    Some(format!("{:.1}", d.as_secs_f64()))
}

pub(super) fn show(shared: &Arc<Shared>, topic: Topic) -> Reply {
    match topic {
        Topic::Pools => pools(shared),
        Topic::Clients => clients(shared),
        Topic::Servers => servers(shared),
        Topic::Backends => backends(shared),
        Topic::Config => config(shared),
        Topic::Version => Reply::Rows {
            columns: vec!["version"],
            rows: vec![vec![text(concat!("pgtide ", env!("CARGO_PKG_VERSION")))]],
        },
        Topic::Queries => insights(shared, "queries"),
        Topic::SlowQueries => insights(shared, "slow_queries"),
        Topic::NPlusOne => insights(shared, "n_plus_one"),
        Topic::Cache => cache(shared),
    }
}

fn pools(shared: &Shared) -> Reply {
    let mode = format!("{:?}", shared.config.load().pool.mode).to_ascii_lowercase();
    let mut pools = shared.pools.all();
    pools.sort_by_key(|p| (p.database.clone(), p.user.clone(), p.target.label()));
    let rows = pools
        .iter()
        .map(|p| {
            let s = p.stats();
            vec![
                text(&p.database),
                text(&p.user),
                text(p.target.label()),
                text(&mode),
                text(s.size),
                text(s.open),
                text(s.in_use),
                text(s.idle),
                text(s.waiting),
                text(shared.pause.is_paused(&p.database)),
            ]
        })
        .collect();
    Reply::Rows {
        columns: vec![
            "database", "user", "backend", "mode", "size", "open", "in_use", "idle", "waiting",
            "paused",
        ],
        rows,
    }
}

fn clients(shared: &Shared) -> Reply {
    let rows = shared
        .client_registry
        .all()
        .iter()
        .map(|c| {
            let live = c.live();
            vec![
                text(c.id),
                text(&c.user),
                text(&c.database),
                text(&c.application_name),
                c.addr.map(|a| a.to_string()),
                text(live.state),
                live.backend.as_ref().map(|(label, _)| label.to_string()),
                text(live.pins.join(",")),
                secs(c.connected.elapsed()),
                text(live.transactions),
            ]
        })
        .collect();
    Reply::Rows {
        columns: vec![
            "id",
            "user",
            "database",
            "application_name",
            "address",
            "state",
            "backend",
            "pinned",
            "connected_s",
            "transactions",
        ],
        rows,
    }
}

fn servers(shared: &Shared) -> Reply {
    let mut rows = Vec::new();
    for client in shared.client_registry.all() {
        if let Some((label, conn)) = client.live().backend {
            rows.push(vec![
                text(&client.database),
                text(&client.user),
                text(label),
                text(conn),
                text("active"),
                text(client.id),
                None,
            ]);
        }
    }
    for pool in shared.pools.all() {
        for (id, age, idle) in pool.idle_connections() {
            rows.push(vec![
                text(&pool.database),
                text(&pool.user),
                text(pool.target.label()),
                text(id),
                text("idle"),
                None,
                secs(idle.min(age)),
            ]);
        }
    }
    Reply::Rows {
        columns: vec![
            "database",
            "user",
            "backend",
            "connection",
            "state",
            "client",
            "idle_s",
        ],
        rows,
    }
}

fn backends(shared: &Arc<Shared>) -> Reply {
    let config = shared.config.load_full();
    let mut rows = Vec::new();
    for db in &config.databases {
        let topology = shared.topology(db);
        let primary = topology.primary();
        let total: u64 = topology
            .backends
            .iter()
            .map(|b| b.reads.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        for b in &topology.backends {
            let h = b.health();
            let reads = b.reads.load(std::sync::atomic::Ordering::Relaxed);
            let role = if b.index == primary {
                "primary"
            } else {
                "replica"
            };
            rows.push(vec![
                text(&db.name),
                text(&b.label),
                text(role),
                text(if !h.checked && !topology.has_replicas() {
                    "unchecked".to_string()
                } else {
                    h.healthy.to_string()
                }),
                text(h.in_recovery),
                h.lag.map(|l| format!("{:.0}", l.as_secs_f64() * 1000.0)),
                text(b.weight),
                text(reads),
                text(if total == 0 {
                    "0.0".to_string()
                } else {
                    format!("{:.1}", reads as f64 * 100.0 / total as f64)
                }),
                h.last_error.clone(),
            ]);
        }
    }
    Reply::Rows {
        columns: vec![
            "database",
            "backend",
            "role",
            "healthy",
            "in_recovery",
            "lag_ms",
            "weight",
            "reads",
            "read_share_pct",
            "last_error",
        ],
        rows,
    }
}

fn config(shared: &Shared) -> Reply {
    let c = shared.config.load();
    let d = |v: Duration| format!("{v:?}");
    let mut rows: Vec<(String, String)> = vec![
        ("server.listen".into(), c.server.listen.clone()),
        ("server.http_listen".into(), c.server.http_listen.clone()),
        (
            // The token itself is a secret: only whether one is set.
            "server.http_auth_token".into(),
            if c.server.http_auth_token.is_empty() {
                "(none)".into()
            } else {
                "(set)".into()
            },
        ),
        (
            "server.http_allowed_hosts".into(),
            c.server.http_allowed_hosts.join(", "),
        ),
        (
            "server.max_client_connections".into(),
            c.server.max_client_connections.to_string(),
        ),
        ("server.startup_timeout".into(), d(c.server.startup_timeout)),
        (
            "server.max_message_size".into(),
            c.server.max_message_size.to_string(),
        ),
        (
            "server.shutdown_timeout".into(),
            d(c.server.shutdown_timeout),
        ),
        (
            "pool.mode".into(),
            format!("{:?}", c.pool.mode).to_ascii_lowercase(),
        ),
        ("pool.size".into(), c.pool.size.to_string()),
        ("pool.min_idle".into(), c.pool.min_idle.to_string()),
        ("pool.checkout_timeout".into(), d(c.pool.checkout_timeout)),
        ("pool.idle_timeout".into(), d(c.pool.idle_timeout)),
        ("pool.max_lifetime".into(), d(c.pool.max_lifetime)),
        (
            "pool.max_prepared_statements".into(),
            c.pool.max_prepared_statements.to_string(),
        ),
        (
            "routing.read_write_split".into(),
            c.routing.read_write_split.to_string(),
        ),
        (
            "routing.replica_reads".into(),
            format!("{:?}", c.routing.replica_reads),
        ),
        (
            "routing.read_your_writes".into(),
            format!("{:?}", c.routing.read_your_writes),
        ),
        (
            "routing.max_replica_lag".into(),
            d(c.routing.max_replica_lag),
        ),
        (
            "routing.health_check_interval".into(),
            d(c.routing.health_check_interval),
        ),
        (
            "routing.unhealthy_after".into(),
            c.routing.unhealthy_after.to_string(),
        ),
        (
            "routing.primary_reads".into(),
            format!("{:?}", c.routing.primary_reads),
        ),
        (
            "routing.transactions".into(),
            format!("{:?}", c.routing.transactions),
        ),
        ("cache.enabled".into(), c.cache.enabled.to_string()),
        (
            "insights.slow_query_threshold".into(),
            d(c.insights.slow_query_threshold),
        ),
        (
            "insights.max_fingerprints".into(),
            c.insights.max_fingerprints.to_string(),
        ),
        (
            "insights.n_plus_one_min_repeats".into(),
            c.insights.n_plus_one_min_repeats.to_string(),
        ),
        (
            "insights.n_plus_one_window".into(),
            d(c.insights.n_plus_one_window),
        ),
        (
            "insights.sample_literals".into(),
            c.insights.sample_literals.to_string(),
        ),
    ];
    for db in &c.databases {
        rows.push((
            format!("databases.{}.primary", db.name),
            format!("{}:{}", db.primary.host, db.primary.port),
        ));
        for r in &db.replicas {
            rows.push((
                format!("databases.{}.replica", db.name),
                format!("{}:{} weight {}", r.url.host, r.url.port, r.weight),
            ));
        }
    }
    Reply::Rows {
        columns: vec!["key", "value"],
        rows: rows
            .into_iter()
            .map(|(k, v)| vec![Some(k), Some(v)])
            .collect(),
    }
}

fn ms(v: f64) -> Option<String> {
    Some(format!("{v:.3}"))
}

fn unix_ms(at: u64) -> Option<String> {
    let t = UNIX_EPOCH + Duration::from_millis(at);
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Some(format!("{secs}"))
}

fn insights(shared: &Shared, what: &str) -> Reply {
    let i = &shared.insights;
    match what {
        "queries" => Reply::Rows {
            columns: vec![
                "fingerprint",
                "calls",
                "errors",
                "rows",
                "total_ms",
                "mean_ms",
                "p50_ms",
                "p90_ms",
                "p95_ms",
                "p99_ms",
                "max_ms",
                "primary",
                "replica",
                "cache",
                "sample",
            ],
            rows: i
                .queries()
                .into_iter()
                .map(|q| {
                    vec![
                        text(&q.fingerprint),
                        text(q.calls),
                        text(q.errors),
                        text(q.rows),
                        ms(q.total_ms),
                        ms(q.mean_ms),
                        ms(q.p50_ms),
                        ms(q.p90_ms),
                        ms(q.p95_ms),
                        ms(q.p99_ms),
                        ms(q.max_ms),
                        text(q.primary),
                        text(q.replica),
                        text(q.cache),
                        text(&q.sample),
                    ]
                })
                .collect(),
        },
        "slow_queries" => Reply::Rows {
            columns: vec![
                "at_unix_s",
                "duration_ms",
                "fingerprint",
                "backend",
                "database",
                "user",
                "application_name",
            ],
            rows: i
                .slow_queries()
                .into_iter()
                .map(|q| {
                    vec![
                        unix_ms(q.at_unix_ms),
                        ms(q.duration_ms),
                        text(&q.fingerprint),
                        text(&q.backend),
                        text(&q.database),
                        text(&q.user),
                        text(&q.application_name),
                    ]
                })
                .collect(),
        },
        _ => Reply::Rows {
            columns: vec![
                "parent",
                "repeated",
                "count",
                "total_ms",
                "application_name",
                "database",
                "first_seen_unix_s",
                "last_seen_unix_s",
                "suggestion",
            ],
            rows: i
                .n_plus_one()
                .into_iter()
                .map(|n| {
                    vec![
                        n.parent.clone(),
                        text(&n.repeated),
                        text(n.count),
                        ms(n.total_ms),
                        text(&n.application_name),
                        text(&n.database),
                        unix_ms(n.first_seen_unix_ms),
                        unix_ms(n.last_seen_unix_ms),
                        text(&n.suggestion),
                    ]
                })
                .collect(),
        },
    }
}

fn cache(shared: &Shared) -> Reply {
    Reply::Rows {
        columns: vec![
            "rule", "ttl", "entries", "bytes", "hits", "misses", "hit_rate",
        ],
        rows: shared
            .cache
            .stats()
            .into_iter()
            .map(|r| {
                vec![
                    text(&r.rule),
                    text(format!("{:?}", r.ttl)),
                    text(r.entries),
                    text(r.bytes),
                    text(r.hits),
                    text(r.misses),
                    text(format!("{:.3}", r.hit_rate)),
                ]
            })
            .collect(),
    }
}

pub(super) fn reset_queries(shared: &Shared) -> Reply {
    shared.insights.reset();
    Reply::Done("RESET".into())
}

pub(super) fn cache_clear(shared: &Shared, table: Option<&String>) -> Reply {
    match table {
        Some(t) => {
            shared.cache.clear_table(t);
        }
        None => shared.cache.clear(),
    }
    Reply::Done("CACHE CLEAR".into())
}
