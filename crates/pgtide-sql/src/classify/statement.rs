//! One statement: dispatch on the head keyword, then the lexical scan, the fast path or
//! sqlparser.

use std::borrow::Cow;

use super::fast::{self, lexical_name};
use super::scan::{self, lower, Scan};
use super::{ast, Part, StatementKind as K, TransactionStatement as T};
use crate::lexer::{Lexer, Token, TokenKind};

fn kw(toks: &[Token<'_>], i: usize, w: &str) -> bool {
    toks.get(i).is_some_and(|t| t.is_kw(w))
}

fn write() -> Part {
    Part::of(K::Write)
}

/// Classifies one statement (no top-level `;`). `nested`: the body of EXPLAIN, PREPARE or
/// COPY (...), where those three are not allowed again.
pub(crate) fn classify(stmt: &str, extra: &[String], nested: bool) -> Part {
    lexed(stmt, extra, nested, true).unwrap_or_else(write)
}

/// Lexes `stmt` and classifies it; `None` only when `parse` is false and sqlparser is needed.
fn lexed(stmt: &str, extra: &[String], nested: bool, parse: bool) -> Option<Part> {
    let mut toks: Vec<Token<'_>> = Vec::with_capacity(stmt.len() / 4);
    for t in Lexer::new(stmt) {
        if t.kind != TokenKind::Comment {
            toks.push(t);
        } else if !t.complete {
            // An unterminated comment: PostgreSQL rejects the statement.
            return Some(write());
        }
    }
    classify_tokens(stmt, &toks, extra, nested, parse)
}

/// [`classify`] of a statement already lexed (`toks`: its tokens without comments, offsets
/// relative to `stmt`; an unterminated comment is the caller's to reject). With `parse` false,
/// `None` instead of a sqlparser run: the lexical layer alone does not decide.
pub(crate) fn classify_tokens(
    stmt: &str,
    toks: &[Token<'_>],
    extra: &[String],
    nested: bool,
    parse: bool,
) -> Option<Part> {
    let Some(first) = toks.first() else {
        return Some(write());
    };
    if toks.iter().any(unusual_escape) {
        // What the text names depends on escapes pgtide does not decode the way PostgreSQL
        // will: uncertain, a write to unknown tables.
        return Some(write());
    }
    let mut buf = [0u8; 32];
    let head = if first.kind == TokenKind::LParen {
        "("
    } else {
        lower(first, &mut buf)
    };
    let cx = Cx {
        stmt,
        toks,
        extra,
        parse,
    };
    Some(match head {
        "select" | "insert" | "update" | "delete" => query(&cx, true)?,
        "with" | "values" | "(" => query(&cx, false)?,
        "table" => table(&cx)?,
        "merge" | "create" | "alter" | "drop" | "truncate" | "comment" | "grant" | "revoke" => {
            let mut p = query(&cx, false)?;
            p.kind = K::Write;
            p
        }
        "show" => Part::of(K::Read),
        "explain" if !nested => explain(&cx)?,
        "copy" if !nested => copy(&cx)?,
        "prepare" if !nested => prepare(&cx)?,
        "begin" => begin(toks),
        "start" if kw(toks, 1, "transaction") => begin(toks),
        "commit" | "rollback" if kw(toks, 1, "prepared") => Part::of(K::Transaction(T::TwoPhase)),
        "commit" | "end" => Part::of(K::Transaction(T::Commit)),
        "rollback" if (1..=2).any(|i| kw(toks, i, "to")) => Part::of(K::Transaction(T::Savepoint)),
        "rollback" | "abort" => Part::of(K::Transaction(T::Rollback)),
        "savepoint" | "release" => Part::of(K::Transaction(T::Savepoint)),
        "set" if kw(toks, 1, "transaction") => {
            Part::of(K::Transaction(T::SetReadOnly(read_only(toks))))
        }
        "set" | "reset" | "discard" | "deallocate" => Part::of(K::Session),
        "refresh" => refresh(toks),
        // CALL, DO, LOCK, LISTEN, UNLISTEN, NOTIFY, VACUUM, ANALYZE, CLUSTER, REINDEX,
        // CHECKPOINT, EXECUTE, DECLARE, FETCH, MOVE, CLOSE, LOAD, IMPORT, SECURITY LABEL, ...
        _ => write(),
    })
}

/// One statement being classified.
struct Cx<'c, 's> {
    stmt: &'s str,
    toks: &'c [Token<'s>],
    extra: &'c [String],
    /// sqlparser may run (else `None` where it would).
    parse: bool,
}

impl Cx<'_, '_> {
    /// A nested statement (EXPLAIN's, COPY's, PREPARE's body).
    fn nested(&self, body: &str) -> Option<Part> {
        lexed(body, self.extra, true, self.parse)
    }
}

/// BEGIN / START TRANSACTION with its modes. SERIALIZABLE is told apart: a standby refuses it
/// (0A000), READ ONLY or not.
fn begin(toks: &[Token<'_>]) -> Part {
    if toks.iter().any(|t| t.is_kw("serializable")) {
        return Part::of(K::Transaction(T::BeginSerializable));
    }
    Part::of(K::Transaction(T::Begin {
        read_only: read_only(toks),
    }))
}

/// A `U&'..'` string or `U&".."` identifier (their escapes, and a `UESCAPE` clause, can
/// spell any name), or the `UESCAPE` keyword itself.
pub(crate) fn unusual_escape(t: &Token<'_>) -> bool {
    let unicode = matches!(t.kind, TokenKind::String(_) | TokenKind::QuotedIdent)
        && t.text
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case("u&"));
    unicode || t.is_kw("uescape")
}

/// READ ONLY / READ WRITE among transaction modes (the last one wins, as in PostgreSQL).
fn read_only(toks: &[Token<'_>]) -> bool {
    let mut ro = false;
    for w in toks.windows(2) {
        if w[0].is_kw("read") {
            if w[1].is_kw("only") {
                ro = true;
            } else if w[1].is_kw("write") {
                ro = false;
            }
        }
    }
    ro
}

/// SELECT / INSERT / UPDATE / DELETE / WITH / VALUES / DDL: scan, then fast path or sqlparser.
fn query(cx: &Cx<'_, '_>, try_fast: bool) -> Option<Part> {
    let (stmt, toks) = (cx.stmt, cx.toks);
    let s: Scan = scan::scan(toks, stmt.len(), cx.extra);
    let is_select = toks.first().is_some_and(|t| t.is_kw("select"));
    let found = if try_fast && !s.malformed {
        fast::relations(toks).map(|f| (is_select, f.reads, f.writes))
    } else {
        None
    };
    let found = match found {
        Some(found) => Some(found),
        None if s.malformed || s.too_complex => None,
        None if !cx.parse => return None,
        None => ast::parse(&for_sqlparser(stmt, toks)).map(|p| (p.read_only, p.reads, p.writes)),
    };
    let Some((read_only, reads, writes)) = found else {
        // Not understood: a write, with the targets the tokens show.
        return Some(Part {
            writes: fast::lexical_writes(toks),
            volatile: s.volatile || s.side_effect,
            ..write()
        });
    };
    let read = read_only && !s.side_effect && !s.lock;
    Some(Part {
        kind: if read { K::Read } else { K::Write },
        reads,
        writes,
        volatile: s.volatile || s.side_effect,
    })
}

/// The text handed to sqlparser 0.63, rewritten where it misreads PostgreSQL in ways that do
/// not matter for classification: it reads `FROM ONLY t` as table `ONLY` aliased `t` (ONLY is
/// dropped), and it knows no `FOR NO KEY UPDATE` / `FOR KEY SHARE` / FROM-less `FOR SHARE`
/// (all become `FOR UPDATE`; the lexical scan has seen the lock already).
fn for_sqlparser<'s>(stmt: &'s str, toks: &[Token<'_>]) -> Cow<'s, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let only = i > 0 && t.is_kw("only") && {
            let p = &toks[i - 1];
            p.kind == TokenKind::Comma
                || ["from", "join", "update", "using", "into", "table"]
                    .iter()
                    .any(|w| p.is_kw(w))
        };
        let lock_words = if !t.is_kw("for") {
            0
        } else if kw(toks, i + 1, "no") && kw(toks, i + 2, "key") && kw(toks, i + 3, "update") {
            4
        } else if kw(toks, i + 1, "key") && kw(toks, i + 2, "share") {
            3
        } else if kw(toks, i + 1, "share") {
            2
        } else {
            0
        };
        let (n, with) = match (only, lock_words) {
            (true, _) => (1, " "),
            (false, 0) => {
                i += 1;
                continue;
            }
            (false, n) => (n, "FOR UPDATE"),
        };
        out.push_str(stmt.get(copied..t.start).unwrap_or(""));
        out.push_str(with);
        copied = toks[i + n - 1].end();
        i += n;
    }
    if copied == 0 {
        return Cow::Borrowed(stmt);
    }
    out.push_str(stmt.get(copied..).unwrap_or(""));
    Cow::Owned(out)
}

/// `TABLE name` alone is read lexically; anything longer goes to sqlparser.
fn table(cx: &Cx<'_, '_>) -> Option<Part> {
    match lexical_name(cx.toks, 1) {
        Some((name, end)) if end == cx.toks.len() => Some(Part {
            reads: vec![name],
            ..Part::of(K::Read)
        }),
        _ => query(cx, false),
    }
}

/// EXPLAIN [ANALYZE] [VERBOSE] stmt | EXPLAIN (option [value], ...) stmt. Without ANALYZE the
/// statement is only planned: a read whatever it is. With ANALYZE it runs.
fn explain(cx: &Cx<'_, '_>) -> Option<Part> {
    let (stmt, toks) = (cx.stmt, cx.toks);
    let mut analyze = false;
    let mut i = 1;
    if toks.get(1).is_some_and(|t| t.kind == TokenKind::LParen) {
        let mut depth = 0u32;
        let mut option_start = true;
        while let Some(t) = toks.get(i) {
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth = depth.saturating_sub(1),
                TokenKind::Comma => option_start = true,
                _ if option_start => {
                    option_start = false;
                    // `("analyze")`: a quoted option name is the same option.
                    let name = t.ident().unwrap_or_default();
                    if name == "analyze" || name == "analyse" {
                        analyze |= !toks.get(i + 1).is_some_and(is_false);
                    }
                }
                _ => {}
            }
            i += 1;
            if depth == 0 {
                break;
            }
        }
    } else {
        while let Some(t) = toks.get(i) {
            if t.is_kw("analyze") || t.is_kw("analyse") {
                analyze = true;
            } else if !t.is_kw("verbose") {
                break;
            }
            i += 1;
        }
    }
    let Some(body) = toks.get(i).and_then(|t| stmt.get(t.start..)) else {
        return Some(write());
    };
    let inner = cx.nested(body)?;
    Some(match inner.kind {
        K::Read => inner,
        K::Write if !analyze => Part {
            kind: K::Read,
            writes: Vec::new(),
            ..inner
        },
        K::Write => inner,
        K::Session | K::Transaction(_) => write(),
    })
}

/// An option value that turns a boolean option off: false / off / 0 (bare or quoted).
fn is_false(t: &Token<'_>) -> bool {
    let v = match t.kind {
        TokenKind::Ident | TokenKind::Number => Cow::Borrowed(t.text),
        TokenKind::String(_) => match t.string_value() {
            Some(v) => v,
            None => return false,
        },
        _ => return false,
    };
    ["false", "off", "0", "no"]
        .iter()
        .any(|f| v.eq_ignore_ascii_case(f))
}

/// COPY (query) TO STDOUT and COPY table TO STDOUT are reads; COPY FROM, TO a file or PROGRAM
/// are writes (the latter two have server-side effects).
fn copy(cx: &Cx<'_, '_>) -> Option<Part> {
    let (stmt, toks) = (cx.stmt, cx.toks);
    let to_stdout = |i: usize| kw(toks, i, "to") && kw(toks, i + 1, "stdout");
    if toks.get(1).is_some_and(|t| t.kind == TokenKind::LParen) {
        let Some(close) = matching_paren(toks, 1) else {
            return Some(write());
        };
        let body = match (toks.get(2), toks.get(close)) {
            (Some(a), Some(b)) if a.start < b.start => stmt.get(a.start..b.start),
            _ => None,
        };
        let Some(body) = body else {
            return Some(write());
        };
        let inner = cx.nested(body)?;
        if inner.kind == K::Read && to_stdout(close + 1) {
            return Some(inner);
        }
        return Some(Part {
            kind: K::Write,
            ..inner
        });
    }
    let Some((name, mut i)) = lexical_name(toks, 1) else {
        return Some(write());
    };
    if toks.get(i).is_some_and(|t| t.kind == TokenKind::LParen) {
        match matching_paren(toks, i) {
            Some(close) => i = close + 1,
            None => return Some(write()),
        }
    }
    if kw(toks, i, "from") {
        return Some(Part {
            writes: vec![name],
            ..write()
        });
    }
    let kind = if to_stdout(i) { K::Read } else { K::Write };
    Some(Part {
        reads: vec![name],
        ..Part::of(kind)
    })
}

/// Index of the `)` closing the `(` at `open`.
fn matching_paren(toks: &[Token<'_>], open: usize) -> Option<usize> {
    let mut depth = 0u32;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// PREPARE TRANSACTION 'gid' is two-phase commit; PREPARE name [(types)] AS stmt is classified
/// by its statement.
fn prepare(cx: &Cx<'_, '_>) -> Option<Part> {
    let (stmt, toks) = (cx.stmt, cx.toks);
    if kw(toks, 1, "transaction")
        && toks
            .get(2)
            .is_some_and(|t| matches!(t.kind, TokenKind::String(_)))
    {
        return Some(Part::of(K::Transaction(T::TwoPhase)));
    }
    if !toks
        .get(1)
        .is_some_and(|t| matches!(t.kind, TokenKind::Ident | TokenKind::QuotedIdent))
    {
        return Some(write());
    }
    let mut i = 2;
    if toks.get(i).is_some_and(|t| t.kind == TokenKind::LParen) {
        match matching_paren(toks, i) {
            Some(close) => i = close + 1,
            None => return Some(write()),
        }
    }
    if !kw(toks, i, "as") {
        return Some(write());
    }
    let Some(body) = toks.get(i + 1).and_then(|t| stmt.get(t.start..)) else {
        return Some(write());
    };
    let inner = cx.nested(body)?;
    Some(match inner.kind {
        K::Read | K::Write => inner,
        K::Session | K::Transaction(_) => write(),
    })
}

/// REFRESH MATERIALIZED VIEW [CONCURRENTLY] name: rewrites the view's rows.
fn refresh(toks: &[Token<'_>]) -> Part {
    let mut i = 1;
    while ["materialized", "view", "concurrently"]
        .iter()
        .any(|w| kw(toks, i, w))
    {
        i += 1;
    }
    Part {
        writes: lexical_name(toks, i).map(|(n, _)| n).into_iter().collect(),
        ..write()
    }
}
