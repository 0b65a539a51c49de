use super::keywords::{keyword, KEYWORDS, KINDS, RESERVED};
use super::*;

fn fp(sql: &str) -> String {
    fingerprint(sql).text
}

fn same(a: &str, b: &str) {
    let (fa, fb) = (fingerprint(a), fingerprint(b));
    assert_eq!(fa, fb, "\n  {a}\n  {b}");
}

fn differ(a: &str, b: &str) {
    let (fa, fb) = (fingerprint(a), fingerprint(b));
    assert_ne!(fa.text, fb.text, "\n  {a}\n  {b}");
    assert_ne!(fa.id, fb.id);
}

#[test]
fn literals_and_parameters_become_numbered_placeholders() {
    assert_eq!(
        fp("SELECT * FROM users WHERE id = 42"),
        "SELECT * FROM users WHERE id = $1"
    );
    assert_eq!(
        fp("select name from users where email = 'a@b.c' and age > $7 limit 10"),
        "SELECT name FROM users WHERE email = $1 AND age > $2 LIMIT $3"
    );
    assert_eq!(
        fp("SELECT E'a\\nb', $q$it's$q$, B'101', X'ff', U&'d\\0061', N'n', 1.5e-3, .5, 0x1F"),
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9"
    );
    assert_eq!(fp("SELECT $$body; with ; semicolons$$"), "SELECT $1");
    assert_eq!(
        fp("SELECT x FROM t WHERE b = TRUE AND c IS NULL AND d = false"),
        "SELECT x FROM t WHERE b = TRUE AND c IS NULL AND d = FALSE"
    );
}

#[test]
fn spacing_case_comments_and_hints_do_not_matter() {
    let variants = [
        "SELECT id, name FROM users WHERE id = $1",
        "select id,name from users where id=$1",
        "  SELECT\n\tid ,  name\nFROM USERS\r\nWHERE ID = 7 ;",
        "/* pgtide:replica */ SELECT id, name FROM users WHERE id = 99",
        "SELECT id, name -- the user\nFROM users /* by id */ WHERE id = '7'",
        "SELECT \"id\", \"name\" FROM \"users\" WHERE \"id\" = $2",
    ];
    for v in &variants[1..] {
        same(variants[0], v);
    }
    assert_eq!(fp(variants[0]), "SELECT id, name FROM users WHERE id = $1");
}

#[test]
fn in_lists_arrays_and_values_rows_of_any_length_collapse() {
    same(
        "SELECT * FROM t WHERE id IN (1, 2, 3)",
        "SELECT * FROM t WHERE id IN (42)",
    );
    same(
        "SELECT * FROM t WHERE id IN ($1, $2, $3, $4)",
        "SELECT * FROM t WHERE id IN ('a')",
    );
    same(
        "SELECT * FROM t WHERE id NOT IN (-1, +2, 3::bigint, '4'::numeric(10, 2))",
        "SELECT * FROM t WHERE id NOT IN (5)",
    );
    assert_eq!(
        fp("SELECT * FROM t WHERE id IN (1, 2, 3)"),
        "SELECT * FROM t WHERE id IN ($1)"
    );
    same(
        "SELECT * FROM t WHERE id = ANY(ARRAY[1, 2, 3])",
        "SELECT * FROM t WHERE id = ANY (ARRAY[7])",
    );
    assert_eq!(
        fp("SELECT * FROM t WHERE id = ANY(ARRAY[1,2])"),
        "SELECT * FROM t WHERE id = ANY(ARRAY[$1])"
    );
    same(
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, now())",
        "insert into t(a,b) values ($1, $2)",
    );
    assert_eq!(
        fp("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y') RETURNING id"),
        "INSERT INTO t (a, b) VALUES ($1, $2) RETURNING id"
    );
    same(
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v (id, name)",
        "SELECT * FROM (VALUES (9, 'z')) AS v (id, name)",
    );
    // A subquery or a column list is structure, not a list of constants.
    assert_eq!(
        fp("SELECT 1 FROM t WHERE id IN (SELECT id FROM u WHERE x = 2)"),
        "SELECT $1 FROM t WHERE id IN (SELECT id FROM u WHERE x = $2)"
    );
    differ(
        "SELECT 1 FROM t WHERE a IN (b, c)",
        "SELECT 1 FROM t WHERE a IN (1, 2)",
    );
}

#[test]
fn different_structure_different_fingerprint() {
    differ("SELECT a FROM t", "SELECT b FROM t");
    differ(
        "SELECT * FROM t WHERE id = 1",
        "SELECT * FROM t WHERE id > 1",
    );
    differ("SELECT * FROM users", "SELECT * FROM \"Users\"");
    differ("SELECT * FROM t ORDER BY 1", "SELECT * FROM t ORDER BY 2");
    differ(
        "SELECT * FROM t WHERE b = TRUE",
        "SELECT * FROM t WHERE b = FALSE",
    );
    differ("SELECT a - 1 FROM t", "SELECT a + 1 FROM t");
    differ("SELECT 1", "SELECT 1, 2");
    differ("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1, 2)");
    differ("SELECT f(1)", "SELECT g(1)");
}

#[test]
fn signs_positions_and_spacing_rules() {
    same(
        "SELECT * FROM t WHERE x = -1",
        "SELECT * FROM t WHERE x = 5",
    );
    same(
        "SELECT * FROM t WHERE x=-1.5",
        "SELECT * FROM t WHERE x = +2",
    );
    assert_eq!(fp("SELECT a - 1 FROM t"), "SELECT a - $1 FROM t");
    assert_eq!(
        fp("SELECT CASE WHEN a THEN 1 END - 1"),
        "SELECT CASE WHEN a THEN $1 END - $2"
    );
    assert_eq!(
        fp("select a, count(*) from t group by 1 order by 2 desc, a limit 5"),
        "SELECT a, count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, a LIMIT $1"
    );
    assert_eq!(
        fp("SELECT * FROM t ORDER BY a + 1"),
        "SELECT * FROM t ORDER BY a + $1"
    );
    assert_eq!(
        fp("SELECT t.*, x[1], $1::text[], a != b FROM s.t"),
        "SELECT t.*, x[$1], $2::text[], a <> b FROM s.t"
    );
    assert_eq!(fp("SELECT 1;"), "SELECT $1");
    assert_eq!(fp("SELECT 1; ; select 2;"), "SELECT $1; SELECT $2");
    assert_eq!(
        fp("BEGIN ISOLATION LEVEL READ COMMITTED"),
        "BEGIN ISOLATION LEVEL READ COMMITTED"
    );
    assert_eq!(fp(""), "");
    assert_eq!(fp("  -- only a comment"), "");
}

#[test]
fn quoted_identifiers_keep_their_case() {
    assert_eq!(
        fp("SELECT \"Name\", \"x y\", \"users\", \"select\" FROM \"MyTable\""),
        "SELECT \"Name\", \"x y\", users, \"select\" FROM \"MyTable\""
    );
    same("SELECT café FROM t", "SELECT CAFé FROM t");
}

#[test]
fn fingerprints_are_fixed_points() {
    for sql in [
        "SELECT id, name FROM users WHERE id = 7",
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y') ON CONFLICT (a) DO NOTHING",
        "SELECT * FROM t WHERE id IN (1, 2) AND x = ANY(ARRAY[3, 4]) ORDER BY 1 LIMIT 10",
        "UPDATE accounts SET balance = balance + -5 WHERE id = $1",
        "SELECT \"Users\".\"Email\" FROM \"Users\"",
    ] {
        let once = fingerprint(sql);
        assert_eq!(fingerprint(&once.text), once, "{sql}");
    }
}

#[test]
fn ids_are_stable_hashes_of_the_text() {
    let f = fingerprint("SELECT 1");
    assert_eq!(f.id, stable_hash(b"SELECT $1"));
    // Fixed keys: the same in every process (pinned so a change is deliberate).
    assert_eq!(stable_hash(b""), stable_hash(b""));
    assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
    assert_ne!(stable_hash(b"12345678a"), stable_hash(b"12345678b"));
}

#[test]
fn params_hash_tells_literal_values_apart() {
    let a = params_hash("SELECT * FROM t WHERE id = 1");
    assert_eq!(a, params_hash("select * from t where id=1 -- x"));
    assert_ne!(a, params_hash("SELECT * FROM t WHERE id = 2"));
    assert_ne!(a, params_hash("SELECT * FROM t WHERE id = -1"));
    assert_ne!(
        params_hash("SELECT * FROM t WHERE id IN (1, 2, 3)"),
        params_hash("SELECT * FROM t WHERE id IN (1, 2, 4)")
    );
    assert_ne!(
        params_hash("INSERT INTO t VALUES (1), (2)"),
        params_hash("INSERT INTO t VALUES (1), (3)")
    );
    assert_ne!(
        params_hash("SELECT 'a', 'b'"),
        params_hash("SELECT 'b', 'a'")
    );
    assert_eq!(params_hash("SELECT now()"), params_hash("SELECT now() "));
    let (f, p) = fingerprint_with_params("SELECT * FROM t WHERE id IN (1, 2, 3)");
    assert_eq!(f, fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3)"));
    assert_eq!(p, params_hash("SELECT * FROM t WHERE id IN (1, 2, 3)"));
}

#[test]
fn unterminated_and_odd_input() {
    for sql in [
        "SELECT 'unterminated",
        "SELECT $a$ never closed",
        "SELECT \"open",
        "SELECT /* open comment",
        "IN (",
        "IN (1, 2",
        "VALUES (1), (2",
        "ARRAY[1,",
        "ORDER BY 1",
        "- 1",
        ")))(((",
        "$ { } \\ ;;;",
        "SELECT x::numeric(10, IN (1)",
    ] {
        let f = fingerprint(sql);
        assert_eq!(f.id, stable_hash(f.text.as_bytes()));
        let _ = params_hash(sql);
    }
    assert_eq!(fp("IN (1, 2"), "IN ($1, $2");
}

#[test]
fn keyword_tables_are_sorted_and_every_keyword_is_found() {
    assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    assert!(KEYWORDS.iter().all(|k| k.len() <= 17 && k.len() >= 2));
    assert!(KEYWORDS.iter().all(|k| keyword(k).is_some()));
    assert!(keyword(&k_upper("SELECT")).is_some());
    assert!(keyword("Current_Timestamp") == Some(Kw::Value) && keyword("IN") == Some(Kw::In));
    assert!(keyword("users").is_none() && keyword("_x").is_none() && keyword("é").is_none());
    // Every kind group names real keywords.
    for k in [
        "into",
        "order",
        "any",
        "array",
        "values",
        "nulls",
        "localtimestamp",
        "user",
    ] {
        assert!(keyword(k).is_some_and(|kw| kw != Kw::Plain), "{k}");
    }
}

/// The hashed lookup answers exactly as a scan of the list would, kind included, in any case;
/// near misses (one character changed to `_`, DEL, `?`, a digit, `$` or `é`, one added or
/// removed) answer as the scan does too.
#[test]
fn keyword_lookup_equals_a_scan_of_the_list() {
    let scan = |w: &str| {
        KEYWORDS
            .iter()
            .position(|k| k.eq_ignore_ascii_case(w))
            .map(|i| KINDS[i])
    };
    let mut words: Vec<String> = Vec::new();
    for k in KEYWORDS {
        words.push(k.to_string());
        words.push(k_upper(k));
        words.push(format!("{k}s"));
        words.push(k[..k.len() - 1].to_string());
        for i in 0..k.len() {
            for c in ["_", "\x7f", "?", "1", "$", "é"] {
                words.push(format!("{}{c}{}", &k[..i], &k[i + 1..]));
            }
        }
    }
    words.extend(["é", "", "a", "pgbench_accounts", "abalance", "aid"].map(String::from));
    for w in &words {
        assert_eq!(keyword(w), scan(w), "{w:?}");
    }
}

fn k_upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

#[test]
fn quoted_words_that_need_no_quotes_are_the_same_identifier() {
    same("SELECT \"level\" FROM logs", "SELECT level FROM logs");
    same("SELECT \"read\" FROM \"logs\"", "select READ from logs");
    differ("SELECT \"select\" FROM t", "SELECT 1 FROM t");
    assert_eq!(
        fp("SELECT \"order\", \"values\" FROM t"),
        "SELECT \"order\", \"values\" FROM t"
    );
    assert!(RESERVED.windows(2).all(|w| w[0] < w[1]));
    assert!(
        RESERVED.iter().all(|k| keyword(k).is_some()),
        "RESERVED ⊂ KEYWORDS"
    );
}
