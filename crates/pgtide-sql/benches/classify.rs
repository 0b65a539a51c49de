//! `classify` on typical OLTP statements: cold (`classify_uncached`: lexer, scan, fast path or
//! sqlparser) and cached (`Classifier::classify`: hash, one shard lock, text compare, Arc clone).
//! `cargo bench -p pgtide-sql --bench classify`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pgtide_sql::{classify_uncached, Classifier};

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
        "update_by_id",
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
    ),
    (
        "join3",
        "SELECT o.id, u.name, p.title FROM orders o JOIN users u ON u.id = o.user_id \
         JOIN products p ON p.id = o.product_id WHERE o.created_at > $1 ORDER BY o.id LIMIT 50",
    ),
    (
        "rails_select",
        "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"email\" = $1 LIMIT $2",
    ),
    ("delete_by_id", "DELETE FROM sessions WHERE id = $1"),
    // Not OLTP-typical: needs sqlparser (a subquery), for comparison.
    (
        "subquery_parsed",
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > $1)",
    ),
];

fn bench(c: &mut Criterion) {
    let mut cold = c.benchmark_group("classify_cold");
    for (name, sql) in STATEMENTS {
        cold.bench_function(*name, |b| b.iter(|| classify_uncached(black_box(sql), &[])));
    }
    cold.finish();

    let classifier = Classifier::new(&["audit.log_event".to_string()]);
    let mut cached = c.benchmark_group("classify_cached");
    for (name, sql) in STATEMENTS {
        let _ = classifier.classify(sql);
        cached.bench_function(*name, |b| b.iter(|| classifier.classify(black_box(sql))));
    }
    cached.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
