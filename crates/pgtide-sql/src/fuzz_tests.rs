//! No input may panic: random bytes (lossy UTF-8), SQL-ish noise, and every prefix of a corpus
//! of tricky statements, fed to every entry point. Deterministic xorshift, no dependencies.

use crate::fingerprint::{fingerprint, params_hash};
use crate::lexer::{split_statements, Lexer};
use crate::session::{quote_ident, quote_literal, session_effects, startup_options_to_sets};
use crate::test_rng::XorShift;

const CORPUS: &[&str] = &[
    "SET search_path TO public, \"My Schema\"",
    "SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "SET \"my.guc\" = 1",
    "SET x=-1.5e-3",
    "RESET SESSION AUTHORIZATION",
    "SELECT pg_catalog.set_config('search_path', '\"$user\", public', false)",
    "SELECT set_config('a.b', E'x\\\\y\\u00e9\\101', 'f'::bool) AS r",
    "SELECT pg_advisory_lock(1), pg_advisory_unlock_all()",
    "SELECT * INTO LOCAL TEMP t FROM u",
    "CREATE OR REPLACE TEMP VIEW v AS SELECT 1",
    "CREATE TABLE pg_temp.t AS SELECT pg_try_advisory_lock(1)",
    "DECLARE \"C\" BINARY NO SCROLL CURSOR WITH HOLD FOR SELECT 1",
    "DEALLOCATE PREPARE ALL",
    "PREPARE TRANSACTION 'x'",
    "UNLISTEN *",
    "DO LANGUAGE plpgsql $fn$BEGIN EXECUTE format('SET %I = 1', n); END$fn$",
    "DO $$BEGIN IF true THEN SET a.b = 1; END IF; END$$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 2",
    "SELECT U&'d\\0061t\\+000061' UESCAPE '!', U&\"x\\+01F600\", B'1', X'ff', N'n'",
    "SELECT 1 /* nested /* comment */ ; */ -- tail ; \n ; SELECT $1::int[], a[1:2], x:=1",
    "SELECT 'café', \"naïve\", ℵ, E'\\xff\\777\\U0010FFFF\\U00110000'",
];

fn exercise(s: &str) {
    for t in Lexer::new(s) {
        assert!(!t.text.is_empty());
        assert_eq!(s.get(t.start..t.end()), Some(t.text));
        let _ = (t.ident(), t.string_value());
    }
    for stmt in split_statements(s) {
        assert!(!stmt.is_empty());
        let _ = session_effects(stmt);
    }
    let _ = session_effects(s);
    let _ = startup_options_to_sets(s);
    let _ = (quote_ident(s), quote_literal(s));
    let f = fingerprint(s);
    assert!(f.text.len() <= 8 * s.len() + 16);
    let _ = (fingerprint(&f.text), params_hash(s));
}

#[test]
fn every_prefix_of_the_corpus() {
    for sql in CORPUS {
        for end in (0..=sql.len()).filter(|&i| sql.is_char_boundary(i)) {
            exercise(&sql[..end]);
            exercise(&sql[end..]);
        }
    }
}

#[test]
fn random_bytes() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let len = rng.below(80);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_sql_ish_noise() {
    const PIECES: &[&str] = &[
        "'",
        "\"",
        "$",
        "$$",
        "$a$",
        "E'",
        "U&'",
        "U&\"",
        "\\",
        "--",
        "/*",
        "*/",
        ";",
        "(",
        ")",
        ",",
        ".",
        "::",
        ":",
        "=",
        "-",
        "+",
        "1",
        "e",
        "\n",
        " ",
        "SET ",
        "RESET ",
        "LOCAL ",
        "TIME ZONE ",
        "set_config(",
        "pg_advisory_lock(",
        "TEMP ",
        "INTO ",
        "SELECT ",
        "DO ",
        "CREATE ",
        "FUNCTION ",
        "BEGIN ",
        "ATOMIC ",
        "END ",
        "CASE ",
        "DEFAULT",
        "é",
        "\u{0}",
        "-c ",
        "--",
        "=",
        "WITH HOLD ",
        "EXECUTE ",
        "format(",
    ];
    let mut rng = XorShift(42);
    for _ in 0..4000 {
        let n = rng.below(24);
        let s: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        exercise(&s);
    }
}

#[test]
fn mutated_corpus() {
    let mut rng = XorShift(7);
    for _ in 0..2000 {
        let mut b = CORPUS[rng.below(CORPUS.len())].as_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            let i = rng.below(b.len());
            match rng.below(3) {
                0 => b[i] = rng.next() as u8,
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, b"'\"$;()\\-*/"[rng.below(10)]),
            }
        }
        exercise(&String::from_utf8_lossy(&b));
    }
}
