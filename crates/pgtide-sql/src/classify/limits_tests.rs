//! Limits (deep, long and huge input, stack use) and the fast path's agreement with sqlparser.

use super::{classify_uncached, Classification, StatementKind as K};

fn c(sql: &str) -> Classification {
    classify_uncached(sql, &[])
}

fn kind(sql: &str) -> K {
    c(sql).kind
}

#[track_caller]
fn rw(sql: &str, k: K, reads: &[&str], writes: &[&str]) {
    let got = c(sql);
    let v = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        (got.kind, got.reads, got.writes),
        (k, v(reads), v(writes)),
        "{sql}"
    );
}

#[test]
fn deep_or_huge_input_is_a_write_without_parsing() {
    let deep = format!(
        "SELECT {}1{} FROM (SELECT 1) s",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert_eq!(kind(&deep), K::Write);
    let deep = format!(
        "SELECT * FROM t WHERE x IN {}1{}",
        "(SELECT ".repeat(5000),
        ")".repeat(5000)
    );
    assert_eq!(kind(&deep), K::Write);
    // Nothing to parse: the fast path answers without recursion.
    let deep = format!("SELECT {}1{} FROM t", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(kind(&deep), K::Read);
    let chain = format!(
        "WITH x AS (SELECT 1) SELECT 1{} FROM x",
        " + 1".repeat(50_000)
    );
    assert_eq!(kind(&chain), K::Write);
    let not = format!(
        "SELECT * FROM t WHERE {} true UNION SELECT 1",
        "NOT ".repeat(50_000)
    );
    assert_eq!(kind(&not), K::Write);
    // A write sqlparser is not given still names its target.
    let upd = format!(
        "UPDATE ONLY t SET a = (SELECT {}1{})",
        "(".repeat(100),
        ")".repeat(100)
    );
    rw(&upd, K::Write, &[], &["t"]);
    let long = format!(
        "WITH d AS (DELETE FROM x RETURNING *) INSERT INTO \"Y\"(a) SELECT 1{}",
        " + 1".repeat(3_000)
    );
    rw(&long, K::Write, &[], &["x", "\"Y\""]);
    // Not targets: FOR UPDATE OF, DO UPDATE SET, a column named like a keyword.
    let odd = format!(
        "INSERT INTO t (a) SELECT 1 FROM u{} ON CONFLICT (a) DO UPDATE SET a = t.update FOR UPDATE OF u",
        " + 1".repeat(6_000)
    );
    rw(&odd, K::Write, &[], &["t"]);
    // Long but flat: the fast path still answers.
    let in_list: Vec<String> = (1..=20_000).map(|i| format!("${i}")).collect();
    let big = format!("SELECT * FROM t WHERE id IN ({})", in_list.join(", "));
    rw(&big, K::Read, &["t"], &[]);
    let rows: Vec<String> = (0..5_000).map(|i| format!("({i}, 'x')")).collect();
    let insert = format!("INSERT INTO t (a, b) VALUES {}", rows.join(", "));
    rw(&insert, K::Write, &[], &["t"]);
}

#[test]
fn the_deepest_accepted_input_parses_on_a_small_stack() {
    // Tokio worker threads have 2 MiB; run in 1 MiB in a debug build to keep a margin. Each
    // input ends in a UNION so that sqlparser (not the fast path) reads it, and each is a read:
    // the answer proves it was parsed and walked, not refused.
    let depth = super::scan::MAX_DEPTH as usize;
    let ops = super::scan::MAX_OPERATORS as usize - 2;
    let inputs = vec![
        format!("SELECT {}1{} FROM t", "(".repeat(depth), ")".repeat(depth)),
        format!("SELECT {}1{}", "ARRAY[".repeat(depth), "]".repeat(depth)),
        format!("SELECT 1 {} FROM t", "+ 1 ".repeat(ops)),
        format!("SELECT x{} FROM t", "::int".repeat(ops)),
        format!("SELECT x{} FROM t", "[1]".repeat(ops)),
        format!("SELECT 1{}", " UNION SELECT 1".repeat(ops)),
        format!("SELECT a{}", " AND a".repeat(ops)),
        format!("SELECT a{}", " || a".repeat(ops)),
    ];
    // Refused by sqlparser's own recursion limit (a write, safely): each of these levels
    // costs it several recursion steps.
    let refused_by_parser = vec![
        format!("SELECT {}1{}", "(SELECT ".repeat(depth), ")".repeat(depth)),
        format!("SELECT * FROM t WHERE {} true", "NOT ".repeat(ops)),
        format!("SELECT * FROM t WHERE {} 1 = 1", "- ".repeat(ops)),
        format!(
            "SELECT CASE {} END",
            "WHEN a THEN CASE ".repeat(depth) + &"1 END ".repeat(depth)
        ),
    ];
    let realistic = format!("SELECT {}1{}", "(SELECT ".repeat(12), ")".repeat(12));
    let h = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let union = |sql: String| format!("{sql} UNION ALL SELECT 1");
            for sql in refused_by_parser {
                assert_eq!(classify_uncached(&union(sql), &[]).kind, K::Write);
            }
            assert_eq!(classify_uncached(&union(realistic), &[]).kind, K::Read);
            inputs
                .into_iter()
                .map(union)
                .filter(|sql| classify_uncached(sql, &[]).kind != K::Read)
                .map(|sql| sql.chars().take(80).collect::<String>())
                .collect::<Vec<_>>()
        })
        .expect("spawn");
    let refused = h.join().expect("no stack overflow");
    assert!(refused.is_empty(), "not parsed: {refused:#?}");
}

#[test]
fn fast_path_agrees_with_sqlparser() {
    // Every statement the fast path answers must get the same answer from sqlparser.
    let corpus = [
        include_str!("../../tests/corpus/pgbench.sql"),
        include_str!("../../tests/corpus/rails.sql"),
        include_str!("../../tests/corpus/django.sql"),
        include_str!("../../tests/corpus/prisma.sql"),
        include_str!("../../tests/corpus/hibernate.sql"),
        include_str!("../../tests/corpus/sqlalchemy.sql"),
        include_str!("../../tests/corpus/postgres_docs.sql"),
        include_str!("../../tests/corpus/writes.sql"),
    ];
    let mut checked = 0;
    for file in corpus {
        for stmt in crate::lexer::split_statements(file) {
            let toks: Vec<_> = crate::lexer::tokens(stmt).collect();
            let Some(fast) = super::fast::relations(&toks) else {
                continue;
            };
            let Some(slow) = super::ast::parse(stmt) else {
                continue;
            };
            checked += 1;
            assert_eq!(
                (fast.reads, fast.writes),
                (slow.reads, slow.writes),
                "{stmt}"
            );
            let scan = super::scan::scan(&toks, stmt.len(), &[]);
            let fast_read = toks[0].is_kw("select") && !scan.lock && !scan.side_effect;
            let slow_read = slow.read_only && !scan.lock && !scan.side_effect;
            assert_eq!(fast_read, slow_read, "{stmt}");
        }
    }
    assert!(
        checked > 100,
        "only {checked} statements took the fast path"
    );
}

#[test]
fn typical_oltp_takes_the_fast_path() {
    for sql in [
        "SELECT id, name, email FROM users WHERE id = $1",
        "INSERT INTO orders (user_id, product_id, total) VALUES ($1, $2, $3)",
        "INSERT INTO t VALUES (1), (2)",
        r#"INSERT INTO "public"."Post" ("title","authorId") VALUES ($1,$2) RETURNING "public"."Post"."id""#,
        "INSERT INTO t AS x (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a",
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
        "UPDATE a SET x = b.x FROM b WHERE a.id = b.id",
        "SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id JOIN products p ON p.id = o.product_id WHERE o.created_at > $1 ORDER BY o.id LIMIT 50",
        r#"SELECT "users".* FROM "users" WHERE "users"."email" = $1 LIMIT $2"#,
        "DELETE FROM sessions WHERE id = $1",
        "DELETE FROM a USING b WHERE a.id = b.id RETURNING a.id",
        "SELECT count(*) FROM t WHERE x = ANY($1) GROUP BY y HAVING count(*) > 1",
        "SELECT * FROM t WHERE id = $1 FOR UPDATE",
        "SELECT now()",
    ] {
        let toks: Vec<_> = crate::lexer::tokens(sql).collect();
        assert!(super::fast::relations(&toks).is_some(), "{sql}");
    }
}
