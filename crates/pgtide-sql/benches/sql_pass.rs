//! The whole SQL work the server does for a simple-Query text it has never seen (pgbench -S
//! sends a new literal every time, as ORMs that interpolate parameters do): before, one call per
//! consumer, each lexing the text again (session effects, statement names, schema change, two
//! classifications through the cache as routing and write bookkeeping made them, the insights
//! fingerprint); after, one `Classifier::analyze` (and without the classification, as the
//! server runs it when neither routing nor the result cache is on).
//! `cargo bench -p pgtide-sql --bench sql_pass`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pgtide_sql::Classifier;

#[path = "support/separate_passes.rs"]
mod separate_passes;

const TEXTS: &[(&str, &str)] = &[
    (
        "pgbench_select",
        "SELECT abalance FROM pgbench_accounts WHERE aid = ",
    ),
    (
        "pgbench_update",
        "UPDATE pgbench_accounts SET abalance = abalance + 17 WHERE aid = ",
    ),
    (
        "orm_select",
        "SELECT \"users\".\"id\", \"users\".\"email\" FROM \"users\" WHERE \"users\".\"id\" = ",
    ),
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql_pass_new_text");
    for (name, prefix) in TEXTS {
        let mut n = 0u64;
        let mut fresh = move || {
            n += 1;
            format!("{prefix}{n};")
        };
        let classifier = Classifier::new(&[]);
        group.bench_function(format!("{name}/before"), |b| {
            b.iter_batched_ref(
                &mut fresh,
                |sql| separate_passes::separate_passes(&classifier, black_box(sql.as_str())),
                BatchSize::SmallInput,
            )
        });
        let classifier = Classifier::new(&[]);
        group.bench_function(format!("{name}/after"), |b| {
            b.iter_batched_ref(
                &mut fresh,
                |sql| black_box(classifier.analyze(black_box(sql.as_str()))),
                BatchSize::SmallInput,
            )
        });
        // Without routing or the result cache the server does not classify.
        group.bench_function(format!("{name}/after_unclassified"), |b| {
            b.iter_batched_ref(
                &mut fresh,
                |sql| {
                    black_box(
                        classifier
                            .analyze_with(black_box(sql.as_str()), pgtide_sql::ClassifyMode::No),
                    )
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
