//! No input may panic `classify`: random bytes, SQL-ish noise, every prefix and suffix of tricky
//! statements, and a few thousand mutations of the corpus. Deterministic xorshift. The same
//! entry point is driven by `fuzz/fuzz_targets/classify.rs` under libFuzzer.

use super::{classify_uncached, Classifier, StatementKind};
use crate::test_rng::XorShift;

const TRICKY: &[&str] = &[
    "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 9) SELECT * FROM t",
    "WITH d AS (DELETE FROM \"A\".\"b\" RETURNING *) INSERT INTO x SELECT * FROM d",
    "SELECT * FROM ONLY a JOIN b USING (id) LEFT JOIN LATERAL (SELECT 1) l ON true FOR NO KEY UPDATE OF a",
    "EXPLAIN (ANALYZE, BUFFERS off) COPY (SELECT nextval('s')) TO STDOUT",
    "COPY (SELECT 1) TO STDOUT; PREPARE p (int) AS SELECT $1; EXECUTE p(1); DEALLOCATE p",
    "BEGIN READ ONLY; SET TRANSACTION READ WRITE; ROLLBACK TO SAVEPOINT s; COMMIT PREPARED 'x'",
    "SELECT x IS DISTINCT FROM y, extract(year from d), substring(s from 1 for 2) FROM t /* pgtide:replica */",
    "MERGE INTO t USING s ON s.id = t.id WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3",
    "SELECT U&\"d\\0061t\\+000061\", E'\\x41', $tag$ ; $tag$, B'101' FROM \"x\"\"y\" -- pgtide:primary",
    "UPDATE ONLY t AS x SET (a, b) = (SELECT 1, 2) FROM u, v WHERE x.id = u.id RETURNING *",
    "TABLE films; VALUES (1); SHOW ALL; TRUNCATE TABLE ONLY a, b *",
];

fn exercise(s: &str) {
    let c = classify_uncached(s, &["audit.log_event".to_string()]);
    assert!(c.statements <= s.len());
    if c.statements == 0 {
        assert_eq!(c.kind, StatementKind::Write, "{s:?}");
    }
    if c.statements > 1 {
        assert!(!matches!(c.kind, StatementKind::Transaction(_)), "{s:?}");
    }
}

fn corpus() -> Vec<&'static str> {
    [
        include_str!("../../tests/corpus/pgbench.sql"),
        include_str!("../../tests/corpus/rails.sql"),
        include_str!("../../tests/corpus/django.sql"),
        include_str!("../../tests/corpus/prisma.sql"),
        include_str!("../../tests/corpus/hibernate.sql"),
        include_str!("../../tests/corpus/sqlalchemy.sql"),
        include_str!("../../tests/corpus/postgres_docs.sql"),
        include_str!("../../tests/corpus/writes.sql"),
    ]
    .into_iter()
    .flat_map(crate::lexer::split_statements)
    .chain(TRICKY.iter().copied())
    .collect()
}

#[test]
fn every_prefix_and_suffix_of_tricky_statements() {
    for sql in TRICKY {
        for cut in (0..=sql.len()).filter(|&i| sql.is_char_boundary(i)) {
            exercise(&sql[..cut]);
            exercise(&sql[cut..]);
        }
    }
}

#[test]
fn random_bytes() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let len = rng.below(120);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_sql_ish_noise() {
    const PIECES: &[&str] = &[
        "SELECT ",
        "FROM ",
        "WHERE ",
        "JOIN ",
        "LEFT ",
        "ON ",
        "USING ",
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        ";",
        "'",
        "\"",
        "$1",
        "$$",
        "$a$",
        "--",
        "/*",
        "*/",
        "::",
        "=",
        "+",
        "-",
        "*",
        "1",
        "t",
        "\"T\"",
        "ONLY ",
        "LATERAL ",
        "WITH ",
        "AS ",
        "INSERT ",
        "INTO ",
        "VALUES ",
        "UPDATE ",
        "SET ",
        "DELETE ",
        "RETURNING ",
        "FOR ",
        "NO ",
        "KEY ",
        "SHARE ",
        "UPDATE ",
        "EXPLAIN ",
        "ANALYZE ",
        "COPY ",
        "TO ",
        "STDOUT ",
        "PREPARE ",
        "TRANSACTION ",
        "BEGIN ",
        "READ ",
        "ONLY ",
        "COMMIT ",
        "ROLLBACK ",
        "nextval(",
        "now() ",
        "pgtide:replica ",
        "UNION ",
        "TABLE ",
        "IS ",
        "DISTINCT ",
        "NOT ",
        "CASE ",
        "END ",
        "é",
        "\u{0}",
        "\n",
    ];
    let mut rng = XorShift(42);
    for _ in 0..5000 {
        let n = rng.below(30);
        let s: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        exercise(&s);
    }
}

#[test]
fn mutated_corpus() {
    let corpus = corpus();
    let mut rng = XorShift(7);
    for _ in 0..4000 {
        let mut b = corpus[rng.below(corpus.len())].as_bytes().to_vec();
        for _ in 0..=rng.below(6) {
            if b.is_empty() {
                break;
            }
            let i = rng.below(b.len());
            match rng.below(5) {
                0 => b[i] = rng.next() as u8,
                1 => {
                    b.remove(i);
                }
                2 => b.insert(i, b"'\"$;()[]\\-*/,."[rng.below(14)]),
                3 => {
                    // Splice a piece of another statement in.
                    let other = corpus[rng.below(corpus.len())].as_bytes();
                    let from = rng.below(other.len());
                    let to = (from + rng.below(40)).min(other.len());
                    b.splice(i..i, other[from..to].iter().copied());
                }
                _ => b.truncate(i),
            }
        }
        exercise(&String::from_utf8_lossy(&b));
    }
}

#[test]
fn the_cache_gives_what_classify_uncached_gives() {
    let classifier = Classifier::new(&[]);
    let corpus = corpus();
    for _ in 0..2 {
        for sql in &corpus {
            assert_eq!(
                *classifier.classify(sql),
                classify_uncached(sql, &[]),
                "{sql}"
            );
        }
    }
}
