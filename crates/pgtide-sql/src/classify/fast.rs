//! The lexical fast path: relation names of the simple statements that make up most OLTP
//! traffic, found without sqlparser (which costs 3-20 µs per statement).
//!
//! Covered: `SELECT` with a plain FROM list (tables, aliases, commas, all JOIN forms with ON or
//! USING), `INSERT INTO t ... VALUES`, `UPDATE t SET ... [FROM list]`, `DELETE FROM t [USING
//! list]`, with any expressions, ORDER BY, LIMIT, RETURNING, ON CONFLICT, locking clauses.
//! Everything else answers `None` and goes to sqlparser: subqueries, CTEs, set operations,
//! `INTO`, `ONLY`, `LATERAL`, functions or parentheses in FROM, TABLESAMPLE, or any token where
//! the shape is not exactly the expected one. The fast path only names relations; whether the
//! statement is a read is decided by the caller from its head keyword and the lexical scan.

use super::names::{push_part, push_unique};
use crate::lexer::{Token, TokenKind};

/// Reads and writes found by the fast path.
pub(crate) struct Found {
    pub reads: Vec<String>,
    pub writes: Vec<String>,
}

/// Words that end a FROM list at depth 0.
const STOP: &[&str] = &[
    "where",
    "group",
    "having",
    "window",
    "order",
    "limit",
    "offset",
    "fetch",
    "for",
    "returning",
];

/// Words after a relation name that are not an alias.
const NOT_ALIAS: &[&str] = &[
    "where",
    "group",
    "having",
    "window",
    "order",
    "limit",
    "offset",
    "fetch",
    "for",
    "returning",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "on",
    "using",
    "set",
    "tablesample",
    "as",
    "union",
    "intersect",
    "except",
    "from",
    "values",
    "default",
    "overriding",
    "select",
];

/// Words that disqualify a statement from the fast path wherever they appear after the head
/// (and INTO / VALUES, except in `INSERT INTO ... VALUES`).
const BAIL: &[&str] = &[
    "select",
    "with",
    "table",
    "union",
    "intersect",
    "except",
    "lateral",
    "only",
];

/// Words that cannot start a relation name.
const NOT_NAME: &[&str] = &[
    "select", "from", "where", "lateral", "only", "as", "on", "using", "join", "inner", "left",
    "right", "full", "cross", "natural", "rows", "table", "values", "with", "set",
];

fn kw(toks: &[Token<'_>], i: usize, w: &str) -> bool {
    toks.get(i).is_some_and(|t| t.is_kw(w))
}

fn kind(toks: &[Token<'_>], i: usize) -> Option<TokenKind> {
    toks.get(i).map(|t| t.kind)
}

/// Fast path for a statement whose first token is SELECT, INSERT, UPDATE or DELETE.
pub(crate) fn relations(toks: &[Token<'_>]) -> Option<Found> {
    let head = toks.first()?;
    let insert = head.is_kw("insert");
    let mut depth = 0u32;
    for (i, t) in toks.iter().enumerate().skip(1) {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => depth = depth.checked_sub(1)?,
            _ => {}
        }
        // Keyword tests are of unquoted identifiers only.
        let bail = t.is_any_kw(BAIL)
            || (t.is_kw("into") && !(insert && i == 1))
            || (t.is_kw("values") && !insert);
        if bail {
            return None;
        }
    }
    if depth != 0 {
        return None;
    }
    if head.is_kw("select") {
        let reads = match top_level_from(toks, 1)? {
            Some(at) => from_list(toks, at)?.0,
            None => Vec::new(),
        };
        return Some(Found {
            reads,
            writes: Vec::new(),
        });
    }
    if insert {
        if !kw(toks, 1, "into") {
            return None;
        }
        let (name, j) = lexical_name(toks, 2)?;
        let j = if kw(toks, j, "as") { j + 2 } else { j };
        let next_ok = kind(toks, j) == Some(TokenKind::LParen)
            || ["values", "default", "overriding"]
                .iter()
                .any(|w| kw(toks, j, w));
        return next_ok.then(|| Found {
            reads: Vec::new(),
            writes: vec![name],
        });
    }
    if head.is_kw("update") {
        let (name, j) = rel_name(toks, 1)?;
        let j = alias(toks, j)?;
        if !kw(toks, j, "set") {
            return None;
        }
        let reads = match top_level_from(toks, j + 1)? {
            Some(at) => from_list(toks, at)?.0,
            None => Vec::new(),
        };
        return Some(Found {
            reads,
            writes: vec![name],
        });
    }
    if head.is_kw("delete") {
        if !kw(toks, 1, "from") {
            return None;
        }
        let (name, j) = rel_name(toks, 2)?;
        let j = alias(toks, j)?;
        let reads = if kw(toks, j, "using") {
            let (reads, end) = from_list(toks, j + 1)?;
            if end < toks.len() && !(kw(toks, end, "where") || kw(toks, end, "returning")) {
                return None;
            }
            reads
        } else if j == toks.len() || kw(toks, j, "where") || kw(toks, j, "returning") {
            Vec::new()
        } else {
            return None;
        };
        return Some(Found {
            reads,
            writes: vec![name],
        });
    }
    None
}

/// Index just after the first depth-0 FROM at or after `i` (`Some(None)`: there is none;
/// `None`: unbalanced). `x IS [NOT] DISTINCT FROM y` is an operator, not a FROM clause.
fn top_level_from(toks: &[Token<'_>], i: usize) -> Option<Option<usize>> {
    let mut depth = 0u32;
    for j in i..toks.len() {
        let t = &toks[j];
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => depth = depth.checked_sub(1)?,
            _ if depth == 0 && t.is_kw("from") => {
                let distinct_from = j >= 2
                    && toks[j - 1].is_kw("distinct")
                    && (toks[j - 2].is_kw("is") || toks[j - 2].is_kw("not"));
                if !distinct_from {
                    return Some(Some(j + 1));
                }
            }
            _ => {}
        }
    }
    Some(None)
}

/// A relation name at `i`: 1 to 3 dotted identifier parts. Returns the canonical name and the
/// index after it. A name followed by `(` is a function call: `None`.
fn rel_name(toks: &[Token<'_>], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    for part in 0..3 {
        let t = toks.get(i)?;
        let quoted = match t.kind {
            TokenKind::Ident if part > 0 || !t.is_any_kw(NOT_NAME) => false,
            TokenKind::QuotedIdent => true,
            _ => return None,
        };
        push_part(&mut name, &t.ident()?, quoted);
        i += 1;
        if kind(toks, i) != Some(TokenKind::Dot) {
            break;
        }
        i += 1;
    }
    match kind(toks, i) {
        Some(TokenKind::LParen | TokenKind::Dot) => None,
        _ => Some((name, i)),
    }
}

/// Skips `[AS] alias [(columns)]` at `i`.
fn alias(toks: &[Token<'_>], i: usize) -> Option<usize> {
    let mut j = i;
    if kw(toks, j, "as") {
        if !matches!(
            kind(toks, j + 1),
            Some(TokenKind::Ident | TokenKind::QuotedIdent)
        ) {
            return None;
        }
        j += 2;
    } else {
        match toks.get(j) {
            Some(t) if t.kind == TokenKind::QuotedIdent => j += 1,
            Some(t) if t.kind == TokenKind::Ident && !t.is_any_kw(NOT_ALIAS) => j += 1,
            _ => return Some(j),
        }
    }
    if kind(toks, j) == Some(TokenKind::LParen) {
        j = skip_parens(toks, j)?;
    }
    Some(j)
}

/// Index after the parenthesis group opening at `i`.
fn skip_parens(toks: &[Token<'_>], i: usize) -> Option<usize> {
    let mut depth = 0u32;
    for (j, t) in toks.iter().enumerate().skip(i) {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// At `i`, `[NATURAL] [INNER | CROSS | {LEFT|RIGHT|FULL} [OUTER]] JOIN`: index after JOIN and
/// whether the join is NATURAL or CROSS (no ON/USING follows).
fn join_start(toks: &[Token<'_>], i: usize) -> Option<(usize, bool)> {
    if i > 0 && toks[i - 1].kind == TokenKind::Dot {
        return None;
    }
    let mut j = i;
    let mut bare = false;
    if kw(toks, j, "natural") {
        bare = true;
        j += 1;
    }
    if kw(toks, j, "cross") {
        bare = true;
        j += 1;
    } else if kw(toks, j, "inner") {
        j += 1;
    } else if kw(toks, j, "left") || kw(toks, j, "right") || kw(toks, j, "full") {
        j += 1;
        if kw(toks, j, "outer") {
            j += 1;
        }
    }
    kw(toks, j, "join").then_some((j + 1, bare))
}

/// A FROM (or UPDATE's FROM, DELETE's USING) list starting at `i`: the relations and the index
/// where the list ends (a STOP word or the end).
fn from_list(toks: &[Token<'_>], mut i: usize) -> Option<(Vec<String>, usize)> {
    let mut reads = Vec::new();
    let mut joined: Option<bool> = None; // Some(bare) after a JOIN item
    loop {
        let (name, j) = rel_name(toks, i)?;
        push_unique(&mut reads, name);
        let mut j = alias(toks, j)?;
        if let Some(bare) = joined.take() {
            if !bare && kw(toks, j, "on") {
                j = skip_expr(toks, j + 1)?;
            } else if !bare && kw(toks, j, "using") {
                if kind(toks, j + 1) != Some(TokenKind::LParen) {
                    return None;
                }
                j = skip_parens(toks, j + 1)?;
            } else if !bare {
                return None;
            }
        }
        let Some(t) = toks.get(j) else {
            return Some((reads, j));
        };
        if t.kind == TokenKind::Comma {
            i = j + 1;
        } else if let Some((after, bare)) = join_start(toks, j) {
            i = after;
            joined = Some(bare);
        } else if t.is_any_kw(STOP) {
            return Some((reads, j));
        } else {
            return None;
        }
    }
}

/// Skips a join condition: up to a depth-0 comma, JOIN, STOP word or the end.
fn skip_expr(toks: &[Token<'_>], i: usize) -> Option<usize> {
    let mut depth = 0u32;
    let mut j = i;
    while let Some(t) = toks.get(j) {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => depth = depth.checked_sub(1)?,
            TokenKind::Comma if depth == 0 => return Some(j),
            TokenKind::Ident
                if depth == 0 && (join_start(toks, j).is_some() || t.is_any_kw(STOP)) =>
            {
                return Some(j)
            }
            _ => {}
        }
        j += 1;
    }
    Some(j)
}

/// Write targets seen in the tokens alone, for statements sqlparser could not read: every
/// `INSERT INTO t`, `UPDATE [ONLY] t`, `DELETE FROM [ONLY] t`, `MERGE INTO [ONLY] t`,
/// `TRUNCATE [TABLE] [ONLY] t, ...`, and the object of a leading CREATE / ALTER / DROP of a
/// table, view, sequence or index.
pub(crate) fn lexical_writes(toks: &[Token<'_>]) -> Vec<String> {
    let mut out = ddl_object(toks);
    for (i, t) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        // Not a keyword after a dot; not the UPDATE of FOR [NO KEY] UPDATE or DO UPDATE.
        if prev.is_some_and(|p| {
            p.kind == TokenKind::Dot || p.is_kw("for") || p.is_kw("key") || p.is_kw("do")
        }) {
            continue;
        }
        let truncate = t.is_kw("truncate");
        let mut j = if (t.is_kw("insert") || t.is_kw("merge")) && kw(toks, i + 1, "into") {
            i + 2
        } else if t.is_kw("update") || truncate {
            i + 1
        } else if t.is_kw("delete") && kw(toks, i + 1, "from") {
            i + 2
        } else {
            continue;
        };
        if truncate && kw(toks, j, "table") {
            j += 1;
        }
        if kw(toks, j, "only") {
            j += 1;
        }
        while let Some((name, next)) = lexical_name(toks, j) {
            push_unique(&mut out, name);
            // TRUNCATE a, ONLY b: a list.
            if !(truncate && kind(toks, next) == Some(TokenKind::Comma)) {
                break;
            }
            j = next + 1;
            if kw(toks, j, "only") {
                j += 1;
            }
        }
    }
    out
}

/// A dotted name of 1 to 3 parts at `i` (not starting with a clause keyword), and the index
/// after it. Unlike `rel_name`, a following `(` is fine (`INSERT INTO t(a)`, `COPY t (a)`).
pub(crate) fn lexical_name(toks: &[Token<'_>], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    for _ in 0..3 {
        let t = toks.get(i)?;
        let quoted = match t.kind {
            TokenKind::Ident if !t.is_any_kw(NOT_NAME) => false,
            TokenKind::QuotedIdent => true,
            _ => break,
        };
        push_part(&mut name, &t.ident()?, quoted);
        i += 1;
        if kind(toks, i) != Some(TokenKind::Dot) {
            break;
        }
        i += 1;
    }
    (!name.is_empty()).then_some((name, i))
}

/// `CREATE [OR REPLACE] [TEMP|UNLOGGED|UNIQUE|MATERIALIZED|...] {TABLE|VIEW|SEQUENCE|INDEX}
/// [CONCURRENTLY] [IF [NOT] EXISTS] name [ON table]`, and `DROP ... name, name`.
fn ddl_object(toks: &[Token<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(head) = toks.first() else {
        return out;
    };
    let drop = head.is_kw("drop");
    if !(drop || head.is_kw("create") || head.is_kw("alter")) {
        return out;
    }
    const MODIFIERS: &[&str] = &[
        "or",
        "replace",
        "temp",
        "temporary",
        "unlogged",
        "global",
        "local",
        "unique",
        "materialized",
        "recursive",
        "foreign",
    ];
    let mut j = 1;
    while toks.get(j).is_some_and(|t| t.is_any_kw(MODIFIERS)) {
        j += 1;
    }
    let index = kw(toks, j, "index");
    if !["table", "view", "sequence", "index"]
        .iter()
        .any(|w| kw(toks, j, w))
    {
        return out;
    }
    j += 1;
    while toks
        .get(j)
        .is_some_and(|t| t.is_any_kw(&["concurrently", "if", "not", "exists", "only"]))
    {
        j += 1;
    }
    while let Some((name, next)) = lexical_name(toks, j) {
        if kw(toks, j, "on") {
            break;
        }
        push_unique(&mut out, name);
        j = next;
        if !(drop && kind(toks, j) == Some(TokenKind::Comma)) {
            break;
        }
        j += 1;
    }
    if index && kw(toks, j, "on") {
        j += 1;
        if kw(toks, j, "only") {
            j += 1;
        }
        if let Some((name, _)) = lexical_name(toks, j) {
            push_unique(&mut out, name);
        }
    }
    out
}
