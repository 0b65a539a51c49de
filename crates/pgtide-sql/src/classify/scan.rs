//! One pass over a statement's tokens for what no AST is needed to see: calls to side-effect
//! and volatile functions, row-locking clauses, and whether the text is safe to hand to
//! sqlparser (nesting depth, size).

use super::functions::{self, FnClass, VOLATILE_KEYWORDS, VOLATILE_LITERALS};
use crate::lexer::{Token, TokenKind};

/// Deepest `(`/`[` nesting handed to sqlparser. Real statements stay far below; the parser's own
/// recursion limit is set to match (see `ast::RECURSION_LIMIT`).
pub(crate) const MAX_DEPTH: u32 = 64;
/// Operators (and AND/OR/NOT/IS/...) per statement handed to sqlparser: a long chain
/// `a + a + ...` builds a left-deep tree whose visit and drop recurse once per operator.
pub(crate) const MAX_OPERATORS: u32 = 5_000;
/// Longest statement handed to sqlparser (the lexical fast path has no limit).
pub(crate) const MAX_PARSE_LEN: usize = 256 * 1024;

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Scan {
    /// Calls a side-effect function (built-in list or configured).
    pub side_effect: bool,
    /// Calls a volatile function, uses `current_timestamp` & co or a `'now'` literal.
    pub volatile: bool,
    /// FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE anywhere.
    pub lock: bool,
    /// An unterminated string, identifier or comment, or a character SQL does not use.
    pub malformed: bool,
    /// Too deep or too long for sqlparser.
    pub too_complex: bool,
}

/// Lower-cases an unquoted identifier into `buf`; "" when it does not fit or is not an identifier.
pub(crate) fn lower<'b>(t: &Token<'b>, buf: &'b mut [u8; 32]) -> &'b str {
    let b = t.text.as_bytes();
    if t.kind != TokenKind::Ident || b.len() > buf.len() {
        return "";
    }
    if !b.iter().any(u8::is_ascii_uppercase) {
        return t.text;
    }
    for (d, s) in buf.iter_mut().zip(b) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..b.len()]).unwrap_or("")
}

fn is_name(t: &Token<'_>) -> bool {
    matches!(t.kind, TokenKind::Ident | TokenKind::QuotedIdent)
}

/// Keywords that combine operands (or queries) like an operator does.
const WORD_OPERATORS: &[&str] = &[
    "and",
    "or",
    "not",
    "is",
    "like",
    "ilike",
    "similar",
    "between",
    "in",
    "collate",
    "at",
    "union",
    "intersect",
    "except",
];

pub(crate) fn scan(toks: &[Token<'_>], len: usize, extra: &[String]) -> Scan {
    let mut s = Scan {
        too_complex: len > MAX_PARSE_LEN,
        ..Scan::default()
    };
    let mut depth = 0u32;
    let mut operators = 0u32;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => {
                depth += 1;
                if depth > MAX_DEPTH {
                    s.too_complex = true;
                }
                if t.kind == TokenKind::LBracket {
                    operators += 1;
                }
            }
            TokenKind::RParen | TokenKind::RBracket => depth = depth.saturating_sub(1),
            TokenKind::Operator | TokenKind::Cast => operators += 1,
            TokenKind::Other => s.malformed = true,
            TokenKind::String(_) => {
                if !t.complete {
                    s.malformed = true;
                } else if (5..=14).contains(&t.text.len()) {
                    s.volatile |= t.string_value().is_some_and(|v| {
                        let v = v.trim();
                        VOLATILE_LITERALS.iter().any(|l| v.eq_ignore_ascii_case(l))
                    });
                }
            }
            TokenKind::QuotedIdent if !t.complete => s.malformed = true,
            _ => {}
        }
        if !is_name(t) {
            continue;
        }
        let called = toks.get(i + 1).is_some_and(|n| n.kind == TokenKind::LParen);
        if t.kind == TokenKind::Ident {
            if t.is_any_kw(WORD_OPERATORS) {
                operators += 1;
            } else if t.is_kw("for") {
                s.lock |= is_lock_clause(toks, i);
            } else if t.is_any_kw(VOLATILE_KEYWORDS) {
                s.volatile = true;
            }
        }
        if called {
            call(toks, i, extra, &mut s);
        }
    }
    if operators > MAX_OPERATORS {
        s.too_complex = true;
    }
    s
}

/// `FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE` at `toks[i]` = FOR.
fn is_lock_clause(toks: &[Token<'_>], i: usize) -> bool {
    let kw = |j: usize, w: &str| toks.get(j).is_some_and(|t| t.is_kw(w));
    kw(i + 1, "update")
        || kw(i + 1, "share")
        || (kw(i + 1, "no") && kw(i + 2, "key"))
        || (kw(i + 1, "key") && kw(i + 2, "share"))
}

/// A call `[schema.]name(` with the name at `toks[i]`.
fn call(toks: &[Token<'_>], i: usize, extra: &[String], s: &mut Scan) {
    let Some(name) = toks[i].ident() else {
        return;
    };
    let schema = (i >= 2 && toks[i - 1].kind == TokenKind::Dot && is_name(&toks[i - 2]))
        .then(|| toks[i - 2].ident())
        .flatten();
    match functions::builtin(&name) {
        FnClass::SideEffect => s.side_effect = true,
        FnClass::Volatile => s.volatile = true,
        FnClass::Other => {}
    }
    if !extra.is_empty() && functions::configured(schema.as_deref(), &name, extra) {
        s.side_effect = true;
    }
}
