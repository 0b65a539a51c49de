//! Runs the SQL work for N never-seen pgbench -S texts, for profiling with callgrind or perf:
//! `sql_pass_profile before|after|unclassified N`. Instruction counts per statement are steadier than time
//! on a shared machine: run with N and with 0 and divide the difference by N.

use std::fmt::Write;
use std::hint::black_box;

use pgtide_sql::Classifier;

#[path = "../benches/support/separate_passes.rs"]
mod separate_passes;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "after".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let classifier = Classifier::new(&[]);
    let mut sql = String::with_capacity(64);
    for i in 0..n {
        sql.clear();
        let _ = write!(
            sql,
            "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
            i + 1
        );
        let sql = black_box(sql.as_str());
        if mode == "before" {
            separate_passes::separate_passes(&classifier, sql);
        } else if mode == "unclassified" {
            black_box(classifier.analyze_with(sql, pgtide_sql::ClassifyMode::No));
        } else {
            black_box(classifier.analyze(sql));
        }
    }
}
