use crate::lexer::{split_statements, tokens, Lexer, StrKind, Token, TokenKind as K};

fn kinds(sql: &str) -> Vec<(K, &str)> {
    tokens(sql).map(|t| (t.kind, t.text)).collect()
}

fn one(sql: &str) -> Token<'_> {
    let v: Vec<_> = tokens(sql).collect();
    assert_eq!(v.len(), 1, "{sql}: {v:?}");
    v[0]
}

#[test]
fn identifiers_fold_and_quote() {
    assert_eq!(one("FooBar").ident().as_deref(), Some("foobar"));
    assert_eq!(one("foo_bar$1").ident().as_deref(), Some("foo_bar$1"));
    assert_eq!(
        one("\"My \"\"Col\"\"\"").ident().as_deref(),
        Some("My \"Col\"")
    );
    assert_eq!(one("\"my.guc\"").ident().as_deref(), Some("my.guc"));
    assert_eq!(one("café").ident().as_deref(), Some("café"));
    assert_eq!(
        one("U&\"d\\0061t\\+000061\"").ident().as_deref(),
        Some("data")
    );
    assert_eq!(one("'x'").ident(), None);
    assert!(one("SELECT").is_kw("select"));
    assert!(!one("\"select\"").is_kw("select"));
}

#[test]
fn standard_strings() {
    let t = one("'it''s'");
    assert_eq!(t.kind, K::String(StrKind::Standard));
    assert_eq!(t.string_value().as_deref(), Some("it's"));
    // standard_conforming_strings: the backslash is literal
    assert_eq!(one(r"'a\b'").string_value().as_deref(), Some(r"a\b"));
    assert_eq!(one("N'x'").string_value().as_deref(), Some("x"));
    assert_eq!(one("''").string_value().as_deref(), Some(""));
}

#[test]
fn escape_strings() {
    let t = one(r"E'a\'b\\c\n\x41\101\u00e9'");
    assert_eq!(t.kind, K::String(StrKind::Escape));
    assert_eq!(t.string_value().as_deref(), Some("a'b\\c\nAAé"));
    assert_eq!(one("e'x''y'").string_value().as_deref(), Some("x'y"));
    assert_eq!(one(r"E'\U0001F600'").string_value().as_deref(), Some("😀"));
    assert_eq!(one(r"E'\xff'").string_value(), None); // invalid UTF-8
}

#[test]
fn unicode_and_bit_strings() {
    let t = one(r"U&'d\0061t\+000061'");
    assert_eq!(t.kind, K::String(StrKind::Unicode));
    assert_eq!(t.string_value().as_deref(), Some("data"));
    assert_eq!(one("u&'a\\\\b'").string_value().as_deref(), Some("a\\b"));
    assert_eq!(one("B'1010'").kind, K::String(StrKind::Bit));
    assert_eq!(one("X'FF'").string_value(), None);
}

#[test]
fn dollar_quotes() {
    let t = one("$$it's; a -- test$$");
    assert_eq!(t.kind, K::String(StrKind::Dollar));
    assert_eq!(t.string_value().as_deref(), Some("it's; a -- test"));
    let t = one("$fn$ body $$ inner $$ $fn$");
    assert_eq!(t.string_value().as_deref(), Some(" body $$ inner $$ "));
    assert_eq!(one("$$$$").string_value().as_deref(), Some(""));
    // `$1` is a parameter and `a$b` an identifier, not dollar quotes
    assert_eq!(kinds("a$b $1"), vec![(K::Ident, "a$b"), (K::Param, "$1")]);
}

#[test]
fn unterminated_runs_to_end() {
    for sql in ["'abc", "E'ab\\'", "$x$ abc", "\"abc", "/* a /* b */"] {
        let all: Vec<_> = Lexer::new(sql).collect();
        assert_eq!(all.len(), 1, "{sql}");
        assert!(!all[0].complete, "{sql}");
        assert_eq!(all[0].text, sql);
        assert_eq!(all[0].string_value(), None);
    }
}

#[test]
fn comments() {
    let all: Vec<_> = Lexer::new("a -- x ; y\nb /* c /* nested */ d; */ e").collect();
    let k: Vec<_> = all.iter().map(|t| (t.kind, t.text)).collect();
    assert_eq!(
        k,
        vec![
            (K::Ident, "a"),
            (K::Comment, "-- x ; y"),
            (K::Ident, "b"),
            (K::Comment, "/* c /* nested */ d; */"),
            (K::Ident, "e"),
        ]
    );
    assert_eq!(kinds("a--b"), vec![(K::Ident, "a")]);
    assert_eq!(
        kinds("x=--c\n1"),
        vec![(K::Ident, "x"), (K::Operator, "="), (K::Number, "1")]
    );
}

#[test]
fn numbers_params_casts() {
    assert_eq!(
        kinds("1 1.5 .5 1e10 2.5E-3 0x1F 1_000 $12"),
        vec![
            (K::Number, "1"),
            (K::Number, "1.5"),
            (K::Number, ".5"),
            (K::Number, "1e10"),
            (K::Number, "2.5E-3"),
            (K::Number, "0x1F"),
            (K::Number, "1_000"),
            (K::Param, "$12"),
        ]
    );
    assert_eq!(
        kinds("'1'::int[]"),
        vec![
            (K::String(StrKind::Standard), "'1'"),
            (K::Cast, "::"),
            (K::Ident, "int"),
            (K::LBracket, "["),
            (K::RBracket, "]"),
        ]
    );
    assert_eq!(kinds("a[1:2]")[3], (K::Colon, ":"));
    assert_eq!(kinds("1..2")[0], (K::Number, "1"));
}

#[test]
fn operators_and_punctuation() {
    assert_eq!(
        kinds("a<>b||c->>'k' x:=1 f(a, b).c;"),
        vec![
            (K::Ident, "a"),
            (K::Operator, "<>"),
            (K::Ident, "b"),
            (K::Operator, "||"),
            (K::Ident, "c"),
            (K::Operator, "->>"),
            (K::String(StrKind::Standard), "'k'"),
            (K::Ident, "x"),
            (K::Operator, ":="),
            (K::Number, "1"),
            (K::Ident, "f"),
            (K::LParen, "("),
            (K::Ident, "a"),
            (K::Comma, ","),
            (K::Ident, "b"),
            (K::RParen, ")"),
            (K::Dot, "."),
            (K::Ident, "c"),
            (K::Semicolon, ";"),
        ]
    );
    // A trailing sign is split off an operator, as PostgreSQL does
    assert_eq!(
        kinds("x=-1"),
        vec![
            (K::Ident, "x"),
            (K::Operator, "="),
            (K::Operator, "-"),
            (K::Number, "1")
        ]
    );
    assert_eq!(kinds("a@-1")[1], (K::Operator, "@-"));
    assert_eq!(kinds("\\ {")[0], (K::Other, "\\"));
}

#[test]
fn offsets_are_exact() {
    let sql = "SELECT  'a' , $x$b$x$";
    for t in Lexer::new(sql) {
        assert_eq!(&sql[t.start..t.end()], t.text);
    }
}

#[test]
fn split_simple() {
    assert_eq!(
        split_statements("SELECT 1; SELECT 2"),
        vec!["SELECT 1", "SELECT 2"]
    );
    assert_eq!(split_statements("SELECT 1;"), vec!["SELECT 1"]);
    assert_eq!(split_statements("  ;; SELECT 1 ;  ; "), vec!["SELECT 1"]);
    assert!(split_statements("").is_empty());
    assert!(split_statements(" ; -- only a comment\n ; /* c */").is_empty());
    assert_eq!(split_statements("SELECT 1; -- trailing"), vec!["SELECT 1"]);
}

#[test]
fn split_respects_quotes_and_comments() {
    assert_eq!(
        split_statements("SELECT 'a;b'; SELECT \"c;d\"; SELECT E'\\';'"),
        vec!["SELECT 'a;b'", "SELECT \"c;d\"", "SELECT E'\\';'"]
    );
    assert_eq!(
        split_statements("SELECT 1 -- ; no\n; /* ; /* ; */ */ SELECT 2"),
        vec!["SELECT 1 -- ; no", "/* ; /* ; */ */ SELECT 2"]
    );
    assert_eq!(
        split_statements("DO $$BEGIN PERFORM 1; END$$; SELECT 2"),
        vec!["DO $$BEGIN PERFORM 1; END$$", "SELECT 2"]
    );
    assert_eq!(
        split_statements(
            "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT f()"
        ),
        vec![
            "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
            "SELECT f()"
        ]
    );
    // Unterminated quote: the rest is one statement
    assert_eq!(
        split_statements("SELECT 1; SELECT 'a; b"),
        vec!["SELECT 1", "SELECT 'a; b"]
    );
}

#[test]
fn split_keeps_parenthesised_semicolons() {
    assert_eq!(
        split_statements("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1"),
        vec!["CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))", "SELECT 1"]
    );
}

#[test]
fn split_begin_atomic() {
    let f = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END; END";
    assert_eq!(
        split_statements(&format!("{f}; SELECT 3")),
        vec![f, "SELECT 3"]
    );
    let p = "create or replace procedure p() begin atomic insert into t values (1); insert into t values (2); end";
    assert_eq!(
        split_statements(&format!("{p};select 1;")),
        vec![p, "select 1"]
    );
    // Plain BEGIN/END transactions are still split
    assert_eq!(
        split_statements("BEGIN; SELECT 1; END; COMMIT"),
        vec!["BEGIN", "SELECT 1", "END", "COMMIT"]
    );
    // CASE ... END outside a routine does not confuse the splitter
    assert_eq!(
        split_statements("SELECT CASE WHEN true THEN 1 END; SELECT 2"),
        vec!["SELECT CASE WHEN true THEN 1 END", "SELECT 2"]
    );
}

#[test]
fn split_keeps_leading_hint_comment() {
    assert_eq!(
        split_statements("/* pgtide:primary */ SELECT 1;\n\t-- hi\nSELECT 2"),
        vec!["/* pgtide:primary */ SELECT 1", "-- hi\nSELECT 2"]
    );
}
