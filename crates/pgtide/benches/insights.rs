//! Insights on the hot path: `Insights::record` for a repeated statement text (fingerprint
//! cached: hash, two shard locks, histogram) and for a new text each time (lexed), and
//! `pgtide_sql::fingerprint` on typical OLTP statements; then `record` again with the
//! Prometheus recorder installed.
//! `cargo bench -p pgtide --bench insights`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pgtide::internals::{ClientPatterns, Execution, Insights, Route};
use pgtide_config::InsightsConfig;

const STATEMENTS: &[(&str, &str)] = &[
    (
        "point_select",
        "SELECT id, name, email FROM users WHERE id = $1",
    ),
    (
        "insert_values",
        "INSERT INTO orders (user_id, product_id, total) VALUES ($1, $2, $3)",
    ),
    (
        "join3",
        "SELECT o.id, u.name, p.title FROM orders o JOIN users u ON u.id = o.user_id \
         JOIN products p ON p.id = o.product_id WHERE o.created_at > $1 ORDER BY o.id LIMIT 50",
    ),
    (
        "rails_literals",
        "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"email\" = 'someone@example.com' \
         AND \"users\".\"id\" IN (1, 2, 3, 4, 5) LIMIT 1",
    ),
];

fn exec(sql: &str) -> Execution<'_> {
    Execution {
        sql,
        params_hash: 7,
        duration: Duration::from_micros(850),
        rows: 1,
        error: false,
        route: Route::Replica,
        backend: "10.0.0.2:5432",
        database: "app",
        user: "app",
        application_name: "web",
        in_transaction: false,
    }
}

fn bench(c: &mut Criterion) {
    let mut fp = c.benchmark_group("fingerprint");
    for (name, sql) in STATEMENTS {
        fp.bench_function(*name, |b| {
            b.iter(|| pgtide_sql::fingerprint(black_box(sql)))
        });
    }
    fp.finish();

    let insights = Insights::new(&InsightsConfig::default());
    let mut record = c.benchmark_group("record");
    for (name, sql) in STATEMENTS {
        let mut patterns = ClientPatterns::default();
        record.bench_function(format!("repeated_{name}"), |b| {
            b.iter(|| insights.record(black_box(&exec(sql)), &mut patterns))
        });
    }
    // A new text every time (literals inlined): the text cache misses and the lexer runs.
    let mut patterns = ClientPatterns::default();
    let texts: Vec<String> = (0..100_000)
        .map(|i| format!("SELECT id, name, email FROM users WHERE id = {i}"))
        .collect();
    let mut i = 0;
    record.bench_function("cold_point_select", |b| {
        b.iter(|| {
            i = (i + 1) % texts.len();
            insights.record(black_box(&exec(&texts[i])), &mut patterns)
        })
    });
    record.finish();

    // The same with the Prometheus recorder installed (histogram buckets as /metrics has them):
    // what the two metric updates add in production.
    let buckets = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
    let installed = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&buckets)
        .and_then(|b| b.install_recorder());
    if installed.is_ok() {
        let mut with_prometheus = c.benchmark_group("record_prometheus");
        let (name, sql) = STATEMENTS[0];
        let mut patterns = ClientPatterns::default();
        with_prometheus.bench_function(format!("repeated_{name}"), |b| {
            b.iter(|| insights.record(black_box(&exec(sql)), &mut patterns))
        });
        with_prometheus.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
