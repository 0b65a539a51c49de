use std::sync::Arc;
use std::time::{Duration, Instant};

use pgtide_config::InsightsConfig;

use super::*;

fn config() -> InsightsConfig {
    InsightsConfig {
        enabled: true,
        slow_query_threshold: Duration::from_millis(100),
        max_fingerprints: 5000,
        n_plus_one_min_repeats: 10,
        n_plus_one_window: Duration::from_secs(1),
        sample_literals: false,
    }
}

fn exec(sql: &str, ms: u64) -> Execution<'_> {
    Execution {
        sql,
        params_hash: 0,
        duration: Duration::from_millis(ms),
        rows: 1,
        error: false,
        route: Route::Primary,
        backend: "10.0.0.1:5432",
        database: "app",
        user: "app",
        application_name: "web",
        in_transaction: false,
    }
}

fn in_tx(e: Execution<'_>) -> Execution<'_> {
    Execution {
        in_transaction: true,
        ..e
    }
}

fn stats_of(i: &Insights, fingerprint: &str) -> QueryStats {
    let all = i.queries();
    let found = all.iter().find(|q| q.fingerprint == fingerprint).cloned();
    found.unwrap_or_else(|| panic!("no stats for {fingerprint}: {all:?}"))
}

fn close(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= expected * rel
}

#[test]
fn percentiles_of_a_known_mix() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    for n in 0..1000 {
        let ms = if n % 10 == 9 { 50 } else { 10 };
        let sql = format!("SELECT * FROM t WHERE id = {n}");
        i.record(&exec(&sql, ms), &mut p);
    }
    let q = stats_of(&i, "SELECT * FROM t WHERE id = $1");
    assert_eq!((q.calls, q.errors, q.rows), (1000, 0, 1000));
    assert!(close(q.total_ms, 14_000.0, 1e-9), "{q:?}");
    assert!(close(q.mean_ms, 14.0, 1e-9), "{q:?}");
    assert_eq!((q.min_ms, q.max_ms), (10.0, 50.0));
    // 2 significant figures: within 1 %.
    assert!(close(q.p50_ms, 10.0, 0.01), "{q:?}");
    assert!(close(q.p90_ms, 10.0, 0.01), "{q:?}");
    assert!(close(q.p95_ms, 50.0, 0.01), "{q:?}");
    assert!(close(q.p99_ms, 50.0, 0.01), "{q:?}");
    assert!(q.p99_ms <= q.max_ms && q.p50_ms >= q.min_ms);
    assert_eq!(
        q.id,
        format!("{:016x}", pgtide_sql::fingerprint(&q.fingerprint).id)
    );
    // By default the sample is the fingerprint: no literal is kept.
    assert_eq!(q.sample, "SELECT * FROM t WHERE id = $1");
    assert_eq!(
        (q.primary, q.replica, q.cache, q.cache_hits),
        (1000, 0, 0, 0)
    );
    assert!(q.last_seen_unix_ms > 1_600_000_000_000);
}

#[test]
fn samples_keep_literals_only_when_asked_and_follow_a_reload() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    i.record(&exec("ALTER ROLE app PASSWORD 'hunter2'", 1), &mut p);
    let q = stats_of(&i, "ALTER role app password $1");
    assert_eq!(q.sample, q.fingerprint);
    assert!(!format!("{:?}", i.queries()).contains("hunter2"));
    i.reconfigure(&InsightsConfig {
        sample_literals: true,
        ..config()
    });
    i.record(
        &exec("SELECT * FROM users WHERE email = 'a@b.example'", 1),
        &mut p,
    );
    let q = stats_of(&i, "SELECT * FROM users WHERE email = $1");
    assert_eq!(q.sample, "SELECT * FROM users WHERE email = 'a@b.example'");
    // Turned off again: the sample taken while it was on goes, and a new one is literal-free.
    i.reconfigure(&config());
    let q = stats_of(&i, "SELECT * FROM users WHERE email = $1");
    assert_eq!(q.sample, q.fingerprint);
    i.record(&exec("SELECT 'x@y.example' AS e", 1), &mut p);
    assert_eq!(stats_of(&i, "SELECT $1 AS e").sample, "SELECT $1 AS e");
    let all = format!("{:?}", i.queries());
    assert!(
        !all.contains("a@b.example") && !all.contains("x@y.example"),
        "{all}"
    );
}

#[test]
fn forgetting_literals_truncates_as_new_samples_are() {
    let i = Insights::new(&InsightsConfig {
        sample_literals: true,
        ..config()
    });
    let mut p = ClientPatterns::default();
    let long = format!("SELECT 'secret', {}", "é, ".repeat(2000));
    i.record(&exec(&long, 1), &mut p);
    i.reconfigure(&config());
    let q = &i.queries()[0];
    assert!(!q.sample.contains("secret"), "{}", q.sample);
    assert_eq!(q.sample.chars().count(), 1000);
    assert!(q.fingerprint.starts_with(&q.sample));
}

#[test]
fn routes_errors_and_ordering_by_total_time() {
    let i = Insights::new(&InsightsConfig {
        sample_literals: true,
        ..config()
    });
    let mut p = ClientPatterns::default();
    let sql = "SELECT name FROM products WHERE id = $1";
    for route in [Route::Primary, Route::Replica, Route::Replica, Route::Cache] {
        i.record(
            &Execution {
                route,
                ..exec(sql, 1)
            },
            &mut p,
        );
    }
    i.record(
        &Execution {
            error: true,
            rows: 0,
            ..exec(sql, 1)
        },
        &mut p,
    );
    i.record(&exec("SELECT pg_sleep(1)", 90), &mut p);
    let all = i.queries();
    assert_eq!(all[0].fingerprint, "SELECT pg_sleep($1)");
    let q = &all[1];
    assert_eq!((q.calls, q.errors, q.rows), (5, 1, 4));
    assert_eq!((q.primary, q.replica, q.cache, q.cache_hits), (2, 2, 1, 1));
    let long = format!("SELECT '{}'", "é".repeat(3000));
    i.record(&exec(&long, 1), &mut p);
    assert_eq!(stats_of(&i, "SELECT $1").sample.chars().count(), 1000);
}

#[test]
fn fingerprints_are_bounded_and_the_least_recently_seen_go() {
    let i = Insights::new(&InsightsConfig {
        max_fingerprints: 100,
        ..config()
    });
    let mut p = ClientPatterns::default();
    let t0 = Instant::now();
    for n in 0..1000u64 {
        let at = t0 + Duration::from_micros(2 * n);
        i.record_at(&exec("SELECT * FROM hot", 1), &mut p, at);
        let sql = format!("SELECT * FROM t{n}");
        i.record_at(&exec(&sql, 1), &mut p, at + Duration::from_micros(1));
    }
    let all = i.queries();
    assert!(all.len() <= 100, "{}", all.len());
    assert!(all.len() >= 90, "{}", all.len());
    assert_eq!(stats_of(&i, "SELECT * FROM hot").calls, 1000);
    stats_of(&i, "SELECT * FROM t999");
    i.record_at(
        &exec("SELECT * FROM hot", 1),
        &mut p,
        t0 + Duration::from_secs(1),
    );

    i.reconfigure(&InsightsConfig {
        max_fingerprints: 40,
        ..config()
    });
    let all = i.queries();
    assert!(all.len() <= 40, "{}", all.len());
    assert_eq!(stats_of(&i, "SELECT * FROM hot").calls, 1001);
}

#[test]
fn concurrent_sessions_all_count() {
    let i = Arc::new(Insights::new(&config()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let i = Arc::clone(&i);
            std::thread::spawn(move || {
                let mut p = ClientPatterns::default();
                for n in 0..2000 {
                    let sql = format!("SELECT * FROM t{} WHERE id = {}", n % 50, n + t);
                    i.record(&exec(&sql, 1), &mut p);
                }
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().is_ok());
    }
    let all = i.queries();
    assert_eq!(all.len(), 50);
    assert!(all.iter().all(|q| q.calls == 8 * 2000 / 50));
    assert_eq!(all.iter().map(|q| q.calls).sum::<u64>(), 16_000);
}

#[test]
fn slow_queries_are_kept_newest_first_and_bounded() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    i.record(&exec("SELECT 1", 100), &mut p); // at the threshold: not above it
    i.record(&exec("SELECT * FROM big WHERE a = 'secret'", 150), &mut p);
    i.record(&exec("SELECT * FROM bigger", 250), &mut p);
    let slow = i.slow_queries();
    assert_eq!(slow.len(), 2);
    assert_eq!(slow[0].fingerprint, "SELECT * FROM bigger");
    assert_eq!(slow[1].fingerprint, "SELECT * FROM big WHERE a = $1");
    assert!(close(slow[1].duration_ms, 150.0, 1e-9));
    assert_eq!(
        (
            slow[1].backend.as_str(),
            slow[1].database.as_str(),
            slow[1].user.as_str()
        ),
        ("10.0.0.1:5432", "app", "app")
    );
    assert_eq!(slow[1].application_name, "web");
    assert_eq!(slow[1].id.len(), 16);
    // Far more than the log's rate limit at one instant: all kept in the ring, up to its bound.
    let now = Instant::now();
    for n in 0..300 {
        let sql = format!("SELECT * FROM t{n}");
        i.record_at(&exec(&sql, 500), &mut p, now);
    }
    let slow = i.slow_queries();
    assert_eq!(slow.len(), 200);
    assert_eq!(slow[0].fingerprint, "SELECT * FROM t299");

    i.reconfigure(&InsightsConfig {
        slow_query_threshold: Duration::from_secs(10),
        ..config()
    });
    i.record(&exec("SELECT * FROM later", 500), &mut p);
    assert_eq!(i.slow_queries()[0].fingerprint, "SELECT * FROM t299");
}

/// One parent, then `n` child lookups with different ids, `step` apart.
fn parent_and_children(
    i: &Insights,
    p: &mut ClientPatterns,
    t0: Instant,
    n: u64,
    step: Duration,
    tx: bool,
) {
    fn wrap(e: Execution<'_>, tx: bool) -> Execution<'_> {
        Execution {
            in_transaction: tx,
            ..e
        }
    }
    let mut at = t0;
    i.record_at(
        &wrap(exec("SELECT id FROM orders WHERE customer = 7", 2), tx),
        p,
        at,
    );
    for k in 0..n {
        at += step;
        let sql = format!("SELECT * FROM items WHERE order_id = {k}");
        i.record_at(&wrap(exec(&sql, 1), tx), p, at);
    }
}

#[test]
fn n_plus_one_inside_a_transaction_is_one_report() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    let t0 = Instant::now();
    i.record_at(&exec("BEGIN", 0), &mut p, t0);
    // Far apart in time: inside a transaction the window does not apply.
    parent_and_children(&i, &mut p, t0, 25, Duration::from_secs(2), true);
    i.record_at(
        &in_tx(exec("COMMIT", 0)),
        &mut p,
        t0 + Duration::from_secs(60),
    );
    i.end_transaction(&mut p, "app", "web");

    let reports = i.n_plus_one();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r.count, 25);
    assert!(close(r.total_ms, 25.0, 1e-9), "{r:?}");
    assert_eq!(r.repeated, "SELECT * FROM items WHERE order_id = $1");
    assert_eq!(
        r.repeated_id,
        format!("{:016x}", pgtide_sql::fingerprint(&r.repeated).id)
    );
    assert_eq!(
        r.parent.as_deref(),
        Some("SELECT id FROM orders WHERE customer = $1")
    );
    assert_eq!(
        (r.database.as_str(), r.application_name.as_str()),
        ("app", "web")
    );
    assert!(
        r.suggestion.contains("WHERE order_id = ANY($1)"),
        "{}",
        r.suggestion
    );
    assert!(
        r.last_seen_unix_ms - r.first_seen_unix_ms >= 48_000,
        "{r:?}"
    );

    // The next transaction is a new run: a second report.
    let t1 = t0 + Duration::from_secs(100);
    parent_and_children(&i, &mut p, t1, 12, Duration::from_millis(1), true);
    i.end_transaction(&mut p, "app", "web");
    let reports = i.n_plus_one();
    assert_eq!(
        (reports.len(), reports[0].count, reports[1].count),
        (2, 12, 25)
    );
}

#[test]
fn n_plus_one_outside_transactions_needs_the_window() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    let t0 = Instant::now();
    // 25 lookups 200 ms apart: at most 6 within any 1 s window.
    parent_and_children(&i, &mut p, t0, 25, Duration::from_millis(200), false);
    assert!(i.n_plus_one().is_empty(), "{:?}", i.n_plus_one());

    // 25 lookups 10 ms apart: one report, counting all 25.
    let t1 = t0 + Duration::from_secs(30);
    parent_and_children(&i, &mut p, t1, 25, Duration::from_millis(10), false);
    let reports = i.n_plus_one();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].count, 25);
    assert!(reports[0].parent.is_some());

    // After a pause longer than the window, the same pattern again is a new run.
    let t2 = t1 + Duration::from_secs(5);
    parent_and_children(&i, &mut p, t2, 10, Duration::from_millis(10), false);
    assert_eq!(i.n_plus_one().len(), 2);
}

#[test]
fn the_same_parameters_repeated_are_not_n_plus_one() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    let t0 = Instant::now();
    for k in 0..25u64 {
        let at = t0 + Duration::from_millis(k);
        i.record_at(
            &in_tx(exec("SELECT * FROM items WHERE order_id = 5", 1)),
            &mut p,
            at,
        );
        // Extended protocol: one text, the same Bind parameters.
        let e = Execution {
            params_hash: 42,
            ..in_tx(exec("SELECT * FROM users WHERE id = $1", 1))
        };
        i.record_at(&e, &mut p, at);
    }
    i.end_transaction(&mut p, "app", "web");
    assert!(i.n_plus_one().is_empty(), "{:?}", i.n_plus_one());
    assert_eq!(i.queries().len(), 2);

    // Different Bind parameters under one text are N+1.
    for k in 0..10u64 {
        let e = Execution {
            params_hash: 100 + k,
            ..exec("SELECT * FROM users WHERE id = $1", 1)
        };
        i.record_at(&e, &mut p, t0 + Duration::from_millis(100 + k));
    }
    let reports = i.n_plus_one();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].count, 10);
    assert_eq!(reports[0].repeated, "SELECT * FROM users WHERE id = $1");
}

#[test]
fn errors_and_control_statements_do_not_make_patterns() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    let t0 = Instant::now();
    for k in 0..30u64 {
        let at = t0 + Duration::from_millis(k);
        let sql = format!("SELECT * FROM t WHERE id = {k}");
        i.record_at(
            &Execution {
                error: true,
                ..exec(&sql, 1)
            },
            &mut p,
            at,
        );
        let set = format!("SET statement_timeout = {k}");
        i.record_at(&exec(&set, 1), &mut p, at);
    }
    assert!(i.n_plus_one().is_empty());
}

#[test]
fn reset_forgets_everything() {
    let i = Insights::new(&config());
    let mut p = ClientPatterns::default();
    let t0 = Instant::now();
    parent_and_children(&i, &mut p, t0, 12, Duration::from_millis(1), false);
    i.record(&exec("SELECT pg_sleep(1)", 1000), &mut p);
    assert!(!i.queries().is_empty() && !i.slow_queries().is_empty());
    assert_eq!(i.n_plus_one().len(), 1);
    i.reset();
    assert!(i.queries().is_empty() && i.slow_queries().is_empty() && i.n_plus_one().is_empty());
    // The run goes on after the reset without reappearing or failing.
    let sql = "SELECT * FROM items WHERE order_id = 99";
    i.record_at(&exec(sql, 1), &mut p, t0 + Duration::from_millis(13));
    assert_eq!(
        stats_of(&i, "SELECT * FROM items WHERE order_id = $1").calls,
        1
    );
}

#[test]
fn routes_serialize_in_lowercase() {
    let json = serde_json::to_string(&[Route::Primary, Route::Replica, Route::Cache]);
    assert_eq!(
        json.ok().as_deref(),
        Some(r#"["primary","replica","cache"]"#)
    );
}
