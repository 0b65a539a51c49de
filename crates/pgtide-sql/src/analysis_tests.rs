//! The one-pass [`analyze`] against the functions it replaces, input by input: every string
//! literal of the crate's test files, the annotated corpus (whole files, blocks and lines), every
//! prefix of a few tricky strings, and random SQL-ish statements (deterministic xorshift).

use crate::test_rng::XorShift;
use crate::{
    all_session_effects, analyze, changes_schema, classify_uncached, fingerprint_with_params,
    statement_names, Analysis, Classifier, ClassifyMode,
};

const TEST_SOURCES: &[&str] = &[
    include_str!("lexer_tests.rs"),
    include_str!("session_tests.rs"),
    include_str!("set_tests.rs"),
    include_str!("fuzz_tests.rs"),
    include_str!("fingerprint_tests.rs"),
    include_str!("prepared.rs"),
    include_str!("classify/tests.rs"),
    include_str!("classify/statements_tests.rs"),
    include_str!("classify/fuzz_tests.rs"),
    include_str!("classify/limits_tests.rs"),
    include_str!("classify/standby_tests.rs"),
];

const CORPUS: &[&str] = &[
    include_str!("../tests/corpus/django.sql"),
    include_str!("../tests/corpus/hibernate.sql"),
    include_str!("../tests/corpus/pgbench.sql"),
    include_str!("../tests/corpus/postgres_docs.sql"),
    include_str!("../tests/corpus/prisma.sql"),
    include_str!("../tests/corpus/rails.sql"),
    include_str!("../tests/corpus/sqlalchemy.sql"),
    include_str!("../tests/corpus/standby.sql"),
    include_str!("../tests/corpus/writes.sql"),
];

/// The string literals of a Rust source (plain and raw), escapes decoded. Imperfect on purpose
/// is fine: whatever comes out is one more input.
fn literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\'' && b.get(i + 1) == Some(&b'"') && b.get(i + 2) == Some(&b'\'') {
            i += 3;
        } else if b[i] == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            let open = i + 1 + hashes;
            if b.get(open) != Some(&b'"') {
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            match src[open + 1..].find(&close) {
                Some(p) => {
                    out.push(src[open + 1..open + 1 + p].to_string());
                    i = open + 1 + p + close.len();
                }
                None => break,
            }
        } else if b[i] == b'"' {
            let mut s = String::new();
            let mut j = i + 1;
            let mut chars = src[j..].char_indices();
            while let Some((k, c)) = chars.next() {
                match c {
                    '"' => {
                        j += k + 1;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => s.push('\n'),
                        Some((_, 't')) => s.push('\t'),
                        Some((_, 'r')) => s.push('\r'),
                        Some((_, '0')) => s.push('\0'),
                        Some((_, '\n')) => {
                            while chars.clone().next().is_some_and(|(_, c)| c.is_whitespace()) {
                                chars.next();
                            }
                        }
                        Some((_, 'u')) => {
                            let hex: String = chars
                                .by_ref()
                                .map(|(_, c)| c)
                                .take_while(|c| *c != '}')
                                .filter(char::is_ascii_hexdigit)
                                .collect();
                            let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                            s.push(c.unwrap_or('?'));
                        }
                        Some((_, c)) => s.push(c),
                        None => {}
                    },
                    c => s.push(c),
                }
                j = i + 1 + k + c.len_utf8();
            }
            out.push(s);
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

const TRICKY: &[&str] = &[
    "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
    "  /* pgtide:replica */ SELECT 1; -- pgtide:primary\n SELECT 2 /* unterminated",
    "PREPARE p (int) AS SELECT $1; EXECUTE p(1); DEALLOCATE p; EXPLAIN ANALYZE EXECUTE p(2)",
    "BEGIN; SET search_path TO a, \"B\"; CREATE TEMP TABLE t AS SELECT pg_advisory_lock(1); COMMIT",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; DROP TABLE x; SELECT 'a;b'",
    "SELECT * FROM t WHERE a IN (1, 2, -3) AND b = ANY(ARRAY[1,2]) ORDER BY 1; VALUES (1), (2)",
    "EXPLAIN (ANALYZE) WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d; SELECT set_config('a.b', 'c', false)",
];

const WORDS: &[&str] = &[
    "SELECT",
    "select",
    "INSERT INTO",
    "UPDATE",
    "DELETE FROM",
    "WITH",
    "VALUES",
    "FROM",
    "WHERE",
    "JOIN",
    "ON",
    "AS",
    "SET",
    "RESET",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "TO",
    "SAVEPOINT",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "ALL",
    "CREATE",
    "TEMP",
    "TABLE",
    "ALTER",
    "DROP",
    "LISTEN",
    "UNLISTEN",
    "DISCARD",
    "EXPLAIN",
    "ANALYZE",
    "COPY",
    "STDOUT",
    "FOR UPDATE",
    "DO",
    "DECLARE",
    "WITH HOLD",
    "CLOSE",
    "LOAD",
    "IN",
    "ORDER BY",
    "LIMIT",
    "RETURNING",
    "t",
    "u.a",
    "\"Q\"",
    "x",
    "pgbench_accounts",
    "abalance",
    "aid",
    "pg_advisory_lock(1)",
    "set_config('a', 'b', false)",
    "now()",
    "nextval('s')",
    "audit.log_event(1)",
    "pg_temp.t",
    "1",
    "-2.5e3",
    "$1",
    "'str'",
    "E'\\n'",
    "$$body$$",
    "U&'\\0041'",
    "B'10'",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "::int",
    "=",
    "<>",
    ";",
    ";",
    " ; ",
    "/* c */",
    "-- pgtide:replica\n",
    "/* pgtide:primary */",
    "/* open",
    "'open",
    "\"open",
    "$q$ open",
    "*",
    "READ ONLY",
    "SERIALIZABLE",
    "TRANSACTION",
    "AND",
    "OR",
    "NOT",
];

fn random_statements(n: usize) -> Vec<String> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            let len = 1 + (rng.next() % 14) as usize;
            let mut s = String::new();
            for _ in 0..len {
                s.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
                if !rng.next().is_multiple_of(5) {
                    s.push(' ');
                }
            }
            s
        })
        .collect()
}

fn inputs() -> Vec<String> {
    let mut all: Vec<String> = TEST_SOURCES.iter().flat_map(|s| literals(s)).collect();
    for file in CORPUS {
        all.push(file.to_string());
        all.extend(file.split("-- expect:").map(str::to_string));
        all.extend(file.lines().map(str::to_string));
    }
    for t in TRICKY {
        all.extend(t.char_indices().map(|(i, _)| t[..i].to_string()));
        all.push(t.to_string());
    }
    all.extend(random_statements(4_000));
    all
}

fn check(sql: &str, classifier: &Classifier, extra: &[String]) {
    let a = analyze(sql);
    assert_eq!(a.effects, all_session_effects(sql), "effects of {sql:?}");
    assert_eq!(a.names, statement_names(sql), "names in {sql:?}");
    assert_eq!(
        a.changes_schema,
        changes_schema(sql),
        "schema change {sql:?}"
    );
    assert_eq!(
        a.classification.as_deref(),
        Some(&classify_uncached(sql, &[])),
        "class of {sql:?}"
    );
    let (fp, params) = fingerprint_with_params(sql);
    assert_eq!(a.fingerprint, fp, "fingerprint of {sql:?}");
    assert_eq!(a.params_hash, params, "params of {sql:?}");
    let with_extra = classifier.analyze(sql);
    assert_eq!(
        with_extra.classification.as_deref(),
        Some(&classify_uncached(sql, extra)),
        "class (write functions) of {sql:?}"
    );
    // A plain read is a read by the classifier too, with or without configured write
    // functions, unless the parser rejects it (the classifier then says "write, unknown"; a
    // statement of this shape that PostgreSQL accepts runs no function it could not see).
    // Asked "unless plain read", everything else is classified as usual.
    if a.plain_read {
        let rejected =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .is_err();
        for class in [
            a.classification.as_deref(),
            with_extra.classification.as_deref(),
        ] {
            let class = class.expect("classified");
            assert!(
                class.kind == crate::StatementKind::Read || rejected,
                "plain read {sql:?}: {class:?}"
            );
            assert!(class.writes.is_empty() && a.effects.is_empty(), "{sql:?}");
        }
    }
    let for_writes = classifier.analyze_with(sql, ClassifyMode::UnlessPlainRead);
    assert_eq!(
        for_writes.classification.is_none(),
        a.plain_read,
        "classified unless a plain read: {sql:?}"
    );
    let unclassified = classifier.analyze_with(sql, ClassifyMode::No);
    assert_eq!(unclassified.classification, None);
    assert_eq!(
        Analysis {
            classification: a.classification.clone(),
            ..unclassified
        },
        a
    );
}

#[test]
fn one_pass_equals_the_separate_functions() {
    let extra = vec!["audit.log_event".to_string(), "nextval".to_string()];
    let classifier = Classifier::new(&extra);
    let inputs = inputs();
    assert!(inputs.len() > 5_000, "{}", inputs.len());
    for sql in &inputs {
        check(sql, &classifier, &extra);
    }
}

#[test]
fn a_pgbench_statement_is_lexed_once_and_never_parsed() {
    let classifier = Classifier::new(&[]);
    let before = crate::counts();
    let a = classifier.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;");
    let after = crate::counts();
    assert_eq!(after.lexes - before.lexes, 1);
    assert_eq!(after.classifications - before.classifications, 1);
    assert_eq!(after.fingerprints - before.fingerprints, 1);
    assert_eq!(classifier.cached_entries(), 0);
    assert_eq!(
        a.fingerprint.text,
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    );
    let reads = a.classification.map(|c| c.reads.clone());
    assert_eq!(reads, Some(vec!["pgbench_accounts".to_string()]));
    assert!(a.plain_read);
    let before = crate::counts();
    let a = classifier.analyze_with(
        "SELECT abalance FROM pgbench_accounts WHERE aid = 5;",
        ClassifyMode::No,
    );
    assert!(a.classification.is_none());
    assert_eq!(crate::counts().classifications, before.classifications);
}

#[test]
fn plain_reads_are_lone_selects_without_calls_locks_into_or_escapes() {
    let plain = |sql: &str| analyze(sql).plain_read;
    for sql in [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "select a.x, b.y from a join b on a.id = b.id where a.v in (1, 2) order by 1 limit 5",
        "SELECT * FROM t WHERE x = $1 AND y <> 'it''s' OR z::int >= 3",
    ] {
        assert!(plain(sql), "{sql}");
    }
    for sql in [
        "SELECT nextval('s')",
        "SELECT pg_advisory_lock(1)",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * INTO t2 FROM t",
        "SELECT 1; SELECT 2",
        "INSERT INTO t VALUES (1)",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "SELECT U&\"set!005Fconfig\" UESCAPE '!' ('a', 'b', false)",
        "SELECT 1 ### 2",
        "SELECT * FROM t WHERE x = 'open",
        "SELECT \"f\"(1)",
    ] {
        assert!(!plain(sql), "{sql}");
    }
}
