//! Where a SQL string names prepared statements (`PREPARE name AS ...`, `EXECUTE name(...)`,
//! `DEALLOCATE [PREPARE] name`), with byte spans, so a pooler can give each client's names
//! backend-wide ones without re-printing the SQL.

use std::ops::Range;

use crate::lexer::{split_statements, tokens, Token, TokenKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementUse {
    Prepare,
    Execute,
    Deallocate,
}

/// One statement-name reference in a SQL string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRef {
    pub kind: StatementUse,
    /// The name as PostgreSQL resolves it (unquoted identifiers fold to lower case).
    pub name: String,
    /// Byte range of the name in the whole string.
    pub span: Range<usize>,
    /// Byte range of the whole statement in the whole string.
    pub statement: Range<usize>,
    /// For PREPARE: the statement being prepared (after `AS`), for its session effects.
    pub body: Option<Range<usize>>,
}

/// Cheap test before the lexer: can `sql` name a prepared statement at all?
pub fn may_name_statements(sql: &str) -> bool {
    let b = sql.as_bytes();
    // Runs on every simple query: compare only where one of the words can start.
    (0..b.len().saturating_sub(6)).any(|i| {
        let w = &b[i..i + 7];
        match w[0] | 0x20 {
            b'p' => w.eq_ignore_ascii_case(b"prepare"),
            b'e' => w.eq_ignore_ascii_case(b"execute"),
            b'd' => w.eq_ignore_ascii_case(b"dealloc"),
            _ => false,
        }
    })
}

/// Where each statement of `sql` that drops every prepared statement (`DEALLOCATE [PREPARE]
/// ALL`, `DISCARD ALL`) starts, in order: the statements before it lose what they prepared,
/// those after it prepare afresh.
pub fn drop_all_starts(sql: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for stmt in split_statements(sql) {
        let mut toks = tokens(stmt);
        let (Some(head), Some(next)) = (toks.next(), toks.next()) else {
            continue;
        };
        let all = if head.is_kw("deallocate") && next.is_kw("prepare") {
            toks.next().is_some_and(|t| t.is_kw("all"))
        } else {
            (head.is_kw("deallocate") || head.is_kw("discard")) && next.is_kw("all")
        };
        if all {
            // split_statements hands out sub-slices of `sql`.
            out.push(stmt.as_ptr() as usize - sql.as_ptr() as usize);
        }
    }
    out
}

/// Every PREPARE / EXECUTE / DEALLOCATE name in `sql` (a simple-Query string, possibly several
/// statements). `DEALLOCATE ALL` and `PREPARE TRANSACTION` are not names and are not listed.
pub fn statement_names(sql: &str) -> Vec<NameRef> {
    if !may_name_statements(sql) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for stmt in split_statements(sql) {
        // split_statements hands out sub-slices of `sql`.
        let offset = stmt.as_ptr() as usize - sql.as_ptr() as usize;
        let all: Vec<Token<'_>> = tokens(stmt).collect();
        names_in(stmt, offset, &all, &mut out);
    }
    out
}

/// The statement-name reference of one statement `stmt` starting at byte `offset` of the whole
/// string, given its code tokens (offsets relative to `stmt`).
pub(crate) fn names_in(stmt: &str, offset: usize, all: &[Token<'_>], out: &mut Vec<NameRef>) {
    let head = all.first();
    if !head.is_some_and(|h| {
        ["prepare", "execute", "deallocate", "explain", "create"]
            .iter()
            .any(|k| h.is_kw(k))
    }) {
        return;
    }
    // EXPLAIN [ANALYZE] EXECUTE name and CREATE TABLE t AS EXECUTE name run a statement too.
    // Every EXECUTE keyword in the right place is a candidate: a table may be named
    // `execute` (`CREATE TABLE execute AS EXECUTE p`).
    let inner = (1..all.len()).find(|&i| {
        all[i].is_kw("execute")
            && (all[0].is_kw("explain") || all[0].is_kw("create"))
            && (all[i - 1].is_kw("as")
                || all[0].is_kw("explain")
                    && (all[i - 1].kind == TokenKind::RParen
                        || ["explain", "analyze", "analyse", "verbose"]
                            .iter()
                            .any(|k| all[i - 1].is_kw(k))))
    });
    let toks = all.get(inner.unwrap_or(0)..).unwrap_or_default();
    let toks = toks.get(..4).unwrap_or(toks);
    let Some(head) = toks.first() else { return };
    let (kind, at) = if head.is_kw("prepare") && inner.is_none() {
        (StatementUse::Prepare, 1)
    } else if head.is_kw("execute") {
        (StatementUse::Execute, 1)
    } else if head.is_kw("deallocate") && inner.is_none() {
        let at = if toks.get(1).is_some_and(|t| t.is_kw("prepare")) {
            2
        } else {
            1
        };
        (StatementUse::Deallocate, at)
    } else {
        return;
    };
    let Some(name_tok) = toks.get(at) else {
        return;
    };
    if !matches!(name_tok.kind, TokenKind::Ident | TokenKind::QuotedIdent) {
        return;
    }
    if kind == StatementUse::Deallocate && name_tok.is_kw("all") {
        return;
    }
    if kind == StatementUse::Prepare
        && name_tok.is_kw("transaction")
        && toks
            .get(2)
            .is_some_and(|t| matches!(t.kind, TokenKind::String(_)))
    {
        return;
    }
    let Some(name) = name_tok.ident() else {
        return;
    };
    let body = if kind == StatementUse::Prepare {
        prepare_body(stmt).map(|r| r.start + offset..r.end + offset)
    } else {
        None
    };
    out.push(NameRef {
        kind,
        name: name.into_owned(),
        span: name_tok.start + offset..name_tok.end() + offset,
        statement: offset..offset + stmt.len(),
        body,
    });
}

/// The prepared statement's text: everything after the first top-level `AS`.
fn prepare_body(stmt: &str) -> Option<Range<usize>> {
    let mut depth = 0u32;
    for t in tokens(stmt) {
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth = depth.saturating_sub(1),
            _ if depth == 0 && t.is_kw("as") => return Some(t.end()..stmt.len()),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<(StatementUse, String, &str)> {
        statement_names(sql)
            .into_iter()
            .map(|r| {
                let text = &sql[r.span.clone()];
                (r.kind, r.name, text)
            })
            .collect()
    }

    #[test]
    fn finds_each_kind_with_its_span() {
        use StatementUse::*;
        assert_eq!(
            names("PREPARE q1 (int) AS SELECT $1"),
            vec![(Prepare, "q1".into(), "q1")]
        );
        assert_eq!(names("execute Q1(5)"), vec![(Execute, "q1".into(), "Q1")]);
        assert_eq!(
            names(r#"DEALLOCATE PREPARE "S_1""#),
            vec![(Deallocate, "S_1".into(), r#""S_1""#)]
        );
        assert_eq!(
            names("/* hint */ PREPARE a AS SELECT 1; EXECUTE a; DEALLOCATE a"),
            vec![
                (Prepare, "a".into(), "a"),
                (Execute, "a".into(), "a"),
                (Deallocate, "a".into(), "a"),
            ]
        );
    }

    #[test]
    fn prepare_body_is_after_the_top_level_as() {
        let sql = "PREPARE p (int, text) AS SELECT $1::int AS x";
        let r = &statement_names(sql)[0];
        assert_eq!(&sql[r.body.clone().expect("body")], " SELECT $1::int AS x");
        assert_eq!(&sql[r.statement.clone()], sql);
    }

    #[test]
    fn ignores_what_is_not_a_statement_name() {
        assert!(names("DEALLOCATE ALL").is_empty());
        assert!(names("DEALLOCATE PREPARE ALL").is_empty());
        assert!(names("PREPARE TRANSACTION 'gid'").is_empty());
        assert!(names("SELECT 'execute x'").is_empty());
        assert!(names("SELECT execute_me FROM t").is_empty());
        assert!(names("").is_empty());
        assert!(names("EXECUTE").is_empty());
    }

    #[test]
    fn execute_inside_explain_and_create_table_as() {
        let found = names("EXPLAIN (COSTS OFF) EXECUTE p(3); explain analyze execute q");
        assert_eq!(
            found,
            [
                (StatementUse::Execute, "p".to_string(), "p"),
                (StatementUse::Execute, "q".to_string(), "q")
            ]
        );
        let found = names("CREATE TEMP TABLE t AS EXECUTE p(1)");
        assert_eq!(found, [(StatementUse::Execute, "p".to_string(), "p")]);
        let found = names("CREATE TABLE execute AS EXECUTE p(1)");
        assert_eq!(found, [(StatementUse::Execute, "p".to_string(), "p")]);
        assert!(names("EXPLAIN SELECT 1 AS execute").is_empty());
    }

    #[test]
    fn drop_all_statements_by_where_they_start() {
        let sql = "PREPARE a AS SELECT 1; DEALLOCATE ALL; discard all; DEALLOCATE PREPARE ALL; \
                   DEALLOCATE a; DISCARD PLANS; SELECT 'DEALLOCATE ALL'";
        let starts: Vec<&str> = drop_all_starts(sql)
            .into_iter()
            .map(|at| &sql[at..at + 14])
            .collect();
        assert_eq!(
            starts,
            ["DEALLOCATE ALL", "discard all; D", "DEALLOCATE PRE"]
        );
        assert!(drop_all_starts("SELECT 1").is_empty());
    }

    #[test]
    fn cheap_precheck() {
        assert!(!may_name_statements("SELECT 1"));
        assert!(may_name_statements("deallocate a1"));
        assert!(may_name_statements("PREPARE x AS SELECT 1"));
    }
}
